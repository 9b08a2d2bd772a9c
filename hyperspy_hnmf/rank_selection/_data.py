"""The data of a rank-selection call as a 2D matrix (probe positions × pixels)."""

import numpy as np
import scipy.sparse as sp

from .. import solvers
from .._checks import check_real, data_values

__all__ = ["check_finite_data", "data_matrix", "signal_grids_of", "signal_matrix"]


def check_finite_data(X, where="estimate_rank"):
    """Raise ``ValueError`` if ``X`` holds NaN or infinite values.

    The message advises what rank selection accepts (it takes no masks).

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix
    where : str
        The caller's name, for the message.

    Examples
    --------
    >>> check_finite_data(np.array([[1.0, np.nan]]))
    Traceback (most recent call last):
    ...
    ValueError: The data contain NaN or infinity (1 NaN, 0 infinite values): estimate_rank needs finite data. Replace them (e.g. with 0 or a local mean), or crop them away (s.inav[...] / s.isig[...]).
    """
    values = data_values(X)
    if np.isfinite(np.sum(values, dtype=np.float64)):
        return
    n_nan = int(np.count_nonzero(np.isnan(values)))
    n_inf = int(np.count_nonzero(np.isinf(values)))
    if n_nan or n_inf:
        raise ValueError(
            f"The data contain NaN or infinity ({n_nan} NaN, {n_inf} infinite values): "
            f"{where} needs finite data. Replace them (e.g. with 0 or a local mean), or "
            "crop them away (s.inav[...] / s.isig[...]).")


def signal_matrix(s, where="estimate_rank"):
    """The data of a signal or array as a 2D matrix (probe positions × pixels).

    float32 stays float32 (unless its squares would overflow or underflow:
    then float64, with a warning, see
    :func:`~hyperspy_hnmf.solvers.promote_if_overflowing`); integer counts
    become float32 (exact below 2²⁴, half the memory of float64), other types
    float64. Sparse input
    (scipy.sparse, or pydata ``sparse`` COO/GCXS) becomes a CSR matrix,
    with memory ∝ its nonzeros: it is never densified.

    Parameters
    ----------
    s : HyperSpy signal, array-like or sparse matrix, shape (n, m)
        A signal is read as its unfolded data (navigation × signal); lazy
        signals are refused (they have their own path in :func:`estimate_rank`).
    where : str
        The caller's name, for the messages.

    Returns
    -------
    ndarray or scipy.sparse.csr_matrix, shape (n, m)

    Raises
    ------
    ValueError
        For data that are complex, not 2D, or not finite, negative or all zero.
    NotImplementedError
        For lazy signals.

    Examples
    --------
    >>> signal_matrix(np.ones((2, 3), dtype=np.uint8)).dtype
    dtype('float32')
    >>> import scipy.sparse as sp
    >>> signal_matrix(sp.coo_matrix(np.eye(3, dtype=np.float32))).format
    'csr'
    """
    from ..matrix import is_sparse, to_csr

    if hasattr(s, "axes_manager"):
        if getattr(s, "_lazy", False):
            raise NotImplementedError(
                f"{where} does not run on lazy signals (estimate_rank and hnmfk do, on "
                "compressed copies), and it will not load the data silently. Load them with "
                "s.compute() if they fit in memory, or run it on a cropped or binned region, "
                "e.g. s.inav[:64, :64].compute() or s.rebin(scale=(1, 1, 2, 2)).compute()."
            )
        n_nav = int(np.prod(s.axes_manager._navigation_shape_in_array, dtype=np.int64))
        n_sig = int(np.prod(s.axes_manager._signal_shape_in_array, dtype=np.int64))
        X = np.asarray(s._data_aligned_with_axes).reshape(max(n_nav, 1), n_sig)
    elif is_sparse(s):
        if len(s.shape) != 2:
            raise ValueError(f"Expected a 2D sparse matrix (probe positions × signal pixels), "
                             f"got {len(s.shape)}D.")
        X = to_csr(s) if not sp.issparse(s) else s.tocsr()
    else:
        X = np.asarray(s)
        if X.ndim != 2:
            raise ValueError(f"Expected a HyperSpy signal or a 2D array, got a {X.ndim}D array.")
    check_real(X.dtype, where)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(_float_for(X))
    check_finite_data(X, where)
    solvers.check_data(X, where=where)
    # float32 data whose squares overflow or underflow (a maximum near 1e19, or
    # below about 1e-17) are fitted in float64, with a warning, as by nmf.
    return solvers.promote_if_overflowing(X)


def _float_for(X):
    """float32 for integers that it holds exactly (detector counts below 2**24), else float64.

    Examples
    --------
    >>> _float_for(np.array([[0, 65535]], dtype=np.uint16)).__name__
    'float32'
    >>> _float_for(np.array([[2**24 + 1]], dtype=np.int64)).__name__
    'float64'
    """
    if X.dtype.kind not in "biu":
        return np.float64
    values = data_values(X)
    if values.size == 0 or X.dtype.kind == "b" or X.dtype.itemsize <= 2:
        return np.float32
    exact = max(abs(int(values.max())), abs(int(values.min()))) <= 2 ** 24
    return np.float32 if exact else np.float64


def data_matrix(s, where="estimate_rank"):
    """Like :func:`signal_matrix`, but data read in passes stay lazy.

    Lazy signals, dask arrays and :class:`~hyperspy_hnmf.matrix.StreamedMatrix`
    give a :class:`~hyperspy_hnmf.matrix.StreamedMatrix` (nothing is read);
    everything else goes through :func:`signal_matrix`.

    Parameters
    ----------
    s : HyperSpy signal, array-like, sparse matrix, dask array or StreamedMatrix
    where : str
        The caller's name, for the messages.

    Returns
    -------
    ndarray, scipy.sparse.csr_matrix or StreamedMatrix, shape (n, m)

    Examples
    --------
    >>> import dask.array as da
    >>> type(data_matrix(da.ones((4, 3), chunks=2))).__name__
    'StreamedMatrix'
    """
    from ..matrix import StreamedMatrix, as_row_chunks, is_chunked

    if getattr(s, "_lazy", False):
        check_real(s.data.dtype, where)
        return StreamedMatrix(as_row_chunks(s.data, s.axes_manager.signal_dimension))
    if is_chunked(s):
        check_real(getattr(s, "array", s).dtype, where)
        if len(s.shape) != 2:
            raise ValueError(f"Expected a 2D dask array (positions × pixels), got "
                             f"{len(s.shape)}D.")
        return s if isinstance(s, StreamedMatrix) else StreamedMatrix(s)
    return signal_matrix(s, where=where)


def signal_grids_of(s):
    """The navigation and signal grids of a HyperSpy signal, or ``(None, None)``.

    The grids of :func:`~hyperspy_hnmf.constraints.signal_grids` (shape,
    pixel size and units of the axes): constraints such as
    :class:`~hyperspy_hnmf.constraints.MapResolution` need them. Arrays have
    no axes.

    Parameters
    ----------
    s : HyperSpy signal or any data

    Returns
    -------
    navigation, signal : Grid or None

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> [grid.shape for grid in signal_grids_of(hs.signals.Signal1D(np.ones((3, 4, 5))))]
    [(3, 4), (5,)]
    >>> signal_grids_of(np.ones((12, 5)))
    (None, None)
    """
    if not hasattr(s, "axes_manager"):
        return None, None
    from ..constraints import signal_grids

    return signal_grids(s)
