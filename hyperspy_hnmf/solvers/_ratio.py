"""Ratio products of the KL divergence, ``(X ⊘ U Vᵀ) @ C``, on the nonzeros of counts.

Shared by the multi-layer fine-tuning and the streaming solver: both need the
ratio of the data to a model in both orientations, with the data term of the
divergence, without forming the dense model.
"""

import numba
import numpy as np
import scipy.sparse as sp

from ._linalg import density, to_csr
from ._kernels import ratio_times_dense
from ._objective import MODEL_FLOOR
from ._updates import SPARSE_KL_DENSITY


@numba.njit(parallel=True, nogil=True, cache=True)
def _ratio_times_csr(indptr, indices, data, U, V, C, floor, with_objective):
    """``(Y ⊘ U Vᵀ) @ C`` for CSR ``Y``, the model evaluated at the nonzeros only.

    Also returns ``Σ y log(y / model)`` over the nonzeros when asked. Rows are
    independent (parallel, deterministic).
    """
    n = indptr.shape[0] - 1
    r = U.shape[1]
    c = C.shape[1]
    out = np.zeros((n, c))
    per_row = np.zeros(n)
    for i in numba.prange(n):
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            model = 0.0
            for q in range(r):
                model += U[i, q] * V[j, q]
            if model < floor:
                model = floor
            ratio = data[p] / model
            for q in range(c):
                out[i, q] += ratio * C[j, q]
            if with_objective:
                acc += data[p] * np.log(ratio)
        per_row[i] = acc
    return out, per_row.sum()


class KLData:
    """The data for KL ratio products: CSR and its transpose, or a C-ordered dense array."""

    def __init__(self, X):
        self.shape = X.shape
        self.sum = float(X.sum(dtype=np.float64))
        self.sparse = sp.issparse(X) or density(X) <= SPARSE_KL_DENSITY
        if self.sparse:
            self.rows = to_csr(X)
            self.rows.sum_duplicates()
            self.cols = self.rows.T.tocsr()
        else:
            self.X = np.ascontiguousarray(X)  # (once, not at every product)

    def right(self, U, V, C, with_objective=False):
        """``(X ⊘ U Vᵀ) @ C`` (n × c) and the data term ``Σ x log(x / model)``."""
        return self._ratio_times(U, V, C, with_objective, transpose=False)

    def left(self, U, V, C, with_objective=False):
        """``(X ⊘ U Vᵀ)ᵀ @ C`` (m × c) and the data term."""
        return self._ratio_times(U, V, C, with_objective, transpose=True)

    def _ratio_times(self, U, V, C, with_objective, transpose):
        if not self.sparse:
            return self._dense(U, V, C, with_objective, transpose)
        Y, A, B = (self.cols, V, U) if transpose else (self.rows, U, V)
        return _ratio_times_csr(Y.indptr, Y.indices, Y.data, _f64(A), _f64(B), _f64(C),
                                MODEL_FLOOR, with_objective)

    def _dense(self, U, V, C, with_objective, transpose):
        X = self.X
        dtype = X.dtype
        C = np.ascontiguousarray(C if transpose else C.T, dtype=dtype)
        return ratio_times_dense(X, np.ascontiguousarray(U, dtype=dtype),
                                 np.ascontiguousarray(V.T, dtype=dtype), C, transpose,
                                 with_objective, dtype.type(MODEL_FLOOR))


class ChunkedKLData:
    """:class:`KLData`'s products over data read in passes (one pass per product).

    Each chunk's ratio products are computed by :class:`KLData` on that chunk
    (CSR for counted data); ``right`` concatenates the chunks' rows, ``left``
    sums the chunks' contributions in a fixed order.

    Parameters
    ----------
    X : StreamedMatrix

    Examples
    --------
    >>> import dask.array as da
    >>> from hyperspy_hnmf.matrix import StreamedMatrix
    >>> X = np.arange(1.0, 7.0).reshape(3, 2)
    >>> U, V = np.ones((3, 1)), np.ones((2, 1))
    >>> lazy = ChunkedKLData(StreamedMatrix(da.from_array(X, chunks=(2, 2))))
    >>> bool(np.allclose(lazy.left(U, V, U)[0], KLData(X).left(U, V, U)[0]))
    True
    """

    def __init__(self, X):
        self.X = X
        self.shape = X.shape
        self.sum = X.sum()

    def right(self, U, V, C, with_objective=False):
        """``(X ⊘ U Vᵀ) @ C`` (n × c) and the data term ``Σ x log(x / model)``."""
        X = self.X
        per_chunk = [(U[X.rows(i)],) for i in range(X.n_chunks)]
        parts, term = X.map_chunks(_chunk_right, per_chunk=per_chunk,
                                   shared=(V, C, with_objective), reduce="second")
        return np.concatenate(parts), term

    def left(self, U, V, C, with_objective=False):
        """``(X ⊘ U Vᵀ)ᵀ @ C`` (m × c) and the data term."""
        X = self.X
        per_chunk = [(U[X.rows(i)], C[X.rows(i)]) for i in range(X.n_chunks)]
        return X.map_chunks(_chunk_left, per_chunk=per_chunk, shared=(V, with_objective),
                            reduce=True)


def kl_data(X):
    """:class:`ChunkedKLData` for data read in passes, else :class:`KLData`.

    Examples
    --------
    >>> type(kl_data(np.eye(2))).__name__
    'KLData'
    """
    return ChunkedKLData(X) if hasattr(X, "map_chunks") else KLData(X)


def _chunk_right(block, start, U, V, C, with_objective):
    N, term = KLData(block).right(U, V, C, with_objective)
    return N, float(term or 0.0)


def _chunk_left(block, start, U, C, V, with_objective):
    N, term = KLData(block).left(U, V, C, with_objective)
    return N, float(term or 0.0)


def _f64(array):
    return np.ascontiguousarray(array, dtype=np.float64)
