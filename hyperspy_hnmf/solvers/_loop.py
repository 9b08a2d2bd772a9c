"""The alternating loop shared by every solver, and the final ordering."""

from dataclasses import dataclass, field

import numpy as np

from .._checks import LIKELY_CAUSES, NumericalError


@dataclass
class FitResult:
    """Outcome of one NMF run.

    Attributes
    ----------
    W : ndarray, shape (n, k)
        Maps (HyperSpy's loadings).
    H : ndarray, shape (k, m)
        Components (HyperSpy's factors, transposed).
    objective : ndarray
        Objective after initialization (entry 0) and after every iteration.
    n_iter : int
        Number of iterations run.
    converged : bool
        Whether the relative decrease fell below ``tol`` before ``max_iter``.
    restart_objectives : list of float
        Final objective of every restart (one entry without restarts).
    divergence : float or None
        The final β-divergence evaluated directly (:func:`beta_divergence`),
        set by :func:`~hyperspy_hnmf.solvers.nmf`. The history is computed
        from small products during the iterations, which loses precision
        when float32 data are fitted almost exactly.

    Examples
    --------
    >>> from hyperspy_hnmf.solvers import nmf
    >>> result = nmf(np.eye(3) + 1, 2, random_state=0)
    >>> result.W.shape, bool(result.objective[0] >= result.final_objective)
    ((3, 2), True)
    """

    W: np.ndarray
    H: np.ndarray
    objective: np.ndarray
    n_iter: int
    converged: bool
    restart_objectives: list = field(default_factory=list)
    divergence: float = None

    @property
    def final_objective(self):
        """Objective at the returned factors."""
        return float(self.objective[-1])


def _balance(W, Ht):
    """Rescale columns of ``W`` and ``Ht`` to equal norms (their product is unchanged).

    Values that the rescaling makes subnormal are set to zero: subnormal
    arithmetic would slow the next products down by an order of magnitude.
    """
    norm_w = np.linalg.norm(W, axis=0)
    norm_h = np.linalg.norm(Ht, axis=0)
    usable = (norm_w > 0) & (norm_h > 0)
    scale = np.ones_like(norm_w)
    scale[usable] = np.sqrt(norm_h[usable] / norm_w[usable])
    W *= scale.astype(W.dtype)
    Ht /= scale.astype(Ht.dtype)
    for factor in (W, Ht):
        factor[factor < np.finfo(factor.dtype).tiny] = 0


def rescale(W, Ht, update, constraints=None):
    """Fix the free scale between maps and components after an iteration, in place.

    With penalties on one factor, the other is normalized
    (:meth:`~hyperspy_hnmf.constraints.ConstraintPlan.normalize`); otherwise
    solvers that ask for it balance the column norms.
    """
    if constraints is not None and (constraints.maps.has_penalty
                                    or constraints.components.has_penalty):
        constraints.normalize(W, Ht)  # nothing when both are penalized
    elif update.balance:
        _balance(W, Ht)


def check_objective(objective, iteration, stage="iteration", previous=None):
    """Raise :class:`~hyperspy_hnmf._checks.NumericalError` if ``objective`` is not finite.

    Every loop of the package (in memory, one pass per iteration, the
    fine-tuning of multi-layer NMF) calls it on each new objective, so a fit
    stops at the iteration where NaN or infinity appear, before anything is
    stored.

    Parameters
    ----------
    objective : float
    iteration : int
        0 for the initial factors.
    stage : str
        What iterates, for the message (``"iteration"``, ``"fine-tuning iteration"``).
    previous : float, optional
        The last finite objective, for the message.

    Examples
    --------
    >>> check_objective(1.5, 3)
    >>> check_objective(float("nan"), 4, previous=2.0)
    Traceback (most recent call last):
    ...
    hyperspy_hnmf._checks.NumericalError: The objective became nan at iteration 4 (it was 2 before). ...
    """
    if np.isfinite(objective):
        return
    where = ("with the initial factors (before the first iteration)" if iteration == 0
             else f"at {stage} {iteration}")
    before = f" (it was {previous:.6g} before)" if previous is not None else ""
    raise NumericalError(
        f"The objective became {float(objective)} {where}{before}. The fit was stopped "
        f"and nothing was stored. {LIKELY_CAUSES}")


def record(history, objective, iteration, callback, tol):
    """Append ``objective``, report it, and say whether the run has converged.

    Converged: the objective is ≤ 0 or changed by less than ``tol`` (relative,
    in absolute value) over the last iteration. A non-finite objective (or a
    non-finite initial objective ``history[0]``) raises
    :class:`~hyperspy_hnmf._checks.NumericalError` naming the iteration
    (:func:`check_objective`).

    Examples
    --------
    >>> history = [4.0]
    >>> record(history, 2.0, 1, None, 1e-4), history
    (False, [4.0, 2.0])
    """
    if len(history) == 1:
        check_objective(history[0], 0)
    check_objective(objective, iteration, previous=history[-1])
    history.append(objective)
    if callback is not None:
        callback(iteration, objective)
    previous = history[-2]
    return objective <= 0 or (previous > 0 and abs(previous - objective) / previous < tol)


