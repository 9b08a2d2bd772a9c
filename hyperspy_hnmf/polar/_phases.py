"""Phase maps from a decomposition: noise-aware component clustering and pixel labels.

Array-level logic behind the signal method ``phase_map`` (no HyperSpy here).

1. **Speckle-robust descriptors.** Each component pattern (scaled to sum 1)
   is transformed to polar coordinates about the direct beam over a radial
   band that leaves the beam out, and the median over φ at every radius is
   subtracted: the amorphous halo, the direct beam's tails and any other
   rotationally symmetric background go, the Bragg spots stay.
2. **Similarity that knows the counting noise.** Two components are compared
   by the maximum over φ shifts of the normalized cross-correlation of these
   descriptors (:func:`~hyperspy_hnmf.polar.phi_xcorr`). A component carries
   ``N`` counts (its map's total times its pattern's sum); the similarity of
   two independent Poisson resamples of its pattern at ``N`` counts is the
   most its similarity with anything can be (its *noise ceiling*). The
   similarity of two components is divided by the geometric mean of their
   ceilings (Spearman's correction for attenuation), so low-dose components
   of one phase are not split apart for being noisy.
3. **Crystalline or amorphous.** A component is crystalline when the
   anisotropic share of its polar pattern exceeds the largest share found in
   Poisson resamples of its own rotational average at its counts (the
   distribution of that share for a pattern with no spots), by
   ``anisotropy_margin`` times and its map does not cover the scan (the
   matrix is present everywhere; speckle keeps its anisotropy above the
   counting-noise level, so that alone would not tell). The crystalline ones
   are clustered hierarchically on ``1 - corrected similarity`` into
   ``n_phases`` phases, or merged while the corrected similarity stays above
   ``threshold``.
3b. **Crystals shared with speckle.** A decomposition can give part of a
   crystal to a component that also models amorphous speckle; its map then
   covers the scan and step 3 leaves it, with the crystal's piece, in the
   matrix. With the data, every component with significant anisotropy that is
   not crystalline (except the matrix's reference, its component with the
   most counts, which defines the matrix) is compared with each phase's
   pattern, and with what speckle alone reaches: the data at positions where
   neither a crystalline component nor the component itself is strong,
   averaged with the component's own map values in random order (the same
   averaging of speckle) and drawn at its counts (the same counting noise). A
   component whose similarity to a phase exceeds the largest of
   ``n_resamples`` such speckle similarities by ``anisotropy_margin`` times
   is split in two: a *piece*, the phase's pattern at the component's
   orientation, with the share of the component that the projection of its
   anisotropic descriptor gives, and the *rest*. At every position the
   component's counts are divided between the two by maximum likelihood (all
   other maps held, the component's total kept), so they go to the crystal or
   to the speckle as the data say. Steps 1 to 3 are then run again: rests
   belong to the matrix; a piece joins its phase where its map is local
   (participation ratio below ``matrix_occupancy``: a real piece of a
   crystal) and the matrix otherwise (the resemblance was spread over the
   scan). All other components form the amorphous matrix class.
4. **Pixel labels by a likelihood-ratio test.** At every probe position the
   Poisson deviance of the data under the decomposition is compared with the
   deviance once a phase's components are removed and the others refitted
   (KL multiplicative updates). Without extra-Poisson variance the deviance
   difference would follow χ² with one degree of freedom per removed
   component; amorphous speckle inflates it, so it is divided by a
   dispersion factor measured where the phase is absent (its median over the
   positions not found significant, over the median of that χ², iterated; a
   quasi-likelihood test) and then tested against that χ². A position is
   given the phase whose presence is most significant at level ``alpha``,
   else the matrix. The orientation of a labelled position is the rotation,
   relative to its phase's reference component, of the member component that
   carries most of its counts there.
"""

import math
import operator

import numpy as np
from scipy import stats
from scipy.cluster import hierarchy

from ._components import LINKAGES, check_components, default_radial_range
from ._pixels import _symmetry
from ._transform import PolarTransform, find_central_beam
from ._xcorr import phi_xcorr, rotate_pattern

__all__ = ["PhaseMap", "anisotropic_polar", "phase_map"]

def anisotropic_polar(polar):
    """Polar patterns with the median over φ at every radius subtracted.

    Removes what is rotationally symmetric about the centre (amorphous halo,
    direct-beam tails, diffuse background) and keeps the spots.

    Parameters
    ----------
    polar : array_like, shape (..., n_r, n_phi)

    Returns
    -------
    ndarray
        Same shape, float.

    Examples
    --------
    >>> polar = np.ones((4, 36)); polar[2, 5] = 3.0
    >>> residual = anisotropic_polar(polar)
    >>> float(residual[2, 5]), float(abs(residual).sum())
    (2.0, 2.0)
    """
    polar = np.asarray(polar, dtype=np.float64)
    return polar - np.median(polar, axis=-1, keepdims=True)


