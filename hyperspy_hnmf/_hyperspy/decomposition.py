"""``decomposition(algorithm="hnmf")``: the wrapper of HyperSpy's ``decomposition``.

HyperSpy has no registry of decomposition algorithms, so ``algorithm="hnmf"``
works by wrapping ``decomposition`` of HyperSpy's ``MVA`` mixin (and of
``LazySignal``): calls whose algorithm is not ours go to HyperSpy untouched;
ours are validated here, before anything is modified, then handed to
HyperSpy's own scikit-learn path with an :class:`~hyperspy_hnmf.HNMF`
estimator, so masks, Poisson normalization and result storage stay
HyperSpy's. A failed or interrupted fit restores the previous
``learning_results``. A successful decomposition by any other algorithm
("SVD", "NMF", an estimator...) removes ``learning_results.hnmf``, the
hierarchy, tree and constraint metadata of an earlier hnmf fit.

HyperSpy reads the ``hyperspy.extensions`` entry point of this package (its
``hyperspy_extension.yaml``) on ``import hyperspy.api`` but does not import
the package, and it has no registry of decomposition algorithms: the wrapper
is installed by ``import hyperspy_hnmf``. Without that import,
``decomposition(algorithm="hnmf")`` ends in HyperSpy's own "not recognised"
error.
"""

import contextlib
import functools
import inspect
import warnings

import numpy as np

from ..estimators import HNMF
from .. import solvers
from ..solvers import canonical_order
from .._checks import (check_finite, check_nonnegative, check_not_all_zero, check_real,
                       is_auto_loss, row_blocks)
from ..estimators import explained_intensity
from ..constraints.specs import _pixels_text
from .joint import check_lines, fit_signals, known_info
from .results import (_keeping_previous_results, clear_results, install_results_io,
                      stamp_results, store_decomposition, uninstall_results_io)
from .robust import outlier_info, outlier_line

#: The name to pass as ``algorithm`` to ``decomposition``.
ALGORITHM_NAME = "hnmf"

#: Keyword options of ``decomposition(algorithm="hnmf", ...)`` that go to :class:`HNMF`.
ESTIMATOR_OPTIONS = tuple(
    name for name in inspect.signature(HNMF).parameters if name != "n_components"
)

_DOC_NOTE = """
    Notes (added by hyperspy_hnmf)
    ------------------------------
    ``algorithm="hnmf"`` (or an :class:`hyperspy_hnmf.HNMF` instance) runs the
    nonnegative matrix factorization of hyperspy_hnmf. It needs
    ``output_dimension`` and takes the options of :class:`hyperspy_hnmf.HNMF`
    as keywords: ``loss``, ``solver``, ``init``, ``max_iter``, ``tol``,
    ``random_state``, ``n_restarts``, ``clip_negative``, ``outliers``
    (``"auto"``: keep detector outliers out of the fit, see
    ``hyperspy_hnmf.get_outliers``) and ``show_progressbar`` (None follows
    HyperSpy's preferences). Components
    sum to one and are sorted by decreasing total intensity; fit details are
    stored in ``learning_results.hnmf``. ``known_components=[KnownComponent(...)]``
    and ``pure_regions=[PureRegion(...)]`` (:mod:`hyperspy_hnmf.constraints`)
    hold reference patterns and label pure probe positions in a flat fit;
    every reference is checked against the data
    (:func:`hyperspy_hnmf.get_known_component_checks`). An HNMF instance is
    fitted in place, as HyperSpy fits any estimator, but keeps its
    parameters: the grids and number of components resolved for this
    signal are in its ``spec_``, so it can decompose another signal.
"""


def is_hnmf_algorithm(algorithm):
    """Whether ``algorithm`` asks for this package's NMF.

    Parameters
    ----------
    algorithm : object
        The ``algorithm`` argument of ``decomposition``.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_hnmf_algorithm("HNMF"), is_hnmf_algorithm("NMF")
    (True, False)
    """
    if isinstance(algorithm, HNMF):
        return True
    return isinstance(algorithm, str) and algorithm.lower() == ALGORITHM_NAME


def _show_progressbar(value):
    if value is not None:
        return bool(value)
    from hyperspy.defaults_parser import preferences

    return bool(preferences.General.show_progressbar)


