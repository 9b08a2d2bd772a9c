"""Hierarchical and domain-constrained NMF for HyperSpy.

Importing the package registers ``algorithm="hnmf"`` for
``decomposition`` on every HyperSpy signal.
"""

from . import constraints, data, polar, rank_selection, solvers
from .estimators import HNMF, NotFittedError
from .hierarchy.hnmfk import hnmfk, hnmfk_decomposition
from .integration import (
    get_cluster_labels,
    get_hierarchy_level,
    get_mixing_matrices,
    get_split_tree,
    register,
    unregister,
)
from .plotting import plot_decomposition_images, plot_hierarchy
from .polar import signal_methods as _polar_methods
from .rank_selection import estimate_rank, stability

register()
_polar_methods.register()

__all__ = [
    "HNMF",
    "NotFittedError",
    "constraints",
    "data",
    "estimate_rank",
    "get_cluster_labels",
    "get_hierarchy_level",
    "get_mixing_matrices",
    "get_split_tree",
    "hnmfk",
    "hnmfk_decomposition",
    "plot_decomposition_images",
    "plot_hierarchy",
    "polar",
    "rank_selection",
    "register",
    "solvers",
    "stability",
    "unregister",
]
__version__ = "0.1.0"
