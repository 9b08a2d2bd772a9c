"""One data path: every algorithm gives the same result on a dask array as in memory.

The algorithms see the data through :mod:`hyperspy_hnmf.matrix` only, so a
lazy fit must agree with the in-memory fit from the same start (relative
difference ≤ 1e-4, or the same tree and labels), under dask's threaded
scheduler and on a ``dask.distributed`` cluster, where repeated fits are
bit-identical.
"""


import dask
import dask.array as da
import numpy as np
import pytest

import hyperspy_hnmf
from hyperspy_hnmf import HNMF
from hyperspy_hnmf.constraints import MapResolution, Penalty
from hyperspy_hnmf.data import synthetic_4dstem
from hyperspy_hnmf.matrix import StreamedMatrix
from hyperspy_hnmf.solvers import streaming_nmf


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def scan():
    s = synthetic_4dstem(scan_shape=(16, 14), detector_shape=(16, 16), random_state=4,
                         dtype="uint16")
    X = s.data.reshape(224, 256)
    # In memory as float32: integer counts in memory would be read in passes
    # (held_matrix), the path of the dask array itself.
    return X.astype(np.float32), da.from_array(X, chunks=(48, -1))


def start(n, m, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, k)).astype(np.float32) + 0.1,
            rng.random((k, m)).astype(np.float32) + 0.1)


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_tree_on_a_dask_array_is_the_in_memory_tree(scan, loss):
    X, lazy = scan
    eager = HNMF(5, hierarchy="tree", loss=loss)
    W = eager.fit_transform(X)
    streamed = HNMF(5, hierarchy="tree", loss=loss)
    W_lazy = streamed.fit_transform(lazy)
    np.testing.assert_array_equal(streamed.hierarchy_.labels(), eager.hierarchy_.labels())
    assert relative(streamed.components_, eager.components_) <= 1e-4
    assert relative(W_lazy, W) <= 1e-4
    assert streamed.passes_ > 0


def test_tree_reads_small_nodes_once(scan):
    X, lazy = scan
    Xs = StreamedMatrix(lazy)
    Xs.row_cache_bytes = 0  # every product is a pass over the chunks holding the rows
    tree = hyperspy_hnmf.hierarchy.rank2_tree(Xs, 4)
    many = Xs.passes
    cached = StreamedMatrix(lazy)
    same = hyperspy_hnmf.hierarchy.rank2_tree(cached, 4)
    np.testing.assert_array_equal(same.labels(), tree.labels())
    assert cached.passes < many / 5


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_fine_tuned_layers_on_a_dask_array_match_in_memory(scan, loss):
    X, lazy = scan
    init = start(224, 256, 6, seed=1)
    options = dict(n_components=[6, 3], loss=loss, init=init, max_iter=40, tol=0,
                   fine_tune_iter=20)
    eager = HNMF(**options)
    W = eager.fit_transform(X.astype(np.float32))
    streamed = HNMF(**options)
    W_lazy = streamed.fit_transform(lazy)
    assert len(streamed.hierarchy_.fine_tune_objective) == len(eager.hierarchy_.fine_tune_objective)
    assert relative(W_lazy, W) <= 1e-4
    assert relative(streamed.components_, eager.components_) <= 1e-4
    np.testing.assert_allclose(streamed.hierarchy_.errors, eager.hierarchy_.errors, rtol=1e-5)
    # Fine-tuning lowers the total error below the greedy layers', lazily too.
    assert streamed.hierarchy_.total_error < streamed.hierarchy_.greedy_total_error


@pytest.mark.parametrize("constraint", [MapResolution(3.0), Penalty(l1=5.0)],
                         ids=["map-projection", "penalty"])
def test_constrained_fit_on_a_dask_array_matches_in_memory(scan, constraint):
    X, lazy = scan
    init = start(224, 256, 3, seed=2)
    options = dict(n_components=3, loss="kl", init=init, max_iter=25, tol=0,
                   constraints=[constraint], navigation_grid=(16, 14), signal_grid=(16, 16))
    eager = HNMF(**options)
    W = eager.fit_transform(X.astype(np.float32))
    streamed = HNMF(**options)
    W_lazy = streamed.fit_transform(lazy)
    assert relative(W_lazy, W) <= 1e-4
    assert relative(streamed.components_, eager.components_) <= 1e-4


