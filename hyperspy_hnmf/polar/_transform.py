"""Polar transform of diffraction patterns about the direct beam (array level).

The interpolation is precomputed once per geometry (:class:`PolarTransform`):
for every output sample ``(r, φ)`` the four neighbouring detector pixels and
their bilinear weights. Applying it is a gather, compiled with numba, that
streams each pattern once. φ is measured counter-clockwise as displayed
(rows grow downwards), so rotating a pattern counter-clockwise by θ shifts its
polar transform by +θ along φ.
"""

import math
import operator

import numba
import numpy as np
from scipy import ndimage

__all__ = ["PolarTransform", "find_central_beam", "find_direct_beam", "polar_transform"]

_OPTIONS = dict(nogil=True, cache=True, fastmath=True)


@numba.njit(inline="always", **_OPTIONS)
def _gather_row(patterns, index, weight, out, i):
    p = patterns[i]
    o = out[i]
    for j in range(index.shape[0]):
        o[j] = (weight[j, 0] * p[index[j, 0]] + weight[j, 1] * p[index[j, 1]]
                + weight[j, 2] * p[index[j, 2]] + weight[j, 3] * p[index[j, 3]])


@numba.njit(parallel=True, **_OPTIONS)
def _gather_parallel(patterns, index, weight, out):
    for i in numba.prange(patterns.shape[0]):
        _gather_row(patterns, index, weight, out, i)


@numba.njit(**_OPTIONS)
def _gather_serial(patterns, index, weight, out):
    # Called from dask's worker threads: numba's default threading layer must
    # not be entered from several threads at once, so no prange here.
    for i in range(patterns.shape[0]):
        _gather_row(patterns, index, weight, out, i)


def _check_pattern_shape(shape):
    try:
        shape = tuple(operator.index(n) for n in shape)
    except TypeError:
        shape = ()
    if len(shape) != 2 or min(shape) < 2:
        raise ValueError(
            f"Patterns must be 2D images of at least 2 x 2 pixels; got pattern shape {shape!r}."
        )
    return shape


def _check_center(center, shape):
    try:
        row, col = (float(c) for c in center)
    except (TypeError, ValueError):
        raise ValueError(
            f"center must be two numbers (row, column) in pixels, got {center!r}."
        ) from None
    if not (0 <= row <= shape[0] - 1 and 0 <= col <= shape[1] - 1):
        raise ValueError(
            f"The centre (row {row:g}, column {col:g}) is outside the pattern of "
            f"{shape[0]} x {shape[1]} pixels (rows 0 to {shape[0] - 1}, columns 0 "
            f"to {shape[1] - 1})."
        )
    return row, col


def inscribed_radius(shape, center):
    """Largest radius (pixels) whose whole circle about ``center`` lies in the pattern.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, columns)`` of the pattern.
    center : tuple of float
        ``(row, column)`` in pixels.

    Returns
    -------
    float

    Examples
    --------
    >>> inscribed_radius((64, 64), (31.5, 31.5)), inscribed_radius((64, 64), (20, 31.5))
    (31.5, 20.0)
    """
    row, col = center
    return float(min(row, col, shape[0] - 1 - row, shape[1] - 1 - col))


def _check_radial_range(radial_range, r_limit):
    if radial_range is None:
        return 0.0, r_limit
    try:
        r_min, r_max = (float(r) for r in radial_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"radial_range must be two numbers (r_min, r_max), got {radial_range!r}."
        ) from None
    if not (math.isfinite(r_min) and math.isfinite(r_max)) or r_min < 0 or r_max <= r_min:
        raise ValueError(
            f"radial_range must satisfy 0 <= r_min < r_max, got ({r_min:g}, {r_max:g})."
        )
    if r_max > r_limit * (1 + 1e-9):
        raise RadialRangeError(r_min, r_max, r_limit)
    return r_min, min(r_max, r_limit)


class RadialRangeError(ValueError):
    """A radial range beyond the largest circle about the centre inside the pattern.

    Carries the numbers (pixels) so that callers working in calibrated units
    can say the same in theirs.
    """

    def __init__(self, r_min, r_max, r_limit):
        self.r_min, self.r_max, self.r_limit = r_min, r_max, r_limit
        super().__init__(
            f"radial_range ({r_min:g}, {r_max:g}) pixels goes beyond the pattern: "
            f"circles about the centre stay inside it up to r = {r_limit:g} pixels."
        )


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


