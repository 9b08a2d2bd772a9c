"""Hierarchical and domain-constrained NMF for HyperSpy.

Importing the package registers ``algorithm="hnmf"`` for
``decomposition`` on every HyperSpy signal.
"""

from . import solvers
from .estimators import HNMF, NotFittedError

__all__ = ["HNMF", "NotFittedError", "solvers"]
__version__ = "0.1.0"
