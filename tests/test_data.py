"""Tests of the synthetic datasets and the decomposition scores (hyperspy_hnmf.data)."""

import doctest
import warnings

import hyperspy.api as hs
import numpy as np
import pytest
from scipy import ndimage

from hyperspy_hnmf import data
from hyperspy_hnmf.data import (
    get_ground_truth,
    get_ground_truth_model,
    score_decomposition,
    score_signal,
    synthetic_4dstem,
    synthetic_spectrum_image,
)

SCAN = (16, 16)
DETECTOR = (48, 48)


@pytest.fixture(scope="module")
def stem():
    return synthetic_4dstem(scan_shape=SCAN, detector_shape=DETECTOR, random_state=1)


@pytest.fixture(scope="module")
def stem_expected():
    return synthetic_4dstem(scan_shape=SCAN, detector_shape=DETECTOR, random_state=1,
                            noise=False)


@pytest.fixture(scope="module")
def spectra():
    return synthetic_spectrum_image(scan_shape=SCAN, n_channels=256, random_state=1)


def _outside_beam(detector_shape, scale, radius=1.5):
    """Mask of detector pixels farther than ``radius`` (1/nm) from the centre."""
    rows, cols = np.indices(detector_shape, dtype=float)
    rows -= (detector_shape[0] - 1) / 2
    cols -= (detector_shape[1] - 1) / 2
    return np.hypot(rows, cols) * scale > radius


def _correlation(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


# --- 4D-STEM --------------------------------------------------------------------


def test_4dstem_shape_dtype_and_axes(stem):
    assert isinstance(stem, hs.signals.Signal2D)
    assert stem.data.shape == SCAN + DETECTOR
    assert stem.data.dtype == np.float32
    names = [axis.name for axis in stem.axes_manager.navigation_axes]
    assert sorted(names) == ["x", "y"]
    assert {axis.units for axis in stem.axes_manager.navigation_axes} == {"nm"}
    assert {axis.units for axis in stem.axes_manager.signal_axes} == {"1/nm"}
    # The direct beam sits at 0 1/nm on both detector axes.
    for axis in stem.axes_manager.signal_axes:
        assert axis.axis[0] == pytest.approx(-axis.axis[-1])
    assert "3 phases x 2 rotations" in stem.metadata.General.title


@pytest.mark.parametrize("dtype", ["float64", "uint16"])
def test_4dstem_other_dtypes(dtype):
    s = synthetic_4dstem(scan_shape=(6, 6), detector_shape=(16, 16), dtype=dtype)
    assert s.data.dtype == np.dtype(dtype)
    assert s.metadata.Ground_truth.Parameters.dtype == dtype


def test_4dstem_components(stem):
    truth = get_ground_truth(stem)
    assert truth.n_components == 7
    assert truth.names == ["halo"] + [f"phase{p}_rot{r}" for p in range(3) for r in range(2)]
    assert truth.phase.tolist() == [-1, 0, 0, 1, 1, 2, 2]
    assert np.isnan(truth.rotation_deg[0])
    assert truth.factors.shape == (np.prod(DETECTOR), 7)
    assert truth.loadings.shape == (np.prod(SCAN), 7)
    assert truth.navigation_shape == SCAN and truth.signal_shape == DETECTOR


def test_4dstem_factors_sum_to_one_and_nonnegative(stem):
    factors = get_ground_truth(stem).factors
    assert (factors >= 0).all()
    np.testing.assert_allclose(factors.sum(axis=0), 1.0, rtol=1e-12)


def test_4dstem_loadings_match_dose(stem):
    loadings = get_ground_truth(stem).loadings
    assert (loadings >= 0).all()
    assert loadings.sum(axis=1).mean() == pytest.approx(200.0, rel=1e-9)
    # The counts actually drawn agree with the dose too.
    assert stem.data.sum(axis=(2, 3)).mean() == pytest.approx(200.0, rel=0.03)


def test_4dstem_halo_present_everywhere(stem):
    halo = get_ground_truth(stem).loadings[:, 0]
    assert halo.min() > 0.2 * halo.max()


def test_4dstem_without_halo():
    s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16), halo=False, n_phases=2)
    truth = get_ground_truth(s)
    assert truth.names == ["phase0_rot0", "phase0_rot1", "phase1_rot0", "phase1_rot1"]
    assert (truth.phase >= 0).all()
    assert truth.loadings.sum(axis=1).mean() == pytest.approx(200.0)


