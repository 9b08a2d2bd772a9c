"""Numba kernels for the loops that BLAS cannot express: KL passes and HALS sweeps.

- :func:`kl_update_csr`, :func:`kl_data_term_csr`: one half-step of the
  alternating KL scheme for the model ``Y ≈ A @ B.T`` with ``Y`` sparse
  (CSR). Updating the maps uses ``Y = X``, ``A = W``, ``B = H.T``; updating
  the components ``Y = X.T`` (as CSR), ``A = H.T``, ``B = W``.
- :func:`kl_chunk_pass` (raw chunks, zeros skipped), :func:`kl_chunk_pass_csr`
  (event data) and :func:`kl_dense_chunk_pass` (mostly-nonzero chunks,
  tiled): one pass over a chunk read in passes, the maps' update and the
  components' statistics together.
- :func:`ratio_times_dense`: the KL ratio products ``(X ⊘ U Vᵀ) C`` (or
  transposed) of dense data in one sweep (multi-layer fine-tuning).
- :func:`kl_maps_csr` (and the per-row update :func:`_row_maps`): KL maps for
  fixed components, each row iterated to convergence on its own while it is
  in cache; :func:`~._fixed_components.kl_maps` picks each row's nonzeros
  or every entry.
- :func:`hals_columns`: one HALS sweep.

Rows are independent, so the KL kernels run in parallel over fixed blocks of
rows whose partial sums are added in block order: deterministic.
"""
import numba
import numpy as np
from numba import types
from numba.core.extending import overload
from numba.cpython.unsafe.numbers import viewer

from ..matrix.compact import nonzero_words, row_nonzeros

_OPTIONS = dict(nogil=True, cache=True, fastmath=False)


@numba.njit(inline="always", **_OPTIONS)
def _model_value(A, i, B, j, floor):
    """``max(floor, A[i] @ B[j])``: the model at one entry, in float64."""
    model = 0.0
    for q in range(A.shape[1]):
        model += A[i, q] * B[j, q]
    return model if model > floor else floor


