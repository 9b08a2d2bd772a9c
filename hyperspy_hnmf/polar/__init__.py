"""Rotation-invariant clustering of diffraction patterns and components.

Polar transform about the direct beam, normalized cross-correlation along φ,
clustering of decomposition components up to in-plane rotation and
rotation-invariant clustering of every probe position's pattern. Importing
:mod:`hyperspy_hnmf` adds the signal methods ``polar_transform``,
``cluster_decomposition_components``, ``restore_decomposition_components``,
``polar_cluster_analysis`` and ``decomposition_phase_map`` to HyperSpy's ``Signal2D`` (and so to pyxem's
``Diffraction2D``).
"""

from ._components import ComponentClusters, cluster_components, default_radial_range
from ._phases import PhaseMap, anisotropic_polar, phase_map
from ._plot import plot_component_dendrogram
from ._pixels import PolarKMeans
from ._transform import PolarTransform, find_central_beam, find_direct_beam, polar_transform
from ._xcorr import phi_xcorr, rotate_pattern, shift_phi

__all__ = [
    "ComponentClusters",
    "PhaseMap",
    "PolarKMeans",
    "PolarTransform",
    "anisotropic_polar",
    "cluster_components",
    "default_radial_range",
    "find_central_beam",
    "find_direct_beam",
    "phase_map",
    "phi_xcorr",
    "plot_component_dendrogram",
    "polar_transform",
    "rotate_pattern",
    "shift_phi",
]
