"""``uncertainty``: bootstrap confidence intervals of an hnmf decomposition (HyperSpy layer).

The arithmetic is :func:`hyperspy_hnmf.solvers.bootstrap_nmf`; this module
reads the reference fit from ``learning_results`` (written by
``s.decomposition(algorithm="hnmf", ...)``), the signal's matrix (lazy
signals chunk by chunk) and returns the intervals as HyperSpy signals.
Everything that would make the intervals wrong is refused, with the reason,
before any resample is drawn (see :func:`uncertainty`).
"""

import numpy as np

from .._checks import looks_like_counts
from ..matrix import as_row_chunks
from ..solvers import MissingEntries, bootstrap_nmf
from ..solvers._bootstrap import LIFT
from .results import check_stamp

__all__ = ["REFIT_SOLVERS", "Uncertainty", "uncertainty"]

_HOW_TO_FIT = ("Run s.decomposition(algorithm='hnmf', output_dimension=k) first (after "
               "`import hyperspy_hnmf`), then hyperspy_hnmf.uncertainty(s).")

#: The solver that refits the resamples, for each solver of the reference fit
#: (the same one, except ``"randomized"``: its compression step needs its own
#: initialization and its exact refinement is HALS on the same Frobenius loss,
#: which the refits, started from the fit, run directly).
REFIT_SOLVERS = {"mu": "mu", "hals": "hals", "als": "als", "randomized": "hals"}

#: The name HyperSpy gives the component axis of the loadings and factors.
COMPONENT_AXIS_NAME = "Decomposition component index"


class Uncertainty:
    """Bootstrap intervals of a decomposition, as HyperSpy signals.

    Attributes
    ----------
    loadings_lower, loadings_upper : hyperspy signal
        Lower and upper bounds of every map, shaped like
        ``s.get_decomposition_loadings()`` (navigation axes of ``s`` as
        signal axes, one entry per component), in counts.
    loadings_width : hyperspy signal
        ``loadings_upper - loadings_lower``.
    factors_lower, factors_upper : hyperspy signal
        Lower and upper bounds of every component, shaped like
        ``s.get_decomposition_factors()`` (components sum to one).
    stability : ndarray, shape (k,)
        Median correlation of every resampled component with the reference
        one it was matched to (1: found again in every resample).
    method, confidence, interval, n_resamples
        The settings of the bootstrap.
    result : hyperspy_hnmf.solvers.BootstrapResult
        The arrays (resampled correlations, seeds, samples if kept).

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(10, 10), detector_shape=(16, 16), n_phases=1,
    ...                      n_rotations=1)
    >>> s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False)
    >>> u = hyperspy_hnmf.uncertainty(s, n_resamples=5, random_state=0, show_progressbar=False)
    >>> u
    <Uncertainty: 2 components, 5 poisson resamples, 90 % hybrid intervals>
    >>> u.summary().splitlines()[1].split()[:2]
    ['component', 'stability']
    """

    def __init__(self, signal, result):
        self.result = result
        self.method = result.method
        self.confidence = result.confidence
        self.interval = result.interval
        self.n_resamples = result.n_resamples
        percent = f"{100 * result.confidence:g} %"
        self.loadings_lower = _loadings(signal, result.W_lower, f"lower {percent} bound of the maps")
        self.loadings_upper = _loadings(signal, result.W_upper, f"upper {percent} bound of the maps")
        self.loadings_width = _loadings(signal, result.W_upper - result.W_lower,
                                        f"width of the {percent} interval of the maps")
        self.factors_lower = _factors(signal, result.H_lower,
                                      f"lower {percent} bound of the components")
        self.factors_upper = _factors(signal, result.H_upper,
                                      f"upper {percent} bound of the components")

    @property
    def stability(self):
        """Median match correlation of every component over the resamples."""
        return self.result.stability

    def summary(self):
        """A table: per component, its stability and the median relative width of its map interval.

        Returns
        -------
        str
        """
        result = self.result
        width = result.W_upper - result.W_lower
        scale = np.maximum(np.median(result.W, axis=0), np.finfo(float).tiny)
        lines = [f"Bootstrap of the hnmf decomposition: {self.n_resamples} resamples "
                 f"({self.method}), {100 * self.confidence:g} % {self.interval} intervals, "
                 f"{result.n_iter} iterations per refit",
                 f"{'component':>9}  {'stability':>9}  {'map r':>6}  {'median width':>12}  "
                 f"{'width / median map':>18}"]
        map_r = np.median(result.map_correlation, axis=0)
        for j in range(result.W.shape[1]):
            median_width = float(np.median(width[:, j]))
            lines.append(f"{j:>9d}  {self.stability[j]:>9.3f}  {map_r[j]:>6.3f}  "
                         f"{median_width:>12.4g}  {median_width / scale[j]:>18.3f}")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def __repr__(self):
        return (f"<Uncertainty: {len(self.stability)} components, {self.n_resamples} "
                f"{self.method} resamples, {100 * self.confidence:g} % {self.interval} "
                "intervals>")


