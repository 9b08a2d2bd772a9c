"""Numba kernels for the loops that BLAS cannot express: KL on the nonzeros.

Each kernel serves one *half-step* of the alternating scheme for the model
``Y ≈ A @ B.T`` with ``Y`` sparse (CSR). Updating the maps uses ``Y = X``,
``A = W``, ``B = H.T``; updating the components uses ``Y = X.T`` (as CSR),
``A = H.T``, ``B = W``. Rows of ``Y`` are independent, so the kernels run in
parallel over rows, deterministically (no shared accumulators).
"""

import numba
import numpy as np

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


@numba.njit(inline="always", nogil=True)
def _row_nonzeros(block, words, lanes, i, columns, values):
    """Gather the nonzeros of row ``i``: their columns and values; returns their count.

    With ``lanes > 0``, ``words`` is the row-major chunk viewed as 64-bit
    words of ``lanes`` entries each: a zero word (most of them, for counted
    electrons) skips ``lanes`` entries with one test.
    """
    count = 0
    if lanes > 0:
        for t in range(words.shape[1]):
            if words[i, t] != 0:
                base = t * lanes
                for lane in range(lanes):
                    x = block[i, base + lane]
                    if x != 0:
                        columns[count] = base + lane
                        values[count] = x
                        count += 1
    else:
        for j in range(block.shape[1]):
            x = block[i, j]
            if x != 0:
                columns[count] = j
                values[count] = x
                count += 1
    return count


@numba.njit(inline="always", fastmath=True, nogil=True)
def _kl_row(columns, values, count, i, W, W_new, Ht, Ht_sums, l1, l2, floor, model_floor,
            update_maps, w, numerator, partial):
    """One row of a KL pass, from its ``count`` nonzeros ``(columns, values)``.

    Updates the row's maps (if asked) into ``W_new[i]``, adds the row's share
    of the component numerator to ``partial`` and returns its data term.
    """
    k = W.shape[1]
    for q in range(k):
        w[q] = W[i, q]
    if update_maps:
        numerator[:] = 0.0
        for p in range(count):
            j = columns[p]
            ratio = _ratio_at(values[p], w, Ht, j, model_floor)
            for q in range(k):
                numerator[q] += ratio * Ht[j, q]
        for q in range(k):
            denominator = Ht_sums[q] + l1[q] + l2[q] * w[q]
            value = w[q] * numerator[q] / denominator if denominator > 0 else w[q]
            w[q] = value if value > floor else floor
    for q in range(k):
        W_new[i, q] = w[q]
    term = 0.0
    for p in range(count):
        j = columns[p]
        ratio = _ratio_at(values[p], w, Ht, j, model_floor)
        for q in range(k):
            partial[j, q] += ratio * w[q]
        term += values[p] * np.log(np.float32(ratio))
    return term


def kl_chunk_pass(block, W, Ht, Ht_sums, l1, l2, floor, model_floor, update_maps):
    """One KL pass over a raw chunk: its maps' update and the components' statistics.

    Reads the chunk as stored (uint8, uint16, float...), skipping zeros, so
    counted electrons are never converted, copied or turned into CSR. For
    every row ``i``, in two sweeps over that row while it is in cache:

    1. (``update_maps``) the multiplicative KL update of the maps,
       ``w ← max(floor, w ⊙ ((x ⊘ w Hᵀ) @ Ht) ⊘ (Ht.sum(0) + l1 + l2 w))``;
    2. with the new ``w``: the numerator of the component update,
       ``N += (x ⊘ w Hᵀ)ᵀ w``, and the data term ``Σ x log(x / w Hᵀ)``.

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
    """
    lanes = 8 // block.itemsize if block.dtype.kind in "ub" and block.itemsize < 8 else 0
    if lanes and block.flags.c_contiguous and block.shape[1] % lanes == 0:
        words = block.view(np.uint64)
    else:
        lanes, words = 0, np.zeros((block.shape[0], 0), dtype=np.uint64)
    return _kl_chunk_pass(block, words, lanes, W, Ht, Ht_sums, l1, l2, floor, model_floor,
                          update_maps)


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


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
def _kl_chunk_pass(block, words, lanes, W, Ht, Ht_sums, l1, l2, floor, model_floor,
                   update_maps):
    n, m = block.shape
    k = W.shape[1]
    W_new, partial, terms, step = _pass_buffers(W, m)
    for b in numba.prange(KL_PASS_BLOCKS):
        w = np.empty(k)
        numerator = np.empty(k)
        columns = np.empty(m, dtype=np.int64)
        values = np.empty(m)
        term = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            # The row's nonzeros, gathered once (zeros are most of counted data).
            count = _row_nonzeros(block, words, lanes, i, columns, values)
            term += _kl_row(columns, values, count, i, W, W_new, Ht, Ht_sums, l1, l2, floor,
                            model_floor, update_maps, w, numerator, partial[b])
        terms[b] = term
    return W_new, _sum_blocks(partial), terms.sum()


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
def kl_chunk_pass_csr(indptr, indices, data, m, W, Ht, Ht_sums, l1, l2, floor, model_floor,
                      update_maps):
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
    W, Ht, Ht_sums, l1, l2, floor, model_floor, update_maps
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
        term = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            first = indptr[i]
            last = indptr[i + 1]
            term += _kl_row(indices[first:last], data[first:last], last - first, i, W, W_new,
                            Ht, Ht_sums, l1, l2, floor, model_floor, update_maps, w,
                            numerator, partial[b])
        terms[b] = term
    return W_new, _sum_blocks(partial), terms.sum()
