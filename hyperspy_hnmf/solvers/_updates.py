"""Half-step updates of the alternating NMF loop, one class per solver.

Each update class changes one factor ``A`` of the model ``Y ≈ A @ B.T`` in
place; the loop in :mod:`._loop` calls it with ``(X, W, H.T)`` for the maps and
``(X.T, H.T, W)`` for the components, so every solver is written once for both
sides. A step can return the objective at the new point when it gets it for
free (or nearly) from the products it already computed.
"""

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from . import _kernels
from .._checks import row_blocks
from ._linalg import density, squared_norm, times, to_csr
from ._objective import (
    MODEL_FLOOR,
    elementwise_beta_divergence,
    frobenius_from_products,
    kl_divergence_csr,
)

#: Lower bound of factor entries in multiplicative updates: a zero entry could
#: never grow again ("zero-locking").
MU_FLOOR = 1e-16

#: Counted data with at most this fraction of nonzeros take the sparse KL path.
SPARSE_KL_DENSITY = 0.3


class Update:
    """Base class: data preparation and the objective of a solver.

    Subclasses implement :meth:`step`. ``prepare`` returns the data for the
    map step and for the component step (the transpose).

    A step takes the constraints of the factor it updates (``side``, a
    :class:`~hyperspy_hnmf.constraints.plan.FactorConstraints` or None): the
    L1/L2 penalty weights enter the update itself, the projections are
    applied after it, and the returned objective (the data term only) is
    evaluated at the projected factor, except on the sparse KL path (see
    :class:`MUUpdate`).
    """

    #: Rescale the columns of W and H to equal norms after each iteration.
    balance = False

    def prepare(self, X):
        """Return ``(X, X.T)`` in the layouts :meth:`step` works on."""
        self.norm_X2 = None
        return X, X.T

    def step(self, Y, A, B, want_objective, side=None):  # pragma: no cover - interface
        raise NotImplementedError

    def objective(self, Y, A, B):
        """Objective at ``Y ≈ A @ B.T`` (a full evaluation)."""
        if self.norm_X2 is None:
            self.norm_X2 = squared_norm(Y)
        return frobenius_from_products(self.norm_X2, times(Y, B), A, B.T @ B)


def _penalties(side):
    """``(l1, l2)`` weight arrays of a factor's constraints, or ``(None, None)``."""
    if side is None or not side.has_penalty:
        return None, None
    return side.l1, side.l2


def _project(side, A):
    """Apply the projections of ``side`` to ``A``; whether there were any."""
    if side is None or not side.projections:
        return False
    side.project(A)
    return True


def hals_sweep(A, YB, BtB, l1=None, l2=None):
    """One HALS sweep over the columns of ``A``, in place.

    Column ``j`` of ``A`` is replaced, in order, by
    ``max(0, A[:, j] + (YB[:, j] - A @ BtB[:, j] - l1[j] - l2[j] A[:, j]) / (BtB[j, j] + l2[j]))``
    (with subnormal values set to zero): the exact minimizer of
    ``½||Y - A B^T||² + l1[j] Σ a + ½ l2[j] Σ a²`` over that column with the
    others fixed. One compiled loop (:func:`~._kernels.hals_columns`): a
    sweep costs ``2 n k²`` operations and no Python call per column, which
    matters when the data are small and the inner sweeps many.

    Parameters
    ----------
    A : ndarray, shape (n, k)
    YB : ndarray, shape (n, k)
        ``Y @ B``.
    BtB : ndarray, shape (k, k)
        ``B.T @ B``.
    l1, l2 : ndarray, shape (k,), optional
        Penalty weights per column.

    Returns
    -------
    float
        Squared Frobenius norm of the change of ``A``.

    Examples
    --------
    >>> B = np.eye(2)
    >>> A = np.zeros((1, 2))
    >>> hals_sweep(A, np.array([[1.0, -1.0]]), B)
    1.0
    >>> A
    array([[1., 0.]])
    """
    k = A.shape[1]
    zeros = np.zeros(k, dtype=np.float64)
    l1 = zeros if l1 is None else np.asarray(l1, dtype=np.float64)
    l2 = zeros if l2 is None else np.asarray(l2, dtype=np.float64)
    return _kernels.hals_columns(A, YB, BtB, l1, l2, float(np.finfo(A.dtype).tiny))