class PhaseMap:
    """Phases found by :func:`phase_map`: component classes, pixel labels, orientation.

    Class 0 is the amorphous matrix; classes 1 to ``n_phases`` are crystalline
    phases numbered by decreasing total counts.

    Attributes
    ----------
    component_labels : ndarray of int, shape (k,)
        Class of every component (pieces split off mixed components included;
        see ``split_from``).
    component_angles_deg : ndarray, shape (k,)
        Rotation of every crystalline component relative to its phase's
        reference (its strongest member), degrees counter-clockwise as
        displayed, reduced to ``(-symmetry / 2, symmetry / 2]``; 0 for the matrix.
    symmetry_deg : ndarray, shape (n_classes,)
        Smallest rotation (360 / n for n = 12, 6, 4, 3, 2, 1) mapping each
        class pattern's anisotropic part onto itself (360 for the matrix).
    references : ndarray of int, shape (n_classes,)
        Reference component of every class (-1 for an empty matrix class).
    crystalline : ndarray of bool, shape (k,)
        Components with significant spots and a local map.
    split_from : ndarray of int, shape (k,)
        For every component, the mixed decomposition component it was split
        from (step 3b), else -1. Components ``0 .. n - 1`` are the
        decomposition's (a split one is replaced by its rest); pieces are
        appended after them, so ``k`` may exceed the number given.
    phase_similarity, speckle_similarity : ndarray, shape (n, n_phases) or None
        φ cross-correlation of every decomposition component (``n`` of them)
        with every phase's pattern, and the largest reached by
        ``n_resamples`` speckle averages made like the component (step 3b;
        None without data, or when no component needed the test).
    occupancy : ndarray, shape (k,)
        Participation ratio of every component's map.
    anisotropy, anisotropy_null : ndarray, shape (k,)
        Anisotropic share of every component's polar pattern, and the largest
        share among Poisson resamples of its rotational average.
    counts : ndarray, shape (k,)
        Counts carried by every component.
    similarity, corrected_similarity : ndarray, shape (k, k)
        φ cross-correlation of the anisotropic descriptors, and the same
        divided by the geometric mean of the noise ceilings.
    noise_ceiling : ndarray, shape (k,)
        Median similarity of two Poisson resamples of every component.
    pair_angles_deg : ndarray, shape (k, k)
        Rotation taking component ``i`` onto ``j``.
    linkage : ndarray or None
        Linkage matrix of the crystalline components (None for fewer than two).
    maps : ndarray, shape (n_nav, n_classes)
        Counts of every class at every position (members' maps summed,
        scaled by their patterns' sums).
    patterns : ndarray, shape (n_classes, rows, columns)
        Every class's pattern: members rotated onto the reference and
        averaged with their counts as weights (sum 1).
    labels : ndarray of int, shape (n_nav,) or None
        Class of every position (with ``data``).
    statistic : ndarray, shape (n_nav, n_phases) or None
        Scaled deviance difference of every phase at every position.
    pvalues : ndarray, shape (n_nav, n_phases) or None
    dispersion : ndarray, shape (n_phases,) or None
        Extra-Poisson variance factor of every phase's test.
    orientation_deg : ndarray, shape (n_nav,) or None
        Rotation of every labelled position relative to its phase's reference
        (NaN on the matrix).
    transform : PolarTransform
    classes : list of str
        ``["matrix", "phase 1", ...]``.

    Examples
    --------
    >>> result = PhaseMap(component_labels=np.array([0, 1, 1]), references=np.array([0, 1]))
    >>> result.n_classes, result.members(1).tolist()
    (2, [1, 2])
    """

    def __init__(self, **attributes):
        self.labels = self.statistic = self.pvalues = None
        self.dispersion = self.orientation_deg = None
        self.split_from = self.phase_similarity = self.speckle_similarity = None
        self.__dict__.update(attributes)

    @property
    def n_classes(self):
        """Number of classes, the matrix included."""
        return len(self.references)

    def members(self, cls):
        """Indices of the components of class ``cls``.

        Examples
        --------
        >>> PhaseMap(component_labels=np.array([1, 0, 1]), references=[0, 0]).members(1).tolist()
        [0, 2]
        """
        return np.flatnonzero(self.component_labels == cls)


def _check_positive_int(name, value, minimum):
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(number)


def _check_probability(name, value, low, high):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not low < number < high:
        raise ValueError(f"{name} must be a number between {low:g} and {high:g}, got {value!r}.")
    return number


