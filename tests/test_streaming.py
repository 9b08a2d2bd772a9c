"""Out-of-core NMF: dask arrays and lazy signals read chunk by chunk."""

import re

import dask
import dask.array as da
import numpy as np
import pytest

import hyperspy_hnmf  # noqa: F401  (registers the algorithm)
from hyperspy_hnmf import HNMF
from hyperspy_hnmf.constraints import MapResolution, build_plan, out_of_band_fraction
from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem
from hyperspy_hnmf.solvers import beta_divergence, nmf
from hyperspy_hnmf.streaming import StreamedMatrix, as_row_chunks, randomized_nmf, streaming_nmf


@pytest.fixture(scope="module")
def counts():
    s = synthetic_4dstem(scan_shape=(24, 20), detector_shape=(24, 24), random_state=3,
                         dtype="uint16")
    return s.data.reshape(480, 576)


def start(n, m, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, k)).astype(np.float32) + 0.1,
            rng.random((k, m)).astype(np.float32) + 0.1)


def relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_streaming_matches_in_memory_with_the_same_init(counts, loss):
    X = counts.astype(np.float32)
    init = start(*X.shape, 4)
    eager = nmf(X, 4, loss=loss, solver="mu", init=init, max_iter=60, tol=0)
    lazy = streaming_nmf(da.from_array(counts, chunks=(100, -1)), 4, loss=loss, solver="mu",
                         init=init, max_iter=60, tol=0)
    assert lazy.W.dtype == np.float32
    assert relative(lazy.W, eager.W) <= 1e-4 and relative(lazy.H, eager.H) <= 1e-4
    np.testing.assert_allclose(lazy.objective, eager.objective, rtol=1e-5)


@pytest.mark.parametrize("solver", ["hals", "als"])
def test_streaming_frobenius_solvers_reach_the_in_memory_loss(counts, solver):
    X = counts.astype(np.float32)
    init = start(*X.shape, 4)
    eager = nmf(X, 4, solver=solver, init=init, max_iter=80, tol=0)
    lazy = streaming_nmf(da.from_array(X, chunks=(64, -1)), 4, solver=solver, init=init,
                         max_iter=80, tol=0)
    assert abs(lazy.final_objective / eager.final_objective - 1) < 1e-3
    assert np.all(np.diff(lazy.objective) <= 1e-6 * lazy.objective[0]) or solver == "als"


def test_one_pass_per_iteration(counts):
    Xs = StreamedMatrix(da.from_array(counts, chunks=(100, -1)))
    result = streaming_nmf(Xs, 3, loss="kl", init=start(*counts.shape, 3), max_iter=7, tol=0)
    assert Xs.passes == result.n_iter + 1 == 8


def test_randomized_is_close_to_exact_in_few_passes(counts):
    X = da.from_array(counts.astype(np.float32), chunks=(100, -1))
    exact = streaming_nmf(X, 4, max_iter=500, tol=1e-7, random_state=0)
    fast = randomized_nmf(X, 4, random_state=0, refine_passes=5)
    assert fast.passes <= 15
    assert fast.final_objective <= 1.01 * exact.final_objective


def test_lazy_signal_matches_eager_signal():
    eager = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(16, 16), random_state=0)
    lazy = eager.as_lazy()
    lazy.data = lazy.data.rechunk((5, 16, 16, 16))
    init = start(256, 256, 3, seed=1)
    options = dict(output_dimension=3, loss="kl", solver="mu", init=init, max_iter=40, tol=0,
                   print_info=False)
    eager.decomposition(algorithm="hnmf", **options)
    lazy.decomposition(algorithm="hnmf", **options)
    a, b = eager.learning_results, lazy.learning_results
    assert b.decomposition_algorithm == "hnmf" and b.output_dimension == 3
    assert isinstance(b.factors, np.ndarray) and b.factors.shape == (256, 3)
    assert relative(b.factors, a.factors) <= 1e-4 and relative(b.loadings, a.loadings) <= 1e-4
    assert b.hnmf["passes"] == 41
    model = lazy.get_decomposition_model()
    assert model.data.shape == lazy.data.shape


