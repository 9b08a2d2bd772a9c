"""Multi-layer NMF with joint fine-tuning of all layers, on arrays (no HyperSpy).

Model
-----
The data ``X`` (n × m, probe positions × detector pixels) are factorized as
``X ≈ W₁ H₁`` with maps ``W₁`` (n × k₁) and components ``H₁`` (k₁ × m). Each
further layer factorizes the maps of the layer before,
``W_{ℓ-1} ≈ W_ℓ M_ℓ``, with a nonnegative mixing matrix ``M_ℓ``
(k_ℓ × k_{ℓ-1}), so every coarse component is a nonnegative mixture of finer
ones, ``H_ℓ = M_ℓ H_{ℓ-1} = M_ℓ ⋯ M₂ H₁``, and ``X ≈ W_ℓ H_ℓ`` at every level
(Cichocki & Zdunek 2006). The layers are first fitted one after the other
(the *greedy* pass); the *fine-tuning* then lowers the reconstruction errors
of the whole stack jointly, in the spirit of Neural NMF (Gao et al.).

Fine-tuning objective
---------------------
If the maps were tied exactly, ``W_{ℓ-1} = W_ℓ M_ℓ``, every level would
reconstruct ``X`` by the same product ``W_L M_L ⋯ M₂ H₁`` and all levels would
have the same error. Instead, as in Neural NMF (whose per-layer maps are the
best nonnegative codes of the layer's dictionary, not exact products) and in
the "data-centric" loss of deep matrix factorization (De Handschutter &
Gillis), each level keeps its **own maps as free variables**, while the
**components are tied** by the layer relation. The objective is

    J = Σ_ℓ λ_ℓ · D(X | W_ℓ · M_ℓ ⋯ M₂ H₁)

over ``W₁ … W_L ≥ 0``, ``M₂ … M_L ≥ 0`` and ``H₁ ≥ 0``, ``D`` the Frobenius
(``½‖·‖²``) or generalized Kullback-Leibler divergence. The level errors
differ (a coarse level has fewer degrees of freedom), and the mixing matrices
and the finest components are shared by all of them. The default weights
``λ = (0, …, 0, 1)`` minimise the *total* error, that of the deepest level,
whose model ``X ≈ W_L M_L ⋯ M₂ H₁`` runs through every layer. The maps of a
level with weight 0 are still updated in every iteration, to fit ``X`` with
that level's components: each map block appears in its own level's error
only, so this changes nothing in ``J`` and keeps ``X ≈ W_ℓ H_ℓ`` meaningful at
every level. With the default weights the finer components are free to move
towards a better deepest level, which raises the finer levels' errors
(measured: +0.5 % at level 1 on Poisson test data, more where level 1 fits
almost exactly); give the finer levels weight (e.g.
``layer_weights=[1, 1, 1]``) to hold them.

Updates are by blocks (all maps, each ``M_ℓ``, then ``H₁``), each one
nonnegative and non-increasing in ``J``:

- Frobenius: every block is a nonnegative least-squares problem. Maps and
  finest components take a few HALS sweeps (exact coordinate minimization),
  each ``M_ℓ`` exact coordinate descent on its quadratic
  ``½ tr(Mᵀ F M G) − tr(Mᵀ R)``. All the data enter through two products per
  iteration: ``X H₁ᵀ``, from which ``X H_ℓᵀ = X H₁ᵀ P_ℓᵀ`` for every level
  (``P_ℓ = M_ℓ ⋯ M₂``), and ``Cᵀ X`` with ``C = Σ λ_ℓ W_ℓ P_ℓ``. With ``H₁``
  fixed, the maps and mixing matrices see the data only through ``X H₁ᵀ``,
  so they alternate for several cheap rounds (n × k work) on one product,
  as the accelerated HALS of Gillis & Glineur reuses its products. An
  iteration costs about one flat HALS iteration.
- Kullback-Leibler: multiplicative updates (Lee & Seung; for ``M_ℓ`` the
  tri-factor form ``M ← M ⊙ Aᵀ(X ⊘ AMB)Bᵀ ⊘ Aᵀ1Bᵀ``). The ratio ``X ⊘ model``
  is needed at the nonzeros of ``X`` only: counted data that are mostly zero
  (or sparse input) are held as CSR and a numba kernel evaluates the model
  there; dense data go in row blocks. Each block update needs the ratio at
  the current model, so an iteration reads the nonzeros once per level for
  the maps, once per weighted level at or above ℓ for each ``M_ℓ`` and once
  per weighted level for ``H₁`` (2L passes with the default weights), each
  pass with small ranks.

Scale conventions
-----------------
Level 1 is in the package's canonical order
(:func:`~hyperspy_hnmf.solvers.canonical_order`): each component (row of
``H₁``) sums to 1 and components are sorted by decreasing total intensity
(column sums of ``W₁``). At coarser levels each row of ``M_ℓ`` sums to 1, so
each coarse component ``H_ℓ = M_ℓ H_{ℓ-1}`` sums to 1 too, its maps ``W_ℓ``
carry the intensity, and coarse components are sorted by decreasing total
intensity as well. ``M_ℓ[p, q]`` is the weight of finer component ``q`` in
coarse component ``p``. All-zero components stay zero and go last.

References
----------
A. Cichocki and R. Zdunek, "Multilayer nonnegative matrix factorisation",
Electronics Letters 42 (2006) 947.
M. Gao, J. Haddock, D. Molitor, D. Needell, E. Sadovnik, T. Will and R. Zhang,
"Neural nonnegative matrix factorization for hierarchical multilayer topic
modeling", 2019/2021.
P. De Handschutter and N. Gillis, "A consistent and flexible framework for
deep matrix factorizations", Pattern Recognition (2023).
"""

