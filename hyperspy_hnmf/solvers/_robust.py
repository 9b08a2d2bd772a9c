"""Robust NMF: detector outliers found by a false-alarm rule and fitted as missing data.

Hot pixels, cosmic-ray hits, dead pixels and saturated entries are single
entries of the data that no nonnegative low-rank model explains; dead or
hot detector channels are whole columns. :func:`robust_nmf` alternates

1. a fit of ``X ≈ W H`` in which the current outliers are *missing data*:
   at every pass over the data they are replaced by the current model
   (expectation-maximization; for the KL and Frobenius updates this is the
   same as leaving them out of the updates), in a copy of the chunk being
   read, never of the data;
2. a test of every entry against the fitted model, which gives the next
   set of outliers (computed afresh, so an entry can leave the set).

It stops when the set no longer changes, or after ``max_rounds`` rounds.
The data are read through :class:`~hyperspy_hnmf.matrix.StreamedMatrix`
and :func:`~hyperspy_hnmf.solvers.streaming_nmf`, so NumPy arrays (read
as row chunks without a copy) and dask arrays go through the same code.

Threshold rules (``alpha`` is the false-alarm rate per entry, two-sided)
--------------------------------------------------------------------------
KL (counts, Poisson noise)
    an entry ``x`` with model ``mu`` is an outlier when its Poisson tail
    probability is below ``alpha / 2``: ``P(X >= x | mu) < alpha / 2``
    (hot pixels, cosmic rays) or ``P(X <= x | mu) < alpha / 2`` (dead or
    saturated entries). The tails are exact (regularized incomplete gamma
    functions), which matters at the low counts of 4D-STEM where the
    Gaussian or Anscombe approximations are wrong by orders of magnitude.
Frobenius
    ``|x - mu| > z * sigma_j`` with ``z = Φ⁻¹(1 - alpha / 2)`` and
    ``sigma_j = 1.4826 * median_i |x_ij - mu_ij|``, the MAD-scaled
    residual of channel ``j`` (noise may differ between channels).
Whole channels (dead or hot detector pixels, lines)
    the fitted model cannot reveal them: the components are free at every
    channel and would simply copy a dead (zero) or hot channel. They are
    found from the channel totals (without the outlying entries) by
    ``solvers._channels.bad_channels``: lines whose segment medians stand
    out from the lines on both sides, then pixels 10× darker or brighter
    than every neighbour, and (KL) a Poisson tail below ``alpha / 2``. All
    their entries are missing data; the components at those channels are
    filled afterwards with the median of the neighbouring channels (the
    fit has no data there).

``"auto"`` sets ``alpha = 1 / (n m)``: if the model were exact, about one
entry of the whole dataset would be flagged by chance.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import special

from .._checks import DEFAULT_LOSS, MAX_FALSE_ALARM, check_outliers  # noqa: F401
from .._spec import (DEFAULT_INIT, DEFAULT_MAX_ITER, DEFAULT_N_RESTARTS, DEFAULT_SOLVER,
                     DEFAULT_TOL, resolve_fit)
from ._channels import CHANNEL_CONTRAST, bad_channels, neighbour_median
from ._init import initialize
from ._linalg import as_generator
from ._loop import canonical_order
from ._objective import MODEL_FLOOR
from ._passes import MissingEntries, _fit_passes, fill_missing

__all__ = ["CHANNEL_CONTRAST", "EVENT_SHARE", "MAX_ROUNDS", "Outliers",
           "check_outliers", "false_alarm_rate", "robust_nmf"]

#: Share of a component's pattern (or map) in one channel (or probe position)
#: beyond which that peak models isolated events (see :func:`_event_peaks`).
EVENT_SHARE = 0.25

#: Largest number of detection rounds after the first fit.
MAX_ROUNDS = 4

def false_alarm_rate(option, n_entries):
    """The false-alarm rate per entry that ``option`` asks for.

    Examples
    --------
    >>> false_alarm_rate("auto", 10**6), false_alarm_rate(1e-5, 10**6)
    (1e-06, 1e-05)
    """
    option = check_outliers(option)
    if option == "auto":
        return min(1.0 / max(n_entries, 1), 1e-4)
    return option


@dataclass
class Outliers:
    """The outliers a robust fit found, as sparse lists (never a dense copy of the data).

    Attributes
    ----------
    shape : tuple of int
        ``(n, m)`` of the data.
    rows, cols : ndarray of int64
        Coordinates of the outlying entries (row-major order).
    values, expected : ndarray of float64
        The data and the fitted model at those entries.
    dead_channels, hot_channels : ndarray of int64
        Whole channels (columns) left out of the fit.
    false_alarm : float
        False-alarm rate per entry of the rule.
    z_threshold : float
        The equivalent normal score, ``Φ⁻¹(1 - false_alarm / 2)``.
    loss : str
        ``"kullback-leibler"`` (Poisson tails) or ``"frobenius"`` (MAD rule).
    rounds : int
        Detection rounds run after the first fit.
    dispersion : float
        Mean squared Pearson residual of the entries kept (KL: about 1 when
        the data are counts with Poisson noise; far from 1 the rule's
        false-alarm rate does not hold); NaN for Frobenius.

    Examples
    --------
    >>> o = Outliers((2, 3), np.array([1]), np.array([2]), np.array([50.0]), np.array([1.0]),
    ...              np.array([0]), np.array([], int), 1e-6, 4.89, "kullback-leibler", 2, 1.0)
    >>> o.row_counts().tolist(), o.channel_counts().tolist()
    ([1, 2], [2, 0, 1])
    """

    shape: tuple
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    expected: np.ndarray
    dead_channels: np.ndarray
    hot_channels: np.ndarray
    false_alarm: float
    z_threshold: float
    loss: str
    rounds: int
    dispersion: float = float("nan")

    @property
    def n_entries(self):
        """Number of outlying entries (not counting whole channels)."""
        return int(self.rows.size)

    @property
    def bad_channels(self):
        """Dead and hot channels, sorted."""
        return np.union1d(self.dead_channels, self.hot_channels).astype(np.int64)

    def row_counts(self):
        """Outlying entries in every row (probe position); whole channels count in every row."""
        counts = np.bincount(self.rows, minlength=self.shape[0])
        return counts + self.bad_channels.size

    def channel_counts(self):
        """Outlying entries in every channel; a dead or hot channel counts all its rows."""
        counts = np.bincount(self.cols, minlength=self.shape[1])
        counts[self.bad_channels] = self.shape[0]
        return counts

    def to_sparse(self):
        """The outlying entries as a COO matrix of their data values.

        Examples
        --------
        >>> o = Outliers((2, 2), np.array([0]), np.array([1]), np.array([7.0]), np.array([1.0]),
        ...              np.array([], int), np.array([], int), 1e-6, 4.89, "frobenius", 1)
        >>> o.to_sparse().toarray().tolist()
        [[0.0, 7.0], [0.0, 0.0]]
        """
        return sp.coo_matrix((self.values, (self.rows, self.cols)), shape=self.shape)

    def summary(self):
        """One line: how many entries and channels were left out, and by which rule.

        Examples
        --------
        >>> o = Outliers((10, 10), np.array([1]), np.array([2]), np.array([50.0]),
        ...              np.array([1.0]), np.array([3]), np.array([], int), 1e-6, 4.89,
        ...              "kullback-leibler", 2, 1.02)
        >>> print(o.summary())
        Outliers: 1 entries (1 high, 0 low; 1 % of 100) and 1 dead + 0 hot channels left out of the fit (Poisson tails, false-alarm rate 1e-06 per entry, |z| > 4.89; 2 rounds; dispersion 1.02).
        """
        n, m = self.shape
        high = int(np.count_nonzero(self.values > self.expected))
        share = 100.0 * self.n_entries / max(n * m, 1)
        rule = "Poisson tails" if self.loss == "kullback-leibler" else "MAD-scaled residuals"
        dispersion = "" if not np.isfinite(self.dispersion) else (
            f"; dispersion {self.dispersion:.3g}")
        return (f"Outliers: {self.n_entries} entries ({high} high, {self.n_entries - high} "
                f"low; {share:.2g} % of {n * m}) and {self.dead_channels.size} dead + "
                f"{self.hot_channels.size} hot channels left out of the fit ({rule}, "
                f"false-alarm rate {self.false_alarm:.3g} per entry, |z| > "
                f"{self.z_threshold:.3g}; {self.rounds} rounds{dispersion}).")


def _chunk_test(block, start, W, Ht, beta, alpha, scale, skip):
    """Outlying entries of one chunk against the model ``W Htᵀ``, and Pearson sums.

    A sparse chunk (event data, CSR) is tested densely: the chunk's model is
    dense anyway.
    """
    x = np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)
    model = np.maximum(W.astype(np.float64) @ Ht.T.astype(np.float64), MODEL_FLOOR)
    z = float(special.ndtri(1 - alpha / 2))
    keep = np.ones(x.shape[1], dtype=bool)
    keep[skip] = False
    if beta == 1:
        spread = 0.8 * z * np.sqrt(model)  # a loose screen; the exact tails decide
        candidates = ((x >= 1) & (x > model + spread)) | (x < model - spread)
        candidates[:, ~keep] = False
        rows, cols = np.nonzero(candidates)
        xs, mus = x[rows, cols], model[rows, cols]
        tail = np.where(xs > mus, special.gammainc(np.maximum(xs, 1), mus),
                        special.gammaincc(xs + 1, mus))
        flagged = tail < alpha / 2
        pearson = (x - model) ** 2 / model
        pearson[:, ~keep] = 0
        pearson[rows[flagged], cols[flagged]] = 0
        pearson = np.array([pearson.sum(), keep.sum() * x.shape[0] - flagged.sum()])
    else:
        residual = np.abs(x - model)
        candidates = residual > z * scale[None, :]
        candidates[:, ~keep] = False
        rows, cols = np.nonzero(candidates)
        xs, mus = x[rows, cols], model[rows, cols]
        flagged = np.ones(rows.size, dtype=bool)
        pearson = np.zeros(2)
    return ((rows[flagged] + start, cols[flagged], xs[flagged], mus[flagged], x.sum(axis=1)),
            (pearson, x.sum(axis=0)))


def _event_peaks(W, H):
    """Peaks of components spent on isolated events: ``(component, channel)`` and ``(position, component)``.

    A diffraction pattern or spectrum spreads over many channels, a map
    blurred by the probe over many positions. A component with more than
    :data:`EVENT_SHARE` of its pattern in one channel (a detector pixel hot
    in some patterns), or of its map at one position, models events there;
    the entries of that channel (position) are tested against the model
    with that peak replaced by the median of the neighbouring channels
    (positions along the scan).
    """
    def peaks(A):
        total = A.sum(axis=1, dtype=np.float64)
        share = A.max(axis=1) / np.where(total > 0, total, np.inf)
        which = np.flatnonzero(share > EVENT_SHARE)
        return which, A[which].argmax(axis=1)

    component, channel = peaks(H)
    component_w, position = peaks(np.ascontiguousarray(W.T))
    return (component, channel), (position, component_w)


def _chunk_residual_median(block, start, W, Ht):
    """Median absolute residual of every channel over one chunk's rows, and the row count."""
    x = np.asarray(block, dtype=np.float64)
    residual = np.abs(x - W.astype(np.float64) @ Ht.T.astype(np.float64))
    return np.median(residual, axis=0), x.shape[0]


