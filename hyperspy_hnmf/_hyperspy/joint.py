"""Joint decomposition of signals recorded in the same scan (HyperSpy layer).

The arithmetic is :func:`hyperspy_hnmf.solvers.joint_nmf`; this module reads
the signals' matrices (lazy signals chunk by chunk), passes the navigation
grid to the map constraints, and writes every signal's ``learning_results``.
"""

import numpy as np

from ..constraints import signal_grids
from ..matrix import as_row_chunks
from ..solvers import joint_nmf
from ..solvers._multiblock import check_joint_rank
from .results import check_stamp, store_decomposition

__all__ = ["get_known_component_checks", "joint_decomposition"]


def _matrix(signal):
    n_signal_dims = signal.axes_manager.signal_dimension
    n_nav = int(np.prod(signal.axes_manager.navigation_shape)) or 1
    if signal._lazy:
        return as_row_chunks(signal.data, n_signal_dims)
    return signal.data.reshape(n_nav, -1)


def joint_decomposition(signals, output_dimension, *, loss="auto", weights="noise", init="spa",
                        max_iter=500, tol=1e-6, random_state=None, constraints=None,
                        groups=None, known_components=None, pure_regions=None,
                        print_info=True, return_info=False):
    """Decompose signals of one scan together: shared maps, one set of components each.

    Every signal ``s_b`` is factorized as ``maps @ components_b`` with the
    same maps (up to a scale per component and signal): a 4D-STEM scan and
    the EDS or EELS spectrum image recorded with it. A phase that one
    modality cannot tell from another (same diffraction, different
    chemistry) is separated by the other. See
    :func:`hyperspy_hnmf.solvers.joint_nmf` for the model, the losses and the
    weights.

    Parameters
    ----------
    signals : list of hyperspy signals
        Same navigation shape (probe positions in the same order); any
        signal shapes. Finite, nonnegative data, none all zero (checked
        before the fit; the message names the signal). Lazy signals are
        read chunk by chunk, sparse ones (electron events,
        :func:`hyperspy_hnmf.events_to_signal`) included, and mix with
        signals in memory, which are read in place (a large lazy 4D-STEM
        scan with the EDS map recorded with it).
    output_dimension : int
        Number of components, smaller than the navigation size and than
        the signal sizes summed over the signals.
    loss : "auto", str, or list of str
        Per signal: ``"kl"`` (counts), ``"frobenius"``; ``"auto"``: KL for
        integer-valued data.
    weights : "noise", "balanced" or list of float
        Weight of every signal's loss; ``"noise"`` (default) weights each
        entry by its inverse noise variance (Poisson counts: 1; other data:
        :func:`~hyperspy_hnmf.solvers.noise_variance`). The effective
        contribution of every signal is printed and stored.
    init, max_iter, tol, random_state
        As in :func:`~hyperspy_hnmf.solvers.joint_nmf`.
    constraints : list of Constraint, optional
        Map constraints (``MapResolution`` in the navigation units, map
        ``Penalty``, map ``Projection``), applied to the shared maps.
        Component constraints (``ContinuousIntensity``...) are refused:
        every signal has its own components.
    groups : dict, optional
    known_components : list of KnownComponent, optional
        Components supplied as signals or arrays (``block`` = position of the
        signal in ``signals``), held fixed or within a tolerance.
    pure_regions : list of PureRegion, optional
        Probe positions known to hold one component only.
    print_info : bool, default True
        Print the weights and the contribution of every signal.
    return_info : bool, default False
        Return the :class:`~hyperspy_hnmf.solvers.JointResult`.

    Returns
    -------
    JointResult or None
        The results are stored in every signal's ``learning_results``
        (``decomposition_algorithm = "hnmf_joint"``): the signal's own
        components (each summing to 1) and the shared maps in that signal's
        counts, so ``get_decomposition_model()``, the plotting methods,
        BSS and ``save``/``load`` work as after ``decomposition``.
        ``learning_results.hnmf["joint"]`` holds the weights, contributions
        and divergences.

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.data import synthetic_joint
    >>> dp, eds = synthetic_joint(scan_shape=(12, 12), detector_shape=(16, 16), n_channels=64)
    >>> hyperspy_hnmf.joint_decomposition([dp, eds], 5, max_iter=50, print_info=False)
    >>> dp.learning_results.loadings.shape, eds.learning_results.factors.shape
    ((144, 5), (64, 5))
    >>> sorted(eds.learning_results.hnmf["joint"])[:3]
    ['contributions', 'converged', 'dataset']
    """
    signals = list(signals)
    titles = [str(signal.metadata.General.title) for signal in signals]
    names = [f"signal {b} of joint_decomposition ({title!r})" for b, title in enumerate(titles)]
    result = fit_signals(signals, output_dimension, loss=loss, weights=weights, init=init,
                         max_iter=max_iter, tol=tol, random_state=random_state,
                         constraints=constraints, groups=groups,
                         known_components=known_components, pure_regions=pure_regions,
                         names=names)
    for b, signal in enumerate(signals):
        loadings, components = result.block_factors(b)
        info = {"joint": {
            "dataset": b,
            "titles": titles,
            "losses": ["kl" if beta == 1 else "frobenius" for beta in result.betas],
            "weights": result.weights.tolist(),
            "contributions": result.contributions.tolist(),
            "divergences": result.divergences.tolist(),
            "n_iter": int(result.n_iter),
            "converged": bool(result.converged),
            "known_components": known_info(result.known_checks),
        }}
        store_decomposition(signal, np.ascontiguousarray(components.T),
                            np.ascontiguousarray(loadings), "hnmf_joint", info)
    if print_info:
        print(_summary(result, titles))
    return result if return_info else None


