"""Array-level NMF solvers: arrays in, arrays out, no HyperSpy.

The data matrix ``X`` (n × m, e.g. probe positions × detector pixels) is
factorized as ``X ≈ W @ H`` with ``W`` (n × k, the maps) and ``H`` (k × m, the
components), both nonnegative. float32 data give float32 factors.

Solvers
-------
``"hals"``
    Accelerated hierarchical alternating least squares (Frobenius loss).
``"mu"``
    Multiplicative updates for any β-divergence (β = 2 Frobenius, 1
    Kullback-Leibler, 0 Itakura-Saito); the KL path works on the nonzeros of
    counted data only.
``"als"``
    Projected alternating least squares with restarts (Frobenius loss).
``"randomized"``
    HALS on a randomized compression of the data, refined by exact HALS
    iterations (Frobenius loss; :func:`hyperspy_hnmf.streaming.randomized_nmf`),
    for data read in passes.
"""

import inspect
import warnings

import numpy as np
import scipy.sparse as sp

from .. import _checks  # noqa: F401  (solvers._checks, as before)
from .._checks import (
    DEFAULT_LOSS,
    LOSSES,
    SOLVER_NAMES,
    check_finite,
    check_nonnegative,
    check_not_all_zero,
    check_real,
    check_zeros_for_beta,
    loss_to_beta,
    overflow_safe_dtype,
    promotion_warning,
    resolve_loss,
    resolve_solver,
)
from .._spec import (DEFAULT_INIT, DEFAULT_MAX_ITER, DEFAULT_N_RESTARTS, DEFAULT_SOLVER,
                     DEFAULT_TOL, resolve_fit)
from ._init import INIT_METHODS, initialize
from ._linalg import as_generator, density, to_csr
from ..matrix import (ArrayMatrix, StreamedMatrix, as_data_matrix, as_streamed, compute_dtype,
                      held_counts, is_chunked, is_sparse)
from ..matrix.compact import CompactChunk
from ..matrix.streamed import float_rows, value_range
from ._loop import FitResult, alternate, canonical_order
from ._fixed_components import kl_maps
from ._bootstrap import (BootstrapResult, PoissonResampler, bootstrap_interval, bootstrap_nmf,
                         match_components)
from ._multiblock import JointResult, joint_nmf, noise_variance
from ._objective import MODEL_FLOOR, beta_divergence
from ._passes import DENSE_KL_DENSITY, MissingEntries, _fit_passes, streaming_nmf
from ._randomized import _fit_randomized, randomized_nmf
from ._robust import Outliers, check_outliers, robust_nmf
from ._updates import MU_FLOOR, hals_sweep, make_update

__all__ = [
    "BootstrapResult",
    "INIT_METHODS",
    "LOSSES",
    "MissingEntries",
    "Outliers",
    "SOLVER_NAMES",
    "FitResult",
    "JointResult",
    "PoissonResampler",
    "beta_divergence",
    "bootstrap_interval",
    "bootstrap_nmf",
    "canonical_order",
    "check_data",
    "check_outliers",
    "joint_nmf",
    "make_update",
    "match_components",
    "nmf",
    "noise_variance",
    "promote_if_overflowing",
    "randomized_nmf",
    "robust_nmf",
    "solve_loadings",
    "streaming_nmf",
]


def check_data(X, where="nmf", beta=2.0):
    """Validate data for NMF: finite, nonnegative, not all zero.

    For β ≤ 0 (Itakura-Saito and below) zeros are not allowed either.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m)
    where : str
        Name of the caller, for the messages.
    beta : float
        β of the loss.

    Examples
    --------
    >>> check_data(np.ones((3, 2)))
    """
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array (samples × features), got {X.ndim}D.")
    check_finite(X)
    check_nonnegative(X, where=where)
    check_not_all_zero(X)
    if beta <= 0:
        has_zero = (X.nnz < X.shape[0] * X.shape[1]) if sp.issparse(X) else (X.min() == 0)
        check_zeros_for_beta(beta, has_zero)


