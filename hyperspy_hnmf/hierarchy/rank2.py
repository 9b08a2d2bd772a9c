"""Rank-2 NMF by alternating *exact* nonnegative least squares.

With one factor fixed, the best nonnegative 2-vector for one row is found in
closed form (:func:`nnls2`): the unconstrained least-squares solution if it is
nonnegative, otherwise the better of the two single-variable solutions. This is
the active-set enumeration of Kuang & Park's HierNMF2, vectorized over all rows,
so every half-step is the exact minimizer and the objective never increases.

All products with the data go through :class:`RowData`, which reads only the
rows it is given (dense rows or the nonzeros of CSR rows), accumulates in
float64 and never copies the data: the splitting tree
(:mod:`hyperspy_hnmf.hierarchy.tree`) fits rank-2 models to many row subsets of
one matrix without forming the submatrices.

References
----------
D. Kuang and H. Park, "Fast rank-2 nonnegative matrix factorization for
hierarchical document clustering", KDD 2013, 739-747.
N. Gillis, D. Kuang and H. Park, "Hierarchical clustering of hyperspectral
images using rank-two nonnegative matrix factorization", IEEE TGRS 53 (2015)
2066-2078.
"""

import numpy as np
import scipy.sparse as sp

from .._checks import check_count, check_tol
from ..matrix.rows import RowData
from ..solvers import canonical_order, check_data
from ..solvers._linalg import as_generator, one_thread

__all__ = ["RANK2_INITS", "RowData", "nnls2", "rank2_nmf"]

#: Initializations of :func:`rank2_nmf` given by name.
RANK2_INITS = ("svd", "random")

# Subspace iterations of the SVD initialization (each reads the rows twice).
_SVD_ITERATIONS = 4
# A second singular value below this fraction of the first is rounding noise.
_FLAT = 1e-6
# The objective counts as zero below this fraction of ||X||^2 (the formula
# from products cannot resolve smaller values).
_EXACT = 1e-13


def nnls2(gram, rhs):
    """Exact nonnegative least squares with two unknowns, for many right-hand sides.

    Solves, for every row ``b`` of ``rhs``, ``min_{w ≥ 0} w @ gram @ w - 2 b @ w``
    (that is ``min ||A w - x||`` with ``gram = A.T @ A`` and ``b = A.T @ x``).
    The minimizer is the unconstrained solution when it is nonnegative;
    otherwise one variable is zero at the optimum, and the better of the two
    one-variable solutions ``max(b_j, 0) / gram[j, j]`` (the one with the
    larger ``max(b_j, 0)**2 / gram[j, j]``) is taken. A singular ``gram``
    (parallel or zero columns of ``A``) takes the one-variable branch.

    Parameters
    ----------
    gram : ndarray, shape (2, 2)
        Symmetric positive semi-definite.
    rhs : ndarray, shape (r, 2)

    Returns
    -------
    ndarray, shape (r, 2), float64

    Examples
    --------
    >>> gram = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> nnls2(gram, np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]))
    array([[0.66666667, 0.66666667],
           [1.        , 0.        ],
           [0.        , 0.        ]])
    """
    gram = np.asarray(gram, dtype=np.float64)
    rhs = np.asarray(rhs, dtype=np.float64)
    g11, g12, g22 = gram[0, 0], gram[0, 1], gram[1, 1]
    b1, b2 = rhs[:, 0], rhs[:, 1]
    p1, p2 = np.maximum(b1, 0), np.maximum(b2, 0)
    s1 = p1 / g11 if g11 > 0 else np.zeros_like(b1)
    s2 = p2 / g22 if g22 > 0 else np.zeros_like(b2)
    first = p1 * s1 >= p2 * s2
    out = np.empty_like(rhs)
    out[:, 0] = np.where(first, s1, 0.0)
    out[:, 1] = np.where(first, 0.0, s2)
    det = g11 * g22 - g12 * g12
    if g11 > 0 and g22 > 0 and det > 1e-12 * g11 * g22:
        w1 = (g22 * b1 - g12 * b2) / det
        w2 = (g11 * b2 - g12 * b1) / det
        inside = (w1 >= 0) & (w2 >= 0)
        out[inside, 0] = w1[inside]
        out[inside, 1] = w2[inside]
    return out


def _orthonormal(V):
    """Orthonormal rows spanning the rows of ``V`` (2, m)."""
    with one_thread():
        return np.linalg.qr(V.T)[0].T


