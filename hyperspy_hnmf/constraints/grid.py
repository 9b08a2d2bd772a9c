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
#: Energy units (spectrum images: EDS, EELS) and their size in eV.
_ENERGY_UNITS = {"meV": 1e-3, "eV": 1.0, "keV": 1e3, "MeV": 1e6}
_PIXEL_UNITS = ("px", "pixel", "pixels")
_INVERSE_SUFFIXES = ("^-1", "^{-1}", "⁻¹", "-1")


def _normalized_unit(unit):
    """``unit`` with reciprocal lengths spelt ``1/<length>``.

    pyxem and HyperSpy write reciprocal units as ``"$A^{-1}$"``, ``"nm^-1"``
    or ``"Å⁻¹"``; all of them become ``"1/A"``, ``"1/nm"``, ``"1/Å"``.

    Examples
    --------
    >>> [_normalized_unit(u) for u in ("$A^{-1}$", "nm^-1", "Å⁻¹", "1 / nm", "nm")]
    ['1/A', '1/nm', '1/Å', '1/nm', 'nm']
    """
    text = unit.strip().replace("$", "").replace(" ", "")
    for suffix in _INVERSE_SUFFIXES:
        if text.endswith(suffix) and text[:-len(suffix)].strip("{}") in _LENGTH_UNITS:
            return "1/" + text[:-len(suffix)].strip("{}")
    return text


def _unit_factor(source, target):
    """``value_in_target = value_in_source * factor``, or None if not convertible."""
    source, target = _normalized_unit(source), _normalized_unit(target)
    if source == target:
        return 1.0
    if source in _ENERGY_UNITS and target in _ENERGY_UNITS:
        return _ENERGY_UNITS[source] / _ENERGY_UNITS[target]
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
    uncalibrated : str, optional
        Why lengths in physical units cannot be converted on this grid
        although its axes have units (axes in units that do not convert
        into each other, a non-uniform axis); such lengths are then refused
        with this reason. :func:`signal_grids` sets it.

    Examples
    --------
    >>> grid = Grid((128, 128), scale=(0.5, 0.5), units="nm")
    >>> grid.to_pixels(2.0), round(grid.to_pixels(20, "Å"), 6), grid.to_pixels(3, "px")
    (4.0, 4.0, 3.0)
    >>> Grid((16, 32), scale=(1.0, 0.5), units="nm").to_pixels_per_axis(2.0)
    (2.0, 4.0)
    """

    shape: tuple
    scale: tuple = None
    units: str = "px"
    uncalibrated: str = None

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
        if self.uncalibrated is not None and not isinstance(self.uncalibrated, str):
            raise ValueError(f"uncalibrated must be None or a reason, got {self.uncalibrated!r}.")

    @property
    def size(self):
        """Number of pixels."""
        return int(np.prod(self.shape))

    def to_pixels(self, value, units=None):
        """A length in pixels of the first axis (see :meth:`to_pixels_per_axis`).

        Parameters
        ----------
        value : float
        units : str or None
            ``None`` means the grid's own units; ``"px"`` pixels; another
            length unit (``"nm"``, ``"Å"``, ``"µm"``, or their inverses for
            reciprocal space) or energy unit (``"eV"``, ``"keV"``) is
            converted to the grid's units.

        Returns
        -------
        float

        Examples
        --------
        >>> Grid((10,), scale=0.1, units="1/nm").to_pixels(0.05, "1/Å")
        5.0
        >>> Grid((1024,), scale=0.01, units="keV").to_pixels(50, "eV")
        5.0
        """
        return self.to_pixels_per_axis(value, units)[0]

    def to_pixels_per_axis(self, value, units=None):
        """A length in pixels along each axis (they differ when the pixels are not square).

        Parameters
        ----------
        value : float
        units : str or None
            As in :meth:`to_pixels`.

        Returns
        -------
        tuple of float
            One entry per axis of ``shape``.

        Examples
        --------
        >>> Grid((10, 20), scale=(0.5, 0.25), units="nm").to_pixels_per_axis(1.0)
        (2.0, 4.0)
        """
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"A length must be a finite real number, got {value!r}.")
        if units is not None and units.strip().lower() in _PIXEL_UNITS:
            return (float(value),) * len(self.shape)
        units = self.units if units is None else units.strip()
        if self.uncalibrated is not None:
            raise ValueError(
                f"A length in physical units cannot be converted to pixels of these "
                f"axes: {self.uncalibrated}. Give it in pixels (units='px'), or calibrate the "
                "axes alike (axes_manager[...].scale and .units).")
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
        return tuple(float(value) * factor / scale for scale in self.scale)


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
        grids.append(_axes_grid(axes) if axes else None)
    return tuple(grids)


def _axes_grid(axes):
    """The :class:`Grid` of HyperSpy axes given in data order.

    Axes in units that convert into each other (nm and Å) share the first
    axis' units; axes without units, in units that do not convert, or
    non-uniform axes give a grid in pixels that refuses lengths in physical
    units (a length cannot silently become a number of pixels).
    """
    shape = tuple(axis.size for axis in axes)
    names = [str(getattr(axis, "name", index)) for index, axis in enumerate(axes)]
    units = [str(axis.units).strip() if _has_units(axis) else None for axis in axes]
    if all(unit is None for unit in units):
        return Grid(shape)
    described = ", ".join(f"{name}: {unit or 'no units'}" for name, unit in zip(names, units))
    uneven = [name for name, axis in zip(names, axes) if not getattr(axis, "is_uniform", True)
              or getattr(axis, "scale", None) is None]
    if uneven:
        return Grid(shape, uncalibrated=f"the axis {uneven[0]!r} is non-uniform, so a length "
                                        "is not a fixed number of its pixels")
    factors = [None if unit is None else _unit_factor(unit, units[0]) for unit in units]
    if any(factor is None for factor in factors):
        return Grid(shape, uncalibrated=f"the axes have different units ({described})")
    scale = tuple(abs(float(axis.scale)) * factor for axis, factor in zip(axes, factors))
    return Grid(shape, scale=scale, units=units[0])


def _has_units(axis):
    units = getattr(axis, "units", None)
    return isinstance(units, str) and units.strip() not in ("", "<undefined>")
