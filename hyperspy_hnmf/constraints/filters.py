"""Array-level filters behind the constraints, on stacks of maps or components.

Every function takes a stack of shape ``(count, *shape)`` (one map or
component per entry, reshaped to its grid) and works along the trailing axes.
Lengths are in pixels. Spatial frequencies come from the type-II discrete
cosine transform (:mod:`scipy.fft`), which mirrors the image at its edges:
unlike the FFT it sees no jump where the scan wraps round, so edges do not
count as fine detail.
"""

import functools

import numpy as np
import scipy.fft
from scipy import ndimage

__all__ = [
    "band_limit",
    "beyond_resolution",
    "dip_envelope",
    "fill_dips",
    "frequency_radius",
    "gaussian_smooth",
    "laplacian_smooth",
]

#: Gaussian σ (pixels) per pixel of resolution so that the filter passes half
#: the amplitude at the cut-off frequency 1/resolution: exp(-2π²σ²f²) = 1/2.
GAUSSIAN_SIGMA_PER_RESOLUTION = float(np.sqrt(np.log(2.0) / 2.0) / np.pi)


@functools.lru_cache(maxsize=16)
def frequency_radius(shape):
    """Spatial frequency (cycles per pixel) of every DCT-II coefficient.

    Coefficient ``u`` along an axis of ``N`` pixels has frequency ``u / (2N)``.

    Parameters
    ----------
    shape : tuple of int

    Returns
    -------
    ndarray of shape ``shape`` (read-only)

    Examples
    --------
    >>> frequency_radius((4,)).tolist()
    [0.0, 0.125, 0.25, 0.375]
    """
    axes = [np.arange(n) / (2.0 * n) for n in shape]
    grids = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    radius.setflags(write=False)
    return radius


def _per_axis(length, ndim):
    """A length in pixels as one value per axis: a number is the same along every axis."""
    lengths = tuple(float(v) for v in np.atleast_1d(length))
    if len(lengths) == 1:
        return lengths * ndim
    if len(lengths) != ndim:
        raise ValueError(f"A length per axis needs {ndim} values for {ndim}D stacks, got "
                         f"{length!r}.")
    return lengths


@functools.lru_cache(maxsize=16)
def _scaled_radius(shape, ratios):
    """:func:`frequency_radius` with axis ``i``'s frequencies multiplied by ``ratios[i]``."""
    if all(ratio == 1.0 for ratio in ratios):
        return frequency_radius(shape)
    axes = [ratio * np.arange(n) / (2.0 * n) for n, ratio in zip(shape, ratios)]
    grids = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    radius.setflags(write=False)
    return radius


def beyond_resolution(shape, resolution):
    """Which DCT-II coefficients have periods shorter than ``resolution``.

    Parameters
    ----------
    shape : tuple of int
    resolution : float or sequence of float
        In pixels; one value per axis when the pixels are not square (the
        same physical length is then a different number of pixels along
        each axis).

    Returns
    -------
    ndarray of bool, shape ``shape``

    Examples
    --------
    >>> beyond_resolution((4,), 4.0).tolist()
    [False, False, False, True]
    >>> beyond_resolution((4, 4), (4.0, 2.0)).astype(int).tolist()[3]
    [1, 1, 1, 1]
    """
    lengths = _per_axis(resolution, len(shape))
    ratios = tuple(length / lengths[0] for length in lengths)
    return _scaled_radius(tuple(shape), ratios) > 1.0 / lengths[0]


def _dct(stack):
    axes = tuple(range(1, stack.ndim))
    return scipy.fft.dctn(stack, type=2, axes=axes, norm="ortho", workers=-1)


def _idct(coefficients):
    axes = tuple(range(1, coefficients.ndim))
    return scipy.fft.idctn(coefficients, type=2, axes=axes, norm="ortho", workers=-1)


def band_limit(stack, resolution, n_rounds=2):
    """Remove spatial frequencies above ``1 / resolution``, keeping values ≥ 0.

    Alternates the ideal low-pass (zeroing DCT coefficients beyond the
    cut-off) and the projection onto nonnegative values ``n_rounds`` times:
    both sets are convex, so the result approaches a nonnegative, band-limited
    stack.

    Parameters
    ----------
    stack : ndarray, shape (count, ...)
    resolution : float or sequence of float
        Smallest period kept, in pixels (≥ 1); one value per axis for
        pixels that are not square.
    n_rounds : int
        Low-pass/clip rounds.

    Returns
    -------
    ndarray, same shape and dtype

    Examples
    --------
    >>> ripple = np.cos(np.pi * (np.arange(16) + 0.5) * 12 / 16)   # 0.375 cycles/px
    >>> x = (1 + ripple)[None]
    >>> bool(np.allclose(band_limit(x, 4.0), 1))                   # cut-off 0.25
    True
    """
    keep = ~beyond_resolution(stack.shape[1:], resolution)
    result = stack
    for _ in range(n_rounds):
        coefficients = _dct(result)
        coefficients *= keep
        result = np.maximum(_idct(coefficients), 0)
    return result.astype(stack.dtype, copy=False)


def gaussian_smooth(stack, resolution):
    """Gaussian blur whose amplitude response is 1/2 at ``1 / resolution``.

    σ = 0.187 × resolution; edges are mirrored, as by the DCT.

    Parameters
    ----------
    stack : ndarray, shape (count, ...)
    resolution : float or sequence of float
        In pixels; one value per axis for pixels that are not square.

    Returns
    -------
    ndarray, same shape and dtype

    Examples
    --------
    >>> float(gaussian_smooth(np.ones((1, 5, 5)), 4.0).round(6).max())
    1.0
    """
    sigma = (0.0,) + tuple(GAUSSIAN_SIGMA_PER_RESOLUTION * length
                           for length in _per_axis(resolution, stack.ndim - 1))
    return np.maximum(ndimage.gaussian_filter(stack, sigma, mode="mirror"), 0)