@numba.njit(parallel=True, **_OPTIONS)
def kl_update_csr(indptr, indices, data, A, B, B_sums, l1, l2, floor, model_floor,
                  with_objective):
    """KL multiplicative update of ``A`` in place, on the nonzeros of ``Y`` only.

    For every row ``i``::

        A[i] <- max(floor, A[i] * ((Y[i] / (A[i] @ B.T)) @ B) / (B.sum(0) + l1 + l2 * A[i]))

    where the ratio is needed only where ``Y`` is nonzero, so the dense
    product ``A @ B.T`` is never formed. Optionally the data term of the KL
    divergence at the *updated* ``A``, ``sum(Y * log(Y / (A @ B.T)))``, is
    accumulated in the same pass over the row, while it is in cache.

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR structure of ``Y`` (shape (n, m)).
    A : ndarray, shape (n, k)
        Updated in place.
    B : ndarray, shape (m, k)
    B_sums : ndarray, shape (k,)
        ``B.sum(axis=0)`` (the denominator).
    l1, l2 : ndarray, shape (k,)
        L1 and L2 penalty weights per column of ``A`` (zeros: no penalty).
    floor : float
        Lower bound of the entries of ``A`` (against zero-locking).
    model_floor : float
        Lower bound of a model value (against division by zero).
    with_objective : bool
        Whether to compute the data term.

    Returns
    -------
    float
        The data term at the updated ``A`` (0 if not requested).
    """
    n, k = A.shape
    per_row = np.zeros(n, dtype=np.float64)
    numerator = np.zeros((n, k), dtype=np.float64)
    for i in numba.prange(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            ratio = data[p] / _model_value(A, i, B, j, model_floor)
            for q in range(k):
                numerator[i, q] += ratio * B[j, q]
        for q in range(k):
            denominator = B_sums[q] + l1[q] + l2[q] * A[i, q]
            if denominator > 0:
                value = A[i, q] * numerator[i, q] / denominator
                A[i, q] = value if value > floor else floor
        if with_objective:
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                model = _model_value(A, i, B, indices[p], model_floor)
                acc += data[p] * np.log(data[p] / model)
            per_row[i] = acc
    return per_row.sum()


@numba.njit(parallel=True, **_OPTIONS)
def kl_data_term_csr(indptr, indices, data, A, B, floor):
    """``sum(Y * log(Y / (A @ B.T)))`` over the nonzeros of ``Y`` (CSR).

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR structure of ``Y``.
    A : ndarray, shape (n, k)
    B : ndarray, shape (m, k)
    floor : float
        Lower bound of the model value.

    Returns
    -------
    float
    """
    n = A.shape[0]
    per_row = np.zeros(n, dtype=np.float64)
    for i in numba.prange(n):
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            y = data[p]
            acc += y * np.log(y / _model_value(A, i, B, indices[p], floor))
        per_row[i] = acc
    return per_row.sum()


@numba.njit(inline="always", fastmath=True, nogil=True)
def _ratio_at(value, w, Ht, j, model_floor):
    """``value / max(model_floor, w · Ht[j])``: the data-to-model ratio at one nonzero."""
    model = 0.0
    for q in range(w.shape[0]):
        model += w[q] * Ht[j, q]
    return value / max(model, model_floor)


#: Row blocks of :func:`kl_chunk_pass`: a fixed number, so that the summed
#: component statistics do not depend on the number of threads.
KL_PASS_BLOCKS = 4


_LN2 = np.float32(np.log(2.0))


@numba.njit(inline="always", fastmath=True, nogil=True)
def _log32(x):
    """Natural log of a positive, finite float32, in a form the compiler vectorizes.

    ``x = 2**e * f`` with ``f`` in [√½, √2) (exponent and mantissa read from
    the bits), ``log f = 2 atanh(s)``, ``s = (f - 1) / (f + 1)``, ``|s| < 0.172``,
    by its series to ``s**9`` (truncation below 1e-9, under float32
    rounding). A loop over ``np.log`` calls the C library once per value;
    this loop runs 8 values per instruction on AVX2.
    """
    bits = viewer(np.float32(x), numba.int32)
    mantissa = viewer(np.int32((bits & 0x7FFFFF) | 0x3F800000), numba.float32)  # in [1, 2)
    high = mantissa > np.float32(1.4142135)
    f = mantissa * (np.float32(0.5) if high else np.float32(1.0))
    exponent = np.float32(((bits >> 23) & 0xFF) - (126 if high else 127))
    s = (f - np.float32(1.0)) / (f + np.float32(1.0))
    s2 = s * s
    series = np.float32(1.0) + s2 * (np.float32(1.0 / 3.0) + s2 * (
        np.float32(0.2) + s2 * (np.float32(1.0 / 7.0) + s2 * np.float32(1.0 / 9.0))))
    return np.float32(2.0) * s * series + exponent * _LN2


def _log(x):
    """``log x`` in the precision of ``x``, 0 for ``x = 0`` (a zero entry's ratio).

    float32 values go through :func:`_log32` (vectorized); float64 values
    through ``np.log``, so that the objective of float64 data keeps float64
    precision (a near-exact fit is not stopped by float32 rounding).
    """
    return np.log(x) if x > 0 else 0.0


@overload(_log, inline="always", jit_options=dict(fastmath=True, nogil=True))
def _log_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: _log32(x)
    return lambda x: np.log(x) if x > 0 else 0.0


@numba.njit(inline="always", fastmath=True, nogil=True)
def _update_row(w, numerator, Ht_sums, l1, l2, floor):
    """The multiplicative KL update of one row's maps ``w`` from its numerator, in place."""
    for q in range(w.shape[0]):
        denominator = Ht_sums[q] + l1[q] + l2[q] * w[q]
        value = w[q] * numerator[q] / denominator if denominator > 0 else w[q]
        w[q] = value if value > floor else floor


@numba.njit(inline="always", fastmath=True, nogil=True)
def _kl_row(columns, values, count, i, W, W_new, Ht, Ht_sums, l1, l2, floor, model_floor,
            update_maps, lagged, w, numerator, partial, ratios):
    """One row of a KL pass, from its ``count`` nonzeros ``(columns, values)``.

    Updates the row's maps (if asked) into ``W_new[i]``, adds the row's share
    of the component numerator to ``partial`` and returns its data term.
    ``lagged``: the statistics at the row's maps as given and their update
    from the same ratios (the model is evaluated once), else the statistics
    at the updated maps.
    ``ratios`` (of ``Ht``'s type, at least ``count`` long) is scratch space.
    """
    k = W.shape[1]
    for q in range(k):
        w[q] = W[i, q]
    if update_maps and not lagged:
        numerator[:] = 0.0
        for p in range(count):
            j = columns[p]
            ratio = _ratio_at(np.float64(values[p]), w, Ht, j, model_floor)
            for q in range(k):
                numerator[q] += ratio * Ht[j, q]
        _update_row(w, numerator, Ht_sums, l1, l2, floor)
    for p in range(count):
        j = columns[p]
        ratio = _ratio_at(np.float64(values[p]), w, Ht, j, model_floor)
        for q in range(k):
            partial[j, q] += ratio * w[q]
        ratios[p] = ratio
    if update_maps and lagged:  # the maps' numerator from the same ratios, still in cache
        numerator[:] = 0.0
        for p in range(count):
            j = columns[p]
            for q in range(k):
                numerator[q] += ratios[p] * Ht[j, q]
        _update_row(w, numerator, Ht_sums, l1, l2, floor)
    for q in range(k):
        W_new[i, q] = w[q]
    term = 0.0
    for p in range(count):  # apart from the loop above, so that it vectorizes
        # (in float64 whatever the values' type: the same sum from raw and CSR chunks)
        term += np.float64(values[p]) * _log(ratios[p])
    return term


def kl_chunk_pass(block, W, Ht, Ht_sums, l1, l2, floor, model_floor, update_maps,
                  lagged=False):
    """One KL pass over a raw chunk: its maps' update and the components' statistics.

    Reads the chunk as stored (uint8, uint16, float...), skipping zeros, so
    counted electrons are never converted, copied or turned into CSR. For
    every row ``i``, in two sweeps over that row while it is in cache:

    1. (``update_maps``) the multiplicative KL update of the maps,
       ``w ← max(floor, w ⊙ ((x ⊘ w Hᵀ) @ Ht) ⊘ (Ht.sum(0) + l1 + l2 w))``;
    2. with the new ``w``: the numerator of the component update,
       ``N += (x ⊘ w Hᵀ)ᵀ w``, and the data term ``Σ x log(x / w Hᵀ)``.

    ``lagged`` (with ``update_maps``): the model at the maps as given is
    evaluated once, and its ratio ``x ⊘ w Hᵀ`` gives the maps' numerator,
    ``N`` and the data term, all at ``W``; the maps' update follows from
    the numerator (the one-pass iteration with map projections, see
    :mod:`~hyperspy_hnmf.solvers._passes`). About 3k multiply-adds per
    entry instead of 4k.

    Rows go in :data:`KL_PASS_BLOCKS` fixed blocks (parallel); each block has
    its own ``N``, summed in block order: the result is deterministic.
    :func:`kl_chunk_pass_csr` does the same for a chunk held as CSR (event
    data), with the same row routine.

    Parameters
    ----------
    block : ndarray, shape (n, m)
        The chunk, any real dtype; zeros are skipped.
    W : ndarray, shape (n, k)
        The chunk's maps (not modified).
    Ht : ndarray, shape (m, k)
        Components, transposed.
    Ht_sums : ndarray, shape (k,)
        ``Ht.sum(axis=0)``.
    l1, l2 : ndarray, shape (k,)
        Map penalty weights (zeros: none).
    floor, model_floor : float
        Lower bounds of a map entry and of a model value.
    update_maps : bool
    lagged : bool
        With ``update_maps``: ``N`` and the data term at ``W``, not at ``W_new``.

    Returns
    -------
    W_new : ndarray, shape (n, k)
        Updated maps (a copy of ``W`` when ``update_maps`` is False).
    N : ndarray, shape (m, k), float64
    data_term : float

    Examples
    --------
    >>> X = np.array([[2, 0], [1, 3]], dtype=np.uint16)
    >>> W, Ht = np.ones((2, 1), np.float32), np.ones((2, 1), np.float32)
    >>> _, N, term = kl_chunk_pass(X, W, Ht, Ht.sum(0), np.zeros(1), np.zeros(1),
    ...                            1e-16, 1e-12, False)
    >>> N.ravel().tolist(), round(term, 6)
    ([3.0, 3.0], 4.682131)

    Lagged: the same statistics (at ``W``), and the maps' update from them.

    >>> W_new, N, term = kl_chunk_pass(X, W, Ht, Ht.sum(0), np.zeros(1), np.zeros(1),
    ...                                1e-16, 1e-12, True, True)
    >>> W_new.ravel().tolist(), N.ravel().tolist(), round(term, 6)
    ([1.0, 2.0], [3.0, 3.0], 4.682131)
    """
    words, lanes = nonzero_words(block)
    return _kl_chunk_pass(block, words, lanes, W, Ht, Ht_sums, l1, l2, floor, model_floor,
                          update_maps, lagged)


@numba.njit(nogil=True)
def _pass_buffers(W, m):
    """New maps, the row blocks' partial statistics and data terms, and rows per block."""
    n, k = W.shape
    step = (n + KL_PASS_BLOCKS - 1) // KL_PASS_BLOCKS
    return (np.empty_like(W), np.zeros((KL_PASS_BLOCKS, m, k)), np.zeros(KL_PASS_BLOCKS),
            step)


@numba.njit(nogil=True)
def _sum_blocks(partial):
    """The row blocks' statistics summed in block order (deterministic)."""
    N = np.zeros(partial.shape[1:])
    for b in range(partial.shape[0]):
        N += partial[b]
    return N


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True, error_model="numpy")
def _kl_chunk_pass(block, words, lanes, W, Ht, Ht_sums, l1, l2, floor, model_floor,
                   update_maps, lagged):
    n, m = block.shape
    k = W.shape[1]
    W_new, partial, terms, step = _pass_buffers(W, m)
    for b in numba.prange(KL_PASS_BLOCKS):
        w = np.empty(k)
        numerator = np.empty(k)
        columns = np.empty(m, dtype=np.int64)
        values = np.empty(m)
        ratios = np.empty(m, dtype=Ht.dtype)
        term = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            # The row's nonzeros, gathered once (zeros are most of counted data).
            count = row_nonzeros(block, words, lanes, i, columns, values)
            term += _kl_row(columns, values, count, i, W, W_new, Ht, Ht_sums, l1, l2, floor,
                            model_floor, update_maps, lagged, w, numerator, partial[b],
                            ratios)
        terms[b] = term
    return W_new, _sum_blocks(partial), terms.sum()


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True, error_model="numpy")
def kl_chunk_pass_csr(indptr, indices, data, m, W, Ht, Ht_sums, l1, l2, floor, model_floor,
                      update_maps, lagged=False):
    """:func:`kl_chunk_pass` for a chunk held as CSR: cost ∝ its nonzeros (events).

    Each row's nonzeros are read in place from ``indices``/``data`` (no
    gather over the ``m`` columns), so a pass over event data costs time
    proportional to the number of distinct (probe position, detector pixel)
    pairs hit, not to the number of voxels. Same row routine, same fixed row
    blocks, same result as :func:`kl_chunk_pass` on the dense chunk.

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR structure of the chunk (shape (n, m)); ``data`` > 0.
    m : int
        Number of columns.
    W, Ht, Ht_sums, l1, l2, floor, model_floor, update_maps, lagged
        As :func:`kl_chunk_pass`.

    Returns
    -------
    W_new, N, data_term
        As :func:`kl_chunk_pass`.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> X = sp.csr_matrix(np.array([[2, 0], [1, 3]], dtype=np.float32))
    >>> W, Ht = np.ones((2, 1), np.float32), np.ones((2, 1), np.float32)
    >>> _, N, term = kl_chunk_pass_csr(X.indptr, X.indices, X.data, 2, W, Ht, Ht.sum(0),
    ...                                np.zeros(1), np.zeros(1), 1e-16, 1e-12, False)
    >>> N.ravel().tolist(), round(term, 6)
    ([3.0, 3.0], 4.682131)
    """
    n, k = W.shape
    W_new, partial, terms, step = _pass_buffers(W, m)
    for b in numba.prange(KL_PASS_BLOCKS):
        w = np.empty(k)
        numerator = np.empty(k)
        ratios = np.empty(m, dtype=Ht.dtype)
        term = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            first = indptr[i]
            last = indptr[i + 1]
            term += _kl_row(indices[first:last], data[first:last], last - first, i, W, W_new,
                            Ht, Ht_sums, l1, l2, floor, model_floor, update_maps, lagged,
                            w, numerator, partial[b], ratios)
        terms[b] = term
    return W_new, _sum_blocks(partial), terms.sum()


