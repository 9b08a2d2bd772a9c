"""Signal methods of the polar subpackage, added to HyperSpy's ``Signal2D``.

The only module of :mod:`hyperspy_hnmf.polar` that touches HyperSpy:
:func:`register` adds ``polar_transform``, ``cluster_decomposition_components``,
``restore_decomposition_components``, ``polar_cluster_analysis`` and
``decomposition_phase_map`` to
``Signal2D`` (inherited by ``LazySignal2D`` and pyxem's ``Diffraction2D``);
calling it again changes nothing, and :func:`unregister` removes them. A name
that HyperSpy (or a subclass) already defines is left alone.

Positions and lengths given to these methods (``center``, ``radial_range``)
are in the units of the signal axes, ``center`` in HyperSpy's axis order
``(x, y)``; the polar output has calibrated axes ``r`` (the signal axes'
units) and ``phi`` (degrees, counter-clockwise as displayed).
"""

import hashlib

import numpy as np

from ..polar._components import (
    _check_cut,
    _check_linkage,
    check_components,
    cluster_components,
    default_radial_range,
)
from ..polar._phases import check_phase_params, phase_map as _phase_map
from ..polar._pixels import PolarKMeans
from ..polar._transform import PolarTransform, RadialRangeError, find_central_beam

__all__ = ["register", "unregister"]

_MARK = "_hnmf_polar"
_METHODS = {}


def _method(function):
    setattr(function, _MARK, True)
    _METHODS[function.__name__] = function
    return function


def _signal_axes(signal):
    """Column (x) and row (y) axes, checked to share one uniform scale."""
    axes = signal.axes_manager.signal_axes
    if len(axes) != 2:
        raise ValueError(
            f"Patterns must be 2D: this signal has {len(axes)} signal dimension(s)."
        )
    x, y = axes
    for axis in (x, y):
        if not getattr(axis, "is_uniform", True):
            raise ValueError(f"The signal axis {axis.name!r} is not uniform.")
    if not np.isclose(abs(x.scale), abs(y.scale), rtol=1e-6):
        raise ValueError(
            f"The two signal axes have different scales ({x.scale:g} and {y.scale:g}): "
            "a polar transform needs square pixels."
        )
    return x, y


def _mean_pattern(signal):
    data = signal.data
    nav = tuple(range(signal.axes_manager.navigation_dimension))
    mean = data.mean(axis=nav, dtype=np.float64) if nav else data.astype(np.float64)
    if signal._lazy:
        mean = mean.compute()
    return np.asarray(mean)


def _geometry(signal, center, radial_range, exclude_beam):
    """Centre (row, col) and radial range in pixels, from calibrated values or the data."""
    x, y = _signal_axes(signal)
    scale = abs(x.scale)
    shape = signal.axes_manager._signal_shape_in_array
    mean = None
    if center is None:
        mean = _mean_pattern(signal)
        center_px = _in_pixels(signal, find_central_beam, mean)
    else:
        try:
            cx, cy = (float(c) for c in center)
        except (TypeError, ValueError):
            raise ValueError(
                f"center must be two numbers (x, y) in the units of the signal axes, "
                f"got {center!r}."
            ) from None
        center_px = ((cy - y.offset) / y.scale, (cx - x.offset) / x.scale)
        row, col = center_px
        if not (0 <= row <= shape[0] - 1 and 0 <= col <= shape[1] - 1):
            raise ValueError(
                f"The centre (x={cx:g}, y={cy:g}) is outside the pattern: x spans "
                f"{x.axis[0]:g} to {x.axis[-1]:g} and y {y.axis[0]:g} to {y.axis[-1]:g} "
                f"{x.units or ''}".rstrip() + "."
            )
    PolarTransform(shape, center_px)  # validates the centre before anything else
    if radial_range is not None:
        try:
            r_min, r_max = (float(r) / scale for r in radial_range)
        except (TypeError, ValueError):
            raise ValueError(
                f"radial_range must be two numbers (r_min, r_max), got {radial_range!r}."
            ) from None
        return center_px, (r_min, r_max), scale
    if exclude_beam:
        mean = _mean_pattern(signal) if mean is None else mean
        return center_px, default_radial_range(mean, center_px), scale
    return center_px, None, scale