import dataclasses
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sp

from ..solvers import _as_float_data, _fit_nmf, check_data
from .._checks import DEFAULT_LOSS, check_level, row_blocks
from .._spec import (DEFAULT_FINE_TUNE, DEFAULT_FINE_TUNE_ITER, DEFAULT_INIT, DEFAULT_MAX_ITER,
                     DEFAULT_SOLVER, DEFAULT_TOL, resolve_fit)
from ..solvers._linalg import as_generator, density, squared_norm, times, to_csr
from ..solvers._objective import MODEL_FLOOR, beta_divergence, frobenius_from_products
from ..solvers._loop import check_objective, intensity_order
from ..solvers._ratio import kl_data
from ..solvers._updates import MU_FLOOR, SPARSE_KL_DENSITY, hals_sweep

__all__ = ["MultiLayerResult", "multilayer_nmf"]

#: How the fine-tuning's iterations are named in messages.
_FINE_TUNING = "fine-tuning iteration"
#: HALS inner-sweep budget factor and stopping ratio (as in the flat HALS solver).
_HALS_ALPHA = 0.1
_HALS_INNER_TOL = 0.1
#: Coordinate-descent sweeps on each mixing matrix per update, at most.
_MIXING_SWEEPS = 10
#: Budget factor and stopping ratio of the (maps, mixing) rounds per product X H₁ᵀ.
_ROUNDS_ALPHA = 0.5
_ROUNDS_TOL = 0.1


