"""HNMFk: recursive NMF with the rank picked per node (issue 7)."""

import re
import sys

import hyperspy.api as hs
import numpy as np
import pytest
import scipy.sparse as sp

import hyperspy_hnmf
from hyperspy_hnmf.constraints import (ContinuousIntensity, MapResolution, Penalty, Projection,
                                       dip_score)
from hyperspy_hnmf.data import synthetic_spectrum_image
from hyperspy_hnmf.hierarchy import SplitNode, SplitTree, hnmfk, hnmfk_decomposition


def two_level(seed=0, per_leaf=30, m=48, scale=60.0):
    """3 groups of patterns; group 0 holds 3 sub-patterns, the others 1."""
    rng = np.random.default_rng(seed)
    groups = rng.random((3, m)) ** 8
    subs = [groups[0] + rng.random(m) ** 8 * 1.5 for _ in range(3)] + list(groups[1:])
    patterns = np.array(subs)
    patterns /= patterns.sum(axis=1, keepdims=True)
    truth = np.repeat(np.arange(len(patterns)), per_leaf)
    X = rng.poisson(patterns[truth] * scale * m / 4).astype("float32")
    return X, truth


@pytest.fixture(scope="module")
def tree_and_truth():
    X, truth = two_level()
    return X, truth, hnmfk(X, ranks=range(2, 6), n_restarts=4, min_cluster_size=8)


def _purity(labels, truth):
    return sum(np.bincount(truth[labels == c]).max() for c in np.unique(labels)) / truth.size


def test_recovers_the_planted_clusters(tree_and_truth):
    X, truth, tree = tree_and_truth
    assert tree.n_leaves == 5
    assert _purity(tree.labels(), truth) == 1.0
    assert np.bincount(tree.labels()).tolist() == [30] * 5
    # The root picks its own number of children (not a binary split).
    assert len(tree.root.children) >= 3
    assert tree.parameters["method"] == "hnmfk"
    assert all(node.status in ("split", "single_cluster", "too_small", "max_depth")
               for node in tree.nodes)
    assert set(tree.reports) == {n.id for n in tree.nodes if n.status in ("split",
                                                                           "single_cluster")}


def test_rows_partition_at_every_level(tree_and_truth):
    _, _, tree = tree_and_truth
    for node in tree.nodes:
        if node.children:
            rows = np.concatenate([tree.nodes[c].rows for c in node.children])
            assert np.array_equal(np.sort(rows), node.rows)
            assert node.child_sizes.tolist() == [tree.nodes[c].size for c in node.children]
    pairs, weights = tree.edges()
    for parent in {int(p) for p in pairs[:, 0]}:
        assert weights[pairs[:, 0] == parent].sum() == pytest.approx(1.0)


def test_nary_tree_survives_to_dict(tree_and_truth):
    X, _, tree = tree_and_truth
    restored = SplitTree.from_dict(tree.to_dict())
    assert np.array_equal(restored.labels(), tree.labels())
    assert [n.children for n in restored.nodes] == [n.children for n in tree.nodes]
    assert [n.child_sizes.tolist() for n in restored.nodes] == [
        n.child_sizes.tolist() for n in tree.nodes]
    assert restored.maps(X).shape == (X.shape[0], tree.n_leaves)


def test_binary_trees_keep_two_columns():
    component = np.array([0.5, 0.5])
    nodes = [SplitNode(id=0, parent=-1, depth=0, rows=np.arange(4), component=component,
                       rank1_error=1.0, intensity=8.0, children=(1, 2), status="split",
                       child_sizes=np.array([2, 2])),
             SplitNode(id=1, parent=0, depth=1, rows=np.arange(2), component=component,
                       rank1_error=0.0, intensity=4.0),
             SplitNode(id=2, parent=0, depth=1, rows=np.arange(2, 4), component=component,
                       rank1_error=0.0, intensity=4.0)]
    d = SplitTree(nodes, 4, 2, 1.0, {}, "n_leaves").to_dict()
    assert d["nodes"]["children"].shape == (3, 2)
    assert d["nodes"]["child_sizes"].shape == (3, 2)
    restored = SplitTree.from_dict(d)
    assert [n.child_sizes.tolist() for n in restored.nodes] == [[2, 2], [-1, -1], [-1, -1]]


