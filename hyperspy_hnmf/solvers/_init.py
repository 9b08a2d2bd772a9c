"""Initial factors for NMF: NNDSVD variants, SPA, random, or user arrays.

References
----------
C. Boutsidis and E. Gallopoulos, "SVD based initialization: a head start for
nonnegative matrix factorization", Pattern Recognition 41 (2008) 1350.
N. Gillis and S. A. Vavasis, "Fast and robust recursive algorithms for
separable nonnegative matrix factorization", IEEE TPAMI 36 (2014) 698.
"""

import numpy as np
import scipy.sparse as sp

from .._checks import INIT_METHODS, check_factor, check_init, check_init_factor, row_blocks
from ._linalg import randomized_svd
from ..matrix import compute_dtype

def data_mean(X):
    """Mean of all entries of ``X`` (dense or sparse) in float64.

    Examples
    --------
    >>> data_mean(np.ones((2, 3), dtype=np.float32))
    1.0
    """
    return float(X.sum(dtype=np.float64)) / (X.shape[0] * X.shape[1])


#: What replaces the zeros of NNDSVD for each SVD-based initialization.
_FILLS = {"nndsvd": None, "nndsvda": "mean", "nndsvdar": "random"}


def _nndsvd(X, k, rng, fill, scaled_fill=False):
    """NNDSVD of ``X``; zeros filled with the data mean, or ``sqrt(mean / k)`` if ``scaled_fill``."""
    U, S, Vt = randomized_svd(X, k, rng)
    mean = data_mean(X) if fill else 0.0
    return nndsvd_factors(U, S, Vt, fill, np.sqrt(max(mean, 0.0) / k) if scaled_fill else mean,
                          rng)


def nndsvd_factors(U, S, Vt, fill, level, rng):
    """NNDSVD factors from a truncated SVD ``U diag(S) Vt`` (Boutsidis & Gallopoulos).

    Parameters
    ----------
    U : ndarray, shape (n, k)
    S : ndarray, shape (k,)
    Vt : ndarray, shape (k, m)
    fill : {None, "mean", "random"}
        What replaces the zeros: nothing (NNDSVD), ``level`` (NNDSVDa) or
        small random values below ``level / 100`` (NNDSVDar).
    level : float
        The fill: the data mean in Boutsidis & Gallopoulos' NNDSVDa.
    rng : numpy.random.Generator

    Returns
    -------
    W : ndarray, shape (n, k)
    H : ndarray, shape (k, m)

    Examples
    --------
    >>> U = np.array([[0.6], [0.8]]); Vt = np.array([[1.0, 0.0]])
    >>> W, H = nndsvd_factors(U, np.array([4.0]), Vt, "mean", 0.5, None)
    >>> W.ravel().tolist(), H.ravel().tolist()
    ([1.2, 1.6], [2.0, 0.5])
    """
    n, m = U.shape[0], Vt.shape[1]
    k = len(S)
    W = np.zeros((n, k), dtype=np.float64)
    H = np.zeros((k, m), dtype=np.float64)
    # The leading singular pair of a nonnegative matrix can be chosen >= 0.
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(S[0]) * np.abs(Vt[0])
    for j in range(1, len(S)):
        u, v = U[:, j].astype(np.float64), Vt[j].astype(np.float64)
        up, un = np.maximum(u, 0), np.maximum(-u, 0)
        vp, vn = np.maximum(v, 0), np.maximum(-v, 0)
        nup, nun = np.linalg.norm(up), np.linalg.norm(un)
        nvp, nvn = np.linalg.norm(vp), np.linalg.norm(vn)
        if nup * nvp >= nun * nvn:
            a, b, scale = up / max(nup, 1e-300), vp / max(nvp, 1e-300), nup * nvp
        else:
            a, b, scale = un / max(nun, 1e-300), vn / max(nvn, 1e-300), nun * nvn
        weight = np.sqrt(S[j] * scale)
        W[:, j] = weight * a
        H[j] = weight * b
    tiny = 1e-6 * max(W.max(), H.max(), 1e-300)
    W[W < tiny] = 0
    H[H < tiny] = 0
    if fill == "mean":
        W[W == 0] = level
        H[H == 0] = level
    elif fill == "random":
        W[W == 0] = level * rng.random(np.count_nonzero(W == 0)) / 100
        H[H == 0] = level * rng.random(np.count_nonzero(H == 0)) / 100
    return W, H