@dataclass
class MultiLayerResult:
    """Outcome of :func:`multilayer_nmf`: one factorization per level.

    Lists are indexed from the finest level: ``W[0]``, ``H[0]`` are level 1.

    Attributes
    ----------
    W : list of ndarray
        Maps of each level, ``W[ℓ-1]`` of shape (n, k_ℓ).
    H : list of ndarray
        Components of each level, ``H[ℓ-1]`` of shape (k_ℓ, m); each row sums
        to 1, and ``H[ℓ-1] = M[ℓ-2] @ H[ℓ-2]`` for ℓ ≥ 2.
    M : list of ndarray
        Mixing matrices: ``M[ℓ-2]`` (k_ℓ × k_{ℓ-1}) takes level ℓ-1 to level
        ℓ; each row sums to 1.
    beta : float
        β of the loss (2 Frobenius, 1 Kullback-Leibler).
    errors : ndarray, shape (L,)
        ``D(X | W_ℓ H_ℓ)`` of each level for the returned factors, evaluated
        directly (Frobenius as ``½‖X − W H‖²``).
    greedy_errors : ndarray, shape (L,)
        The same for the greedy layer-by-layer result.
    layer_weights : ndarray, shape (L,)
        The weights λ of the fine-tuning objective.
    layer_objectives : list of ndarray
        Objective history of each greedy layer's NMF (layer 1 on ``X``,
        layer ℓ on ``W_{ℓ-1}``).
    fine_tune_objective : ndarray
        Fine-tuning objective ``Σ λ_ℓ D(X | W_ℓ H_ℓ)`` at the greedy result
        (entry 0) and after every iteration; empty without fine-tuning.
    fine_tune_n_iter : int
        Number of fine-tuning iterations run.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((60, 6)) @ rng.random((6, 40))
    >>> result = multilayer_nmf(X, [6, 3, 1], random_state=0)
    >>> result.ranks, result.level(2).M.shape
    ((6, 3, 1), (3, 6))
    >>> bool(result.total_error < result.greedy_total_error)
    True
    """

    W: list
    H: list
    M: list
    beta: float
    errors: np.ndarray
    greedy_errors: np.ndarray
    layer_weights: np.ndarray
    layer_objectives: list = field(default_factory=list)
    fine_tune_objective: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fine_tune_n_iter: int = 0

    @property
    def ranks(self):
        """Number of components of each level, finest first."""
        return tuple(H.shape[0] for H in self.H)

    @property
    def n_levels(self):
        """Number of levels ``L``."""
        return len(self.H)

    @property
    def total_error(self):
        """Error of the deepest level, ``D(X | W_L M_L ⋯ M₂ H₁)``."""
        return float(self.errors[-1])

    @property
    def greedy_total_error(self):
        """Error of the deepest level after the greedy pass."""
        return float(self.greedy_errors[-1])

    def level(self, level):
        """The factors of one level (1 = finest, ``L`` = coarsest).

        Parameters
        ----------
        level : int

        Returns
        -------
        Level
            Named tuple ``(W, H, M, error)``; ``M`` is ``None`` at level 1.

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> result = multilayer_nmf(X, [4, 2], random_state=0)
        >>> result.level(2).W.shape, result.level(1).M is None
        ((30, 2), True)
        """
        index = self._index(level)
        return Level(
            W=self.W[index],
            H=self.H[index],
            M=self.M[index - 1] if index else None,
            error=float(self.errors[index]),
        )

    def groups(self, level=2, by="weight"):
        """For each finest component, the component of ``level`` it belongs to.

        With ``P = M_ℓ ⋯ M₂`` (rows: components of ``level``, columns:
        finest components), ``by="weight"`` picks for finest component ``q``
        the coarse component ``p`` that mixes it with the largest weight
        ``P[p, q]`` (the edges of :func:`~hyperspy_hnmf.plot_hierarchy`);
        ``by="intensity"`` the one that carries most of its counts,
        ``W_ℓ[:, p].sum() · P[p, q]``, which favours intense coarse
        components such as a background.

        Parameters
        ----------
        level : int, default 2
        by : {"weight", "intensity"}, default "weight"

        Returns
        -------
        ndarray of int, shape (k₁,)

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> multilayer_nmf(X, [4, 2], random_state=0).groups(2).shape
        (4,)
        """
        if by not in ("weight", "intensity"):
            raise ValueError(f"by must be 'weight' or 'intensity', got {by!r}.")
        index = self._index(level)
        P = np.eye(self.ranks[0])
        for M in self.M[:index]:
            P = M.astype(np.float64) @ P
        if by == "intensity":
            P = self.W[index].sum(axis=0, dtype=np.float64)[:, None] * P
        return np.argmax(P, axis=0)

    def _index(self, level):
        return check_level(level, self.n_levels) - 1


@dataclass(frozen=True)
class Level:
    """Factors of one level of a :class:`MultiLayerResult`.

    Examples
    --------
    >>> Level(W=np.ones((2, 1)), H=np.ones((1, 3)), M=None, error=0.0).W.shape
    (2, 1)
    """

    W: np.ndarray
    H: np.ndarray
    M: np.ndarray
    error: float


# ----------------------------------------------------------------------------
# Small helpers


def _chains(Ms, k1):
    """``P_ℓ = M_ℓ ⋯ M₂`` (k_ℓ × k₁) for every level, ``P₁ = I``, in float64."""
    P = [np.eye(k1)]
    for M in Ms:
        P.append(M @ P[-1])
    return P


def _partial_chain(Ms, top, bottom):
    """``M_top ⋯ M_{bottom+1}`` (k_top × k_bottom), identity when ``top == bottom``.

    Levels are 1-based; ``Ms[ℓ-2]`` is ``M_ℓ``.
    """
    Q = None
    for level in range(bottom + 1, top + 1):
        Q = Ms[level - 2] if Q is None else Ms[level - 2] @ Q
    return Q


def _hals_inner(A, YB, BtB, n_cols_data, side=None):
    """Several HALS sweeps on ``A`` with fixed products (the flat solver's budget).

    ``side`` (FactorConstraints or None) adds its penalties to the sweeps and
    its projections after them.
    """
    k = A.shape[1]
    n_inner = 1 + int(_HALS_ALPHA * n_cols_data / (5.0 * k))
    l1, l2 = (side.l1, side.l2) if side is not None and side.has_penalty else (None, None)
    first = None
    for _ in range(n_inner):
        change = hals_sweep(A, YB, BtB, l1, l2)
        if first is None:
            first = change
        elif change <= _HALS_INNER_TOL**2 * first:
            break
    if side is not None:
        side.project(A)