def test_stopping_rules():
    X, _ = two_level()
    shallow = hnmfk(X, ranks=range(2, 6), n_restarts=3, max_depth=0)
    assert shallow.n_leaves == 1 and shallow.root.status == "max_depth"
    big = hnmfk(X, ranks=range(2, 6), n_restarts=3, min_cluster_size=80)
    assert big.n_leaves == 1 and big.root.status == "too_small"
    one = hnmfk(X[:30], ranks=[2, 3], n_restarts=4, min_cluster_size=5)
    assert all(leaf.status in ("single_cluster", "too_small") for leaf in one.leaves)
    for leaf in hnmfk(X, ranks=range(2, 6), n_restarts=3, min_cluster_size=25).leaves:
        assert leaf.size >= 25


def test_same_seed_same_tree_and_the_seed_is_recorded():
    # A NumPy integer seed (e.g. from np.arange or a config array) was
    # recorded as -1, "no seed", although it made the run reproducible.
    X, _ = two_level(per_leaf=12)
    options = dict(ranks=range(2, 4), n_restarts=3, min_cluster_size=5)
    first = hnmfk(X, random_state=np.int64(7), **options)
    second = hnmfk(X, random_state=7, **options)
    assert first.parameters["random_state"] == 7
    np.testing.assert_array_equal(first.labels(), second.labels())
    np.testing.assert_array_equal(first.components, second.components)


@pytest.mark.parametrize("lazy", [False, True])
def test_complex_data_are_refused(lazy):
    # A cast to float dropped the imaginary part with a mere ComplexWarning.
    X, _ = two_level(per_leaf=10)
    s = hs.signals.Signal1D(X.reshape(5, 10, -1).astype(np.complex64) + 1j)
    s = s.as_lazy() if lazy else s
    with pytest.raises(ValueError, match=r"^Complex data not supported by hnmfk: the data are "
                       r"complex64"):
        hnmfk_decomposition(s, ranks=range(2, 4), n_restarts=2)
    with pytest.raises(ValueError, match=r"^Complex data not supported by hnmfk"):
        hnmfk(X.astype(np.complex128), ranks=range(2, 4), n_restarts=2)


def test_bad_arguments():
    X, _ = two_level()
    with pytest.raises(ValueError, match=r"hnmfk ranks must be integers >= 2"):
        hnmfk(X, ranks=[1, 2])
    with pytest.raises(ValueError, match="n_restarts must be at least 2"):
        hnmfk(X, n_restarts=1)
    with pytest.raises(ValueError, match=r"^min_cluster_size must be an integer ≥ 1, got 0\.$"):
        hnmfk(X, min_cluster_size=0)


def test_signal_maps_use_the_loss_of_the_fits():
    # loss="kl" for counted electrons: the leaf maps stored in the signal
    # were Frobenius fits (and labelled so) whatever the loss asked for.
    X, _ = two_level(per_leaf=15)
    s = hs.signals.Signal1D(X.reshape(5, 15, -1))
    tree = hnmfk_decomposition(s, ranks=range(2, 5), n_restarts=3, min_cluster_size=6,
                               loss="kl")
    assert s.learning_results.hnmf["loss"] == "kl"
    loadings = s.learning_results.loadings
    np.testing.assert_allclose(loadings, tree.maps(X, loss="kl"), rtol=1e-5,
                               atol=1e-6 * loadings.max())
    frobenius_maps = tree.maps(X)
    kl = hyperspy_hnmf.solvers.beta_divergence
    components = tree.components
    assert kl(X, loadings, components, 1) < kl(X, frobenius_maps, components, 1)
    s = hs.signals.Signal1D(X.reshape(5, 15, -1))
    hnmfk_decomposition(s, ranks=range(2, 5), n_restarts=3, min_cluster_size=6)
    assert s.learning_results.hnmf["loss"] == "frobenius"


def test_rows_split_by_maps_of_the_loss_of_the_fits():
    # loss="kl": the rank and the consensus components came from KL fits,
    # but each row went to the child of its largest Frobenius coefficient.
    rng = np.random.default_rng(0)
    patterns = rng.random((3, 40)) ** 3
    X = rng.poisson(3 * rng.dirichlet([0.6] * 3, size=120) @ patterns).astype("float32")
    for loss in ("kl", None):
        options = {} if loss is None else {"loss": loss}
        tree = hnmfk(X, ranks=range(2, 5), n_restarts=4, min_cluster_size=5, max_depth=1,
                     **options)
        estimate = tree.reports[0]
        components = estimate.stability(estimate.rank).components.astype(X.dtype)
        maps = hyperspy_hnmf.solvers.solve_loadings(X, components, loss=loss or "frobenius")
        labels = np.full(X.shape[0], -1)
        for position, child in enumerate(tree.root.children):
            labels[tree.nodes[child].rows] = position
        assert len(tree.root.children) == estimate.rank  # (no child dissolved)
        np.testing.assert_array_equal(labels, np.argmax(maps, axis=1))