def _summary(result, titles):
    lines = ["Joint decomposition (hnmf_joint): shared maps of "
             f"{result.W.shape[1]} components, {result.n_iter} iterations"
             + ("" if result.converged else " (not converged)"),
             f"{'signal':<40} {'loss':>10} {'weight':>8} {'contribution':>13}"]
    for title, beta, weight, share in zip(titles, result.betas, result.weights,
                                          result.contributions):
        lines.append(f"{title[:40]:<40} {'kl' if beta == 1 else 'frobenius':>10} "
                     f"{weight:>8.3g} {100 * share:>12.1f}%")
    return "\n".join(lines + check_lines(result.known_checks))


def fit_signals(signals, output_dimension, *, constraints=None, known_components=None,
                names=None, **options):
    """:func:`~hyperspy_hnmf.solvers.joint_nmf` of signals that share their probe positions.

    Checks the navigation shapes, the number of components and the known
    components' signal shapes before any fit (:func:`joint_nmf` then checks
    the data, naming the signals by ``names``; default: the signal of
    ``decomposition(algorithm='hnmf')``, the caller with one signal), passes
    the navigation grid to the map constraints. ``options`` go to
    ``joint_nmf``.
    """
    if not signals:
        raise ValueError("Give at least one signal.")
    shape = signals[0].axes_manager.navigation_shape
    for b, signal in enumerate(signals):
        if signal.axes_manager.navigation_shape != shape:
            raise ValueError(
                f"Signals of a joint decomposition share their probe positions: signal 0 has "
                f"navigation shape {shape}, signal {b} {signal.axes_manager.navigation_shape}.")
    check_joint_rank(output_dimension, int(np.prod(shape)) if shape else 1,
                     [signal.axes_manager.signal_size for signal in signals],
                     name="output_dimension", signals=True)
    check_known_shapes(signals, known_components)
    check_region_shapes(signals[0], options.get("pure_regions"))
    if names is None:
        names = (["the signal of decomposition(algorithm='hnmf')"] if len(signals) == 1 else
                 [f"signal {b} of the joint fit" for b in range(len(signals))])
    map_grid = signal_grids(signals[0])[0] if constraints is not None else None
    return joint_nmf([_matrix(signal) for signal in signals], output_dimension,
                     constraints=constraints, map_grid=map_grid,
                     known_components=known_components, names=names, **options)


def _signal_shape(signal):
    """The signal shape in data order (rows, columns), as ``signal.data`` holds it."""
    return tuple(signal.data.shape[signal.axes_manager.navigation_dimension:])


def check_region_shapes(signal, regions):
    """Every :class:`~hyperspy_hnmf.constraints.PureRegion` mask has the scan's shape in data order.

    Index lists and flat masks are checked by their size later; a 2D mask of
    another shape (often the transposed one, on a scan that is not square)
    would label the wrong probe positions.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> from hyperspy_hnmf.constraints import PureRegion
    >>> s = hs.signals.Signal1D(np.ones((3, 4, 5)))
    >>> check_region_shapes(s, [PureRegion(np.zeros((3, 4), bool), index=0)])
    >>> check_region_shapes(s, [PureRegion(np.zeros((4, 3), bool), index=0)])
    Traceback (most recent call last):
    ...
    ValueError: PureRegion(index=0) has a mask of shape (4, 3), but the scan has shape (3, 4) in data order (rows = y, columns = x), as s.data holds it. The mask is transposed: pass mask.T.
    """
    expected = tuple(signal.data.shape[:signal.axes_manager.navigation_dimension])
    for region in regions or []:
        mask = np.asarray(region.positions)
        if mask.dtype != bool or mask.ndim < 2 or mask.shape == expected:
            continue
        hint = " The mask is transposed: pass mask.T." if mask.shape == expected[::-1] else ""
        raise ValueError(
            f"{region!r} has a mask of shape {mask.shape}, but the scan has shape {expected} in "
            f"data order (rows = y, columns = x), as s.data holds it.{hint}")


