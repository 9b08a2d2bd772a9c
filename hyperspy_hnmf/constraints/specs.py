"""The constraints a user asks for: what, on which factor, for which components.

A constraint is a small description; :func:`~.plan.build_plan` checks it
against the number of components and the grids and turns it into penalty
weights and projections for the solvers.

Two kinds act in the iterations:

- *penalties* (:class:`Penalty`) change the objective and so the update of
  every solver: ``l1 · Σ a + ½ l2 · Σ a²`` over the penalized factor;
- *projections* (:class:`MapResolution`, :class:`ContinuousIntensity`,
  :class:`Projection`) are applied to a factor after each of its updates
  (Kimoto, Uesugi et al., Sci. Rep. 2025).
"""

import numbers

import numpy as np

from . import filters

__all__ = ["Constraint", "ContinuousIntensity", "MapResolution", "Penalty", "Projection"]

FACTORS = ("maps", "components")


def _check_length(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def _check_units(units):
    if units is not None and not isinstance(units, str):
        raise ValueError(f"units must be None, 'px' or a unit name such as 'nm', got {units!r}.")
    return units


def _check_factor(on):
    if on not in FACTORS:
        raise ValueError(f"on must be 'maps' or 'components', got {on!r}.")
    return on


class Constraint:
    """Base class: the factor it acts on and the components it applies to.

    Parameters
    ----------
    components : None, int, sequence of int or str
        ``None``: every component; indices (0-based, in the order of the
        results); or the name of a group given to ``groups``.

    Examples
    --------
    >>> MapResolution(2.0, components=[0, 1]).components
    [0, 1]
    """

    #: ``"maps"`` or ``"components"``.
    on = None

    def __init__(self, components=None):
        if isinstance(components, (numbers.Integral, np.integer)) and not isinstance(components, bool):
            components = [int(components)]
        elif components is not None and not isinstance(components, str):
            if isinstance(components, bool) or not np.iterable(components):
                raise ValueError(
                    f"components must be None (all), an index, a list of indices or the name "
                    f"of a group, got {components!r}.")
            components = list(components)
        self.components = components

    def _describe(self):
        return type(self).__name__

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({fields})"

    def penalties(self):
        """``(l1, l2)`` weights this constraint adds (0 for projections).

        Examples
        --------
        >>> Penalty(l1=0.5).penalties()
        (0.5, 0.0)
        """
        return 0.0, 0.0

    def projection(self, grid):
        """The function applied after each update of the factor, or None.

        Parameters
        ----------
        grid : Grid or None
            Grid of the factor (maps: navigation; components: signal).

        Returns
        -------
        callable or None
            Takes and returns a stack ``(count, *grid.shape)``.

        Examples
        --------
        >>> from hyperspy_hnmf.constraints import Grid
        >>> project = ContinuousIntensity(3).projection(Grid((10,)))
        >>> project(np.array([[4.0, 4, 4, 1, 4, 4, 4, 9, 4, 4]]))[0, 3]
        np.float64(3.92)
        """
        return None


class MapResolution(Constraint):
    """Limit maps to the spatial resolution of the probe.

    After each update of the maps, their detail finer than ``resolution`` is
    removed or damped. Each method passes frequencies well below
    ``1 / resolution`` and treats those above differently:

    - ``"fourier"``: an ideal band limit, everything above the cut-off is
      removed (alternated with the nonnegativity projection);
    - ``"gaussian"``: a Gaussian blur with half amplitude at the cut-off,
      fine detail damped smoothly (Kimoto et al.'s map smoothing);
    - ``"laplacian"``: the proximal step of a Laplacian roughness penalty,
      half amplitude at the cut-off, damping growing with frequency as
      ``1 / (1 + c f²)``: the gentlest; keeps the sharpest edges best.

    Parameters
    ----------
    resolution : float
        Smallest period the maps may contain, e.g. the probe's FWHM, in
        ``units``. At least one pixel and at most the scan size.
    units : str or None
        ``None``: the navigation axes' units (pixels for uncalibrated data);
        ``"px"``: pixels; or a length unit such as ``"nm"`` or ``"Å"``.
    method : {"fourier", "gaussian", "laplacian"}
    components : None, int, sequence of int or str
        The maps it applies to (see :class:`Constraint`).

    Examples
    --------
    >>> from hyperspy_hnmf.constraints import Grid
    >>> grid = Grid((32, 32), scale=0.5, units="nm")
    >>> project = MapResolution(2.0).projection(grid)     # 2 nm = 4 px
    >>> from hyperspy_hnmf.constraints import out_of_band_fraction
    >>> noisy = np.random.default_rng(0).random((1, 32, 32))
    >>> out_of_band_fraction(noisy, 4.0).round(2), out_of_band_fraction(project(noisy), 4.0).round(2)
    (array([0.19]), array([0.]))
    """

    on = "maps"
    METHODS = ("fourier", "gaussian", "laplacian")

    def __init__(self, resolution, *, units=None, method="fourier", components=None):
        super().__init__(components)
        self.resolution = _check_length(resolution, "resolution")
        self.units = _check_units(units)
        if method not in self.METHODS:
            raise ValueError(
                f"Unknown map resolution method {method!r}; use one of {list(self.METHODS)}.")
        self.method = method

    def resolution_pixels(self, grid):
        """The resolution in pixels of ``grid``'s first axis, checked against its size.

        See :meth:`resolution_pixels_per_axis` for grids whose pixels are
        not square.

        Examples
        --------
        >>> from hyperspy_hnmf.constraints import Grid
        >>> MapResolution(1.5, units="nm").resolution_pixels(Grid((64,), 0.5, "nm"))
        3.0
        """
        return self.resolution_pixels_per_axis(grid)[0]

    def resolution_pixels_per_axis(self, grid):
        """The resolution in pixels along each axis of ``grid``, checked against its size.

        On a scan whose step differs between the axes, the same length is a
        different number of pixels along each axis; the filters cut each
        axis at its own number.

        Examples
        --------
        >>> from hyperspy_hnmf.constraints import Grid
        >>> MapResolution(2.0).resolution_pixels_per_axis(Grid((12, 20), (0.5, 0.25), "nm"))
        (4.0, 8.0)
        """
        if len(grid.shape) not in (1, 2):
            raise ValueError(
                f"MapResolution works on line scans and 2D scans; the navigation has "
                f"{len(grid.shape)} dimensions {grid.shape}. Decompose each scan "
                "separately, or use a custom Projection.")
        pixels = grid.to_pixels_per_axis(self.resolution, self.units)
        unit = self.units or grid.units
        if max(pixels) < 1:
            raise ValueError(
                f"MapResolution({self.resolution:g} {unit}) is {_pixels_text(pixels)} pixels, "
                "below one scan pixel, so it would do nothing; give a resolution of at least "
                f"one pixel ({_pixel_size_text(grid)}).")
        if all(p > n for p, n in zip(pixels, grid.shape)):
            raise ValueError(
                f"MapResolution({self.resolution:g} {unit}) is {_pixels_text(pixels)} pixels, "
                f"larger than the scan ({_pixels_text(grid.shape)} pixels), so it would "
                "flatten the maps; give a resolution smaller than the scan.")
        return pixels

    def projection(self, grid):
        pixels = self.resolution_pixels_per_axis(grid)
        if np.allclose(pixels, pixels[0], rtol=1e-9, atol=0):
            pixels = pixels[0]
        function = {"fourier": filters.band_limit, "gaussian": filters.gaussian_smooth,
                    "laplacian": filters.laplacian_smooth}[self.method]
        return lambda stack: function(stack, pixels)


def _pixels_text(values):
    """``4`` for one value or equal values, ``4 × 8`` for values that differ."""
    texts = [f"{float(v):.3g}" for v in values]
    return texts[0] if len(set(texts)) == 1 else " × ".join(texts)


def _pixel_size_text(grid):
    return f"{_pixels_text(grid.scale)} {grid.units}"


class ContinuousIntensity(Constraint):
    """No narrow dips in components: a halo stays smooth under Bragg spots.

    Unconstrained NMF can explain a Bragg spot on an amorphous halo by a dip
    in the halo component where another component has the spot ("downward
    convex peaks", Kimoto et al.). After each update of the components,
    every dip narrower than ``width`` is raised to at most ``tolerance``
    below the local envelope (a morphological closing); peaks and broad
    features are kept as they are.

    Parameters
    ----------
    width : float
        Widest dip to fill, in ``units``: a little wider than a Bragg spot.
    units : str or None
        ``None``: the signal axes' units (pixels if uncalibrated); ``"px"``;
        or a unit such as ``"1/nm"`` or ``"eV"``.
    tolerance : float, default 0.02
        Relative depth of dip that is allowed, in [0, 1).
    components : None, int, sequence of int or str
        The components it applies to (see :class:`Constraint`).

    Examples
    --------
    >>> from hyperspy_hnmf.constraints import Grid
    >>> halo = np.full((1, 16, 16), 5.0)
    >>> halo[0, 8, 8] = 1.0                                # a one-pixel dip
    >>> ContinuousIntensity(3, units="px").projection(Grid((16, 16)))(halo)[0, 8, 8]
    np.float64(4.9)
    """

    on = "components"

    def __init__(self, width, *, units=None, tolerance=0.02, components=None):
        super().__init__(components)
        self.width = _check_length(width, "width")
        self.units = _check_units(units)
        if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) \
                or not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}.")
        self.tolerance = float(tolerance)

    def width_pixels(self, grid):
        """The width in pixels of ``grid``'s first axis, checked against its size.

        See :meth:`width_pixels_per_axis` for grids whose pixels are not square.

        Examples
        --------
        >>> from hyperspy_hnmf.constraints import Grid
        >>> ContinuousIntensity(0.5, units="1/nm").width_pixels(Grid((64,), 0.25, "1/nm"))
        2.0
        """
        return self.width_pixels_per_axis(grid)[0]

    def width_pixels_per_axis(self, grid):
        """The width in pixels along each axis of ``grid``, checked against its size.

        Examples
        --------
        >>> from hyperspy_hnmf.constraints import Grid
        >>> ContinuousIntensity(1.0).width_pixels_per_axis(Grid((24, 32), (0.25, 0.5), "1/nm"))
        (4.0, 2.0)
        """
        pixels = grid.to_pixels_per_axis(self.width, self.units)
        unit = self.units or grid.units
        if max(pixels) < 1 or all(p > n for p, n in zip(pixels, grid.shape)):
            raise ValueError(
                f"ContinuousIntensity(width={self.width:g} {unit}) is {_pixels_text(pixels)} "
                f"pixels; it must be between one pixel and the signal size "
                f"({_pixels_text(grid.shape)} pixels).")
        return pixels

    def projection(self, grid):
        pixels = self.width_pixels_per_axis(grid)
        if np.allclose(pixels, pixels[0], rtol=1e-9, atol=0):
            pixels = pixels[0]
        return lambda stack: filters.fill_dips(stack, pixels, self.tolerance)


