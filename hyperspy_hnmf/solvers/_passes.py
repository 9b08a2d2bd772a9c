"""Exact NMF of data read chunk by chunk: one pass over the data per iteration.

The maps ``W`` (positions × k) and components ``H`` (k × pixels) are small
and stay in memory; the data ``X`` are read in row chunks. Every pass
updates the maps of each chunk with the current components (the map update
of every solver is separable over rows) and accumulates, from the same
chunk, the statistics that the component update needs:

- Frobenius: ``Xᵀ W`` and ``Wᵀ W``, which also give the objective;
- Kullback-Leibler: ``(X ⊘ W H)ᵀ W``, the column sums of ``W`` and the data
  term ``Σ x log(x / (W H))``.

After the pass the components are updated from the statistics. The sequence
of iterates is the one of the in-memory solver (:func:`~hyperspy_hnmf.solvers.nmf`):
pass 0 evaluates the initialization, pass ``p`` finishes iteration ``p``.

Map projections (e.g. ``MapResolution``) act across probe positions, so they
need the whole maps, after the pass that updated them. With the KL loss
(in-memory KL fits use these passes too) one pass per iteration still
suffices: pass ``p`` reads the data at the projected iterate ``(W_p, H_p)``
and one ratio ``X ⊘ W_p H_p`` per entry gives the maps' update, the
components' statistics and the exact objective of ``(W_p, H_p)``; both
factors are then updated from that point, the maps rescaled so that each
component's intensity is corrected once (not once by each factor), and the
new maps projected. Pass ``p`` evaluates iterate ``p``, and the iterate
returned is the one evaluated last. With the Frobenius loss the iterates
stay those of the in-memory solver, which alternates its half-steps: HALS
half-steps (exact minimizations) taken from one point let the objective
rise. There a second pass per iteration takes the statistics of the
projected maps.
"""

import numpy as np

from .._checks import DEFAULT_LOSS
from .._spec import DEFAULT_INIT, DEFAULT_MAX_ITER, DEFAULT_SOLVER, DEFAULT_TOL, resolve_fit
from ._init import initialize
from ._linalg import as_generator
from ._loop import FitResult, canonical_order, record, rescale
from ._updates import make_update
from ..matrix import ArrayMatrix
from ..matrix.compact import CompactChunk, leading_density
from ..matrix.streamed import (RawChunk, StreamedMatrix, chunk_matrix, float_rows, is_sparse,
                               sparse_chunk)
from . import _kernels
from ._objective import MODEL_FLOOR
from ._updates import MU_FLOOR

__all__ = ["streaming_nmf"]


class _Penalties:
    """The map penalties of a constraint plan, without its (unpicklable) projections."""

    projections = ()

    def __init__(self, side):
        self.has_penalty = side is not None and side.has_penalty
        self.l1 = side.l1 if self.has_penalty else None
        self.l2 = side.l2 if self.has_penalty else None

    def project(self, A):  # pragma: no cover - never called: no projections
        pass


