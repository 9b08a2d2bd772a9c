"""Hierarchical and domain-constrained NMF for HyperSpy.

Importing the package registers ``algorithm="hnmf"`` for
``decomposition`` on every HyperSpy signal.
"""

from . import data, solvers
from .estimators import HNMF, NotFittedError
from .integration import register, unregister

register()

__all__ = ["HNMF", "NotFittedError", "data", "register", "solvers", "unregister"]
__version__ = "0.1.0"
