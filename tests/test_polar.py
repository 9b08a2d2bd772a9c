"""Polar transform, φ cross-correlation and rotation-invariant clustering."""

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem
from hyperspy_hnmf.polar import (
    PolarKMeans,
    PolarTransform,
    cluster_components,
    default_radial_range,
    find_direct_beam,
    phi_xcorr,
    polar_transform,
    rotate_pattern,
    shift_phi,
)
from hyperspy_hnmf.polar import signal_methods

CENTER = (31.5, 31.5)


def spot_pattern(angle_deg, seed=0, shape=(64, 64), center=CENTER, n_spots=14):
    """Direct beam and Gaussian spots at random (r, φ), rendered rotated by ``angle_deg``.

    No symmetry at all, so the rotation angle is defined modulo 360°.
    """
    rng = np.random.default_rng(seed)
    radius = rng.uniform(6, 28, n_spots)
    phi = np.deg2rad(rng.uniform(0, 360, n_spots) + angle_deg)
    weight = rng.uniform(0.3, 1.0, n_spots)
    rows, cols = np.indices(shape)
    pattern = 3 * np.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / 3.0)
    for r, p, w in zip(radius, phi, weight):
        row, col = center[0] - r * np.sin(p), center[1] + r * np.cos(p)
        pattern += w * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / 2.0)
    return pattern.astype("float32")


def pure_pixel_classes(signal, crystal_share=0.5, purity=0.95, amorphous=0.05):
    """True class of every probe position: a phase, n_phases for amorphous, -1 mixed."""
    truth = get_ground_truth(signal)
    n_phases = truth.phase.max() + 1
    per_phase = np.stack(
        [truth.loadings[:, truth.phase == p].sum(axis=1) for p in range(n_phases)], axis=1
    )
    crystal = per_phase.sum(axis=1)
    total = truth.loadings.sum(axis=1)
    classes = np.full(len(total), -1)
    classes[crystal / total < amorphous] = n_phases
    pure = (per_phase.max(axis=1) >= purity * crystal) & (crystal / total >= crystal_share)
    classes[pure] = per_phase.argmax(axis=1)[pure]
    return classes


def accuracy(classes, labels):
    """Share of classified pixels whose label matches, after the best label matching."""
    keep = classes >= 0
    n = max(classes.max(), labels.max()) + 1
    counts = np.zeros((n, n))
    np.add.at(counts, (classes[keep], labels[keep]), 1)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / keep.sum()


@pytest.fixture(scope="module")
def decomposed():
    s = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(48, 48), n_phases=3,
                         n_rotations=2, dose=1000, random_state=0)
    s.decomposition(algorithm="hnmf", output_dimension=7, loss="kl", print_info=False,
                    random_state=0, max_iter=300)
    return s


@pytest.fixture(scope="module")
def scan():
    return synthetic_4dstem(scan_shape=(48, 48), detector_shape=(64, 64), n_phases=3,
                            n_rotations=3, random_state=1)


# --- polar transform -------------------------------------------------------------------


def test_polar_transform_of_a_ring_and_a_spot():
    rows, cols = np.indices((64, 64))
    radius = np.hypot(rows - 31.5, cols - 31.5)
    ring = np.exp(-((radius - 12) ** 2) / 18.0)
    transform = PolarTransform((64, 64), CENTER, radial_range=(0, 24), n_r=24, n_phi=90)
    polar = transform(ring)
    assert polar.shape == (24, 90)
    assert np.argmax(polar.mean(axis=1)) in (11, 12)
    assert np.ptp(polar[11]) < 0.03 * polar[11].max()  # isotropic: flat along φ
    # A spot straight above the centre (as displayed) is at φ = 90°.
    spot = np.exp(-((rows - 11.5) ** 2 + (cols - 31.5) ** 2) / 2.0)
    r, phi = np.unravel_index(np.argmax(transform(spot)), (24, 90))
    assert transform.radii[r] == pytest.approx(20, abs=1)
    assert transform.angles_deg[phi] == pytest.approx(90, abs=4)


def test_polar_transform_keeps_float32_and_float64():
    transform = PolarTransform((16, 16), (7.5, 7.5), n_phi=16)
    assert transform(np.ones((2, 16, 16), dtype="float32")).dtype == np.float32
    assert transform(np.ones((2, 16, 16), dtype="uint16")).dtype == np.float32
    assert transform(np.ones((2, 16, 16), dtype="float64")).dtype == np.float64


