"""Domain constraints: each one's property holds on the fitted factors, and bad input is refused."""

import numpy as np
import pytest

from hyperspy_hnmf import HNMF
from hyperspy_hnmf.constraints import (
    ContinuousIntensity,
    Grid,
    MapResolution,
    Penalty,
    Projection,
    build_plan,
    dip_score,
    out_of_band_fraction,
)
from hyperspy_hnmf.constraints.filters import (
    band_limit,
    dip_envelope,
    fill_dips,
    gaussian_smooth,
    laplacian_smooth,
)
from hyperspy_hnmf.data import (
    get_ground_truth,
    get_ground_truth_model,
    score_decomposition,
    synthetic_4dstem,
)
from hyperspy_hnmf.solvers import beta_divergence, nmf

SOLVERS = [("frobenius", "hals"), ("frobenius", "als"), ("frobenius", "mu"), ("kl", "mu"), (1.5, "mu")]


@pytest.fixture(scope="module")
def scan():
    """A small 4D-STEM scan with a 4-pixel probe: data, clean model, truth, grids."""
    s = synthetic_4dstem(scan_shape=(24, 24), detector_shape=(32, 32), n_phases=2,
                         n_rotations=1, probe_fwhm=4.0, dose=400.0, random_state=1)
    X = s.data.reshape(24 * 24, 32 * 32)
    clean = get_ground_truth_model(s).data.reshape(X.shape)
    return X, clean, get_ground_truth(s), Grid((24, 24), 0.5, "nm"), Grid((32, 32))


def stacks(W, H, shape_maps, shape_components):
    k = H.shape[0]
    return (np.ascontiguousarray(W.T).reshape((k,) + shape_maps),
            H.reshape((k,) + shape_components))


# -- filters ------------------------------------------------------------------------------


def cosine(n, cycles_per_pixel):
    return np.cos(2 * np.pi * cycles_per_pixel * (np.arange(n) + 0.5))


@pytest.mark.parametrize("filter_", [gaussian_smooth, laplacian_smooth])
def test_soft_filters_pass_half_amplitude_at_the_cutoff(filter_):
    n, resolution = 256, 8.0
    x = (2 + cosine(n, 1 / resolution))[None]
    y = filter_(x, resolution)[0, 32:-32]
    amplitude = (y.max() - y.min()) / 2
    assert amplitude == pytest.approx(0.5, abs=0.06)
    slow = filter_((2 + cosine(n, 1 / 64))[None], resolution)[0, 32:-32]
    assert (slow.max() - slow.min()) / 2 > 0.95


def test_band_limit_removes_everything_beyond_the_cutoff_and_stays_nonnegative():
    rng = np.random.default_rng(0)
    x = rng.random((3, 40, 30))
    y = band_limit(x, 5.0)
    assert y.min() >= 0 and y.dtype == x.dtype
    assert out_of_band_fraction(y, 5.0).max() < 1e-3
    assert out_of_band_fraction(x, 5.0).min() > 0.05
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), rtol=0.02)


def test_fill_dips_fills_holes_keeps_peaks_and_troughs():
    pattern = np.full((1, 21, 21), 10.0)
    pattern[0, 5, 5] = 1.0                   # a one-pixel hole
    pattern[0, 15, 15] = 100.0               # a sharp peak
    pattern[0, :, 10] = 2.0                  # a trough, broad along one axis
    filled = fill_dips(pattern, 5, 0.1)
    assert filled[0, 5, 5] == pytest.approx(9.0)
    assert filled[0, 15, 15] == 100.0
    np.testing.assert_array_equal(filled[0, :, 10], 2.0)
    np.testing.assert_array_equal(fill_dips(filled, 5, 0.1), filled)


@pytest.mark.parametrize("shape", [(50,), (17, 23)])
def test_fill_dips_bounds_the_dip_score_on_noise(shape):
    x = np.random.default_rng(1).random((4,) + shape)
    assert dip_score(x, 5).max() > 0.5
    assert dip_score(fill_dips(x, 5, 0.05), 5, floor=0).max() <= 0.05 + 1e-12
    assert np.all(dip_envelope(x, 5) >= x)