def _check_radial_numbers(radial_range):
    """Two finite numbers with 0 <= r_min < r_max (the pattern's extent is checked later)."""
    if radial_range is None:
        return
    try:
        r_min, r_max = (float(r) for r in radial_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"radial_range must be two numbers (r_min, r_max), got {radial_range!r}."
        ) from None
    if not (np.isfinite(r_min) and np.isfinite(r_max)) or r_min < 0 or r_max <= r_min:
        raise ValueError(
            f"radial_range must satisfy 0 <= r_min < r_max, got ({r_min:g}, {r_max:g})."
        )


def _in_pixels(signal, call, *args, **kwargs):
    """Run ``call``; radial-range and direct-beam errors speak the signal axes' units."""
    try:
        return call(*args, **kwargs)
    except RadialRangeError as error:
        x = signal.axes_manager.signal_axes[0]
        units = x.units if isinstance(x.units, str) and x.units != "<undefined>" else ""
        scale = abs(x.scale)
        if not units and scale == 1:
            raise
        unit = f" {units}" if units else ""
        raise ValueError(
            f"radial_range ({error.r_min * scale:g}, {error.r_max * scale:g}){unit} goes "
            f"beyond the pattern: circles about the centre stay inside it up to r = "
            f"{error.r_limit * scale:g}{unit} ({error.r_limit:g} pixels of {scale:g}{unit})."
        ) from None
    except ValueError as error:
        if not str(error).startswith("No central direct beam"):
            raise
        x = signal.axes_manager.signal_axes[0]
        units = x.units if isinstance(x.units, str) and x.units != "<undefined>" else ""
        raise ValueError(
            f"{str(error)[:-1]} as (x, y) in {units or 'the units of the signal axes'}."
        ) from None


def _of_data(what, signal, joiner=": "):
    """``what`` followed by the title of the data it was computed from (when it has one)."""
    title = signal.metadata.get_item("General.title", "")
    return f"{what}{joiner}{title}" if title else what


def _polar_axes(signal, transform, scale):
    r_axis = dict(name="r", units=signal.axes_manager.signal_axes[0].units,
                  scale=transform.radial_step * scale,
                  offset=transform.radii[0] * scale, size=transform.n_r, navigate=False)
    phi_axis = dict(name="phi", units="deg", scale=360.0 / transform.n_phi, offset=0.0,
                    size=transform.n_phi, navigate=False)
    return [r_axis, phi_axis]


def _polar_block(block, transform, parallel):
    return transform(block, parallel=parallel)


def _apply(transform, data, lazy):
    """The polar transform of every pattern, by one block function for both kinds of data.

    Lazy data: ``dask.array.map_blocks`` over navigation chunks (the signal
    axes made whole), each block with the serial kernel in dask's threads.
    In-memory data: the whole array is that one block, transformed by all
    numba threads; wrapping it in dask would copy and hash it first, which
    costs more than the transform itself.
    """
    if not lazy:
        return _polar_block(data, transform, True)
    n_lead = data.ndim - 2
    source = data.rechunk({n_lead: -1, n_lead + 1: -1})
    return source.map_blocks(
        _polar_block, transform, False,
        chunks=source.chunks[:n_lead] + ((transform.n_r,), (transform.n_phi,)),
        dtype=np.float64 if data.dtype == np.float64 else np.float32,
    )


def _polar_signal(signal, data, transform, scale, center_px):
    from hyperspy.signals import Signal2D

    nav_dim = signal.axes_manager.navigation_dimension
    axes = signal.axes_manager._get_axes_dicts()[:nav_dim] + _polar_axes(signal, transform, scale)
    polar = Signal2D(data, axes=axes)
    if signal._lazy:
        polar = polar.as_lazy()
    polar.metadata.General.title = _of_data("Polar transform", signal, " of ")
    x, y = signal.axes_manager.signal_axes
    polar.metadata.set_item("Polar_transform", {
        "center": [x.offset + center_px[1] * x.scale, y.offset + center_px[0] * y.scale],
        "center_pixels": [float(center_px[0]), float(center_px[1])],
        "radial_range_pixels": [float(r) for r in transform.radial_range],
    })
    return polar


