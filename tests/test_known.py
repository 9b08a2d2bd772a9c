"""Known components: the residual check of references, and decomposition(known_components=...)."""

import re

import hyperspy.api as hs
import numpy as np
import pytest
from scipy import ndimage

import hyperspy_hnmf
from hyperspy_hnmf.constraints import KnownComponent, PureRegion
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_4dstem
from hyperspy_hnmf.solvers import joint_nmf


def _rotated(pattern, angle):
    return ndimage.rotate(pattern.reshape(32, 32), angle, reshape=False, order=1).clip(0).ravel()


@pytest.fixture(scope="module")
def scan():
    """Halo + two phases, 32×32 positions, 32×32 detector, 150 e⁻ per pattern."""
    s = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(32, 32), n_phases=2,
                         n_rotations=1, dose=150, random_state=2)
    return s, s.data.reshape(1024, -1), get_ground_truth(s)


def _check(X, reference, index):
    result = joint_nmf([X], 3, max_iter=300, tol=1e-7, random_state=0,
                       known_components=[KnownComponent(reference, index=index)])
    return result, result.known_checks[0]


@pytest.mark.parametrize("index", [0, 1], ids=["matrix", "phase"])
def test_true_reference_is_not_flagged(scan, index):
    _, X, truth = scan
    _, check = _check(X, truth.factors[:, index], index)
    assert not check["contradicted"], check
    assert check["p_value"] > 1e-3 and check["F"] < 1.1
    assert 0.5 < check["dispersion"] < 1.5  # Poisson counts: over-dispersion about 1


@pytest.mark.parametrize("index", [0, 1], ids=["matrix", "phase"])
def test_reference_rotated_by_10_degrees_is_flagged(scan, index):
    """Also the phase reference that the fit abandons (its map goes to ~0)."""
    _, X, truth = scan
    wrong = _rotated(truth.factors[:, index], 10)
    with pytest.warns(UserWarning, match="contradict"):
        result, check = _check(X, wrong, index)
    assert check["contradicted"] and check["p_value"] < 1e-3, check
    assert check["df"] == 1024 + 1024  # channels of the pattern + entries of its map
    # the residual map splits G over the probe positions
    residual = check["residual_map"]
    assert residual.shape == (1024,) and np.isfinite(residual).all()
    assert residual.sum() == pytest.approx(check["statistic"] * check["df"]
                                           / check["dispersion"], rel=1e-6)


def test_supplied_matrix_pattern_improves_the_other_maps(scan):
    _, X, truth = scan
    free = joint_nmf([X], 3, max_iter=300, tol=1e-7, random_state=0)
    fixed, check = _check(X, truth.factors[:, 0], 0)
    r_free = score_decomposition(free.H[0].T, free.W, truth.factors, truth.loadings)
    r_fixed = score_decomposition(fixed.H[0].T, fixed.W, truth.factors, truth.loadings)
    assert r_fixed.map_correlation[1:].mean() > r_free.map_correlation[1:].mean()


# -- decomposition(algorithm="hnmf", known_components=...) --------------------------

@pytest.fixture(scope="module")
def small():
    s = synthetic_4dstem(scan_shape=(12, 12), detector_shape=(16, 16), n_phases=2,
                         n_rotations=1, dose=300, random_state=0)
    return s, get_ground_truth(s)


def _reference_signal(s, pattern):
    reference = s.inav[0, 0].deepcopy()
    reference.data = pattern.reshape(reference.data.shape).astype(np.float32)
    return reference


def test_decomposition_keyword_round_trip(small, tmp_path, capsys):
    s, truth = small
    s = s.deepcopy()
    mask = np.zeros((12, 12), dtype=bool)
    mask[:2, :2] = True
    halo = KnownComponent(_reference_signal(s, truth.factors[:, 0]), index=0, name="halo")
    info = s.decomposition(algorithm="hnmf", output_dimension=3, known_components=[halo],
                           pure_regions=[PureRegion(mask, index=0)], max_iter=80,
                           random_state=0, return_info=True)
    printed = capsys.readouterr().out
    assert "halo (component 0): G/df" in printed and "consistent with the data" in printed
    results = s.learning_results
    assert results.decomposition_algorithm == "hnmf"
    np.testing.assert_allclose(results.factors[:, 0], truth.factors[:, 0] / truth.factors[:, 0].sum(),
                               rtol=1e-5)
    assert np.all(results.loadings[mask.ravel(), 1:] == 0)
    model = s.get_decomposition_model().data.reshape(144, -1)
    np.testing.assert_allclose(model, info.W @ info.H[0], rtol=1e-4, atol=1e-6)
    stored = results.hnmf["known_components"]["0"]
    assert stored["name"] == "halo" and not stored["contradicted"]
    checks = hyperspy_hnmf.get_known_component_checks(s)
    image = checks[0]["residual_map"]
    assert image.data.shape == (12, 12)
    assert image.axes_manager[0].units == s.axes_manager.navigation_axes[0].units
    s.save(tmp_path / "known.hspy")
    loaded = hs.load(tmp_path / "known.hspy")
    np.testing.assert_allclose(loaded.learning_results.loadings, results.loadings)
    reloaded = hyperspy_hnmf.get_known_component_checks(loaded)
    np.testing.assert_allclose(reloaded[0]["residual_map"].data, image.data)
    assert reloaded[0]["p_value"] == pytest.approx(stored["p_value"])