def _detect(Xs, W, H, beta, alpha, skip, grid_shape=None):
    """One pass (two for Frobenius): the outlying entries of the data against ``W H``.

    Returns their rows, columns, values and model values, the dispersion
    (KL), and the row and column sums of the data. Peaks of components
    spent on events (:func:`_event_peaks`) are left out of the model.
    """
    W_full, H_full = W, H
    (component, channel), (position, component_w) = _event_peaks(W, H)
    if component.size or position.size:
        H, W = H.copy(), W.copy()
        for q, j in zip(component, channel):
            H[q] = _repair_channels(H[q][None, :], np.array([j]), grid_shape)[0]
        for i, q in zip(position, component_w):
            W[:, q] = _repair_channels(W[:, q][None, :], np.array([i]), None)[0]
    found = _test_pass(Xs, W, H, beta, alpha, skip)
    # A peak whose removal flags most of its channel (or position) is a real
    # feature (a zero-loss peak), not an event: keep it in the model.
    n, m = Xs.shape
    keep_channel = np.bincount(found[1], minlength=m)[channel] > n / 2
    keep_position = np.bincount(found[0], minlength=n)[position] > m / 2
    if keep_channel.any() or keep_position.any():
        H[component[keep_channel], channel[keep_channel]] = H_full[
            component[keep_channel], channel[keep_channel]]
        W[position[keep_position], component_w[keep_position]] = W_full[
            position[keep_position], component_w[keep_position]]
        found = _test_pass(Xs, W, H, beta, alpha, skip)
    return found