def _least_squares_loadings(X, H):
    """Nonnegative projection of the least-squares maps for fixed components."""
    gram = H @ H.T
    gram[np.diag_indices_from(gram)] += 1e-12 * max(np.trace(gram), 1e-300)
    rhs = np.asarray(X @ H.T.astype(X.dtype, copy=False), dtype=np.float64)
    W = np.linalg.solve(gram, rhs.T).T
    return np.maximum(W, 0)


def spa_rows(X, k, rng):
    """Indices of ``k`` rows of ``X`` chosen by the successive projection algorithm.

    The rows are first normalized to unit sum, so that pure rows are the
    vertices of the simplex that contains all rows, then compressed onto the
    dominant ``k``-dimensional subspace; SPA repeatedly picks the row of largest
    residual norm and projects it out.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m), nonnegative
    k : int
    rng : numpy.random.Generator
        Used by the randomized SVD of the compression step.

    Returns
    -------
    ndarray of int, shape (k,)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> H = np.eye(3, 6)
    >>> W = np.vstack([np.eye(3), rng.dirichlet(np.ones(3), 20)])
    >>> sorted(spa_rows(W @ H, 3, rng).tolist())
    [0, 1, 2]
    """
    U, S, Vt = randomized_svd(X, k, rng)
    row_sums = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
    chosen = successive_projection(U * S, row_sums, k)
    if len(chosen) < k:
        remaining = np.setdiff1d(np.arange(X.shape[0]), chosen)
        chosen.extend(rng.choice(remaining, k - len(chosen), replace=False))
    return np.asarray(chosen[:k])


def successive_projection(reduced, row_sums, k):
    """Indices of the up to ``k`` purest rows: the successive projection algorithm.

    Rows of ``reduced`` (the data's rows in a rank-``k`` basis) are divided by
    the data's row sums; then, ``k`` times, the row of largest norm is taken
    and every row is projected onto the orthogonal complement of it
    (Gillis & Vavasis 2014). Stops early when the residual vanishes.

    Parameters
    ----------
    reduced : ndarray, shape (n, k)
    row_sums : ndarray, shape (n,)
    k : int

    Returns
    -------
    list of int

    Examples
    --------
    >>> successive_projection(np.array([[1.0, 0], [0, 2], [0.5, 1]]), np.array([1.0, 2, 1.5]), 2)
    [0, 1]
    """
    residual = np.asarray(reduced, dtype=np.float64).copy()
    valid = row_sums > 0
    residual[valid] /= np.asarray(row_sums, dtype=np.float64)[valid, None]
    residual[~valid] = 0
    chosen = []
    for _ in range(k):
        norms = np.einsum("ij,ij->i", residual, residual)
        norms[chosen] = -1
        index = int(np.argmax(norms))
        chosen.append(index)
        direction = residual[index]
        length = np.dot(direction, direction)
        if length <= 0:
            break
        residual -= np.outer(residual @ direction / length, direction)
    return chosen


def _spa(X, k, rng):
    rows = spa_rows(X, k, rng)
    H = X[rows]
    H = H.toarray() if sp.issparse(H) else np.array(H, dtype=np.float64)
    W = _least_squares_loadings(X, H.astype(np.float64))
    # A component that the projection leaves unused would stay at zero.
    dead = W.sum(axis=0) == 0
    W[:, dead] = data_mean(X) / max(k, 1)
    return W, H.astype(np.float64)


def _random(X, k, rng):
    n, m = X.shape
    scale = np.sqrt(max(data_mean(X), 0) / k)
    W = scale * np.abs(rng.standard_normal((n, k)))
    H = scale * np.abs(rng.standard_normal((k, m)))
    return W, H