def _build_estimator(algorithm, output_dimension, options, signal=None):
    """The estimator for this call, with every option validated.

    An :class:`HNMF` instance given as ``algorithm`` is not modified: the
    fit runs on a copy with the same parameters (:func:`_copy_estimator`),
    whose fitted state :func:`_adopt_fit` hands back to the instance after
    a successful fit. Constraints that reshape maps or components get their
    grids from the signal's axes (unless given; given grids must have the
    axes' shapes, see :func:`_check_given_grids`).
    """
    options = dict(options)
    if isinstance(algorithm, HNMF):
        if options:
            raise TypeError(
                f"Options {sorted(options)} were given with an HNMF instance as "
                "algorithm; set them on the instance instead, e.g. "
                "HNMF(n_components=4, loss='kl')."
            )
        if output_dimension is not None and algorithm.n_components not in (None,
                                                                           output_dimension):
            raise ValueError(
                f"output_dimension={output_dimension} disagrees with the HNMF "
                f"instance's n_components={algorithm.n_components}; give one of them."
            )
        estimator = _copy_estimator(algorithm)
        if estimator.n_components is None:
            estimator.set_params(n_components=output_dimension)
    else:
        show_progressbar = _show_progressbar(options.pop("show_progressbar", None))
        unknown = sorted(set(options) - set(ESTIMATOR_OPTIONS))
        if unknown:
            raise TypeError(
                f"Unknown option(s) {unknown} for algorithm='hnmf'. Valid options are "
                f"{', '.join(ESTIMATOR_OPTIONS)}."
            )
        estimator = HNMF(n_components=output_dimension, show_progressbar=show_progressbar,
                         **options)
    if signal is not None:
        _check_given_grids(estimator, signal)
    if signal is not None and (estimator.constraints is not None or estimator.groups is not None):
        from ..constraints import signal_grids

        navigation, sig = signal_grids(signal)
        if estimator.navigation_grid is None:
            estimator.navigation_grid = navigation
        if estimator.signal_grid is None:
            estimator.signal_grid = sig
    if signal is not None and estimator.outliers is not None and estimator.signal_grid is None:
        from ..constraints import signal_grids

        estimator.signal_grid = signal_grids(signal)[1]  # neighbours of the channel rule
    estimator._validate_params()
    return estimator


def _copy_estimator(estimator):
    """A new, unfitted estimator with the parameters of ``estimator`` (scikit-learn's ``clone``).

    The parameters are shared, not copied: the adapter only replaces some
    of them (the grids, ``n_components``) on the copy.

    Examples
    --------
    >>> model = HNMF(loss="kl")
    >>> copy = _copy_estimator(model)
    >>> copy is model, copy.get_params() == model.get_params()
    (False, True)
    """
    return type(estimator)(**estimator.get_params(deep=False))


def _adopt_fit(estimator, fitted):
    """Give ``estimator`` the fitted state of its copy ``fitted``; its parameters stay as given.

    HyperSpy fits an estimator passed as ``algorithm`` in place; the user's
    :class:`HNMF` is fitted the same way, but its parameters (grids,
    ``n_components``) are the user's, not those this call resolved for the
    signal (they are in ``spec_``), so the instance can decompose another
    signal.
    """
    parameters = set(estimator.get_params(deep=False))
    vars(estimator).update({name: value for name, value in vars(fitted).items()
                            if name not in parameters})


def _fitted_estimator(algorithm, estimator):
    """What ``return_info=True`` returns: the user's instance, fitted, or the built estimator."""
    if isinstance(algorithm, HNMF):
        _adopt_fit(algorithm, estimator)
        return algorithm
    return estimator


def _grid_shape_text(shape, names):
    """``(6, 8) (y, x)``: a grid shape with the names of the axes, in array order."""
    return f"{tuple(shape)} ({', '.join(names)})" if names else f"{tuple(shape)}"


def _check_given_grids(estimator, signal):
    """Refuse a ``navigation_grid`` or ``signal_grid`` whose shape is not that of the axes.

    A grid given for a signal must have the shape of its navigation (or
    signal) axes in array order; a transposed one, or another shape with as
    many pixels, would reshape the maps or components wrongly without an
    error. Its calibration (scale, units) may differ from the axes'.
    """
    from ..constraints import Grid, signal_grids

    am = signal.axes_manager
    for name, side, given, expected, axes in zip(
            ("navigation_grid", "signal_grid"), ("navigation", "signal"),
            (estimator.navigation_grid, estimator.signal_grid), signal_grids(signal),
            (am.navigation_axes, am.signal_axes)):
        if given is None:
            continue
        try:
            shape = (given if isinstance(given, Grid) else Grid(tuple(given))).shape
        except TypeError:
            raise ValueError(f"{name} must be a Grid or a tuple of axis sizes, got "
                             f"{given!r}.") from None
        names = [axis.name for axis in axes[::-1]]
        names = names if all(isinstance(n, str) and n for n in names) else []
        if expected is None:
            raise ValueError(
                f"{name} has shape {shape}, but the signal has no {side} axes; leave "
                f"{name} out.")
        if shape != expected.shape:
            hint = (" (transposed? HyperSpy lists the axes in the other order, as in "
                    f"axes_manager.{side}_shape)" if sorted(shape) == sorted(expected.shape)
                    else "")
            raise ValueError(
                f"{name} has shape {shape}, but the signal's {side} axes give "
                f"{_grid_shape_text(expected.shape, names)} in array order{hint}. Give "
                f"{name}=Grid({expected.shape}, scale, units), or leave it out: the axes give "
                "the grid and its calibration.")


