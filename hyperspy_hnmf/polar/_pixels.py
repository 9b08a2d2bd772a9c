"""Rotation-invariant clustering of every probe position's pattern (array level).

Comparing all pairs of a scan's patterns is out of reach (16,384 patterns are
134 million pairs), so :class:`PolarKMeans` works in two stages:

1. rotation-invariant descriptors: the magnitudes of the first harmonics of
   the FFT along φ of each polar pattern (a rotation only changes their
   phases), clustered by k-means (several k-means++ starts, the lowest
   distortion kept);
2. k-means with rotation: every pattern is compared with every cluster centre
   by the normalized φ cross-correlation, assigned to the most similar one, and
   each centre becomes the mean of its members rotated onto it, until the
   labels no longer change.
"""

import operator
import warnings

import numpy as np
from scipy import fft
from scipy.cluster import vq

from ._components import default_radial_range
from ._transform import PolarTransform, find_central_beam
from ._xcorr import _peak, shift_phi

__all__ = ["PolarKMeans"]

# Patterns per block of the cross-correlation against the centres.
_BLOCK = 4096


def _check_shape_param(name, value):
    if value is None:
        return None
    try:
        shape = tuple(operator.index(n) for n in value)
    except TypeError:
        shape = ()
    if len(shape) != 2 or min(shape) < 2:
        raise ValueError(f"{name} must be two integers >= 2, got {value!r}.")
    return shape


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _is_default(value, default):
    """Whether a parameter still has its default (arrays, e.g. a centre, compare too)."""
    if value is None or default is None:
        return value is default
    try:
        return bool(value == default)
    except ValueError:  # an array against a number: not the default
        return False