def _loadings(signal, array, title):
    result = signal._get_loadings(np.asarray(array, dtype=np.float32))
    result.axes_manager._axes[0].name = COMPONENT_AXIS_NAME  # as get_decomposition_loadings
    result.metadata.General.title = title
    return result


def _factors(signal, array, title):
    result = signal._get_factors(np.ascontiguousarray(np.asarray(array, dtype=np.float32).T))
    result.axes_manager._axes[0].name = COMPONENT_AXIS_NAME  # as get_decomposition_factors
    result.metadata.General.title = title
    return result


def _reference(signal):
    """Maps, components and the fit settings of the hnmf decomposition in ``learning_results``."""
    results = signal.learning_results
    if results.decomposition_algorithm is None or results.loadings is None:
        raise ValueError(f"This signal has no decomposition to bootstrap. {_HOW_TO_FIT}")
    if str(results.decomposition_algorithm) != "hnmf":
        raise ValueError(
            f"The decomposition in learning_results was made by "
            f"algorithm={results.decomposition_algorithm!r}; uncertainty bootstraps "
            f"decompositions made with algorithm='hnmf' only. {_HOW_TO_FIT}")
    info = check_stamp(signal)
    kind = (info.get("hierarchy") or {}).get("kind", "flat")
    if kind != "flat":
        raise ValueError(
            f"This signal's hnmf decomposition is hierarchical ({kind!r}); uncertainty "
            "bootstraps flat decompositions (output_dimension=k, no hierarchy) only.")
    if (info.get("constraints") or {}).get("summary"):
        raise ValueError("This signal's hnmf decomposition has constraints; uncertainty "
                         "bootstraps unconstrained decompositions only. Refit without "
                         "constraints to get intervals.")
    _check_known(info)
    for name in ("navigation_mask", "signal_mask"):
        if getattr(results, name, None) is not None:
            raise ValueError(f"The decomposition was made with a {name}; uncertainty needs "
                             "the whole data. Crop the signal (s.inav[...], s.isig[...]) and "
                             "decompose it again instead of masking.")
    if getattr(results, "poissonian_noise_normalized", False):
        raise ValueError("The decomposition was made with normalize_poissonian_noise=True; "
                         "uncertainty resamples counts with the fitted model. Decompose with "
                         "loss='kl' (the Poisson likelihood) instead.")
    return (np.asarray(results.loadings), np.ascontiguousarray(np.asarray(results.factors).T),
            info)


def _check_known(info):
    """Refuse fits with known components or pure regions (their refits would drop them)."""
    known = info.get("known_components") or {}
    regions = info.get("pure_regions") or {}
    if not known and not regions:
        return
    held, lost = [], []
    if known:
        held.append("known component(s) " + ", ".join(
            f"{known[key].get('name')!r} (component {known[key].get('index')})"
            for key in sorted(known, key=int)))
        lost.append("the known patterns would be refitted freely")
    if regions:
        held.append("pure region(s) of component(s) " + ", ".join(
            str(regions[key].get("index")) for key in sorted(regions, key=int)))
        lost.append("the other components' maps would leave 0 in the pure regions")
    raise ValueError(
        f"This signal's hnmf decomposition was fitted with {' and '.join(held)}. uncertainty "
        f"refits every resample without them ({'; '.join(lost)}), so its intervals would not "
        "be those of this fit; it bootstraps unconstrained decompositions only. Decompose "
        "without known_components and pure_regions to get intervals of the unconstrained fit.")