def _chunk_pass(block, start, W_chunk, missing, Ht, Ht_sums, beta, solver, penalties,
                update_maps, first, checked=False, lagged=False):
    """Update one chunk's maps (optional) and return them with the component statistics.

    ``block`` is the raw chunk (counts stay integers): Frobenius products go
    through :func:`~.matrix.chunk_matrix` (CSR for mostly-zero counts, else
    float row blocks); KL reads the raw chunk in one fused kernel
    (:func:`~._kernels.kl_chunk_pass`), skipping zeros, or a sparse chunk
    (event data) or a chunk kept in memory (:class:`~.matrix.compact.CompactChunk`)
    through its CSR twin :func:`~._kernels.kl_chunk_pass_csr`, which does the
    same arithmetic on the same nonzeros.
    ``missing``: the chunk's entries to treat as missing (:func:`fill_missing`,
    a float copy of this chunk only), or None. ``Ht_sums``: the column sums of
    ``Ht`` in float64 (the KL denominator, once per pass). ``checked``: the
    block is data held in memory (:class:`~.matrix.ArrayMatrix`: CSR of the
    computation's type, or a float array with more than
    :data:`DENSE_KL_DENSITY` nonzeros), checked once before the fit, not at
    every pass. ``lagged`` (KL, with ``update_maps``): the statistics are
    those of the maps given, from the sweep that also updates them
    (:func:`~._kernels.kl_chunk_pass`).
    """
    dtype = Ht.dtype
    given = W_chunk
    statistics = {}
    if missing is not None:
        if isinstance(block, RawChunk):
            raw = block.scaled_values(dtype, start)
        elif is_sparse(block):  # event data: the filled chunk is dense (one chunk)
            raw = (block if checked else sparse_chunk(block, dtype, start)).toarray()
        else:
            raw = _checked_raw(block, dtype, start)
        block = fill_missing(raw, W_chunk, Ht, missing)
    if beta == 2:
        X = chunk_matrix(block, dtype, start)
        if update_maps:
            W_chunk = W_chunk.copy()
            make_update(solver, 2.0).apply_products(W_chunk, (X @ Ht).astype(dtype, copy=False),
                                                    Ht.T @ Ht, Ht.shape[0], side=penalties)
        statistics["XtW"] = X.left(W_chunk).T
        if first:
            statistics["norm_X2"] = X.sums()[1]
    else:
        k = Ht.shape[1]
        zeros = np.zeros(k)
        l1 = penalties.l1 if penalties.has_penalty else zeros
        l2 = penalties.l2 if penalties.has_penalty else zeros
        arguments = (np.ascontiguousarray(W_chunk), Ht, Ht_sums,
                     np.asarray(l1, dtype=np.float64), np.asarray(l2, dtype=np.float64),
                     MU_FLOOR, MODEL_FLOOR, update_maps, lagged)
        if is_sparse(block):  # event data: a checked CSR chunk, cost ∝ nonzeros
            block = block if checked else sparse_chunk(block, dtype, start)
            W_chunk, statistics["N"], statistics["data_term"] = _kernels.kl_chunk_pass_csr(
                block.indptr, block.indices, block.data, block.shape[1], *arguments)
            total = block.data.sum(dtype=np.float64)
        elif isinstance(block, CompactChunk) and not _mostly_nonzero(block):
            # A chunk kept in memory: its nonzeros in place, as the raw kernel gathers them.
            W_chunk, statistics["N"], statistics["data_term"] = _kernels.kl_chunk_pass_csr(
                block.indptr, block.indices, block.values, block.shape[1], *arguments)
            total = block.total() if first else None
        else:
            if isinstance(block, RawChunk):
                block = block.scaled_values(dtype, start)
            elif not checked:
                block = _checked_raw(block, dtype, start)
            kernel = (_kernels.kl_dense_chunk_pass if checked or _mostly_nonzero(block)
                      else _kernels.kl_chunk_pass)
            W_chunk, statistics["N"], statistics["data_term"] = kernel(block, *arguments)
            # The data's total is needed once (first pass): a float64 sum of
            # every entry costs about as much as the rest of a sparse pass.
            total = block.sum(dtype=np.float64) if first else None
        if first:
            statistics["sum_X"] = float(total)
    at = given if lagged and update_maps else W_chunk  # the maps of the statistics
    if beta == 2:  # (KL needs the column sums only)
        statistics["WtW"] = at.T.astype(np.float64) @ at
    statistics["W_sums"] = at.sum(axis=0, dtype=np.float64)
    return W_chunk, statistics


_chunk_pass.reads_raw_chunks = True
_chunk_pass.reads_scaled_chunks = True
_chunk_pass.reads_compact_chunks = True


#: Chunks with more than this fraction of nonzeros take the tiled KL pass
#: over every entry (:func:`~._kernels.kl_dense_chunk_pass`) rather than
#: the nonzero-skipping kernel: measured crossover on 64² uint8/uint16
#: detectors, k = 8 (the nonzero kernel costs about 7 times more per nonzero
#: than the tiled one per entry).
DENSE_KL_DENSITY = 0.12


def _mostly_nonzero(block):
    return leading_density(block, 1 << 18) > DENSE_KL_DENSITY


