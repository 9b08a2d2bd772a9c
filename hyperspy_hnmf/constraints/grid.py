"""The pixel grid a factor lives on: its shape, pixel size and units.

Maps live on the navigation (scan) grid and components on the signal
(detector or energy) grid. A :class:`Grid` lets constraints given in
calibrated units (nm, 1/nm, eV) be turned into pixels.
"""

import numbers
from dataclasses import dataclass

import numpy as np

#: Length units and their size in metres, for converting between them.
_LENGTH_UNITS = {
    "m": 1.0, "mm": 1e-3, "µm": 1e-6, "um": 1e-6, "μm": 1e-6, "nm": 1e-9,
    "Å": 1e-10, "A": 1e-10, "angstrom": 1e-10, "pm": 1e-12,
}
_PIXEL_UNITS = ("px", "pixel", "pixels")


def _unit_factor(source, target):
    """``value_in_target = value_in_source * factor``, or None if not convertible."""
    if source == target:
        return 1.0
    for inverse in (False, True):
        prefix = "1/" if inverse else ""
        if source.startswith(prefix) and target.startswith(prefix):
            a, b = source[len(prefix):].strip(), target[len(prefix):].strip()
            if a in _LENGTH_UNITS and b in _LENGTH_UNITS:
                ratio = _LENGTH_UNITS[a] / _LENGTH_UNITS[b]
                return 1.0 / ratio if inverse else ratio
    return None


@dataclass(frozen=True)
class Grid:
    """Shape, pixel size and units of the grid a factor is reshaped to.

    Parameters
    ----------
    shape : tuple of int
        Array shape of one map or component (row-major, as in the data).
    scale : tuple of float, optional
        Pixel size along each axis of ``shape``; default 1.
    units : str, optional
        Units of ``scale``; default ``"px"``.

    Examples
    --------
    >>> grid = Grid((128, 128), scale=(0.5, 0.5), units="nm")
    >>> grid.to_pixels(2.0), round(grid.to_pixels(20, "Å"), 6), grid.to_pixels(3, "px")
    (4.0, 4.0, 3.0)
    """

    shape: tuple
    scale: tuple = None
    units: str = "px"

    def __post_init__(self):
        shape = tuple(int(n) for n in np.atleast_1d(self.shape))
        if not shape or min(shape) < 1:
            raise ValueError(f"A grid needs a shape of positive sizes, got {self.shape!r}.")
        scale = (1.0,) * len(shape) if self.scale is None else tuple(
            float(s) for s in np.atleast_1d(self.scale))
        if len(scale) == 1 and len(shape) > 1:
            scale = scale * len(shape)
        if len(scale) != len(shape) or not all(np.isfinite(scale)) or min(scale) <= 0:
            raise ValueError(
                f"scale must give one positive pixel size per axis of shape {shape}, "
                f"got {self.scale!r}.")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "units", str(self.units or "px"))

    @property
    def size(self):
        """Number of pixels."""
        return int(np.prod(self.shape))

    def to_pixels(self, value, units=None):
        """A length in pixels (of the first axis' pixel size when they differ).

        Parameters
        ----------
        value : float
        units : str or None
            ``None`` means the grid's own units; ``"px"`` pixels; another
            length unit (``"nm"``, ``"Å"``, ``"µm"``, or their inverses for
            reciprocal space) is converted to the grid's units.

        Returns
        -------
        float

        Examples
        --------
        >>> Grid((10,), scale=0.1, units="1/nm").to_pixels(0.05, "1/Å")
        5.0
        """
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"A length must be a finite real number, got {value!r}.")
        if units is not None and units.strip().lower() in _PIXEL_UNITS:
            return float(value)
        units = self.units if units is None else units.strip()
        if self.units.lower() in _PIXEL_UNITS and units.lower() not in _PIXEL_UNITS:
            raise ValueError(
                f"The axes are not calibrated (units 'px'), so a length in {units!r} "
                "cannot be converted to pixels; give it in pixels (units='px') or "
                "calibrate the axes (axes_manager[...].scale and .units).")
        factor = _unit_factor(units, self.units)
        if factor is None:
            raise ValueError(
                f"Cannot convert {units!r} to the axes' units {self.units!r}; give the "
                f"length in {self.units!r} or in pixels (units='px').")
        return float(value) * factor / self.scale[0]


def signal_grids(signal):
    """The navigation and signal grids of a HyperSpy signal.

    Parameters
    ----------
    signal : hyperspy.signal.BaseSignal

    Returns
    -------
    navigation, signal : Grid
        In array order (HyperSpy lists axes the other way round).

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> s = hs.signals.Signal2D(np.ones((3, 4, 5, 6)))
    >>> [grid.shape for grid in signal_grids(s)]
    [(3, 4), (5, 6)]
    """
    grids = []
    for axes in (signal.axes_manager.navigation_axes, signal.axes_manager.signal_axes):
        axes = axes[::-1]
        if not axes:
            grids.append(None)
            continue
        units = {str(axis.units) for axis in axes if _has_units(axis)}
        scale = tuple(abs(float(getattr(axis, "scale", 1.0) or 1.0)) for axis in axes)
        unit = units.pop() if len(units) == 1 else "px"
        if unit == "px":
            scale = None
        grids.append(Grid(tuple(axis.size for axis in axes), scale=scale, units=unit))
    return tuple(grids)


def _has_units(axis):
    units = getattr(axis, "units", None)
    return isinstance(units, str) and units.strip() not in ("", "<undefined>")