class Penalty(Constraint):
    """L1 (sparsity) and L2 (size) penalties on maps or components.

    Adds ``l1 · Σ a + ½ · l2 · Σ a²`` over the entries ``a`` of the chosen
    factor and components to the objective; every solver minimizes the
    penalized objective (HALS and ALS exactly per block, multiplicative
    updates with the penalty in the denominator). L1 drives small entries
    to exactly zero; L2 keeps entries small without zeroing them.

    The weights are in the units of the loss's gradient: with the
    Kullback-Leibler loss a map penalty ``l1 = 0.1`` removes about 0.1 count
    per pixel from each map; with the Frobenius loss scale it with the
    squared intensity. While a penalty acts on one factor only, the other is
    kept normalized (components summing to one, maps with mean one), so the
    penalty cannot be dodged by rescaling.

    Parameters
    ----------
    l1, l2 : float, default 0
        Weights, ≥ 0.
    on : {"maps", "components"}
    components : None, int, sequence of int or str
        The components it applies to (see :class:`Constraint`).

    Examples
    --------
    >>> Penalty(l1=0.1, on="maps", components="target").penalties()
    (0.1, 0.0)
    """

    def __init__(self, l1=0.0, l2=0.0, *, on="maps", components=None):
        super().__init__(components)
        for name, value in (("l1", l1), ("l2", l2)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not np.isfinite(value) or value < 0:
                raise ValueError(f"The {name} penalty weight must be a real number ≥ 0, "
                                 f"got {value!r}.")
        self.l1, self.l2 = float(l1), float(l2)
        self.on = _check_factor(on)

    def penalties(self):
        return self.l1, self.l2


class Projection(Constraint):
    """A user function applied to maps or components after each update.

    Parameters
    ----------
    function : callable
        Called with a stack of shape ``(count, *shape)``: the selected maps
        reshaped to the scan, or components reshaped to the detector/energy
        axis; must return a nonnegative, finite array of the same shape. It is
        checked at the first iteration.
    on : {"maps", "components"}
    components : None, int, sequence of int or str
        The components it applies to (see :class:`Constraint`).
    name : str, optional
        Name used in messages.

    Examples
    --------
    >>> from scipy import ndimage
    >>> median = Projection(lambda s: ndimage.median_filter(s, size=(1, 3, 3)), on="maps")
    >>> median.on
    'maps'
    """

    def __init__(self, function, *, on="maps", components=None, name=None):
        super().__init__(components)
        if not callable(function):
            raise ValueError(f"Projection needs a callable, got {function!r}.")
        self.function = function
        self.on = _check_factor(on)
        self.name = name or getattr(function, "__name__", "projection")

    def _describe(self):
        return f"Projection {self.name!r}"

    def projection(self, grid):
        return self.function
