"""Hierarchical and domain-constrained NMF for HyperSpy.

Importing the package registers ``algorithm="hnmf"`` for
``decomposition`` on every HyperSpy signal.

Layers, bottom to top: :mod:`.matrix` (the data interface, in memory and
dask), :mod:`.solvers`, :mod:`.constraints`, :mod:`.hierarchy`,
:mod:`.rank_selection`, :mod:`.polar` (array-level algorithms), the estimator
:class:`HNMF` (resolves every option once), and :mod:`._hyperspy`, the only
layer that knows HyperSpy.
"""

import sys as _sys

from . import constraints, events, matrix, polar, rank_selection, solvers
from . import _hyperspy
from ._hyperspy import data, plotting as _plotting, register, unregister
from ._hyperspy import decomposition as integration
from ._hyperspy.events import events_to_signal
from ._hyperspy.joint import get_known_component_checks, joint_decomposition
from ._hyperspy.robust import get_outliers
from ._hyperspy.uncertainty import Uncertainty, uncertainty
from ._hyperspy.results import (
    get_cluster_labels,
    get_hierarchy_level,
    get_mixing_matrices,
    get_split_tree,
)
from ._checks import NumericalError
from .estimators import HNMF, NotFittedError
from .hierarchy.hnmfk import hnmfk, hnmfk_decomposition
from .rank_selection import estimate_rank, stability

plot_hierarchy = _plotting.plot_hierarchy
plot_decomposition_images = _plotting.plot_decomposition_images

# The modules of the HyperSpy layer keep their public import paths.
_sys.modules[__name__ + ".data"] = data
_sys.modules[__name__ + ".integration"] = integration
_sys.modules[__name__ + ".plotting"] = _plotting
_sys.modules[__name__ + ".polar.signal_methods"] = polar.signal_methods = _hyperspy.polar

register()

__all__ = [
    "HNMF",
    "NotFittedError",
    "NumericalError",
    "constraints",
    "data",
    "estimate_rank",
    "events",
    "events_to_signal",
    "get_cluster_labels",
    "get_hierarchy_level",
    "get_known_component_checks",
    "get_mixing_matrices",
    "get_outliers",
    "get_split_tree",
    "hnmfk",
    "hnmfk_decomposition",
    "joint_decomposition",
    "matrix",
    "plot_decomposition_images",
    "plot_hierarchy",
    "polar",
    "rank_selection",
    "register",
    "solvers",
    "stability",
    "Uncertainty",
    "uncertainty",
    "unregister",
]
__version__ = "0.1.0"