def svd_init(data, rows, v1=None):
    """Initial components from the dominant 2D subspace of ``X[rows]``.

    The subspace comes from a few subspace iterations started, deterministically,
    from ``v1`` (default: the column sums) and the row farthest from it. The
    rows projected onto that plane form a 2D cone; its two extreme rays (the
    rows of smallest and largest angle, as the successive projection algorithm
    would pick in 2D) give the components, clipped at zero. For a nonnegative
    matrix of rank 2 the extreme rays span the data cone, so the fit is exact
    from the start. Rows that are all parallel (second singular value under
    1e-6 of the first) give two equal components.

    Parameters
    ----------
    data : RowData
    rows : ndarray of int64
    v1 : ndarray, shape (m,), optional
        Estimate of the dominant right singular vector.

    Returns
    -------
    ndarray, shape (2, m), float64

    Examples
    --------
    >>> H = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]) @ H
    >>> H0 = svd_init(RowData(X), np.arange(4))
    >>> sorted(np.round(H0 / H0.max(axis=1, keepdims=True), 6).tolist())
    [[0.0, 1.0, 1.0], [0.5, 0.0, 1.0]]
    """
    if v1 is None:
        v1 = data.t_times(rows, np.ones((rows.size, 2)))[0]
    norm = np.linalg.norm(v1)
    if norm == 0:
        return np.zeros((2, data.shape[1]))
    v1 = v1 / norm
    start = np.vstack([v1, np.zeros_like(v1)])
    along = data.times(rows, start)[:, 0]
    residual = data.row_squares[rows] - along**2
    far = data.row(rows[int(np.argmax(residual))])
    far -= (far @ v1) * v1
    V = _orthonormal(np.vstack([v1, far]))
    for _ in range(_SVD_ITERATIONS):
        V = _orthonormal(data.t_times(rows, data.times(rows, V)))
    Z = data.times(rows, V)
    with one_thread():
        _, S, Vz_t = np.linalg.svd(Z, full_matrices=False)
    if S[1] <= _FLAT * S[0]:
        # All rows are (numerically) parallel: no second direction to split on.
        return np.vstack([v1, v1])
    coords = Z @ Vz_t.T
    basis = Vz_t @ V
    if coords[:, 0].sum() < 0:
        coords[:, 0] *= -1
        basis[0] *= -1
    lengths = np.hypot(coords[:, 0], coords[:, 1])
    valid = lengths > 1e-12 * max(float(lengths.max()), 1e-300)
    angles = np.where(valid, np.arctan2(coords[:, 1], coords[:, 0]), np.nan)
    ends = [int(np.nanargmin(angles)), int(np.nanargmax(angles))]
    return np.maximum(coords[ends] @ basis, 0)


def fit_rank2(data, rows, H, *, max_iter, tol, callback=None):
    """Alternating exact NNLS for ``X[rows] ≈ W @ H`` from initial components.

    Every iteration updates ``H`` then ``W`` by :func:`nnls2`; the objective
    ``0.5 * ||X[rows] - W H||^2`` is evaluated from the products after each
    ``W`` update and never increases.

    Parameters
    ----------
    data : RowData
    rows : ndarray of int64
    H : ndarray, shape (2, m)
        Initial components (the first step computes ``W`` from them).
    max_iter : int
    tol : float
        Stop when the objective decreases by less than this fraction in one
        iteration.
    callback : callable, optional
        ``callback(iteration, objective)`` after the first ``W`` (iteration 0)
        and after every iteration.

    Returns
    -------
    W : ndarray, shape (len(rows), 2), float64
    H : ndarray, shape (2, m), float64
    objective : ndarray
        Objective after the initial ``W`` and after every iteration.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> W, H, objective = fit_rank2(RowData(X), np.arange(3), np.eye(2),
    ...                             max_iter=10, tol=1e-8)
    >>> bool(np.allclose(W @ H, X)), float(objective[-1])
    (True, 0.0)
    """
    H = np.array(H, dtype=np.float64)
    norm2 = float(data.row_squares[rows].sum())

    def update_maps(H):
        XHt = data.times(rows, H)
        HHt = H @ H.T
        W = nnls2(HHt, XHt)
        WtW = W.T @ W
        value = 0.5 * (norm2 - 2 * float(np.sum(W * XHt)) + float(np.sum(WtW * HHt)))
        return W, WtW, max(value, 0.0)

    W, WtW, objective = update_maps(H)
    history = [objective]
    if callback is not None:
        callback(0, objective)
    for iteration in range(1, max_iter + 1):
        if objective <= _EXACT * norm2:
            break
        XtW = data.t_times(rows, W)
        H = nnls2(WtW, XtW.T).T
        W, WtW, objective = update_maps(H)
        history.append(objective)
        if callback is not None:
            callback(iteration, objective)
        previous = history[-2]
        if previous - objective <= tol * previous:
            break
    return W, np.ascontiguousarray(H), np.asarray(history)