def _as_float_data(X):
    """Float data: float32/float64 as they are, other types by :func:`~hyperspy_hnmf.matrix.compute_dtype`.

    The rule is the one data read in passes follow, so counts (uint8, uint16)
    give float32 factors in memory and out of core alike. pydata ``sparse``
    arrays become CSR (memory ∝ nonzeros).
    """
    if is_sparse(X) and not sp.issparse(X):
        X = to_csr(X)
    if sp.issparse(X):
        X = X.tocsr() if X.format not in ("csr", "csc") else X
    else:
        X = np.asarray(X)
        check_real(X.dtype)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(compute_dtype(X.dtype))
    return promote_if_overflowing(X)


def _reads_in_passes(X, loss=DEFAULT_LOSS, solver=DEFAULT_SOLVER, init=DEFAULT_INIT):
    """Whether a fit reads ``X`` in passes rather than as a float array in memory.

    Data read in passes (dask arrays, :class:`~hyperspy_hnmf.matrix.StreamedMatrix`)
    always are. Integer counts held in memory are read in place, in passes
    (:func:`~hyperspy_hnmf.matrix.held_matrix`: no float copy of the data),
    whenever passes run the fit: the Frobenius or KL loss and an
    initialization other than ``"spa"``. Other fits convert the counts to
    floats, as :func:`~hyperspy_hnmf.matrix.compute_dtype` says.

    Examples
    --------
    >>> counts = np.ones((4, 3), dtype=np.uint16)
    >>> _reads_in_passes(counts), _reads_in_passes(counts, loss="is")
    (True, False)
    >>> _reads_in_passes(counts.astype(np.float32))
    False
    """
    if is_chunked(X):
        return True
    return held_counts(X) and _passes_run(X, loss, solver, init)


def _passes_run(X, loss, solver, init):
    """Whether passes over the data run a flat fit with these options: the Frobenius or
    KL loss (``"auto"`` resolved for ``X``), and an initialization other than ``"spa"``."""
    if isinstance(init, str) and init == "spa":
        return False
    return resolve_loss(loss, X, solver) in (1.0, 2.0)


def _checked_streamed(Xs, beta, stacklevel=3):
    """Data read in passes, checked for a fit: one pass, and float64 if float32 could overflow.

    One pass over the data gives its maximum (all-zero data are refused;
    see also :func:`~hyperspy_hnmf._checks.overflow_safe_dtype`), its minimum
    (zeros are refused for losses with β ≤ 0) and its total intensity. Chunks kept
    in memory by ``Xs`` serve; NaN, infinite or negative values are found
    chunk by chunk by the fit's own passes, with the rows in the message.

    Parameters
    ----------
    Xs : StreamedMatrix
    beta : float
        The fit's β.
    stacklevel : int
        Of the warning given when the data are fitted in float64.

    Returns
    -------
    Xs : StreamedMatrix
        ``Xs``, or the same data and weights in float64.
    total : float
        Sum of the data.

    Examples
    --------
    >>> import dask.array as da
    >>> Xs, total = _checked_streamed(StreamedMatrix(da.ones((4, 3), chunks=2)), 2.0)
    >>> Xs.dtype, total
    (dtype('float64'), 12.0)
    """
    maximum, minimum, total = value_range(Xs)  # sparse chunks too (event data)
    raw = Xs.array
    if maximum == 0:  # (NaN or infinity are reported by the passes, with their rows)
        check_not_all_zero(np.array([maximum]))  # raises, as for data in memory
    check_zeros_for_beta(beta, minimum == 0)
    dtype = compute_dtype(raw.dtype)
    if overflow_safe_dtype(dtype, maximum, raw.shape) == dtype:
        return Xs, total
    warnings.warn(promotion_warning(maximum), UserWarning, stacklevel=stacklevel)
    # The same weights (e.g. Poisson) and resampling.
    return StreamedMatrix(raw.astype(np.float64), Xs.row_scale, Xs.column_scale,
                          perturbation=Xs.perturbation), total