#: Rows and columns of the tiles of :func:`kl_dense_chunk_pass`: a tile's
#: components and statistics (float32: 16 KiB each) stay in the L1 cache
#: while the tile's rows go through them.
DENSE_TILE_ROWS = 16
DENSE_TILE_COLUMNS = 512
#: Row tiles between two float64 flushes of the float32 statistics.
DENSE_FLUSH_TILES = 4


@numba.njit(inline="always", fastmath=True, nogil=True)
def _add_numerator(ratio, H, left, width, numerator):
    """``numerator += ratio @ H[:, left:left + width].T``: one row's share over one tile."""
    for q in range(H.shape[0]):
        h = H[q, left:left + width]
        total = H.dtype.type(0.0)
        for j in range(width):
            total += ratio[j] * h[j]
        numerator[q] += total


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True, error_model="numpy")
def _kl_dense_chunk_pass(block, W, H, Ht_sums, l1, l2, floor, model_floor, update_maps,
                         lagged):
    n, m = block.shape
    k = W.shape[1]
    dtype = H.dtype
    W_new = W.copy()
    partial = np.zeros((KL_PASS_BLOCKS, k, m))
    terms = np.zeros(KL_PASS_BLOCKS)
    step = (n + KL_PASS_BLOCKS - 1) // KL_PASS_BLOCKS
    R, T = DENSE_TILE_ROWS, DENSE_TILE_COLUMNS
    one_sweep = update_maps and lagged
    for b in numba.prange(KL_PASS_BLOCKS):
        x = np.empty(T, dtype=dtype)
        ratios = np.empty((R, T), dtype=dtype)
        ratio = ratios[0]
        numerator = np.zeros((R, k))
        acc = np.zeros((k, m), dtype=dtype)
        term = 0.0
        first, last = b * step, min(n, (b + 1) * step)
        for tile, top in enumerate(range(first, last, R)):
            bottom = min(last, top + R)
            if update_maps:
                numerator[:] = 0.0
            if update_maps and not lagged:  # sweep 1: the maps' numerators at the current maps
                for left in range(0, m, T):
                    width = min(T, m - left)
                    for i in range(top, bottom):
                        _tile_ratio(block, i, left, width, W_new, H, model_floor, x, ratio)
                        _add_numerator(ratio, H, left, width, numerator[i - top])
                for i in range(top, bottom):
                    _update_row(W_new[i], numerator[i - top], Ht_sums, l1, l2, floor)
            # sweep 2, at the new maps (lagged: at the maps as given, whose
            # numerators it also takes): component statistics and data term
            for left in range(0, m, T):
                width = min(T, m - left)
                for i in range(top, bottom):
                    row_ratio = ratios[i - top, :width]
                    _tile_ratio(block, i, left, width, W_new, H, model_floor, x, row_ratio)
                    row_term = dtype.type(0.0)
                    for j in range(width):
                        row_term += x[j] * _log(row_ratio[j])  # x = 0: ratio 0, finite log
                    term += row_term
                    if one_sweep:
                        _add_numerator(row_ratio, H, left, width, numerator[i - top])
                # acc[:, tile] += W_new[rows].T @ ratios, four rows per sweep along the
                # tile: one load and one store of acc per four multiply-adds
                for q in range(k):
                    a = acc[q, left:left + width]
                    r = 0
                    while r + 4 <= bottom - top:
                        w0, w1 = W_new[top + r, q], W_new[top + r + 1, q]
                        w2, w3 = W_new[top + r + 2, q], W_new[top + r + 3, q]
                        y0, y1 = ratios[r, :width], ratios[r + 1, :width]
                        y2, y3 = ratios[r + 2, :width], ratios[r + 3, :width]
                        for j in range(width):
                            a[j] += (w0 * y0[j] + w1 * y1[j]) + (w2 * y2[j] + w3 * y3[j])
                        r += 4
                    for r in range(r, bottom - top):
                        w = W_new[top + r, q]
                        y = ratios[r, :width]
                        for j in range(width):
                            a[j] += w * y[j]
            if one_sweep:  # the tile's statistics are taken: update its maps
                for i in range(top, bottom):
                    _update_row(W_new[i], numerator[i - top], Ht_sums, l1, l2, floor)
            if tile % DENSE_FLUSH_TILES == DENSE_FLUSH_TILES - 1 or bottom == last:
                for q in range(k):
                    for j in range(m):
                        partial[b, q, j] += acc[q, j]
                        acc[q, j] = 0.0
        terms[b] = term
    N = np.zeros((k, m))
    for b in range(KL_PASS_BLOCKS):
        N += partial[b]
    return W_new, N.T.copy(), terms.sum()