def check_phase_params(k, n_phases, threshold, linkage, alpha, n_resamples,
                       anisotropy_margin):
    """Validate the parameters of :func:`phase_map` before any work.

    Returns
    -------
    tuple
        ``(n_phases, threshold, alpha, n_resamples, anisotropy_margin)``.

    Examples
    --------
    >>> check_phase_params(6, 2, None, "average", 1e-3, 20, 1.5)
    (2, None, 0.001, 20, 1.5)
    """
    if n_phases is not None and threshold is not None:
        raise ValueError(
            "Give at most one of n_phases (the number of crystalline phases) and threshold "
            "(the corrected similarity above which crystalline components are merged)."
        )
    if n_phases is not None:
        try:
            number = operator.index(n_phases)
        except TypeError:
            number = None
        if number is None or isinstance(n_phases, bool) or not 1 <= number <= k:
            raise ValueError(
                f"n_phases must be an integer from 1 to the number of components ({k}), "
                f"got {n_phases!r}."
            )
        n_phases = int(number)
    if threshold is not None:
        threshold = _check_probability("threshold", threshold, -1.0, 1.0)
    if linkage not in LINKAGES:
        raise ValueError(
            f"linkage must be one of {', '.join(repr(m) for m in LINKAGES)}, got {linkage!r}."
        )
    alpha = _check_probability("alpha", alpha, 0.0, 1.0)
    n_resamples = _check_positive_int("n_resamples", n_resamples, 2)
    try:
        margin = float(anisotropy_margin)
    except (TypeError, ValueError):
        margin = math.nan
    if not margin >= 1.0:
        raise ValueError(f"anisotropy_margin must be a number >= 1, got {anisotropy_margin!r}.")
    return n_phases, threshold, alpha, n_resamples, margin


def _descriptors(transform, patterns, band):
    """Anisotropic polar descriptors of patterns (n, rows, cols), the band's radii only."""
    return anisotropic_polar(transform(patterns.astype(np.float64)))[:, band]


def _isotropic(transform, pattern):
    """The rotational average of a pattern about the transform's centre, as an image."""
    rows, cols = np.indices(pattern.shape)
    radius = np.hypot(rows - transform.center[0], cols - transform.center[1])
    ring = np.round(radius).astype(np.int64)
    profile = np.bincount(ring.ravel(), pattern.ravel()) / np.maximum(
        np.bincount(ring.ravel()), 1)
    return profile[ring]


def _anisotropy(descriptors, polar_band):
    """Anisotropic share of every pattern: ‖residual‖² / ‖pattern‖² over the band."""
    num = (descriptors**2).sum(axis=(1, 2))
    den = (polar_band**2).sum(axis=(1, 2))
    return num / np.where(den > 0, den, 1.0)


def _noise_statistics(unit, counts, transform, band, n_resamples, rng):
    """Noise ceiling and null anisotropy of every component from Poisson resamples."""
    k = unit.shape[0]
    ceiling = np.empty(k)
    null = np.empty(k)
    for i in range(k):
        expected = np.clip(unit[i], 0, None) * max(counts[i], 1.0)
        draws = rng.poisson(np.broadcast_to(expected, (2 * n_resamples,) + expected.shape))
        desc = _descriptors(transform, draws, band)
        pairs = [phi_xcorr(desc[2 * r], desc[2 * r + 1])[0][0, 0] for r in range(n_resamples)]
        ceiling[i] = np.median(pairs)
        iso = _isotropic(transform, np.clip(unit[i], 0, None)) * max(counts[i], 1.0)
        iso_draws = rng.poisson(np.broadcast_to(iso, (n_resamples,) + iso.shape))
        polar = transform(iso_draws.astype(np.float64))[:, band]
        null[i] = _anisotropy(anisotropic_polar(polar), polar).max()
    return np.clip(ceiling, 1e-6, 1.0), null


def _occupancy(maps):
    """Participation ratio of every map column: mean² / mean of squares."""
    mean = maps.mean(axis=0)
    square = (maps**2).mean(axis=0)
    return np.where(square > 0, mean**2 / np.where(square > 0, square, 1.0), 0.0)


def _kl_refit(data, W, H, n_iter, eps=1e-12):
    """KL multiplicative updates of the maps H (n_nav, k) with the patterns W (k, n_sig) fixed."""
    col = W.sum(axis=1)
    col = np.where(col > 0, col, 1.0)
    for _ in range(n_iter):
        ratio = data / np.maximum(H @ W, eps)
        H *= (ratio @ W.T) / col
    return H


