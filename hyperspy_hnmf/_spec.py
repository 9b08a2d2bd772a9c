"""The one place where the options of a fit are validated and resolved.

Every fit of the package (:class:`~hyperspy_hnmf.HNMF`,
:func:`~hyperspy_hnmf.solvers.nmf`, :func:`~hyperspy_hnmf.streaming.streaming_nmf`,
:func:`~hyperspy_hnmf.streaming.randomized_nmf`,
:func:`~hyperspy_hnmf.hierarchy.multilayer.multilayer_nmf` and
``s.decomposition(algorithm="hnmf")``) passes its options through
:func:`resolve_fit` once. It returns a frozen :class:`FitSpec`: the loss
resolved to its β (``"auto"`` chosen from the data), the concrete solver, the
ranks, the :class:`~hyperspy_hnmf.constraints.ConstraintPlan` (built here and
nowhere else for the fit) and every other option, checked. The algorithms
below take these resolved values and check nothing again, as scikit-learn's
``NMF`` validates its parameters once and ``non_negative_factorization`` is a
thin shim over it.

The defaults of every fit function are declared here once (``DEFAULT_*``).
This module is array-level: it knows nothing of HyperSpy.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import (DEFAULT_LOSS, check_count, check_flag, check_init, check_layer_ranks,
                      check_layer_weights, check_level, check_n_leaves, check_outliers,
                      check_rank,
                      check_random_state, check_score_threshold, check_tol, resolve_loss,
                      resolve_solver)

__all__ = [
    "DEFAULT_FINE_TUNE",
    "DEFAULT_FINE_TUNE_ITER",
    "DEFAULT_INIT",
    "DEFAULT_LOSS",
    "DEFAULT_MAX_ITER",
    "DEFAULT_MIN_LEAF_SIZE",
    "DEFAULT_N_RESTARTS",
    "DEFAULT_OVERSAMPLING",
    "DEFAULT_POWER_ITERATIONS",
    "DEFAULT_REFINE_PASSES",
    "DEFAULT_SOLVER",
    "DEFAULT_TOL",
    "FitSpec",
    "resolve_fit",
]

#: The defaults of every fit (HNMF, nmf, streaming_nmf, randomized_nmf, multilayer_nmf).
DEFAULT_SOLVER = "auto"
DEFAULT_INIT = "nndsvda"
DEFAULT_MAX_ITER = 200
DEFAULT_TOL = 1e-4
DEFAULT_N_RESTARTS = 1
DEFAULT_OVERSAMPLING = 10
DEFAULT_POWER_ITERATIONS = 2
DEFAULT_REFINE_PASSES = 5
DEFAULT_FINE_TUNE = True
DEFAULT_FINE_TUNE_ITER = 100

#: The initializations a tree takes: every NNDSVD name starts each split from
#: the rank-2 SVD of its node, "random" from random factors.
TREE_INITS = ("nndsvd", "nndsvda", "nndsvdar", "random")
DEFAULT_MIN_LEAF_SIZE = 1

#: Options of the randomized solver and their defaults.
_RANDOMIZED_DEFAULTS = {
    "oversampling": DEFAULT_OVERSAMPLING,
    "power_iterations": DEFAULT_POWER_ITERATIONS,
    "refine_passes": DEFAULT_REFINE_PASSES,
}
#: Options of the splitting tree and their defaults.
_TREE_DEFAULTS = {"min_leaf_size": DEFAULT_MIN_LEAF_SIZE, "max_depth": None,
                  "score_threshold": None}

_LOSS_NAMES = {2.0: "frobenius", 1.0: "kullback-leibler", 0.0: "itakura-saito"}


@dataclass(frozen=True)
class FitSpec:
    """The options of one fit, validated and resolved: what the algorithms receive.

    Built by :func:`resolve_fit` only; frozen, so nothing downstream can
    change an option after it was checked.

    Attributes
    ----------
    beta : float
        β of the loss (2 Frobenius, 1 Kullback-Leibler, 0 Itakura-Saito).
    loss : str or float
        The loss by name (``"frobenius"``, ``"kullback-leibler"``,
        ``"itakura-saito"``) or β for other values.
    solver : str
        The concrete solver (``"hals"``, ``"mu"``, ``"als"``, ``"randomized"``).
    kind : {"flat", "layers", "tree"}
    ranks : tuple of int or None
        Components per level, finest first (one entry for flat fits and
        trees, the number of leaves for a tree); ``None`` when neither the
        number of components nor the data were given.
    init : str or tuple
        ``"nndsvda"``, ... or the user's ``(W, H)``.
    max_iter : int
    tol : float
    n_restarts : int
    random_state : None, int, numpy.random.Generator or RandomState
        As given (turned into a generator by the algorithm that draws from it).
    plan : ConstraintPlan or None
        The resolved constraints of the finest level; ``None`` when nothing
        is constrained.
    level_plans : tuple
        Multi-layer: the plan of every level (the finest one, then the map
        constraints shared by all components on the coarser levels);
        ``(plan,)`` otherwise.
    navigation_grid, signal_grid : Grid or None
        Shape (and calibration) of one map and of one component.
    oversampling, power_iterations, refine_passes : int
        Options of ``solver="randomized"``.
    level : int
        Multi-layer: the level exposed by the estimator (1 = finest).
    fine_tune : bool
    fine_tune_iter : int
    layer_weights : ndarray or None
        Multi-layer: the fine-tuning weights, one per level.
    min_leaf_size : int
    max_depth : int or None
    score_threshold : float or None
        Tree options.
    shape : tuple of int or None
        Shape of the data the spec was resolved for.
    streamed : bool
        Whether the data are read in passes (dask array or StreamedMatrix).
    outliers : None, "auto" or float
        The false-alarm option of an outlier-robust fit (None: plain fit).

    Examples
    --------
    >>> spec = resolve_fit(np.ones((6, 4), dtype=np.uint16), 2)
    >>> spec.loss, spec.solver, spec.ranks, spec.max_iter
    ('kullback-leibler', 'mu', (2,), 200)
    >>> spec.max_iter = 5
    Traceback (most recent call last):
    ...
    dataclasses.FrozenInstanceError: cannot assign to field 'max_iter'
    """

    beta: float
    loss: Any
    solver: str
    kind: str
    ranks: Any
    init: Any
    max_iter: int
    tol: float
    n_restarts: int
    random_state: Any
    plan: Any
    level_plans: tuple
    navigation_grid: Any
    signal_grid: Any
    oversampling: int
    power_iterations: int
    refine_passes: int
    level: int
    fine_tune: bool
    fine_tune_iter: int
    layer_weights: Any
    min_leaf_size: int
    max_depth: Any
    score_threshold: Any
    shape: Any
    streamed: bool
    outliers: Any

    @property
    def n_components(self):
        """Components of the finest level (leaves of a tree); ``None`` if unknown."""
        return None if self.ranks is None else self.ranks[0]


def _short(value):
    """``repr`` of an option, arrays by their shapes (for messages)."""
    if isinstance(value, tuple):
        return "(" + ", ".join("None" if v is None else f"array of shape {np.shape(v)}"
                               for v in value) + ")"
    return repr(value)


def _is_sequence(value):
    return isinstance(value, (list, tuple, np.ndarray))


def _shape_and_data(X):
    """``(shape, data)`` of ``X``: the data, a shape tuple, or None."""
    if X is None:
        return None, None
    if isinstance(X, tuple):
        return tuple(int(n) for n in X), None
    return tuple(X.shape), X


def _kind(hierarchy, n_components):
    if hierarchy not in (None, "layers", "tree"):
        raise ValueError(
            f"Unknown hierarchy {hierarchy!r}. Valid values are None (flat, "
            "or layers when n_components is a list), 'layers' and 'tree'."
        )
    if hierarchy == "tree":
        return "tree"
    if hierarchy == "layers" or _is_sequence(n_components):
        return "layers"
    return "flat"


def _ranks(kind, n_components, hierarchy, shape):
    """The ranks of a fit, checked against the data's shape where it is known."""
    if kind == "layers":
        ranks = check_layer_ranks(n_components)
        if shape is not None and ranks[0] >= min(shape):
            raise ValueError(
                f"The finest rank ranks[0]={ranks[0]} must be smaller than min(n, m) = "
                f"{min(shape)} for data of shape {shape}."
            )
        return ranks
    if _is_sequence(n_components):
        raise ValueError(
            f"hierarchy={hierarchy!r} takes one number of components, but "
            f"n_components is {list(n_components)}; a list of ranks asks for "
            "hierarchy='layers'."
        )
    if n_components is None:
        return None if shape is None else (min(shape),)
    k = check_rank(n_components, shape)
    if kind == "tree" and shape is not None:
        check_n_leaves(k, shape[0])
    return (k,)


