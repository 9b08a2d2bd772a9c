"""Constraints through decomposition(algorithm="hnmf") on HyperSpy signals."""

import re

import hyperspy.api as hs
import numpy as np
import pytest

import hyperspy_hnmf  # noqa: F401  (registers the algorithm)
from hyperspy_hnmf.constraints import (
    ContinuousIntensity,
    MapResolution,
    Projection,
    dip_score,
    out_of_band_fraction,
)
from hyperspy_hnmf.data import synthetic_4dstem, synthetic_spectrum_image


@pytest.fixture()
def scan():
    return synthetic_4dstem(scan_shape=(20, 20), detector_shape=(32, 32), n_phases=1,
                            n_rotations=2, probe_fwhm=4.0, random_state=2)


def constrained(s, **kwargs):
    options = dict(output_dimension=3, loss="kl", random_state=0, print_info=False,
                   constraints=[MapResolution(2.0), ContinuousIntensity(1.0)])
    options.update(kwargs)
    s.decomposition(algorithm="hnmf", **options)
    return s.learning_results


def test_calibrated_lengths_come_from_the_axes(scan):
    lr = constrained(scan)  # 2 nm on a 0.5 nm scan step = 4 px; 1 1/nm = 4 detector px
    info = lr.hnmf["constraints"]
    assert info["map_resolution_pixels"] == pytest.approx(4.0)
    scale = scan.axes_manager.signal_axes[0].scale
    assert info["dip_width_pixels"] == pytest.approx(1.0 / scale)
    maps = lr.loadings.T.reshape(3, 20, 20)
    assert out_of_band_fraction(maps, 4.0).max() < 1e-3
    components = lr.factors.T.reshape(3, 32, 32)
    np.testing.assert_allclose(info["dip_score"], dip_score(components, 1.0 / scale), atol=1e-6)
    assert "MapResolution on maps [0, 1, 2]: 2 nm = 4 px (fourier)" in info["summary"]


def test_print_info_shows_the_metrics(scan, capsys):
    constrained(scan, print_info=True)
    out = capsys.readouterr().out
    assert "constraints:" in out
    assert re.search(r"dip score per component \(width [\d.]+ px\): ([\d.]+, ){2}[\d.]+", out)
    assert "map energy beyond the resolution (4 px) per map:" in out


def test_metrics_survive_save_and_load(scan, tmp_path):
    constrained(scan)
    scan.save(tmp_path / "scan.hspy")
    loaded = hs.load(tmp_path / "scan.hspy")
    before, after = scan.learning_results.hnmf["constraints"], loaded.learning_results.hnmf["constraints"]
    np.testing.assert_allclose(after["dip_score"], before["dip_score"])
    assert after["summary"] == before["summary"]


def test_spectrum_image_line_scan_with_ev_units():
    s = synthetic_spectrum_image(scan_shape=(40, 30), n_channels=256, random_state=0)
    line = s.inav[:, 5]  # a line scan: 1D navigation
    unit = line.axes_manager.signal_axes[0].units
    scale = line.axes_manager.signal_axes[0].scale
    line.decomposition(algorithm="hnmf", output_dimension=3, loss="kl", random_state=0,
                       print_info=False,
                       constraints=[MapResolution(3, units="px"),
                                    ContinuousIntensity(5 * scale, units=unit)])
    lr = line.learning_results
    assert out_of_band_fraction(lr.loadings.T, 3.0).max() < 1e-3
    assert dip_score(lr.factors.T, 5, floor=0).max() <= 0.02 + 1e-5


@pytest.mark.parametrize("kwargs,message", [
    (dict(normalize_poissonian_noise=True),
     "normalize_poissonian_noise=True cannot be combined with constraints"),
    (dict(navigation_mask=np.zeros((20, 20), dtype=bool)),
     "navigation_mask cannot be combined with constraints that reshape the maps (MapResolution)"),
    (dict(constraints=[MapResolution(0.1)]),
     "MapResolution(0.1 nm) is 0.2 pixels, below one scan pixel"),
    (dict(constraints=[MapResolution(50.0)]),
     "MapResolution(50 nm) is 100 pixels, larger than the scan (20 pixels)"),
    (dict(constraints=[Projection(lambda s: -s, name="flip")]),
     "The Projection 'flip' applied to the maps returned negative values"),
])
def test_bad_input_leaves_previous_results(scan, kwargs, message):
    constrained(scan, constraints=None, output_dimension=2)
    previous = dict(scan.learning_results.__dict__)
    with pytest.raises(ValueError, match=re.escape(message)):
        constrained(scan, **kwargs)
    after = scan.learning_results.__dict__
    assert after.keys() == previous.keys()
    np.testing.assert_array_equal(after["factors"], previous["factors"])
    assert after["hnmf"] is previous["hnmf"]


