"""Bootstrap intervals of a fitted decomposition: coverage, alignment, seeds, lazy data, errors."""

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pytest
import scipy.sparse as sp

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem
from hyperspy_hnmf.solvers import (MissingEntries, Outliers, PoissonResampler,
                                   bootstrap_interval, bootstrap_nmf, match_components, nmf)
from hyperspy_hnmf.solvers import _bootstrap
from hyperspy_hnmf.solvers._bootstrap import ZERO_TOLERANCE, empty_row_bound


@pytest.fixture(scope="module")
def planted():
    """Counts of two spectra with channels of their own (an identifiable NMF) and their fit."""
    rng = np.random.default_rng(0)
    n, m = 300, 40
    channels = np.arange(m)
    H = np.stack([np.exp(-0.5 * ((channels - c) / 3.0) ** 2) + 0.02 for c in (10, 28)])
    H[0, 24:] = 0.0  # channels of one component only: the factorization is unique
    H[1, :14] = 0.0
    H /= H.sum(axis=1, keepdims=True)
    W = rng.uniform(20, 120, size=(n, 2))
    X = rng.poisson(W @ H).astype(np.float32)
    fit = nmf(X, 2, loss="kl", max_iter=2000, tol=1e-8, random_state=0)
    order = np.argsort(fit.H.argmax(axis=1))  # the reference in the truth's order
    return X, W, H, fit.W[:, order], fit.H[order]


def test_basic_interval_reflects_the_quantiles_about_the_estimate_and_clips_at_zero():
    samples = np.stack([np.arange(101.0), np.arange(101.0) + 10.0, np.full(101, 1e-16)], axis=1)
    estimate = np.array([30.0, 55.0, 3e-15])
    low, high = np.quantile(samples, [0.05, 0.95], axis=0)
    lower, upper = bootstrap_interval(samples, estimate, 0.9, "percentile", atol=1e-9)
    np.testing.assert_allclose(lower, [5.0, 15.0, 0.0])
    np.testing.assert_allclose(upper, [95.0, 105.0, 0.0])
    lower, upper = bootstrap_interval(samples, estimate, 0.9, "basic", atol=1e-9)
    # [2θ̂ - q_hi, 2θ̂ - q_lo], clipped at 0; entries below atol are zeros
    np.testing.assert_allclose(lower, [0.0, 5.0, 0.0])
    np.testing.assert_allclose(upper, [55.0, 95.0, 0.0])
    np.testing.assert_allclose(upper[:2], 2 * estimate[:2] - low[:2])
    lower, upper = bootstrap_interval(samples, estimate, 0.9, "basic")
    assert lower[2] > 0  # without atol a floor value of the solver is not a zero
    # hybrid: the basic interval, with an upper bound of at least the resamples' q_hi
    at_zero = np.concatenate([np.zeros(80), np.linspace(1.0, 4.0, 21)])[:, None]
    lower, upper = bootstrap_interval(at_zero, np.zeros(1), 0.9, "hybrid")
    assert lower[0] == 0 and upper[0] == pytest.approx(np.quantile(at_zero, 0.95))
    assert bootstrap_interval(at_zero, np.zeros(1), 0.9, "basic")[1][0] == 0
    lower, upper = bootstrap_interval(samples[:, :2], np.array([50.0, 75.0]), 0.9, "hybrid")
    np.testing.assert_allclose(lower, [5.0, 45.0])  # the basic interval ...
    np.testing.assert_allclose(upper, [95.0, 135.0])  # ... where its upper bound is ≥ q_hi
    lower, upper = bootstrap_interval(samples[:, :2], estimate[:2], 0.9, "hybrid")
    np.testing.assert_allclose(upper, [95.0, 105.0])  # q_hi where that is higher
    with pytest.raises(ValueError, match="interval must be one of"):
        bootstrap_interval(samples, estimate, interval="bca")
    with pytest.raises(ValueError, match=r"need shape \(n_resamples, \*\(2,\)\)"):
        bootstrap_interval(samples, estimate[:2])


@pytest.fixture(scope="module")
def identifiable():
    """Two phases without the halo: every map has probe positions, and every
    pattern Bragg spots, of its own, so the NMF is unique (see bench_uncertainty.py)."""
    s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(16, 16), n_phases=2,
                         n_rotations=1, dose=200, halo=False, particles_per_component=4,
                         particle_radius=3.0, random_state=0)
    truth = get_ground_truth(s)
    X = s.data.reshape(256, -1)
    fit = nmf(X, 2, loss="kl", max_iter=1000, tol=1e-6, random_state=0)
    order, _ = match_components(truth.factors.T, fit.H)
    return X, fit.W, fit.H, truth.loadings[:, order]