def test_4dstem_noise_free_is_the_model(stem_expected):
    truth = get_ground_truth(stem_expected)
    expected = (truth.loadings @ truth.factors.T).reshape(SCAN + DETECTOR)
    assert stem_expected.data.dtype == np.float32
    np.testing.assert_allclose(stem_expected.data, expected, rtol=1e-5, atol=1e-7)
    model = get_ground_truth_model(stem_expected)
    assert model.data.dtype == np.float32
    np.testing.assert_allclose(model.data, stem_expected.data, rtol=1e-6, atol=1e-8)
    assert model.axes_manager.signal_axes[0].units == "1/nm"
    assert model.metadata.General.title.startswith("Ground truth model of")


def test_4dstem_poisson_counts(stem, stem_expected):
    assert np.array_equal(stem.data, np.round(stem.data))
    assert (stem.data >= 0).all()
    total, expected_total = stem.data.sum(dtype=float), stem_expected.data.sum(dtype=float)
    assert abs(total - expected_total) < 4 * np.sqrt(expected_total)
    mean_pattern = stem.data.mean(axis=(0, 1), dtype=float)
    assert _correlation(mean_pattern, stem_expected.data.mean(axis=(0, 1))) > 0.99
    # Poisson statistics: standardized residuals of the totals per pattern and
    # the chi-square over all pixels have mean 0 and variance 1.
    counts = stem.data.sum(axis=(2, 3), dtype=float).ravel()
    expected_counts = get_ground_truth(stem).loadings.sum(axis=1)
    residuals = (counts - expected_counts) / np.sqrt(expected_counts)
    assert abs(residuals.mean()) < 0.3
    assert 0.7 < residuals.var() < 1.3
    expected = stem_expected.data.astype(float)
    positive = expected > 0
    chi2 = ((stem.data[positive] - expected[positive]) ** 2 / expected[positive]).mean()
    assert chi2 == pytest.approx(1.0, abs=0.05)


def test_4dstem_determinism():
    kwargs = dict(scan_shape=(8, 8), detector_shape=(16, 16))
    a = synthetic_4dstem(random_state=3, **kwargs)
    b = synthetic_4dstem(random_state=3, **kwargs)
    c = synthetic_4dstem(random_state=4, **kwargs)
    assert np.array_equal(a.data, b.data)
    assert np.array_equal(get_ground_truth(a).loadings, get_ground_truth(b).loadings)
    assert not np.array_equal(a.data, c.data)
    assert not np.array_equal(get_ground_truth(a).loadings, get_ground_truth(c).loadings)


def test_4dstem_rotations_are_rotated_copies(stem_expected):
    truth = get_ground_truth(stem_expected)
    scale = stem_expected.axes_manager.signal_axes[0].scale
    mask = _outside_beam(DETECTOR, scale)
    patterns = [truth.factors[:, i].reshape(DETECTOR) for i in range(truth.n_components)]
    for p in range(3):
        first, second = 1 + 2 * p, 2 + 2 * p
        angle = truth.rotation_deg[second] - truth.rotation_deg[first]
        rotated = ndimage.rotate(patterns[first], angle, reshape=False, order=1)
        assert _correlation(rotated[mask], patterns[second][mask]) > 0.95
        assert _correlation(patterns[first][mask], patterns[second][mask]) < 0.3
    for i in range(1, 7):
        for j in range(1, 7):
            if truth.phase[i] != truth.phase[j]:
                assert _correlation(patterns[i][mask], patterns[j][mask]) < 0.5


def test_4dstem_halo_ring_under_bragg_spots(stem_expected):
    truth = get_ground_truth(stem_expected)
    scale = stem_expected.axes_manager.signal_axes[0].scale
    mask = _outside_beam(DETECTOR, scale)
    halo = truth.factors[:, 0].reshape(DETECTOR)
    ring_max = halo[mask].max()
    overlaps = []
    for i in range(1, truth.n_components):
        pattern = truth.factors[:, i].reshape(DETECTOR)
        spots = mask & (pattern > 0.2 * pattern[mask].max())
        overlaps.append(halo[spots].max() / ring_max)
    assert max(overlaps) > 0.9


def test_4dstem_particles_overlap_and_are_blurred():
    sharp = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(16, 16), probe_fwhm=0.0)
    blurred = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(16, 16), probe_fwhm=3.0)
    maps = get_ground_truth(sharp).loadings[:, 1:]
    present = maps > 0.25 * maps.max(axis=0)
    assert (present.sum(axis=1) >= 2).any()

    def steepest(loadings):
        images = loadings.T.reshape((-1, 32, 32))
        return max(np.abs(np.diff(images, axis=axis)).max() for axis in (1, 2))

    assert steepest(get_ground_truth(blurred).loadings[:, 1:]) < 0.6 * steepest(maps)


