"""Array-level solvers: recovery, monotonicity, dtypes, sparsity, bad input."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from hyperspy_hnmf import solvers
from hyperspy_hnmf.solvers import _updates, beta_divergence, nmf, solve_loadings
from hyperspy_hnmf.solvers._init import initialize, spa_rows

SOLVER_LOSSES = [("hals", "frobenius"), ("als", "frobenius"), ("mu", "frobenius"),
                 ("mu", "kl"), ("mu", "is"), ("mu", 0.5)]


def low_rank(n=120, m=80, k=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = rng.random((n, k))
    H = rng.random((k, m))
    return (W @ H).astype(dtype), W, H


def counts(n=200, m=150, k=3, scale=0.3, seed=1):
    rng = np.random.default_rng(seed)
    W = rng.gamma(0.5, 1.0, (n, k))
    H = rng.gamma(0.3, 1.0, (k, m))
    return rng.poisson(scale * W @ H).astype(np.float32)


def relative_error(X, result):
    return np.linalg.norm(X - result.W @ result.H) / np.linalg.norm(X)


@pytest.mark.parametrize("init", ["nndsvda", "random"])
def test_hals_recovers_exact_low_rank_product(init):
    X, _, _ = low_rank()
    result = nmf(X, 4, init=init, max_iter=5000, tol=0, random_state=0)
    assert relative_error(X, result) < 1e-5


def test_mu_kl_and_als_fit_exact_low_rank_product_closely():
    X, _, _ = low_rank()
    for solver, loss in [("mu", "kl"), ("als", "frobenius")]:
        result = nmf(X, 4, loss=loss, solver=solver, init="random", max_iter=3000,
                     tol=0, random_state=0)
        assert relative_error(X, result) < 5e-3, (solver, loss)


@pytest.mark.parametrize("solver,loss", [s for s in SOLVER_LOSSES if s[0] != "als"])
def test_objective_is_monotone(solver, loss):
    X, _, _ = low_rank(seed=3)
    X += 0.01  # β ≤ 0 needs positive data
    result = nmf(X, 3, loss=loss, solver=solver, init="random", max_iter=150, tol=0,
                 random_state=0)
    steps = np.diff(result.objective)
    assert np.all(steps <= 1e-10 * result.objective[:-1]), steps.max()
    assert result.objective[-1] < 0.5 * result.objective[0]


def test_sparse_kl_path_is_monotone_on_counts():
    X = counts()
    result = nmf(X, 3, loss="kl", init="random", max_iter=100, tol=0, random_state=0)
    assert np.all(np.diff(result.objective) <= 1e-6 * result.objective[:-1])


def test_recorded_objective_matches_direct_evaluation():
    X = counts().astype(np.float64)
    for solver, loss in [("hals", "frobenius"), ("mu", "kl"), ("mu", 0.5), ("als", "frobenius")]:
        beta = solvers._checks.loss_to_beta(loss)
        result = nmf(X + (beta <= 0), 3, loss=loss, solver=solver, max_iter=30,
                     random_state=0)
        model = result.W @ result.H
        direct = solvers._objective.elementwise_beta_divergence(X + (beta <= 0), model, beta)
        assert result.final_objective == pytest.approx(direct, rel=1e-6), solver


def test_sparse_kl_equals_dense_kl_path(monkeypatch):
    """The CSR and the tiled dense kernels of an in-memory KL fit give the same fit."""
    X = counts()
    sparse_run = nmf(X, 3, loss="kl", max_iter=40, tol=0, random_state=0)
    monkeypatch.setattr(solvers, "DENSE_KL_DENSITY", -1.0)  # keep the data dense
    dense_run = nmf(X, 3, loss="kl", max_iter=40, tol=0, random_state=0)
    np.testing.assert_allclose(sparse_run.objective, dense_run.objective, rtol=1e-4)
    np.testing.assert_allclose(sparse_run.W @ sparse_run.H, dense_run.W @ dense_run.H,
                               rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_in_memory_kl_fits_run_fused_passes_with_the_half_steps_iterates(layout, monkeypatch):
    """An in-memory KL fit reads the data once per iteration through the fused kernels
    of data read in passes (the half-step loop is not called), and its iterates are
    those of the reference: alternating multiplicative half-steps (``MUUpdate``)."""
    from hyperspy_hnmf.solvers._linalg import as_generator, to_csr
    from hyperspy_hnmf.solvers._loop import alternate, canonical_order

    X = counts(n=300, m=200, scale=3.0)  # 41 % nonzero
    monkeypatch.setattr(solvers, "DENSE_KL_DENSITY", -1.0 if layout == "dense" else 2.0)
    data = X if layout == "dense" else to_csr(X)
    W0, H0 = initialize(data, 3, "nndsvda", as_generator(0), poisson_weighted=True)
    reference = alternate(data, W0.copy(), H0.copy(), _updates.MUUpdate(1.0), max_iter=40,
                          tol=0)

    def refuse(*args, **kwargs):
        raise AssertionError("the half-step loop was called")

    monkeypatch.setattr(solvers, "alternate", refuse)
    result = nmf(X, 3, loss="kl", max_iter=40, tol=0, random_state=0)
    np.testing.assert_allclose(result.objective, reference.objective, rtol=2e-6)
    W, H, _ = canonical_order(reference.W, reference.H)
    np.testing.assert_allclose(result.W @ result.H, W @ H, rtol=1e-4, atol=1e-6)
    assert result.divergence == pytest.approx(beta_divergence(X, result.W, result.H, 1),
                                              rel=1e-6)


@pytest.mark.parametrize("solver,loss", [("hals", "frobenius"), ("mu", "kl"), ("als", "frobenius")])
def test_scipy_sparse_input_gives_dense_result(solver, loss):
    X = counts()
    dense = nmf(X, 3, loss=loss, solver=solver, max_iter=30, tol=0, random_state=0)
    sparse = nmf(sp.csr_matrix(X), 3, loss=loss, solver=solver, max_iter=30, tol=0,
                 random_state=0)
    np.testing.assert_allclose(sparse.objective, dense.objective, rtol=1e-4)


def test_kl_on_sparse_data_never_builds_dense_model():
    # 20000 x 20000: a dense model would take 1.6 GB in float32.
    n = 20000
    rng = np.random.default_rng(0)
    nnz = 60000
    X = sp.csr_matrix(
        (rng.poisson(3.0, nnz).astype(np.float32) + 1,
         (rng.integers(0, n, nnz), rng.integers(0, n, nnz))),
        shape=(n, n),
    )
    nmf(X, 2, loss="kl", init="random", max_iter=2, random_state=0)  # compile
    tracemalloc.start()
    result = nmf(X, 2, loss="kl", init="random", max_iter=5, tol=0, random_state=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6, peak
    assert np.all(np.diff(result.objective) <= 1e-6 * result.objective[:-1])


@pytest.mark.parametrize("solver,loss", SOLVER_LOSSES)
def test_float32_in_float32_out(solver, loss):
    X = low_rank(dtype=np.float32)[0] + np.float32(0.01)
    result = nmf(X, 3, loss=loss, solver=solver, max_iter=5, random_state=0)
    assert result.W.dtype == np.float32 and result.H.dtype == np.float32
    W = solve_loadings(X, result.H, loss=loss, solver=solver, max_iter=5)
    assert W.dtype == np.float32


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", "nndsvdar", "spa", "random"])
def test_same_seed_same_result_and_every_init_is_valid(init):
    X = counts()
    first = nmf(X, 3, init=init, max_iter=20, random_state=7)
    second = nmf(X, 3, init=init, max_iter=20, random_state=7)
    np.testing.assert_array_equal(first.W, second.W)
    np.testing.assert_array_equal(first.H, second.H)
    assert first.W.min() >= 0 and first.H.min() >= 0


def test_different_seeds_give_different_random_starts():
    X = counts()
    a = nmf(X, 3, init="random", max_iter=3, random_state=1)
    b = nmf(X, 3, init="random", max_iter=3, random_state=2)
    assert not np.allclose(a.W, b.W)


def test_initializations_shapes_and_nonnegativity():
    X = counts()
    rng = np.random.default_rng(0)
    for init in solvers.INIT_METHODS:
        W, H = initialize(X, 4, init, rng)
        assert W.shape == (X.shape[0], 4) and H.shape == (4, X.shape[1])
        assert W.dtype == X.dtype and W.min() >= 0 and H.min() >= 0
    W, H = initialize(X, 4, "nndsvd", rng)
    assert (W == 0).any()
    W, H = initialize(X, 4, "nndsvda", rng)
    assert (W > 0).all() and (H > 0).all()


def test_spa_finds_the_pure_rows():
    rng = np.random.default_rng(0)
    H = rng.random((4, 30))
    W = np.vstack([np.eye(4) * 3, rng.dirichlet(np.ones(4), 60)])
    order = rng.permutation(len(W))
    rows = spa_rows(W[order] @ H, 4, rng)
    assert sorted(order[rows].tolist()) == [0, 1, 2, 3]


def test_user_initialization_arrays():
    X, W0, H0 = low_rank()
    result = nmf(X, 4, init=(W0, H0), max_iter=1, tol=0)
    assert relative_error(X, result) < 1e-10
    result = nmf(X, 4, init=(None, H0), max_iter=200, random_state=0)
    assert relative_error(X, result) < 1e-3
    # Only the maps given (non-square data: 120 x 80): the components are
    # their nonnegative least-squares fit, exact for exact data.
    W_start, H_start = initialize(X, 4, (W0, None), None)
    assert W_start.shape == (120, 4) and H_start.shape == (4, 80)
    np.testing.assert_allclose(H_start, H0, rtol=1e-6, atol=1e-9)
    assert relative_error(X, nmf(X, 4, init=(W0, None), max_iter=1, tol=0)) < 1e-8
    with pytest.raises(ValueError, match=r"initial H has shape \(3, 80\), but the data need shape \(4, 80\)"):
        nmf(X, 4, init=(W0, H0[:3]))
    with pytest.raises(ValueError, match="initial W has negative entries"):
        nmf(X, 4, init=(-W0, H0))


def test_restarts_keep_the_lowest_objective():
    X = counts()
    result = nmf(X, 3, solver="als", n_restarts=4, max_iter=30, random_state=0)
    assert len(result.restart_objectives) == 4
    assert result.final_objective == pytest.approx(min(result.restart_objectives))


def test_canonical_order_sums_to_one_and_sorts_by_intensity():
    X = counts()
    result = nmf(X, 3, loss="kl", max_iter=30, random_state=0)
    np.testing.assert_allclose(result.H.sum(axis=1), 1, rtol=1e-5)
    totals = result.W.sum(axis=0)
    assert np.all(np.diff(totals) <= 0)


@pytest.mark.parametrize("solver,loss", [s for s in SOLVER_LOSSES if s[1] not in ("is", 0.5)])
def test_zero_rows_and_columns_give_no_nan(solver, loss):
    X = counts()
    X[5] = 0
    X[:, 7] = 0
    result = nmf(X, 3, loss=loss, solver=solver, max_iter=30, random_state=0)
    assert np.all(np.isfinite(result.W)) and np.all(np.isfinite(result.H))
    assert np.all(np.isfinite(result.objective))
    assert np.abs(result.W[5] @ result.H).max() < 1e-3


def test_beta_divergence_matches_direct_formula():
    rng = np.random.default_rng(0)
    X = rng.random((30, 20)) + 0.1
    W, H = rng.random((30, 2)), rng.random((2, 20))
    model = W @ H
    expected = {
        2.0: 0.5 * np.sum((X - model) ** 2),
        1.0: np.sum(X * np.log(X / model) - X + model),
        0.0: np.sum(X / model - np.log(X / model) - 1),
    }
    for beta, value in expected.items():
        assert beta_divergence(X, W, H, beta) == pytest.approx(value, rel=1e-10)
        assert beta_divergence(sp.csr_matrix(X), W, H, beta) == pytest.approx(value, rel=1e-10)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(loss="poisson"), r"Unknown loss 'poisson'. Valid losses are 'auto', 'frobenius', 'kullback-leibler'"),
        (dict(solver="cd"), r"Unknown solver 'cd'. Valid solvers are 'auto', 'hals', 'als', 'mu'"),
        (dict(init="svd"), r"Unknown init 'svd'. Valid values are 'nndsvd', 'nndsvda', 'nndsvdar', 'spa', 'random'"),
        (dict(solver="hals", loss="kl"), r"solver='hals' minimises the Frobenius loss only"),
        (dict(n_restarts=0), r"n_restarts must be an integer ≥ 1, got 0"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nmf(counts(), 2, **kwargs)


def test_bad_data_messages():
    X = counts()
    negative = X.copy()
    negative[0, :3] = [-1, -2, -0.5]
    with pytest.raises(ValueError, match=r"3 negative entries \(minimum -2\)"):
        nmf(negative, 2)
    bad = X.copy()
    bad[1, 1] = np.nan
    bad[2, 2] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinity \(1 NaN, 1 infinite values\)"):
        nmf(bad, 2)
    with pytest.raises(ValueError, match="all zeros"):
        nmf(np.zeros((5, 4)), 2)
    with pytest.raises(ValueError, match=r"integer ≥ 1 for data of shape \(200, 150\), got 0"):
        nmf(X, 0)
    with pytest.raises(ValueError, match="β=0 is undefined where the data are zero"):
        nmf(X, 2, loss="is")


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_nmf_of_a_dask_array_reads_it_in_passes_with_the_in_memory_iterates(loss):
    """``nmf`` used to compute a dask array whole; it now fits it chunk by chunk."""
    import dask.array as da

    from hyperspy_hnmf.solvers._linalg import as_generator

    X = counts(n=240, m=120, scale=3.0)
    start = initialize(X, 3, "nndsvda", as_generator(0), poisson_weighted=loss == "kl")
    options = dict(loss=loss, solver="mu", init=start, max_iter=30, tol=0)
    memory = nmf(X, 3, **options)
    lazy = nmf(da.from_array(X.astype(np.uint16), chunks=(50, -1)), 3, **options)
    assert lazy.W.dtype == np.float32
    np.testing.assert_allclose(lazy.objective, memory.objective, rtol=1e-5)
    np.testing.assert_allclose(lazy.W @ lazy.H, memory.W @ memory.H, rtol=1e-3, atol=1e-4)


def test_nmf_never_holds_a_dask_array_whole():
    import dask.array as da

    rng = da.random.default_rng(0)
    # 64 MiB generated chunk by chunk (1 MiB chunks: what a pass holds at once
    # is a few chunks per thread and their temporaries, 0.19 of this here).
    X = rng.random((4096, 4096), chunks=(64, -1), dtype=np.float32)
    nmf(X[:512], 2, max_iter=1, random_state=0)  # compile
    tracemalloc.start()
    result = nmf(X, 2, max_iter=3, tol=0, random_state=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.W.shape == (4096, 2) and result.n_iter == 3
    assert peak < 0.3 * X.nbytes, peak / X.nbytes


def test_nmf_of_a_dask_array_refuses_losses_other_than_kl_and_frobenius():
    import dask.array as da

    with pytest.raises(ValueError, match=r"Data read in passes \(lazy signals\) support the "
                                         r"Frobenius and Kullback-Leibler losses, got β=0\."):
        nmf(da.ones((20, 10), chunks=5), 2, loss="is")


def _reference_kl_maps(X, H, W, max_iter, tol, l1=0.0, l2=0.0):
    """KL maps for fixed ``H``, each row stopping on its own: all rows in NumPy, float64."""
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    A = np.maximum(W.astype(np.float64), max(float(np.mean(W)), 1e-6) * 1e-3)
    H = H.astype(np.float64)
    active = np.ones(len(A), dtype=bool)
    for _ in range(max_iter):
        ratio = X / np.maximum(A @ H, 1e-30)
        new = np.maximum(A * (ratio @ H.T) / (H.sum(axis=1) + l1 + l2 * A), 1e-16)
        change = np.abs(new - A).sum(axis=1) / A.sum(axis=1)
        A[active] = new[active]
        active &= change > tol
        if not active.any():
            break
    return A


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_kl_maps_iterate_each_row_to_its_own_stop_as_the_reference(layout):
    """Transform under KL: every row's iterations run in one kernel call, as in the reference."""
    rng = np.random.default_rng(3)
    H = rng.gamma(0.4, 1.0, (4, 300)).astype(np.float32)
    W_true = rng.gamma(0.6, 1.0, (150, 4))
    X = rng.poisson(W_true @ H * (0.3 if layout == "csr" else 20.0)).astype(np.float32)
    start = initialize(X, 4, (None, H), None, user_init=False)[0]
    for tol, max_iter in ((1e-4, 500), (1e-8, 60)):
        data = sp.csr_matrix(X) if layout == "csr" else X
        maps = solve_loadings(data, H, loss="kl", max_iter=max_iter, tol=tol)
        reference = _reference_kl_maps(X, H, start, max_iter, tol)
        # float32 against float64 arithmetic: a row may stop one update apart,
        # which moves it by about ``tol`` of its sum (L1)
        difference = np.abs(maps - reference).sum(axis=1)
        assert np.all(difference <= (2 * tol + 1e-5) * reference.sum(axis=1)), tol