@numba.njit(inline="always", fastmath=True, nogil=True)
def _tile_ratio(block, i, left, width, W, H, model_floor, x, ratio):
    """Row ``i``'s entries in columns ``left:left + width`` into ``x``, and ``x / (W[i] @ H)``."""
    row = block[i, left:left + width]
    for j in range(width):
        x[j] = row[j]
        ratio[j] = 0.0
    k = H.shape[0]
    q = 0
    while q + 4 <= k:  # four components per sweep along the tile: fewer loads and stores
        w0, w1, w2, w3 = W[i, q], W[i, q + 1], W[i, q + 2], W[i, q + 3]
        h0, h1 = H[q, left:left + width], H[q + 1, left:left + width]
        h2, h3 = H[q + 2, left:left + width], H[q + 3, left:left + width]
        for j in range(width):
            ratio[j] += (w0 * h0[j] + w1 * h1[j]) + (w2 * h2[j] + w3 * h3[j])
        q += 4
    for q in range(q, k):
        w = W[i, q]
        h = H[q, left:left + width]
        for j in range(width):
            ratio[j] += w * h[j]
    for j in range(width):
        model = ratio[j]
        ratio[j] = x[j] / (model if model > model_floor else model_floor)  # (vectorizes)


def kl_dense_chunk_pass(block, W, Ht, Ht_sums, l1, l2, floor, model_floor, update_maps,
                        lagged=False):
    """:func:`kl_chunk_pass` for mostly-nonzero chunks: every entry, tile by tile.

    Same arguments (``lagged`` included), update and statistics. The components are held as ``H``
    (``k × m``) and the chunk is read in tiles of :data:`DENSE_TILE_ROWS`
    rows × :data:`DENSE_TILE_COLUMNS` columns, so that every loop runs along
    contiguous memory in the computation's float type (8 float32 entries per
    AVX2 instruction) on operands in the L1 cache: the model ``w H``, the
    ratio, its products with ``H`` and with the tile's maps, and the data
    term (a zero entry adds nothing). The component statistics are
    accumulated in the float type over :data:`DENSE_FLUSH_TILES` row tiles,
    then in float64, by the same fixed row blocks as :func:`kl_chunk_pass`:
    deterministic. The divisions vectorize because the kernel is compiled
    with NumPy's error model (no division-by-zero test; the model is floored
    at ``model_floor`` anyway).

    Examples
    --------
    >>> X = np.array([[2, 1], [1, 3]], dtype=np.uint16)
    >>> W, Ht = np.ones((2, 1), np.float32), np.ones((2, 1), np.float32)
    >>> _, N, term = kl_dense_chunk_pass(X, W, Ht, Ht.sum(0), np.zeros(1), np.zeros(1),
    ...                                  1e-16, 1e-12, False)
    >>> N.ravel().tolist(), round(term, 4)
    ([3.0, 4.0], 4.6821)
    """
    H = np.ascontiguousarray(Ht.T)
    return _kl_dense_chunk_pass(np.ascontiguousarray(block), W, H, Ht_sums, l1, l2, floor,
                                H.dtype.type(model_floor), update_maps, lagged)


