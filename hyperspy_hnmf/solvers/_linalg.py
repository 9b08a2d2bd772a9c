"""Small linear-algebra helpers shared by the solvers."""

import functools

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .._checks import row_blocks
from ..matrix.streamed import IN_MEMORY_POWER_ITERATIONS
from ..matrix.streamed import to_csr  # noqa: F401  (the one CSR conversion)


def times(Y, B):
    """``Y @ B`` with the fastest BLAS call for a transposed dense ``Y``.

    ``Y`` is ``X.T`` for the component step; ``(B.T @ X).T`` reads the
    row-major ``X`` in its own order, which is faster than ``X.T @ B``.

    Examples
    --------
    >>> X = np.arange(6.0).reshape(2, 3)
    >>> bool(np.allclose(times(X.T, np.ones((2, 1))), X.T @ np.ones((2, 1))))
    True
    """
    if isinstance(Y, np.ndarray) and Y.flags.f_contiguous and not Y.flags.c_contiguous:
        return (B.T @ Y.T).T
    return np.asarray(Y @ B)


def as_generator(random_state):
    """Return a :class:`numpy.random.Generator` for ``random_state``.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        ``None`` gives fresh entropy; an int seeds a new generator; a
        ``RandomState`` is turned into a generator seeded from it, so the same
        ``RandomState`` state gives the same results.

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> int(as_generator(0).integers(10)) == int(as_generator(0).integers(10))
    True
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def randomized_range(X, rank, rng, n_oversamples=10, n_power_iter=4):
    """Orthonormal basis ``Q`` of the dominant column space of ``X``.

    Halko, Martinsson & Tropp (SIAM Review 53, 2011), algorithm 4.4 with QR
    re-orthonormalization between power iterations. Costs
    ``2 * n_power_iter + 1`` products with ``X``; ``X`` is never copied.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m)
    rank : int
        Target rank.
    rng : numpy.random.Generator
    n_oversamples : int
        Extra columns of the sketch.
    n_power_iter : int
        Number of power iterations (each reads ``X`` twice).

    Returns
    -------
    ndarray, shape (n, rank + n_oversamples) or smaller

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((50, 3)) @ rng.random((3, 40))
    >>> Q = randomized_range(X, 3, rng)
    >>> bool(np.allclose(Q @ (Q.T @ X), X))
    True
    """
    n, m = X.shape
    width = min(rank + n_oversamples, n, m)
    dtype = np.result_type(X.dtype, np.float32)
    sketch = rng.standard_normal((m, width)).astype(dtype, copy=False)
    Q = orthonormal_basis(np.asarray(X @ sketch))
    for _ in range(n_power_iter):
        Z = orthonormal_basis(times(X.T, Q))
        Q = orthonormal_basis(np.asarray(X @ Z))
    return Q


def orthonormal_basis(Z):
    """``Q`` of the thin QR decomposition of a tall, skinny ``Z``, on one thread.

    LAPACK's threaded QR of a tall, skinny matrix spends its time in thread
    synchronization (0.67 s instead of 3 ms for 16384 × 17 on two cores):
    one thread is faster, and far faster on a busy machine.

    Examples
    --------
    >>> Z = np.random.default_rng(0).random((100, 3))
    >>> Q = orthonormal_basis(Z)
    >>> Q.shape, bool(np.allclose(Q.T @ Q, np.eye(3)))
    ((100, 3), True)
    """
    with one_thread():
        return scipy.linalg.qr(Z, mode="economic", check_finite=False)[0]


def one_thread():
    """A context in which BLAS and LAPACK run on one thread.

    For the small and the tall, skinny factorizations (QR, SVD of a sketch):
    threaded, they cost tens of milliseconds in thread synchronization and
    leave the BLAS threads slow for the products that follow (measured: a
    16 × 4096 SVD took 95 ms threaded, 2 ms on one thread, and the next 16
    HALS iterations ran at 2.3× their time).

    Examples
    --------
    >>> with one_thread():
    ...     Q = np.linalg.qr(np.ones((5, 2)))[0]
    >>> Q.shape
    (5, 2)
    """
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """The process's thread pools, found once (finding them reads every loaded library)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def randomized_svd(X, rank, rng, n_oversamples=10, n_power_iter=None):
    """Truncated SVD ``X ≈ U diag(S) Vt`` by random projection.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, m)
    rank : int
    rng : numpy.random.Generator
    n_oversamples, n_power_iter : int
        See :func:`randomized_range`; ``n_power_iter=None`` uses
        ``X.power_iterations`` when ``X`` defines it (data read in passes),
        else :data:`~hyperspy_hnmf.matrix.streamed.IN_MEMORY_POWER_ITERATIONS`.

    Returns
    -------
    U : ndarray, shape (n, rank)
    S : ndarray, shape (rank,)
    Vt : ndarray, shape (rank, m)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((30, 2)) @ rng.random((2, 20))
    >>> U, S, Vt = randomized_svd(X, 2, rng)
    >>> bool(np.allclose(U * S @ Vt, X))
    True
    """
    if n_power_iter is None:
        n_power_iter = getattr(X, "power_iterations", IN_MEMORY_POWER_ITERATIONS)
    Q = randomized_range(X, rank, rng, n_oversamples, n_power_iter)
    B = times(X.T, Q).T
    with one_thread():
        Ub, S, Vt = scipy.linalg.svd(B, full_matrices=False, check_finite=False)
    U = Q @ Ub
    return U[:, :rank], S[:rank], Vt[:rank]


def squared_norm(X):
    """``sum(X**2)`` in float64, reading ``X`` in blocks (no full-size copy).

    Parameters
    ----------
    X : ndarray, scipy.sparse matrix or StreamedMatrix

    Returns
    -------
    float

    Examples
    --------
    >>> squared_norm(np.full((3, 3), 2, dtype=np.float32))
    36.0
    """
    if hasattr(X, "statistics"):  # data read in passes: one pass
        return X.statistics()[2]
    if sp.issparse(X):
        values = X.data
        return float(np.dot(values.astype(np.float64), values.astype(np.float64)))
    total = 0.0
    rows = X.reshape(X.shape[0], -1) if X.ndim > 1 else X.reshape(1, -1)
    for block in row_blocks(*rows.shape):
        part = rows[block].astype(np.float64).ravel()
        total += float(np.dot(part, part))
    return total


def density(X):
    """Fraction of nonzero entries of ``X`` (counted in blocks for dense data).

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix

    Returns
    -------
    float

    Examples
    --------
    >>> density(np.eye(4))
    0.25
    """
    size = X.shape[0] * X.shape[1]
    if size == 0:
        return 0.0
    if sp.issparse(X):
        return X.count_nonzero() / size
    nonzero = sum(int(np.count_nonzero(X[rows])) for rows in row_blocks(*X.shape))
    return nonzero / size
