"""Constraints resolved for one fit: penalty weights and projections per factor.

:func:`build_plan` checks a list of constraints against the number of
components, the groups and the grids, and returns a :class:`ConstraintPlan`
whose two :class:`FactorConstraints` (maps, components) the solvers call.
All checks happen here, before any computation.
"""

import numbers

import numpy as np

from .._checks import NumericalError
from .grid import Grid
from .specs import (
    Constraint,
    ContinuousIntensity,
    MapResolution,
    Penalty,
    Projection,
    _pixels_text,
)

__all__ = ["ConstraintPlan", "FactorConstraints", "build_plan"]


class FactorConstraints:
    """Penalties and projections of one factor (maps or components).

    The factor is held as a matrix ``A`` with one column per component:
    ``W`` (positions × k) for the maps, ``H.T`` (pixels × k) for the
    components.

    Parameters
    ----------
    name : {"maps", "components"}
    k : int
        Number of components.
    grid : Grid or None
        Grid of one column; ``None`` leaves columns flat.

    Attributes
    ----------
    l1, l2 : ndarray of float64, shape (k,) or None
        Penalty weights per component (None when no penalty).
    projections : list of (ndarray of int, callable, str)
        Columns, function and description, applied in order.

    Examples
    --------
    >>> side = FactorConstraints("maps", 2, None)
    >>> side.add_penalty([1], 0.5, 0.0)
    >>> side.l1.tolist(), side.penalty_value(np.ones((3, 2)))
    ([0.0, 0.5], 1.5)
    """

    def __init__(self, name, k, grid):
        self.name = name
        self.k = k
        self.grid = grid
        self.l1 = None
        self.l2 = None
        self.projections = []
        self._calls = {}

    @property
    def has_penalty(self):
        """Whether any L1 or L2 weight is positive."""
        return self.l1 is not None

    @property
    def active(self):
        """Whether this factor has any constraint."""
        return self.has_penalty or bool(self.projections)

    def add_penalty(self, columns, l1, l2):
        """Add weights to the given columns."""
        if l1 == 0 and l2 == 0:
            return
        if self.l1 is None:
            self.l1, self.l2 = np.zeros(self.k), np.zeros(self.k)
        self.l1[columns] += l1
        self.l2[columns] += l2

    def penalty_value(self, A):
        """``Σ_j l1_j Σ_i A_ij + ½ l2_j Σ_i A_ij²`` (0 without penalties)."""
        if self.l1 is None:
            return 0.0
        sums = A.sum(axis=0, dtype=np.float64)
        squares = np.einsum("ij,ij->j", A, A, dtype=np.float64)
        return float(self.l1 @ sums + 0.5 * (self.l2 @ squares))

    def _stack(self, A, columns):
        shape = self.grid.shape if self.grid is not None else (A.shape[0],)
        return np.ascontiguousarray(A[:, columns].T).reshape((len(columns),) + shape)

    def project(self, A):
        """Apply the projections to the columns of ``A``, in place.

        The first result of each projection is checked in full (type, shape,
        finite, nonnegative); every later one for NaN and infinity, which
        raise :class:`~hyperspy_hnmf._checks.NumericalError` naming the
        projection and the call, before ``A`` changes.
        """
        for index, (columns, function, label) in enumerate(self.projections):
            stack = self._stack(A, columns)
            result = function(stack)
            calls = self._calls.get(index, 0) + 1
            self._calls[index] = calls
            if calls == 1:
                self._check_result(result, stack, label)
            elif not np.isfinite(np.sum(result, dtype=np.float64)):
                raise NumericalError(
                    f"The {label} applied to the {self.name} returned NaN or infinite values "
                    f"at its call {calls} (the first call is on the initial factors, then "
                    "about one per iteration); it returned finite values before. The fit was "
                    "stopped and nothing was stored. Make the projection return finite, "
                    "nonnegative values for every input (e.g. guard divisions by zero).")
            A[:, columns] = np.reshape(result, (len(columns), -1)).T

    def _check_result(self, result, stack, label):
        where = f"The {label} applied to the {self.name}"
        if not isinstance(result, np.ndarray):
            raise ValueError(f"{where} returned {type(result).__name__}, not a NumPy array "
                             f"of shape {stack.shape}.")
        if result.shape != stack.shape:
            raise ValueError(f"{where} returned an array of shape {result.shape} for input of "
                             f"shape {stack.shape}; it must return the same shape.")
        if not np.all(np.isfinite(result)):
            raise ValueError(f"{where} returned NaN or infinite values; it must return "
                             "finite values.")
        if result.size and result.min() < 0:
            raise ValueError(f"{where} returned negative values (minimum "
                             f"{float(result.min()):.3g}); it must keep them nonnegative, "
                             "e.g. end with np.maximum(result, 0).")


