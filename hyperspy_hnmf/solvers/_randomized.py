"""Randomized Frobenius NMF: compress the data in a few passes, solve small, refine.

Following Erichson, Mendible, Wihlborn & Kutz (Pattern Recognit. Lett. 104,
2018): a randomized range finder (Halko, Martinsson & Tropp 2011) gives an
orthonormal basis ``Q`` (n × l, l = k + oversampling) of the data's dominant
column space in ``2 + 2 q`` passes (``q`` power iterations), with
``B = Qᵀ X`` (l × m). HALS then runs on the compressed problem: the products
it needs, ``X Hᵀ ≈ Q (B Hᵀ)`` and ``Xᵀ W ≈ Bᵀ (Qᵀ W)``, cost no pass over
the data, and the maps are projected onto nonnegative values at every step.
Finally ``refine_passes`` exact passes (:func:`~.exact.streaming_nmf`)
correct what the compression lost.
"""

import dask.array as da
import numpy as np
import scipy.linalg

from .._spec import (DEFAULT_INIT, DEFAULT_MAX_ITER, DEFAULT_OVERSAMPLING,
                     DEFAULT_POWER_ITERATIONS, DEFAULT_REFINE_PASSES, DEFAULT_TOL, resolve_fit)
from ._init import _FILLS, nndsvd_factors
from ._linalg import as_generator, one_thread, randomized_range
from ._loop import _balance, canonical_order
from ._objective import frobenius_from_products
from ._updates import HALSUpdate
from ._passes import _fit_passes
from ..matrix.streamed import StreamedMatrix, is_sparse, to_csr

__all__ = ["randomized_nmf"]


def randomized_nmf(X, n_components, *, oversampling=DEFAULT_OVERSAMPLING,
                   power_iterations=DEFAULT_POWER_ITERATIONS,
                   refine_passes=DEFAULT_REFINE_PASSES, init=DEFAULT_INIT,
                   max_iter=DEFAULT_MAX_ITER, tol=DEFAULT_TOL, random_state=None,
                   callback=None, constraints=None):
    """Frobenius NMF from a randomized compression of ``X``, refined by exact passes.

    Parameters
    ----------
    X : dask.array.Array, StreamedMatrix, ndarray or sparse array, shape (n, m)
        Nonnegative data; dask arrays are read chunk by chunk; sparse arrays
        (scipy or pydata) are read as CSR, never densified.
    n_components : int
    oversampling : int, default 10
        Extra dimensions of the compression (l = k + oversampling).
    power_iterations : int, default 2
        Power iterations of the range finder (two passes each); more give a
        better basis for data whose spectrum decays slowly.
    refine_passes : int, default 5
        Exact HALS iterations (one pass each) after the compressed solve; 0
        returns the compressed solution.
    init : {"nndsvd", "nndsvda", "nndsvdar", "random"}
        Initialization, from the SVD of the compressed data (no extra pass).
    max_iter, tol : int, float
        Iterations and relative tolerance of the compressed solve.
    random_state : None, int or numpy.random.Generator
    callback : callable, optional
        ``callback(iteration, objective)`` after every refinement pass.
    constraints : ConstraintPlan, optional
        As in :func:`~.exact.streaming_nmf`; they act in the refinement.

    Returns
    -------
    FitResult
        ``n_iter`` counts the refinement passes; ``passes`` (an extra
        attribute) is the total number of passes over the data.

    Examples
    --------
    >>> import dask.array as da
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((80, 4)) @ rng.random((4, 50))).astype(np.float32)
    >>> result = randomized_nmf(da.from_array(X, chunks=(20, 50)), 4, random_state=0)
    >>> result.passes, bool(np.linalg.norm(X - result.W @ result.H) / np.linalg.norm(X) < 0.05)
    (12, True)
    """
    X = _streamed(X)
    spec = resolve_fit(X, n_components, loss="frobenius", solver="randomized", init=init,
                       max_iter=max_iter, tol=tol, callback=callback, constraints=constraints,
                       oversampling=oversampling, power_iterations=power_iterations,
                       refine_passes=refine_passes)
    return _fit_randomized(X, spec, as_generator(random_state), callback)