def test_4dstem_integer_overflow_is_reported():
    with pytest.raises(ValueError, match="overflow dtype uint8"):
        synthetic_4dstem(scan_shape=(4, 4), detector_shape=(16, 16), dose=1e5, dtype="uint8")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scan_shape=(2, 16)), r"scan_shape must be two integers >= 4"),
        (dict(scan_shape=(16, 16, 16)), r"scan_shape must be two integers >= 4"),
        (dict(detector_shape=(8, 32)), r"detector_shape must be two integers >= 16"),
        (dict(detector_shape=(32.5, 32)), r"detector_shape must be two integers >= 16"),
        (dict(n_phases=0), r"n_phases must be an integer between 1 and 9"),
        (dict(n_phases=10), r"n_phases must be an integer between 1 and 9"),
        (dict(n_rotations=0), r"n_rotations must be an integer between 1 and 6"),
        (dict(n_rotations=1.5), r"n_rotations must be an integer between 1 and 6"),
        (dict(dose=0), r"dose must be a finite number > 0"),
        (dict(dose=np.inf), r"dose must be a finite number > 0"),
        (dict(probe_fwhm=-1), r"probe_fwhm must be a finite number >= 0"),
        (dict(particle_radius=-2), r"particle_radius must be a finite number > 0"),
        (dict(particle_radius=20), r"particle_radius must be at most half"),
        (dict(particles_per_component=0), r"particles_per_component must be an integer >= 1"),
        (dict(dtype="int32", noise=False), r"dtype must be a floating-point type"),
        (dict(dtype="complex64"), r"dtype must be a floating-point type"),
    ],
)
def test_4dstem_bad_arguments(kwargs, message):
    arguments = dict(scan_shape=(16, 16), detector_shape=(16, 16))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        synthetic_4dstem(**arguments)


def _zspy_writable(tmp_path):
    """Whether the installed rosettasciio can write .zspy with the installed zarr."""
    try:
        hs.signals.Signal1D(np.zeros((2, 4))).save(tmp_path / "probe.zspy")
    except (AttributeError, ImportError) as error:
        return error
    return None


@pytest.mark.parametrize("extension", ["hspy", "zspy"])
def test_ground_truth_survives_save_and_load(tmp_path, extension):
    if extension == "zspy":
        error = _zspy_writable(tmp_path)
        if error is not None:
            pytest.skip(f"rosettasciio cannot write .zspy here: {error!r}")
    originals = [
        synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16)),
        synthetic_spectrum_image(scan_shape=(8, 8), n_channels=64),
    ]
    for index, original in enumerate(originals):
        path = tmp_path / f"signal{index}.{extension}"
        original.save(path)
        loaded = hs.load(path)
        assert type(loaded) is type(original)
        before, after = get_ground_truth(original), get_ground_truth(loaded)
        assert after.names == before.names
        for field in ("factors", "loadings", "phase", "rotation_deg"):
            np.testing.assert_array_equal(getattr(after, field), getattr(before, field))
        assert after.navigation_shape == before.navigation_shape
        assert after.signal_shape == before.signal_shape
        dose = original.metadata.Ground_truth.dose
        assert loaded.metadata.Ground_truth.dose == pytest.approx(dose)
        assert loaded.metadata.Ground_truth.Parameters.random_state == 0
        np.testing.assert_array_equal(get_ground_truth_model(loaded).data,
                                      get_ground_truth_model(original).data)


def test_get_ground_truth_errors():
    with pytest.raises(ValueError, match="metadata has no Ground_truth"):
        get_ground_truth(hs.signals.Signal2D(np.zeros((2, 2, 4, 4))))
    s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16))
    with pytest.raises(ValueError, match="does not match its ground truth"):
        get_ground_truth_model(s.inav[:4])
    with pytest.raises(ValueError, match="dtype must be a floating-point type"):
        get_ground_truth_model(s, dtype="int32")
    del s.metadata.Ground_truth.loadings
    with pytest.raises(ValueError, match="Ground_truth lacks loadings"):
        get_ground_truth(s)


# --- Spectrum image -------------------------------------------------------------