@pytest.mark.parametrize("keyword", ["navigation_mask", "output_dimension"])
def test_decomposition_keywords_are_refused_before_any_work(monkeypatch, keyword):
    X, _ = two_level(per_leaf=10)
    s = hs.signals.Signal1D(X.reshape(5, 10, -1))
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False)
    before = dict(s.learning_results.__dict__)
    monkeypatch.setattr(hyperspy_hnmf.rank_selection._estimate, "estimate_rank",
                        lambda *a, **k: pytest.fail("a node was fitted"))
    with pytest.raises(TypeError, match=rf"^hnmfk takes no {keyword} \(keywords of "
                       r"s\.decomposition\): it picks the number of clusters at every node "
                       r"from `ranks`.* crop the signal \(s\.inav\[\.\.\.\], "):
        hnmfk_decomposition(s, ranks=range(2, 4), **{keyword: np.zeros((10, 5), bool)})
    assert all(s.learning_results.__dict__[key] is value for key, value in before.items())


def test_signal_results_plot_like_the_rank2_tree():
    X, truth = two_level()
    s = hs.signals.Signal1D(X.reshape(10, 15, -1))
    tree = hnmfk_decomposition(s, ranks=range(2, 6), n_restarts=4, min_cluster_size=8)
    assert s.learning_results.decomposition_algorithm == "hnmfk"
    assert s.learning_results.output_dimension == tree.n_leaves
    labels = hyperspy_hnmf.get_cluster_labels(s).data
    assert labels.shape == (10, 15)
    assert np.array_equal(labels.ravel(), tree.labels())
    assert hyperspy_hnmf.get_split_tree(s).n_leaves == tree.n_leaves
    figure = hyperspy_hnmf.plot_hierarchy(s)
    assert len(figure.axes) > tree.n_leaves
    model = s.get_decomposition_model().data.reshape(X.shape)
    assert np.linalg.norm(model - X) / np.linalg.norm(X) < 0.3


@pytest.fixture(scope="module")
def nested_signal():
    X, truth = two_level()
    s = hs.signals.Signal1D(X.reshape(10, 15, -1))
    tree = hnmfk_decomposition(s, ranks=range(2, 4), n_restarts=4, min_cluster_size=8)
    return s, tree, truth


def test_picks_the_rank_per_node(nested_signal):
    # At most 3 children per node: the root sees the 3 groups, and the group
    # made of 3 sub-patterns is split again into them.
    _, tree, truth = nested_signal
    assert [len(tree.nodes[c].children) for c in tree.root.children] == [3, 0, 0]
    assert tree.nodes[tree.root.children[0]].size == 90
    assert tree.n_leaves == 5 and max(node.depth for node in tree.nodes) == 2
    assert _purity(tree.labels(), truth) == 1.0


@pytest.mark.mpl_image_compare(baseline_dir="baseline", tolerance=5)
def test_plot_hnmfk_tree(nested_signal):
    s, _, _ = nested_signal
    return hyperspy_hnmf.plot_hierarchy(s, min_weight=0.0, figsize=(6, 4.5))


# -- validation before any work, constraints, sparse input ------------------------

@pytest.fixture
def no_work(monkeypatch):
    """Make the root's first computation (its rank-1 fit) fail: a call that
    raises its own message has refused its input before any work."""
    def fail(X):
        raise AssertionError("the root's work started")
    # (the package's name `hnmfk` is the function: the module from sys.modules)
    monkeypatch.setattr(sys.modules["hyperspy_hnmf.hierarchy.hnmfk"], "_rank1", fail)


def test_ranks_may_be_one_integer():
    X, _ = two_level()
    tree = hnmfk(X, ranks=3, n_restarts=3, max_depth=1, min_cluster_size=8)
    assert tree.reports[0].ranks == [3]
    assert tree.parameters["ranks"].tolist() == [3]


@pytest.mark.parametrize("ranks, message", [
    ([2.5, 3], "ranks must be positive integers, got 2.5 in [2.5, 3]."),
    ([3, 2], "ranks must be strictly increasing, got [3, 2]; use sorted(set(ranks)) = [2, 3]."),
    (2.5, "ranks must be an integer or an iterable of integers, e.g. ranks=range(2, 11); "
          "got 2.5."),
])
def test_bad_ranks_are_refused_before_any_work(ranks, message, no_work):
    X, _ = two_level()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        hnmfk(X, ranks=ranks)