def promote_if_overflowing(X):
    """``X`` in float64 (with a warning) if its float32 products could overflow.

    See :func:`~hyperspy_hnmf._checks.overflow_safe_dtype`: finite float32
    data with a maximum such as 3e19 are fitted in float64 instead of
    ending in NaN; the factors are then float64. float64 data beyond
    float64's range raise ``ValueError``.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of float32 or float64

    Returns
    -------
    ndarray or scipy.sparse matrix

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     promote_if_overflowing(np.full((4, 3), 3e19, dtype=np.float32)).dtype
    dtype('float64')
    >>> promote_if_overflowing(np.ones((4, 3), dtype=np.float32)).dtype
    dtype('float32')
    """
    if X.ndim != 2:
        return X  # refused with its own message by the caller's checks
    values = X.data if sp.issparse(X) else X
    maximum = float(values.max(initial=0))
    if overflow_safe_dtype(X.dtype, maximum, X.shape) == X.dtype:
        return X
    warnings.warn(promotion_warning(maximum), UserWarning, stacklevel=3)
    return X.astype(np.float64)


def nmf(
    X,
    n_components,
    *,
    loss=DEFAULT_LOSS,
    solver=DEFAULT_SOLVER,
    init=DEFAULT_INIT,
    max_iter=DEFAULT_MAX_ITER,
    tol=DEFAULT_TOL,
    random_state=None,
    n_restarts=DEFAULT_N_RESTARTS,
    callback=None,
    constraints=None,
    groups=None,
    map_grid=None,
    component_grid=None,
    **randomized_options,
):
    """Nonnegative matrix factorization ``X ≈ W @ H``, optionally constrained.

    Parameters
    ----------
    X : array-like, scipy.sparse matrix or dask array, shape (n, m), nonnegative
        float32 stays float32; other types become float64, except integer
        counts (uint8, uint16...), which give float32. A dask array (or
        :class:`~hyperspy_hnmf.matrix.StreamedMatrix`) is read chunk by chunk,
        one pass per iteration (β 1 or 2), and never computed whole.
    n_components : int
        Number of components ``k``.
    loss : str or float, default "auto"
        ``"auto"`` (:func:`~hyperspy_hnmf._checks.resolve_loss`: KL for
        integer counts, Frobenius otherwise), ``"frobenius"``,
        ``"kullback-leibler"`` (``"kl"``, the Poisson maximum-likelihood loss
        for counted electrons), ``"itakura-saito"`` (``"is"``) or a real β.
    solver : {"auto", "hals", "mu", "als", "randomized"}, default "auto"
        ``"auto"``: HALS for Frobenius, multiplicative updates otherwise.
        ``"randomized"`` (Frobenius): HALS on a randomized compression, then
        five exact HALS iterations (:func:`hyperspy_hnmf.streaming.randomized_nmf`;
        ``max_iter`` and ``tol`` apply to the compressed solve).
    init : str or tuple, default "nndsvda"
        ``"nndsvd"``, ``"nndsvda"``, ``"nndsvdar"``, ``"spa"``, ``"random"``
        or a tuple ``(W, H)`` of initial arrays (one may be ``None``). For
        losses with β < 2 (KL, counted data) the SVD and SPA initializations
        are computed from Poisson-weighted data (see
        :func:`~hyperspy_hnmf.solvers._init.poisson_scales`).
    max_iter : int, default 200
        Maximum number of iterations per run.
    tol : float, default 1e-4
        Stop when the objective decreases by less than this fraction in one
        iteration.
    random_state : None, int or numpy.random.Generator
        Seed for the randomized SVD of the NNDSVD/SPA initializations, the
        random initialization and the restarts.
    n_restarts : int, default 1
        Number of runs; the first uses ``init``, the others a random
        initialization; the run with the lowest objective is kept (Uesugi et
        al.'s protocol for projected ALS; usable with any solver).
    callback : callable, optional
        ``callback(iteration, objective)`` after every iteration.
    constraints : Constraint, list of Constraint, ConstraintPlan or None
        Domain constraints (:mod:`hyperspy_hnmf.constraints`): map
        resolution, continuous intensity, L1/L2 penalties, user projections.
    groups : dict of str to list of int, optional
        Named disjoint sets of components that constraints refer to.
    map_grid, component_grid : Grid or tuple of int, optional
        Shape (and calibration) of one map (the ``n`` rows, e.g. the scan)
        and of one component (the ``m`` columns, e.g. the detector), for the
        constraints that reshape them.
    **randomized_options
        ``oversampling``, ``power_iterations``, ``refine_passes`` of
        :func:`~hyperspy_hnmf.streaming.randomized_nmf` (``solver="randomized"``).

    Returns
    -------
    FitResult
        ``W``, ``H`` in :func:`canonical_order` (within the blocks of
        components that share constraints), the objective history
        (β-divergence, plus the penalties; Frobenius as
        ``0.5 * ||X - WH||^2``), ``n_iter``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((40, 3)) @ rng.random((3, 30))).astype(np.float32)
    >>> result = nmf(X, 3, max_iter=500, tol=1e-8, random_state=0)
    >>> result.W.dtype, result.H.shape
    (dtype('float32'), (3, 30))
    >>> bool(np.linalg.norm(X - result.W @ result.H) / np.linalg.norm(X) < 1e-3)
    True

    Constrained: maps of a 10 × 8 scan no finer than 4 pixels.

    >>> from hyperspy_hnmf.constraints import MapResolution, out_of_band_fraction
    >>> result = nmf(X + 0.1 * rng.random(X.shape, dtype=np.float32), 3,
    ...              constraints=[MapResolution(4)], map_grid=(10, 4), random_state=0)
    >>> float(out_of_band_fraction(result.W.T.reshape(3, 10, 4), 4).max()) < 1e-3
    True
    """
    options = dict(loss=loss, solver=solver, init=init, max_iter=max_iter, tol=tol,
                   random_state=random_state, n_restarts=n_restarts, callback=callback,
                   constraints=constraints, groups=groups, map_grid=map_grid,
                   component_grid=component_grid, **randomized_options)
    if _reads_in_passes(X, loss, solver, init):  # never computed or converted whole, as by
        Xs = as_streamed(X)  # the estimator (integer counts in memory: read in place)
        check_real(Xs.array.dtype, "nmf")
        spec = _nmf_spec(Xs, n_components, **options)
        return _fit_nmf(_checked_streamed(Xs, spec.beta, stacklevel=3)[0], spec, callback)
    X = _as_float_data(X)
    spec = _nmf_spec(X, n_components, **options)
    check_data(X, beta=spec.beta)
    return _fit_nmf(X, spec, callback)