@numba.njit(cache=True, nogil=True)
def _quadratic_cd(M, F, G, R, max_sweeps):
    """Exact coordinate descent on ``½ tr(Mᵀ F M G) − tr(Mᵀ R)`` over ``M ≥ 0``.

    ``F`` and ``G`` are positive semidefinite; ``M`` is updated in place.
    Each entry is set to the minimizer along its coordinate, so the objective
    never increases.
    """
    rows, cols = M.shape
    grad = F @ M @ G - R
    first = 0.0
    for sweep in range(max_sweeps):
        change = 0.0
        for p in range(rows):
            for q in range(cols):
                curvature = F[p, p] * G[q, q]
                if curvature <= 0:
                    continue
                value = M[p, q] - grad[p, q] / curvature
                if value < 0:
                    value = 0.0
                delta = value - M[p, q]
                if delta != 0.0:
                    M[p, q] = value
                    for a in range(rows):
                        fa = delta * F[a, p]
                        for b in range(cols):
                            grad[a, b] += fa * G[q, b]
                    change += delta * delta * curvature
        if sweep == 0:
            first = change
        elif change <= 1e-4 * first:
            break


def _normalize(Ws, Ht, Ms, sort, blocks=None):
    """Rescale (and optionally sort) in place to the documented conventions.

    Every level's product ``W_ℓ H_ℓ`` is unchanged. Returns the new
    ``(Ws, Ht, Ms)`` (sorting makes new arrays).
    """
    L = len(Ws)
    sums = Ht.sum(axis=0, dtype=np.float64)
    scale = np.where(sums > 0, sums, 1.0)
    Ht /= scale.astype(Ht.dtype)
    Ws[0] *= scale.astype(Ws[0].dtype)
    if L > 1:
        Ms[0] *= scale[None, :]
    if sort:
        order = intensity_order(Ws[0].sum(axis=0, dtype=np.float64), blocks)
        Ws[0] = np.ascontiguousarray(Ws[0][:, order])
        Ht = np.ascontiguousarray(Ht[:, order])
        if L > 1:
            Ms[0] = np.ascontiguousarray(Ms[0][:, order])
    for index in range(1, L):
        M = Ms[index - 1]
        sums = M.sum(axis=1)
        scale = np.where(sums > 0, sums, 1.0)
        M /= scale[:, None]
        Ws[index] *= scale.astype(Ws[index].dtype)
        if index + 1 < L:
            Ms[index] *= scale[None, :]
        if sort:
            order = np.argsort(-Ws[index].sum(axis=0, dtype=np.float64), kind="stable")
            Ws[index] = np.ascontiguousarray(Ws[index][:, order])
            Ms[index - 1] = np.ascontiguousarray(M[order])
            if index + 1 < L:
                Ms[index] = np.ascontiguousarray(Ms[index][:, order])
    return Ws, Ht, Ms


# ----------------------------------------------------------------------------
# Fine-tuning, Frobenius


def _small_objective(norm_X2, XHt, G, Ws, P, weights):
    """``Σ λ_j ½‖X − W_j P_j H₁‖²`` from ``X H₁ᵀ`` and ``H₁ H₁ᵀ`` (no pass over X)."""
    return sum(
        weights[j] * frobenius_from_products(norm_X2, XHt @ P[j].T, Ws[j], P[j] @ G @ P[j].T)
        for j in range(len(Ws)) if weights[j] > 0
    )


def _update_maps(W, XHt, G, Pj, m, side=None):
    """HALS sweeps on the maps of one level: ``X H_jᵀ = X H₁ᵀ P_jᵀ``, ``H_j H_jᵀ = P_j G P_jᵀ``."""
    YB = (XHt @ Pj.T).astype(W.dtype)
    BtB = (Pj @ G @ Pj.T).astype(W.dtype)
    _hals_inner(W, YB, BtB, m, side)


def _update_mixing(level, Ws, Ms, XHt, G, P, weights):
    """Coordinate descent on ``M_level``: levels ``j ≥ level`` see ``X ≈ A_j M B``, ``B = H_{level-1}``."""
    Pb = P[level - 2]
    M = Ms[level - 2]
    F = np.zeros((M.shape[0], M.shape[0]))
    R = np.zeros(M.shape)
    XB = XHt @ Pb.T
    for j in range(level - 1, len(Ws)):
        if weights[j] == 0:
            continue
        Q = _partial_chain(Ms, j + 1, level)
        A = Ws[j].astype(np.float64) if Q is None else Ws[j] @ Q
        F += weights[j] * (A.T @ A)
        R += weights[j] * (A.T @ XB)
    _quadratic_cd(M, F, Pb @ G @ Pb.T, R, _MIXING_SWEEPS)