def check_fit_options(max_iter, tol, init):
    """Validate the options shared by :func:`rank2_nmf` and the splitting tree.

    Examples
    --------
    >>> check_fit_options(100, 1e-4, "svd")
    """
    check_count(max_iter, "max_iter", 1)
    check_tol(tol)
    if isinstance(init, tuple) and len(init) == 2:
        return
    if isinstance(init, str) and init in RANK2_INITS:
        return
    raise ValueError(
        f"Unknown init {init!r}. Valid values are "
        f"{', '.join(repr(name) for name in RANK2_INITS)}, or a tuple (W, H) of "
        "initial arrays (shapes (n, 2) and (2, m); either may be None)."
    )


def initial_components(data, rows, init, rng, v1=None):
    """Initial ``H`` (2, m) for ``X[rows]`` from an init name or a ``(W, H)`` tuple.

    A given ``H`` is used as it is; a given ``W`` alone yields ``H`` by one
    exact NNLS step.

    Examples
    --------
    >>> data = RowData(np.eye(3))
    >>> initial_components(data, np.arange(3), (None, np.ones((2, 3))), None)
    array([[1., 1., 1.],
           [1., 1., 1.]])
    """
    n, m = rows.size, data.shape[1]
    if isinstance(init, tuple):
        W0, H0 = init
        if H0 is not None:
            H0 = np.asarray(H0, dtype=np.float64)
            _check_factor(H0, (2, m), "H")
            return H0.copy()
        if W0 is None:
            raise ValueError("init=(None, None) gives no initial factor; pass W or H.")
        W0 = np.asarray(W0, dtype=np.float64)
        _check_factor(W0, (n, 2), "W")
        return nnls2(W0.T @ W0, data.t_times(rows, W0).T).T
    if init == "random":
        scale = np.sqrt(max(float(data.row_sums[rows].mean()), 1e-300) / m)
        return scale * as_generator(rng).random((2, m))
    return svd_init(data, rows, v1)


def _check_factor(factor, shape, name):
    if factor.shape != shape:
        raise ValueError(f"The initial {name} has shape {factor.shape}, but the data need "
                         f"shape {shape}.")
    if not np.all(np.isfinite(factor)) or factor.min(initial=0) < 0:
        raise ValueError(f"The initial {name} must be finite and nonnegative.")


def rank2_nmf(X, *, max_iter=200, tol=1e-4, random_state=None, init="svd", callback=None):
    """Rank-2 NMF ``X ≈ W @ H`` by alternating exact nonnegative least squares.

    Each half-step solves the 2-variable NNLS problem of every row (or column)
    exactly in closed form (:func:`nnls2`, vectorized), so the objective
    ``0.5 * ||X - W H||^2`` never increases. The data are read through
    products ``X @ H.T`` and ``X.T @ W`` only: sparse data are never densified,
    dense data never copied (dense data with at most 30 % nonzeros are read as
    CSR, see :class:`RowData`).

    Parameters
    ----------
    X : array-like or scipy.sparse matrix, shape (n, m), nonnegative
    max_iter : int, default 200
        Maximum number of iterations (each updates ``H`` and ``W``).
    tol : float, default 1e-4
        Stop when the objective decreases by less than this fraction in one
        iteration.
    random_state : None, int or numpy.random.Generator
        Seed of ``init="random"``; the default ``"svd"`` initialization is
        deterministic and does not use it.
    init : {"svd", "random"} or tuple, default "svd"
        ``"svd"``: the extreme rays of the rows projected onto their dominant
        2D subspace (:func:`svd_init`; exact for a nonnegative rank-2 matrix).
        ``"random"``: uniform random components. A tuple ``(W, H)`` of initial
        arrays, either of which may be ``None`` (``H`` is used if given).
    callback : callable, optional
        ``callback(iteration, objective)`` after the initial ``W`` (iteration
        0) and after every iteration.

    Returns
    -------
    W : ndarray, shape (n, 2)
        Maps, in the dtype of ``X`` (float32 stays float32, other types give
        float64).
    H : ndarray, shape (2, m)
        Components, each summing to 1 (a zero component stays zero), ordered
        by decreasing total intensity ``W[:, j].sum()`` as in
        :func:`~hyperspy_hnmf.solvers.canonical_order`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((50, 2)) @ rng.random((2, 30))).astype(np.float32)
    >>> W, H = rank2_nmf(X)
    >>> W.dtype, W.shape, H.shape
    (dtype('float32'), (50, 2), (2, 30))
    >>> bool(np.linalg.norm(X - W @ H) / np.linalg.norm(X) < 1e-5)
    True
    """
    if not sp.issparse(X):
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array (samples × features), got {X.ndim}D.")
    check_data(X, where="rank2_nmf")
    check_fit_options(max_iter, tol, init)
    data = RowData(X)
    rows = np.arange(data.shape[0], dtype=np.int64)
    H0 = initial_components(data, rows, init, random_state)
    W, H, _ = fit_rank2(data, rows, H0, max_iter=max_iter, tol=tol, callback=callback)
    W, H, _ = canonical_order(W, H)
    return W.astype(data.dtype), H.astype(data.dtype)