def _check_constraint_combinations(estimator, arguments):
    """Refuse HyperSpy options that would break the constraints' geometry; fit grids to masks.

    With ``navigation_mask`` the fitted maps hold the kept probe positions
    only, with ``signal_mask`` the components the kept pixels only: they no
    longer fill the scan or detector grid. Projections that reshape the
    masked factor (MapResolution, ContinuousIntensity, a Projection) are
    refused; penalties act entry by entry and apply to what is kept, so the
    masked side's grid is left out of the fit (``estimator`` is this call's
    own copy). The outliers' channel rule then takes the kept channels as
    neighbours along a line.
    """
    if estimator.constraints is not None or estimator.groups is not None:
        if arguments["normalize_poissonian_noise"]:
            raise ValueError(
                "normalize_poissonian_noise=True cannot be combined with constraints: the "
                "weighting would reshape the maps and components the constraints act on. "
                "For counted data use loss='kl' instead.")
        plan = estimator._validate_params().plan
        for mask, side, name in (() if plan is None else
                                 (("navigation_mask", plan.maps, "maps"),
                                  ("signal_mask", plan.components, "components"))):
            if arguments[mask] is not None and side.projections:
                raise ValueError(
                    f"{mask} cannot be combined with constraints that reshape the {name} "
                    f"({', '.join(label for _, _, label in side.projections)}): the masked "
                    f"{name} would no longer fill the grid. Crop the signal instead "
                    "(s.inav[...] / s.isig[...]); penalties (Penalty) can be combined with "
                    f"{mask}.")
    for mask, grid in (("navigation_mask", "navigation_grid"), ("signal_mask", "signal_grid")):
        if arguments[mask] is not None:
            setattr(estimator, grid, None)


def exposed_rank(estimator):
    """Number of components the estimator puts in ``learning_results`` (None if unknown).

    Examples
    --------
    >>> exposed_rank(HNMF([12, 6, 3], level=2)), exposed_rank(HNMF(4))
    (6, 4)
    """
    k = estimator.n_components
    if estimator._kind == "layers":
        return int(k[(estimator.level or 1) - 1])
    return k


@contextlib.contextmanager
def _keeping_data(signal, normalize):
    """Give ``signal.data`` back bit for bit after HyperSpy's Poisson normalization.

    HyperSpy's ``decomposition`` divides the data in place by the Poisson
    weights and multiplies them back afterwards, which leaves rounding
    errors in a few percent of the entries (counts are then no longer
    integers, and ``loss="auto"`` would choose another loss next time). With
    ``normalize``, the data are copied first and written back when the call
    ends, whether it succeeded, failed or was interrupted.
    """
    if not normalize:
        yield
        return
    backup = np.array(signal.data, copy=True)
    try:
        yield
    finally:
        if signal.data.shape == backup.shape and signal.data.dtype == backup.dtype:
            np.copyto(signal.data, backup)
        else:
            signal.data = backup


def _check_size(estimator, n_nav, n_sig, after=""):
    """The number of components (or leaves) against the probe positions and pixels."""
    output_dimension = estimator.n_components
    kind = estimator._kind
    if kind == "tree":
        if output_dimension > n_nav:
            raise ValueError(
                f"A tree with {output_dimension} leaves needs at least as many probe "
                f"positions, but there are {n_nav}{after}. Ask for at most "
                f"{n_nav} leaves."
            )
        return
    largest = output_dimension[0] if kind == "layers" else output_dimension
    limit = min(n_nav, n_sig)
    if largest >= limit:
        raise ValueError(
            f"output_dimension={largest} is too large: it must be smaller than "
            f"min(navigation size, signal size) = min({n_nav}, {n_sig}) = {limit}{after}."
        )


def _check_output_dimension(estimator):
    """``output_dimension`` is required (HyperSpy's default None means "all components")."""
    if estimator.n_components is None:
        raise ValueError(
            "algorithm='hnmf' needs the number of components: pass "
            "output_dimension=k (e.g. s.decomposition(algorithm='hnmf', "
            "output_dimension=4))."
        )


def _kept(mask, size):
    """Boolean array of kept positions (HyperSpy masks are True where excluded)."""
    return np.ones(size, dtype=bool) if mask is None else ~mask


def _flat_masks(signal, navigation_mask, signal_mask):
    """Masks flattened exactly as HyperSpy's decomposition flattens them."""
    from hyperspy.learn._mva import _to_flat_bool
    from hyperspy.signal import BaseSignal

    signal._check_navigation_mask(navigation_mask)
    signal._check_signal_mask(signal_mask)
    if navigation_mask is not None and not isinstance(navigation_mask, BaseSignal):
        navigation_mask = np.asarray(navigation_mask).T
    return _to_flat_bool(navigation_mask), _to_flat_bool(signal_mask)