class ConstraintPlan:
    """The constraints of one fit, resolved: one :class:`FactorConstraints` per factor.

    Attributes
    ----------
    maps, components : FactorConstraints
    blocks : list of ndarray of int
        Components that share exactly the same constraints and group; the
        final ordering by intensity happens within each block, so a
        component keeps the position its constraints name.
    constraints : list of Constraint
    resolved : list of (Constraint, ndarray of int, str)
        Every constraint with the columns it applies to and a description
        in resolved units.
    map_resolution : float or None
        Resolution in pixels of the first :class:`MapResolution` along the
        first axis of the scan, for metrics.
    map_resolution_axes : tuple of float or None
        The same along every axis of the scan (they differ when the scan
        step differs between the axes); pass it to
        :func:`~.metrics.out_of_band_fraction`.
    dip_width : float or None
        Width in pixels of the first :class:`ContinuousIntensity` along the
        first axis of the components.
    dip_width_axes : tuple of float or None
        The same along every axis (they differ for pixels that are not
        square); pass it to :func:`~.metrics.dip_score`.

    Examples
    --------
    >>> from hyperspy_hnmf.constraints import Penalty
    >>> plan = build_plan([Penalty(l1=1.0, components=[2])], 3)
    >>> [b.tolist() for b in plan.blocks]
    [[0, 1], [2]]
    """

    def __init__(self, k, map_grid, component_grid):
        self.maps = FactorConstraints("maps", k, map_grid)
        self.components = FactorConstraints("components", k, component_grid)
        self.blocks = [np.arange(k)]
        self.constraints = []
        self.resolved = []
        self.map_resolution = None
        self.map_resolution_axes = None
        self.dip_width = None
        self.dip_width_axes = None

    @property
    def active(self):
        """Whether any constraint acts."""
        return self.maps.active or self.components.active

    def normalize(self, W, Ht):
        """Fix the scale of the factor without penalty when only the other has one.

        Components are scaled to sum to one (maps penalized) or maps to mean
        one (components penalized), moving the scale into the other factor;
        ``W @ Ht.T`` is unchanged. Returns False when there is nothing to do.
        """
        if self.maps.has_penalty == self.components.has_penalty:
            return False
        free, other = (Ht, W) if self.maps.has_penalty else (W, Ht)
        sums = free.sum(axis=0, dtype=np.float64)
        if free is W:
            sums = sums / W.shape[0]
        scale = np.where(sums > 0, sums, 1.0)
        free /= scale.astype(free.dtype)
        other *= scale.astype(other.dtype)
        return True

    def summary(self):
        """One line per constraint.

        Examples
        --------
        >>> from hyperspy_hnmf.constraints import Penalty
        >>> build_plan([Penalty(l1=1.0, components=[0])], 2).summary()
        ['Penalty on maps [0]: l1=1, l2=0']
        """
        return [f"{constraint._describe()} on {constraint.on} {columns.tolist()}: {detail}"
                for constraint, columns, detail in self.resolved]



def _as_constraint_list(constraints):
    if constraints is None:
        return []
    if isinstance(constraints, Constraint):
        return [constraints]
    if isinstance(constraints, (list, tuple)) and all(isinstance(c, Constraint) for c in constraints):
        return list(constraints)
    raise ValueError(
        "constraints must be a constraint or a list of them (MapResolution, "
        "ContinuousIntensity, Penalty, Projection from hyperspy_hnmf.constraints), "
        f"got {constraints!r}.")


def _check_index_list(values, k, what):
    try:
        indices = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must list component indices, got {values!r}.") from None
    if not indices:
        raise ValueError(f"{what} lists no component.")
    if any(isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) for v in values):
        raise ValueError(f"{what} must list integer component indices, got {values!r}.")
    bad = [i for i in indices if not 0 <= i < k]
    if bad:
        raise ValueError(
            f"{what} names component {bad[0]}, but there are {k} components "
            f"(indices 0 to {k - 1}).")
    if len(set(indices)) != len(indices):
        raise ValueError(f"{what} names a component twice: {indices}.")
    return np.asarray(indices)


def check_groups(groups, k):
    """Validate ``groups``: a dict of names to disjoint lists of component indices.

    Parameters
    ----------
    groups : dict or None
    k : int

    Returns
    -------
    dict of str to ndarray of int

    Examples
    --------
    >>> {name: g.tolist() for name, g in check_groups({"bg": [0], "target": [1, 2]}, 3).items()}
    {'bg': [0], 'target': [1, 2]}
    """
    if groups is None:
        return {}
    if not isinstance(groups, dict) or not all(isinstance(name, str) for name in groups):
        raise ValueError("groups must be a dict of group names to lists of component indices, "
                         f"e.g. {{'background': [0], 'target': [1, 2]}}, got {groups!r}.")
    resolved = {}
    owner = {}
    for name, members in groups.items():
        indices = _check_index_list(members, k, f"Group {name!r}")
        for index in indices.tolist():
            if index in owner:
                raise ValueError(
                    f"Groups {owner[index]!r} and {name!r} overlap: component {index} is in "
                    "both. A component can belong to one group only.")
            owner[index] = name
        resolved[name] = indices
    return resolved