def _deviance(data, model, eps=1e-12):
    """Poisson deviance of every row."""
    model = np.maximum(model, eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(data > 0, data * np.log(data / model), 0.0)
    return 2.0 * (term - data + model).sum(axis=1)


def _dispersion(statistic, share, dof, quantile=0.9):
    """Scale of a scaled χ²(dof) null, from the positions where the phase is surely absent.

    The phase covers a minority of the scan, so the half of the positions
    where its share of the counts is lowest do not hold it; the given upper
    quantile of their deviance differences over the same quantile of χ²(dof)
    measures how much amorphous speckle inflates the Poisson statistic. An
    upper quantile, not the median: on the boundary (a nonnegative amount
    that is zero) about half the null values are 0.
    """
    absent = share <= np.median(share)
    if absent.sum() < 8:
        return 1.0
    return max(1.0, float(np.quantile(statistic[absent], quantile))
               / stats.chi2.ppf(quantile, dof))


def phase_map(patterns, maps, data=None, n_phases=None, threshold=None, linkage="average",
              center=None, radial_range=None, n_r=None, n_phi=360, alpha=1e-3,
              n_resamples=20, anisotropy_margin=1.5, matrix_occupancy=0.3, boundary=0.25,
              nav_shape=None, label_window=3, n_refit=30,
              random_state=0):
    """Phases of a decomposition: components grouped up to rotation, pixels labelled.

    See the module description for the method. Class 0 is the amorphous
    matrix, classes 1... the crystalline phases.

    Parameters
    ----------
    patterns : array_like, shape (k, rows, columns)
        Component patterns (decomposition factors), k >= 2.
    maps : array_like, shape (n_nav, k)
        Their maps (loadings); counts per position once scaled by the
        patterns' sums.
    data : array_like, shape (n_nav, rows * columns), optional
        The counts the decomposition was fitted to: with them every position
        is labelled by the likelihood-ratio test.
    n_phases : int, optional
        Number of crystalline phases (the matrix is not counted).
    threshold : float, optional
        Or merge crystalline components while their noise-corrected similarity
        stays above it. Default, without either: 0.5.
    linkage : {"average", "complete", "single", "weighted"}
    center : tuple of float, optional
        ``(row, column)`` of the direct beam in pixels; default found on the
        counts-weighted mean pattern.
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in pixels; default leaves out the direct beam.
    n_r, n_phi : int
        Polar sampling.
    alpha : float
        Significance level of the pixel test (per position and phase).
    n_resamples : int
        Poisson resamples per component for the noise ceiling and the null
        anisotropy.
    anisotropy_margin : float
        A component is crystalline when its anisotropic share exceeds the
        largest of its resamples' by this factor...
    matrix_occupancy : float
        ...and its map occupies less than this share of the scan (the
        participation ratio ``mean(map)² / mean(map²)``: 1 for a uniform map,
        about the covered area for a local one). The matrix is everywhere;
        amorphous speckle averaged into it leaves more anisotropy than
        counting noise explains (0.05 at 2000 counts per pattern, 0.2 at 500
        in the multislice scenes), so anisotropy alone does not tell it from
        a crystal. ``1`` turns this test off. With ``data``, a component
        whose map covers the scan but whose pattern resembles a phase more
        than speckle averages do (by ``anisotropy_margin`` times) is split
        into a piece of the phase and the rest (module description, step 3b).
    boundary : float
        A labelled position must also carry at least this fraction of its
        phase's typical peak share of the counts (the 95th percentile of the
        share over positions where the phase is significant): with maps
        smoothed to the probe's resolution, the test alone would extend every
        crystal by the blur; 0.25 puts the edge at a quarter of the maximum.
    nav_shape : tuple of int, optional
        Shape of the scan (rows, columns) of the map rows: with it the labels
        are regularised by a majority vote over ``label_window`` x
        ``label_window`` positions (isolated positions flipped by counting
        noise or speckle follow their neighbours).
    label_window : int
        Side of the majority-vote window in scan pixels (1 turns it off).
    n_refit : int
        KL updates of the maps for the full and every reduced model.
    random_state : int or numpy.random.Generator
        Seed of the resamples.

    Returns
    -------
    PhaseMap

    Raises
    ------
    ValueError
        For bad parameters, patterns and maps that disagree, data of the wrong
        shape, or no central direct beam (pass ``center``).

    Examples
    --------
    >>> from hyperspy_hnmf.polar import rotate_pattern
    >>> rows, cols = np.mgrid[0:32, 0:32]
    >>> def spots(angles, radius):
    ...     image = np.zeros((32, 32))
    ...     for a in angles:
    ...         r0 = 15.5 - radius * np.sin(np.deg2rad(a))
    ...         c0 = 15.5 + radius * np.cos(np.deg2rad(a))
    ...         image += np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / 1.5)
    ...     return image
    >>> halo = np.exp(-(np.hypot(rows - 15.5, cols - 15.5) - 9) ** 2 / 4)
    >>> beam = 40 * np.exp(-((rows - 15.5) ** 2 + (cols - 15.5) ** 2) / 2)
    >>> square = spots(range(0, 360, 90), 8)
    >>> patterns = np.stack([halo + beam, square + beam, rotate_pattern(square, 30, (15.5, 15.5))
    ...                      + beam, spots(range(0, 360, 60), 12) + beam])
    >>> maps = np.zeros((12, 4)); maps[:, 0] = 2000.0       # matrix everywhere
    >>> maps[0:2, 1] = maps[4:6, 2] = maps[8:10, 3] = 500.0  # three crystals
    >>> result = phase_map(patterns, maps, n_phases=2)
    >>> result.component_labels.tolist(), round(float(result.component_angles_deg[2]))
    ([0, 1, 1, 2], 30)
    """
    patterns, maps = check_components(patterns, maps)
    if maps is None:
        raise ValueError("maps are required: one column of counts per component pattern.")
    k = patterns.shape[0]
    n_phases, threshold, alpha, n_resamples, margin = check_phase_params(
        k, n_phases, threshold, linkage, alpha, n_resamples, anisotropy_margin)
    boundary = _check_probability("boundary", boundary, -1e-12, 1.0)
    label_window = _check_positive_int("label_window", label_window, 1)
    if nav_shape is not None:
        try:
            nav_shape = tuple(operator.index(n) for n in nav_shape)
        except TypeError:
            nav_shape = (-1,)
        if min(nav_shape, default=-1) < 1 or math.prod(nav_shape) != np.shape(maps)[0]:
            raise ValueError(
                f"nav_shape must be positive integers whose product is the number of map "
                f"rows ({np.shape(maps)[0]}), got {nav_shape!r}."
            )
    matrix_occupancy = _check_probability("matrix_occupancy", matrix_occupancy, 0.0, 1.0 + 1e-12)
    shape = patterns.shape[1:]
    if data is not None:
        data = np.asarray(data)
        if data.shape != (maps.shape[0], shape[0] * shape[1]):
            raise ValueError(
                f"data must have shape ({maps.shape[0]}, {shape[0] * shape[1]}), one "
                f"flattened pattern per map row; got {data.shape}."
            )
    rng = np.random.default_rng(random_state)
    clean = np.clip(np.nan_to_num(patterns.astype(np.float64)), 0, None)
    sums = clean.sum(axis=(1, 2))
    scale = np.where(sums > 0, sums, 1.0)
    unit = clean / scale[:, None, None]
    scaled_maps = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float64)), 0, None) * scale
    counts = scaled_maps.sum(axis=0)
    mean = np.tensordot(counts if counts.any() else np.ones(k), unit, axes=1)
    if center is None:
        center = find_central_beam(mean)
    if radial_range is None:
        PolarTransform(shape, center)  # validates the centre first
        radial_range = default_radial_range(mean, center)
    transform = PolarTransform(shape, center, radial_range, n_r, n_phi)
    group = dict(transform=transform, n_resamples=n_resamples, margin=margin,
                 matrix_occupancy=matrix_occupancy, n_phases=n_phases, threshold=threshold,
                 linkage=linkage)
    grouped = _group(unit, scaled_maps, rng, **group)
    split_from = np.full(k, -1, dtype=np.int64)
    phase_similarity = speckle_similarity = None
    spread = (grouped["anisotropy"] > margin * grouped["null"]) & ~grouped["crystalline"]
    if grouped["references"][0] >= 0:
        spread[grouped["references"][0]] = False  # the matrix's reference defines it
    if data is not None and grouped["labels"].max() > 0 and spread.any():
        phase_similarity, speckle_similarity, phase_angles = _speckle_test(
            data, scaled_maps, grouped["counts"], grouped["descriptors"],
            grouped["class_patterns"][1:], grouped["labels"], transform, n_resamples, rng)
        ratio = phase_similarity / np.maximum(speckle_similarity, 1e-12)
        mixed = np.flatnonzero(spread & (ratio.max(axis=1) > margin))
        if mixed.size:
            phases = np.argmax(ratio[mixed], axis=1)
            unit, scaled_maps = _split(data, unit, scaled_maps, mixed,
                                       grouped["class_patterns"][1 + phases],
                                       phase_angles[mixed, phases], grouped["descriptors"],
                                       transform, n_refit)
            split_from = np.concatenate([split_from, mixed])
            grouped = _group(unit, scaled_maps, rng, split_from=split_from, **group)
    labels = grouped["labels"]
    crystalline = grouped["crystalline"]
    references, angles = grouped["references"], grouped["angles"]
    class_patterns, symmetry = grouped["class_patterns"], grouped["symmetry"]
    k = labels.size
    n_classes = labels.max() + 1
    class_maps = np.stack([scaled_maps[:, labels == c].sum(axis=1) for c in range(n_classes)],
                          axis=1)
    result = PhaseMap(
        component_labels=labels, component_angles_deg=angles, references=references,
        crystalline=crystalline, split_from=split_from, phase_similarity=phase_similarity,
        speckle_similarity=speckle_similarity, occupancy=grouped["occupancy"],
        anisotropy=grouped["anisotropy"], anisotropy_null=grouped["null"],
        counts=grouped["counts"], similarity=grouped["similarity"],
        corrected_similarity=grouped["corrected"], noise_ceiling=grouped["ceiling"],
        pair_angles_deg=grouped["pair_angles"], symmetry_deg=symmetry,
        linkage=grouped["linkage"], maps=class_maps, patterns=class_patterns,
        transform=transform,
        classes=["matrix"] + [f"phase {c}" for c in range(1, n_classes)],
    )
    if data is not None and n_classes > 1:
        _label_pixels(result, data, unit.reshape(k, -1), scaled_maps, alpha, boundary,
                      n_refit)
        if nav_shape is not None and label_window > 1:
            result.labels = _majority(result.labels, nav_shape, n_classes, label_window)
            _orientation(result, scaled_maps)
    elif data is not None:
        result.labels = np.zeros(maps.shape[0], dtype=np.int64)
        result.orientation_deg = np.full(maps.shape[0], np.nan)
    return result