class MissingEntries:
    """Entries and whole columns of the data treated as missing, by row chunk.

    Parameters
    ----------
    rows, cols : array of int
        Coordinates of the missing entries.
    columns : array of int
        Columns missing in every row.

    Examples
    --------
    >>> missing = MissingEntries([3, 0], [1, 2], [4])
    >>> missing.chunk(slice(2, 5))
    (array([1]), array([1]), array([4]))
    >>> MissingEntries([3], [1]).chunk(slice(0, 2)) is None
    True
    """

    def __init__(self, rows, cols, columns=()):
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        order = np.lexsort((cols, rows))
        self.rows, self.cols = rows[order], cols[order]
        self.columns = np.asarray(columns, dtype=np.int64)

    def chunk(self, rows):
        """``(local rows, columns of the entries, missing columns)`` of a row slice, or None.

        None when nothing in those rows is missing (the chunk is then read
        as it is, without a copy).
        """
        first, last = np.searchsorted(self.rows, [rows.start, rows.stop])
        if first == last and not self.columns.size:
            return None
        return self.rows[first:last] - rows.start, self.cols[first:last], self.columns


def fill_missing(block, W, Ht, missing):
    """A float copy of one chunk with its missing entries replaced by the model ``W Htᵀ``.

    Only the chunk is copied; the model is evaluated at the missing entries.

    Examples
    --------
    >>> block = np.array([[1, 9], [1, 1]], dtype=np.uint16)
    >>> W, Ht = np.ones((2, 1), np.float32), np.ones((2, 1), np.float32)
    >>> fill_missing(block, W, Ht, (np.array([0]), np.array([1]), np.array([], int)))
    array([[1., 1.],
           [1., 1.]], dtype=float32)
    """
    rows, cols, columns = missing
    filled = np.array(block, dtype=Ht.dtype)
    if columns.size:
        filled[:, columns] = W @ Ht[columns].T
    if rows.size:
        filled[rows, cols] = np.einsum("ij,ij->i", W[rows], Ht[cols])
    return filled


def _checked_raw(block, dtype, start):
    """The raw chunk, C-contiguous, checked where its type can hold bad values.

    A chunk kept in memory comes back as read (it was checked when kept).
    Unsigned integers need no check; signed integers must be ≥ 0; floats
    finite and ≥ 0 (checked block by block, with the rows in the message).
    Floats other than float32/float64 (float16) come back in ``dtype``.
    """
    if isinstance(block, CompactChunk):  # checked when it was kept
        return block.dense()
    block = np.ascontiguousarray(block)
    if block.dtype.kind in "ub":
        return block.view(np.uint8) if block.dtype.kind == "b" else block
    if block.dtype.kind == "i" and block.min(initial=0) >= 0:
        return block
    for _ in float_rows(block, dtype, start):  # raises with the rows of a bad value
        pass
    if block.dtype not in (np.float32, np.float64):  # (float16: the kernels compute in
        return block.astype(dtype)  # float32 or float64 only; one chunk converted)
    return block


def _objective(beta, statistics, totals, Ht):
    if beta == 2:
        cross = float(np.sum(statistics["XtW"] * Ht))
        gram = float(np.sum(statistics["WtW"] * (Ht.T.astype(np.float64) @ Ht)))
        return 0.5 * (totals["norm_X2"] - 2.0 * cross + gram)
    model_total = float(statistics["W_sums"] @ Ht.sum(axis=0, dtype=np.float64))
    return statistics["data_term"] - totals["sum_X"] + model_total


def _rescale_statistics(statistics, scale):
    """Statistics of ``W * scale`` from those of ``W`` (columns scaled)."""
    if "WtW" in statistics:
        statistics["WtW"] = statistics["WtW"] * np.outer(scale, scale)
    statistics["W_sums"] = statistics["W_sums"] * scale
    for name in ("XtW", "N"):
        if name in statistics:
            statistics[name] = statistics[name] * scale[None, :]


def _column_scale(before, after):
    """Per column, ``after``'s sum over ``before``'s (1 where ``before`` sums to 0)."""
    return _sum_ratio(after.sum(axis=0, dtype=np.float64), before.sum(axis=0, dtype=np.float64))


def _sum_ratio(numerator, denominator):
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0),
                    1.0)


