"""Per-position residual statistics of a fit, read through the data interface.

Used by the check of known components (:func:`._multiblock.check_known_components`):
the deviance and the Pearson statistic of every probe position (row), the
positive part of the residual, and the mean residual pattern of chosen rows.
Every function reads the data in one pass through
:meth:`~hyperspy_hnmf.matrix.ArrayMatrix.map_chunks` and builds the model in
row blocks, so the model is never formed for the whole dataset.
"""

import numpy as np
import scipy.sparse as sp

from .._checks import row_blocks
from ._objective import MODEL_FLOOR

__all__ = ["row_statistics", "residual_pattern"]


def _dense_rows(block, rows):
    values = block[rows]
    return values.toarray() if sp.issparse(values) else np.asarray(values, dtype=np.float64)


def _model(W, Ht, rows):
    return np.maximum(W[rows] @ Ht.T, MODEL_FLOOR)


def _chunk_rows(block, start, W, Ht, beta):
    n = block.shape[0]
    deviance, pearson, positive = np.zeros(n), np.zeros(n), np.zeros(n)
    for rows in row_blocks(n, block.shape[1]):
        x = _dense_rows(block, rows)
        model = _model(W, Ht, rows)
        residual = x - model
        if beta == 1:
            positive_x = x > 0
            log_ratio = np.zeros_like(x)
            log_ratio[positive_x] = np.log(x[positive_x] / model[positive_x])
            deviance[rows] = np.sum(x * log_ratio - x + model, axis=1)
            pearson[rows] = np.sum(residual ** 2 / model, axis=1)
        else:
            deviance[rows] = 0.5 * np.sum(residual ** 2, axis=1)
            pearson[rows] = np.sum(residual ** 2, axis=1)
        positive[rows] = np.sum(np.maximum(residual, 0), axis=1)
    return np.stack([deviance, pearson, positive])


def row_statistics(data, W, Ht, beta):
    """Deviance, Pearson statistic and positive residual of every row, in one pass.

    Parameters
    ----------
    data : ArrayMatrix or StreamedMatrix, shape (n, m)
    W : ndarray, shape (n, k)
    Ht : ndarray, shape (m, k)
        The model is ``W @ Ht.T``.
    beta : float
        1 (KL): deviance ``Σ x log(x/μ) − x + μ`` and Pearson ``Σ (x − μ)²/μ``;
        2 (Frobenius): ``½ Σ (x − μ)²`` and ``Σ (x − μ)²``.

    Returns
    -------
    deviance, pearson, positive : ndarray, shape (n,)
        ``positive`` is ``Σ max(x − μ, 0)``: the counts the model misses.

    Examples
    --------
    >>> from hyperspy_hnmf.matrix import as_data_matrix
    >>> X = as_data_matrix(np.array([[2.0, 0.0], [1.0, 1.0]]))
    >>> deviance, pearson, positive = row_statistics(X, np.ones((2, 1)), np.ones((2, 1)), 1)
    >>> pearson.tolist(), positive.tolist()
    ([2.0, 0.0], [1.0, 0.0])
    """
    per_chunk = [(W[data.rows(i)],) for i in range(data.n_chunks)]
    parts = data.map_chunks(_chunk_rows, per_chunk=per_chunk, shared=(Ht, beta))
    deviance, pearson, positive = np.concatenate(parts, axis=1)
    return deviance, pearson, positive


def _chunk_pattern(block, start, W, chosen, Ht):
    total = np.zeros(block.shape[1])
    if chosen.size:
        x = _dense_rows(block, chosen)
        total += np.sum(np.maximum(x - _model(W, Ht, chosen), 0), axis=0)
    return total


def residual_pattern(data, W, Ht, rows):
    """Sum over ``rows`` of the positive residual ``max(x − μ, 0)``: what the model misses there.

    Examples
    --------
    >>> from hyperspy_hnmf.matrix import as_data_matrix
    >>> X = as_data_matrix(np.array([[2.0, 0.0], [1.0, 3.0]]))
    >>> residual_pattern(X, np.ones((2, 1)), np.ones((2, 1)), np.array([0, 1])).tolist()
    [1.0, 2.0]
    """
    rows = np.asarray(rows, dtype=np.int64)
    per_chunk = []
    for i in range(data.n_chunks):
        chunk = data.rows(i)
        start, stop = chunk.start or 0, chunk.stop
        inside = rows[(rows >= start) & (rows < stop)]
        per_chunk.append((W[chunk], inside - start))
    return data.map_chunks(_chunk_pattern, per_chunk=per_chunk, shared=(Ht,), reduce=True)