def alternate(X, W, H, update, *, max_iter, tol, update_W=True, update_H=True,
              callback=None, constraints=None):
    """Alternate the half-steps of ``update`` until the objective stalls.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m)
    W : ndarray, shape (n, k)
        Initial maps; updated in place when ``update_W``.
    H : ndarray, shape (k, m)
        Initial components; a contiguous transposed copy is updated.
    update : Update
        The solver's half-step (see :mod:`._updates`).
    max_iter : int
        Maximum number of iterations (one iteration updates both factors).
    tol : float
        Stop when the relative change of the objective over one iteration,
        ``|f_prev - f| / f_prev``, is below ``tol``; 0 runs ``max_iter``. (The
        absolute value lets a non-monotone solver such as ALS go on after an
        increase.)
    update_W, update_H : bool
        Which factors to update (``transform`` keeps ``H`` fixed).
    callback : callable, optional
        Called as ``callback(iteration, objective)`` after every iteration.
    constraints : ConstraintPlan, optional
        Penalties and projections of the maps and components
        (:func:`~hyperspy_hnmf.constraints.build_plan`). The objective then
        includes the penalty terms. While only one factor is penalized, the
        other is renormalized after each iteration (instead of balancing).

    Returns
    -------
    FitResult

    Examples
    --------
    >>> from hyperspy_hnmf.solvers._updates import HALSUpdate
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((30, 2)) @ rng.random((2, 20))
    >>> result = alternate(X, rng.random((30, 2)), rng.random((2, 20)),
    ...                    HALSUpdate(), max_iter=50, tol=0)
    >>> bool(np.all(np.diff(result.objective) <= 1e-12))
    True
    """
    Xw, Xh = update.prepare(X)
    W = np.ascontiguousarray(W)
    Ht = np.ascontiguousarray(H.T)
    on_maps = constraints.maps if constraints is not None else None
    on_components = constraints.components if constraints is not None else None

    if constraints is not None:
        # Start from projected factors, so that a faulty user projection
        # fails before the first iteration and the history starts feasible.
        if update_H:
            on_components.project(Ht)
        if update_W:
            on_maps.project(W)

    def penalties():
        if constraints is None:
            return 0.0
        return on_maps.penalty_value(W) + on_components.penalty_value(Ht)

    history = [update.objective(Xw, W, Ht) + penalties()]
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        objective = None
        if update_H:
            objective = update.step(Xh, Ht, W, want_objective=not update_W, side=on_components)
        if update_W:
            objective = update.step(Xw, W, Ht, want_objective=True, side=on_maps)
        if update_W and update_H:
            rescale(W, Ht, update, constraints)
        if objective is None:
            objective = update.objective(Xw, W, Ht)
        if record(history, objective + penalties(), iteration, callback, tol):
            converged = True
            break
    return FitResult(
        W=W,
        H=np.ascontiguousarray(Ht.T),
        objective=np.asarray(history, dtype=np.float64),
        n_iter=iteration,
        converged=converged,
        restart_objectives=[float(history[-1])],
    )


def intensity_order(total, blocks=None):
    """Permutation sorting ``total`` in decreasing order, within each block of positions.

    Parameters
    ----------
    total : ndarray, shape (k,)
    blocks : list of array of int, optional
        Disjoint sets of positions covering ``range(k)``; ``None``: one block.

    Returns
    -------
    ndarray of int

    Examples
    --------
    >>> intensity_order(np.array([1.0, 3.0, 2.0])).tolist()
    [1, 2, 0]
    >>> intensity_order(np.array([1.0, 3.0, 2.0]), blocks=[[0], [1, 2]]).tolist()
    [0, 1, 2]
    """
    order = np.arange(len(total))
    for block in blocks if blocks is not None else [order.copy()]:
        block = np.asarray(block)
        order[block] = block[np.argsort(-total[block], kind="stable")]
    return order


def canonical_order(W, H, blocks=None):
    """Scale and sort components into the package's documented order.

    Each component (row of ``H``) is scaled to sum to 1, its map (column of
    ``W``) carries the intensity, so a map reads directly as the counts (or
    intensity) in that component at each position. Components are sorted by
    decreasing total intensity ``W[:, j].sum()``; ties keep their order. A
    component that is all zero stays zero and goes last.

    Parameters
    ----------
    W : ndarray, shape (n, k)
    H : ndarray, shape (k, m)
    blocks : list of array of int, optional
        Sort only within each block of positions (components with their own
        constraints keep the positions the constraints name; see
        :attr:`~hyperspy_hnmf.constraints.ConstraintPlan.blocks`).

    Returns
    -------
    W, H : ndarray
        New arrays; ``W @ H`` is unchanged up to rounding.
    order : ndarray of int
        The permutation applied (``new[j] = old[order[j]]``).

    Examples
    --------
    >>> W = np.array([[1.0, 4.0], [1.0, 4.0]])
    >>> H = np.array([[2.0, 2.0], [0.5, 0.5]])
    >>> W2, H2, order = canonical_order(W, H)
    >>> H2.sum(axis=1).tolist(), order.tolist()
    ([1.0, 1.0], [0, 1])
    >>> H = np.array([[1.0, 1.0], [3.0, 3.0]])               # component 1 is brighter
    >>> canonical_order(W, H)[2].tolist(), canonical_order(W, H, blocks=[[0], [1]])[2].tolist()
    ([1, 0], [0, 1])
    """
    sums = H.sum(axis=1, dtype=np.float64)
    scale = np.where(sums > 0, sums, 1.0)
    W = W * scale.astype(W.dtype)
    H = H / scale[:, None].astype(H.dtype)
    order = intensity_order(W.sum(axis=0, dtype=np.float64), blocks)
    return np.ascontiguousarray(W[:, order]), np.ascontiguousarray(H[order]), order
