"""Rank-2 NMF and the hierarchical rank-2 splitting tree (array level)."""

import re
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import nnls
from sklearn.metrics import adjusted_rand_score

from hyperspy_hnmf.hierarchy.rank2 import nnls2, rank2_nmf
from hyperspy_hnmf.hierarchy.tree import STATUSES, SplitTree, rank2_tree


def planted_clusters(seed=0, n_per=100, m=256, k=6, dose=300.0, admixture=0.05):
    """Rows: Poisson counts of a random multiple of one of ``k`` patterns,
    with a small admixture of all patterns."""
    rng = np.random.default_rng(seed)
    patterns = rng.gamma(0.3, 1.0, (k, m))
    patterns /= patterns.sum(axis=1, keepdims=True)
    truth = np.repeat(np.arange(k), n_per)
    mix = np.eye(k)[truth] + admixture * rng.dirichlet(np.ones(k), truth.size)
    mix /= mix.sum(axis=1, keepdims=True)
    intensity = dose * rng.uniform(0.5, 1.5, truth.size)
    X = rng.poisson(mix * intensity[:, None] @ patterns).astype(np.float32)
    return X, truth


def rank2_product(n=120, m=80, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 2)) @ rng.random((2, m))


# --------------------------------------------------------------------- rank-2 NMF

def test_nnls2_agrees_with_scipy_nnls():
    rng = np.random.default_rng(0)
    for trial in range(5):
        A = rng.random((40, 2))
        if trial == 4:
            A[:, 1] = 3 * A[:, 0] + 1e-3 * rng.random(40)  # nearly parallel columns
        xs = rng.random((200, 40)) - 0.4 * rng.random((200, 1))
        expected = np.array([nnls(A, x)[0] for x in xs])
        got = nnls2(A.T @ A, xs @ A)
        assert np.all(got >= 0)
        np.testing.assert_allclose(got, expected, atol=1e-8)


def test_nnls2_singular_gram_reaches_the_optimum():
    A = np.array([[1.0, 2.0], [2.0, 4.0], [0.0, 0.0]])  # parallel columns
    xs = np.array([[1.0, 1.0, 1.0], [-1.0, 0.0, 3.0], [0.5, 2.0, 0.0]])
    got = nnls2(A.T @ A, xs @ A)
    for x, w in zip(xs, got):
        assert np.linalg.norm(A @ w - x) == pytest.approx(nnls(A, x)[1], abs=1e-12)


@pytest.mark.parametrize("init", ["svd", "random"])
def test_rank2_objective_is_monotone(init):
    X, _ = planted_clusters(seed=1, n_per=30, m=60)
    history = []
    rank2_nmf(X.astype(np.float64), init=init, random_state=0, max_iter=60, tol=0,
              callback=lambda iteration, value: history.append(value))
    history = np.asarray(history)
    assert len(history) == 61
    assert np.all(np.diff(history) <= 1e-12 * history[:-1])
    assert history[-1] < history[0] or init == "svd"


@pytest.mark.parametrize("kind", ["dense", "sparse", "float32"])
def test_rank2_recovers_an_exact_rank2_product(kind):
    X = rank2_product()
    if kind == "sparse":
        X[:30] = 0  # zero rows keep the rank
        X = sp.csr_matrix(X)
    elif kind == "float32":
        X = X.astype(np.float32)
    W, H = rank2_nmf(X, max_iter=500, tol=1e-12)
    dense = X.toarray() if sp.issparse(X) else X
    error = np.linalg.norm(dense - W @ H) / np.linalg.norm(dense)
    assert error < 1e-5
    assert W.dtype == dense.dtype and H.dtype == dense.dtype
    assert np.all(W >= 0) and np.all(H >= 0)
    np.testing.assert_allclose(H.sum(axis=1), 1, rtol=1e-6)
    assert W[:, 0].sum() >= W[:, 1].sum()