@_method
def polar_transform(self, center=None, radial_range=None, n_r=None, n_phi=360):
    """Transform every pattern to polar coordinates ``(r, φ)`` about the direct beam.

    Bilinear interpolation, precomputed once for all patterns and applied by
    a compiled gather; lazy signals stay lazy (the same block function runs
    in ``dask.array.map_blocks``; in-memory data are one block).

    Parameters
    ----------
    center : tuple of float, optional
        ``(x, y)`` of the direct beam in the units of the signal axes; default
        found on the mean pattern (:func:`hyperspy_hnmf.polar.find_direct_beam`).
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in the units of the signal axes; default 0 to the
        largest circle about the centre inside the pattern.
    n_r : int, optional
        Radial samples; default one per pixel.
    n_phi : int
        Azimuthal samples over 360°.

    Returns
    -------
    hyperspy.signals.Signal2D
        Same navigation; signal axes ``phi`` (degrees) and ``r``; data
        ``(..., n_r, n_phi)``, float32 unless the data are float64.

    Raises
    ------
    ValueError
        If the centre is outside the pattern, the radial range goes beyond it,
        or the pixels are not square.

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(32, 32))
    >>> polar = s.polar_transform(center=(0, 0), radial_range=(1, 7), n_r=24, n_phi=180)
    >>> polar
    <Signal2D, title: Polar transform of Synthetic 4D-STEM: halo + 3 phases x 2 rotations, dimensions: (8, 8|180, 24)>
    >>> [(a.name, a.units) for a in polar.axes_manager.signal_axes]
    [('phi', 'deg'), ('r', '1/nm')]
    """
    _check_radial_numbers(radial_range)
    center_px, radial_px, scale = _geometry(self, center, radial_range, exclude_beam=False)
    transform = _in_pixels(self, PolarTransform, self.axes_manager._signal_shape_in_array,
                           center_px, radial_px, n_r, n_phi)
    data = _apply(transform, self.data, self._lazy)
    return _polar_signal(self, data, transform, scale, center_px)


def _decomposition_patterns(signal, number_of_components):
    results = signal.learning_results
    if results.factors is None or results.loadings is None:
        raise ValueError(
            "This signal has no decomposition results: run a decomposition first, e.g. "
            "s.decomposition(algorithm='hnmf', output_dimension=8)."
        )
    factors, loadings = np.asarray(results.factors), np.asarray(results.loadings)
    k = factors.shape[1]
    if number_of_components is not None:
        if isinstance(number_of_components, bool) or not isinstance(
                number_of_components, (int, np.integer)) or not 1 <= number_of_components <= k:
            raise ValueError(
                f"number_of_components must be an integer from 1 to {k}, "
                f"got {number_of_components!r}."
            )
        k = int(number_of_components)
    shape = signal.axes_manager._signal_shape_in_array
    patterns = factors[:, :k].T.reshape((k,) + tuple(shape))
    return check_components(patterns, loadings[:, :k])


_BSS = ("bss_algorithm", "unmixing_matrix", "bss_factors", "bss_loadings")
_STASHED = ("factors", "loadings", "output_dimension", "number_significant_components",
            "explained_variance", "explained_variance_ratio", "polar_clustering") + _BSS