def _test_pass(Xs, W, H, beta, alpha, skip):
    """:func:`_detect`'s pass(es) over the data for the model ``W H``."""
    Ht = np.ascontiguousarray(H.T)
    per_chunk = [(W[Xs.rows(i)],) for i in range(Xs.n_chunks)]
    scale = None
    if beta == 2:
        medians = Xs.map_chunks(_chunk_residual_median, per_chunk=per_chunk, shared=(Ht,))
        weights = np.array([rows for _, rows in medians], dtype=np.float64)
        stacked = np.stack([median for median, _ in medians])
        scale = 1.4826 * (weights @ stacked) / weights.sum()
        positive = scale[scale > 0]
        floor = 1e-3 * float(np.median(positive)) if positive.size else 1.0
        scale = np.maximum(scale, floor)
    parts, (sums, column_sums) = Xs.map_chunks(
        _chunk_test, per_chunk=per_chunk, shared=(Ht, beta, alpha, scale, skip),
        reduce="second")
    rows, cols, values, expected, row_sums = (np.concatenate([p[i] for p in parts])
                                              for i in range(5))
    dispersion = float(sums[0] / sums[1]) if beta == 1 and sums[1] > 0 else float("nan")
    return (rows.astype(np.int64), cols.astype(np.int64), values, expected, dispersion,
            row_sums, column_sums)