def _check_signal_data(signal, nav_keep, sig_keep, clip_negative):
    """Finite, nonnegative, not all zero: checked in blocks over the kept data.

    Returns the total of the kept data (negative values clipped as the fit
    will clip them), for the explained intensity ratio.
    """
    am = signal.axes_manager
    n_nav, n_sig = am.navigation_size, am.signal_size
    if am.axes_are_aligned_with_data:
        rows = signal.data.reshape(n_nav, n_sig)
    else:
        # Masks follow the navigation-first layout; check every element instead.
        rows = signal.data.reshape(1, -1)
        nav_keep, sig_keep = np.ones(1, dtype=bool), np.ones(rows.shape[1], dtype=bool)
    every_column = bool(sig_keep.all())
    maximum = total = 0.0
    for block in row_blocks(*rows.shape):
        keep = nav_keep[block]
        if not keep.any():
            continue
        values = rows[block] if keep.all() else rows[block][keep]
        if not every_column:
            values = values[:, sig_keep]
        check_finite(values, name="The data")
        if not clip_negative:
            check_nonnegative(values, name="the signal", where="decomposition(algorithm='hnmf')",
                              clip_option=True)
        maximum = max(maximum, float(values.max(initial=0)))
        total += float(np.sum(np.maximum(values, 0), dtype=np.float64))
    if maximum <= 0:
        check_not_all_zero(np.zeros(1), name="The (unmasked) data")
    return total


def _validate_call(signal, arguments, estimator):
    """Every check on the signal and HyperSpy keywords, before any change."""
    kind = estimator._kind
    signal._validate_decomposition_inputs(
        exposed_rank(estimator), arguments["centre"], arguments["reproject"]
    )
    _check_output_dimension(estimator)
    _check_centre(arguments)
    if arguments["reproject"] in ("signal", "both"):
        raise ValueError(
            f"reproject={arguments['reproject']!r} is not available with algorithm='hnmf': "
            "HyperSpy reprojects only the maps of an estimator's fit (it would skip the "
            "components with a warning). Use reproject='navigation' to recompute every "
            "probe position's maps, masked ones included, for the fitted components.")
    nav_mask, sig_mask = _flat_masks(
        signal, arguments["navigation_mask"], arguments["signal_mask"]
    )
    nav_keep = _kept(nav_mask, signal.axes_manager.navigation_size)
    sig_keep = _kept(sig_mask, signal.axes_manager.signal_size)
    n_nav, n_sig = int(nav_keep.sum()), int(sig_keep.sum())
    if n_nav == 0 or n_sig == 0:
        raise ValueError("All the data are masked, change the mask.")
    _check_size(estimator, n_nav, n_sig, " (after masking)")
    if kind != "flat" and arguments["normalize_poissonian_noise"]:
        raise ValueError(
            "normalize_poissonian_noise=True is not supported with hierarchical "
            "decompositions: the levels would be weighted inconsistently. For counted "
            "data use loss='kl' instead."
        )
    total = _check_signal_data(signal, nav_keep, sig_keep, estimator.clip_negative)
    return nav_mask, sig_mask, total


def _reorder_results(results, nav_mask, sig_mask):
    """Put HyperSpy's rescaled results back into the package's canonical order."""
    rows_nav = slice(None) if nav_mask is None else ~nav_mask
    rows_sig = slice(None) if sig_mask is None else ~sig_mask
    loadings, factors = results.loadings, results.factors
    W, H, order = canonical_order(loadings[rows_nav], factors[rows_sig].T)
    loadings = loadings[:, order]
    factors = factors[:, order]
    loadings[rows_nav] = W
    factors[rows_sig] = H.T
    results.loadings, results.factors = loadings, factors


def _fit_info(estimator):
    """What to store with the results: simple types only, so save/load keeps it."""
    init = estimator.init if isinstance(estimator.init, str) else "user arrays"
    random_state = estimator.random_state
    return {
        # The loss as the user named it, or as loss="auto" resolved it.
        "loss": (estimator.loss_ if is_auto_loss(estimator.loss)
                 else estimator.loss if isinstance(estimator.loss, str)
                 else float(estimator.loss)),
        "loss_requested": (estimator.loss if isinstance(estimator.loss, str)
                           else float(estimator.loss)),
        "beta": float(estimator._beta),
        "solver": estimator._solver,
        "init": init,
        "max_iter": int(estimator.max_iter),
        "tol": float(estimator.tol),
        "random_state": random_state if isinstance(random_state, int) else repr(random_state),
        "n_restarts": int(estimator.n_restarts),
        "n_iter": int(estimator.n_iter_),
        "converged": bool(estimator.converged_),
        "reconstruction_error": float(estimator.reconstruction_err_),
        "objective_history": np.asarray(estimator.objective_history_),
        "restart_objectives": np.asarray(estimator.restart_objectives_),
        "hierarchy": _hierarchy_info(estimator),
        "constraints": _constraint_info(estimator),
    }


def _constraint_info(estimator):
    """The constraints' summary and metrics (numbers and arrays only)."""
    metrics = dict(getattr(estimator, "constraint_metrics_", {}))
    summary = metrics.pop("constraints", [])
    info = {"summary": "\n".join(summary)}
    info.update({name: np.asarray(value) if isinstance(value, np.ndarray) else float(value)
                 for name, value in metrics.items()})
    return info