def test_lazy_counts_are_converted_chunk_by_chunk_and_constraints_apply():
    s = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(16, 16), probe_fwhm=4.0,
                         random_state=0, dtype="uint16", lazy=True)
    assert s.data.dtype == np.uint16
    s.decomposition(algorithm="hnmf", output_dimension=get_ground_truth(s).n_components,
                    loss="kl", random_state=0, print_info=False,
                    constraints=[MapResolution(2.0)])
    lr = s.learning_results
    assert lr.factors.dtype == np.float32 and lr.loadings.dtype == np.float32
    maps = lr.loadings.T.reshape(-1, 32, 32)
    assert out_of_band_fraction(maps, 4.0).max() < 1e-3


@pytest.mark.parametrize("loss, passes_per_iteration", [("kl", 1), ("frobenius", 2)])
def test_map_projections_read_kl_data_once_per_iteration(counts, loss, passes_per_iteration):
    # KL: the projected maps' statistics come from the next iteration's own
    # sweep (one pass); Frobenius keeps the in-memory solver's iterates
    # (the statistics of the projected maps: a second pass).
    Xs = StreamedMatrix(da.from_array(counts, chunks=(100, -1)))
    W, H = start(*counts.shape, 3)
    plan = build_plan([MapResolution(3.0)], 3, map_grid=(24, 20))
    result = streaming_nmf(Xs, 3, loss=loss, W=W, H=H, max_iter=12, tol=0, constraints=plan)
    assert result.n_iter == 12
    assert Xs.passes == 1 + passes_per_iteration * 12


@pytest.mark.parametrize("kept", [1.0, 0.05], ids=["dense", "sparse"])
def test_kl_fit_with_map_projections_returns_the_factors_it_evaluated(counts, kept):
    # One pass per iteration evaluates the iterate that entered it: the fit
    # returns that iterate, so the last objective and the divergence are the
    # data term at the returned factors. Lazy (raw uint16 chunks) and in
    # memory (float32, one chunk) give the same fit, stopped at the same
    # iteration by tol.
    X = np.random.default_rng(7).binomial(counts, kept).astype(np.uint16)
    init = start(*X.shape, 3, seed=3)
    options = dict(loss="kl", init=init, tol=1e-4, max_iter=200,
                   constraints=[MapResolution(3.0)], map_grid=(24, 20))
    lazy = nmf(da.from_array(X, chunks=(100, -1)), 3, **options)
    eager = nmf(X.astype(np.float32), 3, **options)
    assert lazy.converged and lazy.n_iter == eager.n_iter < 200
    direct = beta_divergence(X.astype(np.float64), lazy.W.astype(np.float64),
                             lazy.H.astype(np.float64), 1)
    assert lazy.divergence == pytest.approx(direct, rel=1e-6)
    assert lazy.final_objective == pytest.approx(direct, rel=1e-6)
    assert eager.final_objective == pytest.approx(eager.divergence, rel=1e-6)
    assert relative(lazy.W, eager.W) <= 1e-4 and relative(lazy.H, eager.H) <= 1e-4
    maps = np.ascontiguousarray(lazy.W.T).reshape(3, 24, 20)
    assert out_of_band_fraction(maps, 3.0).max() < 1e-3


def test_chunked_signal_axes_are_rechunked_with_a_warning():
    x = da.ones((6, 5, 8, 8), chunks=(3, 5, 4, 8))
    with pytest.warns(UserWarning, match="The signal axes are split into chunks"):
        flat = as_row_chunks(x, 2)
    assert flat.shape == (30, 64) and len(flat.chunks[1]) == 1


@pytest.mark.parametrize("bad,message", [
    (np.nan, "The data contains NaN or infinity"),
    (-1.0, "negative"),
])
def test_bad_value_in_a_late_chunk_leaves_previous_results(bad, message):
    s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(16, 16), random_state=0)
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False)
    previous = dict(s.learning_results.__dict__)
    data = s.data.copy()
    data[15, 3, 2, 2] = bad
    lazy = s._deepcopy_with_new_data(data).as_lazy()
    lazy.data = lazy.data.rechunk((4, 16, 16, 16))
    lazy.learning_results.__dict__.update(previous)
    with pytest.raises(ValueError, match=message) as error:
        lazy.decomposition(algorithm="hnmf", output_dimension=3, print_info=False)
    assert ("Found first in row 243 (probe positions in scan order, row = y * width + x), "
            "in the rows 192 to 255 read together.") in str(error.value)
    assert lazy.learning_results.__dict__.keys() == previous.keys()
    assert lazy.learning_results.hnmf is previous["hnmf"]


