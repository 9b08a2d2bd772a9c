"""Dead and hot detector channels, judged from the channel totals of a scan.

A fitted model cannot reveal a dead (always zero) or hot (always bright)
channel: the components are free at every channel and simply copy it. Such
channels are found from the channel totals ``c_j`` and the totals of their
neighbours on the detector, with a contrast ``CHANNEL_CONTRAST`` (10) and,
for counts, an exact Poisson tail test at the false-alarm rate ``alpha``.

On a 2D detector
    *lines* first: along every row and column, the median of the
    ``LINE_SEGMENT`` channels centred on a pixel is compared with the same
    medians one line to either side. A pixel lies on a dead line when its
    segment median and its own total are below ``1 / CHANNEL_CONTRAST`` of
    both sides (medians, so a bright spot on the line or beside it does not
    count; both sides, so a step in intensity such as a disk edge does not
    count). Hot lines are judged the same way, once dead lines are left out
    of the sides. Then *points*: a pixel is dead when its total is below
    ``1 / CHANNEL_CONTRAST`` of every neighbour that exists (the 8 around
    it, 5 at an edge, 3 at a corner; pixels on bad lines left out), hot
    when above ``CHANNEL_CONTRAST`` times every one. At least three
    neighbours are needed.
Along a spectrum (or any other signal)
    the channels at distance 1 and 2 on both sides: dead when below
    ``1 / CHANNEL_CONTRAST`` of all of them but one (a pair of dead channels
    is found), hot likewise.
At the border of the detector or spectrum
    a line or a channel with neighbours on one side only (the first or
    last line, the first or last channel) must differ by
    ``CHANNEL_CONTRAST²`` instead: an edge that is ten times dimmer than the
    line next to it is more often the pattern's own fall-off than a defect.

Comparing with *every* neighbour rather than most of them is what keeps
pixel-scale structure (diffraction spots one pixel wide on a coarse
detector, the dark pixels between them) from being taken for defects: on 90
clean synthetic scans (16×16 to 48×48 detectors, 200 to 20 000 counts per
pattern) the rule flags 9 channels in all, on 24 clean multislice scans 10,
where the older "all neighbours but two" rule flagged 119 and 189
(``benchmarks/bench_channels.py``). The price is that a hot pixel beside a
brighter spot, or a 2×2 block of dead pixels, is not found.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special

from ._objective import MODEL_FLOOR

__all__ = ["CHANNEL_CONTRAST", "LINE_SEGMENT", "bad_channels", "neighbour_median"]

#: Ratio of a channel's total to its neighbours' beyond which it is dead or hot.
CHANNEL_CONTRAST = 10.0

#: Length (in detector pixels) of the segments whose medians judge dead or hot lines.
LINE_SEGMENT = 7


def _neighbours(values, grid_shape):
    """The neighbours of every channel, sorted, NaN where none (beyond the border).

    Returns an ``(8, m)`` array on a 2D detector (the surrounding pixels), else
    ``(4, m)`` (the channels at distance 1 and 2 along the line). NaN entries of
    ``values`` (channels left out) stay NaN, and NaN sorts last.
    """
    values = np.asarray(values, dtype=np.float64)
    if _is_image(values, grid_shape):
        padded = np.pad(values.reshape(grid_shape), 1, constant_values=np.nan)
        rows, cols = grid_shape
        shifts = [padded[1 + dy: 1 + dy + rows, 1 + dx: 1 + dx + cols].ravel()
                  for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    else:
        padded = np.pad(values, 2, constant_values=np.nan)
        shifts = [padded[2 + d: 2 + d + values.size] for d in (-2, -1, 1, 2)]
    return np.sort(np.stack(shifts), axis=0)


def _is_image(values, grid_shape):
    return (grid_shape is not None and len(grid_shape) == 2
            and int(np.prod(grid_shape)) == np.asarray(values).size)


def neighbour_median(values, grid_shape):
    """Median of every channel's neighbours on the detector (NaN ones ignored).

    Examples
    --------
    >>> neighbour_median(np.array([1.0, 2.0, np.nan, 4.0, 5.0]), None).tolist()
    [2.0, 2.5, 3.0, 3.5, 4.0]
    """
    neighbours = _neighbours(values, grid_shape)
    out = np.full(neighbours.shape[1], np.nan)
    seen = ~np.all(np.isnan(neighbours), axis=0)
    out[seen] = np.nanmedian(neighbours[:, seen], axis=0)
    return out


def _one_sided(reference, sides, factor):
    """``reference`` made ``factor`` times stricter where only one side exists."""
    return np.where(np.isnan(sides).any(axis=0), reference * factor, reference)


def _segment_medians(image, along):
    """Median of the ``LINE_SEGMENT`` pixels centred on each pixel along ``along`` (NaN ignored)."""
    half = LINE_SEGMENT // 2
    width = [(half, half) if axis == along else (0, 0) for axis in (0, 1)]
    windows = sliding_window_view(np.pad(image, width, mode="reflect"), LINE_SEGMENT, axis=along)
    out = np.full(image.shape, np.nan)
    seen = ~np.all(np.isnan(windows), axis=-1)
    out[seen] = np.nanmedian(windows[seen], axis=-1)
    return out


def _line_references(image, left_out, dark):
    """The levels a pixel on a line must fall below (``dark``) or rise above.

    For each direction the median of the ``LINE_SEGMENT`` pixels along the
    line is compared with the medians of the lines on either side (pixels
    ``left_out``, dead lines when hot ones are sought, take no part). NaN where
    the segment does not stand out, else the level of the sides (the darker
    one for ``dark``).
    """
    image = np.where(left_out, np.nan, image)
    out = np.full(image.shape, np.nan)
    for along in (0, 1):
        median = _segment_medians(image, along)
        across = 1 - along
        padded = np.pad(median, [(1, 1) if axis == across else (0, 0) for axis in (0, 1)],
                        constant_values=np.nan)
        sides = np.stack([np.take(padded, np.arange(image.shape[across]) + shift,
                                  axis=across) for shift in (0, 2)])
        seen = ~np.all(np.isnan(sides), axis=0)
        level = np.full(image.shape, np.nan)
        with np.errstate(invalid="ignore"):
            if dark:
                level[seen] = np.nanmin(sides[:, seen], axis=0)
                level = _one_sided(level, sides, 1 / CHANNEL_CONTRAST)
                stands_out = median * CHANNEL_CONTRAST < level
            else:
                level[seen] = np.nanmax(sides[:, seen], axis=0)
                level = _one_sided(level, sides, CHANNEL_CONTRAST)
                stands_out = median > CHANNEL_CONTRAST * level
        out = np.where(stands_out, np.fmax(out, level) if dark else np.fmin(out, level), out)
    return out.ravel()


def _point_references(values, grid_shape, left_out):
    """Darkest and brightest existing neighbour of every channel (NaN: not judged)."""
    neighbours = _neighbours(np.where(left_out, np.nan, values), grid_shape)
    present = np.count_nonzero(~np.isnan(neighbours), axis=0)
    columns = np.arange(values.size)
    if neighbours.shape[0] == 8:
        spare = np.zeros_like(present)
        judged = present >= 3
    else:  # along a line: one neighbour may be dead (or hot) too, where four exist
        spare = (present == 4).astype(present.dtype)
        judged = present >= 2
    darkest = neighbours[spare, columns]
    brightest = neighbours[np.maximum(present - 1 - spare, 0), columns]
    if neighbours.shape[0] == 4:  # the first and last channels: one side only
        ends = np.zeros(values.size, dtype=bool)
        ends[[0, -1]] = True
        darkest = np.where(ends, darkest / CHANNEL_CONTRAST, darkest)
        brightest = np.where(ends, brightest * CHANNEL_CONTRAST, brightest)
    darkest[~judged | left_out] = np.nan
    brightest[~judged | left_out] = np.nan
    return darkest, brightest


def _contrasted(c, level, dark, counts):
    """Channels ``CHANNEL_CONTRAST`` times darker (``dark``) or brighter than ``level``."""
    with np.errstate(invalid="ignore"):
        if dark:
            return c * CHANNEL_CONTRAST < level
        return c > CHANNEL_CONTRAST * level + (0 if counts else np.finfo(float).tiny)


def _significant(c, level, found, dark, counts, alpha):
    """``found`` kept where (counts) the Poisson tail of the total given ``level`` < alpha / 2."""
    if not counts or not found.any():
        return found
    at = np.flatnonzero(found)
    mean = np.maximum(level[at], MODEL_FLOOR if dark else 1.0)
    if dark:
        tail = special.gammaincc(np.floor(c[at]) + 1, mean)
    else:
        # (a channel is tested against at least one count over the whole scan: next
        # to channels that saw nothing, a total of a few counts is no evidence)
        tail = special.gammainc(np.maximum(np.ceil(c[at]), 1), mean)
    found = found.copy()
    found[at[tail >= alpha / 2]] = False
    return found


def bad_channels(column_sums, grid_shape, alpha, counts):
    """Dead and hot channels from the channel totals and their detector neighbours.

    Parameters
    ----------
    column_sums : ndarray, shape (m,)
        Total of every channel over all rows.
    grid_shape : tuple of int or None
        The detector's shape (2D: lines and 8 neighbours), else channels in a line.
    alpha : float
        False-alarm rate (counts: the Poisson tail of the total must be below
        ``alpha / 2`` too).
    counts : bool
        Whether the totals are counts (the KL loss). A hot channel's total
        is then tested against at least one count: beside channels that saw
        nothing, a total of a few counts is no evidence.

    Returns
    -------
    dead, hot : ndarray of int64

    Examples
    --------
    A dead pixel, a hot pixel and a dead column on a uniform 8×8 detector:

    >>> totals = np.full((8, 8), 400.0)
    >>> totals[1, 1], totals[5, 2], totals[:, 6] = 0.0, 9000.0, 0.0
    >>> dead, hot = bad_channels(totals.ravel(), (8, 8), 1e-6, True)
    >>> [divmod(int(j), 8) for j in dead if j % 8 != 6], [divmod(int(j), 8) for j in hot]
    ([(1, 1)], [(5, 2)])
    >>> int(np.count_nonzero(dead % 8 == 6))  # the whole column
    8
    """
    c = np.asarray(column_sums, dtype=np.float64).ravel()
    dead = hot = lines = np.zeros(c.size, dtype=bool)
    if _is_image(c, grid_shape):
        # Lines first. A dark line, even one with too few counts to be called
        # dead, is no side to judge a hot line by; the pixels of bad lines are
        # nobody's neighbours.
        image = c.reshape(grid_shape)
        dark = _line_references(image, np.zeros(image.shape, dtype=bool), True)
        dark_lines = _contrasted(c, dark, True, counts)
        bright = _line_references(image, dark_lines.reshape(image.shape), False)
        bright_lines = _contrasted(c, bright, False, counts) & ~dark_lines
        dead = _significant(c, dark, dark_lines, True, counts, alpha)
        hot = _significant(c, bright, bright_lines, False, counts, alpha)
        lines = dead | hot
    darkest, brightest = _point_references(c, grid_shape, lines)
    dark_points = _contrasted(c, darkest, True, counts) & ~lines
    bright_points = _contrasted(c, brightest, False, counts) & ~lines & ~dark_points
    dead = dead | _significant(c, darkest, dark_points, True, counts, alpha)
    hot = hot | _significant(c, brightest, bright_points, False, counts, alpha)
    return np.flatnonzero(dead).astype(np.int64), np.flatnonzero(hot).astype(np.int64)