@numba.njit(inline="always", fastmath=True, nogil=True, error_model="numpy")
def _row_ratio(x, w, H, model_floor, ratio):
    """``ratio = x ⊘ max(model_floor, w H)`` along one row, in ``H``'s float type.

    ``x``: the row (length m), ``w``: its k weights, ``H``: k × m. The model
    is accumulated component by component along the row (vectorized).
    """
    m = x.shape[0]
    for p in range(m):
        ratio[p] = 0.0
    for q in range(H.shape[0]):
        weight = H.dtype.type(w[q])
        h = H[q]
        for p in range(m):
            ratio[p] += weight * h[p]
    for p in range(m):
        model = ratio[p]
        ratio[p] = x[p] / (model if model > model_floor else model_floor)


#: Rows between two float64 flushes of :func:`ratio_times_dense`'s float32 sums.
RATIO_FLUSH_ROWS = 64


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True, error_model="numpy")
def ratio_times_dense(X, U, Vt, C, transpose, with_objective, model_floor):
    """KL ratio products of dense data, ``(X ⊘ U Vᵀ) C`` or ``(X ⊘ U Vᵀ)ᵀ C``, in one sweep.

    Each row's model ``U[i] Vᵀ``, its ratio to the data and the product run
    along the row in the data's float type (vectorized), while the row is in
    cache; the dense model is never formed. Rows go in
    :data:`KL_PASS_BLOCKS` fixed blocks (parallel); sums over rows are
    flushed to float64 every :data:`RATIO_FLUSH_ROWS` rows and added in
    block order: deterministic.

    Parameters
    ----------
    X : ndarray, shape (n, m), float32 or float64, C-contiguous
    U : ndarray, shape (n, r), of ``X``'s type
    Vt : ndarray, shape (r, m), of ``X``'s type, C-contiguous
    C : ndarray
        ``transpose`` False: shape (c, m), of ``X``'s type (``Cᵀ`` of the
        ``m × c`` matrix ``C``); True: shape (n, c).
    transpose : bool
    with_objective : bool
        Also return the data term ``Σ x log(x / model)``.
    model_floor : float
        Lower bound of a model value.

    Returns
    -------
    out : ndarray, float64
        Shape (n, c), or (m, c) when ``transpose``.
    data_term : float
        0 unless ``with_objective``.

    Examples
    --------
    >>> X = np.array([[2.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    >>> U = np.ones((2, 1), np.float32)
    >>> Vt = np.array([[1.0, 2.0]], np.float32)
    >>> out, term = ratio_times_dense(X, U, Vt, Vt, False, True, np.float32(1e-30))
    >>> out.ravel().tolist(), round(term, 4)  # ratios [2, 2] and [1, 0]: 6 log 2
    ([6.0, 1.0], 4.1589)
    >>> ratio_times_dense(X, U, Vt, U, True, False, np.float32(1e-30))[0].ravel().tolist()
    [3.0, 2.0]
    """
    n, m = X.shape
    c = C.shape[1] if transpose else C.shape[0]
    dtype = X.dtype
    out = np.zeros((n, c)) if not transpose else np.zeros((1, 1))
    partial = np.zeros((KL_PASS_BLOCKS, c, m)) if transpose else np.zeros((1, 1, 1))
    terms = np.zeros(KL_PASS_BLOCKS)
    step = (n + KL_PASS_BLOCKS - 1) // KL_PASS_BLOCKS
    for b in numba.prange(KL_PASS_BLOCKS):
        ratio = np.empty(m, dtype=dtype)
        acc = np.zeros((c, m) if transpose else (1, 1), dtype=dtype)
        term = 0.0
        first, last = b * step, min(n, (b + 1) * step)
        for i in range(first, last):
            row = X[i]
            _row_ratio(row, U[i], Vt, model_floor, ratio)
            if with_objective:
                for j in range(m):  # x = 0: ratio 0, finite log; summed in float64
                    term += row[j] * _log(ratio[j])
            if transpose:
                for q in range(c):
                    weight = C[i, q]
                    a = acc[q]
                    for j in range(m):
                        a[j] += weight * ratio[j]
                if (i - first) % RATIO_FLUSH_ROWS == RATIO_FLUSH_ROWS - 1 or i == last - 1:
                    for q in range(c):
                        for j in range(m):
                            partial[b, q, j] += acc[q, j]
                            acc[q, j] = 0.0
            else:
                for q in range(c):
                    v = C[q]
                    total = dtype.type(0.0)
                    for j in range(m):
                        total += ratio[j] * v[j]
                    out[i, q] = total
        terms[b] = term
    if transpose:
        out = np.zeros((c, m))
        for b in range(KL_PASS_BLOCKS):
            out += partial[b]
        out = out.T.copy()
    return out, terms.sum()