def test_lazy_multilayer_matches_the_in_memory_layers():
    eager = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(16, 16), random_state=0)
    lazy = eager.as_lazy()
    lazy.data = lazy.data.rechunk((4, 16, 16, 16))
    init = start(256, 256, 4, seed=2)
    options = dict(output_dimension=[4, 2], loss="kl", init=init, max_iter=30, tol=0,
                   fine_tune_iter=10, random_state=0, print_info=False)
    eager.decomposition(algorithm="hnmf", **options)
    lazy.decomposition(algorithm="hnmf", **options)
    a, b = eager.learning_results.hnmf["hierarchy"], lazy.learning_results.hnmf["hierarchy"]
    for level in ("1", "2"):
        assert relative(b["maps"][level], a["maps"][level]) <= 1e-4
        assert relative(b["components"][level], a["components"][level]) <= 1e-4
    np.testing.assert_allclose(b["errors"], a["errors"], rtol=1e-5)
    factors, loadings = hyperspy_hnmf.get_hierarchy_level(lazy, 2)
    assert factors.data.shape[0] == 2


def test_lazy_tree_lands_in_learning_results_and_other_losses_are_refused():
    eager = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16), random_state=0)
    s = eager.as_lazy()
    s.decomposition(algorithm="hnmf", output_dimension=3, hierarchy="tree", print_info=False)
    eager.decomposition(algorithm="hnmf", output_dimension=3, hierarchy="tree",
                        print_info=False)
    np.testing.assert_array_equal(hyperspy_hnmf.get_cluster_labels(s).data,
                                  hyperspy_hnmf.get_cluster_labels(eager).data)
    assert s.learning_results.hnmf["passes"] > 0
    with pytest.raises(ValueError, match=re.escape("support the Frobenius and Kullback-Leibler "
                                                   "losses, got β=0.5")):
        s.decomposition(algorithm="hnmf", output_dimension=3, loss=0.5, print_info=False)


def test_transform_of_a_dask_array_matches_in_memory(counts):
    X = counts.astype(np.float32)
    model = HNMF(3, loss="kl", random_state=0).fit(X)
    lazy = model.transform(da.from_array(X, chunks=(480, -1)))
    np.testing.assert_allclose(lazy, model.transform(X), rtol=1e-4, atol=1e-3 * lazy.max())


def test_synthetic_lazy_data_are_reproducible_and_chunked():
    a = synthetic_4dstem(scan_shape=(20, 8), detector_shape=(16, 16), random_state=5, lazy=True)
    b = synthetic_4dstem(scan_shape=(20, 8), detector_shape=(16, 16), random_state=5, lazy=True)
    np.testing.assert_array_equal(a.data.compute(), b.data.compute())
    eager = synthetic_4dstem(scan_shape=(20, 8), detector_shape=(16, 16), random_state=5)
    total = float(a.data.sum().compute())
    assert total == pytest.approx(float(eager.data.sum()), rel=0.02)  # same truth, other noise


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runs_under_a_distributed_local_cluster(counts, local_cluster):
    init = start(*counts.shape, 3)
    local = streaming_nmf(da.from_array(counts, chunks=(120, -1)), 3, loss="kl", init=init,
                          max_iter=10, tol=0)
    with local_cluster(2, 1, processes=True) as client:
        assert dask.config.get("scheduler", None) in (None, "dask.distributed")
        remote = streaming_nmf(da.from_array(counts, chunks=(120, -1)), 3, loss="kl",
                               init=init, max_iter=10, tol=0)
        assert len(client.scheduler_info()["workers"]) == 2
    assert relative(remote.W, local.W) <= 1e-5


def test_estimate_rank_on_a_lazy_signal_recompresses_each_restart():
    import hyperspy_hnmf

    s = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(32, 32), n_phases=1,
                         n_rotations=2, dose=500, random_state=0)
    lazy = s.as_lazy()
    lazy.data = lazy.data.rechunk((8, 32, 32, 32))
    eager = hyperspy_hnmf.estimate_rank(s, ranks=range(2, 6), n_restarts=4, random_state=0)
    result = hyperspy_hnmf.estimate_rank(lazy, ranks=range(2, 6), n_restarts=4, random_state=0)
    assert result.rank == eager.rank == get_ground_truth(s).n_components
    with pytest.raises(ValueError, match="On lazy signals estimate_rank works on a compressed"):
        hyperspy_hnmf.estimate_rank(lazy, ranks=[2, 3], n_restarts=2, loss="kl")