def _group(unit, scaled_maps, rng, transform, n_resamples, margin, matrix_occupancy, n_phases,
           threshold, linkage, split_from=None):
    """Steps 1 to 3: descriptors, noise-corrected similarity, matrix or crystal, phases.

    ``split_from``: for every component the mixed one it was split from
    (step 3b), -1 for the others. The rests of split components belong to the
    matrix; a piece has its phase's spots by construction (its pattern comes
    from many more counts than its map carries, so the anisotropy test at its
    own counts does not apply) and is crystalline when its map is local.
    """
    k = unit.shape[0]
    counts = scaled_maps.sum(axis=0)
    band = slice(None)  # every radius of the transform's range
    polar = transform(unit)
    descriptors = anisotropic_polar(polar)
    anisotropy = _anisotropy(descriptors, polar)
    similarity, pair_angles = phi_xcorr(descriptors)
    similarity = 0.5 * (similarity + similarity.T)
    ceiling, null = _noise_statistics(unit, counts, transform, band, n_resamples, rng)
    corrected = np.clip(similarity / np.sqrt(np.outer(ceiling, ceiling)), -1.0, 1.0)
    np.fill_diagonal(corrected, 1.0)
    occupancy = _occupancy(scaled_maps)
    crystalline = (anisotropy > margin * null) & (occupancy < matrix_occupancy)
    if split_from is not None:
        pieces = split_from >= 0
        crystalline = np.where(pieces, occupancy < matrix_occupancy, crystalline)
        crystalline[split_from[pieces]] = False
    labels = np.zeros(k, dtype=np.int64)
    crystal = np.flatnonzero(crystalline)
    tree = None
    if crystal.size == 1:
        labels[crystal] = 1
    elif crystal.size > 1:
        distance = np.clip(1.0 - corrected[np.ix_(crystal, crystal)], 0.0, 2.0)
        tree = hierarchy.linkage(distance[np.triu_indices(crystal.size, 1)], method=linkage)
        if n_phases is not None:
            raw = hierarchy.fcluster(tree, min(n_phases, crystal.size), criterion="maxclust")
        else:
            cut = 1.0 - (0.5 if threshold is None else threshold)
            raw = hierarchy.fcluster(tree, cut, criterion="distance")
        ids = np.unique(raw)
        totals = np.array([counts[crystal[raw == c]].sum() for c in ids])
        for new, old in enumerate(ids[np.argsort(-totals, kind="stable")]):
            labels[crystal[raw == old]] = new + 1
    references, angles, class_patterns, symmetry = _classes(labels, counts, unit, pair_angles,
                                                            transform)
    return dict(counts=counts, descriptors=descriptors, anisotropy=anisotropy,
                similarity=similarity, pair_angles=pair_angles, ceiling=ceiling, null=null,
                corrected=corrected, occupancy=occupancy, crystalline=crystalline,
                labels=labels, linkage=tree, references=references, angles=angles,
                class_patterns=class_patterns, symmetry=symmetry)