def _grids(navigation_grid, signal_grid, shape):
    """Both grids as :class:`~hyperspy_hnmf.constraints.Grid`, checked against the data."""
    from .constraints import Grid

    grids = []
    for name, grid, axis in (("map_grid", navigation_grid, 0),
                             ("component_grid", signal_grid, 1)):
        if grid is not None:
            grid = grid if isinstance(grid, Grid) else Grid(tuple(grid))
            if shape is not None and grid.size != shape[axis]:
                raise ValueError(
                    f"{name} has shape {grid.shape} ({grid.size} pixels), but the data have "
                    f"{shape[axis]} {'rows' if axis == 0 else 'columns'}.")
        grids.append(grid)
    return grids


def _plans(constraints, groups, ranks, kind, grids):
    """The constraint plan of the finest level and of every level, built once."""
    from .constraints import ConstraintPlan, Penalty, build_plan

    n_levels = 1 if ranks is None else len(ranks)
    if isinstance(constraints, ConstraintPlan):
        plan = constraints if constraints.active else None
    elif (constraints is None and groups is None) or ranks is None:
        plan = None
    else:
        plan = build_plan(constraints, ranks[0], groups=groups, map_grid=grids[0],
                          component_grid=grids[1])
        plan = plan if plan.active or groups else None
    if plan is not None and kind == "tree" and plan.components.has_penalty:
        bad = [c for c in plan.constraints if isinstance(c, Penalty) and c.on == "components"]
        raise ValueError(
            f"{bad[0]!r}: penalties on components are not supported with "
            "hierarchy='tree', whose components come from rank-2 splits; use it with a "
            "flat or multi-layer fit, or constrain the tree's components by a projection.")
    if kind != "layers" or plan is None or not plan.active:
        return plan, (plan,) + (None,) * (n_levels - 1)
    shared = [c for c, _, _ in plan.resolved if c.on == "maps" and c.components is None]
    levels = [plan]
    for rank in ranks[1:]:
        coarse = build_plan(shared, rank, map_grid=plan.maps.grid) if shared else None
        levels.append(coarse if coarse is not None and coarse.active else None)
    return plan, tuple(levels)