def _constraint_lines(info):
    """print_info lines for the constraints and their metrics."""
    constraints = info.get("constraints") or {}
    if not constraints.get("summary"):
        return []
    lines = ["  constraints:"] + [f"    {line}" for line in constraints["summary"].split("\n")]
    # (lengths per axis; one number in results saved before they were)
    if "dip_score" in constraints:
        scores = ", ".join(f"{v:.3f}" for v in np.atleast_1d(constraints["dip_score"]))
        width = _pixels_text(np.atleast_1d(constraints["dip_width_pixels"]))
        lines.append(f"  dip score per component (width {width} px): {scores}")
    if "out_of_band_fraction" in constraints:
        fractions = ", ".join(f"{v:.2e}" for v in np.atleast_1d(constraints["out_of_band_fraction"]))
        resolution = _pixels_text(np.atleast_1d(constraints["map_resolution_pixels"]))
        lines.append(f"  map energy beyond the resolution ({resolution} px) per map: "
                     f"{fractions}")
    return lines


def _hierarchy_info(estimator):
    """The hierarchy as nested dicts of arrays and numbers (saved with the signal)."""
    kind = estimator._kind
    if kind == "flat":
        return {"kind": "flat"}
    if kind == "tree":
        return {"kind": "tree", "tree": estimator.hierarchy_.to_dict()}
    result = estimator.hierarchy_
    return {
        "kind": "layers",
        "ranks": np.asarray(result.ranks),
        "level": int(estimator.level or 1),
        "maps": {str(i + 1): W for i, W in enumerate(result.W)},
        "components": {str(i + 1): H for i, H in enumerate(result.H)},
        "mixing": {str(i + 2): M for i, M in enumerate(result.M)},
        "errors": np.asarray(result.errors),
        "greedy_errors": np.asarray(result.greedy_errors),
        "fine_tune_objective": np.asarray(result.fine_tune_objective),
    }


def _check_centre(arguments):
    if arguments["centre"] is not None:
        raise ValueError(
            f"centre={arguments['centre']!r} is not possible with algorithm='hnmf': "
            "centring makes the data negative, and NMF needs nonnegative data. "
            "Use centre=None."
        )


def _check_probe_positions(signal):
    """At least two probe positions, for signals in memory and lazy ones alike.

    HyperSpy refuses one position in memory with its own message; a lazy
    signal would reach the check of ``output_dimension`` instead, and a
    signal without navigation axes another error: all get this one.
    """
    am = signal.axes_manager
    if am.navigation_dimension and am.navigation_size >= 2:
        return
    what = (f"one (navigation shape {am.navigation_shape})" if am.navigation_dimension
            else "one: it has no navigation axes")
    raise ValueError(
        f"decomposition(algorithm='hnmf') needs at least two probe positions (NMF fits fewer "
        f"components than positions), but this signal has {what}. Decompose a signal of "
        "several positions, e.g. hs.stack([s1, s2, ...]) of spectra or patterns.")


def _hnmf_decomposition(signal, original, arguments, options):
    _check_probe_positions(signal)
    known = options.pop("known_components", None)
    regions = options.pop("pure_regions", None)
    if known or regions:
        return _known_decomposition(signal, arguments, options, list(known or []),
                                    list(regions or []))
    estimator = _build_estimator(arguments["algorithm"], arguments["output_dimension"], options,
                                 signal)
    check_real(signal.data.dtype, "decomposition(algorithm='hnmf')")
    if signal._lazy or _held_counts(signal, estimator):
        return _lazy_decomposition(signal, estimator, arguments)
    nav_mask, sig_mask, total = _validate_call(signal, arguments, estimator)
    _check_constraint_combinations(estimator, arguments)
    normalize = arguments["normalize_poissonian_noise"]
    if normalize and loss_is_poisson(estimator, signal.data):
        warnings.warn(
            "The Kullback-Leibler loss already models Poisson noise; "
            "normalize_poissonian_noise=True would distort it and is ignored.",
            UserWarning,
            stacklevel=4,
        )
        normalize = False
    with _keeping_previous_results(signal), _keeping_data(signal, normalize):
        original(
            signal,
            normalize_poissonian_noise=normalize,
            algorithm=estimator,
            output_dimension=exposed_rank(estimator),
            navigation_mask=arguments["navigation_mask"],
            signal_mask=arguments["signal_mask"],
            reproject=arguments["reproject"],
            return_info=True,
            print_info=False,
        )
        results = signal.learning_results
        # (HyperSpy keeps the masks of an earlier call when this one passes none)
        for name in ("navigation_mask", "signal_mask"):
            if arguments[name] is None:
                setattr(results, name, None)
        if normalize:
            _reorder_results(results, nav_mask, sig_mask)
        results.decomposition_algorithm = ALGORITHM_NAME
        results.output_dimension = int(estimator.n_components_)
        _store_explained_intensity(results, nav_mask, sig_mask, total)
        results.hnmf = _fit_info(estimator)
        if estimator.outliers_ is not None:
            results.hnmf["outliers"] = outlier_info(
                estimator.outliers_, nav_mask, sig_mask, signal.axes_manager.navigation_size,
                signal.axes_manager.signal_size)
        stamp_results(results)
    if arguments["print_info"]:
        _print_info(results.hnmf, normalize, estimator)
    fitted = _fitted_estimator(arguments["algorithm"], estimator)
    return fitted if arguments["return_info"] else None