def test_spectrum_image_contents(spectra):
    assert isinstance(spectra, hs.signals.Signal1D)
    assert spectra.data.shape == SCAN + (256,)
    assert spectra.data.dtype == np.float32
    axis = spectra.axes_manager.signal_axes[0]
    assert axis.units == "keV" and axis.high_value == pytest.approx(10.24 - axis.scale)
    truth = get_ground_truth(spectra)
    assert truth.names == ["background", "phase0", "phase1", "phase2"]
    assert truth.phase.tolist() == [-1, 0, 1, 2]
    assert np.isnan(truth.rotation_deg).all()
    assert (truth.factors >= 0).all() and (truth.loadings >= 0).all()
    np.testing.assert_allclose(truth.factors.sum(axis=0), 1.0, rtol=1e-12)
    assert truth.loadings.sum(axis=1).mean() == pytest.approx(1000.0)
    assert truth.loadings[:, 0].min() > 0
    assert np.array_equal(spectra.data, np.round(spectra.data))
    assert spectra.data.sum(axis=-1).mean() == pytest.approx(1000.0, rel=0.02)
    assert spectra.metadata.Ground_truth.elements == ["Fe-Cr", "Ti-O", "Al-O"]


def test_spectrum_image_peaks_at_the_lines(spectra):
    truth = get_ground_truth(spectra)
    axis = spectra.axes_manager.signal_axes[0]
    energy = axis.axis + axis.scale / 2
    # Fe Ka (6.404 keV) is the strongest line of the Fe-Cr phase.
    assert energy[np.argmax(truth.factors[:, 1])] == pytest.approx(6.404, abs=0.05)
    # The background is smooth: no channel-to-channel jumps.
    background = truth.factors[:, 0]
    assert np.abs(np.diff(background, 2)).max() < 0.05 * background.max()


def test_spectrum_image_noise_free_and_determinism(spectra):
    again = synthetic_spectrum_image(scan_shape=SCAN, n_channels=256, random_state=1)
    other = synthetic_spectrum_image(scan_shape=SCAN, n_channels=256, random_state=2)
    assert np.array_equal(spectra.data, again.data)
    assert not np.array_equal(spectra.data, other.data)
    clean = synthetic_spectrum_image(scan_shape=SCAN, n_channels=256, random_state=1,
                                     noise=False)
    truth = get_ground_truth(clean)
    expected = (truth.loadings @ truth.factors.T).reshape(clean.data.shape)
    np.testing.assert_allclose(clean.data, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_channels=32), r"n_channels must be an integer >= 64"),
        (dict(n_components=0), r"n_components must be an integer between 1 and 8"),
        (dict(n_components=9), r"n_components must be an integer between 1 and 8"),
        (dict(dose=-5), r"dose must be a finite number > 0"),
        (dict(scan_shape=(3, 3)), r"scan_shape must be two integers >= 4"),
    ],
)
def test_spectrum_image_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_spectrum_image(**kwargs)


# --- Scores ---------------------------------------------------------------------


def test_score_of_the_truth_is_one(stem):
    truth = get_ground_truth(stem)
    result = score_decomposition(truth.factors, truth.loadings, truth.factors, truth.loadings,
                                 names=truth.names)
    assert result.score == pytest.approx(1.0)
    assert result.mean_pattern_correlation == pytest.approx(1.0)
    assert result.mean_map_correlation == pytest.approx(1.0)
    assert result.pairs == tuple((i, i) for i in range(7))
    assert result.unmatched_true == () and result.unmatched_learned == ()


def test_score_recovers_permutation_and_scaling(stem):
    truth = get_ground_truth(stem)
    order = np.array([3, 0, 6, 1, 5, 2, 4])
    scales = np.arange(1.0, 8.0)
    result = score_decomposition(truth.factors[:, order] * scales,
                                 truth.loadings[:, order] / scales,
                                 truth.factors, truth.loadings, names=truth.names)
    assert result.score == pytest.approx(1.0)
    for true_index, learned_index in result.pairs:
        assert order[learned_index] == true_index
    table = str(result)
    assert "phase2_rot1" in table and "score: 1.000" in table


def test_score_of_random_matrices_is_low(stem):
    truth = get_ground_truth(stem)
    rng = np.random.default_rng(0)
    result = score_decomposition(rng.random(truth.factors.shape), rng.random(truth.loadings.shape),
                                 truth.factors, truth.loadings)
    assert result.score < 0.3