@_method
def cluster_decomposition_components(self, method="polar_xcorr", n_clusters=None,
                                     threshold=None, linkage="average",
                                     number_of_components=None, center=None,
                                     radial_range=None, n_r=None, n_phi=360,
                                     write_to_learning_results=False):
    """Group decomposition components that differ by an in-plane rotation, and merge them.

    Each component pattern is transformed to polar coordinates about the
    direct beam; every pair is scored by the maximum over φ shifts of their
    normalized cross-correlation; ``1 - similarity`` is clustered
    hierarchically and the dendrogram cut. Each cluster's patterns are
    rotated onto its strongest member and averaged (weighted by intensity),
    its maps summed (patterns scaled to sum 1 first, so maps carry the
    intensity).

    Parameters
    ----------
    method : {"polar_xcorr"}
        Similarity measure.
    n_clusters : int, optional
        Cut the dendrogram into this many clusters.
    threshold : float, optional
        Or cut it where the linkage similarity drops below ``threshold``.
        Give exactly one of ``n_clusters`` and ``threshold``.
    linkage : {"average", "complete", "single", "weighted"}
    number_of_components : int, optional
        Use the first components only; default all.
    center : tuple of float, optional
        ``(x, y)`` of the direct beam in signal-axis units; default found on
        the mean of the component patterns, weighted by intensity.
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in signal-axis units; default leaves out the
        direct beam.
    n_r, n_phi : int
        Polar sampling.
    write_to_learning_results : bool
        Replace ``learning_results.factors``/``loadings`` by the merged
        components (components after ``number_of_components`` follow them
        unchanged, so the decomposition model keeps them); BSS results, which
        unmixed the replaced components, are cleared. The previous results,
        BSS included, are kept in
        ``learning_results.polar_clustering["previous"]`` and come back with
        ``restore_decomposition_components()``.

    Returns
    -------
    hyperspy_hnmf.polar.ComponentClusters
        ``labels``, ``angles_deg`` (rotation of every member from its
        cluster's reference), ``similarity``, ``linkage``,
        ``plot_dendrogram()``, and ``factors``/``loadings``: the merged
        patterns and maps as HyperSpy signals.

    Raises
    ------
    ValueError
        If no decomposition was run, there are fewer than two components, the
        method or cut is unknown, the centre is outside the pattern or the
        radial range beyond it.

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(24, 24), detector_shape=(32, 32), n_phases=2,
    ...                      n_rotations=2, noise=False)
    >>> s.decomposition(algorithm="hnmf", output_dimension=5, print_info=False,
    ...                 random_state=0, max_iter=300)
    >>> result = s.cluster_decomposition_components(n_clusters=3)
    >>> result.n_clusters, result.loadings.data.shape
    (3, (3, 24, 24))
    """
    if method != "polar_xcorr":
        raise ValueError(f"method must be 'polar_xcorr', got {method!r}.")
    patterns, maps = _decomposition_patterns(self, number_of_components)
    k = patterns.shape[0]
    _check_cut(n_clusters, threshold, k)
    _check_linkage(linkage)
    _check_radial_numbers(radial_range)
    x, y = _signal_axes(self)
    scale = abs(x.scale)
    center_px = None
    if center is not None:
        center_px, _, _ = _geometry(self, center, None, exclude_beam=False)
    radial_px = None
    if radial_range is not None:
        try:
            radial_px = tuple(float(r) / scale for r in radial_range)
        except (TypeError, ValueError):
            raise ValueError(
                f"radial_range must be two numbers (r_min, r_max), got {radial_range!r}."
            ) from None
    clusters = _in_pixels(self, cluster_components, patterns, maps, n_clusters=n_clusters,
                          threshold=threshold, linkage=linkage, center=center_px,
                          radial_range=radial_px, n_r=n_r, n_phi=n_phi)
    previous_factors = np.asarray(self.learning_results.factors)
    factors = clusters.patterns.reshape(clusters.n_clusters, -1).T
    factors = factors.astype(np.result_type(previous_factors.dtype, np.float32))
    factors[np.isnan(previous_factors[:, :k]).any(axis=1)] = np.nan
    clusters.factors = self._get_factors(factors)
    clusters.loadings = self._get_loadings(clusters.maps)
    for merged in (clusters.factors, clusters.loadings):
        merged.axes_manager.navigation_axes[0].name = "cluster"
    x_axis = self.axes_manager.signal_axes[0]
    clusters.pixel_size, clusters.units = abs(float(x_axis.scale)), str(x_axis.units)
    clusters.data_title = self.metadata.General.title or None
    clusters.factors.metadata.General.title = _of_data(
        "Merged components (polar_xcorr clusters)", self)
    clusters.loadings.metadata.General.title = _of_data("Merged maps (polar_xcorr clusters)", self)
    if write_to_learning_results:
        results = self.learning_results
        stash = _current_stash(results)
        if stash is not None:  # merging merged components: restore still goes back to
            previous = stash["previous"]  # the decomposition
        else:
            previous = {key: getattr(results, key) for key in _STASHED
                        if getattr(results, key, None) is not None}
        # Components after number_of_components were not clustered: they stay,
        # unchanged, after the merged ones, so the model keeps them.
        rest_factors = previous_factors[:, k:].astype(factors.dtype, copy=False)
        rest_loadings = np.asarray(results.loadings)[:, k:]
        results.factors = np.concatenate([factors, rest_factors], axis=1)
        results.loadings = np.concatenate(
            [clusters.maps, rest_loadings.astype(clusters.maps.dtype, copy=False)], axis=1)
        n_written = results.factors.shape[1]
        results.output_dimension = n_written
        results.number_significant_components = n_written
        results.explained_variance = None
        results.explained_variance_ratio = None
        for key in _BSS:  # unmixed from the components just replaced: stale now
            setattr(results, key, None)
        results.polar_clustering = {
            "labels": clusters.labels,
            "angles_deg": clusters.angles_deg,
            "references": clusters.references,
            "similarity": clusters.similarity,
            "linkage": clusters.linkage,
            "previous": previous,
        }
        results.polar_clustering["written"] = _merged_stamp(results)
    return clusters