def _fine_tune_frobenius(X, Ws, Ht, Ms, weights, max_iter, tol, callback, sides):
    """Block coordinate descent on ``Σ λ_ℓ ½‖X − W_ℓ P_ℓ H₁‖²``; two products with X per iteration."""
    dtype = Ht.dtype
    n, m = X.shape
    k1 = Ht.shape[1]
    L = len(Ws)
    weighted = [level for level in range(L) if weights[level] > 0]
    norm_X2 = squared_norm(X)
    XT = X.T
    history = []
    iteration = 0
    for iteration in range(1, max_iter + 1):
        XHt = times(X, Ht).astype(np.float64)  # product 1: X H₁ᵀ (n × k₁)
        G = Ht.T.astype(np.float64) @ Ht
        P = _chains(Ms, k1)
        if iteration == 1:
            history.append(_small_objective(norm_X2, XHt, G, Ws, P, weights))
            check_objective(history[0], 0)
        # Maps of unweighted levels: once, to follow their components.
        for j in range(L):
            if weights[j] == 0:
                _update_maps(Ws[j], XHt, G, P[j], m, sides[j])
        # With H₁ fixed, the maps and mixing matrices see the data only
        # through X H₁ᵀ: alternate them for several rounds on this product.
        before = history[-1]
        first = None
        for _ in range(1 + int(_ROUNDS_ALPHA * m / (5.0 * k1))):
            for j in weighted:
                _update_maps(Ws[j], XHt, G, P[j], m, sides[j])
            for level in range(2, L + 1):
                _update_mixing(level, Ws, Ms, XHt, G, P, weights)
                P = _chains(Ms, k1)
            value = _small_objective(norm_X2, XHt, G, Ws, P, weights)
            decrease = before - value
            before = value
            if first is None:
                first = decrease
            elif decrease <= _ROUNDS_TOL * max(first, 0.0):
                break
        # Finest components: Σ λ_j ½‖X − C_j H₁‖² with C_j = W_j P_j.
        C = np.zeros((n, k1))
        F = np.zeros((k1, k1))
        for j in weighted:
            Cj = Ws[j] @ P[j]
            C += weights[j] * Cj
            F += weights[j] * (Cj.T @ Cj)
        XtC = times(XT, C.astype(dtype))  # product 2: Xᵀ C (m × k₁)
        F = F.astype(dtype)
        _hals_inner(Ht, XtC, F, n, sides[-1])
        objective = frobenius_from_products(
            float(weights.sum()) * norm_X2, XtC, Ht, F)
        check_objective(objective, iteration, _FINE_TUNING, history[-1])
        Ws, Ht, Ms = _normalize(Ws, Ht, Ms, sort=False)
        history.append(objective)
        if callback is not None:
            callback("fine_tune", iteration, objective)
        previous = history[-2]
        if objective <= 0 or (previous > 0 and (previous - objective) / previous < tol):
            break
    return Ws, Ht, Ms, np.asarray(history), iteration


# ----------------------------------------------------------------------------
# Fine-tuning, Kullback-Leibler


def _mu(A, numerator, denominator, side=None, floor=MU_FLOOR):
    """``A ← max(floor, A ⊙ numerator ⊘ denominator)`` in place.

    ``side`` (FactorConstraints or None) adds its penalties to the
    denominator and its projections after the update.
    """
    if side is not None and side.has_penalty:
        denominator = denominator + side.l1 + side.l2 * A
    ratio = numerator / np.maximum(denominator, np.finfo(np.float64).tiny)
    A *= ratio.astype(A.dtype, copy=False)
    np.maximum(A, floor, out=A)
    if side is not None:
        side.project(A)