def _nmf_spec(X, n_components, *, map_grid=None, component_grid=None, **options):
    """The resolved options of :func:`nmf` (its keywords) for the data ``X``: one check.

    For callers that run many fits with the same options (rank selection's
    restarts): resolve once, then vary ``random_state`` with
    :func:`dataclasses.replace` and call :func:`_fit_nmf`.
    """
    known = set(inspect.signature(nmf).parameters) - {"X", "n_components",
                                                      "randomized_options"}
    unknown = sorted(set(options) - known - {"oversampling", "power_iterations",
                                             "refine_passes"})
    if unknown:
        raise TypeError(f"nmf() got an unexpected keyword argument {unknown[0]!r}")
    return resolve_fit(X, n_components, navigation_grid=map_grid, signal_grid=component_grid,
                       **options)


def _fit_nmf(X, spec, callback=None):
    """A flat fit with resolved options (:class:`~hyperspy_hnmf._spec.FitSpec`): no checks.

    ``X`` is checked data: a float array or CSR/CSC matrix, or data read in
    passes (dask array or StreamedMatrix; then ``spec.streamed``). Runs
    ``spec.n_restarts`` fits (the first from ``spec.init``, the others from
    a random start) and keeps the lowest objective; ``solver="randomized"``
    makes one run from the compressed data.
    """
    k, beta, plan = spec.n_components, spec.beta, spec.plan
    rng = as_generator(spec.random_state)
    if spec.streamed:
        Xs = X if isinstance(X, StreamedMatrix) else StreamedMatrix(X)
        if spec.solver == "randomized":
            result = _fit_randomized(Xs, spec, rng, callback)
            result.restart_objectives = [result.divergence]
            return result
        best, all_objectives = None, []
        for restart in range(spec.n_restarts):
            result = _fit_passes(Xs, k, beta, spec.solver,
                                 spec.init if restart == 0 else "random", spec.max_iter,
                                 spec.tol, rng, callback, plan)
            all_objectives.append(result.final_objective)
            if best is None or result.final_objective < best.final_objective:
                best = result
        best.restart_objectives = all_objectives
        return best
    if spec.solver == "randomized":
        result = _fit_randomized(X, spec, rng, callback)
        result.divergence = beta_divergence(X, result.W, result.H, beta)
        return result
    passes = None
    if beta == 1:
        # KL: the fused kernels of data read in passes (the maps' update and the
        # components' statistics in one sweep of the data per iteration), over
        # the array as one chunk, with the iterates of the half-steps. Mostly
        # zero data as CSR (time ∝ nonzeros), once for every restart.
        if not sp.issparse(X):
            # C order once (a Fortran-ordered array would be copied at every pass)
            X = to_csr(X) if density(X) <= DENSE_KL_DENSITY else np.ascontiguousarray(X)
        passes = ArrayMatrix(X)
        X = passes.array  # (CSR with duplicates summed, for the initialization too)
    best = None
    all_objectives = []
    for restart in range(spec.n_restarts):
        start = spec.init if restart == 0 else "random"
        W, H = initialize(X, k, start, rng, poisson_weighted=beta < 2)
        if passes is not None:
            result = _fit_passes(passes, k, beta, spec.solver, None, spec.max_iter, spec.tol,
                                 rng, callback, plan, W=W, H=H)
        else:
            result = alternate(
                X, W, H, make_update(spec.solver, beta),
                max_iter=spec.max_iter, tol=spec.tol, callback=callback, constraints=plan,
            )
        all_objectives.append(result.final_objective)
        if best is None or result.final_objective < best.final_objective:
            best = result
    best.W, best.H, _ = canonical_order(best.W, best.H, plan.blocks if plan else None)
    best.restart_objectives = all_objectives
    best.divergence = beta_divergence(X, best.W, best.H, beta)  # (float64, exact)
    return best