@pytest.fixture(scope="module")
def identifiable_bootstraps(identifiable):
    """The same resamples refitted from the reference maps (lift=0) and from lifted maps."""
    X, W, H, _ = identifiable
    options = dict(n_resamples=40, max_iter=20, random_state=0, keep_samples=True)
    return (bootstrap_nmf(X, W, H, lift=0.0, **options), bootstrap_nmf(X, W, H, **options))


def test_refits_from_lifted_maps_leave_the_zeros_of_the_reference(identifiable,
                                                                  identifiable_bootstraps):
    X, _, _, W_true = identifiable
    locked, lifted = identifiable_bootstraps
    zero = ZERO_TOLERANCE * locked.W.max(axis=0)
    # entries the fit rounds to 0 where the truth is positive (blurred particle edges),
    # at probe positions that recorded electrons
    edges = (locked.W <= zero) & (W_true > 0) & (X.sum(axis=1) > 0)[:, None]
    assert edges.sum() > 30
    # From the reference itself, multiplicative updates keep (almost) every such entry at 0
    # in every refit (measured: 0.1 % of the refitted entries positive): the intervals are
    # [0, 0] whatever the resamples say.
    assert np.mean(locked.W_samples[:, edges] > zero.max()) < 0.01
    # Lifted off zero, the refits find these small values in about half of the resamples
    # (measured 45 %: the law of an estimate at the boundary) and every upper bound is > 0.
    assert 0.25 < np.mean(lifted.W_samples[:, edges] > zero.max()) < 0.75
    assert np.all(lifted.W_upper[edges] > 0)
    # ... and without losing coverage where the truth is 0 (measured 1.0 and 0.97 lifted,
    # 1.0 and 0.93 from the reference)
    true_zero = W_true == 0

    def covered(result):
        return np.mean((W_true[true_zero] >= result.W_lower[true_zero])
                       & (W_true[true_zero] <= result.W_upper[true_zero]))
    assert covered(lifted) >= covered(locked) >= 0.9


def test_intervals_cover_the_true_maps_at_the_nominal_rate(identifiable, identifiable_bootstraps):
    X, _, _, W_true = identifiable
    locked, result = identifiable_bootstraps
    present = W_true > 0.05 * W_true.max(axis=0)
    inside = (W_true >= result.W_lower) & (W_true <= result.W_upper)
    where_present = np.array([inside[present[:, j], j].mean() for j in range(2)])
    # Measured (40 resamples, hybrid, lift 0.1): 0.85 and 0.86 over all positions, 0.88 and
    # 0.88 where the phase is present (nominal 0.9). With lift=0 and the basic interval (the
    # former default) 0.79 and 0.72 over all positions.
    assert np.all((where_present >= 0.83) & (where_present <= 0.95)), where_present
    overall = result.coverage(W_true)
    assert np.all((overall >= 0.82) & (overall <= 0.95)), overall
    basic_locked = (W_true >= locked.map_bounds("basic")[0]) & \
        (W_true <= locked.map_bounds("basic")[1])
    assert np.all(overall > basic_locked.mean(axis=0) + 0.03)
    assert result.interval == "hybrid" and np.all(result.stability > 0.99)
    assert np.all(result.W_lower <= result.W_upper)
    # probe positions without a count: the exact Poisson bound, whatever the resamples
    empty = X.sum(axis=1) == 0
    assert empty.any() and np.all(result.W_upper[empty] >= empty_row_bound(0.9))


