"""The data interface of every algorithm: one matrix, in memory or read in chunks.

The algorithms of this package see the data ``X`` (probe positions × detector
pixels or channels) only through the operations below, so the same code runs
on NumPy arrays, scipy.sparse matrices and dask arrays (threaded or on a
``dask.distributed`` cluster):

- products ``X @ B`` and ``X.T @ A`` (``A`` has one row per row of ``X``);
- ``sum(axis)`` and :meth:`statistics` (row sums, column sums, squared norm);
- :meth:`map_chunks`: a function of each row chunk with its row offset, its
  results listed or summed in a fixed order (reproducible on a cluster);
- :meth:`subset`: the same interface over a subset of rows (trees, HNMFk);
- :meth:`scaled` / :meth:`perturbed`: Poisson weighting and resampling
  without copying the data.

:class:`ArrayMatrix` holds NumPy or CSR data (one chunk, or row blocks);
:class:`StreamedMatrix` holds a dask array chunked along rows and reads each
chunk once per operation; chunks may be dense or sparse (scipy.sparse or
pydata ``sparse``, e.g. electron events): sparse chunks are read as CSR and
every product costs time ∝ their nonzeros, never densified. :func:`as_data_matrix` picks one.
Integer counts held in memory are read in place by a :class:`StreamedMatrix`
(:func:`held_matrix`), never converted whole to floats; :func:`as_streamed`
gives the :class:`StreamedMatrix` of anything read in passes.
"""

from .memory import ArrayMatrix
from .streamed import (StreamedMatrix, as_row_chunks, compute_dtype, held_counts, held_matrix,
                       is_sparse, to_csr)

__all__ = ["ArrayMatrix", "StreamedMatrix", "as_data_matrix", "as_row_chunks", "as_streamed",
           "compute_dtype", "held_counts", "held_matrix", "is_chunked", "is_sparse", "to_csr"]


def is_chunked(X):
    """Whether ``X`` is read in passes (a dask array or a :class:`StreamedMatrix`).

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> is_chunked(np.ones((2, 2))), is_chunked(da.ones((2, 2)))
    (False, True)
    """
    import dask.array as da

    return isinstance(X, (StreamedMatrix, da.Array))


def as_streamed(X):
    """The :class:`StreamedMatrix` of data read in passes.

    A :class:`StreamedMatrix` as it is, a dask array chunked along rows, or
    integer counts held in memory, read in place (:func:`held_matrix`).

    Parameters
    ----------
    X : StreamedMatrix, dask.array.Array or ndarray of integers, 2D

    Returns
    -------
    StreamedMatrix

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> as_streamed(np.eye(3, dtype=np.uint8)).shape, as_streamed(da.eye(4, chunks=2)).n_chunks
    ((3, 3), 2)
    """
    if isinstance(X, StreamedMatrix):
        return X
    if held_counts(X):
        return held_matrix(X)
    return StreamedMatrix(X)


def as_data_matrix(X):
    """The data interface for ``X``: :class:`StreamedMatrix` for dask, else :class:`ArrayMatrix`.

    Parameters
    ----------
    X : ndarray, scipy.sparse or pydata sparse array, dask.array.Array, ArrayMatrix or StreamedMatrix
        2D, rows = probe positions. A pydata sparse array becomes scipy CSR
        (memory ∝ nonzeros); a dask array may hold sparse chunks (read as
        CSR, chunk by chunk).

    Returns
    -------
    ArrayMatrix or StreamedMatrix

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> type(as_data_matrix(np.eye(3))).__name__
    'ArrayMatrix'
    >>> type(as_data_matrix(da.eye(4, chunks=2))).__name__
    'StreamedMatrix'
    """
    import dask.array as da

    if isinstance(X, (ArrayMatrix, StreamedMatrix)):
        return X
    if isinstance(X, da.Array):
        return StreamedMatrix(X)
    return ArrayMatrix(X)
