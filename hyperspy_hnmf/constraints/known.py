"""What the user already knows: components given in advance and pure probe positions.

- :class:`KnownComponent`: a reference pattern (spectrum) for one component,
  held fixed (``tolerance=0``) or allowed to move within a relative distance
  of it while the other components are learned;
- :class:`PureRegion`: probe positions known to hold one component only
  ("these pixels are pure phase A"); the maps of every other component are
  zero there (the label-matrix form of semi-supervised NMF: the map update
  is masked, so the labelled rows supervise the component they name).

Both are used by :func:`hyperspy_hnmf.solvers.joint_nmf` and
:func:`hyperspy_hnmf.joint_decomposition`.
"""

import numbers

import numpy as np

__all__ = ["KnownComponent", "PureRegion"]


def _as_array(values, name):
    """The array of ``values``: an ndarray, a list, or anything with ``.data`` (a signal)."""
    data = getattr(values, "data", values)
    if hasattr(data, "compute"):
        data = data.compute()
    array = np.asarray(data, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"{name} is empty.")
    return array


class KnownComponent:
    """A component supplied by the user: a reference pattern held fixed or near it.

    Parameters
    ----------
    pattern : array-like or signal
        The component's pattern (a diffraction pattern, a spectrum) with the
        signal shape of the data it belongs to; a HyperSpy signal is read
        through its ``data``. Nonnegative; its scale does not matter (the
        intensity is learned in the map).
    index : int
        Position of this component in the results.
    block : int, default 0
        Which dataset of a joint fit the pattern belongs to.
    tolerance : float, default 0
        0 holds the pattern fixed; ``t > 0`` lets the learned pattern ``h``
        (scaled to the reference's sum) move within ``||h - r|| ≤ t ||r||``
        of the reference ``r``: after every update ``h`` is projected onto
        that ball.
    name : str, optional
        For reports.

    Examples
    --------
    >>> known = KnownComponent(np.array([1.0, 3.0]), index=0)
    >>> known.reference.tolist(), known.tolerance
    ([0.25, 0.75], 0.0)
    """

    def __init__(self, pattern, index, block=0, tolerance=0.0, name=None):
        array = _as_array(pattern, "The known component's pattern")
        if not np.all(np.isfinite(array)) or array.min() < 0 or array.sum() <= 0:
            raise ValueError("A known component must be finite, nonnegative and not all zero.")
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < 0:
            raise ValueError(f"index must be a nonnegative integer, got {index!r}.")
        if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) \
                or not np.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance must be a number ≥ 0, got {tolerance!r}.")
        self.reference = array.ravel() / array.sum()
        self.shape = array.shape
        self.index = int(index)
        self.block = int(block)
        self.tolerance = float(tolerance)
        self.name = name if name is not None else f"known component {index}"

    def project(self, column):
        """Move ``column`` (one component, any scale) onto the allowed set, in place.

        The scale of ``column`` (its sum) is kept; its shape becomes the
        nearest point of the ball around the reference.

        Examples
        --------
        >>> column = np.array([4.0, 0.0])
        >>> KnownComponent([1.0, 1.0], index=0).project(column)
        >>> column.tolist()
        [2.0, 2.0]
        """
        total = float(column.sum())
        if total <= 0:
            total = 1.0
        shape = column / total
        difference = shape - self.reference
        distance = float(np.linalg.norm(difference))
        radius = self.tolerance * float(np.linalg.norm(self.reference))
        if distance > radius:
            shape = self.reference + difference * (radius / distance)
        column[:] = np.maximum(shape, 0) * total

    def __repr__(self):
        return (f"KnownComponent(index={self.index}, block={self.block}, "
                f"tolerance={self.tolerance:g}, name={self.name!r})")


class PureRegion:
    """Probe positions known to hold a single component.

    Parameters
    ----------
    positions : array-like of bool or int
        A boolean mask of the probe positions (the scan's shape in data
        order, or flat), or a 1D list of flat indices of positions. A mask
        of 0 and 1 in an integer array is refused (it would read as indices):
        pass ``mask.astype(bool)``; so are repeated indices. The fit refuses
        an empty region.
    index : int
        The component that is alone there.

    Examples
    --------
    >>> region = PureRegion(np.array([[True, False], [False, False]]), index=1)
    >>> region.rows(4).tolist()
    [0]
    """

    def __init__(self, positions, index):
        positions = np.asarray(getattr(positions, "data", positions))
        if positions.dtype != bool and positions.dtype.kind not in "ui":
            raise ValueError("PureRegion positions must be a boolean mask or integer indices, "
                             f"got an array of {positions.dtype}; for a mask of 0 and 1 pass "
                             "mask.astype(bool).")
        if positions.dtype != bool and positions.ndim > 1:
            raise ValueError(
                f"PureRegion got an integer array of shape {positions.shape}: integer positions "
                "are flat indices of probe positions, a 1D list. For a mask of the scan, pass "
                "a boolean array (mask.astype(bool)).")
        if positions.dtype != bool and np.unique(positions).size != positions.size:
            raise ValueError(
                "PureRegion positions list a probe position twice; integer positions are flat "
                "indices. For a mask of 0 and 1, pass a boolean array (mask.astype(bool)).")
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < 0:
            raise ValueError(f"index must be a nonnegative integer, got {index!r}.")
        self.positions = positions
        self.index = int(index)

    def rows(self, n):
        """Flat indices of the labelled positions among ``n`` positions."""
        positions = np.asarray(self.positions)
        if positions.dtype == bool:
            if positions.size != n:
                raise ValueError(f"The mask of a PureRegion has {positions.size} entries, "
                                 f"the data {n} probe positions.")
            return np.flatnonzero(positions.ravel())
        rows = positions.astype(np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"PureRegion positions must lie in [0, {n}).")
        return rows

    def __repr__(self):
        return f"PureRegion(index={self.index})"


def label_mask(regions, n, k):
    """``(rows, allowed)``: the labelled rows and, per row, which maps may be nonzero.

    Examples
    --------
    >>> rows, allowed = label_mask([PureRegion([0, 2], index=1)], 3, 2)
    >>> rows.tolist(), allowed.tolist()
    ([0, 2], [[False, True], [False, True]])
    """
    if not regions:
        return None
    allowed = np.zeros((n, k), dtype=bool)
    labelled = np.zeros(n, dtype=bool)
    for region in regions:
        if region.index >= k:
            raise ValueError(f"{region!r} names component {region.index}, but the fit has {k}.")
        rows = region.rows(n)
        if rows.size == 0:
            raise ValueError(
                f"The PureRegion of component {region.index} is empty: it names no probe "
                "position. Check the threshold that made the mask, or leave the region out.")
        if labelled[rows].any() and (allowed[rows] != np.eye(k, dtype=bool)[region.index]).any():
            raise ValueError("Two PureRegions with different components share probe positions.")
        allowed[rows, region.index] = True
        labelled[rows] = True
    if labelled.all():
        nowhere = sorted(set(range(k)) - {region.index for region in regions})
        if nowhere:
            raise ValueError(
                f"The PureRegions cover every probe position, so component {nowhere[0]} (named "
                "by none of them) could be nonzero nowhere. Label only the positions known to "
                "be pure, or fit fewer components.")
    rows = np.flatnonzero(labelled)
    return rows, allowed[rows]