# -- constraints on fitted factors ----------------------------------------------------------


@pytest.mark.parametrize("loss,solver", SOLVERS)
@pytest.mark.parametrize("method", ["fourier", "gaussian", "laplacian"])
def test_map_resolution_limits_the_maps(scan, loss, solver, method):
    X, _, truth, nav, sig = scan
    result = nmf(X, 3, loss=loss, solver=solver, random_state=0, max_iter=30,
                 constraints=[MapResolution(2.0, method=method)], map_grid=nav)
    maps, _ = stacks(result.W, result.H, nav.shape, sig.shape)
    free = nmf(X, 3, loss=loss, solver=solver, random_state=0, max_iter=30)
    free_maps, _ = stacks(free.W, free.H, nav.shape, sig.shape)
    limit = {"fourier": 1e-3, "gaussian": 0.02, "laplacian": 0.02}[method]
    assert out_of_band_fraction(maps, 4.0).max() < limit
    assert out_of_band_fraction(maps, 4.0).mean() < 0.5 * out_of_band_fraction(free_maps, 4.0).mean()


@pytest.mark.parametrize("loss,solver", SOLVERS)
def test_continuous_intensity_bounds_every_dip(scan, loss, solver):
    X, _, _, nav, sig = scan
    result = nmf(X, 3, loss=loss, solver=solver, random_state=0, max_iter=30,
                 constraints=[ContinuousIntensity(5, tolerance=0.03)], component_grid=sig)
    _, components = stacks(result.W, result.H, nav.shape, sig.shape)
    assert dip_score(components, 5, floor=0).max() <= 0.03 + 1e-5


def test_constraints_recover_the_truth_better_than_unconstrained(scan):
    X, clean, truth, nav, sig = scan
    errors, dips = [], []
    for cons in (None, [MapResolution(2.0), ContinuousIntensity(5)]):
        model = HNMF(3, loss="kl", random_state=0, constraints=cons,
                     navigation_grid=nav, signal_grid=sig)
        W = model.fit_transform(X)
        errors.append(np.linalg.norm(W @ model.components_ - clean) / np.linalg.norm(clean))
        dips.append(dip_score(model.components_.reshape(3, 32, 32), 5).max())
    assert errors[1] < errors[0]
    assert dips[1] <= 0.02 + 1e-5 < dips[0]
    assert set(model.constraint_metrics_) >= {"dip_score", "out_of_band_fraction",
                                             "reconstruction_error", "constraints"}
    assert model.constraint_metrics_["out_of_band_fraction"].max() < 1e-3


def planted_band_limited(resolution=6.0, shape=(32, 32), k=3, m=64, counts=80.0, seed=0):
    """Poisson counts of maps band-limited at ``resolution`` pixels times peaky patterns."""
    rng = np.random.default_rng(seed)
    fields = gaussian_smooth(rng.random((k,) + shape), 2 * resolution)
    fields -= fields.min(axis=(1, 2), keepdims=True)
    fields /= fields.max(axis=(1, 2), keepdims=True)
    maps = band_limit(fields**3, resolution)  # contrast, then no detail beyond the limit
    W = maps.reshape(k, -1).T
    H = rng.random((k, m)) ** 4
    H /= H.sum(axis=1, keepdims=True)
    model = W @ H
    model *= counts / model.sum(axis=1).mean()
    return rng.poisson(model).astype(np.float32), W, H