def _fine_tune_kl(X, Ws, Ht, Ms, weights, max_iter, tol, callback, sides):
    """Multiplicative updates on ``Σ λ_ℓ KL(X | W_ℓ P_ℓ H₁)``, block by block."""
    data = kl_data(X)
    k1 = Ht.shape[1]
    L = len(Ws)
    weighted = [level for level in range(L) if weights[level] > 0]
    # The maps carry the data's intensity (components and mixing rows sum to
    # 1): their floor follows the data's scale, so that data of small
    # magnitude (calibrated intensities) are not swamped by a fixed floor.
    map_floor = MU_FLOOR * min(1.0, data.sum / (X.shape[0] * X.shape[1]))
    for index in range(L):
        np.maximum(Ws[index], map_floor, out=Ws[index])
    for M in Ms:
        np.maximum(M, MU_FLOOR, out=M)
    np.maximum(Ht, MU_FLOOR, out=Ht)
    history = []
    iteration = 0
    while True:
        P = _chains(Ms, k1)
        Hts = [Ht @ P[j].T for j in range(L)]  # H_ℓᵀ, m × k_ℓ
        # Map numerators of every level; the weighted ones give the objective.
        last = iteration == max_iter
        objective = 0.0
        numerators = []
        for j in range(L):
            if last and weights[j] == 0:
                numerators.append(None)
                continue
            N, data_term = data.right(Ws[j], Hts[j], Hts[j], with_objective=weights[j] > 0)
            numerators.append(N)
            if weights[j] > 0:
                model_total = float(Ws[j].sum(axis=0, dtype=np.float64) @ Hts[j].sum(axis=0))
                objective += weights[j] * (data_term - data.sum + model_total)
        check_objective(objective, iteration, _FINE_TUNING, history[-1] if history else None)
        history.append(objective)
        if iteration > 0:
            if callback is not None:
                callback("fine_tune", iteration, objective)
            previous = history[-2]
            if last or objective <= 0 or (
                previous > 0 and (previous - objective) / previous < tol
            ):
                break
        elif last:
            break
        iteration += 1
        for j in range(L):
            _mu(Ws[j], numerators[j], Hts[j].sum(axis=0)[None, :], sides[j], map_floor)
        # Mixing matrices: tri-factor updates with A_j = W_j M_j ⋯ M_{ℓ+1}, B = H_{ℓ-1}.
        for level in range(2, L + 1):
            Bt = Ht @ P[level - 2].T  # H_{ℓ-1}ᵀ, m × k_{ℓ-1}
            numerator = np.zeros(Ms[level - 2].shape)
            denominator = np.zeros(Ms[level - 2].shape)
            for j in weighted:
                if j + 1 < level:
                    continue
                Q = _partial_chain(Ms, j + 1, level)
                A = Ws[j].astype(np.float64) if Q is None else Ws[j] @ Q
                N, _ = data.right(Ws[j], Ht @ P[j].T, Bt)
                numerator += weights[j] * (A.T @ N)
                denominator += weights[j] * np.outer(A.sum(axis=0), Bt.sum(axis=0))
            _mu(Ms[level - 2], numerator, denominator)
            P = _chains(Ms, k1)
        # Finest components: model_j = C_j H₁ with C_j = W_j P_j.
        numerator = np.zeros(Ht.shape)
        denominator = np.zeros(k1)
        for j in weighted:
            Cj = Ws[j] @ P[j]
            N, _ = data.left(Ws[j], Ht @ P[j].T, Cj)
            numerator += weights[j] * N
            denominator += weights[j] * Cj.sum(axis=0)
        _mu(Ht, numerator, denominator[None, :], sides[-1])
        Ws, Ht, Ms = _normalize(Ws, Ht, Ms, sort=False)
    return Ws, Ht, Ms, np.asarray(history), iteration


# ----------------------------------------------------------------------------
# Public function