def poisson_scales(X, relative=True):
    """Square roots of the row and column sums of ``X`` over their means (1 where a sum is 0).

    Dividing ``X`` by ``outer(a, b)`` is the weighting of Keenan & Kotula
    (Surf. Interface Anal. 36 (2004) 203) that makes Poisson noise roughly
    uniform, as HyperSpy's ``normalize_poissonian_noise`` does.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m)
    relative : bool, default True
        Sums over their means (the weighted data keep the original's
        magnitude); False: the sums themselves, HyperSpy's exact weights
        (``normalize_poissonian_noise``), so that a weighted fit is the same,
        objective included, whichever path weights the data.

    Returns
    -------
    a : ndarray, shape (n,)
    b : ndarray, shape (m,)

    Examples
    --------
    >>> a, b = poisson_scales(np.array([[4.0, 0.0], [0.0, 0.0]]))
    >>> a.round(3).tolist(), b.round(3).tolist()
    ([1.414, 1.0], [1.414, 1.0])
    """
    if hasattr(X, "statistics"):  # data read in passes: both sums in one pass
        row_sums, column_sums, _ = X.statistics()
    else:
        row_sums, column_sums = X.sum(axis=1, dtype=np.float64), X.sum(axis=0, dtype=np.float64)
    if not relative:
        rows, cols = (np.asarray(sums, dtype=np.float64).ravel()
                      for sums in (row_sums, column_sums))
        return (np.sqrt(np.where(rows > 0, rows, 1.0)),
                np.sqrt(np.where(cols > 0, cols, 1.0)))
    return poisson_scales_from_sums(row_sums, column_sums)


def poisson_scales_from_sums(row_sums, column_sums, dtype=np.float64):
    """:func:`poisson_scales` from the row and column sums, each relative to its mean.

    The weighting is invariant to the overall scale; dividing by the means
    keeps the weighted data near the original's magnitude (float32 safe).

    Examples
    --------
    >>> a, b = poisson_scales_from_sums([4.0, 0.0, 1.0], [9.0, 1.0])
    >>> a.round(3).tolist(), b.round(3).tolist()
    ([1.549, 1.0, 0.775], [1.342, 0.447])
    """
    rows = np.asarray(row_sums, dtype=np.float64).ravel()
    cols = np.asarray(column_sums, dtype=np.float64).ravel()
    rows = np.sqrt(np.where(rows > 0, rows / max(rows.mean(), 1e-300), 1.0))
    cols = np.sqrt(np.where(cols > 0, cols / max(cols.mean(), 1e-300), 1.0))
    return rows.astype(dtype), cols.astype(dtype)


def _poisson_weighted(X, copy_held=False):
    """``X / outer(a, b)``: a scaled CSR copy for sparse data (small), else dense in blocks.

    Data read in passes are scaled chunk by chunk as they are read; with
    ``copy_held``, integer counts held in memory (a :func:`~hyperspy_hnmf.matrix.held_matrix`)
    give a weighted copy in their float type instead, as floats in memory do
    (a tree's many row-subset products read it in place).
    """
    a, b = poisson_scales(X)
    if hasattr(X, "scaled"):  # data read in passes: scale each chunk as it is read
        if not (copy_held and X.held_array is not None):
            return X.scaled(a, b), a, b
        X = X.held_array
    dtype = compute_dtype(X.dtype)
    inverse_a, inverse_b = (1 / a).astype(dtype), (1 / b).astype(dtype)
    if sp.issparse(X):
        scaled = X.tocsr(copy=True).astype(dtype, copy=False)
        rows = np.repeat(np.arange(X.shape[0]), np.diff(scaled.indptr))
        scaled.data *= inverse_a[rows] * inverse_b[scaled.indices]
        return scaled, a, b
    scaled = np.empty(X.shape, dtype=dtype)
    for rows in row_blocks(*X.shape):
        np.multiply(X[rows], inverse_a[rows, None], out=scaled[rows])
        scaled[rows] *= inverse_b
    return scaled, a, b