def test_precomputed_transform_is_reused_and_agrees_serial_and_parallel():
    rng = np.random.default_rng(0)
    data = rng.random((5, 32, 32)).astype("float32")
    transform = PolarTransform((32, 32), (15.2, 16.7), radial_range=(2, 14), n_r=12, n_phi=72)
    np.testing.assert_array_equal(transform(data), transform(data, parallel=False))
    np.testing.assert_allclose(transform(data[2]), transform(data)[2])


def test_find_direct_beam_on_the_mean_pattern(scan):
    center = find_direct_beam(scan.data.mean(axis=(0, 1)))
    assert center == pytest.approx(CENTER, abs=0.1)
    assert default_radial_range(scan.data.mean(axis=(0, 1)), center)[0] > 3


def test_lazy_pixel_clustering_agrees_with_in_memory(scan):
    s = scan.inav[:16, :16]
    labels, _, _ = s.polar_cluster_analysis(3, random_state=0)
    labels_lazy, _, _ = s.as_lazy().polar_cluster_analysis(3, random_state=0)
    np.testing.assert_array_equal(labels_lazy.data, labels.data)


def test_signal_polar_transform_axes_and_lazy_path_agree(scan):
    s = scan.inav[:6, :5]
    polar = s.polar_transform(radial_range=(1.0, 7.0), n_r=24, n_phi=180)
    phi, r = polar.axes_manager.signal_axes
    assert (phi.name, phi.units, phi.scale, phi.offset) == ("phi", "deg", 2.0, 0.0)
    assert (r.name, r.units) == ("r", "1/nm")
    assert r.offset == pytest.approx(1.0 + 0.125) and r.scale == pytest.approx(0.25)
    assert polar.data.shape == (5, 6, 24, 180) and polar.data.dtype == np.float32
    assert polar.axes_manager.navigation_axes[0].name == "x"
    center = polar.metadata.Polar_transform.center
    assert center == pytest.approx([0.0, 0.0], abs=0.03)
    lazy = s.as_lazy()
    lazy.data = lazy.data.rechunk((2, 3, 32, 32))
    polar_lazy = lazy.polar_transform(radial_range=(1.0, 7.0), n_r=24, n_phi=180)
    assert polar_lazy._lazy and isinstance(polar_lazy.data, da.Array)
    np.testing.assert_allclose(polar_lazy.data.compute(), polar.data, rtol=1e-6, atol=1e-6)


# --- φ cross-correlation ---------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 17.0, 123.0, -75.0, 200.0])
def test_rotated_copies_score_high_and_give_the_angle(angle):
    transform = PolarTransform((64, 64), CENTER, radial_range=(4, 31), n_phi=360)
    base, rotated = transform(np.stack([spot_pattern(0.0), spot_pattern(angle)]))
    similarity, found = phi_xcorr(base, rotated)
    assert similarity[0, 0] >= 0.99
    expected = (angle + 180) % 360 - 180
    assert abs((found[0, 0] - expected + 180) % 360 - 180) <= 1.0  # one φ bin


def test_rotating_a_pattern_by_interpolation_also_scores_high():
    pattern = spot_pattern(0.0, seed=3)
    transform = PolarTransform((64, 64), CENTER, radial_range=(4, 28), n_phi=360)
    stack = transform(np.stack([pattern, rotate_pattern(pattern, 33.0, CENTER)]))
    similarity, angle = phi_xcorr(stack)
    assert similarity[0, 1] >= 0.99
    assert angle[0, 1] == pytest.approx(33.0, abs=1.0)
    assert angle[1, 0] == pytest.approx(-33.0, abs=1.0)


def test_different_lattices_score_clearly_lower():
    # Ground-truth patterns: 3 lattices x 3 rotations (hexagonal, square, rectangular).
    s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(64, 64), n_phases=3,
                         n_rotations=3, noise=False)
    truth = get_ground_truth(s)
    crystal = truth.phase >= 0
    patterns = truth.factors.T[crystal].reshape(-1, 64, 64)
    polar, _ = polar_transform(patterns, center=CENTER, radial_range=(4.5, 31.5))
    similarity, _ = phi_xcorr(polar)
    phase = truth.phase[crystal]
    same = phase[:, None] == phase[None, :]
    # Measured: same phase >= 0.996, different lattices <= 0.34.
    assert similarity[same].min() >= 0.99
    assert similarity[~same].max() <= 0.5


