"""The HyperSpy layer: the only modules that know HyperSpy.

- :mod:`.decomposition`: ``decomposition(algorithm="hnmf")`` (a wrapper of
  HyperSpy's own, registered on import), reading a signal's matrix and masks;
- :mod:`.results`: writing decompositions to ``learning_results`` and the
  accessors that read them back;
- :mod:`.data`: synthetic signals with ground truth;
- :mod:`.plotting`: figures of decompositions and hierarchies;
- :mod:`.polar`: the polar signal methods (``polar_transform``,
  ``cluster_decomposition_components``, ``polar_cluster_analysis``,
  ``decomposition_phase_map``...);
- :mod:`.joint`: joint decomposition of signals of one scan;
- :mod:`.events`: electron event lists as lazy signals with sparse chunks.

Nothing below this layer imports it; results that array-level code hands to
a signal go through :mod:`hyperspy_hnmf._ports`, installed by :func:`register`.
"""

from .. import _ports
from . import data, decomposition, events, joint, plotting, polar, results

__all__ = ["data", "decomposition", "events", "joint", "plotting", "polar", "register", "results",
           "unregister"]


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
    polar.register()


def unregister():
    """Restore HyperSpy's own ``decomposition`` and remove the polar signal methods.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> unregister()
    >>> hasattr(hs.signals.Signal1D.decomposition, "_hnmf_original")
    False
    >>> register()
    """
    decomposition.unregister()
    polar.unregister()