def streaming_nmf(X, n_components, *, loss=DEFAULT_LOSS, solver=DEFAULT_SOLVER,
                  init=DEFAULT_INIT, max_iter=DEFAULT_MAX_ITER, tol=DEFAULT_TOL,
                  random_state=None, callback=None, constraints=None, W=None, H=None,
                  missing=None):
    """Exact NMF ``X ≈ W H`` of a dask array, one pass over the data per iteration.

    Parameters
    ----------
    X : dask.array.Array or StreamedMatrix, shape (n, m)
        Nonnegative data chunked along rows (any dtype; integer counts are
        converted chunk by chunk). NaN, infinite or negative values raise a
        ``ValueError`` naming the rows, before any result is returned.
    n_components : int
    loss : {"auto", "frobenius", "kl"} or {2, 1}, default "auto"
        ``"auto"``: KL for integer counts (judged by the dtype, or by the
        first chunk for floating data), Frobenius otherwise.
    solver : {"auto", "hals", "mu", "als"}
        As in :func:`~hyperspy_hnmf.solvers.nmf` (KL: ``"mu"``).
    init : str or tuple
        ``"nndsvd"``, ``"nndsvda"``, ``"nndsvdar"``, ``"random"`` (from a
        randomized SVD computed in passes) or ``(W, H)``.
    max_iter, tol, random_state, callback
        As in :func:`~hyperspy_hnmf.solvers.nmf`; an iteration is one pass.
    constraints : ConstraintPlan, optional
        Penalties and projections act exactly as in memory. Map projections
        act on the whole maps, after the pass: with the KL loss an iteration
        still reads the data once (both factors are updated from the
        projected iterate the pass evaluates; the module notes give the
        scheme); with the Frobenius loss it reads them twice (the map
        update, then the statistics of the projected maps).
    W, H : ndarray, optional
        Start from these factors instead of ``init`` (used by the randomized
        solver's refinement).
    missing : MissingEntries, optional
        Entries (and whole columns) of the data to treat as missing: at every
        pass they are replaced by the current model (expectation-maximization
        for missing data; :func:`~hyperspy_hnmf.solvers.robust_nmf`), in a
        copy of the chunk being read.

    Returns
    -------
    FitResult
        As :func:`~hyperspy_hnmf.solvers.nmf`; ``divergence`` is the data
        term at the returned factors (from the last pass).

    Examples
    --------
    >>> import dask.array as da
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((60, 3)) @ rng.random((3, 40))).astype(np.float32)
    >>> lazy = da.from_array(X, chunks=(16, 40))
    >>> result = streaming_nmf(lazy, 3, max_iter=300, tol=1e-8, random_state=0)
    >>> bool(np.linalg.norm(X - result.W @ result.H) / np.linalg.norm(X) < 1e-2)
    True
    """
    Xs = X if isinstance(X, StreamedMatrix) else StreamedMatrix(X)
    given = W is not None and H is not None
    spec = resolve_fit(Xs, n_components, loss=loss, solver=solver,
                       init=DEFAULT_INIT if given else init, max_iter=max_iter, tol=tol,
                       callback=callback, constraints=constraints)
    return _fit_passes(Xs, spec.n_components, spec.beta, spec.solver, spec.init,
                       spec.max_iter, spec.tol, as_generator(random_state), callback,
                       spec.plan, W=W, H=H, missing=missing)


