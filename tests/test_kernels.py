"""The numba kernels against plain NumPy references (solvers._kernels, solvers._linalg)."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from hyperspy_hnmf.solvers import _kernels, _linalg
from hyperspy_hnmf.solvers._updates import hals_sweep


@numba.njit
def _logs(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _kernels._log32(x[i])
    return out


def test_vectorizable_log_is_accurate_to_float32_rounding():
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(-80, 80, 200_000)).astype(np.float32)
    edges = np.float32([1.0, 2.0, 0.5, np.sqrt(2.0), np.nextafter(np.float32(np.sqrt(2.0)), 2),
                        1.0000001, 0.9999999, 3.0e38, 1.2e-38])
    x = np.concatenate([x, edges])
    reference = np.log(x.astype(np.float64))
    found = _logs(x).astype(np.float64)
    error = np.abs(found - reference)
    # Relative to the value, or to one float32 step of x where log(x) is near 0.
    assert np.all(error <= 3e-7 * np.maximum(np.abs(reference), 1.0))
    assert _logs(np.float32([1.0]))[0] == 0.0


def _reference_pass(X, W, Ht, l1, l2, floor, model_floor, update_maps):
    """The KL pass of kl_chunk_pass, written with dense float64 NumPy."""
    X = X.astype(np.float64)
    W = W.astype(np.float64).copy()
    Ht = Ht.astype(np.float64)
    if update_maps:
        ratio = X / np.maximum(W @ Ht.T, model_floor)
        denominator = Ht.sum(0) + l1 + l2 * W
        W = np.maximum(floor, W * (ratio @ Ht) / denominator)
    model = np.maximum(W @ Ht.T, model_floor)
    ratio = X / model
    positive = X > 0
    term = float(np.sum(X[positive] * np.log(ratio[positive])))
    return W, ratio.T @ W, term


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.float32])
@pytest.mark.parametrize("update_maps", [False, True])
def test_nonzero_kernel_matches_the_dense_reference_for_every_lane(dtype, update_maps):
    # Nonzeros in every lane position of the 8-byte words (first, last, runs,
    # isolated), so the trailing-zero gather must find each of them.
    rng = np.random.default_rng(1)
    n, m, k = 37, 64, 3
    X = (rng.random((n, m)) < 0.2) * rng.integers(1, 200, (n, m))
    X[0, :] = 0
    X[1, :] = np.arange(m) % 7
    X[2, ::8] = 5
    X[3, 7::8] = 9
    X = X.astype(dtype)
    W = (rng.random((n, k)) + 0.1).astype(np.float32)
    Ht = (rng.random((m, k)) + 0.1).astype(np.float32)
    l1, l2 = np.full(k, 0.2), np.full(k, 0.1)
    args = (Ht.sum(0, dtype=np.float64), l1, l2, 1e-16, 1e-12, update_maps)
    W_new, N, term = _kernels.kl_chunk_pass(X, W, Ht, *args)
    W_ref, N_ref, term_ref = _reference_pass(X, W, Ht, l1, l2, 1e-16, 1e-12, update_maps)
    np.testing.assert_allclose(W_new, W_ref, rtol=2e-5)
    np.testing.assert_allclose(N, N_ref, rtol=2e-5, atol=1e-9 * np.abs(N_ref).max())
    assert term == pytest.approx(term_ref, rel=1e-5)
    # The CSR twin (event data) shares the row routine: the same numbers.
    C = sp.csr_matrix(X.astype(np.float32))
    twin = _kernels.kl_chunk_pass_csr(C.indptr, C.indices, C.data, m, W, Ht, *args)
    np.testing.assert_allclose(twin[0], W_new, rtol=1e-6)
    np.testing.assert_allclose(twin[1], N, rtol=1e-6)
    assert twin[2] == pytest.approx(term, rel=1e-6)


def test_tiled_kernel_matches_the_dense_reference():
    rng = np.random.default_rng(2)
    n, m, k = 45, 1030, 5  # partial row tiles and a partial column tile
    X = rng.poisson(4.0, (n, m)).astype(np.uint16)
    W = (rng.random((n, k)) + 0.1).astype(np.float32)
    Ht = (rng.random((m, k)) + 0.1).astype(np.float32)
    l1, l2 = np.zeros(k), np.full(k, 0.05)
    args = (Ht.sum(0, dtype=np.float64), l1, l2, 1e-16, 1e-12, True)
    W_new, N, term = _kernels.kl_dense_chunk_pass(X, W, Ht, *args)
    W_ref, N_ref, term_ref = _reference_pass(X, W, Ht, l1, l2, 1e-16, 1e-12, True)
    np.testing.assert_allclose(W_new, W_ref, rtol=2e-5)
    np.testing.assert_allclose(N, N_ref, rtol=2e-5)
    assert term == pytest.approx(term_ref, rel=1e-5)


def _reference_lagged_pass(X, W, Ht, l1, l2, floor, model_floor):
    """The lagged KL pass: one ratio at the given maps gives the statistics and the update."""
    X, W, Ht = X.astype(np.float64), W.astype(np.float64), Ht.astype(np.float64)
    ratio = X / np.maximum(W @ Ht.T, model_floor)
    positive = X > 0
    term = float(np.sum(X[positive] * np.log(ratio[positive])))
    W_new = np.maximum(floor, W * (ratio @ Ht) / (Ht.sum(0) + l1 + l2 * W))
    return W_new, ratio.T @ W, term


@pytest.mark.parametrize("kernel", ["nonzero", "csr", "tiled"])
def test_lagged_pass_takes_statistics_at_the_given_maps_and_updates_them(kernel):
    # One sweep per row: N and the data term at W (not at the updated maps),
    # and the maps' multiplicative update from the same ratios. Shapes with
    # partial row and column tiles, a zero row and a zero column.
    rng = np.random.default_rng(6)
    n, m, k = 45, 1030, 5
    X = rng.poisson(2.0, (n, m)) * (rng.random((n, m)) < (0.05 if kernel != "tiled" else 1.0))
    X[3] = 0
    X[:, 7] = 0
    X = X.astype(np.uint16)
    W = (rng.random((n, k)) + 0.1).astype(np.float32)
    Ht = (rng.random((m, k)) + 0.1).astype(np.float32)
    l1, l2 = np.full(k, 0.2), np.full(k, 0.1)
    args = (Ht.sum(0, dtype=np.float64), l1, l2, 1e-16, 1e-12, True, True)
    if kernel == "csr":
        C = sp.csr_matrix(X.astype(np.float32))
        W_new, N, term = _kernels.kl_chunk_pass_csr(C.indptr, C.indices, C.data, m, W, Ht, *args)
    else:
        function = _kernels.kl_chunk_pass if kernel == "nonzero" else _kernels.kl_dense_chunk_pass
        W_new, N, term = function(X, W, Ht, *args)
    W_ref, N_ref, term_ref = _reference_lagged_pass(X, W, Ht, l1, l2, 1e-16, 1e-12)
    np.testing.assert_allclose(W_new, W_ref, rtol=2e-5)
    np.testing.assert_allclose(N, N_ref, rtol=2e-5, atol=1e-9 * np.abs(N_ref).max())
    assert term == pytest.approx(term_ref, rel=1e-5)
    assert not N[7].any()
    # The statistics are exactly those of a pass that leaves the maps alone.
    still = (_kernels.kl_chunk_pass_csr(C.indptr, C.indices, C.data, m, W, Ht, *args[:-2],
                                        False, False) if kernel == "csr"
             else function(X, W, Ht, *args[:-2], False, False))
    np.testing.assert_allclose(N, still[1], rtol=1e-6)
    assert term == pytest.approx(still[2], rel=1e-7)


def _reference_sweep(A, YB, BtB, l1, l2):
    """The HALS sweep as NumPy column updates (the formula of hals_sweep)."""
    A = A.astype(np.float64).copy()
    change = 0.0
    for j in range(A.shape[1]):
        gradient = A @ BtB[:, j] - YB[:, j] + l1[j] + l2[j] * A[:, j]
        column = np.maximum(0.0, A[:, j] - gradient / (BtB[j, j] + l2[j]))
        change += float(np.sum((column - A[:, j]) ** 2))
        A[:, j] = column
    return A, change


@pytest.mark.parametrize("penalty", [0.0, 0.4])
def test_hals_sweep_matches_the_column_formula_and_lowers_the_objective(penalty):
    rng = np.random.default_rng(3)
    Y = rng.random((50, 30))
    B = rng.random((30, 4))
    A = rng.random((50, 4)).astype(np.float32)
    YB, BtB = (Y @ B).astype(np.float32), (B.T @ B).astype(np.float32)
    l1, l2 = np.full(4, penalty), np.full(4, penalty / 2)
    expected, expected_change = _reference_sweep(A, YB, BtB, l1, l2)

    def objective(M):
        M = M.astype(np.float64)
        return (0.5 * np.sum((Y - M @ B.T) ** 2) + np.sum(l1 * M.sum(0))
                + 0.5 * np.sum(l2 * (M**2).sum(0)))

    before = objective(A)
    change = hals_sweep(A, YB, BtB, l1, l2)
    np.testing.assert_allclose(A, expected, rtol=1e-5, atol=1e-6)
    assert change == pytest.approx(expected_change, rel=1e-4)
    assert objective(A) < before
    assert A.min() >= 0


def test_one_thread_limits_blas_inside_and_restores_it_after():
    controller = _linalg._blas_controller()
    before = [info["num_threads"] for info in controller.select(user_api="blas").info()]
    with _linalg.one_thread():
        inside = [info["num_threads"] for info in
                  _linalg._blas_controller().select(user_api="blas").info()]
    after = [info["num_threads"] for info in controller.select(user_api="blas").info()]
    assert inside and set(inside) == {1}
    assert after == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 333])  # fewer rows than blocks, uneven blocks, several flushes
def test_dense_ratio_products_match_numpy(dtype, n):
    """The multi-layer fine-tuning's ratio products of dense data, against NumPy in float64."""
    from hyperspy_hnmf.solvers._ratio import KLData

    rng = np.random.default_rng(n)
    U, V = rng.gamma(0.5, 1.0, (n, 4)), rng.gamma(0.5, 1.0, (250, 4))
    X = rng.poisson(3.0 * U @ V.T).astype(dtype)
    X[0, :10] = 0
    C_right, C_left = rng.random((250, 3)), rng.random((n, 3))
    ratio = X.astype(np.float64) / np.maximum(U @ V.T, 1e-30)
    positive = X > 0
    term = float(np.sum(X[positive] * np.log(ratio[positive])))
    data = KLData(X)
    assert not data.sparse  # (mostly nonzero: the dense kernel)
    right, found = data.right(U, V, C_right, with_objective=True)
    left, none = data.left(U, V, C_left)
    rtol = 2e-5 if dtype == np.float32 else 1e-6
    np.testing.assert_allclose(right, ratio @ C_right, rtol=rtol)
    np.testing.assert_allclose(left, ratio.T @ C_left, rtol=rtol)
    assert found == pytest.approx(term, rel=rtol, abs=rtol * np.abs(X * ratio).sum())
    assert none == 0.0
    assert right.dtype == left.dtype == np.float64