def test_kl_map_resolution_recovers_planted_band_limited_maps():
    # KL fits with map projections take one pass per iteration (both factors
    # updated from the projected iterate). They must still converge to the
    # planted maps: closer than the unconstrained fit, without their noise,
    # with an objective that settles (no swing of the components' intensities)
    # and whose last value is the data term of the returned factors.
    X, W_true, H_true = planted_band_limited()
    assert out_of_band_fraction(W_true.T.reshape(3, 32, 32), 6.0).max() < 1e-4
    fits = [nmf(X, 3, loss="kl", random_state=0, constraints=cons, map_grid=(32, 32))
            for cons in (None, [MapResolution(6.0)])]
    scores = [score_decomposition(fit.H.T, fit.W, H_true.T, W_true) for fit in fits]
    free, constrained = fits
    assert constrained.converged and constrained.n_iter < 100
    assert scores[1].mean_map_correlation >= 0.98 > scores[0].mean_map_correlation
    assert scores[1].mean_pattern_correlation >= 0.99
    oob = [out_of_band_fraction(np.ascontiguousarray(fit.W.T).reshape(3, 32, 32), 6.0).max()
           for fit in fits]
    assert oob[1] < 1e-4 and oob[0] > 0.01
    history = constrained.objective
    assert np.all(np.diff(history) <= 1e-7 * history[0])
    # The price of the band limit: a data term a few per cent above the free fit's.
    assert free.final_objective < constrained.final_objective < 1.1 * free.final_objective
    direct = beta_divergence(X.astype(np.float64), constrained.W.astype(np.float64),
                             constrained.H.astype(np.float64), 1)
    assert constrained.final_objective == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize("loss,solver", SOLVERS[:3])
def test_l1_on_maps_makes_them_sparser(scan, loss, solver):
    X = scan[0]
    free = nmf(X, 3, loss=loss, solver=solver, random_state=0, max_iter=60)
    weight = 0.5 * float(X.mean()) * X.shape[1]
    sparse = nmf(X, 3, loss=loss, solver=solver, random_state=0, max_iter=60,
                 constraints=[Penalty(l1=weight)])
    zeros = [np.mean(r.W <= 1e-6 * r.W.max()) for r in (free, sparse)]
    assert zeros[1] > zeros[0] + 0.05


def test_l1_on_maps_under_kl_shrinks_intensity_and_keeps_components(scan):
    X = scan[0]
    totals = []
    for l1 in (0.0, 0.5, 2.0):
        result = nmf(X, 3, loss="kl", random_state=0, max_iter=100, constraints=[Penalty(l1=l1)])
        totals.append(result.W.sum())
        if l1 == 0:
            free = result.H
    assert totals[0] > totals[1] > totals[2]
    correlation = [np.corrcoef(a, b)[0, 1] for a, b in zip(free, result.H)]
    assert min(correlation) > 0.95


def test_l2_on_components_shrinks_them_against_unit_mean_maps():
    rng = np.random.default_rng(0)
    X = rng.random((60, 3)) @ rng.random((3, 40))
    norms = []
    for l2 in (0.0, 5.0):
        model = HNMF(3, random_state=0, max_iter=300, constraints=[Penalty(l2=l2, on="components")])
        W = model.fit_transform(X)
        scale = W.mean(axis=0)  # the fit keeps maps at mean 1; undo the final normalization
        norms.append(np.linalg.norm(model.components_ * scale[:, None]))
    assert norms[1] < norms[0]


def test_penalized_hals_objective_never_increases():
    rng = np.random.default_rng(2)
    X = rng.random((50, 4)) @ rng.random((4, 30)) + 0.05 * rng.random((50, 30))
    result = nmf(X, 4, max_iter=100, tol=0, random_state=0,
                 constraints=[Penalty(l1=0.1, l2=0.2, on="maps"),
                              Penalty(l1=0.05, on="components")])
    assert np.all(np.diff(result.objective) <= 1e-9 * result.objective[0])


def test_large_l1_on_one_group_empties_only_that_group():
    rng = np.random.default_rng(3)
    X = rng.random((80, 3)) @ rng.random((3, 40))
    result = nmf(X, 3, random_state=0, max_iter=200, groups={"target": [2]},
                 constraints=[Penalty(l1=1e6, components="target")])
    assert np.all(result.W[:, 2] == 0)
    assert np.all(result.W[:, :2].sum(axis=0) > 0)