def multilayer_nmf(
    X,
    ranks,
    *,
    loss=DEFAULT_LOSS,
    solver=DEFAULT_SOLVER,
    init=DEFAULT_INIT,
    max_iter=DEFAULT_MAX_ITER,
    tol=DEFAULT_TOL,
    random_state=None,
    fine_tune=DEFAULT_FINE_TUNE,
    fine_tune_iter=DEFAULT_FINE_TUNE_ITER,
    layer_weights=None,
    callback=None,
    constraints=None,
):
    """Multi-layer NMF: nested factorizations, coarser at each level, tuned jointly.

    Level 1 is ``X ≈ W₁ H₁`` (rank ``ranks[0]``, by :func:`~hyperspy_hnmf.solvers.nmf`);
    level ℓ factorizes the maps of level ℓ-1, ``W_{ℓ-1} ≈ W_ℓ M_ℓ``, with the
    same loss, so that ``H_ℓ = M_ℓ H_{ℓ-1}`` and ``X ≈ W_ℓ H_ℓ``. Then, unless
    ``fine_tune=False``, all factors are updated jointly to lower
    ``Σ_ℓ λ_ℓ D(X | W_ℓ M_ℓ ⋯ M₂ H₁)`` (see the module documentation for
    the formulation, the updates and the scale conventions).

    Parameters
    ----------
    X : array-like, scipy.sparse matrix or dask array, shape (n, m), nonnegative
        float32 stays float32; other types become float64. Sparse data are
        never densified. A dask array (chunked along rows) is read in passes:
        layer 1 by :func:`~hyperspy_hnmf.streaming.streaming_nmf`, every
        fine-tuning iteration in passes too, the level errors in one more
        pass; the coarser layers fit the (small) maps in memory.
    ranks : sequence of int
        Number of components per level, finest first, strictly decreasing,
        ``ranks[0] < min(n, m)``.
    loss : {"auto", "frobenius", "kullback-leibler", "kl"} or {2, 1}, default "auto"
        The loss of every layer and of the fine-tuning; ``"auto"``: KL for
        integer counts, Frobenius otherwise.
    solver : {"auto", "hals", "mu", "als"}, default "auto"
        Solver of the greedy layers (see :func:`~hyperspy_hnmf.solvers.nmf`).
        The fine-tuning uses exact block coordinate descent (HALS) for the
        Frobenius loss and multiplicative updates for KL, whatever the solver.
    init : str or tuple, default "nndsvda"
        Initialization of every greedy layer; a tuple ``(W, H)`` initializes
        layer 1 only, coarser layers then use ``"nndsvda"``.
    max_iter : int, default 200
        Maximum iterations of each greedy layer.
    tol : float, default 1e-4
        Relative decrease of the objective that stops a greedy layer or the
        fine-tuning.
    random_state : None, int or numpy.random.Generator
        Seed of the initializations; the same seed gives the same result.
    fine_tune : bool, default True
        Whether to run the joint fine-tuning after the greedy pass.
    fine_tune_iter : int, default 100
        Maximum fine-tuning iterations.
    layer_weights : sequence of float, optional
        Weights λ_ℓ ≥ 0 of the level errors in the fine-tuning objective, one
        per level, not all zero. Default: only the deepest (total) error.
    callback : callable, optional
        ``callback(stage, iteration, objective)`` after every iteration, with
        ``stage`` ``"layer 1"``, ``"layer 2"``, … for the greedy layers and
        ``"fine_tune"``.
    constraints : ConstraintPlan, optional
        Constraints of the finest level (:func:`~hyperspy_hnmf.constraints.build_plan`
        with ``ranks[0]`` components); they act in its greedy fit and in the
        fine-tuning. Map constraints that apply to all components also act
        on the maps of every coarser level (component-specific ones cannot:
        coarse components mix the fine ones).

    Returns
    -------
    MultiLayerResult

    Raises
    ------
    ValueError
        For bad ranks, options, weights or data, before any computation.

    See Also
    --------
    hyperspy_hnmf.solvers.nmf : the flat factorization of every layer.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((80, 6)) @ rng.random((6, 50))).astype(np.float32)
    >>> result = multilayer_nmf(X, [6, 3], random_state=0)
    >>> [W.shape for W in result.W], result.H[1].dtype
    ([(80, 6), (80, 3)], dtype('float32'))
    >>> bool(np.allclose(result.H[1], result.M[0] @ result.H[0], atol=1e-6))
    True
    >>> bool(np.allclose(result.H[1].sum(axis=1), 1, atol=1e-5))
    True
    >>> bool(result.total_error < result.greedy_total_error)
    True
    """
    streamed = _as_streamed(X)
    X = streamed if streamed is not None else _as_float_data(X)
    if len(X.shape) != 2:
        raise ValueError(f"Expected a 2D array (samples × features), got {len(X.shape)}D.")
    spec = resolve_fit(X, ranks, hierarchy="layers", loss=loss, solver=solver, init=init,
                       max_iter=max_iter, tol=tol, random_state=random_state,
                       fine_tune=fine_tune, fine_tune_iter=fine_tune_iter,
                       layer_weights=layer_weights, callback=callback, constraints=constraints)
    if streamed is None:
        check_data(X, where="multilayer_nmf", beta=spec.beta)
    return _fit_multilayer(X, spec, callback)


