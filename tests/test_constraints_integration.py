"""Constraints through decomposition(algorithm="hnmf") on HyperSpy signals."""

import re

import hyperspy.api as hs
import numpy as np
import pytest

import hyperspy_hnmf  # noqa: F401  (registers the algorithm)
from hyperspy_hnmf import HNMF
from hyperspy_hnmf.constraints import (
    ContinuousIntensity,
    Grid,
    MapResolution,
    Penalty,
    Projection,
    dip_score,
    out_of_band_fraction,
    signal_grids,
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
    (dict(signal_mask=np.zeros((32, 32), dtype=bool)),
     "signal_mask cannot be combined with constraints that reshape the components "
     "(ContinuousIntensity): the masked components would no longer fill the grid. Crop the "
     "signal instead (s.inav[...] / s.isig[...]); penalties (Penalty) can be combined with "
     "signal_mask."),
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


@pytest.mark.parametrize("constraint", [Penalty(l1=0.05), Penalty(l2=0.01, on="components"),
                                        ContinuousIntensity(1.0)],
                         ids=["map penalty", "component penalty", "continuous intensity"])
def test_constraints_that_need_no_scan_grid_combine_with_a_navigation_mask(scan, constraint):
    # The masked fit has fewer rows than the scan grid the constraints were resolved on:
    # it failed with "map_grid has shape (20, 20) (400 pixels), but the data have 340 rows".
    mask = np.zeros((20, 20), dtype=bool)
    mask[:3] = True
    options = dict(output_dimension=2, loss="kl", random_state=0, max_iter=40)
    scan.decomposition(algorithm="hnmf", navigation_mask=mask, constraints=[constraint],
                       print_info=False, **options)
    lr = scan.learning_results
    kept = ~np.isnan(lr.loadings[:, 0])
    assert kept.sum() == 400 - 60 and np.isfinite(lr.factors).all()
    # the same fit as on the kept positions alone, with the detector's grid
    X = scan.data.reshape(400, -1)[kept]
    model = HNMF(options.pop("output_dimension"), constraints=[constraint],
                 signal_grid=signal_grids(scan)[1], **options).fit(X)
    np.testing.assert_allclose(lr.factors, model.components_.T, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("options", [dict(constraints=[Penalty(l1=0.05)]),
                                     dict(outliers="auto")], ids=["penalty", "outliers"])
def test_a_signal_mask_fits_the_kept_pixels_without_the_detector_grid(scan, options):
    # failed with "component_grid has shape (32, 32) (1024 pixels), but the data have 1016
    # columns" (constraints, or the outliers' channel rule on the detector grid)
    mask = np.zeros((32, 32), dtype=bool)
    mask[0, :8] = True
    fit = dict(output_dimension=2, loss="kl", random_state=0, max_iter=40)
    scan.decomposition(algorithm="hnmf", signal_mask=mask, print_info=False, **fit, **options)
    lr = scan.learning_results
    kept = ~np.isnan(lr.factors[:, 0])
    assert kept.sum() == 1024 - 8 and np.isfinite(lr.loadings).all()
    X = scan.data.reshape(400, -1)[:, kept]
    model = HNMF(fit.pop("output_dimension"), **fit, **options).fit(X)
    np.testing.assert_allclose(lr.factors[kept], model.components_.T, rtol=1e-4, atol=1e-7)


def test_metrics_of_a_scan_with_unequal_steps_are_per_axis(scan, capsys):
    # y step 0.25 nm, x step 0.5 nm: 2 nm is 8 pixels along y and 4 along x. The metric
    # was computed at 8 pixels along both axes, counting the detail the maps keep along x
    # (between 4 and 8 pixels) as beyond the resolution: up to 9e-2 for these maps.
    scan.axes_manager.navigation_axes[1].scale = 0.25
    lr = constrained(scan, constraints=[MapResolution(2.0)], print_info=True)
    info = lr.hnmf["constraints"]
    np.testing.assert_allclose(info["map_resolution_pixels"], [8.0, 4.0])
    maps = lr.loadings.T.reshape(3, 20, 20)
    assert out_of_band_fraction(maps, 8.0).max() > 0.05  # the maps hold detail along x
    # band-limited along each axis at its own resolution: no energy beyond it
    assert info["out_of_band_fraction"].max() < 1e-3
    np.testing.assert_allclose(info["out_of_band_fraction"],
                               out_of_band_fraction(maps, (8.0, 4.0)), atol=1e-9)
    assert "map energy beyond the resolution (8 × 4 px) per map:" in capsys.readouterr().out


def test_dip_score_of_components_with_unequal_pixels_is_per_axis():
    # A halo with a hole 3 pixels high and 4 wide: at 0.5 1/nm by 1 1/nm per pixel,
    # ContinuousIntensity(2 1/nm) fills dips up to 4 pixels high and 2 wide, so the hole
    # is genuine and stays. Measured at 4 pixels along both axes it counted as a dip of
    # depth 0.5.
    rng = np.random.default_rng(0)
    halo = np.ones((16, 16))
    halo[6:9, 6:10] = 0.5
    spots = np.zeros((16, 16))
    spots[2, 3] = spots[12, 11] = spots[4, 13] = 5.0
    H = np.stack([halo.ravel(), spots.ravel()])
    X = ((rng.random((60, 2)) + 0.1) @ H).astype(np.float32)
    model = HNMF(2, random_state=0, max_iter=2000, tol=1e-10,
                 signal_grid=Grid((16, 16), (0.5, 1.0), "1/nm"),
                 constraints=[ContinuousIntensity(2.0)]).fit(X)
    metrics = model.constraint_metrics_
    np.testing.assert_allclose(metrics["dip_width_pixels"], [4.0, 2.0])
    recovered = model.components_[0].reshape(16, 16)
    assert recovered[6:9, 6:10].mean() / recovered[:4].mean() == pytest.approx(0.5, abs=0.01)
    assert metrics["dip_score"][0] <= 0.02 + 1e-5  # the projection's tolerance, no more
    np.testing.assert_allclose(metrics["dip_score"],
                               dip_score(model.components_.reshape(2, 16, 16), (4.0, 2.0)))


@pytest.mark.parametrize("option,given,constraint,message", [
    ("navigation_grid", (20, 12), MapResolution(2.0),
     "navigation_grid has shape (20, 12), but the signal's navigation axes give (12, 20) "
     "(y, x) in array order (transposed? HyperSpy lists the axes in the other order, as in "
     "axes_manager.navigation_shape). Give navigation_grid=Grid((12, 20), scale, units), or "
     "leave it out: the axes give the grid and its calibration."),
    ("navigation_grid", Grid((24, 10), 0.5, "nm"), MapResolution(2.0),
     "navigation_grid has shape (24, 10), but the signal's navigation axes give (12, 20) "
     "(y, x) in array order. Give navigation_grid=Grid((12, 20), scale, units), or leave it "
     "out: the axes give the grid and its calibration."),
    ("signal_grid", (768,), ContinuousIntensity(1.0),
     "signal_grid has shape (768,), but the signal's signal axes give (24, 32) (ky, kx) in "
     "array order. Give signal_grid=Grid((24, 32), scale, units), or leave it out: the axes "
     "give the grid and its calibration."),
])
def test_a_grid_that_is_not_the_axes_shape_is_refused_before_any_change(
        option, given, constraint, message):
    # A transposed grid (or another shape with as many pixels) was accepted silently: the
    # maps or components were reshaped wrongly.
    s = _small_scan()
    constrained(s, constraints=None, output_dimension=2)
    previous = s.learning_results.factors.copy()
    with pytest.raises(ValueError) as error:
        constrained(s, constraints=[constraint], **{option: given})
    assert str(error.value) == message
    np.testing.assert_array_equal(s.learning_results.factors, previous)
    # the axes' shape with another calibration is taken
    lr = constrained(s, constraints=[type(constraint)(2.0, units="px")],
                     **{option: Grid(signal_grids(s)[option == "signal_grid"].shape)})
    assert "= 2 px" in lr.hnmf["constraints"]["summary"]