def test_kl_map_kernels_stop_each_row_and_apply_penalties():
    from hyperspy_hnmf.solvers import _kernels
    from hyperspy_hnmf.solvers._fixed_components import kl_maps

    rng = np.random.default_rng(4)
    H = rng.gamma(0.5, 1.0, (3, 200))
    X = rng.poisson(rng.gamma(0.6, 1.0, (40, 3)) @ H * 5.0).astype(np.float64)
    X[7] = 0.0  # an empty row: its maps fall to the floor
    l1, l2 = np.array([0.0, 0.5, 1.0]), np.array([0.2, 0.0, 0.1])
    W = np.full((40, 3), 0.5)
    expected = _reference_kl_maps(X, H, W, 300, 1e-6, l1, l2)
    for kernel, data in ((kl_maps, (X,)), (kl_maps, (sp.csr_matrix(X),)),
                         (_kernels.kl_maps_csr, (lambda C: (C.indptr, C.indices, C.data))(
                             sp.csr_matrix(X)))):
        A = np.full((40, 3), 0.5)
        iterations = kernel(*data, H, A, H.sum(axis=1), l1, l2, 300, 1e-6, 1e-16, 1e-30)
        np.testing.assert_allclose(A, expected, rtol=1e-9, atol=1e-15)
        assert iterations.min() >= 1 and iterations.max() <= 300
        assert len(set(iterations.tolist())) > 3  # rows stop at their own iteration
        assert np.all(A[7] == 1e-16)


