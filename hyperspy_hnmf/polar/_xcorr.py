"""Rotation-invariant similarity of polar patterns: normalized cross-correlation along φ.

An in-plane rotation of a crystal is a circular shift of its polar pattern
along φ; the radius is fixed by Bragg's law. The similarity of two patterns is
the maximum over φ shifts of their normalized cross-correlation (Uesugi et al.,
Sci. Rep. 14 (2024) 3012), computed for many pairs at once: the FFT along φ of
every pattern once, then for each φ frequency one matrix product over the
radii, then one inverse FFT per pair.
"""

import numpy as np
from scipy import fft, ndimage

__all__ = ["phi_xcorr", "rotate_pattern", "shift_phi"]

# Pairs per block of the inverse FFT: bounds the (n_phi, block, n_b) temporary.
_BLOCK_VALUES = 2**24


def _as_polar_stack(polar, name):
    polar = np.asarray(polar)
    if polar.ndim == 2:
        polar = polar[None]
    if polar.ndim != 3:
        raise ValueError(
            f"{name} must be polar patterns of shape (n, n_r, n_phi) or (n_r, n_phi); "
            f"got shape {polar.shape}."
        )
    if not np.isfinite(polar).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    dtype = np.float64 if polar.dtype == np.float64 else np.float32
    return polar.astype(dtype, copy=False)


def _spectra(polar):
    """Mean-free FFT along φ, shape (n_k, n, n_r), and the L2 norm of every pattern."""
    centred = polar - polar.mean(axis=(1, 2), keepdims=True)
    norms = np.sqrt(np.einsum("ijk,ijk->i", centred, centred))
    spectra = fft.rfft(centred, axis=-1, workers=-1)
    return np.ascontiguousarray(spectra.transpose(2, 0, 1)), norms


def _peak(correlation, n_phi, refine):
    """Maximum along axis 0 (circular) and its position in bins, parabola-refined."""
    best = np.argmax(correlation, axis=0)
    peak = np.take_along_axis(correlation, best[None], axis=0)[0]
    position = best.astype(np.float64)
    if refine:
        before = np.take_along_axis(correlation, ((best - 1) % n_phi)[None], axis=0)[0]
        after = np.take_along_axis(correlation, ((best + 1) % n_phi)[None], axis=0)[0]
        curvature = before - 2 * peak + after
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
        position += np.clip(delta, -0.5, 0.5)
    return peak, position