@numba.njit(inline="always", fastmath=True, nogil=True, error_model="numpy")
def _row_maps(x, H, a, denominator, l1, l2, max_iter, tol, floor, model_floor, ratio,
              numerator):
    """KL maps ``a`` of one row ``x`` for fixed ``H`` (k × len(x)), in place; iterations run.

    Multiplicative updates until one changes ``a`` by at most ``tol`` (L1,
    relative to ``a``'s sum before it) or ``max_iter`` are done. The model,
    the ratio and the products run along the row in the data's float type
    (vectorized); ``a`` and the update are float64. ``ratio`` (len(x)) and
    ``numerator`` (k) are scratch space.
    """
    m = x.shape[0]
    k = H.shape[0]
    zero = H.dtype.type(0.0)
    for iteration in range(max_iter):
        _row_ratio(x, a, H, model_floor, ratio)
        for q in range(k):
            total = zero
            for p in range(m):
                total += ratio[p] * H[q, p]
            numerator[q] = total
        change = 0.0
        size = 0.0
        for q in range(k):
            scale = denominator[q] + l1[q] + l2[q] * a[q]
            value = a[q] * numerator[q] / max(scale, 1e-300)
            if value < floor:
                value = floor
            change += abs(value - a[q])
            size += a[q]
            a[q] = value
        if change <= tol * max(size, 1e-300):
            return iteration + 1
    return max_iter


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True, error_model="numpy")
def kl_maps_csr(indptr, indices, data, H, A, denominator, l1, l2, max_iter, tol, floor,
                model_floor):
    """KL maps of every CSR row for fixed components ``H``: each row on its nonzeros only.

    As :func:`~._fixed_components.kl_maps` (which calls it for CSR data;
    same arguments, with the CSR arrays for ``X``). The components at a row's nonzero columns are gathered once per row;
    the row's zeros add nothing to the ratio products, and the denominator
    ``H.sum(axis=1)`` covers every column.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> X = sp.csr_matrix(np.array([[2.0, 0.0, 4.0]], dtype=np.float32))
    >>> H = np.array([[1.0, 0.5, 2.0]], dtype=np.float32)
    >>> A = np.ones((1, 1))
    >>> _ = kl_maps_csr(X.indptr, X.indices, X.data, H, A, H.sum(1, dtype=np.float64),
    ...                 np.zeros(1), np.zeros(1), 200, 1e-12, 1e-16, 1e-30)
    >>> round(float(A[0, 0]), 6)  # (2 + 4) / (1 + 0.5 + 2)
    1.714286
    """
    n = indptr.shape[0] - 1
    k = H.shape[0]
    iterations = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        first, last = indptr[i], indptr[i + 1]
        count = last - first
        gathered = np.empty((k, count), dtype=H.dtype)
        for q in range(k):
            for p in range(count):
                gathered[q, p] = H[q, indices[first + p]]
        ratio = np.empty(count, dtype=H.dtype)
        numerator = np.empty(k)
        iterations[i] = _row_maps(data[first:last], gathered, A[i], denominator, l1, l2,
                                  max_iter, tol, floor, model_floor, ratio, numerator)
    return iterations