def _split(data, unit, maps, mixed, phase_patterns, phase_angles, descriptors, transform,
           n_refit):
    """Split every mixed component into a piece of its phase and the rest (step 3b).

    The piece is the phase's pattern at the component's orientation; its share
    of the component is the projection of the component's anisotropic
    descriptor on the piece's. The rest is the component less that share
    (clipped at zero). The component's counts at every position are divided
    between the two as the data say (:func:`_partition`).

    Returns
    -------
    unit : ndarray, shape (k + n_mixed, rows, columns)
        The rests in place of the mixed components, the pieces appended.
    maps : ndarray, shape (n_nav, k + n_mixed)
    """
    k = unit.shape[0]
    unit = np.concatenate([unit, np.zeros((mixed.size,) + unit.shape[1:])])
    maps = np.concatenate([maps, np.zeros((maps.shape[0], mixed.size))], axis=1)
    for i, (j, pattern, angle) in enumerate(zip(mixed, phase_patterns, phase_angles)):
        piece = np.clip(rotate_pattern(pattern, -angle, transform.center), 0, None)
        piece /= max(piece.sum(), 1e-300)
        piece_desc = anisotropic_polar(transform(piece))
        share = float(np.clip((descriptors[j] * piece_desc).sum()
                              / max((piece_desc**2).sum(), 1e-300), 0.0, 1.0))
        rest = np.clip(unit[j] - share * piece, 0, None)
        unit[j] = rest / max(rest.sum(), 1e-300)
        unit[k + i] = piece
        maps[:, k + i] = share * maps[:, j]
        maps[:, j] *= 1.0 - share
    maps = _partition(data, unit.reshape(unit.shape[0], -1), maps, mixed,
                      k + np.arange(mixed.size), n_refit)
    return unit, maps


