"""Clustering of decomposition components up to in-plane rotation (array level).

Every component pattern is transformed to polar coordinates about the direct
beam, all pairs are scored by :func:`~hyperspy_hnmf.polar.phi_xcorr`, and
``1 - similarity`` is clustered hierarchically (:mod:`scipy.cluster.hierarchy`).
The components of each cluster are merged: patterns rotated onto the
cluster's reference (its strongest member) and averaged with the members'
intensities as weights, maps summed (Uesugi et al., Sci. Rep. 14 (2024) 3012).
"""

import math
import operator

import numpy as np
from scipy.cluster import hierarchy

from ._transform import PolarTransform, find_central_beam, inscribed_radius
from ._xcorr import phi_xcorr, rotate_pattern

__all__ = ["ComponentClusters", "cluster_components", "default_radial_range"]

#: Linkages valid for a non-Euclidean dissimilarity (``1 - similarity``).
LINKAGES = ("average", "complete", "single", "weighted")

# The direct beam ends where the radial profile of the mean pattern has fallen
# to this fraction of its height; the default radial range starts this many
# times further out.
_BEAM_EDGE_FRACTION = 0.05
_BEAM_MARGIN = 1.5


def default_radial_range(mean_pattern, center):
    """Radial range that leaves out the direct beam: from past its edge to the pattern's.

    The beam's edge is the first radius where the azimuthal mean of
    ``mean_pattern`` has fallen to 5 % of its height above the profile's
    minimum; the range starts 1.5 times further out and ends at the largest
    circle about ``center`` inside the pattern.

    Parameters
    ----------
    mean_pattern : array_like, shape (rows, columns)
    center : tuple of float
        ``(row, column)`` in pixels.

    Returns
    -------
    tuple of float
        ``(r_min, r_max)`` in pixels.

    Examples
    --------
    >>> rows, cols = np.mgrid[0:64, 0:64]
    >>> beam = np.exp(-((rows - 31.5) ** 2 + (cols - 31.5) ** 2) / 8.0)
    >>> default_radial_range(beam, (31.5, 31.5))
    (7.5, 31.5)
    """
    mean_pattern = np.asarray(mean_pattern, dtype=np.float64)
    r_limit = inscribed_radius(mean_pattern.shape, center)
    rows, cols = np.indices(mean_pattern.shape)
    radius = np.hypot(rows - center[0], cols - center[1])
    inside = radius <= r_limit
    ring = np.floor(radius[inside]).astype(np.int64)
    profile = np.bincount(ring, mean_pattern[inside]) / np.maximum(np.bincount(ring), 1)
    height = profile[0] - profile.min()
    below = np.flatnonzero(profile - profile.min() <= _BEAM_EDGE_FRACTION * height)
    edge = float(below[0]) if below.size and height > 0 else 0.0
    r_min = min(_BEAM_MARGIN * edge, 0.5 * r_limit)
    return r_min, r_limit