def test_rank2_random_init_recovers_too():
    X = rank2_product(seed=3)
    W, H = rank2_nmf(X, init="random", random_state=1, max_iter=2000, tol=0)
    assert np.linalg.norm(X - W @ H) / np.linalg.norm(X) < 1e-5


def test_rank2_sparse_and_dense_agree():
    X, _ = planted_clusters(seed=2, n_per=20, m=50)
    W_dense, H_dense = rank2_nmf(X.astype(np.float64))
    W_sparse, H_sparse = rank2_nmf(sp.csc_matrix(X.astype(np.float64)))
    np.testing.assert_allclose(W_dense @ H_dense, W_sparse @ H_sparse, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------- the tree

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_clusters_are_recovered(seed):
    X, truth = planted_clusters(seed=seed)
    tree = rank2_tree(X, 6)
    assert tree.n_leaves == 6
    assert adjusted_rand_score(truth, tree.labels()) >= 0.9


def test_planted_clusters_with_the_relative_score():
    X, truth = planted_clusters(seed=0)
    tree = rank2_tree(X, 6, split_score="relative")
    assert adjusted_rand_score(truth, tree.labels()) >= 0.9


def test_dense_and_sparse_paths_build_the_same_tree():
    X, _ = planted_clusters(seed=3, n_per=40, m=80, dose=3000.0)
    X += 1  # no zeros: the dense kernels are used
    dense = rank2_tree(X, 5)
    sparse = rank2_tree(sp.csr_matrix(X), 5)
    np.testing.assert_array_equal(dense.labels(), sparse.labels())
    np.testing.assert_allclose(dense.components, sparse.components, rtol=1e-5)


def test_nodes_are_consistent():
    X, _ = planted_clusters(seed=4, n_per=50)
    tree = rank2_tree(X, 6)
    leaves = tree.leaves
    assert np.array_equal(np.sort(np.concatenate([leaf.rows for leaf in leaves])),
                          np.arange(X.shape[0]))
    for node in tree.nodes:
        assert node.status in STATUSES
        assert np.all(np.diff(node.rows) > 0)
        assert node.component.shape == (X.shape[1],)
        np.testing.assert_allclose(node.component.sum(), 1, rtol=1e-5)
        assert node.intensity == pytest.approx(float(X[node.rows].sum(dtype=np.float64)))
        if node.children:
            first, second = (tree.nodes[c] for c in node.children)
            assert node.status == "split"
            assert first.parent == second.parent == node.id
            assert first.depth == second.depth == node.depth + 1
            assert np.array_equal(np.sort(np.concatenate([first.rows, second.rows])), node.rows)
            assert list(node.child_sizes) == [first.size, second.size]
            assert node.score > 0
            assert 0.5 <= node.purity <= 1
    # the split scores ("error") are fractions of the root's rank-one error
    split_scores = [node.score for node in tree.nodes if node.children]
    assert 0 < sum(split_scores) <= 1
    total_leaf_error = sum(leaf.rank1_error for leaf in leaves)
    assert total_leaf_error == pytest.approx(tree.root_error * (1 - sum(split_scores)),
                                             rel=1e-6)
    components = tree.components
    assert components.shape == (6, X.shape[1])
    np.testing.assert_allclose(components.sum(axis=1), 1, rtol=1e-5)
    labels = tree.labels()
    for index, leaf in enumerate(leaves):
        assert np.all(labels[leaf.rows] == index)


def test_edges_and_weights():
    X, _ = planted_clusters(seed=5, n_per=40)
    tree = rank2_tree(X, 5)
    for weight in ("intensity", "rows"):
        pairs, weights = tree.edges(weight=weight)
        assert pairs.shape == (len(tree.nodes) - 1, 2)
        for parent in np.unique(pairs[:, 0]):
            assert weights[pairs[:, 0] == parent].sum() == pytest.approx(1)
    pairs, weights = tree.edges()
    for (parent, child), w in zip(pairs, weights):
        assert w == pytest.approx(tree.nodes[child].intensity / tree.nodes[parent].intensity)
    with pytest.raises(ValueError, match="weight"):
        tree.edges(weight="mass")


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_maps_on_leaf_components(loss):
    X, truth = planted_clusters(seed=0, n_per=40)
    tree = rank2_tree(X, 6)
    maps = tree.maps(X, loss=loss, max_iter=100)
    assert maps.shape == (X.shape[0], 6)
    assert np.all(maps >= 0)
    assert np.mean(maps.argmax(axis=1) == tree.labels()) > 0.95
    with pytest.raises(ValueError, match="shape"):
        tree.maps(X[:10])


# ------------------------------------------------------------------ stopping rules

def test_n_leaves_is_honoured():
    X, _ = planted_clusters(seed=0, n_per=30)
    for n_leaves in (1, 2, 5, 9):
        tree = rank2_tree(X, n_leaves)
        assert tree.n_leaves == n_leaves
        assert tree.stop_reason == "n_leaves"
        assert len(tree.nodes) == 2 * n_leaves - 1
    assert rank2_tree(X, 1).root.status == "not_evaluated"


def test_min_leaf_size_is_honoured():
    X, _ = planted_clusters(seed=0, n_per=50)
    with pytest.warns(UserWarning, match=r"^The tree has \d (leaf|leaves), not the 10 asked for: no "
                      r"leaf can be split \(.*\)\. Lower min_leaf_size"):
        tree = rank2_tree(X, 10, min_leaf_size=80)
    assert min(leaf.size for leaf in tree.leaves) >= 80
    assert tree.n_leaves < 10
    assert tree.stop_reason.startswith("no_split")
    assert {leaf.status for leaf in tree.leaves} <= {"too_small", "small_child"}


def test_max_depth_is_honoured():
    X, _ = planted_clusters(seed=0, n_per=30)
    with pytest.warns(UserWarning, match=r"^The tree has 4 leaves, not the 8 asked for: no leaf "
                      r"can be split \(4 max_depth\)\."):
        tree = rank2_tree(X, 8, max_depth=2)
    assert max(node.depth for node in tree.nodes) <= 2
    assert tree.n_leaves == 4
    assert all(leaf.status == "max_depth" for leaf in tree.leaves)
    assert "4 max_depth" in tree.stop_reason


def test_score_threshold_is_honoured():
    X, truth = planted_clusters(seed=1)
    free = rank2_tree(X, 10)
    assert free.stop_reason == "n_leaves"
    scores = sorted((node.score for node in free.nodes if node.children), reverse=True)
    # five real splits, then splits of noise an order of magnitude weaker
    assert scores[4] > 10 * scores[5]
    threshold = np.sqrt(scores[4] * scores[5])
    with pytest.warns(UserWarning, match="The tree has 6 leaves, not the 10 asked for"):
        tree = rank2_tree(X, 10, score_threshold=threshold)
    assert tree.n_leaves == 6
    assert all(node.score >= threshold for node in tree.nodes if node.children)
    assert all(leaf.score < threshold for leaf in tree.leaves)
    assert "below_threshold" in tree.stop_reason
    assert adjusted_rand_score(truth, tree.labels()) >= 0.9


def test_rows_all_alike_cannot_be_split():
    X = np.outer(np.arange(1.0, 21.0), [1.0, 2.0, 3.0, 0.0])
    # Fewer leaves than asked for is said, not left to tree.stop_reason.
    with pytest.warns(UserWarning, match=r"^The tree has 1 leaf, not the 3 asked for: no leaf "
                      r"can be split \(1 (small_child|no_gain)\)\."):
        tree = rank2_tree(X, 3)
    assert tree.n_leaves == 1
    assert tree.root.status in ("small_child", "no_gain")
    assert tree.stop_reason.startswith("no_split")


def test_a_short_tree_names_only_the_options_that_stopped_it():
    # Every short tree was told to "lower min_leaf_size, raise max_depth or
    # lower score_threshold", also with min_leaf_size=1, no max_depth and no
    # threshold (rows all alike: nothing to change but the number of leaves).
    X, _ = planted_clusters(seed=0, n_per=30)
    with pytest.warns(UserWarning, match=r"\(4 max_depth\)\. Raise max_depth \(now 2\) to split "
                      r"further \(node statuses: SplitTree\.nodes\)\.$"):
        rank2_tree(X, 8, max_depth=2)
    with pytest.warns(UserWarning, match=r"\)\. Lower min_leaf_size \(now 80\) to split further "
                      r"\(node"):
        rank2_tree(X, 10, min_leaf_size=80)
    with pytest.warns(UserWarning, match=r"\)\. Lower score_threshold \(now 0\.5\) to split "
                      r"further \(node"):
        rank2_tree(X, 10, score_threshold=0.5)
    alike = np.outer(np.arange(1.0, 21.0), [1.0, 2.0, 3.0, 0.0])
    with pytest.warns(UserWarning, match=r"\(1 (small_child|no_gain)\)\. No split separates the "
                      r"rows of these leaves: ask for fewer leaves \(node"):
        rank2_tree(alike, 3)


# ------------------------------------------------------ determinism and round trip

def assert_tree_dicts_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_tree_dicts_equal(a[key], b[key])
        elif isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key])
        elif isinstance(a[key], float) and np.isnan(a[key]):
            assert np.isnan(b[key])
        else:
            assert type(a[key]) is type(b[key]) and a[key] == b[key]