def solve_loadings(X, H, *, loss="frobenius", solver="auto", max_iter=200, tol=1e-4,
                   constraints=None):
    """Maps ``W ≥ 0`` that best explain ``X`` with the components ``H`` fixed.

    The maps of different rows are independent, so data read in passes (a
    dask array or :class:`~hyperspy_hnmf.matrix.StreamedMatrix`) are solved
    chunk by chunk, in one pass, through the same code.

    Parameters
    ----------
    X : array-like, scipy.sparse matrix, dask array or data matrix, shape (n, m), nonnegative
    H : ndarray, shape (k, m)
        Fixed components.
    loss, solver, max_iter, tol
        As in :func:`nmf`.
    constraints : ConstraintPlan, optional
        Its map penalties and projections apply (the components are fixed).
        Map projections act across rows, so they need in-memory data.

    Returns
    -------
    ndarray, shape (n, k)

    Examples
    --------
    >>> H = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    >>> W_true = np.array([[1.0, 2.0], [3.0, 0.0]])
    >>> W = solve_loadings(W_true @ H, H, max_iter=500, tol=1e-12)
    >>> bool(np.allclose(W, W_true, atol=1e-5))
    True
    >>> import dask.array as da
    >>> W = solve_loadings(da.from_array(W_true @ H, chunks=1), H, max_iter=500, tol=1e-12)
    >>> bool(np.allclose(W, W_true, atol=1e-5))
    True
    """
    beta = loss_to_beta(loss)
    solver = resolve_solver(solver, beta)
    projections = constraints is not None and constraints.maps.projections
    if projections and getattr(X, "held_array", None) is not None:
        X = X.held_array  # counts held in memory: projections need every row at once
    if held_counts(X) and not projections and beta in (1.0, 2.0):
        X = as_streamed(X)  # integer counts held in memory: read in place, row chunk by chunk
    if is_chunked(X):
        if projections:
            raise ValueError("Map projections act across probe positions; they cannot be "
                             "applied chunk by chunk. Load the data to use them.")
        data = as_data_matrix(X)
        options = dict(loss=beta, solver=solver, max_iter=max_iter, tol=tol,
                       constraints=constraints)
        H = np.ascontiguousarray(H, dtype=data.dtype)
        return np.concatenate(data.map_chunks(_chunk_loadings, shared=(H, options)))
    X = _as_float_data(X)
    check_finite(X)
    check_nonnegative(X, where="transform")
    H = np.ascontiguousarray(H, dtype=X.dtype)
    W = initialize(X, H.shape[0], (None, H), None, user_init=False)[0]
    if constraints is None or not constraints.maps.projections:
        if beta == 2:
            return _nonnegative_least_squares(X, H, W, constraints, clipped=solver == "als")
        if beta == 1:
            return _kl_loadings(X, H, W, max_iter, tol, constraints)
    if beta != 2 or solver == "mu":
        W = np.maximum(W, max(float(np.mean(W)), 1e-6) * 1e-3).astype(X.dtype)
    result = alternate(
        X, W, H, make_update(solver, beta),
        max_iter=max_iter, tol=tol, update_H=False, constraints=constraints,
    )
    return result.W