#: Options of ``decomposition(algorithm="hnmf")`` that a fit with known components takes.
KNOWN_OPTIONS = ("loss", "init", "max_iter", "tol", "random_state", "constraints", "groups",
                 "show_progressbar")


def _known_decomposition(signal, arguments, options, known, regions):
    """``known_components`` / ``pure_regions``: a joint fit of one signal (one block).

    Everything is checked before the fit; the results are stored as any
    ``algorithm="hnmf"`` decomposition, with the known components' residual
    checks in ``learning_results.hnmf["known_components"]``.
    """
    what = "known_components/pure_regions"
    if isinstance(arguments["algorithm"], HNMF):
        raise TypeError(f"{what} need algorithm='hnmf' with keyword options, not an HNMF "
                        "instance.")
    k = arguments["output_dimension"]
    if isinstance(options.get("hierarchy"), str) or isinstance(k, (list, tuple, np.ndarray)):
        raise ValueError(
            f"{what} work with a flat decomposition (one integer output_dimension); "
            "hierarchies (output_dimension=[...], hierarchy='layers' or 'tree') do not take "
            "them. Fit the hierarchy without them, or a flat decomposition with them.")
    options.pop("hierarchy", None)
    if options.get("solver", "auto") not in ("auto", "mu"):
        raise ValueError(f"{what} are fitted by multiplicative updates; solver="
                         f"{options['solver']!r} does not take them (use solver='auto' or 'mu').")
    options.pop("solver", None)
    if options.get("n_restarts", 1) != 1:
        raise ValueError(f"{what} take one start (n_restarts=1); the default init='spa' "
                         "picks the purest probe positions.")
    options.pop("n_restarts", None)
    unknown = sorted(set(options) - set(KNOWN_OPTIONS))
    if unknown:
        raise TypeError(f"Option(s) {unknown} cannot be combined with {what}. Valid options "
                        f"are {', '.join(KNOWN_OPTIONS)}.")
    options.pop("show_progressbar", None)
    if k is None:
        raise ValueError("algorithm='hnmf' needs the number of components: pass "
                         "output_dimension=k.")
    _check_centre(arguments)
    unsupported = [name for name in ("navigation_mask", "signal_mask")
                   if arguments[name] is not None]
    if arguments["normalize_poissonian_noise"]:
        unsupported.append("normalize_poissonian_noise=True")
    if arguments["reproject"] not in (None, False):
        unsupported.append(f"reproject={arguments['reproject']!r}")
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)} cannot be combined with {what}. Crop the "
                         "signal (s.inav[...], s.isig[...]) instead of masking; counted data "
                         "need no normalization (loss='auto' picks the Poisson loss 'kl').")
    check_real(signal.data.dtype, "decomposition(algorithm='hnmf')")
    if not signal._lazy:
        n_nav, n_sig = signal.axes_manager.navigation_size, signal.axes_manager.signal_size
        _check_signal_data(signal, np.ones(n_nav, dtype=bool), np.ones(n_sig, dtype=bool),
                           False)
    options.setdefault("init", "spa")
    result = fit_signals([signal], int(k), known_components=known, pure_regions=regions,
                         **options)
    loadings, components = result.block_factors(0)
    info = {
        "loss": "kl" if result.betas[0] == 1 else "frobenius",
        "loss_requested": str(options.get("loss", "auto")),
        "beta": float(result.betas[0]),
        "solver": "mu",
        "init": options["init"] if isinstance(options["init"], str) else "user arrays",
        "n_iter": int(result.n_iter),
        "converged": bool(result.converged),
        "reconstruction_error": float(result.divergences[0]),
        "objective_history": np.asarray(result.objective),
        "hierarchy": {"kind": "flat"},
        "constraints": {"summary": ""},
        "known_components": known_info(result.known_checks),
        "pure_regions": {str(i): {"index": region.index,
                                  "positions": region.rows(result.W.shape[0])}
                         for i, region in enumerate(regions)},
    }
    store_decomposition(signal, np.ascontiguousarray(components.T),
                        np.ascontiguousarray(loadings), ALGORITHM_NAME, info)
    if arguments["print_info"]:
        print("\n".join([
            "Decomposition info:",
            f"  algorithm={ALGORITHM_NAME} with {len(known)} known component(s) and "
            f"{len(regions)} pure region(s)",
            f"  output_dimension={int(k)}",
            f"  loss={info['loss']}, solver=mu, init={info['init']}",
            f"  iterations={info['n_iter']} (converged={info['converged']}), "
            f"divergence={info['reconstruction_error']:.6g}"]
            + [f"  {line}" for line in check_lines(result.known_checks)]))
    return result if arguments["return_info"] else None