class PolarKMeans:
    """k-means of diffraction patterns up to in-plane rotation.

    A scikit-learn style clustering estimator (``fit``, ``fit_predict``,
    ``labels_``) for HyperSpy's ``cluster_analysis``: each sample is one
    pattern, flattened. With ``pattern_shape`` the samples are detector
    images, transformed to polar coordinates about the direct beam of their
    mean; with ``polar_shape`` they are polar patterns already (e.g. from the
    signal method ``polar_transform``).

    Parameters
    ----------
    n_clusters : int
        Number of clusters (phases, amorphous regions included).
    pattern_shape : tuple of int, optional
        ``(rows, columns)`` of each detector pattern.
    polar_shape : tuple of int, optional
        ``(n_r, n_phi)`` of each polar pattern. Give exactly one of the two.
    center : tuple of float, optional
        ``(row, column)`` of the direct beam in pixels (with ``pattern_shape``);
        default found on the mean pattern.
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in pixels; default leaves out the direct beam.
    n_r : int, optional
        Radial samples (default one per pixel).
    n_phi : int
        Azimuthal samples (with ``pattern_shape``).
    n_harmonics : int
        Harmonics along φ in the rotation-invariant descriptors.
    max_iter : int
        Most iterations of the rotation-aware refinement (0 skips it).
    tol : float
        Stop the refinement once at most this fraction of the patterns
        changes cluster in an iteration.
    n_init : int
        k-means++ starts on the descriptors.
    random_state : int, numpy.random.Generator or None
        Seed of the k-means starts.

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        Cluster of every pattern, clusters numbered by decreasing size.
    cluster_centers_ : ndarray, shape (n_clusters, n_r, n_phi)
        Polar centre of every cluster (members rotated onto it and averaged,
        each normalized to unit L2 norm first).
    rotation_deg_ : ndarray, shape (n_samples,)
        Rotation of every pattern relative to its centre (degrees,
        counter-clockwise as displayed), reduced to
        ``(-symmetry / 2, symmetry / 2]`` of its cluster's symmetry.
    symmetry_deg_ : ndarray, shape (n_clusters,)
        Smallest rotation (360 / n, n = 12, 6, 4, 3, 2 or 1) that maps each
        centre's anisotropic part (the median over φ of every ring
        subtracted, so an amorphous ring does not count) onto itself with a
        normalized correlation of at least 0.8:
        rotations are only defined modulo it (diffraction patterns are
        centrosymmetric, so usually 180° or less).
    similarity_ : ndarray, shape (n_samples,)
        Normalized φ cross-correlation of every pattern with its centre.
    n_iter_ : int
        Refinement iterations run.
    transform_ : PolarTransform or None
        The polar geometry (with ``pattern_shape``).

    Examples
    --------
    >>> from hyperspy_hnmf.polar import rotate_pattern
    >>> rng = np.random.default_rng(0)
    >>> bases = rng.random((2, 24, 24)) ** 8
    >>> X = np.stack([rotate_pattern(bases[i % 2], rng.uniform(0, 360), (11.5, 11.5))
    ...               for i in range(20)]).reshape(20, -1)
    >>> model = PolarKMeans(2, pattern_shape=(24, 24), center=(11.5, 11.5),
    ...                     radial_range=(2, 11), random_state=0).fit(X)
    >>> bool((model.labels_[::2] == model.labels_[0]).all()
    ...      and (model.labels_[1::2] != model.labels_[0]).all())
    True
    """

    def __init__(self, n_clusters=8, pattern_shape=None, polar_shape=None, center=None,
                 radial_range=None, n_r=None, n_phi=180, n_harmonics=12, max_iter=20,
                 tol=1e-3, n_init=4, random_state=None):
        self.n_clusters = n_clusters
        self.pattern_shape = pattern_shape
        self.polar_shape = polar_shape
        self.center = center
        self.radial_range = radial_range
        self.n_r = n_r
        self.n_phi = n_phi
        self.n_harmonics = n_harmonics
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state

    def get_params(self, deep=True):
        """Parameters of the estimator, as scikit-learn's ``get_params``.

        Examples
        --------
        >>> PolarKMeans(3, polar_shape=(8, 36)).get_params()["n_clusters"]
        3
        """
        return {name: getattr(self, name) for name in (
            "n_clusters", "pattern_shape", "polar_shape", "center", "radial_range", "n_r",
            "n_phi", "n_harmonics", "max_iter", "tol", "n_init", "random_state")}

    def set_params(self, **params):
        """Set parameters, as scikit-learn's ``set_params``.

        Examples
        --------
        >>> PolarKMeans(polar_shape=(8, 36)).set_params(n_clusters=2).n_clusters
        2
        """
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for PolarKMeans.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = PolarKMeans().get_params()
        changed = {k: v for k, v in self.get_params().items() if not _is_default(v, defaults[k])}
        return "PolarKMeans(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _polar(self, X):
        pattern_shape = _check_shape_param("pattern_shape", self.pattern_shape)
        polar_shape = _check_shape_param("polar_shape", self.polar_shape)
        if (pattern_shape is None) == (polar_shape is None):
            raise ValueError(
                "Give exactly one of pattern_shape (samples are detector patterns) and "
                "polar_shape (samples are polar patterns)."
            )
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(
                f"X must be 2D, one flattened pattern per row; got shape {X.shape}."
            )
        shape = pattern_shape or polar_shape
        if X.shape[1] != shape[0] * shape[1]:
            raise ValueError(
                f"Each row of X must hold {shape[0]} x {shape[1]} = {shape[0] * shape[1]} "
                f"values, got {X.shape[1]}."
            )
        if not np.isfinite(X).all():
            rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
            raise ValueError(
                f"X contains NaN or infinite values in {rows.size} patterns (first: row "
                f"{rows[0]}, probe positions in scan order). Replace them first (dead or hot "
                "detector pixels: set them to 0 or to their neighbours' mean).")
        dtype = np.float64 if X.dtype == np.float64 else np.float32
        if polar_shape is not None:
            self.transform_ = None
            return X.reshape((-1,) + polar_shape).astype(dtype, copy=False)
        patterns = X.reshape((-1,) + pattern_shape)
        mean = patterns.mean(axis=0, dtype=np.float64)
        center = find_central_beam(mean) if self.center is None else self.center
        radial_range = self.radial_range
        if radial_range is None:
            PolarTransform(pattern_shape, center)  # validates the centre first
            radial_range = default_radial_range(mean, center)
        self.transform_ = PolarTransform(pattern_shape, center, radial_range, self.n_r,
                                         self.n_phi)
        return self.transform_(patterns.astype(dtype, copy=False))

    def check_params(self, n_samples=None):
        """Validate the clustering parameters, before any work on the data.

        Parameters
        ----------
        n_samples : int, optional
            Number of patterns to cluster; ``n_clusters`` may not exceed it.

        Returns
        -------
        tuple
            ``(n_clusters, n_harmonics, max_iter, n_init, tol)``.

        Raises
        ------
        ValueError
            For a parameter out of range, with its name and value.

        Examples
        --------
        >>> PolarKMeans(3).check_params(10)
        (3, 12, 20, 4, 0.001)
        >>> PolarKMeans(1000).check_params(256)
        Traceback (most recent call last):
        ...
        ValueError: n_clusters=1000 is more than the 256 samples.
        """
        n_clusters = _check_int("n_clusters", self.n_clusters, 1)
        n_harmonics = _check_int("n_harmonics", self.n_harmonics, 0)
        max_iter = _check_int("max_iter", self.max_iter, 0)
        n_init = _check_int("n_init", self.n_init, 1)
        try:
            tol = float(self.tol)
        except (TypeError, ValueError):
            tol = np.nan
        if not 0 <= tol < 1:
            raise ValueError(f"tol must be a number from 0 to less than 1, got {self.tol!r}.")
        if n_samples is not None and n_samples < n_clusters:
            raise ValueError(
                f"n_clusters={n_clusters} is more than the {n_samples} samples."
            )
        return n_clusters, n_harmonics, max_iter, n_init, tol

    def fit(self, X, y=None):
        """Cluster the patterns in the rows of ``X``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            One flattened pattern per row.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad parameters or data (wrong row length, non-finite values,
            fewer samples than clusters, patterns that are not 2D).

        Examples
        --------
        >>> X = np.random.default_rng(0).random((10, 8 * 36))
        >>> PolarKMeans(2, polar_shape=(8, 36), random_state=0).fit(X).labels_.shape
        (10,)
        """
        polar = self._polar(X)
        n_clusters, n_harmonics, max_iter, n_init, tol = self.check_params(polar.shape[0])
        spectra = _unit_spectra(polar)
        labels = self._descriptor_kmeans(spectra, n_clusters, n_harmonics, n_init)
        labels, centers, similarity, shift, self.n_iter_ = _refine(
            polar.shape[-1], spectra, labels, n_clusters, max_iter, tol)
        sizes = np.bincount(labels, minlength=n_clusters)
        order = np.argsort(-sizes, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(n_clusters)
        self.labels_ = rank[labels]
        self.cluster_centers_ = centers[order].astype(polar.dtype, copy=False)
        n_phi = polar.shape[-1]
        self.symmetry_deg_ = np.array([_symmetry(c) for c in self.cluster_centers_])
        period = self.symmetry_deg_[self.labels_]
        angle = shift * (360.0 / n_phi)
        self.rotation_deg_ = -((-angle + period / 2) % period - period / 2)
        self.similarity_ = similarity
        return self

    def fit_predict(self, X, y=None):
        """Fit and return ``labels_``.

        Examples
        --------
        >>> X = np.random.default_rng(0).random((6, 4 * 16))
        >>> PolarKMeans(3, polar_shape=(4, 16), random_state=0).fit_predict(X).shape
        (6,)
        """
        return self.fit(X).labels_

    def _descriptor_kmeans(self, spectra, n_clusters, n_harmonics, n_init):
        keep = min(n_harmonics + 1, spectra.shape[0])
        descriptors = np.abs(spectra[:keep]).transpose(1, 0, 2).reshape(spectra.shape[1], -1)
        descriptors = descriptors.astype(np.float64)
        rng = np.random.default_rng(self.random_state)
        best, best_distortion = None, np.inf
        for _ in range(n_init):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "One of the clusters is empty"
                centroids, labels = vq.kmeans2(descriptors, n_clusters, minit="++",
                                               seed=rng)
            distortion = ((descriptors - centroids[labels]) ** 2).sum()
            if distortion < best_distortion:
                best, best_distortion = labels, distortion
        for c in np.flatnonzero(np.bincount(best, minlength=n_clusters) == 0):
            best[rng.integers(best.size)] = c  # an empty cluster gets one pattern
        return best


# Candidate rotational symmetries (degrees), the finest first, and the
# normalized correlation of a centre with itself rotated that marks one.
_SYMMETRIES = (30.0, 60.0, 90.0, 120.0, 180.0, 360.0)
_SYMMETRY_CORRELATION = 0.8


def _symmetry(centre):
    """Smallest candidate rotation that maps a polar pattern's spots onto themselves.

    Tested on the anisotropic part (the median over φ of every ring
    subtracted): an amorphous ring or the beam's tails look the same at any
    rotation and would otherwise pass every candidate, down to 30°.
    """
    anisotropic = centre - np.median(centre, axis=-1, keepdims=True)
    centred = anisotropic - anisotropic.mean()
    norm = (centred**2).sum()
    if norm <= 0:
        return _SYMMETRIES[0]
    for period in _SYMMETRIES[:-1]:
        if (centred * shift_phi(centred, period)).sum() / norm >= _SYMMETRY_CORRELATION:
            return period
    return _SYMMETRIES[-1]


def _unit_spectra(polar):
    """FFT along φ of the mean-free, unit-norm polar patterns, laid out (n_k, n, n_r).

    Frequency first, so that correlating with the centres is one matrix
    product per frequency over contiguous memory.
    """
    centred = polar - polar.mean(axis=(1, 2), keepdims=True)
    norms = np.sqrt(np.einsum("ijk,ijk->i", centred, centred))
    centred /= np.where(norms > 0, norms, 1.0)[:, None, None].astype(centred.dtype)
    spectra = fft.rfft(centred, axis=-1, workers=-1)
    return np.ascontiguousarray(spectra.transpose(2, 0, 1))


def _rotation_weights(n_phi):
    """Weight of every rfft bin in a real inner product (the mirrored half counts twice)."""
    weights = np.full(n_phi // 2 + 1, 2.0)
    weights[0] = 1.0
    if n_phi % 2 == 0:
        weights[-1] = 1.0
    return weights


def _correlate(spectra, centres, n_phi):
    """Best normalized correlation of every pattern with every centre, and its shift (bins).

    ``spectra`` (n_k, n, n_r) and ``centres`` (n_k, n_clusters, n_r). The
    shift ``s`` is the rotation taking the centre onto the pattern:
    ``pattern(φ) ≈ centre(φ - s)``, refined below one bin by a parabola
    through the peak (a 2° bin would otherwise quantize the orientation map).
    """
    n, k = spectra.shape[1], centres.shape[1]
    similarity = np.empty((n, k))
    shift = np.empty((n, k))
    right = np.conj(centres).transpose(0, 2, 1)
    for start in range(0, n, _BLOCK):
        rows = slice(start, start + _BLOCK)
        correlation = fft.irfft(np.matmul(spectra[:, rows], right), n=n_phi, axis=0,
                                workers=-1)
        similarity[rows], shift[rows] = _peak(correlation, n_phi, refine=True)
    return similarity, shift


def _centres(spectra, labels, shift, n_clusters, n_phi, previous):
    """Mean of the members rotated back onto their centre, unit norm: (n_k, n_clusters, n_r)."""
    n_k, n = spectra.shape[:2]
    frequencies = np.arange(n_k)
    phase = np.exp(2j * np.pi * frequencies[:, None] * shift[None, :] / n_phi)
    members = np.zeros((n, n_clusters), dtype=spectra.dtype)
    members[np.arange(n), labels] = 1
    weights = phase.astype(spectra.dtype)[:, :, None] * members[None]
    centres = np.matmul(weights.transpose(0, 2, 1), spectra)
    power = np.einsum("k,kcr->c", _rotation_weights(n_phi), np.abs(centres) ** 2) / n_phi
    norms = np.sqrt(power)
    empty = members.sum(axis=0) == 0
    centres /= np.where(norms > 0, norms, 1.0)[None, :, None].astype(centres.real.dtype)
    if empty.any():
        centres[:, empty] = previous[:, empty]
    return centres


def _refine(n_phi, spectra, labels, n_clusters, max_iter, tol):
    """k-means with rotation, started from the descriptor labels.

    Returns labels, polar centres (n_clusters, n_r, n_phi), every pattern's
    similarity with its centre and shift (bins) from it, and the number of
    iterations.
    """
    # First centres: each cluster's members rotated onto one of them and averaged.
    centres = np.empty((spectra.shape[0], n_clusters, spectra.shape[2]), dtype=spectra.dtype)
    for c in range(n_clusters):
        members = spectra[:, labels == c]
        _, shift = _correlate(members, members[:, :1], n_phi)
        centres[:, c] = _centres(members, np.zeros(members.shape[1], dtype=np.int64),
                                 shift[:, 0], 1, n_phi, None)[:, 0]
    n_iter = 0
    while True:
        similarity, shift = _correlate(spectra, centres, n_phi)
        if n_iter == max_iter:
            break
        new_labels = np.argmax(similarity, axis=1)
        n_iter += 1
        changed = np.count_nonzero(new_labels != labels) > tol * labels.size
        labels = new_labels
        best_shift = np.take_along_axis(shift, labels[:, None], axis=1)[:, 0]
        centres = _centres(spectra, labels, best_shift, n_clusters, n_phi, centres)
        if not changed:
            similarity, shift = _correlate(spectra, centres, n_phi)
            break
    similarity = np.take_along_axis(similarity, labels[:, None], axis=1)[:, 0]
    shift = np.take_along_axis(shift, labels[:, None], axis=1)[:, 0]
    polar_centres = fft.irfft(centres, n=n_phi, axis=0).transpose(1, 2, 0)
    return labels, polar_centres, similarity, shift, n_iter
