"""Hierarchical NMF at array level: multi-layer factorizations and splitting trees."""

from .hnmfk import hnmfk, hnmfk_decomposition
from .multilayer import MultiLayerResult, multilayer_nmf
from .rank2 import rank2_nmf
from .tree import SplitNode, SplitTree, rank2_tree

__all__ = [
    "MultiLayerResult",
    "SplitNode",
    "SplitTree",
    "hnmfk",
    "hnmfk_decomposition",
    "multilayer_nmf",
    "rank2_nmf",
    "rank2_tree",
]