def test_batched_similarity_equals_pairwise_and_is_symmetric(monkeypatch):
    rng = np.random.default_rng(0)
    polar = rng.random((6, 8, 36))
    monkeypatch.setattr("hyperspy_hnmf.polar._xcorr._BLOCK_VALUES", 4 * 36 * 6)  # 4 rows
    similarity, angle = phi_xcorr(polar)
    for i in range(6):
        for j in range(6):
            s_ij, a_ij = phi_xcorr(polar[i], polar[j])
            assert similarity[i, j] == pytest.approx(s_ij[0, 0])
            assert angle[i, j] == pytest.approx(a_ij[0, 0])
    np.testing.assert_allclose(similarity, similarity.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-6)
    brute = max(
        np.corrcoef(polar[0].ravel(), np.roll(polar[1], s, axis=-1).ravel())[0, 1]
        for s in range(36)
    )
    assert similarity[0, 1] == pytest.approx(brute, abs=1e-6)


def test_shift_phi_is_a_rotation_of_the_polar_pattern():
    rng = np.random.default_rng(0)
    polar = rng.random((4, 72)).astype("float32")
    shifted = shift_phi(polar, 25.0)  # five bins of 5°
    assert shifted.dtype == np.float32
    np.testing.assert_allclose(shifted, np.roll(polar, 5, axis=-1), atol=1e-5)


# --- clustering of decomposition components -------------------------------------------


def learned_phases(signal):
    truth = get_ground_truth(signal)
    score = score_signal(signal)
    phases = np.full(signal.learning_results.factors.shape[1], -2)
    for true_index, learned in score.pairs:
        phases[learned] = truth.phase[true_index]
    return phases, score


def test_components_are_grouped_by_phase(decomposed):
    phases, score = learned_phases(decomposed)
    assert score.mean_pattern_correlation > 0.95
    result = decomposed.cluster_decomposition_components(n_clusters=4)
    # Same phase <=> same cluster (the halo alone).
    same_phase = phases[:, None] == phases[None, :]
    same_cluster = result.labels[:, None] == result.labels[None, :]
    np.testing.assert_array_equal(same_phase, same_cluster)
    # Members are rotated from their reference by the true step (mod the symmetry).
    truth = get_ground_truth(decomposed)
    symmetry = {0: 60.0, 1: 90.0, 2: 180.0}
    for c in range(result.n_clusters):
        members = result.members(c)
        if phases[members[0]] < 0:
            continue
        reference = result.references[c]
        true_rotation = {learned: truth.rotation_deg[t] for t, learned in score_pairs(decomposed)}
        for m in members:
            expected = true_rotation[m] - true_rotation[reference]
            period = symmetry[phases[m]]
            error = (result.angles_deg[m] - expected + period / 2) % period - period / 2
            assert abs(error) <= 1.0


def score_pairs(signal):
    return [(t, learned) for t, learned in score_signal(signal).pairs]


def test_merged_components_are_signals_and_keep_the_intensity(decomposed):
    result = decomposed.cluster_decomposition_components(n_clusters=4)
    loadings = decomposed.learning_results.loadings
    assert result.factors.data.shape == (4, 48, 48)
    assert result.loadings.data.shape == (4, 32, 32)
    assert result.factors.axes_manager.signal_axes[0].units == "1/nm"
    # HNMF patterns sum to 1, so the merged maps are the sums of the members' maps.
    for c in range(4):
        np.testing.assert_allclose(result.loadings.data[c].ravel(),
                                   loadings[:, result.labels == c].sum(axis=1), rtol=1e-5)
    # Merged patterns still sum to about 1 (a little is lost in the corners by rotation).
    np.testing.assert_allclose(result.factors.data.sum(axis=(1, 2)), 1.0, atol=0.05)
    # Clusters come by decreasing intensity.
    totals = result.loadings.data.sum(axis=(1, 2))
    assert (np.diff(totals) <= 0).all()


def test_threshold_cut_matches_the_phases(decomposed):
    phases, _ = learned_phases(decomposed)
    result = decomposed.cluster_decomposition_components(threshold=0.8, linkage="complete")
    assert result.n_clusters == 4
    assert result.cut_distance == pytest.approx(0.2)
    for c in range(result.n_clusters):
        assert len(set(phases[result.members(c)])) == 1


def test_write_to_learning_results_and_restore(decomposed):
    s = decomposed.deepcopy()
    factors = s.learning_results.factors.copy()
    loadings = s.learning_results.loadings.copy()
    s.cluster_decomposition_components(n_clusters=4, write_to_learning_results=True)
    assert s.learning_results.factors.shape == (48 * 48, 4)
    assert s.learning_results.output_dimension == 4
    assert s.get_decomposition_model().data.shape == s.data.shape
    assert s.learning_results.polar_clustering["labels"].shape == (7,)
    s.restore_decomposition_components()
    np.testing.assert_array_equal(s.learning_results.factors, factors)
    np.testing.assert_array_equal(s.learning_results.loadings, loadings)
    assert s.learning_results.output_dimension == 7
    assert getattr(s.learning_results, "polar_clustering", None) is None