def _held_counts(signal, estimator):
    """Whether an in-memory signal holds integer counts that the fit reads in place.

    HyperSpy's own ``decomposition`` takes floating-point data only, so
    counts held in memory would need a float copy of the whole signal
    (``s.change_dtype``). The estimator reads them in place instead, in
    passes, as it reads a lazy signal (:func:`~hyperspy_hnmf.matrix.held_matrix`),
    whenever passes run the fit (see :func:`~hyperspy_hnmf.solvers._reads_in_passes`);
    other fits of integer data get the error below.
    """
    if signal._lazy or signal.data.dtype.kind not in "ui":
        return False
    if solvers._passes_run(signal.data, estimator.loss, estimator.solver, estimator.init):
        return True
    raise TypeError(
        f"decomposition(algorithm='hnmf') reads integer counts held in memory in place for "
        f"the Frobenius and Kullback-Leibler losses with init other than 'spa'; this call "
        f"asks for loss={estimator.loss!r}, init={estimator.init!r} on {signal.data.dtype} "
        "data. Convert the data first with s.change_dtype('float32') (float32 is exact for "
        "counts up to 2**24), or change those options. No decomposition was performed.")


def _lazy_decomposition(signal, estimator, arguments):
    """Decompose a lazy signal, or integer counts held in memory, chunk by chunk.

    Results land in ``learning_results``. Integer counts held in memory
    are read in place (:func:`~hyperspy_hnmf.matrix.held_matrix`), never
    converted whole. Everything that can be checked without reading the
    data is checked first; bad values found while streaming raise before
    anything is stored.
    """
    from ..matrix import StreamedMatrix, as_row_chunks, held_matrix
    from ..solvers._init import poisson_scales

    _check_output_dimension(estimator)
    _check_centre(arguments)
    unsupported = [name for name in ("navigation_mask", "signal_mask")
                   if arguments[name] is not None]
    if arguments["normalize_poissonian_noise"] and estimator._kind != "flat":
        unsupported.append("normalize_poissonian_noise=True with a hierarchy")
    if arguments["reproject"] not in (None, False):
        unsupported.append(f"reproject={arguments['reproject']!r}")
    if unsupported:
        where, convert = "lazy signals", ""
        if not signal._lazy:
            where = (f"integer counts held in memory ({signal.data.dtype}, read in place in "
                     "passes, as lazy signals are)")
            convert = (" To use them on this signal, convert it first with "
                       "s.change_dtype('float32').")
        raise ValueError(
            f"{', '.join(unsupported)} is not supported with algorithm='hnmf' on {where}. "
            "Crop the signal (s.inav[...], s.isig[...]) instead of masking; for counted data "
            f"use loss='kl' instead of Poisson normalization.{convert}")
    if not signal.axes_manager.axes_are_aligned_with_data:
        raise ValueError("The signal's axes are not in data order; call s.transpose() so that "
                         "the navigation axes come first.")
    n_nav = signal.axes_manager.navigation_size  # ≥ 2 (_check_probe_positions)
    n_sig = max(signal.axes_manager.signal_size, 1)
    _check_size(estimator, n_nav, n_sig)
    if signal._lazy:
        data = as_row_chunks(signal.data, signal.axes_manager.signal_dimension)
    else:
        data = held_matrix(signal.data.reshape(n_nav, n_sig))
    normalize = bool(arguments["normalize_poissonian_noise"])
    if normalize and loss_is_poisson(estimator, data):
        warnings.warn(
            "The Kullback-Leibler loss already models Poisson noise; "
            "normalize_poissonian_noise=True would distort it and is ignored.",
            UserWarning, stacklevel=4)
        normalize = False
    _check_constraint_combinations(estimator, arguments)
    factors = None
    if normalize:
        # Keenan & Kotula's weighting, as HyperSpy's: the fit sees
        # X / outer(a, b), read chunk by chunk (one pass for the sums); the
        # results are scaled back.
        matrix = data if isinstance(data, StreamedMatrix) else StreamedMatrix(data)
        row_scale, column_scale = poisson_scales(matrix, relative=False)  # HyperSpy's weights
        loadings = estimator.fit_transform(matrix.scaled(row_scale, column_scale))
        loadings = loadings * row_scale[:, None].astype(loadings.dtype)
        factors = estimator.components_.T * column_scale[:, None].astype(loadings.dtype)
        loadings, components, _ = canonical_order(loadings, np.ascontiguousarray(factors.T))
        factors = np.ascontiguousarray(components.T)
        total = matrix.sum()  # known from the pass of the weights: no extra pass
        ratio = explained_intensity(loadings, components) / max(total, np.finfo(float).tiny)
    else:
        loadings = estimator.fit_transform(data)
        factors = np.ascontiguousarray(estimator.components_.T)
        ratio = estimator.explained_intensity_ratio_
    info = _fit_info(estimator)
    info["passes"] = int(estimator.passes_)
    if estimator.outliers_ is not None:
        info["outliers"] = outlier_info(estimator.outliers_)
    store_decomposition(signal, factors, loadings, ALGORITHM_NAME, info,
                        explained_intensity_ratio=ratio,
                        poissonian_noise_normalized=normalize)
    if arguments["print_info"]:
        _print_info(info, normalize, estimator)
    fitted = _fitted_estimator(arguments["algorithm"], estimator)
    return fitted if arguments["return_info"] else None