def resolve_fit(X=None, n_components=None, *, loss=DEFAULT_LOSS, solver=DEFAULT_SOLVER,
                init=DEFAULT_INIT, max_iter=DEFAULT_MAX_ITER, tol=DEFAULT_TOL,
                random_state=None, n_restarts=DEFAULT_N_RESTARTS, hierarchy=None,
                level=None, fine_tune=DEFAULT_FINE_TUNE, fine_tune_iter=DEFAULT_FINE_TUNE_ITER,
                layer_weights=None, min_leaf_size=DEFAULT_MIN_LEAF_SIZE, max_depth=None,
                score_threshold=None, constraints=None, groups=None, navigation_grid=None,
                signal_grid=None, oversampling=None, power_iterations=None,
                refine_passes=None, callback=None, outliers=None):
    """Validate every option of a fit once and resolve it into a :class:`FitSpec`.

    Each option is checked here and nowhere else; the messages are those of
    the single-value checks in :mod:`hyperspy_hnmf._checks`. Nothing is
    modified and the data are not read, except that ``loss="auto"`` looks
    at their type (or first chunk, or values block by block) through
    :func:`~hyperspy_hnmf._checks.resolve_loss`.

    Parameters
    ----------
    X : array-like, scipy.sparse matrix, dask array, StreamedMatrix, tuple or None
        The data (``loss="auto"`` is chosen from them), or only their shape
        ``(n, m)``, or ``None`` (the options are checked on their own;
        ``loss="auto"`` then counts as Frobenius).
    n_components : int, sequence of int or None
        Components; a strictly decreasing sequence asks for a multi-layer
        fit; ``None`` uses ``min(n, m)``.
    loss, solver, init, max_iter, tol, random_state, n_restarts, hierarchy,
    level, fine_tune, fine_tune_iter, layer_weights, min_leaf_size, max_depth,
    score_threshold, constraints, groups, navigation_grid, signal_grid
        As in :class:`~hyperspy_hnmf.HNMF`; ``constraints`` may also be a
        ready :class:`~hyperspy_hnmf.constraints.ConstraintPlan`.
    oversampling, power_iterations, refine_passes : int or None
        Options of ``solver="randomized"``; ``None``: the default. Another
        value with another solver raises ``ValueError``.
    callback : callable or None
        Only checked to be callable.
    outliers : None, "auto" or float
        As in :class:`~hyperspy_hnmf.HNMF` (flat fits, KL or Frobenius, exact
        solvers).

    Returns
    -------
    FitSpec

    Raises
    ------
    ValueError
        For the first invalid option, with the message of its check.

    Examples
    --------
    >>> counts = np.array([[1, 0, 3], [2, 5, 0]], dtype=np.uint16)
    >>> spec = resolve_fit(counts, 1)
    >>> spec.beta, spec.solver, spec.kind
    (1.0, 'mu', 'flat')
    >>> resolve_fit((100, 64), [8, 4, 2]).ranks
    (8, 4, 2)
    >>> resolve_fit((100, 64), 4, max_iter=0)
    Traceback (most recent call last):
    ...
    ValueError: max_iter must be an integer ≥ 1, got 0.
    """
    from .matrix import is_chunked

    shape, data = _shape_and_data(X)
    streamed = data is not None and is_chunked(data)
    kind = _kind(hierarchy, n_components)
    beta = resolve_loss(loss, data, solver)
    solver = resolve_solver(solver, beta)
    check_init(init)
    max_iter = check_count(max_iter, "max_iter", 1)
    n_restarts = check_count(n_restarts, "n_restarts", 1)
    tol = check_tol(tol)
    random_state = check_random_state(random_state)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {callback!r}.")
    randomized = {}
    for name, value in (("oversampling", oversampling), ("power_iterations", power_iterations),
                        ("refine_passes", refine_passes)):
        default = _RANDOMIZED_DEFAULTS[name]
        value = default if value is None else check_count(value, name, 0)
        if value != default and solver != "randomized":
            raise ValueError(f"`{name}` applies to solver='randomized' only.")
        randomized[name] = value
    if solver == "randomized":
        if n_restarts != 1:
            raise ValueError("solver='randomized' makes one run from the compressed data: "
                             "use n_restarts=1.")
        if isinstance(init, tuple) or init == "spa":
            raise ValueError("The randomized solver initializes from the compressed data: use "
                             "init='nndsvd', 'nndsvda', 'nndsvdar' or 'random'.")
    outliers = check_outliers(outliers)
    if outliers is not None and (kind != "flat" or solver == "randomized"
                                 or beta not in (1.0, 2.0)):
        raise ValueError(
            f"outliers={outliers!r} applies to flat fits with the Kullback-Leibler or "
            f"Frobenius loss and an exact solver; this fit is {kind!r} with "
            f"solver={solver!r} and β={beta:g}. Drop `outliers`, or fit a flat model "
            "(one number of components) with loss='kl' or 'frobenius'.")
    if streamed and kind == "flat":
        if beta not in (1.0, 2.0):
            raise ValueError(
                f"Data read in passes (lazy signals) support the Frobenius and "
                f"Kullback-Leibler losses, got β={beta:g}. Use loss='frobenius' or "
                "loss='kl', or load the data.")
        if init == "spa":
            raise ValueError("init='spa' is not available for data read in passes; use "
                             "'nndsvda' (the default) or give (W, H).")
    ranks = _ranks(kind, n_components, hierarchy, shape)
    weights = None
    if kind == "layers":
        if beta not in (1.0, 2.0):
            raise ValueError(
                f"multilayer_nmf supports the Frobenius (β=2) and Kullback-Leibler "
                f"(β=1) losses, got β={beta:g}. Use loss='frobenius' or loss='kl'."
            )
        level = 1 if level is None else check_level(level, len(ranks))
        weights = check_layer_weights(layer_weights, len(ranks))
        fine_tune = check_flag(fine_tune, "fine_tune")
        fine_tune_iter = check_count(fine_tune_iter, "fine_tune_iter", 1)
    else:
        for name, value, default in (("level", level, None),
                                     ("layer_weights", layer_weights, None),
                                     ("fine_tune", fine_tune, DEFAULT_FINE_TUNE),
                                     ("fine_tune_iter", fine_tune_iter, DEFAULT_FINE_TUNE_ITER)):
            if (value is not None) if default is None else (value != default):
                raise ValueError(
                    f"`{name}` applies to multi-layer NMF only (a list of ranks as "
                    f"n_components), not to hierarchy={hierarchy!r}."
                )
        level = 1
    tree = {"min_leaf_size": min_leaf_size, "max_depth": max_depth,
            "score_threshold": score_threshold}
    if kind == "tree":
        if solver == "als":
            raise ValueError("solver='als' cannot compute the tree's maps; use 'hals' or 'mu'.")
        if isinstance(init, tuple) or init not in TREE_INITS:
            raise ValueError(
                f"hierarchy='tree' starts every split from its node's data: from the rank-2 "
                f"SVD (init='nndsvda', the default, or another NNDSVD name) or at random "
                f"(init='random', seeded by random_state); init={_short(init)} does not "
                "apply to a tree.")
        if n_restarts != 1:
            raise ValueError("hierarchy='tree' grows one tree (every split is a rank-2 fit "
                             "from the SVD of its node); use n_restarts=1, or init='random' "
                             "with different random_state values to compare trees.")
        tree["min_leaf_size"] = check_count(min_leaf_size, "min_leaf_size", 1)
        if max_depth is not None:
            tree["max_depth"] = check_count(max_depth, "max_depth", 1)
        tree["score_threshold"] = check_score_threshold(score_threshold)
    else:
        for name, default in _TREE_DEFAULTS.items():
            if tree[name] != default:
                raise ValueError(
                    f"`{name}` applies to hierarchy='tree' only; set "
                    "hierarchy='tree' to build a splitting tree."
                )
    grids = _grids(navigation_grid, signal_grid, shape)
    plan, level_plans = _plans(constraints, groups, ranks, kind, grids)
    if (kind == "tree" and streamed and plan is not None and plan.maps.projections
            and getattr(data, "held_array", None) is None):
        raise ValueError(
            "Map projections (e.g. MapResolution) act across probe positions, so the maps of "
            "a tree's leaves cannot be solved chunk by chunk on data read from a file. Use "
            "them in a flat or multi-layer fit (which read the data in passes), or load the "
            "data (s.compute()) for a tree.")
    return FitSpec(
        beta=beta, loss=_LOSS_NAMES.get(beta, beta), solver=solver, kind=kind, ranks=ranks,
        init=init, max_iter=max_iter, tol=tol, n_restarts=n_restarts,
        random_state=random_state, plan=plan, level_plans=level_plans,
        navigation_grid=grids[0], signal_grid=grids[1], level=level, fine_tune=fine_tune,
        fine_tune_iter=fine_tune_iter, layer_weights=weights, shape=shape, streamed=streamed,
        outliers=outliers, **randomized, **tree)