def _filled_view(Xs, W, H, missing):
    """The data with the missing entries replaced by the model ``W H``, read chunk by chunk.

    A lazy view (nothing is computed or copied until a pass reads a chunk),
    for the initialization of the robust fit (with the rank-one model of
    :func:`_neutral_model`).
    """
    from ..matrix import StreamedMatrix, is_sparse

    Ht = np.ascontiguousarray(H.T)

    def fill(block, block_info=None):
        start, stop = block_info[0]["array-location"][0]
        rows = slice(start, stop)
        if is_sparse(block):  # (event data: the filled chunk is dense, as its model is)
            block = block.toarray() if sp.issparse(block) else block.todense()
        entries = missing.chunk(rows)
        if entries is None:
            return np.asarray(block, dtype=Ht.dtype)
        return fill_missing(block, W[rows], Ht, entries)

    return StreamedMatrix(Xs.array.map_blocks(fill, dtype=Ht.dtype, meta=np.empty((0, 0), Ht.dtype)),
                          _counter=Xs._counter)


def _neutral_model(row_sums, column_sums, rows, cols, values, channels, grid_shape):
    """Rank-one model ``r_i c_j / T`` of the data without the outliers.

    The filling of outliers for a fresh initialization: the model of a fit
    can hold a component spent on the outliers, this one cannot.
    """
    n, m = row_sums.size, column_sums.size
    r = row_sums - np.bincount(rows, weights=values, minlength=n)
    c = column_sums - np.bincount(cols, weights=values, minlength=m)
    c = _repair_channels(c[None, :], channels, grid_shape)[0]
    total = max(float(c.sum()), np.finfo(float).tiny)
    return r[:, None], (c / total)[None, :]


