"""Hierarchical decompositions through HyperSpy: results, storage, figures, errors."""

import matplotlib
import numpy as np
import pytest
import hyperspy.api as hs

import hyperspy_hnmf
from hyperspy_hnmf import (
    get_cluster_labels,
    get_hierarchy_level,
    get_mixing_matrices,
    get_split_tree,
    plot_hierarchy,
)

matplotlib.use("Agg")


def planted_signal(seed=0):
    """Two groups of two fine components that co-occur spatially, on a 12 x 12 scan."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:12, :12]
    region = (x >= 6).astype(float)
    group_maps = np.stack([1 - region, region])
    fine = np.stack([group_maps[0] * (0.3 + 0.7 * y / 11), group_maps[0] * (1 - 0.7 * y / 11),
                     group_maps[1] * (0.3 + 0.7 * y / 11), group_maps[1] * (1 - 0.7 * y / 11)])
    patterns = np.zeros((4, 8, 8))
    for j, (r, c) in enumerate([(1, 1), (1, 6), (6, 1), (6, 6)]):
        patterns[j, r, c] = 1.0
        patterns[j, 3:5, 3:5] = 0.2
    data = np.einsum("kyx,kvu->yxvu", fine, patterns) * 50
    return hs.signals.Signal2D(rng.poisson(data).astype("float32") + 0.0)


@pytest.fixture
def layered():
    s = planted_signal()
    s.decomposition(algorithm="hnmf", output_dimension=[4, 2], loss="kl", random_state=0,
                    print_info=False)
    return s


@pytest.fixture
def treed():
    s = planted_signal()
    s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=3, loss="kl",
                    random_state=0, print_info=False)
    return s


def test_layers_fill_learning_results_with_the_chosen_level(layered):
    lr = layered.learning_results
    assert lr.factors.shape == (64, 4) and lr.output_dimension == 4
    s = planted_signal()
    s.decomposition(algorithm="hnmf", output_dimension=[4, 2], level=2, random_state=0,
                    print_info=False)
    assert s.learning_results.factors.shape == (64, 2)


def test_levels_are_nonnegative_mixtures_of_finer_ones(layered):
    fine, _ = get_hierarchy_level(layered, 1)
    coarse, coarse_maps = get_hierarchy_level(layered, 2)
    M = get_mixing_matrices(layered)[2]
    assert M.shape == (2, 4) and M.min() >= 0
    np.testing.assert_allclose(coarse.data.reshape(2, -1), M @ fine.data.reshape(4, -1),
                               rtol=1e-4, atol=1e-7)
    # The planted groups: fine components {left region} and {right region}.
    groups = np.argmax(M, axis=0)
    left = fine.data.reshape(4, -1)[:, [1 * 8 + 1, 1 * 8 + 6]].sum(axis=1) > 0.1
    assert len(set(groups[left])) == 1 and len(set(groups[~left])) == 1
    assert set(groups[left]) != set(groups[~left])
    info = layered.learning_results.hnmf["hierarchy"]
    assert info["errors"][-1] < info["greedy_errors"][-1]


@pytest.mark.parametrize("extension", ["hspy", "zspy"])
def test_hierarchy_survives_save_and_load(layered, treed, tmp_path, extension):
    for name, s in (("layers", layered), ("tree", treed)):
        path = tmp_path / f"{name}.{extension}"
        s.save(path)
        loaded = hs.load(path)
        if name == "layers":
            for level in (1, 2):
                a, b = get_hierarchy_level(s, level)[0], get_hierarchy_level(loaded, level)[0]
                np.testing.assert_array_equal(a.data, b.data)
            np.testing.assert_array_equal(get_mixing_matrices(loaded)[2],
                                          get_mixing_matrices(s)[2])
        else:
            np.testing.assert_array_equal(get_split_tree(loaded).labels(),
                                          get_split_tree(s).labels())


def test_tree_leaves_are_components_and_labels_are_a_signal(treed):
    tree = get_split_tree(treed)
    assert tree.n_leaves == 3
    np.testing.assert_allclose(treed.learning_results.factors.T, tree.components, rtol=1e-6)
    labels = get_cluster_labels(treed)
    assert labels.data.shape == (12, 12)
    assert set(np.unique(labels.data)) == {0, 1, 2}
    # the two planted regions never share a leaf
    left, right = set(labels.data[:, :6].ravel()), set(labels.data[:, 6:].ravel())
    assert not left & right


def test_tree_labels_mark_masked_positions():
    s = planted_signal()
    mask = np.zeros(s.axes_manager.navigation_shape, dtype=bool)
    mask[0, 0] = True
    s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=2,
                    navigation_mask=mask, print_info=False)
    assert get_cluster_labels(s).data[0, 0] == -1


@pytest.mark.parametrize("lazy", [False, True])
def test_a_tree_short_of_the_asked_leaves_says_so(lazy):
    # 144 positions cannot give leaves of 100: the root stays whole. The
    # user asked for 3 components and must hear why one came back.
    s = planted_signal()
    s = s.as_lazy() if lazy else s
    with pytest.warns(UserWarning, match=r"^The tree has 1 leaf, not the 3 asked for: no leaf can "
                      r"be split \(1 too_small\)\. Lower min_leaf_size"):
        s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=3,
                        min_leaf_size=100, print_info=False)
    assert s.learning_results.factors.shape == (64, 1)
    assert get_split_tree(s).stop_reason == "no_split: no leaf can be split (1 too_small)"


@pytest.mark.mpl_image_compare(baseline_dir="baseline", tolerance=5)
def test_plot_hierarchy_layers(layered):
    return plot_hierarchy(layered, figsize=(8, 4))


@pytest.mark.mpl_image_compare(baseline_dir="baseline", tolerance=5)
def test_plot_hierarchy_tree(treed):
    return plot_hierarchy(treed, figsize=(6, 4.5))


def test_accessors_on_a_flat_decomposition_say_what_to_do():
    s = planted_signal()
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False)
    with pytest.raises(ValueError, match="has no hierarchical decomposition"):
        get_hierarchy_level(s, 1)
    with pytest.raises(ValueError, match="has no hierarchical decomposition"):
        plot_hierarchy(s)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(output_dimension=[2, 4]), "ranks must be strictly decreasing"),
        (dict(output_dimension=[4, 0]), "Every rank must be ≥ 1"),
        (dict(output_dimension=[4, 4]), "ranks must be strictly decreasing"),
        (dict(output_dimension=[70, 2]), "output_dimension=70 is too large"),
        (dict(output_dimension=[4, 2], level=3), "level must be an integer from 1"),
        (dict(output_dimension=4, level=1), "`level` applies to multi-layer NMF only"),
        (dict(output_dimension=200, hierarchy="tree"),
         "A tree with 200 leaves needs at least as many probe positions, but there are 144"),
        (dict(output_dimension=[4, 2], hierarchy="tree"), "hierarchy='tree' takes one number"),
        (dict(output_dimension=4, hierarchy="pyramid"), "Unknown hierarchy 'pyramid'"),
        (dict(output_dimension=4, min_leaf_size=3), "applies to hierarchy='tree' only"),
        (dict(output_dimension=[4, 2], normalize_poissonian_noise=True),
         "normalize_poissonian_noise=True is not supported with hierarchical"),
        (dict(output_dimension=[4, 2], layer_weights=[1.0]), "layer_weights has 1 entries"),
    ],
)
def test_bad_hierarchy_input_leaves_results_unchanged(layered, kwargs, message):
    before = dict(layered.learning_results.__dict__)
    with pytest.raises(ValueError, match=message):
        layered.decomposition(algorithm="hnmf", print_info=False, **kwargs)
    after = layered.learning_results.__dict__
    assert after.keys() == before.keys()
    assert all(after[key] is before[key] for key in before)


def test_plugin_exports():
    assert hyperspy_hnmf.plot_hierarchy is plot_hierarchy


def test_planted_phases_group_their_rotations_at_the_default_dose():
    """synthetic_4dstem(mixed_rotations=True): rotations of a phase share a coarse parent."""
    from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem

    s = synthetic_4dstem(detector_shape=(32, 32), mixed_rotations=True, random_state=0)
    truth = get_ground_truth(s)
    s.decomposition(algorithm="hnmf", output_dimension=[truth.n_components, 4], loss="kl",
                    random_state=0, print_info=False)
    score = score_signal(s)
    groups = np.argmax(get_mixing_matrices(s)[2], axis=0)
    parents = {}
    for true_index, learned in enumerate(score.matched):
        parents.setdefault(int(truth.phase[true_index]), set()).add(int(groups[learned]))
    assert all(len(parent) == 1 for parent in parents.values())
    assert len(set.union(*parents.values())) == len(parents)