def test_score_with_fewer_learned_components(stem):
    truth = get_ground_truth(stem)
    keep = [5, 0, 2]
    result = score_decomposition(truth.factors[:, keep], truth.loadings[:, keep],
                                 truth.factors, truth.loadings, names=truth.names)
    assert result.matched.tolist() == [1, -1, 2, -1, -1, 0, -1]
    assert result.unmatched_true == (1, 3, 4, 6)
    assert result.mean_pattern_correlation == pytest.approx(3 / 7)
    assert result.pattern_correlation[[1, 3, 4, 6]].tolist() == [0, 0, 0, 0]
    assert str(result).count(" - ") >= 4


def test_score_with_more_learned_components(stem):
    truth = get_ground_truth(stem)
    rng = np.random.default_rng(1)
    factors = np.hstack([rng.random((truth.factors.shape[0], 2)), truth.factors])
    loadings = np.hstack([rng.random((truth.loadings.shape[0], 2)), truth.loadings])
    result = score_decomposition(factors, loadings, truth.factors, truth.loadings)
    assert result.score == pytest.approx(1.0)
    assert result.unmatched_learned == (0, 1)
    assert "unmatched learned components: 0, 1" in str(result)


def test_score_handles_constant_columns_and_nan_rows(stem):
    truth = get_ground_truth(stem)
    factors = truth.factors.copy()
    loadings = truth.loadings.copy()
    factors[:, 2] = 0.5
    loadings[:5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = score_decomposition(factors, loadings, truth.factors, truth.loadings)
    assert np.isfinite(result.pattern_correlation_matrix).all()
    assert np.isfinite(result.map_correlation_matrix).all()
    assert (result.pattern_correlation_matrix[:, 2] == 0).all()
    assert result.mean_map_correlation == pytest.approx(1.0)


def test_score_argument_errors(stem):
    truth = get_ground_truth(stem)
    with pytest.raises(ValueError, match="learned_factors has 10 rows but truth_factors"):
        score_decomposition(truth.factors[:10], truth.loadings, truth.factors, truth.loadings)
    with pytest.raises(ValueError, match="learned_loadings must be 2D"):
        score_decomposition(truth.factors, truth.loadings[:, 0], truth.factors, truth.loadings)
    with pytest.raises(ValueError, match="disagree on the number of components"):
        score_decomposition(truth.factors, truth.loadings[:, :3], truth.factors, truth.loadings)
    with pytest.raises(ValueError, match="names has 2 entries for 7 true components"):
        score_decomposition(truth.factors, truth.loadings, truth.factors, truth.loadings,
                            names=["a", "b"])
    with pytest.raises(ValueError, match="no finite row in common"):
        score_decomposition(np.full_like(truth.factors, np.nan), truth.loadings,
                            truth.factors, truth.loadings)


def test_score_signal_reads_learning_results():
    s = synthetic_4dstem(scan_shape=(12, 12), detector_shape=(16, 16))
    with pytest.raises(ValueError, match="no decomposition results"):
        score_signal(s)
    mask = np.zeros((12, 12), dtype=bool)
    mask[:3] = True
    s.decomposition(algorithm="SVD", output_dimension=7, navigation_mask=mask, print_info=False)
    assert np.isnan(s.learning_results.loadings).any()
    result = score_signal(s)
    assert result.names == tuple(get_ground_truth(s).names)
    assert np.isfinite(result.score)
    # An explicit truth is used as given.
    truth = get_ground_truth(s)
    s.learning_results.factors = truth.factors.copy()
    s.learning_results.loadings = truth.loadings.copy()
    assert score_signal(s, truth=truth).score == pytest.approx(1.0)


def test_docstring_examples_run():
    results = doctest.testmod(data, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0
    assert results.failed == 0


def test_mixed_rotations_plant_co_occurring_rotation_domains():
    s = synthetic_4dstem(scan_shape=(48, 48), detector_shape=(32, 32), n_phases=2,
                         n_rotations=2, mixed_rotations=True, noise=False, random_state=3)
    truth = get_ground_truth(s)
    maps = truth.loadings.T
    for phase in (0, 1):
        first, second = maps[truth.phase == phase]
        inside = (first + second) > 0.2 * (first + second).max()
        # both rotation domains occupy a real share of the same particles ...
        assert (first[inside] > second[inside]).mean() > 0.2
        assert (second[inside] > first[inside]).mean() > 0.2
    # ... while the two phases occupy different particles
    phase0 = maps[truth.phase == 0].sum(axis=0)
    phase1 = maps[truth.phase == 1].sum(axis=0)
    assert np.corrcoef(phase0, phase1)[0, 1] < 0.3
    assert get_ground_truth(s).names == ["halo", "phase0_rot0", "phase0_rot1",
                                         "phase1_rot0", "phase1_rot1"]