def test_groups_get_their_own_constraints_and_keep_their_positions(scan):
    X, _, _, nav, sig = scan
    model = HNMF(3, loss="kl", random_state=0, groups={"background": [0], "target": [1, 2]},
                 constraints=[MapResolution(2.0, components="background"),
                              ContinuousIntensity(5, components="background"),
                              Penalty(l1=0.05, components="target")],
                 navigation_grid=nav, signal_grid=sig)
    W = model.fit_transform(X)
    maps, components = stacks(W, model.components_, nav.shape, sig.shape)
    oob = out_of_band_fraction(maps, 4.0)
    assert oob[0] < 1e-3 and oob[1:].min() > 10 * oob[0]
    dips = dip_score(components, 5, floor=0)
    assert dips[0] <= 0.02 + 1e-5 and dips[1:].max() > 0.5
    # within the target group, the brighter component comes first
    assert W[:, 1].sum() >= W[:, 2].sum()


def test_custom_projection_acts_on_the_chosen_factor():
    rng = np.random.default_rng(4)
    X = rng.random((30, 3)) @ rng.random((3, 64))

    def no_outer_ring(stack):
        result = stack.copy()
        result[:, [0, -1], :] = 0
        result[:, :, [0, -1]] = 0
        return result

    result = nmf(X, 3, random_state=0, component_grid=(8, 8),
                 constraints=[Projection(no_outer_ring, on="components")])
    components = result.H.reshape(3, 8, 8)
    assert np.all(components[:, 0] == 0) and np.all(components[:, :, -1] == 0)
    assert components[:, 1:-1, 1:-1].sum() > 0


def test_layers_and_tree_apply_constraints(scan):
    X, _, _, nav, sig = scan
    cons = [MapResolution(2.0), ContinuousIntensity(5)]
    layers = HNMF([4, 2], loss="kl", random_state=0, constraints=cons,
                  navigation_grid=nav, signal_grid=sig, layer_weights=[1, 1]).fit(X)
    for W in layers.hierarchy_.W:
        maps = np.ascontiguousarray(W.T).reshape((W.shape[1],) + nav.shape)
        assert out_of_band_fraction(maps, 4.0).max() < 1e-3
    assert dip_score(layers.hierarchy_.H[0].reshape(4, 32, 32), 5, floor=0).max() <= 0.02 + 1e-5
    tree = HNMF(3, hierarchy="tree", loss="kl", random_state=0, constraints=cons,
                navigation_grid=nav, signal_grid=sig)
    W = tree.fit_transform(X)
    maps, components = stacks(W, tree.components_, nav.shape, sig.shape)
    assert out_of_band_fraction(maps, 4.0).max() < 1e-3
    assert dip_score(components, 5, floor=0).max() <= 0.02 + 1e-5


# -- bad input --------------------------------------------------------------------------------


def fit(constraints, groups=None, nav=(8, 8), sig=(4, 4), k=3, X=None):
    if X is None:
        X = np.random.default_rng(0).random((64, 16))
    return HNMF(k, constraints=constraints, groups=groups, navigation_grid=nav,
                signal_grid=sig, max_iter=5).fit(X)


@pytest.mark.parametrize("constraints,groups,message", [
    (MapResolution(0.5), None, "MapResolution(0.5 px) is 0.5 pixels, below one scan pixel"),
    (MapResolution(20), None, "MapResolution(20 px) is 20 pixels, larger than the scan (8 pixels)"),
    (MapResolution(2, units="nm"), None, "The axes are not calibrated (units 'px')"),
    (ContinuousIntensity(9), None, "ContinuousIntensity(width=9 px) is 9 pixels; it must be between"),
    (Penalty(l1=1, components=[3]), None, "names component 3, but there are 3 components (indices 0 to 2)"),
    (Penalty(l1=1, components="target"), None, "names the group 'target', which does not exist"),
    (None, {"a": [0, 1], "b": [1, 2]}, "Groups 'a' and 'b' overlap: component 1 is in both"),
    ([MapResolution(2, components=[0, 1]), MapResolution(3, components=[1, 2])], None,
     "Two MapResolution constraints on the maps both apply to component 1"),
    ("smooth", None, "constraints must be a constraint or a list of them"),
])
def test_bad_constraints_give_clear_errors(constraints, groups, message):
    with pytest.raises(ValueError, match=_literal(message)):
        fit(constraints, groups)


