"""Products of row subsets of an in-memory matrix (the trees' part of the data interface).

:class:`RowData` reads only the rows it is given (dense rows or the nonzeros
of CSR rows), accumulates in float64 and never copies the data, so a
splitting tree fits rank-2 models to many row subsets of one matrix without
forming the submatrices. :class:`~hyperspy_hnmf.matrix.StreamedMatrix`
offers the same methods for data read in passes.
"""

import numba
import numpy as np
import scipy.sparse as sp

__all__ = ["SPARSE_DENSITY", "RowData"]

#: Dense data with at most this fraction of nonzeros are read as CSR (the
#: nonzeros only, built once): every product then costs time ∝ nonzeros.
SPARSE_DENSITY = 0.3

# Fixed number of row chunks whose partial sums make ``X.T @ A``: the result
# does not depend on the number of threads.
_CHUNKS = 16
_OPTIONS = dict(nogil=True, cache=True)
@numba.njit(parallel=True, fastmath=True, **_OPTIONS)
def _dense_times(X, rows, H):
    out = np.empty((rows.size, 2))
    h0 = H[0]
    h1 = H[1]
    for r in numba.prange(rows.size):
        x = X[rows[r]]
        a0 = 0.0
        a1 = 0.0
        for j in range(x.size):
            v = x[j]
            a0 += v * h0[j]
            a1 += v * h1[j]
        out[r, 0] = a0
        out[r, 1] = a1
    return out


@numba.njit(parallel=True, fastmath=True, **_OPTIONS)
def _dense_t_times(X, rows, A):
    n = rows.size
    m = X.shape[1]
    partial = np.zeros((_CHUNKS, 2, m))
    step = (n + _CHUNKS - 1) // _CHUNKS
    for c in numba.prange(_CHUNKS):
        for r in range(c * step, min(n, (c + 1) * step)):
            x = X[rows[r]]
            a0 = A[r, 0]
            a1 = A[r, 1]
            for j in range(m):
                partial[c, 0, j] += x[j] * a0
                partial[c, 1, j] += x[j] * a1
    out = np.zeros((2, m))
    for c in range(_CHUNKS):
        out += partial[c]
    return out


@numba.njit(parallel=True, **_OPTIONS)
def _csr_times(indptr, indices, data, rows, Ht):
    out = np.empty((rows.size, 2))
    for r in numba.prange(rows.size):
        i = rows[r]
        a0 = 0.0
        a1 = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            j = indices[p]
            a0 += v * Ht[j, 0]
            a1 += v * Ht[j, 1]
        out[r, 0] = a0
        out[r, 1] = a1
    return out


@numba.njit(parallel=True, **_OPTIONS)
def _csr_t_times(indptr, indices, data, rows, A, m):
    n = rows.size
    partial = np.zeros((_CHUNKS, m, 2))
    step = (n + _CHUNKS - 1) // _CHUNKS
    for c in numba.prange(_CHUNKS):
        for r in range(c * step, min(n, (c + 1) * step)):
            i = rows[r]
            a0 = A[r, 0]
            a1 = A[r, 1]
            for p in range(indptr[i], indptr[i + 1]):
                v = data[p]
                j = indices[p]
                partial[c, j, 0] += v * a0
                partial[c, j, 1] += v * a1
    out = np.zeros((m, 2))
    for c in range(_CHUNKS):
        out += partial[c]
    return out.T.copy()


@numba.njit(parallel=True, **_OPTIONS)
def _csr_row_stats(indptr, data):
    n = indptr.size - 1
    sums = np.empty(n)
    squares = np.empty(n)
    for i in numba.prange(n):
        s = 0.0
        q = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = float(data[p])
            s += v
            q += v * v
        sums[i] = s
        squares[i] = q
    return sums, squares


@numba.njit(parallel=True, **_OPTIONS)
def _dense_row_stats(X):
    n = X.shape[0]
    sums = np.empty(n)
    squares = np.empty(n)
    for i in numba.prange(n):
        s = 0.0
        q = 0.0
        for j in range(X.shape[1]):
            v = float(X[i, j])
            s += v
            q += v * v
        sums[i] = s
        squares[i] = q
    return sums, squares


@numba.njit(parallel=True, **_OPTIONS)
def _dense_row_nonzeros(X):
    counts = np.empty(X.shape[0], dtype=np.int64)
    for i in numba.prange(X.shape[0]):
        count = 0
        for j in range(X.shape[1]):
            if X[i, j] != 0:
                count += 1
        counts[i] = count
    return counts


@numba.njit(parallel=True, **_OPTIONS)
def _dense_fill_csr(X, indptr, indices, data):
    for i in numba.prange(X.shape[0]):
        p = indptr[i]
        for j in range(X.shape[1]):
            if X[i, j] != 0:
                indices[p] = j
                data[p] = X[i, j]
                p += 1


