"""Bootstrap of a fitted NMF: confidence intervals of the maps and components (arrays only).

Each resample of the data is drawn chunk by chunk, inside the pass that reads
the chunk, from one seed per probe position (row): a resample does not
depend on how the rows are chunked, on the order the chunks are read or on
the worker, and data read in passes (dask) are never resampled whole. Each
resample is fitted from the reference fit (a warm start) by the solver of the
reference fit, for a few iterations, through the shared loops
(:func:`~hyperspy_hnmf.solvers.nmf` in memory,
:func:`~hyperspy_hnmf.solvers.streaming_nmf` in passes). The warm start
lifts the reference maps off zero (``lift``, :data:`LIFT`): multiplicative
updates cannot move an entry away from their floor (1e-16) in a few
iterations, so a refit started from a zero map would keep it zero whatever
its resample says. Its components are
matched to the reference components (Hungarian assignment on their
correlation) and scaled as the reference (components sum to one, maps carry
the counts). Quantiles of the resampled maps and components give the
intervals (:func:`bootstrap_interval`): by default the ``"hybrid"``
interval, the basic bootstrap interval (which corrects for the bias of the fit
that the resamples show) with the resamples' upper quantile as the least upper
bound (the basic interval collapses to ``[0, 0]`` where the fit is 0).
Probe positions that recorded no electron resample to nothing: their upper
bound is the exact Poisson one (:func:`empty_row_bound`).

Two resampling schemes:

``"poisson"`` (parametric)
    ``X* ~ Poisson(W H)``: new counts drawn from the fitted model. Every
    entry, including those recorded as zero, is redrawn with the model's
    expectation.
``"nonparametric"``
    ``X* ~ Poisson(X)``: the recorded electrons resampled with replacement
    (the Poisson bootstrap: each electron event is kept a Poisson(1) number of
    times, the large-sample limit of drawing the events with replacement).
    It uses no model, so it stays valid where the model is wrong, but it can
    only resample counts that were recorded.

Both assume counted (Poisson) data.

Missing entries (``missing=``: the outliers of a robust fit, or any
:class:`~hyperspy_hnmf.solvers.MissingEntries`) are resampled as the fit
treated them: every chunk is read with them replaced by the reference model
``W H`` before it is resampled, so no resample holds what was recorded there
(a cosmic-ray hit, a dead channel) and the recorded values there do not
change the result.
"""

from dataclasses import dataclass
from functools import partial

import numba
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from .._checks import check_finite, check_nonnegative
from ..matrix import ArrayMatrix, StreamedMatrix, as_data_matrix, is_chunked, is_sparse
from ..matrix.streamed import views_matrix
from ._linalg import as_generator
from ._passes import MissingEntries, fill_missing
from ._robust import Outliers

__all__ = ["INTERVALS", "LIFT", "METHODS", "ZERO_TOLERANCE", "BootstrapResult", "PoissonResampler",
           "bootstrap_interval", "bootstrap_nmf", "empty_row_bound", "match_components"]

#: Resampling schemes of :func:`bootstrap_nmf`.
METHODS = ("poisson", "nonparametric")

#: Interval types of :func:`bootstrap_interval`.
INTERVALS = ("hybrid", "basic", "percentile")

#: Default warm start of the refits of :func:`bootstrap_nmf`: every map entry
#: starts at ≥ ``LIFT`` × the mean of its component's reference map, so that a
#: refit can find a small positive value its resample supports where the
#: reference is 0 (measured: 0.01 and 0.1 give the same coverage; 0 leaves
#: every such entry 0 in every refit).
LIFT = 0.1

#: Entries of a fit below this fraction of their component's largest value are
#: numerical zeros: multiplicative updates keep every entry ≥ ``MU_FLOOR`` and
#: approach a zero only geometrically, so an absent component's map sits at
#: 1e-16 to 1e-7 counts instead of 0. :func:`bootstrap_nmf` rounds them to 0
#: (fit and resamples) before forming the intervals, so that a true zero can
#: lie inside them.
ZERO_TOLERANCE = 1e-6

_MASK64 = (1 << 64) - 1