def _partition(data, W, H, rests, pieces, n_iter, eps=1e-12):
    """Divide each split component's counts between its rest and its piece, position by position.

    The total ``H[:, rest] + H[:, piece]`` stays as the decomposition gave it;
    the piece's fraction ``f`` at every position maximises the Poisson
    likelihood of the data with every other map held (EM updates,
    ``f <- f A / (f A + (1 - f) B)`` with ``A``, ``B`` the data-over-model
    weighted sums of the two patterns).
    """
    total = H[:, rests] + H[:, pieces]
    fraction = np.where(total > 0, H[:, pieces] / np.where(total > 0, total, 1.0), 0.5)
    fraction = np.clip(fraction, 0.01, 0.99)
    for _ in range(n_iter):
        H[:, pieces] = fraction * total
        H[:, rests] = (1.0 - fraction) * total
        ratio = data / np.maximum(H @ W, eps)
        a = ratio @ W[pieces].T
        b = ratio @ W[rests].T
        fraction = fraction * a / np.maximum(fraction * a + (1.0 - fraction) * b, eps)
    H[:, pieces] = fraction * total
    H[:, rests] = (1.0 - fraction) * total
    return H


def _classes(labels, counts, unit, pair_angles, transform):
    """Reference, member angles, pattern and symmetry of every class."""
    k = labels.size
    shape = unit.shape[1:]
    n_classes = labels.max() + 1
    references = np.full(n_classes, -1, dtype=np.int64)
    angles = np.zeros(k)
    class_patterns = np.zeros((n_classes,) + shape)
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        reference = members[np.argmax(counts[members])]
        references[c] = reference
        weights = counts[members] if counts[members].sum() > 0 else np.ones(members.size)
        for m, w in zip(members, weights):
            if c > 0 and m != reference:
                angles[m] = pair_angles[reference, m]
            class_patterns[c] += w * rotate_pattern(unit[m], -angles[m], transform.center)
        class_patterns[c] /= max(class_patterns[c].sum(), 1e-300)
    symmetry = np.full(n_classes, 360.0)
    for c in range(1, n_classes):
        symmetry[c] = _symmetry(anisotropic_polar(transform(class_patterns[c])))
        members = labels == c
        angles[members] = -((-angles[members] + symmetry[c] / 2) % symmetry[c]
                            - symmetry[c] / 2)
    return references, angles, class_patterns, symmetry