def _small_scan():
    """A 12 × 20 scan on a 24 × 32 detector (neither square)."""
    return synthetic_4dstem(scan_shape=(12, 20), detector_shape=(24, 32), n_phases=1,
                            n_rotations=2, probe_fwhm=3.0, random_state=2)


def test_scan_with_unequal_steps_is_limited_in_physical_units():
    s = _small_scan()
    s.axes_manager.navigation_axes[0].scale = 0.25  # x: 0.25 nm, y: 0.5 nm
    lr = constrained(s, constraints=[MapResolution(2.0)])
    info = lr.hnmf["constraints"]
    assert "MapResolution on maps [0, 1, 2]: 2 nm = 4 × 8 px (fourier)" in info["summary"]
    maps = lr.loadings.T.reshape(3, 12, 20)
    assert np.isfinite(maps).all() and maps.min() >= 0
    assert out_of_band_fraction(maps, (4.0, 8.0)).max() < 1e-3  # 2.1e-2 along x before


def test_axes_in_convertible_units_share_one_calibration():
    s = _small_scan()
    x = s.axes_manager.navigation_axes[0]
    x.units, x.scale = "Å", 5.0  # 0.5 nm, as y
    lr = constrained(s, constraints=[MapResolution(2.0)])  # was taken for 2 pixels
    assert "MapResolution on maps [0, 1, 2]: 2 nm = 4 px (fourier)" in lr.hnmf["constraints"][
        "summary"]
    assert out_of_band_fraction(lr.loadings.T.reshape(3, 12, 20), 4.0).max() < 1e-3


@pytest.mark.parametrize("change,constraint,message", [
    ("time axis", MapResolution(2.0),
     "the axes have different units (y: nm, x: s). Give it in pixels (units='px')"),
    ("one axis uncalibrated", MapResolution(2.0),
     "the axes have different units (y: nm, x: no units)"),
    ("non-uniform detector", ContinuousIntensity(1.0),
     "the axis 'kx' is non-uniform, so a length is not a fixed number of its pixels"),
])
def test_lengths_on_axes_that_cannot_convert_them_are_refused_before_any_change(
        change, constraint, message):
    s = _small_scan()
    constrained(s, constraints=None, output_dimension=2)
    previous = s.learning_results.factors.copy()
    if change == "time axis":
        s.axes_manager.navigation_axes[0].units = "s"
    elif change == "one axis uncalibrated":
        s.axes_manager.navigation_axes[0].units = ""
    else:
        s.axes_manager.signal_axes[0].convert_to_non_uniform_axis()
    with pytest.raises(ValueError, match=re.escape(message)):
        constrained(s, constraints=[constraint])
    np.testing.assert_array_equal(s.learning_results.factors, previous)
    lr = constrained(s, constraints=[type(constraint)(3.0, units="px")])  # pixels still work
    assert np.isfinite(lr.loadings).all()


def _zero_second_map(stack):
    out = stack.copy()
    out[1] = 0
    return out


def test_reprojected_maps_keep_the_fits_map_constraints(scan):
    # reproject="navigation" recomputes the maps with HNMF.transform; it solved them without
    # the fit's map projections (a map the fit zeroed came back nonzero, MapResolution lost).
    options = dict(output_dimension=3, loss="kl", random_state=0, print_info=False,
                   constraints=[MapResolution(2.0),
                                Projection(_zero_second_map, name="zero map 1")])
    scan.decomposition(algorithm="hnmf", reproject="navigation", **options)
    maps = np.asarray(scan.learning_results.loadings).T.reshape(3, 20, 20)
    assert np.all(maps[1] == 0) and maps[0].max() > 0
    assert out_of_band_fraction(maps, 4.0).max() < 1e-3  # 2 nm = 4 probe-position pixels
    # at array level: data of another scan cannot take the grid's projections
    from hyperspy_hnmf import HNMF

    X = scan.data.reshape(400, -1).astype(np.float32)
    model = HNMF(3, loss="kl", random_state=0, navigation_grid=(20, 20),
                 constraints=[Projection(_zero_second_map, name="zero map 1")]).fit(X)
    assert np.all(model.transform(X)[:, 1] == 0)
    with pytest.warns(UserWarning, match=re.escape(
            "The maps' projections of this fit (Projection 'zero map 1') act on the fitted "
            "scan's grid (400 probe positions), and these data have 100 rows: the maps are "
            "solved without them.")):
        model.transform(X[:100])
