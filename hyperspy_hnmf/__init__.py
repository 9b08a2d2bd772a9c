"""Hierarchical and domain-constrained NMF for HyperSpy.

Importing the package registers ``algorithm="hnmf"`` for
``decomposition`` on every HyperSpy signal.
"""

from . import constraints, data, polar, solvers
from .estimators import HNMF, NotFittedError
from .integration import (
    get_cluster_labels,
    get_hierarchy_level,
    get_mixing_matrices,
    get_split_tree,
    register,
    unregister,
)
from .plotting import plot_hierarchy
from .polar import signal_methods as _polar_methods

register()
_polar_methods.register()

__all__ = [
    "HNMF",
    "NotFittedError",
    "constraints",
    "data",
    "get_cluster_labels",
    "get_hierarchy_level",
    "get_mixing_matrices",
    "get_split_tree",
    "plot_hierarchy",
    "polar",
    "register",
    "solvers",
    "unregister",
]
__version__ = "0.1.0"