def test_components_are_matched_to_the_reference_order(planted):
    X, _, _, W, H = planted
    straight = bootstrap_nmf(X, W, H, n_resamples=5, max_iter=10, random_state=3)
    swapped = bootstrap_nmf(X, W[:, ::-1], H[::-1], n_resamples=5, max_iter=10, random_state=3)
    np.testing.assert_allclose(swapped.W_lower, straight.W_lower[:, ::-1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(swapped.H_upper, straight.H_upper[::-1], rtol=1e-4, atol=1e-6)
    assert np.all(swapped.component_correlation > 0.99)


def test_same_seed_same_intervals(planted):
    X, _, _, W, H = planted
    options = dict(n_resamples=4, max_iter=5, method="nonparametric")
    a = bootstrap_nmf(X, W, H, random_state=7, **options)
    b = bootstrap_nmf(X, W, H, random_state=7, **options)
    c = bootstrap_nmf(X, W, H, random_state=8, **options)
    np.testing.assert_array_equal(a.W_lower, b.W_lower)
    np.testing.assert_array_equal(a.H_upper, b.H_upper)
    assert not np.array_equal(a.W_lower, c.W_lower)


@pytest.mark.parametrize("method", ["poisson", "nonparametric"])
def test_lazy_data_give_the_in_memory_intervals(planted, method):
    X, _, _, W, H = planted
    options = dict(n_resamples=4, max_iter=10, method=method, random_state=5)
    eager = bootstrap_nmf(X, W, H, **options)
    lazy = bootstrap_nmf(da.from_array(X, chunks=(37, -1)), W, H, **options)
    np.testing.assert_allclose(lazy.W_lower, eager.W_lower, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(lazy.W_upper, eager.W_upper, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(lazy.H_lower, eager.H_lower, rtol=1e-3, atol=1e-6)


def test_resamples_do_not_depend_on_chunks_and_have_poisson_moments():
    rng = np.random.default_rng(1)
    W, H = rng.uniform(1, 3, (400, 2)), rng.uniform(1, 3, (2, 50))
    draw = PoissonResampler("poisson", seed=11, W=W, H=H)
    X = np.zeros((400, 50), dtype=np.float32)
    whole = draw(X, 0)
    np.testing.assert_array_equal(np.concatenate([draw(X[:123], 0), draw(X[123:], 123)]), whole)
    sparse = draw(sp.csr_matrix(X), 0)
    np.testing.assert_array_equal(sparse.toarray(), whole)
    ratio = (whole - W @ H) / np.sqrt(W @ H)
    assert abs(ratio.mean()) < 0.02 and abs(ratio.var() - 1) < 0.03
    counts = np.full((400, 50), 4.0, dtype=np.float32)
    thinned = PoissonResampler("nonparametric", seed=2)(sp.csr_matrix(counts), 0)
    assert abs(thinned.sum() / counts.sum() - 1) < 0.01


def test_bad_options_are_named(planted):
    X, _, _, W, H = planted
    with pytest.raises(ValueError, match="method must be 'poisson'"):
        bootstrap_nmf(X, W, H, method="jackknife")
    with pytest.raises(ValueError, match="confidence must be a number between 0 and 1"):
        bootstrap_nmf(X, W, H, confidence=90)
    with pytest.raises(ValueError, match="n_resamples must be an integer ≥ 2"):
        bootstrap_nmf(X, W, H, n_resamples=1)
    with pytest.raises(ValueError, match=r"need maps W of shape \(300, k\)"):
        bootstrap_nmf(X, W[:10], H)
    with pytest.raises(ValueError, match="interval must be 'hybrid'"):
        bootstrap_nmf(X, W, H, interval="bca")
    with pytest.raises(ValueError, match="lift must be a number ≥ 0"):
        bootstrap_nmf(X, W, H, lift=-1)


@pytest.fixture(scope="module")
def scan():
    s = hyperspy_hnmf.data.synthetic_4dstem(scan_shape=(12, 10), detector_shape=(16, 16),
                                            n_phases=1, n_rotations=1, random_state=2)
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False, max_iter=300,
                    tol=1e-6)
    return s


def test_signal_intervals_have_the_signal_axes(scan, capsys):
    u = hyperspy_hnmf.uncertainty(scan, n_resamples=6, random_state=0, max_iter=10,
                                  show_progressbar=False, print_info=True)
    assert u.loadings_lower.axes_manager.signal_shape == scan.axes_manager.navigation_shape
    assert u.loadings_upper.axes_manager[-1].units == scan.axes_manager[0].units
    assert u.factors_upper.axes_manager.signal_shape == scan.axes_manager.signal_shape
    assert np.all(u.loadings_width.data >= 0)
    assert u.stability.shape == (2,)
    assert "stability" in capsys.readouterr().out


def test_a_lazy_signal_gives_the_in_memory_intervals(scan):
    lazy = scan.as_lazy()
    lazy.data = lazy.data.rechunk((5, 10, 16, 16))
    lazy.learning_results = scan.learning_results
    options = dict(n_resamples=3, random_state=4, max_iter=8, show_progressbar=False)
    eager = hyperspy_hnmf.uncertainty(scan, **options)
    streamed = hyperspy_hnmf.uncertainty(lazy, **options)
    np.testing.assert_allclose(streamed.loadings_upper.data, eager.loadings_upper.data,
                               rtol=1e-3, atol=1e-3)


def test_signals_without_an_hnmf_decomposition_are_refused(scan):
    s = hs.signals.Signal1D(np.random.default_rng(0).poisson(5, (10, 20)).astype("float32"))
    with pytest.raises(ValueError, match="no decomposition to bootstrap"):
        hyperspy_hnmf.uncertainty(s)
    s.decomposition(algorithm="SVD", output_dimension=2, print_info=False)
    with pytest.raises(ValueError, match="made by algorithm='SVD'"):
        hyperspy_hnmf.uncertainty(s)
    s.decomposition(algorithm="hnmf", output_dimension=[3, 2], print_info=False)
    with pytest.raises(ValueError, match="hierarchical"):
        hyperspy_hnmf.uncertainty(s)


def test_interval_signals_name_the_component_axis_as_hyperspy_loadings(scan):
    u = hyperspy_hnmf.uncertainty(scan, n_resamples=2, random_state=0, max_iter=2,
                                  show_progressbar=False)
    name = scan.get_decomposition_loadings().axes_manager.navigation_axes[0].name
    assert name == "Decomposition component index"
    for signal in (u.loadings_lower, u.loadings_upper, u.loadings_width, u.factors_lower,
                   u.factors_upper):
        assert [axis.name for axis in signal.axes_manager.navigation_axes] == [name]


def _small_scan(**kwargs):
    return synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16), n_phases=1,
                            n_rotations=1, random_state=2, **kwargs)


@pytest.fixture
def no_bootstrap(monkeypatch):
    """Fail if a resample is drawn: refusals come before any computation."""
    def refuse(*args, **kwargs):
        raise AssertionError("bootstrap_nmf was called")
    monkeypatch.setattr(hyperspy_hnmf._hyperspy.uncertainty, "bootstrap_nmf", refuse)


@pytest.mark.filterwarnings("ignore:The data contradict")
@pytest.mark.parametrize("constraint", ["known", "pure", "both"])
def test_fits_with_known_components_or_pure_regions_are_refused(constraint, no_bootstrap):
    from hyperspy_hnmf.constraints import KnownComponent, PureRegion

    s = _small_scan()
    pattern = get_ground_truth(s).factors[:, 0].reshape(16, 16)
    corner = np.zeros((8, 8), dtype=bool)
    corner[:2, :2] = True
    options = {"known": dict(known_components=[KnownComponent(pattern, index=1, name="halo")]),
               "pure": dict(pure_regions=[PureRegion(corner, 0)])}
    options["both"] = {**options["known"], **options["pure"]}
    s.decomposition(algorithm="hnmf", output_dimension=2, max_iter=30, print_info=False,
                    **options[constraint])
    held = {"known": "known component(s) 'halo' (component 1)",
            "pure": "pure region(s) of component(s) 0"}
    lost = {"known": "the known patterns would be refitted freely",
            "pure": "the other components' maps would leave 0 in the pure regions"}
    parts = ["known", "pure"] if constraint == "both" else [constraint]
    with pytest.raises(ValueError) as error:
        hyperspy_hnmf.uncertainty(s, n_resamples=4, show_progressbar=False)
    assert str(error.value) == (
        f"This signal's hnmf decomposition was fitted with "
        f"{' and '.join(held[p] for p in parts)}. uncertainty refits every resample without "
        f"them ({'; '.join(lost[p] for p in parts)}), so its intervals would not be those of "
        "this fit; it bootstraps unconstrained decompositions only. Decompose without "
        "known_components and pure_regions to get intervals of the unconstrained fit.")


@pytest.fixture(scope="module")
def robust_scan():
    """A robust fit of a scan with a planted hot pixel and a dead detector channel."""
    s = synthetic_4dstem(scan_shape=(12, 10), detector_shape=(16, 16), n_phases=1,
                         n_rotations=1, random_state=2)
    s.data[3, 4, 5, 6] = 5000  # a cosmic-ray hit: probe position 34, channel 86
    s.data[:, :, 4, 8] = 0  # a dead channel (312 counts over the scan before): 72
    s.decomposition(algorithm="hnmf", output_dimension=2, outliers="auto", loss="kl",
                    random_state=0, print_info=False)
    outliers = s.learning_results.hnmf["outliers"]
    assert outliers["navigation_index"].tolist() == [34]
    assert outliers["signal_index"].tolist() == [86]
    assert outliers["dead_channels"].tolist() == [72]
    return s


def test_the_outliers_of_a_robust_fit_stay_out_of_the_nonparametric_resamples(robust_scan):
    u = hyperspy_hnmf.uncertainty(robust_scan, n_resamples=6, method="nonparametric",
                                  random_state=0, max_iter=10, show_progressbar=False)
    fit = robust_scan.learning_results.loadings  # (probe positions, components)
    upper = u.loadings_upper.data.reshape(2, -1).T
    width = u.loadings_width.data.reshape(2, -1).T
    # The fit left the hit out (maps 190 and 37 counts there, ≈ 15 counts of Poisson noise in
    # all); resampling it back in gave upper bounds of 5000 counts (measured 5233 and 3855).
    assert np.all(upper[34] <= fit[34] + 3 * np.sqrt(fit[34].sum()))
    assert np.all(width[34] <= np.delete(width, 34, axis=0).max(axis=0))
    # The dead channel has no data: the fit's components there are interpolated from the
    # neighbouring channels. Resampled as recorded (zeros), every refit put 0 there and the
    # interval, [2 fit, 2 fit], excluded the fit itself.
    factors = robust_scan.learning_results.factors
    reference = factors[72] / factors.sum(axis=0)
    lower = u.factors_lower.data.reshape(2, -1)[:, 72]
    upper = u.factors_upper.data.reshape(2, -1)[:, 72]
    assert np.all((lower <= reference) & (reference <= upper)) and np.all(upper > 0)


def test_a_lazy_robust_fit_gives_the_in_memory_intervals_without_its_outliers(robust_scan):
    lazy = robust_scan.as_lazy()
    lazy.data = lazy.data.rechunk((5, 10, 16, 16))
    lazy.learning_results = robust_scan.learning_results
    for method in ("nonparametric", "poisson"):
        options = dict(n_resamples=3, method=method, random_state=4, max_iter=8,
                       show_progressbar=False)
        eager = hyperspy_hnmf.uncertainty(robust_scan, **options)
        streamed = hyperspy_hnmf.uncertainty(lazy, **options)
        np.testing.assert_allclose(streamed.loadings_upper.data, eager.loadings_upper.data,
                                   rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(streamed.factors_upper.data, eager.factors_upper.data,
                                   rtol=1e-3, atol=1e-6)
        # the hit's position (maps 190 and 37 counts): bounds of the noise, not of the hit
        assert np.all(streamed.loadings_upper.data[:, 3, 4] < 250), method


@pytest.fixture(scope="module")
def stored_outliers():
    """The scan of ``robust_scan`` with its true maps and patterns stored as a robust fit.

    The reference and its outliers (the hit, the dead channel) are written as a robust
    decomposition stores them, so the intervals depend on the bootstrap alone, not on
    what the robust solver finds.
    """
    from hyperspy_hnmf._hyperspy.results import store_decomposition

    s = synthetic_4dstem(scan_shape=(12, 10), detector_shape=(16, 16), n_phases=1,
                         n_rotations=1, random_state=2)
    s.data[3, 4, 5, 6] = 5000
    s.data[:, :, 2, 9] = 0
    truth = get_ground_truth(s)
    outliers = {"navigation_index": np.array([34]), "signal_index": np.array([86]),
                "dead_channels": np.array([41]), "hot_channels": np.array([], dtype=np.int64)}
    store_decomposition(s, truth.factors, truth.loadings, "hnmf",
                        {"beta": 1.0, "solver": "mu", "outliers": outliers})
    return s


#: Sums of the intervals of ``stored_outliers`` (3 resamples, seed 4, 8 iterations) and the
#: upper bounds of the maps at its cosmic-ray hit (5000 counts), recorded from
#: ``uncertainty`` as it was when it filled the outliers itself, through private helpers of
#: the robust solver (commit 9894738), before ``bootstrap_nmf`` took ``missing=``; the code
#: with ``missing=`` reproduced every array of that run, in memory and lazy, bit for bit.
RECORDED_INTERVALS = {
    "nonparametric": ({"W_lower": 22006.33531109686, "W_upper": 29057.075162835874,
                       "H_lower": 1.843508741716927, "H_upper": 2.3961753286231144},
                      [128.31544723510743, 154.4186842004685]),
    "poisson": ({"W_lower": 22081.61124935073, "W_upper": 27702.40106197047,
                 "H_lower": 1.8544123142068192, "H_upper": 2.2527698004532493},
                [135.35191200897341, 148.6339141845703]),
}


@pytest.mark.parametrize("method", ["nonparametric", "poisson"])
def test_the_intervals_of_a_robust_fit_are_those_recorded_before_missing_was_an_option(
        stored_outliers, method):
    u = hyperspy_hnmf.uncertainty(stored_outliers, n_resamples=3, method=method,
                                  random_state=4, max_iter=8, show_progressbar=False)
    sums, hit = RECORDED_INTERVALS[method]
    for name, total in sums.items():
        assert getattr(u.result, name).sum() == pytest.approx(total, rel=1e-6), name
    np.testing.assert_allclose(u.result.W_upper[34], hit, rtol=1e-6)


@pytest.fixture(scope="module")
def hit_counts():
    """Counts with entries and a whole channel to leave out, and a fit of them."""
    rng = np.random.default_rng(3)
    W, H = rng.uniform(5, 40, (80, 2)), rng.dirichlet(np.ones(30), size=2)
    X = rng.poisson(W @ H).astype(np.uint16)
    fit = nmf(X.astype(np.float32), 2, loss="kl", max_iter=200, random_state=0)
    return X, fit.W, fit.H, MissingEntries([5, 40, 41], [3, 17, 29], [11])


def _arbitrary_at(X, missing):
    changed = X.copy()
    changed[missing.rows, missing.cols] = [5000, 0, 777]
    changed[:, missing.columns] = np.arange(X.shape[0])[:, None] * 100
    return changed


BOOTSTRAP_ARRAYS = ("W_lower", "W_upper", "H_lower", "H_upper", "W_median", "W_samples",
                    "H_samples", "component_correlation", "map_correlation", "empty_rows")


@pytest.mark.parametrize("method", ["nonparametric", "poisson"])
@pytest.mark.parametrize("lazy", [False, True])
def test_missing_entries_have_no_influence_on_the_intervals(hit_counts, method, lazy):
    X, W, H, missing = hit_counts
    wrap = (lambda A: da.from_array(A, chunks=(25, -1))) if lazy else (lambda A: A)
    options = dict(method=method, n_resamples=3, max_iter=5, random_state=2, keep_samples=True)
    recorded = bootstrap_nmf(wrap(X), W, H, missing=missing, **options)
    changed = bootstrap_nmf(wrap(_arbitrary_at(X, missing)), W, H, missing=missing, **options)
    for name in BOOTSTRAP_ARRAYS:
        np.testing.assert_array_equal(getattr(changed, name), getattr(recorded, name), name)
    if method == "nonparametric":  # (parametric resamples never read the data)
        plain = bootstrap_nmf(wrap(X), W, H, **options)
        plain_changed = bootstrap_nmf(wrap(_arbitrary_at(X, missing)), W, H, **options)
        assert not np.array_equal(plain_changed.W_upper, plain.W_upper)
        assert not np.array_equal(plain_changed.H_upper, plain.H_upper)


def test_the_outliers_of_a_robust_fit_are_its_entries_and_bad_channels(hit_counts):
    X, W, H, missing = hit_counts
    outliers = Outliers(X.shape, np.array([41, 5, 40]), np.array([29, 3, 17]),
                        np.zeros(3), np.zeros(3), np.array([11]), np.array([], dtype=np.int64),
                        1e-6, 4.89, "kullback-leibler", 1)
    options = dict(method="nonparametric", n_resamples=2, max_iter=3, random_state=0)
    a = bootstrap_nmf(X, W, H, missing=outliers, **options)
    b = bootstrap_nmf(X, W, H, missing=missing, **options)
    np.testing.assert_array_equal(a.W_upper, b.W_upper)
    np.testing.assert_array_equal(a.H_lower, b.H_lower)


def test_missing_entries_are_checked_against_the_data_before_any_resample(hit_counts,
                                                                          monkeypatch):
    X, W, H, _ = hit_counts

    def refuse(*args, **kwargs):
        raise AssertionError("a resample was drawn before missing= was checked")

    monkeypatch.setattr(_bootstrap, "PoissonResampler", refuse)
    other = Outliers((80, 31), np.array([1]), np.array([2]), np.array([50.0]), np.array([1.0]),
                     np.array([], dtype=np.int64), np.array([], dtype=np.int64), 1e-6, 4.89,
                     "kullback-leibler", 1)
    cases = [
        (np.zeros(X.shape, dtype=bool), X, TypeError,
         "missing must be the Outliers of a robust fit (robust_nmf) or a MissingEntries, got "
         "ndarray."),
        (other, X, ValueError,
         "missing holds the outliers of data of shape (80, 31); these data have shape "
         "(80, 30). Pass the Outliers that robust_nmf found on these data."),
        (MissingEntries([80], [0]), X, ValueError,
         "missing has row index 80 outside the data's 80 rows (0 to 79)."),
        (MissingEntries([0], [-1]), X, ValueError,
         "missing has column index -1 outside the data's 30 columns (0 to 29)."),
        (MissingEntries([], [], [30]), da.from_array(X, chunks=(25, -1)), ValueError,
         "missing has whole-column index 30 outside the data's 30 columns (0 to 29)."),
        (MissingEntries([0], [0]), sp.csr_matrix(X), ValueError,
         "missing=... reads the data in passes, as robust_nmf does; these data are a sparse "
         "matrix in memory. Pass them as a dask array of row chunks, or bootstrap without "
         "missing."),
    ]
    for missing, data, error, message in cases:
        with pytest.raises(error) as raised:
            bootstrap_nmf(data, W, H, missing=missing)
        assert str(raised.value) == message


NOT_COUNTS = (
    "uncertainty resamples counted electrons (Poisson noise), but this signal's data are not "
    "integer counts (not every value is a whole number; a lazy signal is judged by its dtype, "
    "or by its first chunk for floating data), so Poisson resamples would not have their "
    "noise and the intervals would be wrong. Convert the data to electron counts (e.g. "
    "subtract the detector offset, divide by the counts per electron and round), decompose "
    "again, then bootstrap.")


@pytest.mark.parametrize("lazy", [False, True])
def test_data_that_are_not_counts_are_refused(lazy, no_bootstrap):
    s = _small_scan()
    s.data = s.data * 0.37 + 0.01  # counts scaled by a gain, plus an offset
    s.decomposition(algorithm="hnmf", output_dimension=2, loss="frobenius", max_iter=30,
                    print_info=False)
    if lazy:
        fitted = s
        s = s.as_lazy()
        s.learning_results = fitted.learning_results
    for method in ("poisson", "nonparametric"):
        with pytest.raises(ValueError) as error:
            hyperspy_hnmf.uncertainty(s, n_resamples=4, method=method, show_progressbar=False)
        assert str(error.value) == NOT_COUNTS


def test_randomized_fits_are_refitted_by_exact_hals_on_the_same_loss():
    s = _small_scan()
    s.decomposition(algorithm="hnmf", output_dimension=2, solver="randomized",
                    print_info=False)
    assert s.learning_results.hnmf["solver"] == "randomized"
    options = dict(n_resamples=3, random_state=0, max_iter=5)
    u = hyperspy_hnmf.uncertainty(s, show_progressbar=False, **options)
    X = s.data.reshape(64, -1)
    W = s.learning_results.loadings
    H = np.ascontiguousarray(s.learning_results.factors.T)
    hals = bootstrap_nmf(X, W, H, loss="frobenius", solver="hals", **options)
    np.testing.assert_array_equal(u.result.W_upper, hals.W_upper)
    np.testing.assert_array_equal(u.result.H_lower, hals.H_lower)
    assert u.result.n_iter == 5 and np.all(u.result.W_lower <= u.result.W_upper)


def test_itakura_saito_fits_are_refused(no_bootstrap):
    s = _small_scan()
    s.data += 1  # no zero: the Itakura-Saito loss can fit it
    s.decomposition(algorithm="hnmf", output_dimension=2, loss="is", max_iter=30,
                    print_info=False)
    with pytest.raises(ValueError) as error:
        hyperspy_hnmf.uncertainty(s, n_resamples=4, show_progressbar=False)
    assert str(error.value) == (
        "This signal's hnmf decomposition uses the loss with β=0 (Itakura-Saito), which is "
        "undefined where the data are zero; Poisson resamples of counts have zeros wherever "
        "the expected count is small, so they cannot be refitted with it. uncertainty "
        "bootstraps fits with β > 0: decompose with loss='kl' (counts) to get intervals.")