class HALSUpdate(Update):
    """Hierarchical alternating least squares for the Frobenius loss.

    Uses the acceleration of Gillis & Glineur (Neural Computation 24, 2012):
    the products ``Y B`` and ``B^T B`` are computed once per half-step and
    reused for several cheap inner sweeps, until a sweep changes ``A`` by less
    than ``inner_tol`` times the first sweep's change or the inner budget
    ``1 + alpha * rho`` is spent. ``rho`` is the cost of the product relative
    to one sweep. With few components the product ``Y B`` is memory-bound (it
    reads the ``n × m`` data once) while a sweep touches the ``n × k`` factor
    ``k`` times; measured on float32 data, ``rho ≈ m / (5 k)``. The default
    ``alpha`` keeps the sweeps of one half-step under about a tenth of its
    product, so an iteration costs little more than its two products.

    Parameters
    ----------
    alpha : float
        Inner budget factor (0 = one sweep, plain HALS).
    inner_tol : float
        Relative change that ends the inner sweeps.
    """

    balance = True

    def __init__(self, alpha=0.1, inner_tol=0.1):
        self.alpha = alpha
        self.inner_tol = inner_tol

    def prepare(self, X):
        Xw, Xh = super().prepare(X)
        self.norm_X2 = squared_norm(X)
        return Xw, Xh

    def step(self, Y, A, B, want_objective, side=None):
        YB = times(Y, B)
        BtB = B.T @ B
        self.apply_products(A, YB, BtB, B.shape[0], side)
        if want_objective:
            return frobenius_from_products(self.norm_X2, YB, A, BtB)
        return None

    def apply_products(self, A, YB, BtB, n_data_columns, side=None):
        """Update ``A`` from the products ``Y @ B`` and ``B.T @ B`` (no data needed).

        ``n_data_columns`` is ``B.shape[0]``, for the inner-sweep budget.
        The streaming solver calls this with products summed over chunks.
        """
        k = A.shape[1]
        l1, l2 = _penalties(side)
        n_inner = 1 + int(self.alpha * n_data_columns / (5.0 * k))
        first = None
        for inner in range(n_inner):
            change = hals_sweep(A, YB, BtB, l1, l2)
            if first is None:
                first = change
            elif change <= (self.inner_tol**2) * first:
                break
        _project(side, A)


class ALSUpdate(Update):
    """Projected alternating least squares for the Frobenius loss.

    ``A <- max(0, (Y B)(B^T B)^+)``, as used for 4D-STEM by Uesugi et al.
    (Ultramicroscopy 2021). Fast per iteration but not monotone; use it with
    restarts (``n_restarts``) and keep the best, as the authors do.
    """

    balance = True

    def prepare(self, X):
        Xw, Xh = super().prepare(X)
        self.norm_X2 = squared_norm(X)
        return Xw, Xh

    def step(self, Y, A, B, want_objective, side=None):
        YB = times(Y, B)
        BtB = B.T @ B
        self.apply_products(A, YB, BtB, B.shape[0], side)
        if want_objective:
            return frobenius_from_products(self.norm_X2, YB, A, BtB)
        return None

    def apply_products(self, A, YB, BtB, n_data_columns=None, side=None):
        """Update ``A`` from the products ``Y @ B`` and ``B.T @ B`` (no data needed)."""
        gram, right = BtB.astype(np.float64), YB.T.astype(np.float64)
        l1, l2 = _penalties(side)
        if l1 is not None:
            gram[np.diag_indices_from(gram)] += l2
            right -= l1[:, None]
        solution = scipy.linalg.lstsq(gram, right, check_finite=False)[0]
        np.maximum(solution.T, 0, out=A, casting="unsafe")
        _project(side, A)