def _merged_stamp(results):
    """What ``cluster_decomposition_components`` wrote: the algorithm and a digest of the arrays.

    A SHA-256 of the factors' and loadings' bytes (with their shapes and
    types): any later decomposition, even one with the same number of
    components and the same totals, gives another digest; ``save``/``load``
    keeps it.
    """
    digest = hashlib.sha256()
    for array in (results.factors, results.loadings):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return {"algorithm": str(results.decomposition_algorithm), "digest": digest.hexdigest()}


def _current_stash(results):
    """``learning_results.polar_clustering`` if the current results are the merged ones it wrote.

    None when there is no stash, or when a later decomposition (by any
    algorithm) or another change replaced the merged components: the stash
    is then stale, and restoring it would mix two decompositions.
    """
    stash = getattr(results, "polar_clustering", None)
    if not isinstance(stash, dict) or "previous" not in stash or "written" not in stash:
        return None
    written = stash["written"]
    same = isinstance(written, dict) and written.get("digest") == _merged_stamp(results)["digest"]
    return stash if same else None


@_method
def restore_decomposition_components(self):
    """Undo ``cluster_decomposition_components(write_to_learning_results=True)``.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        If the decomposition results were not replaced by merged components,
        or if they were replaced again since (by a later decomposition): the
        results stay as they are.

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32), n_phases=1,
    ...                      noise=False)
    >>> s.decomposition(algorithm="hnmf", output_dimension=3, print_info=False)
    >>> _ = s.cluster_decomposition_components(n_clusters=2, write_to_learning_results=True)
    >>> s.learning_results.factors.shape
    (1024, 2)
    >>> s.restore_decomposition_components()
    >>> s.learning_results.factors.shape
    (1024, 3)
    """
    results = self.learning_results
    stash = getattr(results, "polar_clustering", None)
    if not isinstance(stash, dict) or "previous" not in stash:
        raise ValueError(
            "There is nothing to restore: the decomposition results were not replaced "
            "by cluster_decomposition_components(..., write_to_learning_results=True)."
        )
    if _current_stash(results) is None:
        raise ValueError(
            "There is nothing to restore: learning_results no longer hold the merged "
            "components that cluster_decomposition_components(..., "
            "write_to_learning_results=True) wrote (a later decomposition, by "
            f"algorithm={results.decomposition_algorithm!r}, or another change replaced "
            "them), so the stashed results are stale and were left as they are.")
    previous = stash["previous"]
    for key in _STASHED:
        setattr(results, key, previous.get(key))