def phi_xcorr(polar_a, polar_b=None, refine=True):
    """Maximum normalized cross-correlation along φ of all pairs, with the best angle.

    For patterns ``a`` and ``b`` (mean-free over ``(r, φ)``) the score is
    ``max_s Σ a(r, φ) b(r, φ + s) / (‖a‖ ‖b‖)``, between -1 and 1; it is 1
    when ``b`` is ``a`` rotated. Constant patterns score 0 with everything.

    Parameters
    ----------
    polar_a : array_like, shape (n_a, n_r, n_phi) or (n_r, n_phi)
        Polar patterns, φ along the last axis covering 360°.
    polar_b : array_like, shape (n_b, n_r, n_phi), optional
        Second set; default ``polar_a`` (all pairs of one set).
    refine : bool
        Refine the best shift below one bin by a parabola through the peak.

    Returns
    -------
    similarity : ndarray, shape (n_a, n_b)
        Maximum normalized cross-correlation.
    angle_deg : ndarray, shape (n_a, n_b)
        Rotation (degrees, counter-clockwise as displayed, in (-180, 180])
        that takes pattern ``a[i]`` onto ``b[j]``: ``b[j](φ) ≈ a[i](φ - angle)``.

    Raises
    ------
    ValueError
        If the arrays are not 2D/3D, contain non-finite values or disagree in
        ``(n_r, n_phi)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.random((16, 72))
    >>> b = np.roll(a, 10, axis=-1)          # rotated by 10 bins of 5 degrees
    >>> similarity, angle = phi_xcorr(np.stack([a, b]))
    >>> round(float(similarity[0, 1]), 6), round(float(angle[0, 1]), 3)
    (1.0, 50.0)
    """
    a = _as_polar_stack(polar_a, "polar_a")
    same = polar_b is None
    b = a if same else _as_polar_stack(polar_b, "polar_b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"polar_a and polar_b must have the same (n_r, n_phi); got {a.shape[1:]} "
            f"and {b.shape[1:]}."
        )
    dtype = np.result_type(a.dtype, b.dtype)
    n_phi = a.shape[2]
    spec_a, norm_a = _spectra(a.astype(dtype, copy=False))
    spec_b, norm_b = (spec_a, norm_a) if same else _spectra(b.astype(dtype, copy=False))
    spec_b_t = np.ascontiguousarray(spec_b.transpose(0, 2, 1))
    n_a, n_b = a.shape[0], b.shape[0]
    similarity = np.empty((n_a, n_b), dtype=np.float64)
    position = np.empty((n_a, n_b), dtype=np.float64)
    step = max(1, _BLOCK_VALUES // max(1, n_phi * n_b))
    for start in range(0, n_a, step):
        rows = slice(start, start + step)
        # One set: pair (j, i) is pair (i, j) turned the other way, so each row
        # block only meets the columns from its own first row on.
        first = start if same else 0
        cross = np.matmul(np.conj(spec_a[:, rows]), spec_b_t[:, :, first:])
        correlation = fft.irfft(cross, n=n_phi, axis=0, workers=-1)
        similarity[rows, first:], position[rows, first:] = _peak(correlation, n_phi, refine)
        if same:
            similarity[first:, rows] = similarity[rows, first:].T
            position[first:, rows] = -position[rows, first:].T
    denominator = np.outer(norm_a, norm_b)
    scale = np.zeros_like(denominator)
    np.divide(1.0, denominator, out=scale, where=denominator > 0)
    similarity = np.clip(similarity * scale, -1.0, 1.0)
    angle = position * (360.0 / n_phi)
    angle = (angle + 180.0) % 360.0 - 180.0
    angle[angle == -180.0] = 180.0
    return similarity, angle


def shift_phi(polar, angle_deg):
    """Rotate polar patterns by ``angle_deg`` (a shift along φ, Fourier-interpolated).

    Parameters
    ----------
    polar : array_like, shape (..., n_r, n_phi)
    angle_deg : float or array_like
        Counter-clockwise rotation in degrees, broadcast against the leading
        dimensions of ``polar``.

    Returns
    -------
    ndarray
        Same shape and floating dtype; ``out(φ) = polar(φ - angle)``.

    Examples
    --------
    >>> a = np.zeros((1, 8)); a[0, 1] = 1
    >>> b = shift_phi(a, 90.0)                # 90° = two bins of 45°
    >>> int(np.argmax(b)), round(float(b.max()), 6)
    (3, 1.0)
    """
    polar = np.asarray(polar)
    dtype = np.float64 if polar.dtype == np.float64 else np.float32
    n_phi = polar.shape[-1]
    angle = np.asarray(angle_deg, dtype=np.float64)
    k = np.arange(n_phi // 2 + 1)
    shift = angle[..., None, None] / (360.0 / n_phi)
    phase = np.exp(-2j * np.pi * k * shift / n_phi)
    spectra = fft.rfft(polar.astype(dtype, copy=False), axis=-1)
    if n_phi % 2 == 0:
        # The Nyquist term of a real signal must stay real.
        phase[..., -1] = np.cos(np.pi * shift[..., 0])
    return fft.irfft(spectra * phase, n=n_phi, axis=-1).astype(dtype, copy=False)


def rotate_pattern(pattern, angle_deg, center, order=1):
    """Rotate a 2D pattern counter-clockwise (as displayed) about ``center``.

    Parameters
    ----------
    pattern : array_like, shape (rows, columns)
    angle_deg : float
    center : tuple of float
        ``(row, column)`` in pixels.
    order : int
        Spline order of :func:`scipy.ndimage.affine_transform`.

    Returns
    -------
    ndarray
        Same shape; pixels coming from outside the pattern are 0.

    Examples
    --------
    >>> a = np.zeros((5, 5)); a[2, 4] = 1          # right of the centre
    >>> int(np.argmax(rotate_pattern(a, 90, (2, 2))))  # now above it: row 0, col 2
    2
    """
    pattern = np.asarray(pattern)
    dtype = np.float64 if pattern.dtype == np.float64 else np.float32
    theta = np.deg2rad(angle_deg)
    matrix = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    center = np.asarray(center, dtype=np.float64)
    offset = center - matrix @ center
    return ndimage.affine_transform(pattern.astype(dtype, copy=False), matrix, offset=offset,
                                    order=order, mode="constant", cval=0.0)