class ComponentClusters:
    """Components grouped up to rotation, and their merged patterns and maps.

    Returned by :func:`cluster_components` and by the signal method
    ``cluster_decomposition_components``. Clusters are numbered by
    decreasing total intensity.

    Attributes
    ----------
    labels : ndarray of int, shape (k,)
        Cluster of every component.
    references : ndarray of int, shape (n_clusters,)
        The member each cluster's patterns are aligned to (its strongest).
    angles_deg : ndarray, shape (k,)
        Rotation of every component relative to its cluster's reference,
        degrees counter-clockwise as displayed (0 for the references).
    similarity, pair_angles_deg : ndarray, shape (k, k)
        Maximum normalized φ cross-correlation of every pair and the rotation
        taking component ``i`` onto component ``j``.
    linkage : ndarray, shape (k - 1, 4)
        :func:`scipy.cluster.hierarchy.linkage` matrix of ``1 - similarity``.
    cut_distance : float or None
        Height (``1 - threshold``) at which the dendrogram was cut, or None
        when cut by the number of clusters.
    patterns : ndarray, shape (n_clusters, rows, columns)
        Merged patterns: the members rotated onto the reference, averaged with
        their intensities as weights.
    maps : ndarray, shape (n_nav, n_clusters) or None
        Merged maps (sums of the members' maps, scaled by the sum of their
        patterns), when maps were given.
    weights : ndarray, shape (k,)
        Intensity of every component (its map's total times its pattern's sum).
    components : ndarray, shape (k, rows, columns)
        The input patterns (the dendrogram's thumbnails).
    transform : PolarTransform
        The polar geometry used.
    factors, loadings : hyperspy signals or None
        The merged patterns and maps as signals (set by the signal method).
    pixel_size, units : float or None, str or None
        Calibration of the patterns' pixels (set by the signal method from
        the signal axes), for the scale bar of :meth:`plot_dendrogram`.
    data_title : str or None
        Title of the decomposed data (set by the signal method from the
        signal's metadata), shown above the dendrogram's own title.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> base = rng.random((2, 32, 32))
    >>> from hyperspy_hnmf.polar import rotate_pattern
    >>> patterns = np.stack([base[0], rotate_pattern(base[0], 30, (15.5, 15.5)), base[1]])
    >>> result = cluster_components(patterns, n_clusters=2, center=(15.5, 15.5),
    ...                             radial_range=(2, 15))
    >>> result.labels.tolist(), result.n_clusters
    ([0, 0, 1], 2)
    """

    def __init__(self, **attributes):
        self.factors = None
        self.loadings = None
        self.data_title = None
        self.__dict__.update(attributes)

    @property
    def n_clusters(self):
        """Number of clusters."""
        return len(self.references)

    def members(self, cluster):
        """Indices of the components in ``cluster``.

        Examples
        --------
        >>> ComponentClusters(labels=np.array([1, 0, 1]), references=[1, 0]).members(1).tolist()
        [0, 2]
        """
        return np.flatnonzero(self.labels == cluster)

    def plot_dendrogram(self, ax=None, figsize=None, thumbnail_size=0.9, cmap="viridis"):
        """Dendrogram of the components with a thumbnail of every pattern.

        See :func:`hyperspy_hnmf.polar.plot_component_dendrogram`.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> result = cluster_components(rng.random((3, 16, 16)), n_clusters=2,
        ...                             center=(7.5, 7.5))
        >>> result.plot_dendrogram().axes[0].get_ylabel().splitlines()[0]
        'dissimilarity'
        """
        from ._plot import plot_component_dendrogram

        return plot_component_dendrogram(self, ax=ax, figsize=figsize,
                                         thumbnail_size=thumbnail_size, cmap=cmap,
                                         pixel_size=getattr(self, "pixel_size", None),
                                         units=getattr(self, "units", None))


def _check_cut(n_clusters, threshold, k):
    if (n_clusters is None) == (threshold is None):
        raise ValueError(
            "Give exactly one of n_clusters (the number of clusters) and threshold "
            "(the similarity above which components are merged)."
        )
    if n_clusters is not None:
        try:
            number = operator.index(n_clusters)
        except TypeError:
            number = None
        if number is None or isinstance(n_clusters, bool) or not 1 <= number <= k:
            raise ValueError(
                f"n_clusters must be an integer from 1 to the number of components "
                f"({k}), got {n_clusters!r}."
            )
        return number, None
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"threshold must be a similarity between -1 and 1, got {threshold!r}.")
    return None, value


def _check_linkage(linkage):
    if linkage not in LINKAGES:
        raise ValueError(
            f"linkage must be one of {', '.join(repr(m) for m in LINKAGES)} (the linkages "
            f"valid for 1 - similarity), got {linkage!r}."
        )
    return linkage


def check_components(patterns, maps=None):
    """Validate a stack of component patterns (and maps) for clustering.

    Parameters
    ----------
    patterns : array_like, shape (k, rows, columns)
    maps : array_like, shape (n_nav, k), optional

    Returns
    -------
    patterns, maps : ndarray

    Raises
    ------
    ValueError
        If the patterns are not a stack of 2D images, there are fewer than two,
        or the maps do not have one column per pattern.

    Examples
    --------
    >>> check_components(np.ones((2, 8, 8)))[0].shape
    (2, 8, 8)
    """
    patterns = np.asarray(patterns)
    if patterns.ndim != 3:
        raise ValueError(
            "Component patterns must be a stack of 2D images, shape (k, rows, columns); "
            f"got shape {patterns.shape}."
        )
    if patterns.shape[0] < 2:
        raise ValueError(
            f"Clustering needs at least two components; got {patterns.shape[0]}."
        )
    if maps is not None:
        maps = np.asarray(maps)
        if maps.ndim != 2 or maps.shape[1] != patterns.shape[0]:
            raise ValueError(
                f"maps must have shape (n_nav, {patterns.shape[0]}), one column per "
                f"pattern; got {maps.shape}."
            )
    return patterns, maps