def _fit_multilayer(X, spec, callback=None):
    """:func:`multilayer_nmf` with resolved options (a :class:`~hyperspy_hnmf._spec.FitSpec`).

    ``X``: checked float data (array or CSR/CSC) or a StreamedMatrix
    (``spec.streamed``). No option is checked again; every layer is a flat
    fit (:func:`~hyperspy_hnmf.solvers._fit_nmf`) with the spec's options.
    ``n_restarts`` applies to layer 1, the fit of the data: it keeps the
    best of its runs (the first from ``init``, the others random), as a
    flat fit does. The coarser layers, small fits of the maps, run once
    (the best fit of ``W₁`` need not lower the level's error on ``X``).
    """
    beta, ranks, tol = spec.beta, spec.ranks, spec.tol
    weights, level_plans = spec.layer_weights, spec.level_plans
    streamed = spec.streamed
    if not streamed and beta == 1 and not sp.issparse(X) and density(X) <= SPARSE_KL_DENSITY:
        X = to_csr(X)  # once, for every layer-1 iteration and the fine-tuning
    rng = as_generator(spec.random_state)

    # Greedy pass.
    Ws, Hs, Ms, layer_objectives = [], [], [], []
    data, layer_init = X, spec.init
    for position, rank in enumerate(ranks):
        stage = f"layer {position + 1}"
        layer_callback = None
        if callback is not None:
            layer_callback = lambda it, obj, stage=stage: callback(stage, it, obj)  # noqa: E731
        if position > 0:  # the maps of the layer above, checked as data
            data = _as_float_data(data)
            check_data(data, beta=beta)
        layer = dataclasses.replace(
            spec, kind="flat", ranks=(rank,), init=layer_init,
            n_restarts=spec.n_restarts if position == 0 else 1,
            random_state=rng, plan=level_plans[position], level_plans=(level_plans[position],),
            layer_weights=None, shape=data.shape, streamed=streamed and position == 0)
        result = _fit_nmf(data, layer, layer_callback)
        layer_objectives.append(result.objective)
        if position == 0:
            known = {0: result.divergence}
        Ws.append(np.ascontiguousarray(result.W))
        if position == 0:
            Hs.append(result.H)
        else:
            Ms.append(result.H.astype(np.float64))
            Hs.append((Ms[-1] @ Hs[-1]).astype(X.dtype))
        data = result.W
        if isinstance(layer_init, tuple):
            layer_init = DEFAULT_INIT
    greedy_errors = _level_errors(X, Ws, Hs, beta, known)

    fine_tune_objective = np.zeros(0)
    n_iter = 0
    if spec.fine_tune:
        Ht = np.ascontiguousarray(Hs[0].T)
        Ws = [W.copy() for W in Ws]
        tuner = _fine_tune_frobenius if beta == 2 else _fine_tune_kl
        sides = [None if plan is None else plan.maps for plan in level_plans]
        sides.append(None if level_plans[0] is None else level_plans[0].components)
        Ws, Ht, Ms, fine_tune_objective, n_iter = tuner(
            X, Ws, Ht, [M.copy() for M in Ms], weights, spec.fine_tune_iter, tol, callback,
            sides)
        Ws, Ht, Ms = _normalize(Ws, Ht, Ms, sort=True,
                                blocks=None if level_plans[0] is None else level_plans[0].blocks)
        Hs = [np.ascontiguousarray(Ht.T)]
        for M in Ms:
            Hs.append(M @ Hs[-1].astype(np.float64))
        Hs = [np.ascontiguousarray(H, dtype=X.dtype) for H in Hs]
        errors = _level_errors(X, Ws, Hs, beta)
    else:
        errors = greedy_errors.copy()
    return MultiLayerResult(
        W=[np.ascontiguousarray(W, dtype=X.dtype) for W in Ws],
        H=Hs,
        M=[np.ascontiguousarray(M, dtype=X.dtype) for M in Ms],
        beta=beta,
        errors=errors,
        greedy_errors=greedy_errors,
        layer_weights=weights,
        layer_objectives=layer_objectives,
        fine_tune_objective=np.asarray(fine_tune_objective, dtype=np.float64),
        fine_tune_n_iter=n_iter,
    )


def _as_streamed(X):
    """``X`` as a StreamedMatrix when it is read in passes (dask array), else None."""
    from ..matrix import StreamedMatrix

    if isinstance(X, StreamedMatrix):
        return X
    if type(X).__module__.startswith("dask."):
        return StreamedMatrix(X)
    return None


def _level_errors_chunk(block, start, W_rows, Hs, beta, skip):
    return np.array([0.0 if j in skip else beta_divergence(block, W, H, beta)
                     for j, (W, H) in enumerate(zip(W_rows, Hs))])


def _level_errors(X, Ws, Hs, beta, known=None):
    """``D(X | W_ℓ H_ℓ)`` of every level, evaluated directly in float64.

    Dense data are read once for all levels, in row blocks; sparse data go
    through :func:`~hyperspy_hnmf.solvers.beta_divergence` (KL on the
    nonzeros only). ``known`` maps a level index to an error already known.
    """
    known = known or {}
    todo = [j for j in range(len(Ws)) if j not in known]
    errors = np.zeros(len(Ws))
    for j, value in known.items():
        errors[j] = value
    if hasattr(X, "map_chunks"):  # read in passes: all levels in one pass
        per_chunk = [([W[X.rows(i)] for W in Ws],) for i in range(X.n_chunks)]
        errors += X.map_chunks(_level_errors_chunk, per_chunk=per_chunk,
                               shared=(list(Hs), beta, set(known)), reduce=True)
        return errors
    if sp.issparse(X):
        for j in todo:
            errors[j] = beta_divergence(X, Ws[j], Hs[j], beta)
        return errors
    factors = [(Ws[j].astype(np.float64), Hs[j].astype(np.float64)) for j in todo]
    for rows in row_blocks(*X.shape):
        block = X[rows].astype(np.float64)
        if beta == 1:
            positive = block > 0
            values = block[positive]
            data_term = float(np.sum(values * np.log(values))) - float(values.sum())
        for j, (W, H) in zip(todo, factors):
            model = W[rows] @ H
            if beta == 2:
                model -= block
                errors[j] += 0.5 * float(np.vdot(model, model))
            else:
                np.maximum(model, MODEL_FLOOR, out=model)
                errors[j] += (
                    data_term - float(np.sum(values * np.log(model[positive])))
                    + float(model.sum())
                )
    return errors