def initialize(X, k, init, rng, poisson_weighted=False, user_init=True):
    """Initial nonnegative factors ``W`` (n×k) and ``H`` (k×m), of ``X``'s dtype.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m), nonnegative
    k : int
        Number of components.
    init : str or tuple
        One of ``INIT_METHODS``:

        - ``"nndsvd"``: nonnegative double SVD; zeros stay (good for HALS,
          sparse results);
        - ``"nndsvda"``: zeros filled with the data mean (good for all solvers;
          with ``poisson_weighted``, ``sqrt(mean / k)``);
        - ``"nndsvdar"``: zeros filled with small random values;
        - ``"spa"``: the ``k`` purest rows of ``X`` (successive projection
          algorithm) as components, maps by nonnegative least squares;
        - ``"random"``: scaled absolute Gaussian entries.

        Or a tuple ``(W, H)`` of user arrays; either may be ``None`` (not
        both), in which case it is computed from the other by nonnegative
        least squares. A user factor that is all zero, has a zero component
        or linearly dependent components raises ``ValueError``
        (:func:`~hyperspy_hnmf._checks.check_init_factor`).
    rng : numpy.random.Generator
    poisson_weighted : bool, default False
        Compute the SVD-based and SPA initializations from the data weighted
        by :func:`poisson_scales` and scale the factors back. For counted
        data fitted with the KL loss this keeps the few bright pixels (the
        direct beam) from dominating the singular vectors, and starts the
        multiplicative updates near a much better optimum. The zeros of
        ``"nndsvda"``/``"nndsvdar"`` are then filled with ``sqrt(mean / k)``
        (the start of ``c X`` is ``c`` times that of ``X``).
    user_init : bool, default True
        Whether a tuple ``init`` comes from the user and is checked for
        degenerate factors; False for factors of the package's own making
        (e.g. the fixed components of
        :func:`~hyperspy_hnmf.solvers.solve_loadings`, which may legitimately
        repeat one another).

    Returns
    -------
    W : ndarray, shape (n, k)
    H : ndarray, shape (k, m)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((20, 3)) @ rng.random((3, 10))
    >>> W, H = initialize(X, 3, "nndsvda", rng)
    >>> W.shape, H.shape, bool(W.min() >= 0 and H.min() >= 0)
    ((20, 3), (3, 10), True)
    """
    n, m = X.shape
    dtype = X.dtype
    if isinstance(init, tuple):
        if len(init) != 2 or (init[0] is None and init[1] is None):
            raise ValueError(
                "A user initialization must be a tuple (W, H) of arrays of shapes "
                f"({n}, {k}) and ({k}, {m}); one of them may be None."
            )
        W0, H0 = init
        H = None if H0 is None else check_factor(H0, (k, m), "H", dtype)
        W = None if W0 is None else check_factor(W0, (n, k), "W", dtype)
        for factor, name in ((W, "W"), (H, "H")):
            if factor is not None and user_init:
                check_init_factor(factor, name)
        if W is None:
            W = _least_squares_loadings(X, H.astype(np.float64)).astype(dtype)
        if H is None:
            H = _least_squares_loadings(X.T, W.T.astype(np.float64)).T.astype(dtype)
        return np.ascontiguousarray(W), np.ascontiguousarray(H)
    if init in ("nndsvd", "nndsvda", "nndsvdar", "spa") and poisson_weighted:
        scaled, a, b = _poisson_weighted(X)
        if init == "spa":
            W, H = _spa(scaled, k, rng)
        else:
            # The fill scales as the factors do (a product of fills is at most
            # the mean): filled with the mean itself, as for the Frobenius loss,
            # the fills' products (k mean²) dwarf counted data and the
            # multiplicative updates end in worse minima (and the start would
            # depend on the data's units).
            W, H = _nndsvd(scaled, k, rng, _FILLS[init], scaled_fill=True)
        W = W * a[:, None].astype(dtype)
        H = H * b[None, :].astype(dtype)
    elif init in ("nndsvd", "nndsvda", "nndsvdar"):
        W, H = _nndsvd(X, k, rng, _FILLS[init])
    elif init == "spa":
        W, H = _spa(X, k, rng)
    elif init == "random":
        W, H = _random(X, k, rng)
    else:
        check_init(init)
    return (
        np.ascontiguousarray(W, dtype=dtype),
        np.ascontiguousarray(H, dtype=dtype),
    )