class PolarTransform:
    """Bilinear polar resampling of 2D patterns, precomputed once and reused.

    Output sample ``(i, j)`` is at radius ``r_min + (i + 0.5) * dr``
    (``dr = (r_max - r_min) / n_r``) and angle ``φ_j = j * 360 / n_phi``
    degrees, counter-clockwise as displayed, from the column axis:
    row ``= center_row - r sin φ``, column ``= center_col + r cos φ``.

    Parameters
    ----------
    pattern_shape : tuple of int
        ``(rows, columns)`` of each pattern.
    center : tuple of float
        ``(row, column)`` of the direct beam in pixels, inside the pattern.
    radial_range : tuple of float, optional
        ``(r_min, r_max)`` in pixels; default from 0 to the largest circle
        about the centre inside the pattern. ``r_max`` may not exceed it.
    n_r : int, optional
        Radial samples; default one per pixel of the radial range.
    n_phi : int
        Azimuthal samples over 360°.

    Attributes
    ----------
    radii : ndarray, shape (n_r,)
        Sample radii in pixels.
    angles_deg : ndarray, shape (n_phi,)
        Sample angles in degrees.
    output_shape : tuple of int
        ``(n_r, n_phi)``.

    Raises
    ------
    ValueError
        If the shape is not 2D, the centre is outside the pattern, the radial
        range goes beyond the pattern, or a count is not a positive integer.

    Examples
    --------
    >>> transform = PolarTransform((32, 32), center=(15.5, 15.5), n_phi=90)
    >>> transform.output_shape
    (16, 90)
    >>> polar = transform(np.ones((4, 32, 32), dtype="float32"))
    >>> polar.shape, polar.dtype, bool(np.allclose(polar, 1))
    ((4, 16, 90), dtype('float32'), True)
    """

    def __init__(self, pattern_shape, center, radial_range=None, n_r=None, n_phi=360):
        self.pattern_shape = _check_pattern_shape(pattern_shape)
        self.center = _check_center(center, self.pattern_shape)
        r_limit = inscribed_radius(self.pattern_shape, self.center)
        if r_limit <= 0:
            raise ValueError(
                f"The centre {self.center} lies on the edge of the pattern: no circle "
                "about it fits inside."
            )
        self.radial_range = _check_radial_range(radial_range, r_limit)
        r_min, r_max = self.radial_range
        if n_r is None:
            n_r = max(1, int(round(r_max - r_min)))
        self.n_r = _check_count("n_r", n_r, 1)
        self.n_phi = _check_count("n_phi", n_phi, 4)
        dr = (r_max - r_min) / self.n_r
        self.radii = r_min + (np.arange(self.n_r) + 0.5) * dr
        self.angles_deg = np.arange(self.n_phi) * (360.0 / self.n_phi)
        self._index, self._weight = self._build()

    @property
    def output_shape(self):
        """``(n_r, n_phi)``."""
        return (self.n_r, self.n_phi)

    @property
    def radial_step(self):
        """Radial sample spacing in pixels."""
        return (self.radial_range[1] - self.radial_range[0]) / self.n_r

    def _build(self):
        rows, cols = self.pattern_shape
        phi = np.deg2rad(self.angles_deg)
        r = self.radii[:, None]
        y = (self.center[0] - r * np.sin(phi)).ravel()
        x = (self.center[1] + r * np.cos(phi)).ravel()
        y0 = np.clip(np.floor(y), 0, rows - 2).astype(np.int64)
        x0 = np.clip(np.floor(x), 0, cols - 2).astype(np.int64)
        fy, fx = y - y0, x - x0
        index = np.stack(
            [y0 * cols + x0, y0 * cols + x0 + 1, (y0 + 1) * cols + x0, (y0 + 1) * cols + x0 + 1],
            axis=1,
        ).astype(np.int32)
        weight = np.stack(
            [(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=1
        )
        return np.ascontiguousarray(index), np.ascontiguousarray(weight)

    def __call__(self, patterns, parallel=True):
        """Polar transform of ``patterns`` of shape ``(..., rows, columns)``.

        Parameters
        ----------
        patterns : array_like
            Any leading shape. float32 and integer data give float32, float64
            gives float64.
        parallel : bool
            Use all numba threads (False inside dask's worker threads).

        Returns
        -------
        ndarray, shape ``(..., n_r, n_phi)``

        Examples
        --------
        >>> transform = PolarTransform((16, 16), center=(7.5, 7.5), n_phi=8)
        >>> transform(np.ones((16, 16))).shape
        (8, 8)
        """
        patterns = np.asarray(patterns)
        if patterns.ndim < 2 or patterns.shape[-2:] != self.pattern_shape:
            raise ValueError(
                f"Patterns must have shape (..., {self.pattern_shape[0]}, "
                f"{self.pattern_shape[1]}); got {patterns.shape}."
            )
        dtype = np.float64 if patterns.dtype == np.float64 else np.float32
        lead = patterns.shape[:-2]
        flat = np.ascontiguousarray(patterns.reshape(-1, patterns.shape[-2] * patterns.shape[-1]),
                                    dtype=dtype)
        out = np.empty((flat.shape[0], self.n_r * self.n_phi), dtype=dtype)
        weight = self._weight.astype(dtype, copy=False)
        kernel = _gather_parallel if parallel else _gather_serial
        kernel(flat, self._index, weight, out)
        return out.reshape(lead + self.output_shape)


def find_direct_beam(pattern, half_width=None):
    """Sub-pixel centre of the direct beam: the brightest spot of a smoothed pattern.

    The pattern is smoothed by a Gaussian of 1 pixel, its maximum taken, and
    the centre refined by the centre of mass of the part of a window around it
    above half its height (so a background does not pull it).

    Parameters
    ----------
    pattern : array_like, shape (rows, columns)
        Typically the mean pattern of a scan.
    half_width : int, optional
        Half width of the refinement window in pixels; default
        ``max(2, min(shape) // 16)``.

    Returns
    -------
    tuple of float
        ``(row, column)`` in pixels.

    Raises
    ------
    ValueError
        If the pattern is not 2D, not finite or constant.

    Examples
    --------
    >>> rows, cols = np.mgrid[0:32, 0:32]
    >>> beam = np.exp(-((rows - 14.3) ** 2 + (cols - 17.6) ** 2) / 4.0)
    >>> [round(c, 1) for c in find_direct_beam(beam)]
    [14.3, 17.6]
    """
    pattern = np.asarray(pattern, dtype=np.float64)
    _check_pattern_shape(pattern.shape)
    if not np.isfinite(pattern).all():
        bad = np.argwhere(~np.isfinite(pattern))
        raise ValueError(
            f"The pattern contains {len(bad)} NaN or infinite values (first at row "
            f"{bad[0][0]}, column {bad[0][1]}), so its direct beam cannot be found. Replace "
            "them first (dead or hot detector pixels: set them to 0 or to their neighbours' "
            "mean), or give center=(x, y).")
    if np.ptp(pattern) == 0:
        raise ValueError("The pattern is constant: there is no direct beam to find.")
    if half_width is None:
        half_width = max(2, min(pattern.shape) // 16)
    smooth = ndimage.gaussian_filter(pattern, 1.0, mode="nearest")
    row, col = np.unravel_index(np.argmax(smooth), smooth.shape)
    for _ in range(3):
        r0 = max(0, int(round(row)) - half_width)
        r1 = min(pattern.shape[0], int(round(row)) + half_width + 1)
        c0 = max(0, int(round(col)) - half_width)
        c1 = min(pattern.shape[1], int(round(col)) + half_width + 1)
        window = smooth[r0:r1, c0:c1]
        window = np.clip(window - 0.5 * (window.max() + window.min()), 0.0, None)
        total = window.sum()
        if total <= 0:
            break
        rr, cc = np.mgrid[r0:r1, c0:c1]
        row, col = float((rr * window).sum() / total), float((cc * window).sum() / total)
    return float(row), float(col)


# A direct beam found automatically must leave this fraction of the smaller
# pattern side between it and the edge, and its smoothed peak must stand this
# many times above the pattern's median.
_BEAM_EDGE_SHARE = 1 / 8
_BEAM_CONTRAST = 2.0


def find_central_beam(pattern):
    """:func:`find_direct_beam`, refusing a spot that cannot be a central direct beam.

    Polar methods need the direct beam as their origin. A mean pattern whose
    brightest spot lies near the edge (a hot pixel, a beam stop, a dark-field
    scan) or does not stand out from the rest would give a meaningless
    geometry, so it is refused with a message that says to pass ``center=``.

    Parameters
    ----------
    pattern : array_like, shape (rows, columns)
        Typically the mean pattern of a scan.

    Returns
    -------
    tuple of float
        ``(row, column)`` in pixels.

    Raises
    ------
    ValueError
        If the brightest spot is closer to the edge than an eighth of the
        smaller pattern side, or its smoothed peak is less than twice the
        median of the pattern (and for the cases of :func:`find_direct_beam`).

    Examples
    --------
    >>> rows, cols = np.mgrid[0:32, 0:32]
    >>> beam = 0.1 + np.exp(-((rows - 15.5) ** 2 + (cols - 15.5) ** 2) / 4.0)
    >>> [round(c, 1) for c in find_central_beam(beam)]
    [15.5, 15.5]
    >>> beam[0, 3] = 50.0
    >>> find_central_beam(beam)
    Traceback (most recent call last):
    ...
    ValueError: No central direct beam found: the brightest spot of the mean pattern, at row 0.0, column 3.0, is 0.0 pixels from the edge of the 32 x 32 pattern (a direct beam needs at least 4). Pass center= with the position of the direct beam.
    """
    pattern = np.asarray(pattern, dtype=np.float64)
    row, col = find_direct_beam(pattern)
    margin = min(pattern.shape) * _BEAM_EDGE_SHARE
    edge = inscribed_radius(pattern.shape, (row, col))
    where = (f"No central direct beam found: the brightest spot of the mean pattern, at "
             f"row {row:.1f}, column {col:.1f}, is ")
    advice = " Pass center= with the position of the direct beam."
    if edge < margin:
        raise ValueError(
            f"{where}{edge:.1f} pixels from the edge of the {pattern.shape[0]} x "
            f"{pattern.shape[1]} pattern (a direct beam needs at least {margin:g}).{advice}"
        )
    smooth = ndimage.gaussian_filter(pattern, 1.0, mode="nearest")
    peak, median = smooth.max(), float(np.median(smooth))
    if peak < _BEAM_CONTRAST * median:
        raise ValueError(
            f"{where}only {peak / median:.2f} times the median intensity (a direct beam "
            f"stands out at least {_BEAM_CONTRAST:g} times).{advice}"
        )
    return row, col


def polar_transform(patterns, center=None, radial_range=None, n_r=None, n_phi=360):
    """Polar transform of an array of patterns (function form of :class:`PolarTransform`).

    Parameters
    ----------
    patterns : array_like, shape (..., rows, columns)
    center : tuple of float, optional
        ``(row, column)`` in pixels; default the direct beam of the mean
        pattern (:func:`find_central_beam`).
    radial_range, n_r, n_phi
        As for :class:`PolarTransform`.

    Returns
    -------
    polar : ndarray, shape (..., n_r, n_phi)
    transform : PolarTransform
        The geometry, to reuse on more patterns.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> polar, transform = polar_transform(rng.random((3, 32, 32)), center=(15.5, 15.5),
    ...                                    radial_range=(2, 12), n_r=10, n_phi=36)
    >>> polar.shape, transform.radii[:2].tolist()
    ((3, 10, 36), [2.5, 3.5])
    """
    patterns = np.asarray(patterns)
    if patterns.ndim < 2:
        raise ValueError(
            f"Patterns must be 2D images (..., rows, columns); got an array of shape "
            f"{patterns.shape}."
        )
    if center is None:
        mean = patterns.reshape((-1,) + patterns.shape[-2:]).mean(axis=0)
        center = find_central_beam(mean)
    transform = PolarTransform(patterns.shape[-2:], center, radial_range, n_r, n_phi)
    return transform(patterns), transform