@_method
def polar_cluster_analysis(self, n_clusters, center=None, radial_range=None, n_r=None,
                           n_phi=180, n_harmonics=12, max_iter=20, tol=1e-3, n_init=4,
                           random_state=None):
    """Cluster every probe position's pattern into phases, whatever its in-plane rotation.

    The patterns are transformed to polar coordinates (``polar_transform``)
    and clustered by :class:`hyperspy_hnmf.polar.PolarKMeans`: k-means on
    rotation-invariant descriptors (magnitudes of the FFT along φ), then
    k-means with rotation (normalized φ cross-correlation against the
    rotation-aligned cluster centres). For HyperSpy's own
    ``cluster_analysis``, pass a ``PolarKMeans`` as ``algorithm``.

    Parameters
    ----------
    n_clusters : int
        Number of clusters (an amorphous region counts as one).
    center : tuple of float, optional
        ``(x, y)`` of the direct beam in signal-axis units; default found on
        the mean pattern.
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in signal-axis units; default leaves out the direct
        beam.
    n_r, n_phi, n_harmonics, max_iter, tol, n_init, random_state
        See :class:`~hyperspy_hnmf.polar.PolarKMeans`.

    Returns
    -------
    labels : hyperspy signal
        Cluster of every probe position (clusters numbered by decreasing size).
    centres : hyperspy.signals.Signal2D
        Polar centre of every cluster (navigation axis ``cluster``).
    rotation : hyperspy signal
        Rotation (degrees) of every probe position's pattern relative to its
        cluster's centre: an orientation map.

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32), n_phases=2)
    >>> labels, centres, rotation = s.polar_cluster_analysis(3, random_state=0)
    >>> labels.data.shape, centres.data.shape[0], rotation.data.shape
    ((16, 16), 3, (16, 16))
    """
    estimator = PolarKMeans(n_clusters, n_harmonics=n_harmonics, max_iter=max_iter, tol=tol,
                            n_init=n_init, random_state=random_state)
    _signal_axes(self)
    estimator.check_params(int(np.prod(self.axes_manager._navigation_shape_in_array or (1,))))
    _check_radial_numbers(radial_range)
    center_px, radial_px, scale = _geometry(self, center, radial_range, exclude_beam=True)
    transform = _in_pixels(self, PolarTransform, self.axes_manager._signal_shape_in_array,
                           center_px, radial_px, n_r, n_phi)
    estimator.set_params(polar_shape=transform.output_shape)
    polar = _apply(transform, self.data, self._lazy)
    if self._lazy:
        polar = polar.compute()
    estimator.fit(polar.reshape(-1, transform.n_r * transform.n_phi))
    nav_shape = self.axes_manager._navigation_shape_in_array or (1,)
    labels = self._get_navigation_signal(estimator.labels_.reshape(nav_shape))
    labels.metadata.General.title = _of_data("polar_xcorr cluster of each probe position", self)
    rotation = self._get_navigation_signal(estimator.rotation_deg_.reshape(nav_shape))
    rotation.metadata.General.title = _of_data("rotation from the cluster centre (deg)", self)
    rotation.metadata.set_item("Signal.quantity", "Rotation (deg)")
    from hyperspy.signals import Signal2D

    axes = [dict(name="cluster", size=n_clusters, navigate=True)] + _polar_axes(
        self, transform, scale)
    centres = Signal2D(estimator.cluster_centers_, axes=axes)
    centres.metadata.General.title = _of_data("polar_xcorr cluster centres", self)
    return labels, centres, rotation


