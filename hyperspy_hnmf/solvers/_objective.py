"""The β-divergence objective, evaluated without forming ``W @ H`` in full."""

import numpy as np
import scipy.sparse as sp

from . import _kernels
from .._checks import row_blocks
from ..matrix.compact import CompactChunk
from ..matrix.streamed import compute_dtype, float_rows, is_sparse

#: Smallest model value used where the data are positive (guards log and division).
MODEL_FLOOR = 1e-30


def elementwise_beta_divergence(X, model, beta):
    """Sum of the elementwise β-divergence ``d_β(X | model)`` in float64.

    Zeros of ``X`` contribute their limit (``model`` for KL); for β ≤ 0 the
    data must be positive.

    Parameters
    ----------
    X, model : ndarray of the same shape
    beta : float

    Returns
    -------
    float

    Examples
    --------
    >>> elementwise_beta_divergence(np.array([1.0, 2.0]), np.array([1.0, 1.0]), 2)
    0.5
    """
    x = np.asarray(X, dtype=np.float64)
    y = np.maximum(np.asarray(model, dtype=np.float64), MODEL_FLOOR)
    if beta == 2:
        return 0.5 * float(np.sum((x - y) ** 2))
    if beta == 1:
        positive = x > 0
        xp = x[positive]
        return float(np.sum(xp * np.log(xp / y[positive])) - x.sum() + y.sum())
    if beta == 0:
        ratio = x / y
        return float(np.sum(ratio - np.log(ratio)) - x.size)
    return float(
        np.sum(x**beta + (beta - 1) * y**beta - beta * x * y ** (beta - 1))
        / (beta * (beta - 1))
    )


def frobenius_from_products(norm_Y2, YB, A, BtB):
    """``0.5 * ||Y - A B^T||^2`` from ``Y B``, ``B^T B`` and ``||Y||^2``.

    Parameters
    ----------
    norm_Y2 : float
        ``||Y||_F^2``.
    YB : ndarray, shape (n, k)
    A : ndarray, shape (n, k)
    BtB : ndarray, shape (k, k)

    Returns
    -------
    float
        Clipped at 0 (rounding can make it slightly negative at an exact fit).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Y, A, B = rng.random((5, 4)), rng.random((5, 2)), rng.random((4, 2))
    >>> direct = 0.5 * np.sum((Y - A @ B.T) ** 2)
    >>> bool(np.isclose(frobenius_from_products((Y**2).sum(), Y @ B, A, B.T @ B), direct))
    True
    """
    A64 = A.astype(np.float64, copy=False)
    cross = np.vdot(np.asarray(YB, dtype=np.float64), A64)
    quad = np.vdot(A64.T @ A64, np.asarray(BtB, dtype=np.float64))
    return max(0.5 * (norm_Y2 - 2.0 * cross + quad), 0.0)


def kl_divergence_csr(Y, A, B, sum_Y):
    """KL divergence ``D(Y | A B^T)`` for CSR ``Y``, touching only its nonzeros.

    ``sum(A B^T)`` over all entries equals ``A.sum(0) @ B.sum(0)``, so the
    dense model is never built.

    Parameters
    ----------
    Y : scipy.sparse.csr_matrix, shape (n, m)
    A : ndarray, shape (n, k)
    B : ndarray, shape (m, k)
    sum_Y : float
        ``Y.sum()``.

    Returns
    -------
    float

    Examples
    --------
    >>> Y = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> A, B = np.ones((2, 1)), np.ones((2, 1))
    >>> round(kl_divergence_csr(Y, A, B, 3.0), 6)
    2.386294
    """
    data_term = _kernels.kl_data_term_csr(Y.indptr, Y.indices, Y.data, A, B, MODEL_FLOOR)
    model_total = float(
        A.sum(axis=0, dtype=np.float64) @ B.sum(axis=0, dtype=np.float64)
    )
    return data_term - sum_Y + model_total


def beta_divergence(X, W, H, beta):
    """β-divergence ``D_β(X | W H)`` of a factorization.

    Frobenius (β = 2) is returned as ``0.5 * ||X - W H||^2``, like
    scikit-learn. The residual is evaluated directly, in float64 and in row
    blocks (no temporary larger than one block), so the value is accurate
    even for float32 data fitted almost exactly; KL (β = 1) touches only the
    nonzeros of sparse ``X``.

    Parameters
    ----------
    X : ndarray, scipy.sparse matrix or data matrix, shape (n, m)
        A :class:`~hyperspy_hnmf.matrix.StreamedMatrix` (or dask array) is
        read in one pass, chunk by chunk.
    W : ndarray, shape (n, k)
    H : ndarray, shape (k, m)
    beta : float

    Returns
    -------
    float

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> beta_divergence(X, np.ones((2, 1)), np.ones((1, 2)), 2)
    7.0
    >>> import dask.array as da
    >>> beta_divergence(da.from_array(X, chunks=1), np.ones((2, 1)), np.ones((1, 2)), 2)
    7.0
    """
    if type(X).__module__.startswith("dask."):
        from ..matrix import StreamedMatrix

        X = StreamedMatrix(X)
    if hasattr(X, "map_chunks"):
        per_chunk = [(W[X.rows(i)],) for i in range(X.n_chunks)]
        return float(X.map_chunks(_chunk_divergence, per_chunk=per_chunk, shared=(H, beta),
                                  reduce=True))
    if beta == 1 and sp.issparse(X):
        Xc = X.tocsr()
        Ht = np.ascontiguousarray(H.T)
        return kl_divergence_csr(Xc, np.ascontiguousarray(W), Ht, float(Xc.sum()))
    total = 0.0
    for rows in row_blocks(*X.shape):
        block = X[rows].toarray() if sp.issparse(X) else X[rows]
        total += elementwise_beta_divergence(block, W[rows] @ H, beta)
    return total


def _chunk_divergence(block, start, W_rows, H, beta):
    """The divergence of one raw chunk, converted a row block at a time.

    The same row blocks and sums as :func:`beta_divergence` of the chunk as
    floats, without its float copy (a kept mostly-zero chunk is read as the
    chunk read from the file: the same bits).
    """
    if isinstance(block, CompactChunk):
        block = block.dense()
    if is_sparse(block):
        return beta_divergence(block, W_rows, H, beta)
    total = 0.0
    for rows, values in float_rows(block, compute_dtype(block.dtype), start):
        total += elementwise_beta_divergence(values, W_rows[rows] @ H, beta)
    return total


_chunk_divergence.reads_raw_chunks = True
_chunk_divergence.reads_compact_chunks = True