def _fit_passes(Xs, k, beta, solver, init, max_iter, tol, rng, callback, constraints,
                W=None, H=None, missing=None):
    """:func:`streaming_nmf` with resolved options (β 1 or 2, a concrete solver): no checks.

    ``Xs`` is a :class:`~hyperspy_hnmf.matrix.StreamedMatrix`, or an
    :class:`~hyperspy_hnmf.matrix.ArrayMatrix` of checked data (the in-memory
    KL fit of dense data: one fused kernel pass per iteration), ``rng`` a
    generator, ``constraints`` a ConstraintPlan or None; ``W`` and ``H``, if
    both given, replace the initialization; ``missing`` as in
    :func:`streaming_nmf`.
    """
    checked = isinstance(Xs, ArrayMatrix)  # data in memory, checked before the fit
    if W is None or H is None:
        W, H = initialize(Xs, k, init, rng, poisson_weighted=beta < 2)
    W = np.ascontiguousarray(W, dtype=Xs.dtype)
    Ht = np.ascontiguousarray(np.asarray(H, dtype=Xs.dtype).T)
    update = make_update(solver, beta)
    maps_side = constraints.maps if constraints is not None else None
    components_side = constraints.components if constraints is not None else None
    penalties = _Penalties(maps_side)
    if components_side is not None:
        components_side.project(Ht)
    if maps_side is not None:
        maps_side.project(W)

    # KL with map projections: one pass per iteration, at the projected maps
    # (see the notes of streaming_nmf); otherwise the half-steps in turn.
    lagged = beta != 2 and maps_side is not None and bool(maps_side.projections)

    def run_pass(update_maps, first=False):
        per_chunk = [(W[Xs.rows(i)], None if missing is None else missing.chunk(Xs.rows(i)))
                     for i in range(Xs.n_chunks)]
        # Filled entries change with the model: their totals are taken at every pass.
        first = first or missing is not None
        chunks, statistics = Xs.map_chunks(
            _chunk_pass, per_chunk=per_chunk,
            shared=(Ht, Ht.sum(axis=0, dtype=np.float64), beta, solver, penalties, update_maps,
                    first, checked, lagged), reduce="second")
        totals.update({name: statistics.pop(name) for name in ("norm_X2", "sum_X")
                       if name in statistics})
        return np.concatenate(chunks), statistics

    def penalty_value():
        if constraints is None:
            return 0.0
        return maps_side.penalty_value(W) + components_side.penalty_value(Ht)

    totals = {}
    W_next, statistics = run_pass(update_maps=lagged and max_iter > 0, first=True)
    history = [_objective(beta, statistics, totals, Ht) + penalty_value()]
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        # The component half-step of this iteration, from the last pass's statistics.
        sums_before = Ht.sum(axis=0, dtype=np.float64) if lagged else None
        if beta == 2:
            update.apply_products(Ht, statistics["XtW"].astype(Ht.dtype),
                                  statistics["WtW"].astype(Ht.dtype), Xs.shape[0],
                                  side=components_side)
        else:
            update.apply_ratio(Ht, statistics["N"], statistics["W_sums"][None, :],
                               side=components_side)
        if lagged:
            # Both half-steps were taken from the same point (W, H). Each alone
            # brings a component's intensity to the share of the data it
            # explains; together they would apply that correction twice and
            # the intensities would swing about their values for ever. So the
            # components only change shape: the maps absorb the change of
            # the components' sums. Then project the maps and read the data
            # once, at this iterate: its objective and the next updates.
            W = W_next
            W *= _sum_ratio(sums_before, Ht.sum(axis=0, dtype=np.float64)).astype(W.dtype)
            maps_side.project(W)
            rescale(W, Ht, update, constraints)
            W_next, statistics = run_pass(update_maps=iteration < max_iter)
        else:
            # The map half-step, chunk by chunk, with the next statistics.
            W_new, statistics = run_pass(update_maps=True)
            if maps_side is not None and maps_side.projections:
                # Frobenius: projections act across rows: project the whole
                # maps, then read the data once more for the statistics of
                # the projected maps (the iterates stay those of the
                # in-memory solver, which alternates half-steps).
                maps_side.project(W_new)
                W = W_new
                _, statistics = run_pass(update_maps=False)
            before = W_new.copy() if constraints is not None or update.balance else None
            W = W_new
            rescale(W, Ht, update, constraints)
            if before is not None:
                _rescale_statistics(statistics, _column_scale(before, W))
        objective = _objective(beta, statistics, totals, Ht) + penalty_value()
        if record(history, objective, iteration, callback, tol):
            converged = True
            break
    divergence = history[-1] - penalty_value()
    W, H, _ = canonical_order(W, np.ascontiguousarray(Ht.T),
                              constraints.blocks if constraints is not None else None)
    return FitResult(W=W, H=H, objective=np.asarray(history), n_iter=iteration,
                     converged=converged, restart_objectives=[float(history[-1])],
                     divergence=float(divergence))
