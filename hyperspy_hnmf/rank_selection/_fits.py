"""The ensemble of NMF runs behind rank selection: perturbation, Poisson
normalization, randomized compression and compressed HALS.

Arrays only (no HyperSpy): dense, or CSR matrices, which are perturbed,
weighted and compressed at their nonzeros (never densified). The fast path
fits ``Y ≈ W H`` with the exact HALS updates of Frobenius NMF on a
rank-``l`` randomized approximation ``Y ≈ Q B`` (Erichson et al., 2018): the
products ``Y Hᵀ = Q (B Hᵀ)`` and ``Wᵀ Y = (Wᵀ Q) B`` cost ``O((n + m) l k)``
instead of ``O(n m k)``.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .. import solvers
from ..solvers._linalg import squared_norm
from ..solvers._init import successive_projection
from ..solvers._randomized import compressed_hals
from ..solvers._updates import HALSUpdate

PERTURBATIONS = ("none", "uniform", "poisson")
# Columns of the randomized range beyond the largest rank, and power iterations.
_OVERSAMPLES = 10
_POWER_ITER = 2


@dataclass
class Run:
    """Components and maps of one fit, in the space the fit was made in."""

    W: np.ndarray
    H: np.ndarray
    error: float
    n_iter: int


def perturb(X, kind, level, rng):
    """A perturbed copy of ``X`` (or ``X`` itself for ``"none"``).

    A CSR matrix is perturbed at its nonzeros (zeros stay zero under both
    kinds, as for dense data) and stays CSR.
    """
    if kind == "none":
        return X
    if sp.issparse(X):
        Y = X.copy()
        if kind == "uniform":
            Y.data *= 1 - level + 2 * level * rng.random(Y.data.shape, dtype=Y.dtype)
        else:  # a Poisson draw of 0 is 0
            Y.data = rng.poisson(Y.data).astype(Y.dtype)
            Y.eliminate_zeros()
        return Y
    if kind == "uniform":
        noise = rng.random(X.shape, dtype=X.dtype)
        noise *= 2 * level
        noise += 1 - level
        noise *= X
        return noise
    return rng.poisson(X).astype(X.dtype)


def weighted(Y, row_scale, column_scale):
    """``Y / (row_scale ⊗ column_scale)``: a new array, or CSR matrix for CSR ``Y``."""
    if sp.issparse(Y):
        Y = sp.csr_matrix(Y, copy=True)
        Y.data /= np.repeat(row_scale, np.diff(Y.indptr)).astype(Y.dtype, copy=False)
        Y.data /= column_scale[Y.indices]
        return Y
    Y = Y / row_scale[:, None]
    Y /= column_scale[None, :]
    return Y


def compress(Y, rank, rng):
    """Randomized range finder: ``Y ≈ Q @ B`` with orthonormal ``Q`` (n × rank).

    ``Y`` is an array or a CSR matrix (read by sparse products).
    """
    Q = solvers._linalg.randomized_range(Y, rank, rng, 0, _POWER_ITER).astype(Y.dtype)
    if sp.issparse(Y):
        return Q, np.ascontiguousarray((Y.T @ Q).T, dtype=Y.dtype)
    return Q, Q.T @ Y


# Fits per run (the best is kept): one SPA start, the others random.
N_INIT = 4


def fit_compressed(Q, B, norm2, k, rng, max_iter, tol, n_init=None):
    """Best (lowest error) of ``n_init`` HALS fits of ``Q @ B``: one from SPA, the
    others from random starts."""
    starts = ["spa"] + ["random"] * ((n_init or N_INIT) - 1)
    runs = [_fit_compressed(Q, B, norm2, k, rng, max_iter, tol, start) for start in starts]
    return min(runs, key=lambda run: run.error)


def _spa_rows(Q, B, k):
    """Successive projection on the rows of ``Q B`` projected to rank ``k``."""
    with solvers._linalg.one_thread():
        U, S, _ = np.linalg.svd(B, full_matrices=False)
    chosen = successive_projection(Q @ (U[:, :k] * S[:k]), Q @ B.sum(axis=1), k)
    remaining = [i for i in range(Q.shape[0]) if i not in chosen][: k - len(chosen)]
    return np.array(chosen + remaining)


def _fit_compressed(Q, B, norm2, k, rng, max_iter, tol, start="random"):
    """Frobenius NMF of ``Q @ B`` by :func:`~hyperspy_hnmf.solvers._randomized.compressed_hals`.

    ``norm2`` is ``||Y||²`` of the uncompressed data; the returned error is
    ``||Y - W H|| / ||Y||`` with ``Y`` replaced by ``Q B`` in the cross term.
    Plain HALS (one sweep per half-step): on the compressed problem the
    products cost about as much as a sweep, so extra inner sweeps do not pay.
    Noise dominates the error of low-dose data, so the run stops when one
    iteration lowers the error by less than ``tol`` times the decrease since
    the first iteration (``stop="progress"``), not times the error itself.
    """
    n, m = Q.shape[0], B.shape[1]
    dtype = Q.dtype
    mean = max(float(Q.sum(axis=0) @ B.sum(axis=1)) / (n * m), 1e-12)
    scale = np.sqrt(mean / k)
    W = (rng.random((n, k)) * scale).astype(dtype)
    if start == "random":
        Ht = (rng.random((m, k)) * scale).astype(dtype)
    else:
        Ht = np.ascontiguousarray(np.maximum(Q[_spa_rows(Q, B, k)] @ B, 0).T)
        Ht += 1e-3 * Ht.mean()
    error, n_iter = compressed_hals(Q, B, W, Ht, max_iter, tol, norm2=norm2, stop="progress",
                                    update=HALSUpdate(alpha=0.0))
    return Run(W=W, H=np.ascontiguousarray(Ht.T), error=error, n_iter=n_iter)


def exact_spec(X, k, max_iter, tol, options):
    """The resolved options of the exact fits of rank ``k`` (checked once, not per run).

    Random starts; the loss is Frobenius unless ``options`` name another.
    """
    return solvers._nmf_spec(X, k, **{"loss": "frobenius", **options, "init": "random",
                                      "max_iter": max_iter, "tol": tol})


def fit_exact(Y, spec, seed):
    """One run of :func:`hyperspy_hnmf.solvers.nmf` with the resolved ``spec``, seeded by ``seed``."""
    result = solvers._fit_nmf(Y, dataclasses.replace(spec, random_state=seed))
    if spec.beta == 2.0:
        norm2 = squared_norm(Y)
        error = np.sqrt(2 * result.final_objective / norm2)
    else:
        error = float(result.final_objective)
    return Run(W=result.W, H=result.H, error=float(error), n_iter=int(result.n_iter))