def row_seeds(seed, start, n_rows):
    """One 32-bit seed per row ``start, ..., start + n_rows - 1`` (splitmix64 of seed and row).

    Examples
    --------
    >>> row_seeds(7, 10, 3).tolist() == row_seeds(7, 0, 13)[10:].tolist()
    True
    """
    rows = np.arange(start, start + n_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (rows + np.uint64(int(seed) & _MASK64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(0xD1B54A32D192ED03))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(32)).astype(np.uint32)


_KERNEL = dict(parallel=True, cache=True, nogil=True)


@numba.njit(**_KERNEL)
def _poisson_values(values, seeds, out):
    """``out[i, j] ~ Poisson(values[i, j])``, row ``i`` drawn from ``seeds[i]``."""
    for i in numba.prange(values.shape[0]):
        np.random.seed(seeds[i])
        for j in range(values.shape[1]):
            lam = values[i, j]
            out[i, j] = np.random.poisson(lam) if lam > 0 else 0


@numba.njit(**_KERNEL)
def _poisson_csr_values(indptr, data, seeds, out):
    """The same for the stored entries of CSR rows."""
    for i in numba.prange(indptr.size - 1):
        np.random.seed(seeds[i])
        for p in range(indptr[i], indptr[i + 1]):
            lam = data[p]
            out[p] = np.random.poisson(lam) if lam > 0 else 0


@numba.njit(**_KERNEL)
def _poisson_model(W, H, seeds, out):
    """``out[i, j] ~ Poisson((W H)[i, j])``, row ``i`` drawn from ``seeds[i]``."""
    k = W.shape[1]
    for i in numba.prange(W.shape[0]):
        np.random.seed(seeds[i])
        for j in range(H.shape[1]):
            lam = 0.0
            for c in range(k):
                lam += W[i, c] * H[c, j]
            out[i, j] = np.random.poisson(lam) if lam > 0 else 0


@numba.njit(**_KERNEL)
def _poisson_model_count(W, H, seeds, counts):
    k = W.shape[1]
    for i in numba.prange(W.shape[0]):
        np.random.seed(seeds[i])
        count = 0
        for j in range(H.shape[1]):
            lam = 0.0
            for c in range(k):
                lam += W[i, c] * H[c, j]
            if lam > 0 and np.random.poisson(lam) > 0:
                count += 1
        counts[i + 1] = count


@numba.njit(**_KERNEL)
def _poisson_model_fill(W, H, seeds, indptr, indices, data):
    k = W.shape[1]
    for i in numba.prange(W.shape[0]):
        np.random.seed(seeds[i])
        p = indptr[i]
        for j in range(H.shape[1]):
            lam = 0.0
            for c in range(k):
                lam += W[i, c] * H[c, j]
            if lam > 0:
                value = np.random.poisson(lam)
                if value > 0:
                    indices[p] = j
                    data[p] = value
                    p += 1


class PoissonResampler:
    """Draws one bootstrap resample of a row chunk: ``resampler(chunk, start)``.

    Row ``i`` of the data is always drawn from the same seed (derived from
    ``seed`` and ``i``), so a resample is the same whatever the chunks, their
    order or the worker; data read in passes are resampled chunk by chunk
    inside each pass (:meth:`~hyperspy_hnmf.matrix.StreamedMatrix.resampled`).

    Parameters
    ----------
    method : {"poisson", "nonparametric"}
        ``"poisson"``: ``Poisson(W H)``; ``"nonparametric"``: ``Poisson(X)``.
    seed : int
    W : ndarray, shape (n, k), optional
        Maps of the model (``"poisson"``).
    H : ndarray, shape (k, m), optional
        Components of the model (``"poisson"``).

    Examples
    --------
    >>> draw = PoissonResampler("nonparametric", seed=3)
    >>> X = np.full((4, 5), 10.0, dtype=np.float32)
    >>> whole = draw(X, 0)
    >>> bool(np.array_equal(whole[2:], draw(X[2:], 2))), whole.dtype
    (True, dtype('float32'))
    >>> model = PoissonResampler("poisson", 3, W=np.ones((4, 1)), H=np.full((1, 5), 10.0))
    >>> model(X, 0).shape
    (4, 5)
    """

    def __init__(self, method, seed, W=None, H=None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        if method == "poisson" and (W is None or H is None):
            raise ValueError("The parametric (method='poisson') resampler needs the model W, H.")
        self.method = method
        self.seed = int(seed)
        self.W = None if W is None else np.ascontiguousarray(W, dtype=np.float64)
        self.H = None if H is None else np.ascontiguousarray(H, dtype=np.float64)

    def __call__(self, chunk, start):
        n = chunk.shape[0]
        seeds = row_seeds(self.seed, start, n)
        if self.method == "nonparametric":
            if sp.issparse(chunk):
                chunk = chunk.tocsr()
                data = np.empty_like(chunk.data)
                _poisson_csr_values(chunk.indptr, chunk.data, seeds, data)
                out = sp.csr_matrix((data, chunk.indices, chunk.indptr), shape=chunk.shape)
                out.eliminate_zeros()
                return out
            values = np.ascontiguousarray(chunk)
            out = np.empty_like(values)
            _poisson_values(values, seeds, out)
            return out
        W = self.W[start:start + n]
        if sp.issparse(chunk):  # sparse data stay sparse: memory ∝ the resampled counts
            counts = np.zeros(n + 1, dtype=np.int64)
            _poisson_model_count(W, self.H, seeds, counts)
            indptr = np.cumsum(counts)
            indices = np.empty(indptr[-1], dtype=np.int32)
            data = np.empty(indptr[-1], dtype=chunk.dtype)
            _poisson_model_fill(W, self.H, seeds, indptr, indices, data)
            return sp.csr_matrix((data, indices, indptr), shape=chunk.shape)
        out = np.empty(chunk.shape, dtype=chunk.dtype)
        _poisson_model(W, self.H, seeds, out)
        return out


def bootstrap_interval(samples, estimate, confidence=0.9, interval="hybrid", atol=0.0):
    """Two-sided bootstrap interval of every entry of a nonnegative estimate.

    Entries of ``samples`` and ``estimate`` at or below ``atol`` are taken
    as zeros first (the numerical floor of the solver).

    With ``q_lo`` and ``q_hi`` the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled estimates ``θ*`` and
    ``θ̂`` the estimate:

    ``"basic"`` (reverse percentile)
        ``[2 θ̂ - q_hi, 2 θ̂ - q_lo]``, clipped at 0. It assumes that the
        estimate errs about the truth as the resamples err about the
        estimate (``θ̂ - θ ≈ θ* - θ̂`` in distribution), so a bias of the
        fit that the resamples reproduce is subtracted instead of added. At
        an estimate of 0 it is ``[0, 0]``.
    ``"percentile"``
        ``[q_lo, q_hi]``: the spread of the resamples, placed where they
        are. Calibrated only for an unbiased estimate.
    ``"hybrid"`` (default)
        ``[max(2 θ̂ - q_hi, 0), max(2 θ̂ - q_lo, q_hi)]``: the basic
        interval, with an upper bound never below the resamples' own upper
        quantile. The reflection of the basic interval fails at the
        boundary of the parameter space: where the estimate is 0 (or nearly)
        and some resamples find the component, the reflected interval is
        ``[0, 0]`` although the resamples show that the data allow values
        up to ``q_hi``. Away from the boundary (``q_hi - θ̂ ≤ θ̂ - q_lo``,
        e.g. a symmetric spread) it is the basic interval.

    Parameters
    ----------
    samples : ndarray, shape (n_resamples, ...)
        The resampled estimates.
    estimate : ndarray, shape (...)
        The estimate from the data (the reference fit).
    confidence : float, default 0.9
    interval : {"hybrid", "basic", "percentile"}, default "hybrid"
    atol : float or ndarray broadcasting to ``estimate``, default 0
        Values at or below it are zeros.

    Returns
    -------
    lower, upper : ndarray, shape (...)
        Nonnegative bounds, ``lower <= upper``.

    Examples
    --------
    >>> samples = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    >>> lower, upper = bootstrap_interval(samples, np.array([1.0, 6.0]), 0.5, "basic")
    >>> lower.tolist(), upper.tolist()
    ([0.0, 5.5], [0.5, 6.5])
    >>> bootstrap_interval(samples, np.array([1.0, 6.0]), 0.5)[1].tolist()  # hybrid
    [2.5, 6.5]
    >>> [b.tolist() for b in bootstrap_interval(samples, np.array([1.0, 6.0]), 0.5,
    ...                                         interval="percentile")]
    [[1.5, 5.5], [2.5, 6.5]]
    >>> at_zero = np.array([[0.0], [0.0], [0.0], [2.0]])  # the fit is 0, one resample finds 2
    >>> [bootstrap_interval(at_zero, np.zeros(1), 0.9, kind)[1].round(3).tolist()
    ...  for kind in ("basic", "hybrid")]
    [[0.0], [1.7]]
    >>> [b.tolist() for b in bootstrap_interval(np.full((3, 1), 1e-16), np.array([2e-14]),
    ...                                         atol=1e-6)]
    [[0.0], [0.0]]
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS} ('hybrid': bias-corrected "
                         f"with the resamples' upper quantile as least upper bound, 'basic': "
                         f"bias-corrected, 'percentile': the resamples' quantiles), "
                         f"got {interval!r}.")
    samples = np.asarray(samples)
    estimate = np.asarray(estimate, dtype=np.float64)
    if samples.shape[1:] != estimate.shape:
        raise ValueError(f"The samples have shape {samples.shape}: they need shape "
                         f"(n_resamples, *{estimate.shape}) to match the estimate.")
    samples = np.where(samples > atol, samples, 0)
    estimate = np.where(estimate > atol, estimate, 0.0)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    low, high = np.quantile(samples, tails, axis=0)
    if interval == "percentile":
        return low, high
    lower, upper = np.maximum(2 * estimate - high, 0.0), np.maximum(2 * estimate - low, 0.0)
    if interval == "hybrid":
        upper = np.maximum(upper, high)
    return lower, upper


def empty_row_bound(confidence=0.9):
    """Upper bound of the expected counts of a probe position that recorded none.

    A row of zeros resamples to zeros (parametric: its fitted maps are 0;
    nonparametric: there is no electron to redraw), so the bootstrap has
    nothing to spread and gives ``[0, 0]``. The exact Poisson bound does
    not need resamples: with no count recorded, the expected total count
    ``λ`` is at most ``-ln((1 - confidence) / 2)`` at the one-sided level
    ``(1 + confidence) / 2`` (``P(0 counts | λ) = e^{-λ}``), and every map
    (a share of ``λ``) is at most that too. :func:`bootstrap_nmf` raises the
    upper bound of the maps of empty rows to it.

    Examples
    --------
    >>> round(empty_row_bound(0.9), 3)
    2.996
    """
    return float(-np.log((1 - confidence) / 2))


def _unit_rows(A):
    """Rows centred and scaled to unit norm (for Pearson correlations)."""
    A = np.asarray(A, dtype=np.float64)
    A = A - A.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(norms > 0, norms, 1.0)


def match_components(H, H_reference):
    """Permutation of the rows of ``H`` that best matches ``H_reference`` (Hungarian).

    The cost is minus the Pearson correlation of the components; the
    assignment maximizes the total correlation
    (:func:`scipy.optimize.linear_sum_assignment`).

    Parameters
    ----------
    H, H_reference : ndarray, shape (k, m)

    Returns
    -------
    order : ndarray of int, shape (k,)
        ``H[order][j]`` is the match of ``H_reference[j]``.
    correlation : ndarray, shape (k,)
        Correlation of each reference component with its match.

    Examples
    --------
    >>> H = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    >>> order, r = match_components(H[::-1], H)
    >>> order.tolist(), r.round(3).tolist()
    ([1, 0], [1.0, 1.0])
    """
    correlation = _unit_rows(H_reference) @ _unit_rows(H).T
    rows, columns = linear_sum_assignment(-correlation)
    order = columns[np.argsort(rows)]
    return order, correlation[np.arange(len(order)), order]


@dataclass
class BootstrapResult:
    """Intervals of a bootstrapped NMF (see :func:`bootstrap_nmf`).

    Attributes
    ----------
    W, H : ndarray
        The reference fit, scaled so that every component sums to one.
    W_lower, W_upper : ndarray, shape (n, k)
        Lower and upper bounds of the maps (:func:`bootstrap_interval`).
    H_lower, H_upper : ndarray, shape (k, m)
        Lower and upper bounds of the components.
    W_median : ndarray, shape (n, k)
        Median of the resampled maps.
    component_correlation, map_correlation : ndarray, shape (n_resamples, k)
        Correlation of every resampled component (map) with the reference one
        it was matched to.
    stability : ndarray, shape (k,)
        Median of ``component_correlation`` over the resamples: near 1 for a
        component that every resample finds again, lower for one that mixes
        with others.
    method : str
    confidence : float
    interval : str
        ``"hybrid"``, ``"basic"`` or ``"percentile"`` (:func:`bootstrap_interval`).
    n_resamples : int
    n_iter : int
        Iterations of every refit.
    seeds : ndarray of int
        The seed of every resample.
    W_samples, H_samples : ndarray or None
        All resampled maps ``(n_resamples, n, k)`` and components
        ``(n_resamples, k, m)`` (float32), kept with ``keep_samples=True``.
    lift : float
        Warm start of the refits (:func:`bootstrap_nmf`).
    empty_rows : ndarray of bool, shape (n,) or None
        Probe positions that recorded no count; the upper bound of their
        maps is at least ``empty_row_bound(confidence)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W, H = rng.random((30, 2)) * 50, rng.random((2, 20))
    >>> result = bootstrap_nmf(rng.poisson(W @ H), W, H, n_resamples=10, random_state=0)
    >>> result.W_lower.shape, bool(np.all(result.W_lower <= result.W_upper))
    ((30, 2), True)
    >>> result.coverage(result.W).shape
    (2,)
    """

    W: np.ndarray
    H: np.ndarray
    W_lower: np.ndarray
    W_upper: np.ndarray
    H_lower: np.ndarray
    H_upper: np.ndarray
    W_median: np.ndarray
    component_correlation: np.ndarray
    map_correlation: np.ndarray
    method: str
    confidence: float
    n_resamples: int
    n_iter: int
    seeds: np.ndarray
    W_samples: np.ndarray = None
    H_samples: np.ndarray = None
    interval: str = "hybrid"
    lift: float = LIFT
    empty_rows: np.ndarray = None

    @property
    def stability(self):
        """Median correlation of every resampled component with its reference."""
        return np.median(self.component_correlation, axis=0)

    def map_bounds(self, interval=None):
        """Map intervals of another type from the kept resamples (``keep_samples=True``).

        Parameters
        ----------
        interval : {"hybrid", "basic", "percentile"}, optional
            Default: the result's own (then ``W_lower, W_upper``).

        Returns
        -------
        lower, upper : ndarray, shape (n, k)

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> W, H = rng.random((30, 2)) * 50, rng.random((2, 20))
        >>> result = bootstrap_nmf(rng.poisson(W @ H), W, H, n_resamples=10, random_state=0,
        ...                        keep_samples=True)
        >>> bool(np.array_equal(result.map_bounds()[1], result.W_upper))
        True
        """
        if self.W_samples is None:
            raise ValueError("The resamples were not kept: bootstrap again with "
                             "keep_samples=True to form intervals of another type.")
        return _map_bounds(self.W_samples, self.W, self.confidence, interval or self.interval,
                           self.empty_rows)

    def coverage(self, W_true, H_true=None):
        """Fraction of the true maps (and components) inside the intervals, per component.

        The truth must be in the normalisation of the fit: components summing
        to one, maps in counts, in the reference's component order.

        Parameters
        ----------
        W_true : ndarray, shape (n, k)
        H_true : ndarray, shape (k, m), optional

        Returns
        -------
        ndarray, shape (k,), or a pair of them when ``H_true`` is given

        Examples
        --------
        >>> result = BootstrapResult(*(np.ones((2, 1)),) * 7, np.ones((1, 1)), np.ones((1, 1)),
        ...                          "poisson", 0.9, 2, 1, np.zeros(2))
        >>> result.coverage(np.array([[1.0], [2.0]])).tolist()
        [0.5]
        """
        maps = _inside(W_true, self.W_lower, self.W_upper, axis=0)
        if H_true is None:
            return maps
        return maps, _inside(H_true, self.H_lower, self.H_upper, axis=1)


def _inside(truth, lower, upper, axis):
    truth = np.asarray(truth, dtype=np.float64)
    if truth.shape != lower.shape:
        raise ValueError(f"The truth has shape {truth.shape}; the intervals have shape "
                         f"{lower.shape}.")
    return np.mean((truth >= lower) & (truth <= upper), axis=axis)


def _map_bounds(W_samples, W_ref, confidence, interval, empty_rows):
    """Map intervals: zeros rounded (``ZERO_TOLERANCE``), empty rows' exact upper bound."""
    lower, upper = bootstrap_interval(W_samples, W_ref, confidence, interval,
                                      atol=ZERO_TOLERANCE * W_ref.max(axis=0))
    if empty_rows is not None and empty_rows.any():
        upper[empty_rows] = np.maximum(upper[empty_rows], empty_row_bound(confidence))
    return lower, upper


def _check_options(n_resamples, confidence, method, max_iter, interval):
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) \
            or n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer ≥ 2 (50 or more for 90 % intervals), "
                         f"got {n_resamples!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, (float, int, np.floating)) \
            or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number between 0 and 1 (e.g. 0.9 for 90 % "
                         f"intervals), got {confidence!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be 'poisson' (parametric: counts redrawn from the "
                         f"fitted model) or 'nonparametric' (the recorded electrons "
                         f"resampled), got {method!r}.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer ≥ 1, got {max_iter!r}.")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be 'hybrid' (the default: bias-corrected, with the "
                         f"resamples' upper quantile as least upper bound), 'basic' "
                         f"(bias-corrected) or 'percentile' (the resamples' quantiles), "
                         f"got {interval!r}.")


