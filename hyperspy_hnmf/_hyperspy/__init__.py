"""The HyperSpy layer: the only modules that know HyperSpy.

- :mod:`.decomposition`: ``decomposition(algorithm="hnmf")`` (a wrapper of
  HyperSpy's own, registered on import), reading a signal's matrix and masks;
- :mod:`.results`: writing decompositions to ``learning_results`` and the
  accessors that read them back;
- :mod:`.data`: synthetic signals with ground truth;
- :mod:`.plotting`: figures of hierarchical decompositions;
- :mod:`.joint`: joint decomposition of signals of one scan.

Nothing below this layer imports it; results that array-level code hands to
a signal go through :mod:`hyperspy_hnmf._ports`, installed by :func:`register`.
"""

from .. import _ports
from . import data, decomposition, joint, plotting, results

__all__ = ["data", "decomposition", "joint", "plotting", "register", "results", "unregister"]


def register():
    """Register ``algorithm="hnmf"`` and install the ports (idempotent).

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> register()
    >>> hasattr(hs.signals.Signal1D.decomposition, "_hnmf_original")
    True
    """
    _ports.install(store_decomposition=results.store_decomposition)
    decomposition.register()


def unregister():
    """Restore HyperSpy's own ``decomposition``.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> unregister()
    >>> hasattr(hs.signals.Signal1D.decomposition, "_hnmf_original")
    False
    >>> register()
    """
    decomposition.unregister()