@_method
def decomposition_phase_map(self, n_phases=None, threshold=None, number_of_components=None,
                            center=None, radial_range=None, alpha=1e-3, n_resamples=20,
                            boundary=0.25, label_window=3, random_state=0):
    """Phase, class maps and orientation of every probe position from the decomposition.

    Built for amorphous specimens with crystals at low dose, where
    ``polar_cluster_analysis`` on raw patterns fails: the components of the
    last decomposition (best a KL fit, e.g. ``algorithm="hnmf", loss="kl"``)
    are compared in polar coordinates with the rotationally symmetric
    background (halo, beam) removed; their similarity is corrected for the
    counting noise by Poisson resamples of each component; components whose
    maps cover the scan or whose spots counting noise explains form the
    amorphous matrix, the others are clustered into phases up to in-plane
    rotation; a matrix component that resembles a phase more than amorphous
    speckle does (it holds part of a crystal) is split, position by
    position, into the phase's piece and the rest. Every probe position is
    then tested: is a phase's presence significant (Poisson likelihood
    ratio, scaled for speckle, level ``alpha``) and strong enough (``boundary``)? See
    :func:`hyperspy_hnmf.polar.phase_map` for the details.

    Parameters
    ----------
    n_phases : int, optional
        Number of crystalline phases (the matrix not counted).
    threshold : float, optional
        Or merge components while their noise-corrected similarity stays
        above it (default 0.5 when neither is given).
    number_of_components : int, optional
        Use the first components only; default all.
    center : tuple of float, optional
        ``(x, y)`` of the direct beam in signal-axis units; default found on
        the counts-weighted mean of the component patterns.
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in signal-axis units; default leaves out the beam.
    alpha : float
        Significance level of the per-position test.
    n_resamples : int
        Poisson resamples per component.
    boundary : float
        Least share of a phase's peak share of counts for a labelled position.
    label_window : int
        Majority-vote window (scan pixels) that regularises the labels; 1 for none.
    random_state : int
        Seed of the resamples.

    Returns
    -------
    labels : hyperspy signal
        Class of every probe position: 0 the amorphous matrix, 1... the
        phases (numbered by decreasing counts); ``metadata.Phase_map.classes``
        names them.
    maps : hyperspy.signals.Signal2D
        Counts of every class at every position (navigation axis ``class``).
    orientation : hyperspy signal
        Rotation (degrees, counter-clockwise as displayed) of every labelled
        position relative to its phase's reference component; NaN on the matrix.
    result : hyperspy_hnmf.polar.PhaseMap
        Everything else: component classes and angles, the similarities and
        noise ceilings, the test statistics and p-values.

    Raises
    ------
    ValueError
        If no decomposition was run, or for bad parameters (before any work).

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.validation_data import load_multislice
    >>> scene = load_multislice("A", dose=2000, seed=0)
    >>> s = hs.signals.Signal2D(scene["data"].astype("float32"))
    >>> s.decomposition(algorithm="hnmf", output_dimension=8, loss="kl", print_info=False,
    ...                 random_state=0, show_progressbar=False)
    >>> labels, maps, orientation, result = s.decomposition_phase_map(n_phases=2)
    >>> labels.data.shape, maps.data.shape, result.classes
    ((30, 30), (3, 30, 30), ['matrix', 'phase 1', 'phase 2'])
    """
    results = self.learning_results
    if results.factors is None or results.loadings is None:
        raise ValueError(
            "This signal has no decomposition results: run a decomposition first, e.g. "
            "s.decomposition(algorithm='hnmf', output_dimension=8, loss='kl')."
        )
    check_phase_params(np.asarray(results.factors).shape[1], n_phases, threshold, "average", alpha, n_resamples, 1.0)
    _check_radial_numbers(radial_range)
    patterns, maps = _decomposition_patterns(self, number_of_components)
    x, y = _signal_axes(self)
    scale = abs(x.scale)
    center_px = None
    if center is not None:
        center_px, _, _ = _geometry(self, center, None, exclude_beam=False)
    radial_px = None if radial_range is None else tuple(float(r) / scale for r in radial_range)
    nav_shape = self.axes_manager._navigation_shape_in_array or (1,)
    data = self.data
    if self._lazy:
        data = data.compute()
    data = np.asarray(data).reshape(-1, patterns.shape[1] * patterns.shape[2])
    result = _in_pixels(self, _phase_map, patterns, maps, data=data, n_phases=n_phases,
                        threshold=threshold, center=center_px, radial_range=radial_px,
                        alpha=alpha, n_resamples=n_resamples, boundary=boundary,
                        nav_shape=nav_shape if len(nav_shape) == 2 else None,
                        label_window=label_window, random_state=random_state)
    labels = self._get_navigation_signal(result.labels.reshape(nav_shape))
    labels.metadata.General.title = _of_data(
        "Phase of each probe position (0 = amorphous matrix)", self)
    labels.metadata.set_item("Phase_map.classes", list(result.classes))
    orientation = self._get_navigation_signal(result.orientation_deg.reshape(nav_shape))
    orientation.metadata.General.title = _of_data(
        "Rotation from the phase's reference (deg)", self)
    orientation.metadata.set_item("Signal.quantity", "Rotation (deg)")
    class_maps = self._get_loadings(result.maps)
    class_maps.axes_manager.navigation_axes[0].name = "class"
    class_maps.metadata.General.title = _of_data("Counts of each class (matrix, phases)", self)
    class_maps.metadata.set_item("Signal.quantity", "Counts (electrons)")
    return labels, class_maps, orientation, result


def register():
    """Add the polar methods to HyperSpy's ``Signal2D`` (idempotent).

    Called on ``import hyperspy_hnmf``; calling it again changes nothing.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> register()
    >>> hasattr(hs.signals.Signal2D, "cluster_decomposition_components")
    True
    """
    from hyperspy.signals import Signal2D

    for name, function in _METHODS.items():
        current = getattr(Signal2D, name, None)
        if current is None:
            setattr(Signal2D, name, function)


def unregister():
    """Remove the methods added by :func:`register`.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> unregister()
    >>> hasattr(hs.signals.Signal2D, "polar_transform")
    False
    >>> register()
    """
    from hyperspy.signals import Signal2D

    for name in _METHODS:
        if getattr(Signal2D.__dict__.get(name), _MARK, False):
            delattr(Signal2D, name)