#: Sweeps and relative change that end the least-squares maps of :func:`solve_loadings`.
_NNLS_SWEEPS, _NNLS_TOL = 2000, 1e-7


def _nonnegative_least_squares(X, H, W, constraints, clipped=False):
    """Frobenius maps for fixed ``H``: HALS sweeps on one product ``X Hᵀ`` until converged.

    The data are read once; every sweep costs ``O(n k²)``. Each row's maps
    depend on that row alone, so the result does not depend on how the rows
    are split into chunks (up to rounding). ``clipped``: projected ALS's own
    map rule instead (the least-squares maps with negative entries set to
    zero), so that ``transform`` repeats what an ALS fit did.
    """
    Ht = np.ascontiguousarray(H.T)
    XHt = np.asarray(X @ Ht, dtype=np.float64)
    gram = Ht.T.astype(np.float64) @ Ht
    l1 = l2 = None
    if constraints is not None and constraints.maps.has_penalty:
        l1, l2 = constraints.maps.l1, constraints.maps.l2
    A = W.astype(np.float64)
    if clipped:
        make_update("als", 2.0).apply_products(A, XHt, gram, H.shape[1], side=constraints and
                                               constraints.maps)
        return A.astype(X.dtype)
    first = None
    for _ in range(_NNLS_SWEEPS):
        change = hals_sweep(A, XHt, gram, l1, l2)
        if first is None:
            first = change
        if change <= _NNLS_TOL**2 * max(first, np.finfo(float).tiny):
            break
    return A.astype(X.dtype)


def _kl_loadings(X, H, W, max_iter, tol, constraints):
    """KL maps for fixed ``H`` by multiplicative updates, each row stopping on its own.

    A row stops when one update changes its maps by less than ``tol``
    (relative, L1); the others go on. Each row is iterated while it is in
    cache, on its nonzeros or on every entry as its own density decides
    (:func:`~._fixed_components.kl_maps`). Rows never influence each other,
    so from the same start the result does not depend on how the rows are
    split into chunks or stored.
    """
    k = H.shape[0]
    l1 = l2 = np.zeros(k)
    if constraints is not None and constraints.maps.has_penalty:
        l1 = np.asarray(constraints.maps.l1, dtype=np.float64).reshape(k)
        l2 = np.asarray(constraints.maps.l2, dtype=np.float64).reshape(k)
    A = np.maximum(W.astype(np.float64), max(float(np.mean(W)), 1e-6) * 1e-3)
    Hc = np.ascontiguousarray(H, dtype=X.dtype)
    denominator = H.sum(axis=1, dtype=np.float64)
    options = (denominator, l1, l2, int(max_iter), float(tol), MU_FLOOR,
               X.dtype.type(MODEL_FLOOR))
    kl_maps(X, Hc, A, *options)
    return A.astype(X.dtype)


def _chunk_loadings(block, start, H, options):
    """Maps of one chunk of rows for fixed components (rows are independent).

    A dense chunk is solved a row block at a time (:func:`~hyperspy_hnmf.matrix.streamed.float_rows`:
    the float temporaries of one block, not of the chunk); a mostly-zero
    chunk kept in memory as CSR, in one piece.
    """
    if isinstance(block, CompactChunk):
        block = block.csr(H.dtype)
    if is_sparse(block):
        return solve_loadings(block, H, **options)
    return np.concatenate([solve_loadings(values, H, **options)
                           for _, values in float_rows(block, H.dtype, start)])


_chunk_loadings.reads_raw_chunks = True
_chunk_loadings.reads_compact_chunks = True