@pytest.mark.parametrize("dtype, rate", [(np.uint16, 0.02), (np.uint16, 5.0), (np.float32, 0.02),
                                         (np.float32, 5.0)])
def test_poisson_weighted_products_read_raw_chunks_and_leave_them_untouched(dtype, rate):
    # The scaled matrix (normalize_poissonian_noise) multiplies the raw chunk
    # (CSR when mostly zero, float row blocks otherwise) with scaled operands:
    # same products as the scaled dense array, and the stored chunk unchanged.
    rng = np.random.default_rng(3)
    raw = rng.poisson(rate, (300, 64)).astype(dtype)
    keep = raw.copy()
    row_scale, column_scale = rng.random(300) + 0.5, rng.random(64) + 0.5
    X = StreamedMatrix(da.from_array(raw, chunks=(70, -1))).scaled(row_scale, column_scale)
    dense = raw / np.outer(row_scale, column_scale)
    B, A = rng.random((64, 3)), rng.random((300, 3))
    np.testing.assert_allclose(X @ B, dense @ B, rtol=1e-5)
    np.testing.assert_allclose(X.T @ A, dense.T @ A, rtol=1e-5)
    np.testing.assert_allclose(X.sum(), dense.sum(), rtol=1e-6)
    W, H = rng.random((300, 3)) + 0.1, rng.random((3, 64)) + 0.1
    scaled_fit = streaming_nmf(X, 3, loss="frobenius", W=W, H=H, max_iter=3, tol=0)
    dense_fit = nmf(dense.astype(np.float32), 3, loss="frobenius", solver="hals", init=(W, H),
                    max_iter=3, tol=0)
    np.testing.assert_allclose(scaled_fit.W @ scaled_fit.H, dense_fit.W @ dense_fit.H,
                               rtol=2e-3, atol=1e-4 * dense.max())
    np.testing.assert_array_equal(raw, keep)


@pytest.mark.parametrize("update_maps", [False, True])
@pytest.mark.parametrize("penalty", [0.0, 0.3])
def test_dense_kl_pass_matches_the_nonzero_kernel(update_maps, penalty):
    # Mostly-nonzero chunks take the tiled pass over every entry; it must
    # give the nonzero-skipping kernel's update, statistics and data term,
    # also with a shape that leaves partial row and column tiles.
    from hyperspy_hnmf.solvers import _kernels
    from hyperspy_hnmf.solvers._passes import _mostly_nonzero

    rng = np.random.default_rng(5)
    block = rng.poisson(3.0, (301, 1100)).astype(np.uint16)
    block[:, 5] = 0  # a zero column: its statistics are exactly zero in both
    assert _mostly_nonzero(block) and not _mostly_nonzero(np.eye(70, dtype=np.uint16))
    W = (rng.random((301, 4)) + 0.1).astype(np.float32)
    Ht = (rng.random((1100, 4)) + 0.1).astype(np.float32)
    args = (Ht.sum(axis=0, dtype=np.float64), np.full(4, penalty), np.full(4, penalty / 2),
            1e-16, 1e-12, update_maps)
    expected = _kernels.kl_chunk_pass(block, W, Ht, *args)
    found = _kernels.kl_dense_chunk_pass(block, W, Ht, *args)
    np.testing.assert_allclose(found[0], expected[0], rtol=1e-5)
    np.testing.assert_allclose(found[1], expected[1], rtol=1e-5)
    assert found[2] == pytest.approx(expected[2], rel=1e-6)
    assert not found[1][5].any() and not expected[1][5].any()


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_float16_chunks_are_fitted_as_their_float64_values(loss):
    # float16 is computed in float64 (compute_dtype), one chunk converted at a time:
    # the same fit as the float64 array, bit for bit.
    X = np.random.default_rng(0).poisson(3, (200, 64)).astype(np.float16)
    half = HNMF(3, loss=loss, random_state=0, max_iter=20)
    half.fit(da.from_array(X, chunks=(50, -1)))
    double = HNMF(3, loss=loss, random_state=0, max_iter=20)
    double.fit(da.from_array(X.astype(np.float64), chunks=(50, -1)))
    assert half.components_.dtype == np.float64
    np.testing.assert_array_equal(half.components_, double.components_)