def test_hnmfk_on_a_dask_array_is_the_in_memory_tree():
    rng = np.random.default_rng(0)
    patterns = rng.random((4, 30)) ** 6
    X = rng.poisson(patterns[np.repeat(np.arange(4), 25)] * 40).astype("float32")
    eager = hyperspy_hnmf.hnmfk(X, ranks=range(2, 6), n_restarts=4, min_cluster_size=5)
    lazy = StreamedMatrix(da.from_array(X, chunks=(30, 30)))
    lazy.row_cache_bytes = 0  # the root and every node read in passes
    tree = hyperspy_hnmf.hnmfk(lazy, ranks=range(2, 6), n_restarts=4, min_cluster_size=5)
    assert tree.n_leaves == eager.n_leaves == 4
    np.testing.assert_array_equal(tree.labels(), eager.labels())
    assert relative(tree.components, eager.components) <= 1e-4


def test_hnmfk_decomposition_of_a_lazy_signal():
    s = synthetic_4dstem(scan_shape=(12, 12), detector_shape=(16, 16), n_phases=1,
                         n_rotations=2, random_state=1)
    lazy = s.as_lazy()
    lazy.data = lazy.data.rechunk((4, 12, 16, 16))
    eager_tree = hyperspy_hnmf.hnmfk_decomposition(s, ranks=range(2, 4), n_restarts=3,
                                                   min_cluster_size=10, max_depth=1)
    tree = hyperspy_hnmf.hnmfk_decomposition(lazy, ranks=range(2, 4), n_restarts=3,
                                             min_cluster_size=10, max_depth=1)
    np.testing.assert_array_equal(tree.labels(), eager_tree.labels())
    assert relative(lazy.learning_results.loadings, s.learning_results.loadings) <= 1e-4
    assert lazy.learning_results.decomposition_algorithm == "hnmfk"


def test_estimate_rank_takes_a_dask_array(scan):
    X, lazy = scan
    eager = hyperspy_hnmf.estimate_rank(X.astype(np.float32), ranks=range(2, 6), n_restarts=4,
                                        random_state=0)
    result = hyperspy_hnmf.estimate_rank(lazy, ranks=range(2, 6), n_restarts=4, random_state=0)
    assert result.rank == eager.rank


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_transform_is_the_same_whatever_the_chunks(scan, loss):
    X, lazy = scan
    model = HNMF(4, loss=loss, random_state=0).fit(X.astype(np.float32))
    in_memory = model.transform(X.astype(np.float32))
    for chunks in ((48, -1), (7, -1), (224, -1)):
        lazy_maps = model.transform(da.from_array(X, chunks=chunks))
        assert relative(lazy_maps, in_memory) <= 1e-4


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_cluster_gives_the_local_results_and_repeats_them_bit_for_bit(scan, local_cluster):
    X, lazy = scan
    init = start(224, 256, 6, seed=3)
    layers = dict(n_components=[6, 3], loss="kl", init=init, max_iter=15, tol=0, random_state=0,
                  fine_tune_iter=5)
    local_tree = HNMF(4, hierarchy="tree").fit(lazy)
    local_layers = HNMF(**layers).fit(lazy)
    with local_cluster(2, 1, processes=True) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        trees = [HNMF(4, hierarchy="tree").fit(lazy) for _ in range(2)]
        fits = [HNMF(**layers).fit(lazy) for _ in range(2)]
        flat = [streaming_nmf(lazy, 3, loss="kl", init=start(224, 256, 3), max_iter=8, tol=0)
                for _ in range(2)]
    np.testing.assert_array_equal(trees[0].hierarchy_.labels(), local_tree.hierarchy_.labels())
    assert relative(trees[0].components_, local_tree.components_) <= 1e-4
    assert relative(fits[0].components_, local_layers.components_) <= 1e-4
    # Same random_state, same cluster: the same bits (fixed reduction order).
    np.testing.assert_array_equal(trees[0].components_, trees[1].components_)
    np.testing.assert_array_equal(fits[0].components_, fits[1].components_)
    np.testing.assert_array_equal(fits[0].hierarchy_.W[0], fits[1].hierarchy_.W[0])
    np.testing.assert_array_equal(flat[0].W, flat[1].W)
    np.testing.assert_array_equal(flat[0].H, flat[1].H)
    assert dask.config.get("scheduler", None) in (None, "dask.distributed", "threads")