def test_restore_goes_back_to_the_decomposition_after_two_merges(decomposed):
    s = decomposed.deepcopy()
    factors = s.learning_results.factors.copy()
    s.cluster_decomposition_components(n_clusters=5, write_to_learning_results=True)
    s.cluster_decomposition_components(n_clusters=4, write_to_learning_results=True)
    assert s.learning_results.factors.shape == (48 * 48, 4)
    s.restore_decomposition_components()
    np.testing.assert_array_equal(s.learning_results.factors, factors)
    assert s.learning_results.output_dimension == 7


@pytest.mark.parametrize("later", ["SVD", "hnmf", "hnmf, same k and totals"])
def test_restore_refuses_a_stash_that_a_later_decomposition_made_stale(decomposed, later):
    s = decomposed.deepcopy()
    if later == "SVD":
        s.cluster_decomposition_components(n_clusters=4, write_to_learning_results=True)
        s.decomposition(algorithm="SVD", output_dimension=5, print_info=False)
    elif later == "hnmf":
        s.cluster_decomposition_components(n_clusters=4, write_to_learning_results=True)
        s.decomposition(algorithm="hnmf", output_dimension=5, max_iter=5, print_info=False)
    else:
        # Nothing merged (7 clusters of 7): a later KL fit with 7 components has
        # factors summing to 7 and loadings summing to the data's total too.
        s.cluster_decomposition_components(n_clusters=7, write_to_learning_results=True)
        s.decomposition(algorithm="hnmf", output_dimension=7, loss="kl", random_state=1,
                        max_iter=300, print_info=False)
        later = "hnmf"
    factors = s.learning_results.factors.copy()
    with pytest.raises(ValueError) as info:
        s.restore_decomposition_components()
    assert str(info.value) == (
        "There is nothing to restore: learning_results no longer hold the merged components "
        "that cluster_decomposition_components(..., write_to_learning_results=True) wrote (a "
        f"later decomposition, by algorithm={later!r}, or another change replaced them), so "
        "the stashed results are stale and were left as they are.")
    np.testing.assert_array_equal(s.learning_results.factors, factors)
    assert s.learning_results.decomposition_algorithm == later


def test_array_level_clustering_without_maps():
    patterns = np.stack([spot_pattern(a, seed=seed) for seed in (0, 1) for a in (0, 40, 250)])
    result = cluster_components(patterns, n_clusters=2, center=CENTER, radial_range=(4, 30))
    assert len(set(result.labels[:3])) == len(set(result.labels[3:])) == 1
    assert result.labels[0] != result.labels[3]
    assert result.maps is None and result.patterns.shape == (2, 64, 64)
    assert np.round(result.angles_deg).tolist() == [0, 40, -110, 0, 40, -110]


def test_dendrogram_title_names_the_data(decomposed):
    result = decomposed.cluster_decomposition_components(n_clusters=4)
    figure = result.plot_dendrogram(figsize=(8, 4))
    title = figure.axes[0].get_title()
    assert title == (f"{decomposed.metadata.General.title}\n"
                     f"{len(result.labels)} components in 4 clusters (φ cross-correlation)")
    # The title is inside the figure (not clipped at its top edge).
    figure.canvas.draw()
    box = figure.axes[0].title.get_window_extent()
    assert box.y1 <= figure.bbox.y1


@pytest.mark.mpl_image_compare(baseline_dir="baseline", tolerance=5)
def test_plot_polar_dendrogram(decomposed):
    result = decomposed.cluster_decomposition_components(n_clusters=4)
    return result.plot_dendrogram(figsize=(8, 4))


# --- pixel-level clustering -------------------------------------------------------------


def test_pixel_clustering_labels_pure_phase_pixels(scan):
    classes = pure_pixel_classes(scan)
    labels, centres, rotation = scan.polar_cluster_analysis(4, random_state=0)
    assert labels.data.shape == (48, 48) and rotation.data.shape == (48, 48)
    assert labels.axes_manager.signal_axes[0].name == "x"
    assert centres.axes_manager.navigation_axes[0].name == "cluster"
    assert [a.name for a in centres.axes_manager.signal_axes] == ["phi", "r"]
    assert (np.bincount(classes[classes >= 0]) > 50).all()  # every class is present
    assert accuracy(classes, labels.data.ravel()) >= 0.95