def _literal(text):
    import re

    return re.escape(text)


@pytest.mark.parametrize("function,message", [
    (lambda s: s[:, :2], "returned an array of shape (3, 2, 8) for input of shape (3, 8, 8)"),
    (lambda s: s - 10.0, "returned negative values"),
    (lambda s: s * np.nan, "returned NaN or infinite values"),
    (lambda s: s.tolist(), "returned list, not a NumPy array"),
])
def test_bad_projection_is_caught_before_the_first_iteration(function, message):
    calls = []

    def counting(stack):
        calls.append(1)
        return function(stack)

    with pytest.raises(ValueError, match=_literal(message)):
        fit(Projection(counting, name="mine"))
    assert len(calls) == 1


def test_constraint_needing_a_grid_without_one():
    with pytest.raises(ValueError, match=_literal("MapResolution needs the shape of the maps")):
        HNMF(2, constraints=MapResolution(2)).fit(np.ones((16, 4)))


def test_grid_that_does_not_match_the_data():
    with pytest.raises(ValueError, match=_literal("map_grid has shape (5, 5) (25 pixels), but the "
                                                  "data have 64 rows")):
        fit(MapResolution(2), nav=(5, 5))


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="Unknown map resolution method 'box'"):
        MapResolution(2, method="box")
    with pytest.raises(ValueError, match=_literal("tolerance must be in [0, 1), got 1.5")):
        ContinuousIntensity(3, tolerance=1.5)
    with pytest.raises(ValueError, match="The l1 penalty weight must be a real number ≥ 0"):
        Penalty(l1=-1)
    with pytest.raises(ValueError, match="on must be 'maps' or 'components'"):
        Penalty(l1=1, on="factors")
    with pytest.raises(ValueError, match="Projection needs a callable"):
        Projection(3)


def test_tree_refuses_component_penalties():
    with pytest.raises(ValueError, match="penalties on components are not supported with "
                                         "hierarchy='tree'"):
        HNMF(3, hierarchy="tree", constraints=Penalty(l1=1, on="components")).fit(np.ones((9, 4)))


def test_units_convert_between_length_units():
    grid = Grid((64, 64), scale=0.5, units="nm")
    assert grid.to_pixels(20, "Å") == pytest.approx(4.0)
    assert grid.to_pixels(0.002, "µm") == pytest.approx(4.0)
    with pytest.raises(ValueError, match="Cannot convert 'eV' to the axes' units 'nm'"):
        grid.to_pixels(2, "eV")
    plan = build_plan(MapResolution(20, units="Å"), 2, map_grid=grid)
    assert plan.map_resolution == pytest.approx(4.0)


def _physical_out_of_band(stack, steps, resolution):
    """Energy fraction beyond ``1 / resolution`` in physical units (cycles per nm)."""
    import scipy.fft

    power = scipy.fft.dctn(stack, axes=(1, 2), norm="ortho") ** 2
    ny, nx = stack.shape[1:]
    fy = np.arange(ny)[:, None] / (2 * ny * steps[0])
    fx = np.arange(nx)[None, :] / (2 * nx * steps[1])
    beyond = np.hypot(fy, fx) > 1.0 / resolution
    return (power * beyond).sum(axis=(1, 2)) / power.sum(axis=(1, 2))


@pytest.mark.parametrize("method,limit", [("fourier", 1e-3), ("gaussian", 2e-2),
                                          ("laplacian", 3e-2)])
