"""The figure of a rank estimate (matplotlib only)."""

import textwrap

import numpy as np


def plot_rank_estimate(result, figsize=(9, 6.5)):
    """Error curve with knee, silhouettes, Iq per cluster and cophenetic correlation."""
    import matplotlib.pyplot as plt

    ranks = np.array(result.ranks)
    figure, axes = plt.subplots(2, 2, figsize=figsize, sharex=True)
    (ax_err, ax_sil), (ax_iq, ax_coph) = axes
    for r, sc in zip(ranks, result.scores):
        ax_err.plot(np.full(sc.errors.size, r), sc.errors, ".", color="0.7", ms=4, zorder=1)
        ax_iq.plot(np.full(sc.iq.size, r), sc.iq, "o", color="C2", ms=4, alpha=0.7)
    ax_err.plot(ranks, result.errors, "-o", color="C0", ms=4, label="best of the restarts")
    ax_err.plot(result.knee_rank, result.errors[result.ranks.index(result.knee_rank)], "s",
                mfc="none", mec="C3", ms=11, mew=1.5, label=f"knee (k={result.knee_rank})")
    ax_err.set_ylabel("relative error" if result.settings.get("compressed") or
                      result.settings.get("options", {}).get("loss", "frobenius") == "frobenius"
                      else "objective")
    ax_err.legend(fontsize=8)
    ax_sil.plot(ranks, result.min_silhouettes, "-o", color="C1", ms=4, label="min over clusters")
    ax_sil.plot(ranks, result.mean_silhouettes, "--", color="C1", alpha=0.6, label="mean")
    ax_sil.axhline(result.silhouette_threshold, color="0.5", lw=0.8, ls=":",
                   label=f"threshold {result.silhouette_threshold:g}")
    ax_sil.set_ylabel("silhouette")
    ax_sil.set_ylim(min(-0.1, np.nanmin(result.min_silhouettes) - 0.05), 1.05)
    ax_sil.legend(fontsize=8)
    ax_iq.set_ylabel("Iq per cluster")
    ax_iq.set_ylim(min(0.0, min(np.min(sc.iq) for sc in result.scores) - 0.05), 1.05)
    ax_coph.plot(ranks, result.cophenetic, "-o", color="C4", ms=4)
    ax_coph.set_ylabel("cophenetic correlation")
    for ax in axes.ravel():
        ax.axvline(result.rank, color="C3", lw=1, alpha=0.5)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("rank k")
        ax.set_xticks(ranks)
    title = textwrap.fill(f"recommended k = {result.rank}: {result.reason}", 95)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.035 * (title.count("\n") + 1)))
    return figure