def _mu_exponent(beta):
    """Exponent that makes the β multiplicative update monotone (Févotte & Idier 2011)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


class MUUpdate(Update):
    """Multiplicative updates for the β-divergence (Lee & Seung; Févotte & Idier).

    - β = 2: ``A <- A * (Y B) / (A B^T B)``, two GEMMs per step.
    - β = 1 (KL) on sparse or mostly-zero data: the ratio ``Y / (A B^T)`` is
      needed only at the nonzeros of ``Y``; a numba kernel computes the
      numerator there, the denominator is a column sum of ``B``. The data are
      held as CSR (and its transpose); the dense model is never formed.
    - other β, and KL on dense data: row blocks of the model, so temporaries
      stay at one block.

    Entries are kept ≥ ``MU_FLOOR`` so that none is locked at zero, and model
    values ≥ ``MODEL_FLOOR`` so that no division by zero occurs.

    With projections (constraints) on the sparse KL path, the objective of a
    half-step is the one computed with the update, just before the
    projection, to avoid a second pass over the data.

    Parameters
    ----------
    beta : float
        β of the divergence.
    """

    def __init__(self, beta):
        self.beta = float(beta)
        self.gamma = _mu_exponent(self.beta)
        self.sparse_kl = False

    def prepare(self, X):
        self.norm_X2 = None
        self.sum_X = float(X.sum(dtype=np.float64))
        if self.beta == 2:
            self.norm_X2 = squared_norm(X)
            return X, X.T
        if self.beta == 1 and (sp.issparse(X) or density(X) <= SPARSE_KL_DENSITY):
            self.sparse_kl = True
            Xw = to_csr(X)
            Xw.sum_duplicates()
            return Xw, Xw.T.tocsr()
        return X, X.T

    def apply_products(self, A, YB, BtB, n_data_columns=None, side=None):
        """β = 2: update ``A`` from the products ``Y @ B`` and ``B.T @ B``."""
        self._apply(A, YB, A @ BtB, *_penalties(side))
        _project(side, A)

    def apply_ratio(self, A, numerator, denominator, side=None):
        """Multiplicative update from a ratio product and its denominator, then projections."""
        self._apply(A, numerator, denominator, *_penalties(side))
        _project(side, A)

    def _apply(self, A, numerator, denominator, l1=None, l2=None):
        if l1 is not None:
            denominator = denominator + l1 + l2 * A
        ratio = numerator / np.maximum(denominator, np.finfo(A.dtype).tiny)
        if self.gamma != 1:
            ratio **= self.gamma
        A *= ratio
        np.maximum(A, MU_FLOOR, out=A)

    def step(self, Y, A, B, want_objective, side=None):
        l1, l2 = _penalties(side)
        projected = side is not None and bool(side.projections)
        if self.beta == 2:
            YB = times(Y, B)
            BtB = B.T @ B
            self.apply_products(A, YB, BtB, side=side)
            return frobenius_from_products(self.norm_X2, YB, A, BtB) if want_objective else None
        if self.sparse_kl:
            B_sums = B.sum(axis=0, dtype=np.float64)
            k = A.shape[1]
            data_term = _kernels.kl_update_csr(
                Y.indptr, Y.indices, Y.data, A, B, B_sums,
                np.zeros(k) if l1 is None else l1, np.zeros(k) if l2 is None else l2,
                MU_FLOOR, MODEL_FLOOR, want_objective,
            )
            # The objective is the one at the update, before any projection:
            # evaluating it again after the projection would take a second
            # pass over the data (+50 % per iteration). The final divergence
            # of a fit is evaluated exactly.
            model_total = float(A.sum(axis=0, dtype=np.float64) @ B_sums)
            _project(side, A)
            if not want_objective:
                return None
            return data_term - self.sum_X + model_total
        want_objective_here = want_objective and not projected
        total = 0.0
        Bt = B.T
        for rows in row_blocks(*Y.shape):
            block = Y[rows].toarray() if sp.issparse(Y) else Y[rows]
            model = np.maximum(A[rows] @ Bt, MODEL_FLOOR)
            if self.beta == 1:
                numerator = (block / model) @ B
                denominator = B.sum(axis=0)[None, :]
            else:
                numerator = (block * model ** (self.beta - 2)) @ B
                denominator = model ** (self.beta - 1) @ B
            self._apply(A[rows], numerator, denominator, l1, l2)
            if want_objective_here:
                total += elementwise_beta_divergence(block, A[rows] @ Bt, self.beta)
        if _project(side, A):
            return self.objective(Y, A, B) if want_objective else None
        return total if want_objective else None

    def objective(self, Y, A, B):
        if self.beta == 2:
            return super().objective(Y, A, B)
        if self.sparse_kl:
            return kl_divergence_csr(Y, A, B, self.sum_X)
        total = 0.0
        for rows in row_blocks(*Y.shape):
            block = Y[rows].toarray() if sp.issparse(Y) else Y[rows]
            total += elementwise_beta_divergence(block, A[rows] @ B.T, self.beta)
        return total


def make_update(solver, beta):
    """The half-step object for a concrete solver name and loss β.

    Parameters
    ----------
    solver : {"hals", "mu", "als", "randomized"}
        ``"randomized"`` refines with HALS, so its half-step is HALS.
    beta : float

    Returns
    -------
    Update

    Examples
    --------
    >>> type(make_update("mu", 1.0)).__name__
    'MUUpdate'
    """
    if solver in ("hals", "randomized"):
        return HALSUpdate()
    if solver == "als":
        return ALSUpdate()
    return MUUpdate(beta)