def laplacian_smooth(stack, resolution):
    """Proximal step of a Laplacian (roughness) penalty, tied to ``resolution``.

    Returns ``argmin_u ½‖u − x‖² + ½ c uᵀ L u`` for each entry ``x``, with
    ``L`` the discrete Laplacian with mirrored edges (diagonal in the DCT
    basis) and ``c`` chosen so that the amplitude response
    ``1 / (1 + c λ(f))`` is 1/2 at the frequency ``1 / resolution`` along an
    axis. It damps fine detail progressively instead of cutting it off.

    Parameters
    ----------
    stack : ndarray, shape (count, ...)
    resolution : float or sequence of float
        In pixels; one value per axis for pixels that are not square (each
        axis' Laplacian is then weighted so that the response is 1/2 at its
        own cut-off).

    Returns
    -------
    ndarray, same shape and dtype

    Examples
    --------
    >>> x = np.tile([1.0, 0.0], 8)[None]
    >>> float(np.ptp(laplacian_smooth(x, 4.0)[0, 2:-2])) < 0.5
    True
    """
    shape = stack.shape[1:]
    weighted = sum(
        np.reshape(2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n),
                   [-1 if a == axis else 1 for a in range(len(shape))])
        / (2.0 - 2.0 * np.cos(2.0 * np.pi / max(length, 2.0)))
        for axis, (n, length) in enumerate(zip(shape, _per_axis(resolution, len(shape))))
    )
    coefficients = _dct(stack)
    coefficients /= 1.0 + weighted
    return np.maximum(_idct(coefficients), 0).astype(stack.dtype, copy=False)


def _segments(width, ndim):
    """Line footprints of ``width`` pixels: the axis (1D) or four directions (2D).

    ``width`` may give one length per axis (pixels that are not square):
    the diagonals then join opposite corners of the ``rows × columns`` box.
    """
    if ndim not in (1, 2):
        raise ValueError(f"Dips are defined for 1D and 2D components, not {ndim}D.")
    sizes = [max(int(round(length)) | 1, 1) for length in _per_axis(width, ndim)]
    if ndim == 1:
        return [np.ones(sizes[0], dtype=bool)]
    rows, columns = sizes
    steps = max(rows, columns)
    diagonal = np.zeros((rows, columns), dtype=bool)
    diagonal[np.rint(np.linspace(0, rows - 1, steps)).astype(int),
             np.rint(np.linspace(0, columns - 1, steps)).astype(int)] = True
    return [np.ones((1, columns), dtype=bool), np.ones((rows, 1), dtype=bool),
            diagonal, diagonal[::-1]]


def dip_envelope(stack, width):
    """Local envelope that bridges holes narrower than ``width`` pixels.

    The smallest of grey-scale morphological closings by line segments of
    ``width`` pixels (along the axis for spectra; horizontal, vertical and
    both diagonals for patterns). Each closing is ≥ the input and equal to it
    on peaks and broad features; taking the smallest fills only *holes*,
    dips that are narrow in every direction (as under a Bragg spot), not
    troughs between rings or saddles, which are broad along one direction.

    Parameters
    ----------
    stack : ndarray, shape (count, ...)
    width : float or sequence of float
        In pixels; one value per axis for pixels that are not square.

    Returns
    -------
    ndarray, same shape and dtype

    Examples
    --------
    >>> x = np.array([[4.0, 4, 4, 1, 4, 4, 4, 9, 4, 4]])
    >>> dip_envelope(x, 3).tolist()
    [[4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 9.0, 4.0, 4.0]]
    >>> trough = np.tile([4.0, 4, 1, 4, 4], (5, 1))[None]        # broad along one axis
    >>> bool(np.array_equal(dip_envelope(trough, 3), trough))
    True
    """
    segments = _segments(width, stack.ndim - 1)
    # Pad explicitly by the footprint's diameter: scipy's own edge modes are
    # applied to the dilation and the erosion separately, which breaks
    # closing's guarantee (result ≥ input) near the edges for diagonal lines.
    pads = [n - 1 for n in segments[-1].shape]
    padded = np.pad(stack, [(0, 0)] + [(pad, pad) for pad in pads], mode="edge")
    inside = (slice(None),) + tuple(slice(pad, -pad if pad else None) for pad in pads)
    envelope = None
    for segment in segments:
        closed = ndimage.grey_closing(padded, footprint=segment[None])[inside]
        envelope = closed if envelope is None else np.minimum(envelope, closed, out=envelope)
    return np.ascontiguousarray(envelope)


def fill_dips(stack, width, tolerance):
    """Raise narrow dips so none is deeper than ``tolerance`` of its envelope.

    ``max(x, (1 − tolerance) · envelope)`` with :func:`dip_envelope`; peaks
    and features broader than ``width`` are untouched. Applying it twice
    changes nothing more.

    Parameters
    ----------
    stack : ndarray, shape (count, ...)
    width : float or sequence of float
        Widest dip to fill, in pixels; one value per axis for pixels that
        are not square.
    tolerance : float
        Relative dip depth allowed, in [0, 1).

    Returns
    -------
    ndarray, same shape and dtype

    Examples
    --------
    >>> x = np.array([[4.0, 4, 4, 1, 4, 4, 4, 9, 4, 4]])
    >>> fill_dips(x, 3, 0.25).tolist()
    [[4.0, 4.0, 4.0, 3.0, 4.0, 4.0, 4.0, 9.0, 4.0, 4.0]]
    """
    floor = dip_envelope(stack, width)
    floor *= 1.0 - tolerance
    return np.maximum(stack, floor.astype(stack.dtype, copy=False))
