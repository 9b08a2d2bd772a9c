"""The data interface over an in-memory NumPy array or CSR matrix."""

import numpy as np

from .._checks import row_blocks
from .rows import RowData
from .streamed import compute_dtype, is_sparse, to_csr

__all__ = ["ArrayMatrix"]


class ArrayMatrix:
    """A nonnegative data matrix held in memory, with the interface of :class:`StreamedMatrix`.

    The whole matrix is one chunk: :meth:`map_chunks` calls its function once
    with the array itself (no copy), so an algorithm written against the
    interface does the same arithmetic in memory as it does chunk by chunk on
    a dask array. Row-subset products (:meth:`times`, :meth:`t_times`) go
    through :class:`~hyperspy_hnmf.matrix.rows.RowData` (CSR for mostly-zero
    data, built once).

    Parameters
    ----------
    X : ndarray, scipy.sparse or pydata sparse array, shape (n, m)
        Validated data (sparse arrays are held as CSR); float32 and float64 stay as they are, other types follow
        :func:`~hyperspy_hnmf.matrix.compute_dtype`.

    Examples
    --------
    >>> X = ArrayMatrix(np.arange(6.0).reshape(3, 2))
    >>> (X @ np.ones((2, 1))).ravel().tolist(), (X.T @ np.ones((3, 1))).ravel().tolist()
    ([1.0, 5.0, 9.0], [6.0, 9.0])
    >>> X.subset(np.array([0, 2])).array.tolist()
    [[0.0, 1.0], [4.0, 5.0]]
    """

    def __init__(self, X):
        if is_sparse(X):
            X = to_csr(X)
        else:
            X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(compute_dtype(X.dtype))
        if X.ndim != 2:
            raise ValueError(f"Expected a 2D array (samples × features), got {X.ndim}D.")
        self.array = X
        self.shape = tuple(int(n) for n in X.shape)
        self.dtype = X.dtype
        self.n_chunks = 1
        self.passes = 0
        self._row_data = None

    def rows(self, index):
        """The row slice of chunk ``index`` (the whole matrix is chunk 0)."""
        return slice(0, self.shape[0])

    def map_chunks(self, function, per_chunk=None, shared=(), reduce=None):
        """``function(X, 0, *per_chunk[0], *shared)``, as :meth:`StreamedMatrix.map_chunks`.

        ``reduce``: ``None`` returns ``[result]``, ``True`` the result,
        ``"second"`` the pair ``([own], summable)``.

        Examples
        --------
        >>> float(ArrayMatrix(np.eye(2)).map_chunks(lambda X, start: X.sum(), reduce=True))
        2.0
        """
        self.passes += 1
        extra = per_chunk[0] if per_chunk is not None else ()
        result = function(self.array, 0, *extra, *shared)
        if reduce is None:
            return [result]
        if reduce == "second":
            return [result[0]], result[1]
        return result

    def __matmul__(self, B):
        return np.asarray(self.array @ B)

    @property
    def T(self):
        """The transpose of the data (for products ``X.T @ A``)."""
        return self.array.T

    def sum(self, axis=None, dtype=np.float64):
        """Sum of all entries, of each row (``axis=1``) or of each column (``axis=0``)."""
        total = self.array.sum(axis=axis, dtype=dtype)
        return float(total) if axis is None else np.asarray(total).ravel()

    def statistics(self):
        """Row sums, column sums and the squared Frobenius norm (float64)."""
        data = self._rows()
        columns = np.asarray(self.array.sum(axis=0, dtype=np.float64)).ravel()
        return data.row_sums, columns, float(data.row_squares.sum())

    def subset(self, rows):
        """The same interface over the rows ``rows`` (a copy of those rows).

        Examples
        --------
        >>> ArrayMatrix(np.eye(3)).subset(np.array([1])).shape
        (1, 3)
        """
        return ArrayMatrix(self.array[np.asarray(rows)])

    # -- products of row subsets (splitting trees) ------------------------
    def _rows(self):
        if self._row_data is None:
            self._row_data = RowData(self.array)
        return self._row_data

    @property
    def row_sums(self):
        """Sum of every row (float64)."""
        return self._rows().row_sums

    @property
    def row_squares(self):
        """Squared norm of every row (float64)."""
        return self._rows().row_squares

    def times(self, rows, H):
        """``X[rows] @ H.T`` in float64, ``H`` of shape (2, m)."""
        return self._rows().times(rows, H)

    def t_times(self, rows, A):
        """``(X[rows].T @ A).T`` in float64, ``A`` of shape (len(rows), 2)."""
        return self._rows().t_times(rows, A)

    def row(self, i):
        """Row ``i`` as a dense float64 vector."""
        return self._rows().row(i)

    def row_blocks(self):
        """Slices of row blocks that bound temporaries (see :func:`~hyperspy_hnmf._checks.row_blocks`)."""
        return row_blocks(*self.shape)