def _as_streamed(X):
    """A :class:`~hyperspy_hnmf.matrix.StreamedMatrix` over ``X`` without copying it.

    Arrays in memory, and integer counts already read in place, become row
    views (:func:`~hyperspy_hnmf.matrix.streamed.views_matrix`) with the
    initialization of data read in passes: a robust fit is the same whether
    its data are in memory (float or integer) or lazy.
    """
    import dask.array as da

    from ..matrix import StreamedMatrix
    from ..matrix.streamed import views_matrix

    if isinstance(X, StreamedMatrix):
        if X.held_array is None:
            return X
        # counts read in place: the same chunks (views, and CSR already built),
        # with the initialization of data read in passes
        view = X._view(X.row_scale, X.column_scale, X.perturbation)
        view.power_iterations = StreamedMatrix.power_iterations
        return view
    if isinstance(X, da.Array):
        return StreamedMatrix(X)
    if sp.issparse(X):
        raise ValueError(
            "outliers=... works on NumPy and dask arrays; this data is a scipy.sparse "
            "matrix. Pass it as a dask array of row chunks (dask.array.from_array(X.toarray() "
            "of each chunk)) or fit without outliers.")
    return views_matrix(np.asarray(X))


def _repair_channels(H, channels, grid_shape):
    """Components at channels without data: the median of their neighbouring channels."""
    if not channels.size:
        return H
    H = H.copy()
    for row in H:
        row[channels] = neighbour_median(np.where(np.isin(np.arange(row.size), channels),
                                                   np.nan, row), grid_shape)[channels]
    return np.nan_to_num(H, nan=0.0)


def robust_nmf(X, n_components, *, outliers="auto", loss=DEFAULT_LOSS, solver=DEFAULT_SOLVER,
               init=DEFAULT_INIT, max_iter=DEFAULT_MAX_ITER, tol=DEFAULT_TOL, random_state=None,
               n_restarts=DEFAULT_N_RESTARTS, callback=None, constraints=None,
               signal_shape=None, max_rounds=MAX_ROUNDS):
    """NMF ``X ≈ W H`` that keeps detector outliers out of the components and maps.

    The outliers (hot or dead pixels, cosmic-ray hits, saturated entries,
    dead or hot channels) are found by the false-alarm rule of this module
    and fitted as missing data (see the module's notes); the fit and the
    test alternate until the set of outliers no longer changes.

    Parameters
    ----------
    X : ndarray, dask.array.Array or StreamedMatrix, shape (n, m), nonnegative
        Read in row chunks (a NumPy array is not copied).
    n_components : int
    outliers : "auto" or float, default "auto"
        False-alarm rate per entry (:func:`false_alarm_rate`).
    loss : {"auto", "frobenius", "kl"} or {2, 1}
        KL: exact Poisson tails; Frobenius: MAD-scaled residuals.
    solver, init, max_iter, tol, random_state, callback, constraints
        As in :func:`~hyperspy_hnmf.solvers.streaming_nmf` (each round is
        such a fit, started from the previous round's factors).
    n_restarts : int, default 1
        Runs of the first fit (the first with ``init``, then random).
    signal_shape : tuple of int, optional
        Shape of the detector (``m`` pixels), for the neighbours of the
        channel rule; without it channels are neighbours along a line.
    max_rounds : int, default 4
        Largest number of detection rounds after the first fit.

    Returns
    -------
    result : FitResult
        The final fit, in :func:`~hyperspy_hnmf.solvers.canonical_order`;
        components at dead or hot channels are the median of their
        neighbouring channels. ``n_iter`` counts the iterations of all
        rounds, ``objective`` is the last round's history (the divergence
        with the outliers replaced by the model), ``restart_objectives``
        those of the first fit's restarts.
    found : Outliers

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.poisson(rng.random((100, 2)) @ rng.random((2, 50)) * 20).astype(np.float32)
    >>> hits = (rng.integers(0, 100, 6), rng.integers(0, 50, 6))
    >>> X[hits] = 500                                              # six cosmic-ray hits
    >>> result, found = robust_nmf(X, 2, loss="kl", random_state=0)
    >>> sorted(zip(found.rows.tolist(), found.cols.tolist())) == sorted(zip(*hits))
    True
    """
    if check_outliers(outliers) is None:
        raise ValueError("robust_nmf needs outliers='auto' or a false-alarm rate.")
    Xs = _as_streamed(X)
    spec = resolve_fit(Xs, n_components, outliers=outliers, loss=loss, solver=solver,
                       init=init, max_iter=max_iter, tol=tol, random_state=random_state,
                       n_restarts=n_restarts, callback=callback, constraints=constraints,
                       signal_grid=signal_shape)
    return _fit_robust(Xs, spec, callback, max_rounds)