def _fit_randomized(X, spec, rng, callback=None):
    """:func:`randomized_nmf` with resolved options (a :class:`~hyperspy_hnmf._spec.FitSpec`).

    ``X``: a StreamedMatrix, dask array, ndarray or sparse array; ``rng`` a
    generator. No checks.
    """
    X = _streamed(X)
    k, init, constraints = spec.n_components, spec.init, spec.plan
    max_iter, tol = spec.max_iter, spec.tol
    oversampling, power_iterations = spec.oversampling, spec.power_iterations
    refine_passes = spec.refine_passes
    passes_before = X.passes
    Q = randomized_range(X, k, rng, oversampling, power_iterations)
    B = np.ascontiguousarray((X.T @ Q).T, dtype=X.dtype)  # l × m, one pass
    with one_thread():
        Ub, S, Vt = scipy.linalg.svd(B, full_matrices=False, check_finite=False)
    if init == "random":
        scale = np.sqrt(max(float(B.sum()), 0.0) / (X.shape[0] * X.shape[1]) / k)
        W = np.abs(rng.standard_normal((X.shape[0], k))) * scale
        H = np.abs(rng.standard_normal((k, X.shape[1]))) * scale
    else:
        fill = _FILLS[init]
        mean = float((Q.sum(axis=0) @ B).sum()) / (X.shape[0] * X.shape[1])
        W, H = nndsvd_factors(Q @ Ub[:, :k], S[:k], Vt[:k], fill, max(mean, 0.0), rng)
    W = np.ascontiguousarray(W, dtype=X.dtype)
    Ht = np.ascontiguousarray(H.T, dtype=X.dtype)
    compressed_hals(Q.astype(X.dtype), B, W, Ht, max_iter, tol)
    H = np.ascontiguousarray(Ht.T)
    if refine_passes:
        result = _fit_passes(X, k, 2.0, "hals", init, refine_passes, 0.0, rng, callback,
                             constraints, W=W, H=H)
    else:
        from ..solvers._loop import FitResult

        W, H, _ = canonical_order(W, H, constraints.blocks if constraints is not None else None)
        result = FitResult(W=W, H=H, objective=np.zeros(0), n_iter=0, converged=True)
    result.passes = X.passes - passes_before
    return result


def compressed_hals(Q, B, W, Ht, max_iter, tol, norm2=None, stop="relative", update=None):
    """HALS on ``X ≈ Q B`` without a pass over the data; ``W`` and ``Ht`` updated in place.

    Parameters
    ----------
    Q : ndarray, shape (n, l)
        Orthonormal basis of the compression.
    B : ndarray, shape (l, m)
        ``Q.T @ X``.
    W : ndarray, shape (n, k)
    Ht : ndarray, shape (m, k)
    max_iter : int
    tol : float
    norm2 : float, optional
        ``||X||²`` of the uncompressed data (default ``||B||²``).
    stop : {"relative", "progress"}
        ``"relative"``: stop when an iteration lowers the objective by less
        than ``tol`` times itself; ``"progress"``: by less than ``tol`` times
        the decrease since the first iteration (noise dominates the error of
        low-dose data, so the relative rule would run to ``max_iter``).
    update : HALSUpdate, optional
        The half-step (default ``HALSUpdate()``, accelerated HALS);
        ``HALSUpdate(alpha=0)`` is plain HALS, one sweep per half-step.

    Returns
    -------
    error : float
        ``||X - W Hᵀ|| / ||X||`` with ``X`` replaced by ``Q B`` in the cross term.
    n_iter : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((30, 2)) @ rng.random((2, 20))
    >>> Q = np.linalg.qr(X @ rng.standard_normal((20, 4)))[0]
    >>> W, Ht = rng.random((30, 2)), rng.random((20, 2))
    >>> error, _ = compressed_hals(Q, Q.T @ X, W, Ht, 300, 1e-10)
    >>> bool(error < 1e-3)
    True
    """
    update = HALSUpdate() if update is None else update
    if norm2 is None:
        norm2 = float(np.sum(B.astype(np.float64) ** 2))
    previous = first = None
    objective = norm2 / 2
    iteration = 0
    for iteration in range(1, max_iter + 1):
        XHt = Q @ (B @ Ht)                          # ≈ X Hᵀ, n × k
        update.apply_products(W, XHt, Ht.T @ Ht, Ht.shape[0])
        XtW = B.T @ (Q.T @ W)                       # ≈ Xᵀ W, m × k
        WtW = W.T @ W
        update.apply_products(Ht, XtW, WtW, W.shape[0])
        objective = frobenius_from_products(norm2, XtW, Ht, WtW)
        _balance(W, Ht)
        error = np.sqrt(max(2.0 * objective, 0.0) / max(norm2, 1e-300))
        if previous is not None:
            if stop == "relative":
                done = previous > 0 and abs(previous - objective) / previous < tol
            else:
                done = previous - error <= tol * (first - error)
            if done:
                break
        if first is None:
            first = error
        previous = objective if stop == "relative" else error
    return float(np.sqrt(max(2.0 * objective, 0.0) / max(norm2, 1e-300))), iteration


def _streamed(X):
    """``X`` as a StreamedMatrix: dense arrays in row chunks of about 16 M entries,
    sparse arrays as one CSR chunk read in place (never densified)."""
    if isinstance(X, StreamedMatrix):
        return X
    if is_sparse(X):
        X = da.from_array(to_csr(X), chunks=X.shape, asarray=False)
    elif not isinstance(X, da.Array):
        X = np.asarray(X)
        X = da.from_array(X, chunks=(max(1, (1 << 24) // max(X.shape[1], 1)), -1))
    return StreamedMatrix(X)