def _columns(constraint, k, groups):
    selection = constraint.components
    if selection is None:
        return np.arange(k)
    if isinstance(selection, str):
        if selection not in groups:
            known = sorted(groups) if groups else "none defined"
            raise ValueError(
                f"{constraint._describe()} names the group {selection!r}, which does not "
                f"exist (groups: {known}). Define it with groups={{{selection!r}: [...]}}.")
        return groups[selection]
    return _check_index_list(selection, k, constraint._describe())


def build_plan(constraints, k, *, groups=None, map_grid=None, component_grid=None):
    """Check constraints and resolve them for a fit with ``k`` components.

    Parameters
    ----------
    constraints : Constraint, list of Constraint or None
    k : int
        Number of components.
    groups : dict of str to list of int, optional
        Named, disjoint sets of components that constraints can refer to.
    map_grid, component_grid : Grid or tuple of int, optional
        Grids of the maps (scan) and of the components (detector or
        spectrum); needed by constraints that reshape them.

    Returns
    -------
    ConstraintPlan

    Raises
    ------
    ValueError
        For unknown components or groups, overlapping groups, two
        constraints of one kind on the same component, a missing grid, or a
        length outside the grid.

    Examples
    --------
    >>> from hyperspy_hnmf.constraints import MapResolution, Penalty
    >>> plan = build_plan([MapResolution(4), Penalty(l1=0.1, components="target")], 3,
    ...                   groups={"target": [1, 2]}, map_grid=(32, 32))
    >>> plan.maps.l1.tolist(), len(plan.maps.projections), plan.map_resolution
    ([0.0, 0.1, 0.1], 1, 4.0)
    """
    constraints = _as_constraint_list(constraints)
    groups = check_groups(groups, k)
    grids = {}
    for name, grid in (("maps", map_grid), ("components", component_grid)):
        grids[name] = grid if grid is None or isinstance(grid, Grid) else Grid(tuple(grid))
    plan = ConstraintPlan(k, grids["maps"], grids["components"])
    plan.constraints = constraints
    seen = {}
    for constraint in constraints:
        columns = _columns(constraint, k, groups)
        side = getattr(plan, constraint.on)
        if not isinstance(constraint, Projection):
            key = (type(constraint), constraint.on)
            taken = seen.setdefault(key, {})
            for index in columns.tolist():
                if index in taken:
                    raise ValueError(
                        f"Two {type(constraint).__name__} constraints on the {constraint.on} "
                        f"both apply to component {index} ({taken[index]!r} and "
                        f"{constraint!r}); give each component one of them, with "
                        "non-overlapping `components`.")
                taken[index] = constraint
        if isinstance(constraint, Penalty):
            side.add_penalty(columns, *constraint.penalties())
            detail = f"l1={constraint.l1:g}, l2={constraint.l2:g}"
        else:
            if side.grid is None and not isinstance(constraint, Projection):
                raise ValueError(
                    f"{constraint._describe()} needs the shape of the {constraint.on}: "
                    "decompose a HyperSpy signal, or pass "
                    f"{'navigation' if constraint.on == 'maps' else 'signal'}_grid=Grid(shape, "
                    "scale, units) to HNMF.")
            function = constraint.projection(side.grid)
            side.projections.append((columns, function, constraint._describe()))
            detail = "user function"
            if isinstance(constraint, MapResolution):
                pixels = constraint.resolution_pixels_per_axis(side.grid)
                detail = (f"{constraint.resolution:g} {constraint.units or side.grid.units} "
                          f"= {_pixels_text(pixels)} px ({constraint.method})")
                if plan.map_resolution is None:
                    plan.map_resolution, plan.map_resolution_axes = pixels[0], pixels
            elif isinstance(constraint, ContinuousIntensity):
                pixels = constraint.width_pixels_per_axis(side.grid)
                detail = (f"width {constraint.width:g} {constraint.units or side.grid.units} "
                          f"= {_pixels_text(pixels)} px, tolerance {constraint.tolerance:g}")
                if plan.dip_width is None:
                    plan.dip_width, plan.dip_width_axes = pixels[0], pixels
        plan.resolved.append((constraint, columns, detail))
    plan.blocks = _blocks(k, plan.resolved, groups)
    return plan


def _blocks(k, resolved, groups):
    """Components with identical constraints and group, as index arrays in order."""
    signature = [[] for _ in range(k)]
    for position, (_, columns, _) in enumerate(resolved):
        for index in columns.tolist():
            signature[index].append(position)
    for name, members in groups.items():
        for index in members.tolist():
            signature[index].append(name)
    blocks = {}
    for index in range(k):
        blocks.setdefault(tuple(map(str, signature[index])), []).append(index)
    return [np.asarray(b) for b in blocks.values()]