@pytest.mark.parametrize("options, message", [
    ({"silhouette_threshold": 2}, "silhouette_threshold must be a real number in [-1, 1] (the "
                                  "range of silhouettes; NMFk uses 0.5), got 2."),
    ({"max_iter": 0}, "max_iter must be an integer ≥ 1, got 0."),
    ({"consensus_rows": 0}, "consensus_rows must be an integer ≥ 1, got 0."),
    ({"perturbation": "poisson"}, "perturbation='poisson' resamples counts, but the data are "
                                  "not integers; use perturbation='uniform'."),
    ({"constraints": [ContinuousIntensity(3, units="px")]},
     "ContinuousIntensity needs the shape of the components: pass a HyperSpy signal to hnmfk "
     "(its axes give it), or component_grid=Grid(shape, scale, units) (from "
     "hyperspy_hnmf.constraints) with an array."),
])
def test_estimate_options_are_checked_before_the_roots_work(options, message, no_work):
    X, _ = two_level()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        hnmfk(X + 0.5, ranks=range(2, 5), **options)


def test_lazy_data_with_exact_options_are_refused_before_any_pass(no_work):
    X, _ = two_level()
    lazy = hs.signals.Signal1D(X.reshape(10, 15, -1)).as_lazy()
    with pytest.raises(ValueError, match=r"^On lazy signals estimate_rank works on a "
                                         r"compressed copy of the data"):
        hnmfk(lazy, ranks=range(2, 5), loss="kl")


_SUBSET = ("each node below the root is fitted on a subset of the probe positions, which does "
           "not fill the scan grid")


@pytest.mark.parametrize("constraint, name", [
    (MapResolution(2.0), "MapResolution"),
    (Projection(lambda maps: maps, on="maps", name="identity"), "Projection 'identity'"),
])
def test_map_projections_are_refused_before_any_work(constraint, name, no_work):
    s = synthetic_spectrum_image(scan_shape=(16, 16), n_channels=128)
    message = (f"hnmfk cannot apply {name} to the maps: {_SUBSET}. Use it in a flat fit "
               "(estimate_rank, or s.decomposition(algorithm='hnmf')); hnmfk takes constraints "
               "on the components (e.g. ContinuousIntensity) and penalties only.")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        hnmfk(s, ranks=[2, 3], n_restarts=2, constraints=[constraint])


def test_map_grid_is_refused_before_any_work(no_work):
    s = synthetic_spectrum_image(scan_shape=(16, 16), n_channels=128)
    message = (f"hnmfk takes no map_grid: {_SUBSET}. Drop map_grid; constraints on the "
               "components and penalties on the maps apply at every node.")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        hnmfk(s, ranks=[2, 3], n_restarts=2, map_grid=(16, 16))


def test_decomposition_needs_a_signal(no_work):
    X, _ = two_level()
    with pytest.raises(TypeError, match=r"^hnmfk_decomposition stores the tree in a HyperSpy "
                                        r"signal's learning_results, got ndarray; for an "
                                        r"array, use hnmfk\(X, \.\.\.\), which returns the "
                                        r"tree\.$"):
        hnmfk_decomposition(X, ranks=range(2, 4))


def test_component_constraints_take_the_signal_grid_at_every_node():
    s = synthetic_spectrum_image(scan_shape=(16, 16), n_channels=128, random_state=0)
    width = ContinuousIntensity(0.5)            # keV: 6.25 channels of 0.08 keV
    tree = hnmfk(s, ranks=[2, 3], n_restarts=2, max_depth=1, min_cluster_size=20,
                 max_iter=50, constraints=[width, Penalty(l1=0.01)])
    assert len(tree.reports) >= 1
    for estimate in tree.reports.values():
        assert estimate.settings["options"]["component_grid"].shape == (128,)
        assert "map_grid" not in estimate.settings["options"]
        for scores in estimate.scores:
            runs = scores.components.reshape(-1, 128)
            # Every run's components keep no dip deeper than the tolerance (2 %).
            assert dip_score(runs, 6.25).max() <= 0.021


def test_sparse_input_gives_the_dense_tree():
    X, truth = two_level()
    dense = hnmfk(X, ranks=range(2, 6), n_restarts=4, min_cluster_size=8, perturbation="poisson")
    tree = hnmfk(sp.csr_matrix(X), ranks=range(2, 6), n_restarts=4, min_cluster_size=8,
                 perturbation="poisson")
    assert tree.n_leaves == dense.n_leaves == 5
    np.testing.assert_array_equal(tree.labels(), dense.labels())
    np.testing.assert_allclose(tree.components, dense.components, rtol=0, atol=1e-5)