def assert_plain(d):
    for value in d.values():
        if isinstance(value, dict):
            assert_plain(value)
        else:
            assert isinstance(value, (np.ndarray, int, float, str)), type(value)


def test_tree_is_deterministic():
    X, _ = planted_clusters(seed=6, n_per=40)
    assert_tree_dicts_equal(rank2_tree(X, 7).to_dict(), rank2_tree(X, 7).to_dict())
    a = rank2_tree(X, 4, init="random", random_state=3).to_dict()
    b = rank2_tree(X, 4, init="random", random_state=3).to_dict()
    assert_tree_dicts_equal(a, b)


@pytest.mark.parametrize("options", [{}, {"max_depth": 3, "score_threshold": 0.001}])
def test_to_dict_from_dict_round_trip(options):
    X, _ = planted_clusters(seed=7, n_per=30)
    tree = rank2_tree(X, 7, **options)
    d = tree.to_dict()
    assert_plain(d)
    restored = SplitTree.from_dict(d)
    assert_tree_dicts_equal(restored.to_dict(), d)
    np.testing.assert_array_equal(restored.labels(), tree.labels())
    np.testing.assert_array_equal(restored.components, tree.components)
    for a, b in zip(restored.edges(), tree.edges()):
        np.testing.assert_array_equal(a, b)
    assert repr(restored) == repr(tree)
    assert restored.parameters == tree.parameters or options == {}
    with pytest.raises(ValueError, match="format"):
        SplitTree.from_dict({"format": "something else"})


