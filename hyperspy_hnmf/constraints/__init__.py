"""Domain constraints for NMF of electron-microscopy data.

Pass them as ``constraints=[...]`` to :class:`~hyperspy_hnmf.HNMF` or to
``s.decomposition(algorithm="hnmf", ...)``:

- :class:`MapResolution`: maps no finer than the probe (band limit,
  Gaussian or Laplacian), in calibrated scan units or pixels;
- :class:`ContinuousIntensity`: no narrow dips in components (a halo
  stays smooth under Bragg spots), sharp peaks kept;
- :class:`Penalty`: L1 (sparsity) and L2 (size) penalties on maps or
  components;
- :class:`Projection`: any function applied after each update;
- :class:`KnownComponent` and :class:`PureRegion`: components and pure
  probe positions the user already knows (joint and single fits of
  :func:`~hyperspy_hnmf.solvers.joint_nmf`).

Each applies to all components or to some (``components=[...]`` or the name
of a group given by ``groups={"background": [0], "target": [1, 2]}``), so a
smooth background group and a sparse target group can be fitted together.
:func:`dip_score` and :func:`out_of_band_fraction` measure what the
constraints changed.
"""

from .grid import Grid, signal_grids
from .known import KnownComponent, PureRegion
from .metrics import dip_score, out_of_band_fraction
from .plan import ConstraintPlan, build_plan, check_groups
from .specs import Constraint, ContinuousIntensity, MapResolution, Penalty, Projection

__all__ = [
    "Constraint",
    "ConstraintPlan",
    "ContinuousIntensity",
    "Grid",
    "KnownComponent",
    "MapResolution",
    "Penalty",
    "Projection",
    "PureRegion",
    "build_plan",
    "check_groups",
    "dip_score",
    "out_of_band_fraction",
    "signal_grids",
]