def _reference(W, H, shape):
    n, m = shape
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    if W.ndim != 2 or H.ndim != 2 or W.shape[0] != n or H.shape[1] != m \
            or W.shape[1] != H.shape[0]:
        raise ValueError(f"The reference fit does not match the data: data of shape {shape} "
                         f"need maps W of shape ({n}, k) and components H of shape (k, {m}), "
                         f"got {W.shape} and {H.shape}.")
    for name, factor in (("maps W", W), ("components H", H)):
        check_finite(factor, name=f"The reference {name}")
        check_nonnegative(factor, name=f"the reference {name}", where="bootstrap_nmf")
    sums = H.sum(axis=1)
    if np.any(sums <= 0):
        raise ValueError(f"Reference component(s) {np.flatnonzero(sums <= 0).tolist()} are all "
                         "zero: there is nothing to resample or match. Refit with fewer "
                         "components.")
    return W * sums, H / sums[:, None]


def _missing_entries(missing, shape):
    """``missing`` as :class:`~hyperspy_hnmf.solvers.MissingEntries`, checked against ``shape``."""
    if isinstance(missing, Outliers):
        if tuple(missing.shape) != tuple(shape):
            raise ValueError(f"missing holds the outliers of data of shape "
                             f"{tuple(missing.shape)}; these data have shape {tuple(shape)}. "
                             f"Pass the Outliers that robust_nmf found on these data.")
        missing = MissingEntries(missing.rows, missing.cols, missing.bad_channels)
    n, m = shape
    for name, index, size, axis in (("row", missing.rows, n, "rows"),
                                    ("column", missing.cols, m, "columns"),
                                    ("whole-column", missing.columns, m, "columns")):
        bad = index[(index < 0) | (index >= size)]
        if bad.size:
            raise ValueError(f"missing has {name} index {int(bad[0])} outside the data's {size} "
                             f"{axis} (0 to {size - 1}).")
    return missing


