"""KL maps for fixed components: every row on its nonzeros, or on every entry if it is dense.

The maps of a row under fixed components depend on that row alone: each row
iterates multiplicative updates to its own stop (:func:`~._kernels._row_maps`).
A row with at most :data:`ROW_CSR_DENSITY` of nonzeros iterates on its
nonzeros only, a denser one on every entry, whatever the storage of the data
(dense, CSR, a chunk of a scan read in passes): a row gets the same maps,
bit for bit, from each. Dense rows are gathered where they lie, without a
CSR copy of the data.
"""

import numba
import numpy as np
import scipy.sparse as sp

from ..matrix.compact import row_nonzeros
from ..matrix.streamed import to_csr
from ._kernels import _row_maps, kl_maps_csr

__all__ = ["ROW_CSR_DENSITY", "kl_maps"]

#: Rows with at most this fraction of nonzeros iterate on their nonzeros
#: only. One update of a row on its nonzeros costs about what one on every
#: entry of a row that dense does: measured on 32² scans of 64² patterns
#: (synthetic_4dstem at 2000-40000 e⁻), 100 updates, the nonzeros took
#: 0.21-0.31× the time of every entry at 23 % nonzero, 0.46-0.72× at 53 % and
#: 0.73-1.03× at 78 %, for k = 2, 4, 8 and 16.
ROW_CSR_DENSITY = 0.5


def kl_maps(X, H, A, denominator, l1, l2, max_iter, tol, floor, model_floor):
    """KL maps of every row of ``X`` for fixed ``H``, in place in ``A``; updates per row.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m), float32 or float64
    H : ndarray, shape (k, m), of ``X``'s type, C-contiguous
    A : ndarray, shape (n, k), float64, C-contiguous
        Starting maps (> 0), updated in place. Rows are independent: each
        iterates multiplicative updates
        ``a ← max(floor, a ⊙ ((x ⊘ a H) Hᵀ) ⊘ (H 1 + l1 + l2 a))`` while it
        is in cache, until one update changes it by at most ``tol`` (L1,
        relative) or ``max_iter`` are done; the result does not depend on
        how rows are split into chunks or threads.
    denominator : ndarray, shape (k,), float64
        ``H.sum(axis=1)``.
    l1, l2 : ndarray, shape (k,), float64
        Map penalty weights (zeros: none).
    max_iter : int
    tol : float
    floor, model_floor : float
        Lower bounds of a map entry and of a model value.

    Returns
    -------
    ndarray of int64, shape (n,)
        Updates run by each row.

    Examples
    --------
    The first row iterates on its nonzeros, the second on every entry:

    >>> X = np.array([[2.0, 0.0, 0.0, 4.0], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    >>> H = np.array([[1.0, 0.5, 0.5, 2.0]], dtype=np.float32)
    >>> A = np.ones((2, 1))
    >>> updates = kl_maps(X, H, A, H.sum(1, dtype=np.float64), np.zeros(1), np.zeros(1),
    ...                   500, 1e-12, 1e-16, 1e-30)
    >>> A[:, 0].round(6).tolist()  # each row's sum over H's sum
    [1.5, 1.0]
    """
    options = (denominator, l1, l2, int(max_iter), float(tol), floor, model_floor)
    most = int(ROW_CSR_DENSITY * X.shape[1])
    if not sp.issparse(X):
        return _dense_rows_maps(np.ascontiguousarray(X), H, A, *options, most)
    X = to_csr(X)
    dense = np.flatnonzero(np.diff(X.indptr) > most)
    if not dense.size:
        return kl_maps_csr(X.indptr, X.indices, X.data, H, A, *options)
    updates = np.empty(X.shape[0], dtype=np.int64)
    sparse = np.setdiff1d(np.arange(X.shape[0]), dense)
    for rows, solve in ((sparse, _csr_maps), (dense, _dense_maps)):
        maps = A[rows]
        updates[rows] = solve(X[rows], H, maps, options, most)
        A[rows] = maps
    return updates


def _csr_maps(rows, H, A, options, most):
    return kl_maps_csr(rows.indptr, rows.indices, rows.data, H, A, *options)


def _dense_maps(rows, H, A, options, most):
    return _dense_rows_maps(rows.toarray(), H, A, *options, most)


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True, error_model="numpy")
def _dense_rows_maps(X, H, A, denominator, l1, l2, max_iter, tol, floor, model_floor, most):
    """:func:`kl_maps` of dense rows: a row with at most ``most`` nonzeros on them only.

    Such a row's nonzeros and the components at their columns are gathered
    once, in column order, as :func:`~._kernels.kl_maps_csr` gathers a CSR
    row: the same updates, the same maps.
    """
    n, m = X.shape
    k = H.shape[0]
    words = np.zeros((n, 0), dtype=np.uint64)  # (no word skipping for floats)
    updates = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        columns = np.empty(m, dtype=np.int64)
        values = np.empty(m, dtype=X.dtype)
        count = row_nonzeros(X, words, 0, i, columns, values)
        numerator = np.empty(k)
        if count <= most:
            gathered = np.empty((k, count), dtype=H.dtype)
            for q in range(k):
                for p in range(count):
                    gathered[q, p] = H[q, columns[p]]
            ratio = np.empty(count, dtype=H.dtype)
            updates[i] = _row_maps(values[:count], gathered, A[i], denominator, l1, l2,
                                   max_iter, tol, floor, model_floor, ratio, numerator)
        else:
            ratio = np.empty(m, dtype=H.dtype)
            updates[i] = _row_maps(X[i], H, A[i], denominator, l1, l2, max_iter, tol, floor,
                                   model_floor, ratio, numerator)
    return updates