def test_decomposition_refuses_what_known_components_do_not_support(small):
    s, truth = small
    s = s.deepcopy()
    known = [KnownComponent(truth.factors[:, 0], index=0)]
    cases = [
        (dict(output_dimension=[3, 2]), ValueError, "flat decomposition"),
        (dict(output_dimension=3, hierarchy="tree"), ValueError, "flat decomposition"),
        (dict(output_dimension=3, solver="hals"), ValueError, "multiplicative updates"),
        (dict(output_dimension=3, navigation_mask=np.zeros((12, 12), bool)), ValueError,
         "navigation_mask cannot be combined"),
        (dict(output_dimension=3, normalize_poissonian_noise=True), ValueError,
         "normalize_poissonian_noise=True cannot be combined"),
        (dict(output_dimension=3, fine_tune=False), TypeError, r"\['fine_tune'\] cannot"),
        (dict(output_dimension=None), ValueError, "needs the number of components"),
    ]
    for arguments, error, message in cases:
        with pytest.raises(error, match=message):
            s.decomposition(algorithm="hnmf", known_components=known, print_info=False,
                            **arguments)
    wrong_shape = KnownComponent(np.ones((8, 32)), index=0)
    with pytest.raises(ValueError, match=r"shape \(8, 32\), but the signal has signal shape "
                                         r"\(16, 16\)"):
        s.decomposition(algorithm="hnmf", output_dimension=3, known_components=[wrong_shape])
    assert s.learning_results.loadings is None  # nothing was modified


def test_checks_of_a_signal_without_known_components_say_how_to_get_them(small):
    s, _ = small
    s = s.deepcopy()
    s.decomposition(algorithm="hnmf", output_dimension=3, max_iter=10, print_info=False)
    with pytest.raises(ValueError, match="no known components"):
        hyperspy_hnmf.get_known_component_checks(s)


def test_a_transposed_pure_region_mask_is_refused_before_any_change():
    s = synthetic_4dstem(scan_shape=(12, 8), detector_shape=(16, 16), n_phases=1,
                         n_rotations=1, random_state=0)  # data shape (12, 8, 16, 16)
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False, max_iter=5)
    factors = s.learning_results.factors.copy()
    mask = np.zeros((8, 12), dtype=bool)
    mask[:2, :2] = True
    with pytest.raises(ValueError) as error:
        s.decomposition(algorithm="hnmf", output_dimension=2,
                        pure_regions=[PureRegion(mask, index=0)])
    assert str(error.value) == (
        "PureRegion(index=0) has a mask of shape (8, 12), but the scan has shape (12, 8) in "
        "data order (rows = y, columns = x), as s.data holds it. The mask is transposed: pass "
        "mask.T.")
    np.testing.assert_array_equal(s.learning_results.factors, factors)
    s.decomposition(algorithm="hnmf", output_dimension=2, max_iter=20, print_info=False,
                    pure_regions=[PureRegion(mask.T, index=0)])
    assert np.all(s.learning_results.loadings.reshape(12, 8, 2)[:2, :2, 1] == 0)


@pytest.mark.parametrize("positions,message", [
    ("uint8 mask", "integer array of shape (12, 8): integer positions are flat indices"),
    ("0/1 list", "list a probe position twice"),
    ("float mask", "got an array of float64; for a mask of 0 and 1 pass mask.astype(bool)"),
])
def test_pure_region_masks_that_would_label_the_wrong_positions_are_refused(positions, message):
    """A uint8 mask of 0 and 1 read as indices labelled positions 0 and 1 only."""
    mask = np.zeros((12, 8), dtype=bool)
    mask[3:6, 2:5] = True
    given = {"uint8 mask": mask.astype(np.uint8), "0/1 list": mask.ravel().astype(int),
             "float mask": mask.astype(float)}[positions]
    with pytest.raises(ValueError, match=re.escape(message)):
        PureRegion(given, index=0)


@pytest.mark.parametrize("mask,message", [
    ("everywhere", "The PureRegions cover every probe position, so component 1 (named by none "
                   "of them) could be nonzero nowhere"),
    ("nowhere", "The PureRegion of component 0 is empty: it names no probe position"),
])
def test_pure_regions_that_are_empty_or_leave_no_room_are_refused_before_any_change(mask,
                                                                                    message):
    s = synthetic_4dstem(scan_shape=(12, 8), detector_shape=(16, 16), n_phases=1,
                         n_rotations=1, random_state=0)
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False, max_iter=5)
    factors = s.learning_results.factors.copy()
    region = PureRegion(np.full((12, 8), mask == "everywhere"), index=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        s.decomposition(algorithm="hnmf", output_dimension=2, pure_regions=[region])
    np.testing.assert_array_equal(s.learning_results.factors, factors)


def test_one_component_may_be_pure_everywhere():
    s = synthetic_4dstem(scan_shape=(12, 8), detector_shape=(16, 16), n_phases=1,
                         n_rotations=1, random_state=0)
    everywhere = PureRegion(np.ones((12, 8), dtype=bool), index=0)
    s.decomposition(algorithm="hnmf", output_dimension=1, pure_regions=[everywhere],
                    max_iter=5, print_info=False)
    assert np.isfinite(s.learning_results.loadings).all()
