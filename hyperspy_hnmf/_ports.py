"""Hand-over points from the array-level algorithms to the HyperSpy layer.

Some public functions below the HyperSpy layer take a signal and write a
decomposition into it (consensus components of
:mod:`~hyperspy_hnmf.rank_selection`, HNMFk trees). They call the functions
here; :mod:`hyperspy_hnmf._hyperspy` installs the implementations when the
package is imported. So data flow up to HyperSpy while no module below the
adapter imports it (dependency inversion, as HyperSpy's own extension
registry does).
"""

__all__ = ["install", "store_decomposition"]

_HANDLERS = {}


def install(**handlers):
    """Install the implementations of the ports (called by the HyperSpy layer).

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> sorted(_HANDLERS)
    ['store_decomposition']
    """
    _HANDLERS.update(handlers)


def store_decomposition(signal, factors, loadings, algorithm, info):
    """Replace the decomposition in ``signal.learning_results``, all or nothing.

    See :func:`hyperspy_hnmf._hyperspy.results.store_decomposition`.

    Parameters
    ----------
    signal : hyperspy.signal.BaseSignal
    factors : ndarray, shape (n_signal, k)
    loadings : ndarray, shape (n_navigation, k)
    algorithm : str
    info : dict

    Examples
    --------
    >>> import numpy as np, hyperspy.api as hs, hyperspy_hnmf
    >>> s = hs.signals.Signal1D(np.ones((4, 3)))
    >>> store_decomposition(s, np.ones((3, 1)) / 3, np.full((4, 1), 3.0), "hnmf", {})
    >>> s.learning_results.output_dimension
    1
    """
    try:
        handler = _HANDLERS["store_decomposition"]
    except KeyError:
        raise RuntimeError("The HyperSpy layer is not loaded: import hyperspy_hnmf.") from None
    handler(signal, factors, loadings, algorithm, info)