def check_known_shapes(signals, known):
    """Every known component has the signal shape of the signal it belongs to (or is flat).

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> from hyperspy_hnmf.constraints import KnownComponent
    >>> s = hs.signals.Signal2D(np.ones((3, 4, 5)))
    >>> check_known_shapes([s], [KnownComponent(np.ones(20), index=0)])  # flat is fine
    >>> check_known_shapes([s], [KnownComponent(np.ones((5, 4)), index=0)])
    Traceback (most recent call last):
    ...
    ValueError: KnownComponent(index=0, block=0, tolerance=0, name='known component 0') has a pattern of shape (5, 4), but the signal has signal shape (4, 5) (data order: rows, columns). Give the pattern with the signal's shape, e.g. a signal such as s.inav[0, 0] or a simulated pattern on the same detector.
    """
    for item in known or []:
        if item.block >= len(signals):
            raise ValueError(f"{item!r} names signal {item.block}, but {len(signals)} "
                             f"signal(s) are decomposed; a single signal is block 0.")
        expected = _signal_shape(signals[item.block])
        where = "the signal" if len(signals) == 1 else f"signal {item.block}"
        if tuple(item.shape) not in (expected, (int(np.prod(expected)),)):
            raise ValueError(
                f"{item!r} has a pattern of shape {tuple(item.shape)}, but {where} has "
                f"signal shape {expected} (data order: rows, columns). Give "
                "the pattern with the signal's shape, e.g. a signal such as s.inav[0, 0] or a "
                "simulated pattern on the same detector.")


def known_info(checks):
    """The checks of the known components as a dict keyed by their position (saved with the signal)."""
    return {str(i): dict(check) for i, check in enumerate(checks)}


def check_lines(checks):
    """print_info lines of the known-component checks."""
    lines = []
    for check in checks:
        verdict = "CONTRADICTED" if check["contradicted"] else "consistent"
        lines.append(f"{check['name']} (component {check['index']}): G/df = "
                     f"{check['statistic']:.3g} on {check['df']} df, dispersion "
                     f"{check['dispersion']:.3g}, F = {check['F']:.3g}, p = "
                     f"{check['p_value']:.2g}: {verdict} with the data")
    return lines


def get_known_component_checks(signal):
    """The residual checks of the known components of a signal's decomposition.

    After ``s.decomposition(algorithm="hnmf", known_components=[...])`` or
    :func:`joint_decomposition` with known components, every known component
    was tested against the data (see
    :func:`hyperspy_hnmf.solvers._multiblock.check_known_components`). This returns one
    dict per known component with the test's numbers and ``residual_map``,
    a signal over the scan (calibrated like the navigation axes) of the
    deviance that releasing the component gains at every probe position:
    where the reference fails.

    Parameters
    ----------
    signal : hyperspy signal
        Decomposed by this package with known components.

    Returns
    -------
    list of dict
        ``name``, ``index``, ``statistic`` (``G/df``), ``df``, ``dispersion``,
        ``F``, ``p_value``, ``contradicted``, ``change``, ``residual_map``
        (a HyperSpy signal).

    Examples
    --------
    >>> import hyperspy_hnmf
    >>> from hyperspy_hnmf.constraints import KnownComponent
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16), n_phases=1,
    ...                      n_rotations=1, random_state=0)
    >>> pattern = hyperspy_hnmf.data.get_ground_truth(s).factors[:, 0].reshape(16, 16)
    >>> halo = KnownComponent(pattern, index=0, name="halo")
    >>> s.decomposition(algorithm="hnmf", output_dimension=2, known_components=[halo],
    ...                 max_iter=50, print_info=False)
    >>> checks = get_known_component_checks(s)
    >>> checks[0]["name"], checks[0]["residual_map"].data.shape
    ('halo', (8, 8))
    """
    info = check_stamp(signal)
    stored = info.get("known_components")
    if stored is None:
        stored = info.get("joint", {}).get("known_components")
    if not stored:
        raise ValueError("This signal's decomposition has no known components. Pass "
                         "known_components=[KnownComponent(...)] to decomposition(algorithm="
                         "'hnmf', ...) or joint_decomposition.")
    checks = []
    for key in sorted(stored, key=int):
        check = dict(stored[key])
        image = signal._get_navigation_signal(
            data=np.asarray(check["residual_map"], dtype=np.float64).reshape(
                signal.data.shape[:signal.axes_manager.navigation_dimension]))
        image.metadata.General.title = (f"Deviance gained by releasing {check['name']} "
                                        "(per probe position)")
        check["residual_map"] = image
        checks.append(check)
    return checks