def _store_explained_intensity(results, nav_mask, sig_mask, total):
    """HyperSpy's explained variance, the NMF way: each component's share of the intensity.

    ``explained_variance`` holds the total intensity of each component in
    the model (``loadings[:, j].sum() * factors[:, j].sum()``, over the
    unmasked positions and pixels, in the data's units even after Poisson
    normalization) and ``explained_variance_ratio`` its fraction of the
    unmasked data's total intensity, so ``plot_explained_variance_ratio()``
    and ``plot_scree_plot()`` show how much of the counts each component
    explains (decreasing, in the package's component order).
    """
    rows_nav = slice(None) if nav_mask is None else ~nav_mask
    rows_sig = slice(None) if sig_mask is None else ~sig_mask
    intensity = explained_intensity(results.loadings[rows_nav], results.factors[rows_sig].T)
    results.explained_variance = intensity
    results.explained_variance_ratio = intensity / max(total, np.finfo(float).tiny)
    results.number_significant_components = None


def _print_info(info, normalize, estimator):
    lines = [
        "Decomposition info:",
        f"  normalize_poissonian_noise={normalize}",
        f"  algorithm={ALGORITHM_NAME}",
        f"  output_dimension={estimator.n_components}",
        f"  loss={info['loss']} (beta={info['beta']:g}"
        + (", chosen by loss='auto': the data are "
           + ("integer counts" if info["beta"] == 1 else "not integer counts")
           if info.get("loss_requested") == "auto" else "")
        + f"), solver={info['solver']}, "
        f"init={info['init']}",
        f"  iterations={info['n_iter']} (converged={info['converged']}), "
        f"reconstruction error={info['reconstruction_error']:.6g}",
    ]
    if "passes" in info:
        lines.append(f"  passes over the data={info['passes']}")
    lines += _constraint_lines(info)
    if outlier_line(info):
        lines.append(outlier_line(info))
    print("\n".join(lines))


def loss_is_poisson(estimator, data=None):
    """Whether the estimator's loss is (or, with ``"auto"``, resolves to) the KL divergence.

    Examples
    --------
    >>> loss_is_poisson(HNMF(loss="kl")), loss_is_poisson(HNMF(loss="frobenius"))
    (True, False)
    >>> loss_is_poisson(HNMF(), np.arange(4).reshape(2, 2))
    True
    """
    from .._checks import resolve_loss

    return resolve_loss(estimator.loss, data, estimator.solver) == 1.0


def _wrap_decomposition(original):
    """``decomposition`` that handles ``algorithm="hnmf"`` and delegates the rest."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def decomposition(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        if not is_hnmf_algorithm(arguments["algorithm"]):
            result = original(self, *args, **kwargs)
            # Only after HyperSpy's own run succeeded: a failed one keeps
            # everything (and the accessors check the stamp anyway).
            clear_results(self)
            return result
        options = arguments.pop("kwargs", {})
        return _hnmf_decomposition(self, original, arguments, options)

    decomposition._hnmf_original = original
    decomposition.__doc__ = (original.__doc__ or "") + _DOC_NOTE
    return decomposition


def _signal_classes():
    from hyperspy._signals.lazy import LazySignal
    from hyperspy.learn._mva import MVA

    return (MVA, LazySignal)


def register():
    """Make ``algorithm="hnmf"`` available in ``decomposition`` (idempotent).

    Called on ``import hyperspy_hnmf``; calling it again changes nothing.
    Also makes ``learning_results.load`` read ``learning_results.hnmf`` back
    (:func:`~hyperspy_hnmf._hyperspy.results.install_results_io`).

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> register()
    >>> hasattr(hs.signals.Signal1D.decomposition, "_hnmf_original")
    True
    """
    for cls in _signal_classes():
        current = cls.__dict__["decomposition"]
        if not hasattr(current, "_hnmf_original"):
            cls.decomposition = _wrap_decomposition(current)
    install_results_io()


def unregister():
    """Restore HyperSpy's own ``decomposition`` and ``learning_results.load``.

    The inverse of :func:`register`.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> unregister()
    >>> hasattr(hs.signals.Signal1D.decomposition, "_hnmf_original")
    False
    >>> register()
    """
    for cls in _signal_classes():
        current = cls.__dict__["decomposition"]
        if hasattr(current, "_hnmf_original"):
            cls.decomposition = current._hnmf_original
    uninstall_results_io()
