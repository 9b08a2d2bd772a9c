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


@numba.njit(parallel=True, **_OPTIONS)
def kl_numerator_csr(indptr, indices, data, A, B, floor):
    """Numerator of the KL multiplicative update, on the nonzeros only.

    Computes ``N = (Y / (A @ B.T)) @ B`` where ``Y`` is given in CSR form;
    the ratio is needed only where ``Y`` is nonzero, so the dense product
    ``A @ B.T`` is never formed.

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR structure of ``Y`` (shape (n, m)).
    A : ndarray, shape (n, k)
    B : ndarray, shape (m, k)
    floor : float
        Lower bound of the model value at a nonzero (guards division by zero).

    Returns
    -------
    ndarray, shape (n, k)
    """
    n, k = A.shape
    out = np.zeros((n, k), dtype=A.dtype)
    for i in numba.prange(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            model = 0.0
            for q in range(k):
                model += A[i, q] * B[j, q]
            if model < floor:
                model = floor
            ratio = data[p] / model
            for q in range(k):
                out[i, q] += ratio * B[j, q]
    return out


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
    n, k = A.shape
    per_row = np.zeros(n, dtype=np.float64)
    for i in numba.prange(n):
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            model = 0.0
            for q in range(k):
                model += A[i, q] * B[j, q]
            if model < floor:
                model = floor
            y = data[p]
            acc += y * np.log(y / model)
        per_row[i] = acc
    return per_row.sum()
