"""The figure of a rank estimate (matplotlib only)."""

import textwrap

import numpy as np

__all__ = ["plot_rank_estimate"]


def _error_label(result):
    """What the error panel's y axis shows: the loss, and the weighting of the data."""
    settings = result.settings
    beta = settings.get("beta", 2.0)
    if beta == 2.0:
        label = "relative error ‖X − WH‖ / ‖X‖"
        if settings.get("normalized"):
            label += "\n(X Poisson-weighted)"
        return label
    if beta == 1.0:
        return "KL divergence D(X ‖ WH) (counts)"
    return f"β-divergence (β = {beta:g})"


def _data_line(result):
    """The first line of the figure's title: the data and the ensemble."""
    parts = []
    if result.shape is not None:
        n, m = result.shape
        parts.append(f"{n} probe positions × {m} signal pixels")
    restarts = result.settings.get("n_restarts")
    if restarts:
        parts.append(f"{restarts} restarts per rank")
    line = ", ".join(parts)
    if result.title:
        line = f"{result.title}: {line}" if line else result.title
    return line


def _plot_aic(ax, ranks, result):
    """The information criterion that ranks the stable ranks, drawn on panel (a).

    ΔAIC (AIC minus its minimum) is mapped linearly onto the range of the
    errors and read on a secondary right axis of ``ax`` (a child of ``ax``:
    the figure keeps its four panels).
    """
    errors = np.concatenate([sc.errors for sc in result.scores])
    low_error, error_span = float(errors.min()), float(np.ptp(errors)) or 1.0
    delta = result.aic - float(np.min(result.aic))
    aic_span = float(delta.max()) or 1.0
    ax.plot(ranks, low_error + delta * (error_span / aic_span), "--^", color="C5", ms=4,
            lw=1, label="ΔAIC (right axis): of the stable\nranks, the lowest is recommended")
    if result.reference is not None:
        ax.plot([], [], " ", label=f"ΔAIC of k = {result.reference[0]} (not a\n"
                                   f"candidate): {result.reference[1] - np.min(result.aic):+.4g}")
    right = ax.secondary_yaxis(
        "right", functions=(lambda y: (y - low_error) * (aic_span / error_span),
                            lambda d: low_error + d * (error_span / aic_span)))
    right.set_ylabel("ΔAIC = AIC − min (lower: better fit\nonce the parameters are counted)",
                     fontsize=9, color="C5")
    right.tick_params(labelsize=8, colors="C5")
    return right


def plot_rank_estimate(result, figsize=(9, 7)):
    """Four panels that justify a recommended rank.

    (a) the reconstruction error of every restart and the best one against
    the number of components, with the knee (if it has one), and (right
    axis) Akaike's information criterion of the best fits relative to its minimum, which
    picks the recommendation among the stable ranks (with that of the rank
    below the candidates in the legend); (b) the silhouettes of the
    component clusters (minimum and mean) with the stability threshold; (c)
    the Iq compactness index of every cluster; (d) the cophenetic correlation
    of the consensus matrix. Every panel has its title, both axes labelled
    (the x axis: the number of components k, ticks at the ranks tried) and
    the recommended rank marked by a red line (named in the legend of (a)).
    The y axis of (a) names the loss (relative Frobenius error, or the KL or
    β-divergence) and whether the data were Poisson-weighted. The figure's
    title names the data (the signal's title, the number of probe positions
    and signal pixels, the restarts per rank), then states the
    recommendation on its own line, then the reason, wrapped.

    Parameters
    ----------
    result : RankEstimate
        From :func:`~hyperspy_hnmf.estimate_rank`.
    figsize : tuple of float

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from hyperspy_hnmf import estimate_rank
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((60, 2)) @ rng.random((2, 30))
    >>> figure = plot_rank_estimate(estimate_rank(X, ranks=[1, 2, 3], n_restarts=2))
    >>> [ax.get_xlabel() for ax in figure.axes][:2]
    ['number of components k', 'number of components k']
    """
    import matplotlib.pyplot as plt

    ranks = np.array(result.ranks)
    figure, axes = plt.subplots(2, 2, figsize=figsize, sharex=True, layout="constrained")
    (ax_err, ax_sil), (ax_iq, ax_coph) = axes
    for r, sc in zip(ranks, result.scores):
        ax_err.plot(np.full(sc.errors.size, r), sc.errors, ".", color="0.65", ms=4, zorder=1)
        ax_iq.plot(np.full(sc.iq.size, r), sc.iq, "o", color="C2", ms=4, alpha=0.7)
    ax_err.plot([], [], ".", color="0.65", label="each restart")
    ax_err.plot(ranks, result.errors, "-o", color="C0", ms=4, label="best of the restarts")
    if result.knee_rank is not None:  # (None: fewer than three ranks, or no bend)
        ax_err.plot(result.knee_rank, result.errors[result.ranks.index(result.knee_rank)],
                    "s", mfc="none", mec="C3", ms=11, mew=1.5,
                    label=f"knee (k = {result.knee_rank})")
    ax_err.axvline(result.rank, color="C3", lw=1, alpha=0.5,
                   label=f"recommended (k = {result.rank})")
    ax_err.set_title("(a) reconstruction error", fontsize=9)
    ax_err.set_ylabel(_error_label(result), fontsize=9)
    if result.aic is not None:
        _plot_aic(ax_err, ranks, result)
    ax_err.legend(fontsize=7)
    ax_sil.plot(ranks, result.min_silhouettes, "-o", color="C1", ms=4,
                label="minimum over clusters")
    ax_sil.plot(ranks, result.mean_silhouettes, "--", color="C1", alpha=0.6, label="mean")
    ax_sil.axhline(result.silhouette_threshold, color="0.5", lw=0.8, ls=":",
                   label=f"stability threshold {result.silhouette_threshold:g}")
    ax_sil.set_title("(b) stability over restarts", fontsize=9)
    ax_sil.set_ylabel("silhouette", fontsize=9)
    ax_sil.set_ylim(min(-0.1, np.nanmin(result.min_silhouettes) - 0.05), 1.05)
    ax_sil.legend(fontsize=8, loc="lower left")
    ax_iq.set_title("(c) compactness of each component cluster", fontsize=9)
    ax_iq.set_ylabel("Iq (ICASSO; 1 = stable)", fontsize=9)
    ax_iq.set_ylim(min(0.0, min(np.min(sc.iq) for sc in result.scores) - 0.05), 1.05)
    ax_coph.plot(ranks, result.cophenetic, "-o", color="C4", ms=4)
    ax_coph.set_title("(d) consensus of the clusterings", fontsize=9)
    ax_coph.set_ylabel("cophenetic correlation", fontsize=9)
    pad = 0.5 if len(ranks) > 1 else 1.0
    for ax in axes.ravel()[1:]:
        ax.axvline(result.rank, color="C3", lw=1, alpha=0.5)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        ax.set_xlabel("number of components k", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xticks(ranks)
        ax.set_xlim(ranks.min() - pad, ranks.max() + pad)
        ax.tick_params(labelbottom=True)
    reason = textwrap.fill(result.reason, 90)
    lines = [_data_line(result), f"Recommended number of components: k = {result.rank}",
             reason]
    figure.suptitle("\n".join(line for line in lines if line), fontsize=9)
    return figure
