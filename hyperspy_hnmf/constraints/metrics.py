"""What a constraint bought: dip depth of components, fine detail in maps.

Both metrics work on stacks ``(count, *shape)`` with lengths in pixels, so
they apply to any decomposition, constrained or not; compare the numbers of
an unconstrained and a constrained fit with the same arguments.
"""

import numpy as np

from .filters import _dct, beyond_resolution, dip_envelope

__all__ = ["dip_score", "out_of_band_fraction"]

#: Envelope values below this fraction of a component's mean envelope value
#: are ignored by :func:`dip_score` (relative dips of near-empty regions are
#: noise). The mean, not the maximum: a bright direct beam would otherwise
#: hide the rings of a halo.
DIP_SCORE_FLOOR = 0.05


def dip_score(stack, width, floor=DIP_SCORE_FLOOR):
    """Depth of the deepest narrow dip of each component, relative to its envelope.

    The envelope is the morphological closing of :func:`~.filters.dip_envelope`
    (dips narrower than ``width`` bridged, peaks kept); the score is
    ``max((envelope − x) / envelope)`` over the pixels where the envelope is
    at least ``floor`` times its mean. 0: no narrow dip; 0.5: somewhere
    the component falls to half of its surroundings within ``width`` pixels.

    Parameters
    ----------
    stack : ndarray, shape (count, ...)
        Components (patterns or spectra), nonnegative.
    width : float or sequence of float
        Widest dip counted, in pixels; one value per axis for pixels that
        are not square.
    floor : float
        Relative envelope level below which pixels are ignored.

    Returns
    -------
    ndarray of float, shape (count,)

    Examples
    --------
    >>> x = np.array([[4.0, 4, 4, 1, 4, 4, 4, 9, 4, 4], [1.0, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    >>> dip_score(x, 3).tolist()
    [0.75, 0.0]

    A hole 3 pixels high and 4 wide is a narrow dip for a width of 4 pixels
    along both axes, not for 4 along the first and 2 along the second (e.g.
    the same length on pixels twice as wide as high):

    >>> hole = np.ones((1, 9, 9))
    >>> hole[0, 3:6, 2:6] = 0.5
    >>> dip_score(hole, 4).tolist(), dip_score(hole, (4, 2)).tolist()
    ([0.5], [0.0])
    """
    stack = np.asarray(stack, dtype=np.float64)
    envelope = dip_envelope(stack, width)
    axes = tuple(range(1, stack.ndim))
    level = envelope.mean(axis=axes, keepdims=True)
    valid = (envelope >= floor * level) & (envelope > 0)
    depth = np.where(valid, (envelope - stack) / np.where(valid, envelope, 1.0), 0.0)
    return depth.max(axis=axes)


def out_of_band_fraction(stack, resolution):
    """Fraction of each map's energy at spatial frequencies above ``1 / resolution``.

    Energies are sums of squared DCT-II coefficients (the mean included), so
    the fraction is 0 for a band-limited map and about
    ``1 − π / (4 · resolution²)`` for white noise in 2D.

    Parameters
    ----------
    stack : ndarray, shape (count, ...)
        Maps (1D line scans or 2D scans).
    resolution : float or sequence of float
        In pixels; one value per axis for pixels that are not square.

    Returns
    -------
    ndarray of float, shape (count,)

    Examples
    --------
    >>> smooth = np.outer(np.hanning(32), np.hanning(32))[None]
    >>> noise = np.random.default_rng(0).random((1, 32, 32)) - 0.5
    >>> out_of_band_fraction(np.concatenate([smooth, noise]), 4.0).round(2).tolist()
    [0.0, 0.81]

    Stripes of period 6.4 pixels along the second axis: beyond a resolution of
    8 pixels, within one of 4 (a ninth of the energy is in the stripes):

    >>> stripes = np.ones((1, 32, 1)) * (2 + np.cos(np.pi * 10 * (np.arange(32) + 0.5) / 32))
    >>> [out_of_band_fraction(stripes, r).round(3).tolist() for r in (8.0, (8.0, 4.0))]
    [[0.111], [0.0]]
    """
    stack = np.asarray(stack, dtype=np.float64)
    power = _dct(stack) ** 2
    beyond = beyond_resolution(stack.shape[1:], resolution)
    axes = tuple(range(1, stack.ndim))
    total = power.sum(axis=axes)
    return np.where(total > 0, (power * beyond).sum(axis=axes) / np.where(total > 0, total, 1), 0.0)