def _refit_options(info):
    """The loss (β) and solver of the refits, or the reason the fit cannot be refitted."""
    beta = float(info["beta"])
    if beta <= 0:
        raise ValueError(
            f"This signal's hnmf decomposition uses the loss with β={beta:g}"
            f"{' (Itakura-Saito)' if beta == 0 else ''}, which is undefined where the data are "
            "zero; Poisson resamples of counts have zeros wherever the expected count is "
            "small, so they cannot be refitted with it. uncertainty bootstraps fits with "
            "β > 0: decompose with loss='kl' (counts) to get intervals.")
    solver = str(info["solver"])
    if solver not in REFIT_SOLVERS:
        raise ValueError(f"This signal's hnmf decomposition was fitted with solver={solver!r}, "
                         f"which uncertainty cannot refit; it refits fits made with "
                         f"{', '.join(repr(name) for name in REFIT_SOLVERS)}.")
    return beta, REFIT_SOLVERS[solver]


def _check_counts(X):
    """Refuse data that are not counts: both resampling schemes draw Poisson counts."""
    if not looks_like_counts(X):
        raise ValueError(
            "uncertainty resamples counted electrons (Poisson noise), but this signal's data "
            "are not integer counts (not every value is a whole number; a lazy signal is "
            "judged by its dtype, or by its first chunk for floating data), so Poisson "
            "resamples would not have their noise and the intervals would be wrong. Convert "
            "the data to electron counts (e.g. subtract the detector offset, divide by the "
            "counts per electron and round), decompose again, then bootstrap.")


def _outliers(info):
    """The outliers a robust fit left out, as missing entries of the data, or None.

    A robust fit (``outliers=...``) fits its outliers (entries, dead and hot
    channels) as missing data; :func:`~hyperspy_hnmf.solvers.bootstrap_nmf`
    with ``missing=`` resamples the data with them replaced by the fitted
    model, so they stay out of every resample as they are out of the fit.
    """
    outliers = info.get("outliers")
    if not outliers:
        return None
    channels = np.union1d(np.asarray(outliers["dead_channels"], dtype=np.int64),
                          np.asarray(outliers["hot_channels"], dtype=np.int64))
    return MissingEntries(np.asarray(outliers["navigation_index"], dtype=np.int64),
                          np.asarray(outliers["signal_index"], dtype=np.int64), channels)


def _matrix(signal):
    n_nav = int(np.prod(signal.axes_manager.navigation_shape)) or 1
    if signal._lazy:
        return as_row_chunks(signal.data, signal.axes_manager.signal_dimension)
    if not signal.axes_manager.axes_are_aligned_with_data:
        raise ValueError("The signal's axes are not in data order; call s.transpose() so that "
                         "the navigation axes come first.")
    return signal.data.reshape(n_nav, -1)