def test_pixel_clustering_through_hyperspy_cluster_analysis(scan):
    classes = pure_pixel_classes(scan)
    estimator = PolarKMeans(4, pattern_shape=(64, 64), random_state=0)
    s = scan.deepcopy()
    s.cluster_analysis("signal", algorithm=estimator)
    labels = np.argmax(s.learning_results.cluster_labels, axis=0)
    assert s.learning_results.number_of_clusters == 4
    assert s.get_cluster_labels().data.shape[0] == 4
    assert accuracy(classes, labels) >= 0.95
    assert estimator.cluster_centers_.shape[0] == 4
    assert estimator.similarity_.shape == (48 * 48,)
    # Cluster 0, the largest, is the amorphous film; the lattices repeat every
    # 60° (hexagonal), 90° (square) and 180° (rectangular).
    assert sorted(estimator.symmetry_deg_[1:]) == [60, 90, 180]
    for c in range(1, 4):
        half = estimator.symmetry_deg_[c] / 2
        assert np.abs(estimator.rotation_deg_[estimator.labels_ == c]).max() <= half


def test_pixel_orientation_map_follows_the_true_rotations():
    s = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(64, 64), n_phases=1,
                         n_rotations=3, dose=2000, halo=False, random_state=2)
    truth = get_ground_truth(s)
    _, _, rotation = s.polar_cluster_analysis(1, random_state=0)
    total = truth.loadings.sum(axis=1)
    dominant = truth.loadings.argmax(axis=1)
    pure = (truth.loadings.max(axis=1) >= 0.95 * total) & (total > 0.5 * total.max())
    # The hexagonal lattice repeats every 60°: average angles on that circle.
    turns = np.exp(1j * np.deg2rad(rotation.data.ravel()) * 6)
    mean = [np.rad2deg(np.angle(turns[pure & (dominant == a)].mean())) / 6 for a in range(3)]
    for a in range(3):
        for b in range(3):
            expected = truth.rotation_deg[b] - truth.rotation_deg[a]
            error = (mean[b] - mean[a] - expected + 30) % 60 - 30
            assert abs(error) <= 2.0  # one φ bin of the default 180


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: PolarTransform((64,), CENTER),
         "Patterns must be 2D images of at least 2 x 2 pixels; got pattern shape (64,)."),
        (lambda: polar_transform(np.ones(5)),
         "Patterns must be 2D images (..., rows, columns); got an array of shape (5,)."),
        (lambda: PolarTransform((64, 64), (70, 10)),
         "The centre (row 70, column 10) is outside the pattern of 64 x 64 pixels "
         "(rows 0 to 63, columns 0 to 63)."),
        (lambda: PolarTransform((64, 64), CENTER, radial_range=(0, 40)),
         "radial_range (0, 40) pixels goes beyond the pattern: circles about the centre "
         "stay inside it up to r = 31.5 pixels."),
        (lambda: PolarTransform((64, 64), CENTER, radial_range=(10, 5)),
         "radial_range must satisfy 0 <= r_min < r_max, got (10, 5)."),
        (lambda: PolarTransform((64, 64), CENTER, n_phi=2),
         "n_phi must be an integer >= 4, got 2."),
        (lambda: PolarTransform((64, 64), CENTER)(np.ones((3, 32, 32))),
         "Patterns must have shape (..., 64, 64); got (3, 32, 32)."),
        (lambda: phi_xcorr(np.ones((2, 3, 4, 5))),
         "polar_a must be polar patterns of shape (n, n_r, n_phi) or (n_r, n_phi); got "
         "shape (2, 3, 4, 5)."),
        (lambda: phi_xcorr(np.ones((2, 3, 8)), np.ones((2, 3, 9))),
         "polar_a and polar_b must have the same (n_r, n_phi); got (3, 8) and (3, 9)."),
        (lambda: cluster_components(np.ones((1, 16, 16)), n_clusters=1),
         "Clustering needs at least two components; got 1."),
        (lambda: cluster_components(np.ones((3, 16)), n_clusters=1),
         "Component patterns must be a stack of 2D images, shape (k, rows, columns); "
         "got shape (3, 16)."),
        (lambda: cluster_components(np.ones((3, 16, 16)), n_clusters=2, threshold=0.5),
         "Give exactly one of n_clusters (the number of clusters) and threshold (the "
         "similarity above which components are merged)."),
        (lambda: cluster_components(np.ones((3, 16, 16)), n_clusters=4),
         "n_clusters must be an integer from 1 to the number of components (3), got 4."),
        (lambda: cluster_components(np.ones((3, 16, 16)), threshold=2),
         "threshold must be a similarity between -1 and 1, got 2."),
        (lambda: cluster_components(np.ones((3, 16, 16)), n_clusters=2, linkage="ward"),
         "linkage must be one of 'average', 'complete', 'single', 'weighted' (the "
         "linkages valid for 1 - similarity), got 'ward'."),
        (lambda: cluster_components(np.ones((3, 16, 16)), np.ones((5, 2)), n_clusters=2),
         "maps must have shape (n_nav, 3), one column per pattern; got (5, 2)."),
        (lambda: PolarKMeans(2).fit(np.ones((4, 16))),
         "Give exactly one of pattern_shape (samples are detector patterns) and "
         "polar_shape (samples are polar patterns)."),
        (lambda: PolarKMeans(2, pattern_shape=(4, 5)).fit(np.ones((4, 16))),
         "Each row of X must hold 4 x 5 = 20 values, got 16."),
        (lambda: PolarKMeans(2, polar_shape=(4, 4), tol=1).fit(np.ones((4, 16))),
         "tol must be a number from 0 to less than 1, got 1."),
        (lambda: PolarKMeans(5, polar_shape=(4, 4)).fit(np.ones((4, 16))),
         "n_clusters=5 is more than the 4 samples."),
        (lambda: PolarKMeans(2, pattern_shape=(8, 8), center=(9, 3)).fit(np.ones((4, 64))),
         "The centre (row 9, column 3) is outside the pattern of 8 x 8 pixels (rows 0 to "
         "7, columns 0 to 7)."),
    ],
)
def test_array_level_errors(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_signal_errors_leave_the_results_untouched(decomposed):
    s = decomposed.deepcopy()
    before = dict(s.learning_results.__dict__)
    cases = [
        (dict(n_clusters=3, method="xcorr"), "method must be 'polar_xcorr', got 'xcorr'."),
        (dict(n_clusters=3, center=(9.0, 0.0)),
         "The centre (x=9, y=0) is outside the pattern: x spans -7.83333 to 7.83333 and "
         "y -7.83333 to 7.83333 1/nm."),
        (dict(n_clusters=3, center=(0.0, 0.0), radial_range=(1.0, 12.0)),
         "radial_range (1, 12) 1/nm goes beyond the pattern: circles about the centre "
         "stay inside it up to r = 7.83333 1/nm (23.5 pixels of 0.333333 1/nm)."),
        (dict(n_clusters=3, number_of_components=1),
         "Clustering needs at least two components; got 1."),
        (dict(), "Give exactly one of n_clusters (the number of clusters) and threshold "
                 "(the similarity above which components are merged)."),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            s.cluster_decomposition_components(write_to_learning_results=True, **kwargs)
        assert str(info.value) == message
        assert s.learning_results.__dict__.keys() == before.keys()
        assert s.learning_results.factors is before["factors"]


def test_signal_errors_without_a_decomposition():
    s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(32, 32))
    with pytest.raises(ValueError) as info:
        s.cluster_decomposition_components(n_clusters=2)
    assert str(info.value) == (
        "This signal has no decomposition results: run a decomposition first, e.g. "
        "s.decomposition(algorithm='hnmf', output_dimension=8)."
    )
    with pytest.raises(ValueError) as info:
        s.restore_decomposition_components()
    assert str(info.value).startswith("There is nothing to restore")
    with pytest.raises(ValueError) as info:
        s.polar_transform(center=(0, 0), radial_range=(0, 9))
    assert str(info.value) == (
        "radial_range (0, 9) 1/nm goes beyond the pattern: circles about the centre "
        "stay inside it up to r = 7.75 1/nm (15.5 pixels of 0.5 1/nm)."
    )
    # In the units the user gave, for every method that takes a radial range.
    s.axes_manager.signal_axes[0].units = s.axes_manager.signal_axes[1].units = "mrad"
    with pytest.raises(ValueError) as info:
        s.polar_cluster_analysis(2, center=(0, 0), radial_range=(1, 8))
    assert str(info.value) == (
        "radial_range (1, 8) mrad goes beyond the pattern: circles about the centre stay "
        "inside it up to r = 7.75 mrad (15.5 pixels of 0.5 mrad).")
    # Uncalibrated axes: the radii are pixels, said once.
    raw = hs.signals.Signal2D(np.ones((2, 16, 16), dtype="float32"))
    with pytest.raises(ValueError) as info:
        raw.polar_transform(center=(7.5, 7.5), radial_range=(0, 9))
    assert str(info.value) == (
        "radial_range (0, 9) pixels goes beyond the pattern: circles about the centre "
        "stay inside it up to r = 7.5 pixels.")


def test_non_square_pixels_are_refused():
    s = hs.signals.Signal2D(np.ones((2, 16, 16), dtype="float32"))
    s.axes_manager.signal_axes[0].scale = 0.5
    with pytest.raises(ValueError) as info:
        s.polar_transform()
    assert str(info.value) == (
        "The two signal axes have different scales (0.5 and 1): a polar transform needs "
        "square pixels."
    )


# --- registration ----------------------------------------------------------------------


def test_registration_is_idempotent_and_reaches_pyxem():
    hyperspy_hnmf.polar.signal_methods.register()
    method = hs.signals.Signal2D.cluster_decomposition_components
    signal_methods.register()
    assert hs.signals.Signal2D.cluster_decomposition_components is method
    signal_methods.unregister()
    assert not hasattr(hs.signals.Signal2D, "polar_transform")
    signal_methods.register()
    assert hasattr(hs.signals.Signal2D(np.zeros((2, 8, 8))).as_lazy(), "polar_cluster_analysis")
    pyxem = pytest.importorskip("pyxem")
    pattern = pyxem.signals.Diffraction2D(np.ones((2, 16, 16), dtype="float32"))
    assert pattern.polar_transform(center=(7.5, 7.5)).data.shape == (2, 8, 360)


def test_nan_in_patterns_is_reported_where_it_is_with_a_fix():
    pattern = np.ones((16, 16))
    pattern[8, 8] = 5.0
    pattern[3, 7] = np.nan
    with pytest.raises(ValueError) as info:
        find_direct_beam(pattern)
    assert str(info.value) == (
        "The pattern contains 1 NaN or infinite values (first at row 3, column 7), so its "
        "direct beam cannot be found. Replace them first (dead or hot detector pixels: set "
        "them to 0 or to their neighbours' mean), or give center=(x, y).")
    X = np.ones((5, 256))
    X[2, 10] = np.inf
    with pytest.raises(ValueError) as info:
        PolarKMeans(n_clusters=2, pattern_shape=(16, 16)).fit(X)
    assert str(info.value) == (
        "X contains NaN or infinite values in 1 patterns (first: row 2, probe positions in "
        "scan order). Replace them first (dead or hot detector pixels: set them to 0 or to "
        "their neighbours' mean).")


def test_write_with_number_of_components_keeps_the_other_components(decomposed):
    s = decomposed.deepcopy()
    factors = s.learning_results.factors.copy()
    loadings = s.learning_results.loadings.copy()
    result = s.cluster_decomposition_components(n_clusters=2, number_of_components=4,
                                                write_to_learning_results=True)
    lr = s.learning_results
    assert lr.factors.shape == (48 * 48, 2 + 3) and lr.output_dimension == 5
    np.testing.assert_array_equal(lr.factors[:, 2:], factors[:, 4:])
    np.testing.assert_array_equal(lr.loadings[:, 2:], loadings[:, 4:])
    np.testing.assert_allclose(lr.loadings[:, :2], result.loadings.data.reshape(2, -1).T)
    # The model is the merged part plus the untouched last 3 components.
    rest = loadings[:, 4:] @ factors[:, 4:].T
    merged = result.loadings.data.reshape(2, -1).T @ result.factors.data.reshape(2, -1)
    np.testing.assert_allclose(s.get_decomposition_model().data.reshape(rest.shape),
                               merged + rest, rtol=1e-4, atol=1e-6 * rest.max())


def test_write_clears_stale_bss_results_and_restore_brings_them_back(decomposed):
    s = decomposed.deepcopy()
    s.blind_source_separation(3, algorithm="orthomax", print_info=False)
    bss_factors = s.learning_results.bss_factors.copy()
    s.cluster_decomposition_components(n_clusters=4, write_to_learning_results=True)
    lr = s.learning_results
    assert lr.bss_factors is None and lr.bss_loadings is None
    assert lr.unmixing_matrix is None and lr.bss_algorithm is None
    s.restore_decomposition_components()
    np.testing.assert_array_equal(s.learning_results.bss_factors, bss_factors)
    assert s.learning_results.bss_algorithm == "orthomax"


def test_results_are_titled_with_the_data(decomposed):
    title = decomposed.metadata.General.title
    result = decomposed.cluster_decomposition_components(n_clusters=4)
    assert result.factors.metadata.General.title == (
        f"Merged components (polar_xcorr clusters): {title}")
    assert result.loadings.metadata.General.title == (
        f"Merged maps (polar_xcorr clusters): {title}")
    # Their navigation axis counts clusters, as the centres' of polar_cluster_analysis.
    assert result.factors.axes_manager.navigation_axes[0].name == "cluster"
    assert result.loadings.axes_manager.navigation_axes[0].name == "cluster"
    labels, maps, orientation, _ = decomposed.decomposition_phase_map(n_phases=3)
    assert labels.metadata.General.title == (
        f"Phase of each probe position (0 = amorphous matrix): {title}")
    assert maps.metadata.General.title == f"Counts of each class (matrix, phases): {title}"
    assert orientation.metadata.General.title == (
        f"Rotation from the phase's reference (deg): {title}")
    s = hs.signals.Signal2D(np.stack([spot_pattern(a) for a in (0, 30, 60, 90)]))
    s.metadata.General.title = "Grain 7"
    labels, centres, rotation = s.polar_cluster_analysis(1, random_state=0)
    assert labels.metadata.General.title == "polar_xcorr cluster of each probe position: Grain 7"
    assert rotation.metadata.General.title == "rotation from the cluster centre (deg): Grain 7"
    assert centres.metadata.General.title == "polar_xcorr cluster centres: Grain 7"
    assert s.polar_transform().metadata.General.title == "Polar transform of Grain 7"
    s.metadata.General.title = ""
    assert s.polar_transform().metadata.General.title == "Polar transform"


def test_pixel_rotation_map_resolves_angles_between_phi_bins():
    # Rotations that fall between the 2° bins of the default n_phi=180, on a
    # non-square detector with a calibrated, off-centre beam given in its units.
    angles = np.array([0.0, 31.0, 75.0, 143.0, -101.0, 207.0])
    center = (20.0, 30.0)
    bases = [spot_pattern(0, seed=seed, shape=(48, 64), center=center) for seed in (0, 3)]
    s = hs.signals.Signal2D(np.stack([rotate_pattern(b, a, center) for b in bases
                                      for a in angles]))
    for axis in s.axes_manager.signal_axes:
        axis.scale, axis.offset = 0.02, -0.5
    labels, _, rotation = s.polar_cluster_analysis(
        2, center=(-0.5 + 30 * 0.02, -0.5 + 20 * 0.02), radial_range=(0.08, 0.38),
        random_state=0)
    assert len(set(labels.data[:6])) == len(set(labels.data[6:])) == 1
    assert labels.data[0] != labels.data[6]
    for block in (rotation.data[:6], rotation.data[6:]):
        error = (block - block[0] - angles + 180) % 360 - 180
        assert np.abs(error).max() < 0.5


def test_polar_kmeans_repr_with_array_parameters():
    model = PolarKMeans(2, pattern_shape=np.array([64, 64]), center=np.array([31.5, 31.5]),
                        n_phi=np.int64(180))
    assert repr(model) == ("PolarKMeans(n_clusters=2, pattern_shape=array([64, 64]), "
                           "center=array([31.5, 31.5]))")
    X = np.stack([spot_pattern(a, seed=seed) for seed in (0, 1) for a in (0, 50)])
    labels = model.set_params(radial_range=np.array([4.0, 30.0])).fit_predict(X.reshape(4, -1))
    assert labels[0] == labels[1] != labels[2] == labels[3]


def lattice_on_film(angle_deg, ring, shape=(64, 64), center=CENTER):
    """Direct beam, an amorphous ring of height ``ring`` and a rectangular lattice (180°)."""
    rows, cols = np.indices(shape)
    radius = np.hypot(rows - center[0], cols - center[1])
    pattern = 3 * np.exp(-radius**2 / 3) + ring * np.exp(-(radius - 14) ** 2 / 8)
    a = np.deg2rad(angle_deg)
    for i in range(-3, 4):
        for j in range(-3, 4):
            x, y = 7 * i, 11 * j
            xr, yr = x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a)
            if (i, j) != (0, 0) and np.hypot(xr, yr) <= 28:
                pattern += np.exp(-((rows - center[0] + yr) ** 2
                                    + (cols - center[1] - xr) ** 2) / 2)
    return pattern


@pytest.mark.parametrize("ring", [1.0, 3.0])
def test_orientation_of_a_lattice_on_an_amorphous_film(ring):
    # The film's ring looks the same at every rotation: it must not make the
    # lattice look 30°-symmetric, which would fold the orientation map.
    angles = np.array([0.0, 20.0, 50.0, 75.0, 110.0, 140.0])
    X = np.stack([lattice_on_film(a, ring) for a in angles]).reshape(len(angles), -1)
    model = PolarKMeans(1, pattern_shape=(64, 64), center=CENTER, radial_range=(4, 30),
                        random_state=0).fit(X)
    assert model.symmetry_deg_.tolist() == [180.0]
    error = (model.rotation_deg_ - model.rotation_deg_[0] - angles + 90) % 180 - 90
    assert np.abs(error).max() < 0.5