def cluster_components(patterns, maps=None, n_clusters=None, threshold=None,
                       linkage="average", center=None, radial_range=None, n_r=None,
                       n_phi=360):
    """Cluster component patterns up to in-plane rotation and merge each cluster.

    Parameters
    ----------
    patterns : array_like, shape (k, rows, columns)
        Component patterns (e.g. NMF factors), k >= 2. NaN (masked pixels)
        count as 0.
    maps : array_like, shape (n_nav, k), optional
        Their maps (loadings); they weight the merging and are summed.
    n_clusters : int, optional
        Cut the dendrogram into this many clusters.
    threshold : float, optional
        Or cut it where the linkage similarity falls below ``threshold``
        (i.e. at height ``1 - threshold``). Give exactly one of the two.
    linkage : {"average", "complete", "single", "weighted"}
        Linkage of :func:`scipy.cluster.hierarchy.linkage`.
    center : tuple of float, optional
        ``(row, column)`` of the direct beam in pixels; default found on the
        intensity-weighted mean pattern.
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in pixels; default :func:`default_radial_range`
        (the direct beam left out).
    n_r, n_phi : int
        Polar sampling (see :class:`~hyperspy_hnmf.polar.PolarTransform`).

    Returns
    -------
    ComponentClusters

    Raises
    ------
    ValueError
        For fewer than two components, patterns that are not 2D, a centre
        outside the patterns, a radial range beyond them, or a bad cut.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> a, b = rng.random((2, 24, 24))
    >>> from hyperspy_hnmf.polar import rotate_pattern
    >>> c = (11.5, 11.5)
    >>> patterns = np.stack([a, b, rotate_pattern(a, 90, c), rotate_pattern(b, -45, c)])
    >>> result = cluster_components(patterns, threshold=0.9, center=c, radial_range=(2, 11))
    >>> result.labels.tolist(), np.round(result.angles_deg).tolist()
    ([0, 1, 0, 1], [0.0, 0.0, 90.0, -45.0])
    """
    patterns, maps = check_components(patterns, maps)
    k = patterns.shape[0]
    n_clusters, threshold = _check_cut(n_clusters, threshold, k)
    linkage = _check_linkage(linkage)
    dtype = np.float64 if patterns.dtype == np.float64 else np.float32
    clean = np.nan_to_num(patterns.astype(dtype, copy=False))
    sums = clean.sum(axis=(1, 2)).astype(np.float64)
    scale = np.where(np.abs(sums) > 0, np.abs(sums), 1.0)
    unit = clean / scale[:, None, None].astype(dtype)
    if maps is None:
        weights = np.ones(k)
    else:
        weights = np.nansum(maps, axis=0) * scale
    positive = np.where(weights > 0, weights, 0.0)
    mean = np.tensordot(positive if positive.any() else np.ones(k), unit, axes=1)
    if center is None:
        center = find_central_beam(mean)
    if radial_range is None:
        PolarTransform(unit.shape[1:], center)  # validates the centre first
        radial_range = default_radial_range(mean, center)
    transform = PolarTransform(unit.shape[1:], center, radial_range, n_r, n_phi)
    similarity, pair_angles = phi_xcorr(transform(unit))
    similarity = 0.5 * (similarity + similarity.T)
    np.fill_diagonal(similarity, 1.0)
    distance = np.clip(1.0 - similarity, 0.0, 2.0)
    condensed = distance[np.triu_indices(k, 1)]
    tree = hierarchy.linkage(condensed, method=linkage)
    if n_clusters is not None:
        raw = hierarchy.fcluster(tree, n_clusters, criterion="maxclust")
        cut_distance = None
    else:
        cut_distance = 1.0 - threshold
        raw = hierarchy.fcluster(tree, cut_distance, criterion="distance")
    raw_ids = np.unique(raw)
    totals = np.array([positive[raw == c].sum() for c in raw_ids])
    order = raw_ids[np.argsort(-totals, kind="stable")]
    labels = np.empty(k, dtype=np.int64)
    for new, old in enumerate(order):
        labels[raw == old] = new
    references = np.empty(len(order), dtype=np.int64)
    angles = np.zeros(k)
    merged = np.empty((len(order),) + unit.shape[1:], dtype=dtype)
    for c in range(len(order)):
        members = np.flatnonzero(labels == c)
        reference = members[np.argmax(weights[members])]
        references[c] = reference
        member_weights = positive[members]
        if member_weights.sum() <= 0:
            member_weights = np.ones(len(members))
        total = np.zeros(unit.shape[1:], dtype=np.float64)
        for m, w in zip(members, member_weights):
            angles[m] = 0.0 if m == reference else pair_angles[reference, m]
            total += w * rotate_pattern(unit[m], -angles[m], transform.center)
        merged[c] = total / member_weights.sum()
    merged_maps = None
    if maps is not None:
        scaled = np.asarray(maps) * scale
        merged_maps = np.stack(
            [scaled[:, labels == c].sum(axis=1) for c in range(len(order))], axis=1
        )
    return ComponentClusters(
        labels=labels, references=references, angles_deg=angles, similarity=similarity,
        pair_angles_deg=pair_angles, linkage=tree, cut_distance=cut_distance,
        linkage_method=linkage, patterns=merged, maps=merged_maps, weights=weights,
        components=clean, transform=transform,
    )