def test_near_exact_float64_kl_fit_is_not_stopped_by_rounding():
    """The objective of float64 data keeps float64 logs: a fit that approaches an exact
    factorization runs on (it used to stop, ``converged``, at a negative objective)."""
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 1.0, (80, 2)) @ rng.gamma(2.0, 1.0, (2, 60))
    result = nmf(X, 2, loss="kl", max_iter=3000, tol=0, random_state=0)
    assert result.n_iter == 3000 and not result.converged
    assert np.all(result.objective > 0)
    exact = beta_divergence(X, result.W, result.H, 1)
    assert result.divergence == exact
    assert result.objective[-1] == pytest.approx(exact, rel=1e-3)
    assert exact < 1e-6 * X.sum()


def test_csr_with_duplicate_entries_is_fitted_as_summed_and_left_unchanged():
    X = sp.csr_matrix(counts())
    rows, columns = X.nonzero()
    order = np.argsort(np.r_[rows, rows], kind="stable")
    split = sp.csr_matrix(
        (np.r_[X.data / 2, X.data / 2][order], np.r_[columns, columns][order],
         np.r_[0, np.cumsum(np.bincount(rows, minlength=X.shape[0]) * 2)]), shape=X.shape)
    assert not split.has_canonical_format
    before = (split.data.copy(), split.indices.copy(), split.indptr.copy())
    options = dict(loss="kl", max_iter=30, tol=0, random_state=0)
    summed, duplicated = nmf(X, 3, **options), nmf(split, 3, **options)
    np.testing.assert_allclose(duplicated.objective, summed.objective, rtol=1e-12)
    for array, copy in zip((split.data, split.indices, split.indptr), before):
        np.testing.assert_array_equal(array, copy)


def test_nmf_refuses_an_all_zero_dask_array_as_it_does_in_memory():
    import dask.array as da

    for data in (np.zeros((40, 30)), da.zeros((40, 30), chunks=(10, -1))):
        with pytest.raises(ValueError, match=r"^X is all zeros: there is nothing to factorize"):
            nmf(data, 2, loss="kl")