def _read_with_missing(X):
    """The data read in passes, as :func:`~hyperspy_hnmf.solvers.robust_nmf` reads them.

    Arrays in memory become row views (no copy), so that the intervals of
    a robust fit are the same whether its data are in memory or lazy.
    """
    if isinstance(X, ArrayMatrix):
        X = X.array
    if is_sparse(X):
        raise ValueError("missing=... reads the data in passes, as robust_nmf does; these data "
                         "are a sparse matrix in memory. Pass them as a dask array of row "
                         "chunks, or bootstrap without missing.")
    if isinstance(X, StreamedMatrix):
        return X
    return as_data_matrix(X) if is_chunked(X) else views_matrix(np.asarray(X))


class _ModelFilled:
    """``filled(chunk, start)``: a row chunk, its missing entries replaced by the model ``W H``.

    The filled chunk is dense (a sparse chunk's model is) and of the type of
    ``W`` and ``H``.
    """

    def __init__(self, W, H, missing):
        self.W = W
        self.Ht = np.ascontiguousarray(H.T)
        self.missing = missing

    def __call__(self, chunk, start):
        rows = slice(start, start + chunk.shape[0])
        if sp.issparse(chunk):
            chunk = chunk.toarray()
        entries = self.missing.chunk(rows)
        if entries is None:
            return np.asarray(chunk, dtype=self.Ht.dtype)
        return fill_missing(chunk, self.W[rows], self.Ht, entries)