def uncertainty(s, n_resamples=50, method="poisson", confidence=0.9, random_state=None, *,
                interval="hybrid", max_iter=20, tol=0.0, lift=LIFT, keep_samples=False,
                show_progressbar=None, print_info=False):
    """Bootstrap confidence intervals of the maps and components of an hnmf decomposition.

    Every resample of the counts is fitted again from the decomposition in
    ``s.learning_results`` (a warm start with the maps lifted off zero,
    ``max_iter`` iterations of the solver and loss of that fit), its
    components matched to the reference
    ones (Hungarian assignment on their correlation) and scaled like them
    (components sum to one, maps in counts). Quantiles of the resampled
    maps and components give per-pixel and per-channel intervals (by default
    the basic bootstrap interval, which subtracts the bias of the fit that the
    resamples reproduce, with the resamples' upper quantile as least upper
    bound; see :func:`hyperspy_hnmf.solvers.bootstrap_interval`).
    The intervals describe the noise of the counts given the model: where
    the factorization is not unique (e.g. a component present at every probe
    position), the bias of the fit itself is not in them.
    Lazy signals are resampled chunk by chunk inside every pass: a resample
    never sits in memory whole, and it is the same whatever the chunks.

    Supported fits: flat ``algorithm="hnmf"`` decompositions of counts
    (integer values) with a loss of β > 0 (``"kl"``, ``"frobenius"``, a real
    β > 0) by any solver; ``solver="randomized"`` fits are refitted by exact
    HALS on the same Frobenius loss (:data:`REFIT_SOLVERS`), and robust fits
    (``outliers=...``) with their outliers, dead and hot channels replaced by
    the fitted model, as the fit itself treats them, so no resample holds
    them. Everything else is refused with the reason before any resample is
    drawn (see Raises).

    Parameters
    ----------
    s : hyperspy signal
        Decomposed with ``s.decomposition(algorithm="hnmf", output_dimension=k)``
        (flat, no masks, no constraints, no known components or pure regions,
        no Poisson normalization, a loss with β > 0), holding counts.
    n_resamples : int, default 50
    method : {"poisson", "nonparametric"}, default "poisson"
        ``"poisson"`` (parametric): counts redrawn from the fitted model,
        ``X* ~ Poisson(loadings @ factors.T)``. ``"nonparametric"``: the
        recorded electrons resampled with replacement, ``X* ~ Poisson(X)``
        (needs no model; after a robust fit, ``X`` with its outliers replaced
        by the model). Both assume counted electrons.
    confidence : float, default 0.9
        Nominal coverage of the two-sided intervals.
    random_state : None, int or numpy.random.Generator
        Seed of the resamples (the same seed gives the same intervals, lazy
        or not).
    interval : {"hybrid", "basic", "percentile"}, default "hybrid"
        ``"basic"``: ``[2 fit - q_hi, 2 fit - q_lo]`` clipped at 0, with
        ``q_lo, q_hi`` the resamples' quantiles; ``"percentile"``:
        ``[q_lo, q_hi]``; ``"hybrid"``: the basic interval with an upper
        bound of at least ``q_hi`` (the basic one is ``[0, 0]`` wherever the
        fit is 0). Entries below 1e-6 of a component's largest value count
        as zeros. Probe positions with no count get the exact Poisson upper
        bound (3.0 electrons at 90 %).
    max_iter : int, default 20
        Iterations of every refit. 50 resamples then cost about
        ``1000 / n_iter`` fits of ``n_iter`` iterations.
    tol : float, default 0
        Stopping tolerance of the refits (0: run ``max_iter``).
    lift : float, default 0.1
        The refits start from the reference maps raised to at least ``lift``
        × their mean (0: from the reference itself, whose zeros no refit of
        ``max_iter`` multiplicative updates would leave).
    keep_samples : bool, default False
        Keep every resampled fit (``result.result.W_samples``, ``H_samples``).
    show_progressbar : bool or None
        None follows HyperSpy's preferences.
    print_info : bool, default False
        Print the summary table.

    Returns
    -------
    Uncertainty
        ``loadings_lower``, ``loadings_upper``, ``loadings_width``,
        ``factors_lower``, ``factors_upper`` (HyperSpy signals), ``stability``
        (per component) and ``summary()``.

    Raises
    ------
    ValueError
        With the reason, before any resample is drawn, if ``s`` has no
        ``algorithm="hnmf"`` decomposition or a hierarchical one, one with
        constraints, known components or pure regions (the refits would drop
        them), masks or Poisson normalization, a loss with β ≤ 0
        (Itakura-Saito: undefined at the zeros of the resamples), or if its
        data are not counts (in memory: every value is checked; lazy: the
        dtype, or the first chunk of floating data).

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(12, 12), detector_shape=(16, 16), n_phases=1,
    ...                      n_rotations=1)
    >>> s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False,
    ...                 show_progressbar=False)
    >>> u = hyperspy_hnmf.uncertainty(s, n_resamples=10, random_state=0,
    ...                               show_progressbar=False)
    >>> u.loadings_lower.data.shape, u.factors_upper.data.shape
    ((2, 12, 12), (2, 16, 16))
    >>> bool((u.loadings_lower.data <= u.loadings_upper.data).all())
    True
    """
    from .decomposition import _show_progressbar

    W, H, info = _reference(s)
    beta, solver = _refit_options(info)
    X = _matrix(s)
    _check_counts(X)
    bar = callback = None
    if _show_progressbar(show_progressbar):
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n_resamples), desc="bootstrap", unit="resample")

        def callback(index):
            bar.update(1)
    try:
        result = bootstrap_nmf(X, W, H, loss=beta, solver=solver,
                               method=method, n_resamples=n_resamples, confidence=confidence,
                               interval=interval, max_iter=max_iter, tol=tol, lift=lift,
                               random_state=random_state,
                               keep_samples=keep_samples, callback=callback,
                               missing=_outliers(info))
    finally:
        if bar is not None:
            bar.close()
    out = Uncertainty(s, result)
    if print_info:
        print(out.summary())
    return out