def _fit_robust(X, spec, callback=None, max_rounds=MAX_ROUNDS):
    """:func:`robust_nmf` with the options resolved in ``spec`` (a flat FitSpec): no checks."""
    Xs = _as_streamed(X)
    beta, n_components, init = spec.beta, spec.n_components, spec.init
    constraints = spec.plan
    signal_shape = None if spec.signal_grid is None else tuple(spec.signal_grid.shape)
    n, m = Xs.shape
    alpha = false_alarm_rate(spec.outliers, n * m)
    empty = np.zeros(0, dtype=np.int64)
    rng = as_generator(spec.random_state)

    def fit(start, W=None, H=None, missing=None):
        return _fit_passes(Xs, n_components, beta, spec.solver, start, spec.max_iter,
                           spec.tol, rng, callback, constraints, W=W, H=H, missing=missing)

    result, iterations, restarts = None, 0, []
    for restart in range(spec.n_restarts):
        run = fit(init if restart == 0 else "random")
        iterations += run.n_iter
        restarts.append(run.final_objective)
        if result is None or run.final_objective < result.final_objective:
            result = run
    used = (empty, empty, np.zeros(0), np.zeros(0))
    dead = hot = channels = empty
    dispersion = float("nan")
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        rows, cols, values, expected, dispersion, row_sums, column_sums = _detect(
            Xs, result.W, result.H, beta, alpha, channels, signal_shape)
        # Channels are judged on their totals without the outlying entries
        # (a hot pixel must not make its neighbours look dead).
        totals = column_sums - np.bincount(cols, weights=values, minlength=m)
        dead, hot = bad_channels(totals, signal_shape, alpha, beta == 1)
        new_channels = np.union1d(dead, hot).astype(np.int64)
        entries = ~np.isin(cols, new_channels)
        rows, cols, values, expected = rows[entries], cols[entries], values[entries], \
            expected[entries]
        if (np.array_equal(rows, used[0]) and np.array_equal(cols, used[1])
                and np.array_equal(new_channels, channels)):
            break
        used, channels = (rows, cols, values, expected), new_channels
        missing = MissingEntries(rows, cols, channels)
        if rounds == 1:
            # The first fit was pulled by the outliers (it may even spend a
            # component on them, which the missing-data fit would keep):
            # start again from the initialization of the data with the
            # outliers replaced by a rank-one model.
            W1, H1 = _neutral_model(row_sums, column_sums, rows, cols, values, channels,
                                    signal_shape)
            W, H = initialize(_filled_view(Xs, W1.astype(Xs.dtype), H1.astype(Xs.dtype),
                                           missing), n_components, init, rng,
                              poisson_weighted=beta < 2)
        else:
            W, H = result.W, result.H
        result = fit(init, W=W, H=H, missing=missing)
        iterations += result.n_iter
    result.n_iter, result.restart_objectives = iterations, restarts
    H = _repair_channels(result.H, channels, signal_shape)
    result.W, result.H, _ = canonical_order(result.W, H.astype(result.H.dtype),
                                            constraints.blocks if constraints else None)
    z = float(special.ndtri(1 - alpha / 2))
    found = Outliers(shape=(n, m), rows=used[0], cols=used[1],
                     values=np.asarray(used[2], dtype=np.float64),
                     expected=np.asarray(used[3], dtype=np.float64), dead_channels=dead,
                     hot_channels=hot, false_alarm=alpha, z_threshold=z,
                     loss="kullback-leibler" if beta == 1 else "frobenius", rounds=rounds,
                     dispersion=dispersion)
    return result, found
