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
