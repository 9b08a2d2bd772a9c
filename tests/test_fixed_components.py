"""KL maps for fixed components, row by row (solvers._fixed_components)."""

import numpy as np
import pytest
import scipy.sparse as sp

from hyperspy_hnmf.solvers import MU_FLOOR
from hyperspy_hnmf.solvers._fixed_components import ROW_CSR_DENSITY, kl_maps


def mixed_rows(dtype, seed=0):
    """Poisson rows from mostly zero (a few counts) to dense, and one empty row."""
    rng = np.random.default_rng(seed)
    H = rng.gamma(0.5, 1.0, (4, 256))
    H /= H.sum(axis=1, keepdims=True)
    W_true = rng.gamma(0.6, 1.0, (90, 4)) * np.geomspace(10, 20_000, 90)[:, None]
    X = rng.poisson(W_true @ H).astype(dtype)
    X[17] = 0
    return X, H.astype(dtype)


def solve(X, H, max_iter=400, tol=1e-7):
    k = H.shape[0]
    A = np.ones((X.shape[0], k))
    updates = kl_maps(X, H, A, H.sum(axis=1, dtype=np.float64), np.zeros(k), np.zeros(k),
                      max_iter, tol, MU_FLOOR, X.dtype.type(1e-30))
    return A, updates


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_gets_the_same_maps_whatever_the_storage(dtype):
    # Dense data iterated every row on all its entries, CSR data on the
    # nonzeros: a mostly-zero row paid for every zero at every update (the
    # leaf maps of bench_hierarchy's KL tree, 3.7 % nonzero: 34 s of CPU
    # instead of 1.4 s), and the same row got other maps from a dense array
    # than from CSR or a chunk kept as CSR.
    X, H = mixed_rows(dtype)
    density = np.count_nonzero(X, axis=1) / X.shape[1]
    assert density.min() == 0 and density.max() > ROW_CSR_DENSITY
    assert np.count_nonzero(density <= ROW_CSR_DENSITY) > 20
    maps, updates = solve(X, H)
    backwards = slice(None, None, -1)
    for other, rows in ((sp.csr_matrix(X), slice(None)), (sp.csr_matrix(X[::-1]), backwards),
                        (X[::-1], backwards), (X[40:], slice(40, None))):
        other_maps, other_updates = solve(other, H)
        np.testing.assert_array_equal(other_maps, maps[rows])
        np.testing.assert_array_equal(other_updates, updates[rows])
    assert np.all(maps[17] == MU_FLOOR) and updates.max() > 10 * updates.min()


def test_exact_maps_are_recovered_on_sparse_and_dense_rows():
    rng = np.random.default_rng(1)
    H = rng.gamma(0.3, 1.0, (3, 200))
    H[:, rng.random(200) < 0.6] = 0  # mostly-zero rows of the model
    H /= H.sum(axis=1, keepdims=True)
    W_true = rng.gamma(1.0, 50.0, (60, 3))
    W_true[::2, 0] = 0  # ... and rows without the first component
    X = W_true @ H
    X[:20] += 1.0  # dense rows (every entry nonzero), still exact
    H_dense = np.vstack([H, np.full(200, 1 / 200)])
    W_dense = np.hstack([W_true, np.zeros((60, 1))])
    W_dense[:20, 3] = 200.0
    density = np.count_nonzero(X, axis=1) / X.shape[1]
    assert density[:20].min() == 1 and density[20:].max() <= ROW_CSR_DENSITY
    maps, _ = solve(X, H_dense, max_iter=20_000, tol=1e-13)
    np.testing.assert_allclose(maps, W_dense, atol=1e-4 * W_dense.max())