def _speckle_test(data, maps, counts, descriptors, phase_patterns, labels, transform,
                  n_resamples, rng):
    """Similarity of every component to every phase, and what speckle alone reaches.

    A component whose map covers much of the scan may still carry a crystal:
    the decomposition can give part of a crystal to a component that also
    holds amorphous speckle. Speckle averaged over many positions is itself
    anisotropic and resembles any pattern a little, so the question is
    whether the component resembles a phase more than speckle does. The null
    is built from the data: the positions with the smallest share of
    crystalline counts (the lower half; crystals cover a minority of the
    scan) and of the component's own counts (the lower half: where it may
    carry a piece of a crystal that no crystalline component holds) are
    averaged with the component's own map values, in random order, as
    weights (the same averaging of speckle), and the average is
    drawn as Poisson counts at the component's counts (the same counting
    noise). Its similarity to each phase pattern, the largest over
    ``n_resamples`` such draws, is the speckle similarity.

    Returns
    -------
    phase_similarity, speckle_similarity, phase_angles : ndarray, shape (k, n_phases)
        The similarities and the rotation taking each component onto each phase.
    """
    k = maps.shape[1]
    phase_desc = anisotropic_polar(transform(phase_patterns))
    phase_similarity, phase_angles = phi_xcorr(descriptors, phase_desc)
    total = np.maximum(maps.sum(axis=1), 1e-300)
    crystal = maps[:, labels > 0].sum(axis=1) / total
    crystal_free = crystal <= np.median(crystal)
    shape = phase_patterns.shape[1:]
    speckle = np.zeros_like(phase_similarity)
    for j in range(k):
        own = maps[:, j] / total
        absent = np.flatnonzero(crystal_free & (own <= np.median(own)))
        if absent.size < 8:
            absent = np.flatnonzero(crystal_free)
        weights = np.stack([rng.choice(maps[:, j], size=absent.size, replace=False)
                            for _ in range(n_resamples)])
        means = weights @ data[absent]
        means /= np.maximum(means.sum(axis=1, keepdims=True), 1e-300)
        draws = rng.poisson(means * max(counts[j], 1.0)).reshape((n_resamples,) + shape)
        similarity = phi_xcorr(anisotropic_polar(transform(draws.astype(np.float64))),
                               phase_desc)[0]
        speckle[j] = similarity.max(axis=0)
    return phase_similarity, speckle, phase_angles


def _label_pixels(result, data, W, H, alpha, boundary, n_refit):
    """Likelihood-ratio labels, p-values and orientation of every position."""
    data = np.asarray(data, dtype=np.float64)
    labels = result.component_labels
    n_phases = result.n_classes - 1
    class_counts = np.stack([H[:, labels == p + 1].sum(axis=1)
                             for p in range(n_phases)], axis=1)
    share = class_counts / np.maximum(H.sum(axis=1, keepdims=True), 1e-300)
    full = _kl_refit(data, W, H.copy(), n_refit)
    deviance_full = _deviance(data, full @ W)
    statistic = np.zeros((data.shape[0], n_phases))
    pvalues = np.ones_like(statistic)
    dispersion = np.ones(n_phases)
    for p in range(n_phases):
        reduced = full.copy()
        reduced[:, labels == p + 1] = 0.0
        reduced = _kl_refit(data, W, reduced, n_refit)
        raw = np.clip(_deviance(data, reduced @ W) - deviance_full, 0.0, None)
        dof = int((labels == p + 1).sum())
        dispersion[p] = _dispersion(raw, share[:, p], dof)
        statistic[:, p] = raw / dispersion[p]
        pvalues[:, p] = stats.chi2.sf(statistic[:, p], dof)
    significant = pvalues < alpha
    peak = np.array([np.percentile(share[significant[:, p], p], 95)
                     if significant[:, p].any() else np.inf for p in range(n_phases)])
    significant &= share >= boundary * peak
    best = np.argmax(np.where(significant, statistic, -np.inf), axis=1)
    pixel_labels = np.where(significant.any(axis=1), best + 1, 0)
    result.labels = pixel_labels
    _orientation(result, H)
    result.statistic = statistic
    result.pvalues = pvalues
    result.dispersion = dispersion
    result.share = share
    result.share_peak = peak


def _orientation(result, H):
    """Rotation of the member carrying most counts at every labelled position."""
    orientation = np.full(H.shape[0], np.nan)
    for p in range(1, result.n_classes):
        members = result.members(p)
        where = result.labels == p
        if members.size and where.any():
            dominant = members[np.argmax(H[np.ix_(where, members)], axis=1)]
            orientation[where] = result.component_angles_deg[dominant]
    result.orientation_deg = orientation


def _majority(labels, nav_shape, n_classes, window):
    """Most frequent label in a window about every position (ties: the lowest class)."""
    from scipy import ndimage

    image = labels.reshape(nav_shape)
    votes = np.stack([ndimage.uniform_filter((image == c).astype(np.float64), window,
                                             mode="nearest") for c in range(n_classes)])
    return np.argmax(votes, axis=0).ravel()