def _draw_filled(filled, draw, chunk, start):
    """A resample of the chunk with its missing entries filled (``draw`` after ``filled``)."""
    return draw(filled(chunk, start), start)


def bootstrap_nmf(X, W, H, *, loss="kl", solver="auto", method="poisson", n_resamples=50,
                  confidence=0.9, interval="hybrid", max_iter=50, tol=0.0, lift=LIFT,
                  random_state=None, keep_samples=False, callback=None, missing=None):
    """Bootstrap confidence intervals of a fitted NMF ``X ≈ W H``.

    Parameters
    ----------
    X : ndarray, scipy.sparse matrix, dask array or data matrix, shape (n, m)
        The counts the reference fit was made on (:func:`~hyperspy_hnmf.matrix.as_data_matrix`).
        Data read in passes are resampled chunk by chunk inside every pass.
    W : ndarray, shape (n, k)
        Reference maps.
    H : ndarray, shape (k, m)
        Reference components (rescaled to sum to one; the maps carry the scale).
    loss, solver
        Those of the reference fit (as in :func:`~hyperspy_hnmf.solvers.nmf`).
    method : {"poisson", "nonparametric"}, default "poisson"
        ``"poisson"``: ``X* ~ Poisson(W H)`` (parametric);
        ``"nonparametric"``: ``X* ~ Poisson(X)``, the recorded electrons
        resampled with replacement.
    n_resamples : int, default 50
    confidence : float, default 0.9
        Nominal coverage of the two-sided intervals.
    interval : {"hybrid", "basic", "percentile"}, default "hybrid"
        ``"basic"``: ``[2 θ̂ - q_hi, 2 θ̂ - q_lo]`` clipped at 0, which
        subtracts the bias of the fit that the resamples reproduce (e.g. a
        map a few counts above a true zero); ``"percentile"``: ``[q_lo, q_hi]``;
        ``"hybrid"``: the basic interval with an upper bound of at least
        ``q_hi`` (it does not collapse to ``[0, 0]`` where the fit is 0)
        (:func:`bootstrap_interval`). Whatever the type, the maps of probe
        positions that recorded no count get the exact Poisson upper bound
        :func:`empty_row_bound`.
    max_iter : int, default 50
        Iterations of every refit, from the reference fit.
    tol : float, default 0
        Stopping tolerance of the refits (0 runs ``max_iter``).
    lift : float, default ``LIFT`` (0.1)
        Warm start of the refits: the reference maps raised to at least
        ``lift`` × the mean of their component's map (the components start
        as the reference). Multiplicative updates keep an entry at 0 (their
        floor, 1e-16) for many more iterations than a refit runs, so with
        ``lift=0`` every refit inherits the zeros of the reference and the
        intervals of a zero map are ``[0, 0]`` even where the resamples
        support a few electrons.
    random_state : None, int or numpy.random.Generator
        Seeds of the resamples.
    keep_samples : bool, default False
        Keep every resampled fit in the result (``n_resamples`` copies of
        the maps and components).
    callback : callable, optional
        ``callback(resample_index)`` after every resample (progress bars).
    missing : Outliers or MissingEntries, optional
        Entries (and whole columns) of ``X`` to treat as missing data, as a
        robust fit does: the :class:`~hyperspy_hnmf.solvers.Outliers` that
        :func:`~hyperspy_hnmf.solvers.robust_nmf` found (its entries, dead and
        hot channels), or a :class:`~hyperspy_hnmf.solvers.MissingEntries`.
        Every chunk is resampled with them replaced by the reference model
        ``W H`` (the fit of a robust fit: its outliers were fitted as missing
        data), so no resample holds the recorded values there and they do
        not change the result. The data are then read in passes, as
        ``robust_nmf`` reads them (arrays in memory as row views, without a
        copy; a scipy.sparse matrix is refused), and the maps of a probe
        position are taken as empty when its filled row is all zero.
        Checked against the data (``TypeError`` for another type,
        ``ValueError`` for another shape or an index outside the data)
        before any resample is drawn.

    Returns
    -------
    BootstrapResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W = np.repeat(np.eye(2) * 200, 20, axis=0) + 20
    >>> H = np.abs(rng.normal(size=(2, 30)))
    >>> X = rng.poisson(W @ (H / H.sum(axis=1, keepdims=True)))
    >>> result = bootstrap_nmf(X, W, H, n_resamples=20, random_state=1)
    >>> result.stability.round(2).tolist()
    [1.0, 1.0]

    The outliers of a robust fit stay out of the resamples: a cosmic-ray hit
    of 5000 counts left out of the fit is left out of every refit.

    >>> from hyperspy_hnmf.solvers import robust_nmf
    >>> X[3, 7] = 5000
    >>> fit, outliers = robust_nmf(X, 2, loss="kl", random_state=0)
    >>> outliers.rows.tolist(), outliers.cols.tolist()
    ([3], [7])
    >>> kept = bootstrap_nmf(X, fit.W, fit.H, method="nonparametric", n_resamples=5,
    ...                      random_state=1, missing=outliers)
    >>> bool(kept.W_upper[3].sum() < 1000)
    True
    """
    from . import nmf
    from ._passes import streaming_nmf

    _check_options(n_resamples, confidence, method, max_iter, interval)
    if isinstance(lift, bool) or not isinstance(lift, (float, int, np.floating)) or not lift >= 0:
        raise ValueError(f"lift must be a number ≥ 0 (the warm start's least map value, as a "
                         f"fraction of the map's mean; 0 starts from the reference), got {lift!r}.")
    if missing is not None and not isinstance(missing, (Outliers, MissingEntries)):
        raise TypeError(f"missing must be the Outliers of a robust fit (robust_nmf) or a "
                        f"MissingEntries, got {type(missing).__name__}.")
    data = as_data_matrix(X) if missing is None else _read_with_missing(X)
    W_ref, H_ref = _reference(W, H, data.shape)
    if missing is not None:
        missing = _missing_entries(missing, data.shape)
    n, m = data.shape
    k = H_ref.shape[0]
    seeds = as_generator(random_state).integers(2**63, size=n_resamples)
    dtype = np.float32 if data.dtype == np.float32 else np.float64
    W_samples = np.empty((n_resamples, n, k), dtype=np.float32)
    H_samples = np.empty((n_resamples, k, m), dtype=np.float32)
    component_correlation = np.empty((n_resamples, k))
    map_correlation = np.empty((n_resamples, k))
    W_start = np.maximum(W_ref, lift * W_ref.mean(axis=0)).astype(dtype)
    H_start = H_ref.astype(dtype)
    filled = None if missing is None else _ModelFilled(
        np.asarray(W, dtype=dtype), np.asarray(H, dtype=dtype), missing)
    n_iter = 0
    for r, seed in enumerate(seeds):
        draw = PoissonResampler(method, seed, W_ref, H_ref)
        if filled is not None:
            draw = partial(_draw_filled, filled, draw)
        if isinstance(data, StreamedMatrix):
            fit = streaming_nmf(data.resampled(draw), k, loss=loss, solver=solver,
                                W=W_start, H=H_start, max_iter=max_iter, tol=tol)
        else:
            fit = nmf(_resample_in_memory(data, draw), k, loss=loss, solver=solver,
                      init=(W_start, H_start), max_iter=max_iter, tol=tol)
        order, component_correlation[r] = match_components(fit.H, H_ref)
        W_samples[r] = fit.W[:, order]
        H_samples[r] = fit.H[order]
        map_correlation[r] = np.sum(_unit_rows(W_samples[r].T) * _unit_rows(W_ref.T), axis=1)
        n_iter = fit.n_iter
        if callback is not None:
            callback(r)
    empty_rows = np.asarray((data if filled is None else data.resampled(filled)).row_sums) <= 0
    W_lower, W_upper = _map_bounds(W_samples, W_ref, confidence, interval, empty_rows)
    H_lower, H_upper = bootstrap_interval(H_samples, H_ref, confidence, interval,
                                          atol=ZERO_TOLERANCE * H_ref.max(axis=1, keepdims=True))
    return BootstrapResult(
        W=W_ref, H=H_ref, W_lower=W_lower, W_upper=W_upper, H_lower=H_lower, H_upper=H_upper,
        W_median=np.median(W_samples, axis=0), component_correlation=component_correlation,
        map_correlation=map_correlation, method=method, confidence=float(confidence),
        n_resamples=int(n_resamples), n_iter=int(n_iter), seeds=seeds,
        W_samples=W_samples if keep_samples else None,
        H_samples=H_samples if keep_samples else None, interval=interval, lift=float(lift),
        empty_rows=empty_rows)


def _resample_in_memory(data, draw):
    """One resample of in-memory data (one copy at a time; CSR stays CSR)."""
    assert isinstance(data, ArrayMatrix)
    return draw(data.array, 0)