def _sparse_copy(X):
    """CSR copy of a dense C-contiguous array if it has few nonzeros, else None.

    One parallel pass counts the nonzeros of every row; only if they are at
    most :data:`SPARSE_DENSITY` of the entries does a second pass copy them.
    """
    counts = _dense_row_nonzeros(X)
    total = int(counts.sum())
    if total > SPARSE_DENSITY * X.shape[0] * X.shape[1]:
        return None
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    index_type = np.int32 if X.shape[1] < 2**31 else np.int64
    indices = np.empty(total, dtype=index_type)
    data = np.empty(total, dtype=X.dtype)
    _dense_fill_csr(X, indptr, indices, data)
    return sp.csr_matrix((data, indices, indptr), shape=X.shape)


class RowData:
    """Products of row subsets of one data matrix with two vectors, without copies.

    Dense data with at most :data:`SPARSE_DENSITY` nonzeros, and every sparse
    matrix, are held in CSR form (only the nonzeros are stored, copied once
    by two parallel passes: count, then fill); other dense data are used in
    place, integer counts too (their products equal those of their float64
    copy exactly). Products are
    accumulated in float64 by parallel numba kernels that read the requested
    rows only; ``X.T @ A`` sums a fixed number of row chunks, so results do not
    depend on the number of threads.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m)
        Validated data (finite, nonnegative).

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
        Floating dtype of the data (float32 stays float32; integers: float64).
    is_sparse : bool
        Whether the products read a CSR matrix.
    row_sums, row_squares : ndarray, shape (n,)
        Sum and squared norm of every row, in float64.

    Examples
    --------
    >>> X = np.arange(12.0).reshape(3, 4)
    >>> data = RowData(X)
    >>> rows = np.array([0, 2])
    >>> H = np.ones((2, 4))
    >>> data.times(rows, H)
    array([[ 6.,  6.],
           [38., 38.]])
    >>> data.t_times(rows, np.array([[1.0, 0.0], [0.0, 1.0]]))
    array([[ 0.,  1.,  2.,  3.],
           [ 8.,  9., 10., 11.]])
    """

    def __init__(self, X):
        if sp.issparse(X):
            X = X.tocsr()
        else:
            X = np.asarray(X)
            copy = _sparse_copy(X) if X.size else None
            if copy is not None:
                X = copy
            elif X.dtype not in (np.float32, np.float64) and X.dtype.kind not in "ui":
                X = X.astype(np.float64)  # (integers are read in place: exact in float64)
        if sp.issparse(X):
            if X.dtype not in (np.float32, np.float64):
                X = X.astype(np.float64)
            self._csr = (X.indptr, X.indices, X.data)
            self._dense = None
            self.row_sums, self.row_squares = _csr_row_stats(X.indptr, X.data)
        else:
            self._dense = X
            self._csr = None
            self.row_sums, self.row_squares = _dense_row_stats(self._dense)
        self.shape = X.shape
        self.dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        self.is_sparse = self._csr is not None

    def times(self, rows, H):
        """``X[rows] @ H.T`` in float64.

        Parameters
        ----------
        rows : ndarray of int64
        H : ndarray, shape (2, m)

        Returns
        -------
        ndarray, shape (len(rows), 2)

        Examples
        --------
        >>> RowData(np.eye(3)).times(np.array([1]), np.ones((2, 3)))
        array([[1., 1.]])
        """
        H = np.asarray(H, dtype=np.float64)
        if self._dense is not None:
            return _dense_times(self._dense, rows, np.ascontiguousarray(H))
        return _csr_times(*self._csr, rows, np.ascontiguousarray(H.T))

    def t_times(self, rows, A):
        """``(X[rows].T @ A).T`` in float64.

        Parameters
        ----------
        rows : ndarray of int64
        A : ndarray, shape (len(rows), 2)

        Returns
        -------
        ndarray, shape (2, m)

        Examples
        --------
        >>> RowData(np.eye(3)).t_times(np.array([1]), np.array([[2.0, 3.0]]))
        array([[0., 2., 0.],
               [0., 3., 0.]])
        """
        A = np.ascontiguousarray(A, dtype=np.float64)
        if self._dense is not None:
            return _dense_t_times(self._dense, rows, A)
        return _csr_t_times(*self._csr, rows, A, self.shape[1])

    def row(self, i):
        """Row ``i`` as a dense float64 vector.

        Examples
        --------
        >>> RowData(np.eye(2)).row(1)
        array([0., 1.])
        """
        if self._dense is not None:
            return self._dense[i].astype(np.float64)
        indptr, indices, data = self._csr
        out = np.zeros(self.shape[1])
        out[indices[indptr[i]:indptr[i + 1]]] = data[indptr[i]:indptr[i + 1]]
        return out
