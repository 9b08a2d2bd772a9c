"""Phase maps on the shipped multislice scenes (issue 14) and polar input checks (issue 15)."""

import importlib.util
import re
from pathlib import Path

import hyperspy.api as hs
import numpy as np
import pytest

import hyperspy_hnmf  # noqa: F401  (registers the methods)
from hyperspy_hnmf.constraints import MapResolution
from hyperspy_hnmf.data import synthetic_4dstem
from hyperspy_hnmf.polar import PolarKMeans, find_central_beam, phase_map
from hyperspy_hnmf.validation_data import load_multislice, multislice_path

# The acceptance scores of benchmarks/bench_multislice.py, one definition for both.
_spec = importlib.util.spec_from_file_location(
    "bench_multislice", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_multislice.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
adjusted_rand, score, signal_of = bench.adjusted_rand, bench.score, bench.signal_of


# Scene B at 500 counts, noise seed 0: the configuration where the decomposition gives
# part of one crystal to a component that also holds amorphous speckle (issue 14).
@pytest.fixture(scope="module", params=[("A", 2000), ("A", 500), ("B", 500)],
                ids=lambda p: f"{p[0]}-{p[1]}")
def fitted(request):
    name, dose = request.param
    scene = load_multislice(name, dose=dose, seed=0)
    s = signal_of(scene)
    s.decomposition(algorithm="hnmf", output_dimension=8, loss="kl", print_info=False,
                    random_state=0, show_progressbar=False, constraints=[MapResolution(1.2)])
    labels, maps, orientation, result = s.decomposition_phase_map(n_phases=2)
    factors = np.asarray(s.learning_results.factors).T.reshape(8, 64, 64)
    scores = score(scene, factors, np.asarray(s.learning_results.loadings), result)
    return dose, scene, (labels, maps, orientation, result), scores


def test_loader_draws_reproducible_counts_at_the_dose():
    a = load_multislice("B", dose=500, seed=3)
    b = load_multislice("B", dose=500, seed=3)
    c = load_multislice("B", dose=500, seed=4)
    assert np.array_equal(a["data"], b["data"]) and not np.array_equal(a["data"], c["data"])
    assert a["data"].dtype == np.uint16 and a["data"].shape == (30, 30, 64, 64)
    assert abs(a["data"].sum(axis=(2, 3)).mean() - 500) < 3
    assert np.allclose(a["fractions"].sum(axis=0), 1, atol=1e-5)
    assert a["fractions"][1:].max() <= 1 / 3 + 1e-6       # crystals fill at most a third
    assert a["parameters"]["params"]["semiangle_mrad"] == 2.5
    noise_free = load_multislice("A", dose=None)
    assert noise_free["data"].dtype == np.float32


def test_shipped_files_are_small():
    total = sum(multislice_path(s).stat().st_size for s in ("A", "B"))
    assert total < 5e6


@pytest.mark.parametrize("kwargs, message", [
    (dict(scene="C"), "scene must be one of 'A', 'B', got 'C'."),
    (dict(dose=-1), "dose must be a number of electrons per pattern above 0 and below 30000, got -1."),
    (dict(dose=30000), "dose must be a number of electrons per pattern above 0 and below 30000, got 30000."),
    (dict(seed=1.5), "seed must be an integer, got 1.5."),
])
def test_loader_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_multislice(**kwargs)


def test_class_maps_follow_the_true_thickness_fractions(fitted):
    dose, _, _, scores = fitted
    assert scores["class_r"] >= (0.95 if dose == 2000 else 0.92)


def test_pixel_phases_on_clear_positions(fitted):
    _, _, _, scores = fitted
    assert scores["ari"] >= 0.90


def test_rotation_variants_grouped_and_phases_apart(fitted):
    _, _, _, scores = fitted
    assert scores["grouped"]
    assert scores["angle"] <= 3.0


def test_phase_map_signals(fitted):
    _, scene, (labels, maps, orientation, result), _ = fitted
    assert labels.data.shape == (30, 30) and set(np.unique(labels.data)) == {0, 1, 2}
    assert labels.metadata.Phase_map.classes == ["matrix", "phase 1", "phase 2"]
    assert maps.data.shape == (3, 30, 30)
    assert maps.axes_manager.navigation_axes[0].name == "class"
    assert maps.axes_manager.signal_axes[0].units == "nm"
    crystal = labels.data > 0
    assert np.isnan(orientation.data[~crystal]).all() and np.isfinite(orientation.data[crystal]).all()
    assert result.crystalline.sum() >= 5 and not result.crystalline[result.members(0)].any()


def test_noise_ceiling_corrects_similarity_upwards(fitted):
    _, _, (_, _, _, result), _ = fitted
    assert (result.noise_ceiling <= 1).all()
    assert (result.corrected_similarity >= result.similarity - 1e-12).all()


def _speckle_scene():
    """16 x 16 scan of 64 x 64 patterns: a glass whose speckle changes at every
    position, one hexagonal crystal (radius 3 positions) at the centre; and four
    components as a decomposition may give them: the matrix, the upper half of
    the crystal, the lower half mixed with speckle (a map over 60 % of the scan),
    and speckle alone (40 % of the scan)."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:64, 0:64]

    def spots(angles, radii, width):
        image = np.zeros((64, 64))
        for a, r in zip(np.deg2rad(angles), np.broadcast_to(radii, np.shape(angles))):
            image += np.exp(-((rows - 31.5 + r * np.sin(a)) ** 2
                              + (cols - 31.5 - r * np.cos(a)) ** 2) / width)
        return image

    radius = np.hypot(rows - 31.5, cols - 31.5)
    background = np.exp(-(radius - 12) ** 2 / 9) + 40 * np.exp(-radius**2 / 4)
    crystal = spots(np.arange(0, 360, 60), 10, 1.5) + spots(np.arange(30, 390, 60), 14, 1.5)
    speckle = np.stack([spots(rng.uniform(0, 360, 24), rng.normal(12, 1.5, 24), 2.0)
                        for _ in range(256)])
    y, x = np.divmod(np.arange(256), 16)
    inside = (y - 8) ** 2 + (x - 8) ** 2 <= 9
    expected = background + 0.5 * speckle + 1.5 * inside[:, None, None] * crystal
    expected *= 500 / expected.sum(axis=(1, 2), keepdims=True)
    data = rng.poisson(expected).reshape(256, -1)
    unit = lambda p: p / p.sum()  # noqa: E731
    some, other = rng.random(256) < 0.6, rng.random(256) < 0.4
    patterns = np.stack([unit(background), unit(crystal),
                         unit(unit(crystal) + unit(speckle[some].mean(axis=0))),
                         unit(speckle[other].mean(axis=0))])
    maps = np.stack([np.full(256, 400.0), 60.0 * (inside & (y <= 8)),
                     60.0 * (inside & (y > 8)) + 30.0 * some, 20.0 * other], axis=1)
    return data, patterns, maps


def test_a_crystal_shared_with_speckle_joins_its_phase():
    data, patterns, maps = _speckle_scene()
    result = phase_map(patterns, maps, data=data, n_phases=1, nav_shape=(16, 16))
    # The mixed component's map covers the scan as the matrix's do, so the
    # occupancy test alone would leave it, and half the crystal, in the matrix ...
    assert result.occupancy[2] > 0.3 and not result.crystalline[2]
    # ... but it resembles the crystal far more than speckle averaged the same way does,
    ratio = result.phase_similarity[:, 0] / result.speckle_similarity[:, 0]
    assert ratio[2] > 2.0 and ratio[0] < 1.3 and ratio[3] < 1.3
    # so it is split: its rest stays in the matrix, its piece joins the crystal's phase,
    assert result.split_from.tolist() == [-1, -1, -1, -1, 2]
    assert result.component_labels.tolist() == [0, 1, 0, 0, 1]
    # and the crystal's lower half, which only the mixed component held, is labelled.
    y, x = np.divmod(np.arange(256), 16)
    core = (y - 8) ** 2 + (x - 8) ** 2 <= 4
    assert (result.labels[core] == 1).all()
    assert (result.labels[(y - 8) ** 2 + (x - 8) ** 2 > 16] == 0).mean() > 0.97
    # Without the data there is no speckle null: the component stays whole in the matrix.
    assert phase_map(patterns, maps, n_phases=1).component_labels.tolist() == [0, 1, 0, 0]


def test_adjusted_rand_matches_a_known_value():
    assert adjusted_rand([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert abs(adjusted_rand([0, 0, 1, 1], [0, 1, 0, 1]) + 0.5) < 1e-12


# Issue 15, item 3: polar methods check their input before any work.

@pytest.fixture(scope="module")
def scan():
    return synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32), n_phases=2)


@pytest.fixture(scope="module")
def beamless():
    """No central beam: the brightest pixel is a hot pixel on the detector's edge."""
    data = np.random.default_rng(0).poisson(1.0, (16, 16, 32, 32)).astype(float)
    data[..., 0, 5] += 50
    return hs.signals.Signal2D(data)


NO_BEAM = ("No central direct beam found: the brightest spot of the mean pattern, at row "
           "0.0, column 5.0, is 0.0 pixels from the edge of the 32 x 32 pattern (a direct "
           "beam needs at least 4). Pass center= with the position of the direct beam")


@pytest.mark.parametrize("n_clusters, message", [
    (0, "n_clusters must be an integer >= 1, got 0."),
    (1000, "n_clusters=1000 is more than the 256 samples."),
    (2.5, "n_clusters must be an integer >= 1, got 2.5."),
])
def test_polar_cluster_analysis_checks_n_clusters_first(scan, n_clusters, message, monkeypatch):
    from hyperspy_hnmf.polar import signal_methods

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the check")

    monkeypatch.setattr(signal_methods, "_geometry", no_work)
    with pytest.raises(ValueError, match=re.escape(message)):
        scan.polar_cluster_analysis(n_clusters)


@pytest.mark.parametrize("method", ["polar_cluster_analysis", "polar_transform"])
def test_radial_range_checked_first(scan, method, monkeypatch):
    from hyperspy_hnmf.polar import signal_methods

    monkeypatch.setattr(signal_methods, "_mean_pattern", lambda s: 1 / 0)
    args = (2,) if method == "polar_cluster_analysis" else ()
    with pytest.raises(ValueError, match=re.escape(
            "radial_range must satisfy 0 <= r_min < r_max, got (5, 1).")):
        getattr(scan, method)(*args, radial_range=(5, 1))


def test_polar_cluster_analysis_without_central_beam(beamless):
    with pytest.raises(ValueError, match=re.escape(NO_BEAM + " as (x, y) in the units of the "
                                                   "signal axes.")):
        beamless.polar_cluster_analysis(2)


def test_cluster_components_without_central_beam(beamless):
    s = beamless.deepcopy()
    s.decomposition(algorithm="hnmf", output_dimension=3, print_info=False, max_iter=5,
                    show_progressbar=False)
    with pytest.raises(ValueError, match=re.escape(NO_BEAM)):
        s.cluster_decomposition_components(n_clusters=2)
    with pytest.raises(ValueError, match=re.escape(NO_BEAM)):
        s.decomposition_phase_map(n_phases=1)


def test_a_given_center_is_used_without_a_beam(beamless):
    labels, _, _ = beamless.polar_cluster_analysis(2, center=(16, 16), random_state=0)
    assert labels.data.shape == (16, 16)


def test_find_central_beam_refuses_a_flat_pattern():
    pattern = np.ones((32, 32))
    pattern[16, 16] = 1.5
    with pytest.raises(ValueError, match=re.escape(
            "No central direct beam found: the brightest spot of the mean pattern, at row "
            "16.0, column 16.0, is only 1.08 times the median intensity (a direct beam stands "
            "out at least 2 times). Pass center= with the position of the direct beam.")):
        find_central_beam(pattern)


def test_polar_kmeans_check_params():
    with pytest.raises(ValueError, match=re.escape("n_harmonics must be an integer >= 0, "
                                                   "got -1.")):
        PolarKMeans(2, n_harmonics=-1).check_params()


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_phases=0), "n_phases must be an integer from 1 to the number of components (3), "
                       "got 0."),
    (dict(n_phases=2, threshold=0.5), "Give at most one of n_phases"),
    (dict(alpha=2), "alpha must be a number between 0 and 1, got 2."),
    (dict(n_resamples=1), "n_resamples must be an integer >= 2, got 1."),
    (dict(nav_shape=(4, 4)), "nav_shape must be positive integers whose product is the number "
                             "of map rows (10), got (4, 4)."),
])
def test_phase_map_checks_parameters(kwargs, message):
    patterns = np.random.default_rng(0).random((3, 16, 16))
    with pytest.raises(ValueError, match=re.escape(message)):
        phase_map(patterns, np.ones((10, 3)), **kwargs)