def test_map_resolution_cuts_each_axis_of_a_scan_with_unequal_steps(method, limit):
    """Steps of 0.5 nm (y) and 0.25 nm (x): 2 nm is 4 px along y and 8 px along x."""
    grid = Grid((12, 20), scale=(0.5, 0.25), units="nm")
    plan = build_plan(MapResolution(2.0, method=method), 2, map_grid=grid)
    assert plan.map_resolution_axes == pytest.approx((4.0, 8.0))
    assert plan.summary() == [f"MapResolution on maps [0, 1]: 2 nm = 4 × 8 px ({method})"]
    noisy = np.random.default_rng(0).random((240, 2))
    maps = noisy.copy()
    plan.maps.project(maps)
    stack = maps.T.reshape(2, 12, 20)
    assert _physical_out_of_band(stack, (0.5, 0.25), 2.0).max() < limit
    assert out_of_band_fraction(stack, plan.map_resolution_axes).max() < limit
    assert stack.min() >= 0


def test_lengths_per_axis_are_checked_on_the_axis_they_fit():
    grid = Grid((12, 20), scale=(0.5, 0.25), units="nm")
    assert MapResolution(4.0).resolution_pixels_per_axis(grid) == (8.0, 16.0)
    with pytest.raises(ValueError, match=_literal("MapResolution(0.2 nm) is 0.4 × 0.8 pixels, "
                                                  "below one scan pixel")):
        build_plan(MapResolution(0.2), 1, map_grid=grid)
    with pytest.raises(ValueError, match=_literal("is 14 × 28 pixels, larger than the scan "
                                                  "(12 × 20 pixels)")):
        build_plan(MapResolution(7.0), 1, map_grid=grid)


@pytest.mark.parametrize("axis_units", ["$A^{-1}$", "Å^-1", "A⁻¹", "1/Å"])
def test_reciprocal_units_as_pyxem_writes_them_convert(axis_units):
    grid = Grid((64, 64), scale=0.05, units=axis_units)  # 0.05 1/Å = 0.5 1/nm per pixel
    assert ContinuousIntensity(2.0, units="1/nm").width_pixels(grid) == pytest.approx(4.0)
    assert ContinuousIntensity(0.2).width_pixels(grid) == pytest.approx(4.0)


@pytest.mark.parametrize("components", [0.5, True, object()])
def test_components_that_are_not_indices_or_a_group_are_refused(components):
    with pytest.raises(ValueError, match="components must be None \\(all\\), an index, a list"):
        MapResolution(2.0, components=components)


def test_continuous_intensity_on_a_detector_with_unequal_pixel_sizes():
    """Rows of 0.25 1/nm, columns of 0.5 1/nm: a 1 1/nm width is 4 rows and 2 columns."""
    grid = Grid((24, 32), scale=(0.25, 0.5), units="1/nm")
    plan = build_plan(ContinuousIntensity(1.0), 1, component_grid=grid)
    assert plan.dip_width_axes == pytest.approx((4.0, 2.0))
    assert plan.summary() == [
        "ContinuousIntensity on components [0]: width 1 1/nm = 4 × 2 px, tolerance 0.02"]
    pattern = np.full((24, 32), 10.0)
    pattern[5:8, 5] = 1.0      # 0.75 × 0.5 1/nm: narrower than 1 1/nm both ways, filled
    pattern[15:18, 20:23] = 1.0  # 0.75 × 1.5 1/nm: broader than 1 1/nm along x, kept
    column = pattern.reshape(-1, 1).copy()
    plan.components.project(column)
    result = column.reshape(24, 32)
    assert result[5:8, 5].min() == pytest.approx(9.8)
    np.testing.assert_array_equal(result[15:18, 20:23], 1.0)
    assert dip_score(result[None], plan.dip_width_axes)[0] == pytest.approx(0.02)  # broad: no dip


def test_energy_widths_convert_between_ev_and_kev():
    grid = Grid((1024,), scale=0.01, units="keV")  # an EDS spectrum: 10 eV channels
    assert ContinuousIntensity(50, units="eV").width_pixels(grid) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="Cannot convert 'nm' to the axes' units 'keV'"):
        ContinuousIntensity(5, units="nm").width_pixels(grid)