@numba.njit(cache=True, nogil=True)
def hals_columns(A, YB, BtB, l1, l2, tiny):
    """One HALS sweep over the columns of ``A``, in place; the squared change.

    Column ``j`` (in order, each using the columns already updated) becomes
    ``max(0, A[:, j] - g / (BtB[j, j] + l2[j]))`` with the gradient
    ``g = A @ BtB[:, j] - YB[:, j] + l1[j] + l2[j] A[:, j]``, accumulated in
    float64; values below ``tiny`` (subnormal) become 0. Rows are
    independent, so each row is updated where it lies in memory.

    Parameters
    ----------
    A : ndarray, shape (n, k)
    YB : ndarray, shape (n, k)
    BtB : ndarray, shape (k, k)
    l1, l2 : ndarray, shape (k,), float64
    tiny : float

    Returns
    -------
    float

    Examples
    --------
    >>> A = np.zeros((1, 2))
    >>> hals_columns(A, np.array([[1.0, -1.0]]), np.eye(2), np.zeros(2), np.zeros(2), 1e-300)
    1.0
    """
    n, k = A.shape
    change = 0.0
    for j in range(k):
        hess = BtB[j, j] + l2[j]
        if hess <= 0:
            continue
        for i in range(n):
            old = A[i, j]
            gradient = l1[j] + l2[j] * old - YB[i, j]
            for q in range(k):
                gradient += A[i, q] * BtB[q, j]
            new = old - gradient / hess
            if new < tiny:
                new = 0.0
            delta = new - old
            change += delta * delta
            A[i, j] = new
    return change