def test_dense_data_are_not_copied():
    rng = np.random.default_rng(0)
    X = rng.random((2000, 500)) + np.repeat(np.eye(4, 500) * 5, 500, axis=0)
    tracemalloc.start()
    try:
        tree = rank2_tree(X, 4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tree.n_leaves == 4
    assert peak < 0.2 * X.nbytes


# -------------------------------------------------------------------- bad inputs

X_SMALL = np.ones((5, 3))


@pytest.mark.parametrize("X,kwargs,message", [
    (X_SMALL, {"n_leaves": 0}, r"n_leaves must be an integer between 1 and 5"),
    (X_SMALL, {"n_leaves": 6}, r"between 1 and 5 \(the number of rows of X, 5\)"),
    (X_SMALL, {"n_leaves": 2.0}, r"n_leaves must be an integer"),
    (X_SMALL, {"n_leaves": 2, "min_leaf_size": 0}, r"min_leaf_size must be an integer ≥ 1"),
    (X_SMALL, {"n_leaves": 2, "max_depth": 0}, r"max_depth must be an integer ≥ 1"),
    (X_SMALL, {"n_leaves": 2, "score_threshold": np.nan}, r"score_threshold must be a finite"),
    (X_SMALL, {"n_leaves": 2, "split_score": "ndcg"}, r"Unknown split_score 'ndcg'"),
    (X_SMALL, {"n_leaves": 2, "init": "nndsvd"}, r"Unknown init 'nndsvd'"),
    (X_SMALL, {"n_leaves": 2, "max_iter": 0}, r"max_iter must be an integer ≥ 1"),
    (np.ones(5), {"n_leaves": 2}, r"Expected a 2D array .* got 1D"),
    (np.array([[1.0, np.nan], [1.0, 2.0]]), {"n_leaves": 2}, r"NaN or infinity"),
    (np.array([[1.0, -2.0], [1.0, 2.0]]), {"n_leaves": 2}, r"Negative values .* rank2_tree"),
    (np.zeros((3, 2)), {"n_leaves": 2}, r"all zeros"),
])
def test_bad_tree_inputs(X, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rank2_tree(X, **kwargs)


@pytest.mark.parametrize("X,kwargs,message", [
    (np.ones(4), {}, r"Expected a 2D array .* got 1D"),
    (-np.ones((3, 3)), {}, r"Negative values .* rank2_nmf"),
    (X_SMALL, {"tol": -1.0}, r"tol must be a real number ≥ 0"),
    (X_SMALL, {"init": (None, np.ones((3, 3)))}, r"initial H has shape \(3, 3\)"),
    (X_SMALL, {"init": (None, None)}, r"gives no initial factor"),
])
def test_bad_rank2_inputs(X, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rank2_nmf(X, **kwargs)


# --- options a tree does not take are refused; init="random" is honoured --------------

def _tree_scan():
    rng = np.random.default_rng(0)
    W = rng.gamma(1.0, 1.0, (120, 3))
    H = rng.gamma(0.5, 1.0, (3, 64))
    return rng.poisson(5 * W @ H).astype(np.float32)


@pytest.mark.parametrize("options, message", [
    (dict(init=(None, np.ones((3, 64)))),
     "init=(None, array of shape (3, 64)) does not apply to a tree."),
    (dict(init="spa"), "init='spa' does not apply to a tree."),
    (dict(n_restarts=3), "hierarchy='tree' grows one tree"),
    (dict(fine_tune=False), "`fine_tune` applies to multi-layer NMF only"),
    (dict(fine_tune_iter=5), "`fine_tune_iter` applies to multi-layer NMF only"),
])
def test_options_a_tree_would_ignore_are_refused(options, message):
    from hyperspy_hnmf import HNMF

    with pytest.raises(ValueError, match=re.escape(message)):
        HNMF(3, hierarchy="tree", **options).fit(_tree_scan())


def test_tree_init_random_is_honoured_and_seeded():
    from hyperspy_hnmf import HNMF

    X = _tree_scan()
    svd = HNMF(3, hierarchy="tree", random_state=0).fit(X)
    nndsvd = HNMF(3, hierarchy="tree", init="nndsvd", random_state=1).fit(X)
    assert np.array_equal(svd.components_, nndsvd.components_)  # both the SVD start
    a = HNMF(3, hierarchy="tree", init="random", random_state=0).fit(X)
    b = HNMF(3, hierarchy="tree", init="random", random_state=0).fit(X)
    assert np.array_equal(a.components_, b.components_)
    assert a.hierarchy_.parameters["init"] == "random"
    assert svd.hierarchy_.parameters["init"] == "svd"
