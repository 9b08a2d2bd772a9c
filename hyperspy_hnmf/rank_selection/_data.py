"""The data of a rank-selection call as a 2D matrix (probe positions × pixels)."""

import numpy as np

from .. import solvers

__all__ = ["data_matrix", "signal_matrix"]


def signal_matrix(s, where="estimate_rank"):
    """The data of a signal or array as a 2D matrix (probe positions × pixels).

    float32 stays float32, other types become float64.

    Parameters
    ----------
    s : HyperSpy signal or array-like, shape (n, m)
        A signal is read as its unfolded data (navigation × signal); lazy
        signals are refused (they have their own path in :func:`estimate_rank`).
    where : str
        The caller's name, for the messages.

    Returns
    -------
    ndarray, shape (n, m)

    Examples
    --------
    >>> signal_matrix(np.ones((2, 3), dtype=np.uint8)).dtype
    dtype('float64')
    """
    if hasattr(s, "axes_manager"):
        if getattr(s, "_lazy", False):
            raise NotImplementedError(
                f"{where} does not run on lazy signals (estimate_rank does, on a compressed "
                "copy), and it will not load the data silently. Load them with s.compute() if "
                "they fit in memory, or run it on a cropped or binned region, e.g. "
                "s.inav[:64, :64].compute() or s.rebin(scale=(1, 1, 2, 2)).compute()."
            )
        n_nav = int(np.prod(s.axes_manager._navigation_shape_in_array, dtype=np.int64))
        n_sig = int(np.prod(s.axes_manager._signal_shape_in_array, dtype=np.int64))
        X = np.asarray(s._data_aligned_with_axes).reshape(max(n_nav, 1), n_sig)
    else:
        X = np.asarray(s)
        if X.ndim != 2:
            raise ValueError(f"Expected a HyperSpy signal or a 2D array, got a {X.ndim}D array.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    solvers.check_data(X, where=where)
    return X


def data_matrix(s, where="estimate_rank"):
    """Like :func:`signal_matrix`, but data read in passes stay lazy.

    Lazy signals, dask arrays and :class:`~hyperspy_hnmf.matrix.StreamedMatrix`
    give a :class:`~hyperspy_hnmf.matrix.StreamedMatrix` (nothing is read);
    everything else goes through :func:`signal_matrix`.

    Parameters
    ----------
    s : HyperSpy signal, array-like, dask array or StreamedMatrix
    where : str
        The caller's name, for the messages.

    Returns
    -------
    ndarray or StreamedMatrix, shape (n, m)

    Examples
    --------
    >>> import dask.array as da
    >>> type(data_matrix(da.ones((4, 3), chunks=2))).__name__
    'StreamedMatrix'
    """
    from ..matrix import StreamedMatrix, as_row_chunks, is_chunked

    if getattr(s, "_lazy", False):
        return StreamedMatrix(as_row_chunks(s.data, s.axes_manager.signal_dimension))
    if is_chunked(s):
        if len(s.shape) != 2:
            raise ValueError(f"Expected a 2D dask array (positions × pixels), got "
                             f"{len(s.shape)}D.")
        return s if isinstance(s, StreamedMatrix) else StreamedMatrix(s)
    return signal_matrix(s, where=where)
