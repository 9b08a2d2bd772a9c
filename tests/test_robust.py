"""Robust fits (``outliers=...``): detector outliers kept out of the components and maps."""

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import hyperspy_hnmf  # noqa: F401  (registers algorithm="hnmf")
from hyperspy_hnmf import HNMF, get_outliers
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_4dstem
from hyperspy_hnmf.solvers import robust_nmf
from hyperspy_hnmf.solvers._channels import bad_channels

SCAN, DETECTOR = (24, 24), (24, 24)
DEAD_COLUMN = 15


def corrupt(X, rng, fraction=0.001, factor=100.0, dead_column=DEAD_COLUMN):
    """Hot pixels (``fraction`` of entries at ``factor`` × the mean count) and a dead column."""
    X = X.copy()
    hot = np.count_nonzero(X.reshape(X.shape[0], *DETECTOR)[..., dead_column] >= 0)
    X.reshape(X.shape[0], *DETECTOR)[..., dead_column] = 0
    dead = np.flatnonzero(np.arange(X.shape[1]) % DETECTOR[1] == dead_column)
    live = np.setdiff1d(np.arange(X.size), (np.arange(X.shape[0])[:, None] * X.shape[1]
                                           + dead[None, :]).ravel())
    planted = rng.choice(live, int(round(fraction * X.size)), replace=False)
    X.flat[planted] = np.round(factor * X.mean())
    assert hot == X.shape[0] * DETECTOR[0]
    return X, np.sort(planted), dead


@pytest.fixture(scope="module")
def scan():
    s = synthetic_4dstem(scan_shape=SCAN, detector_shape=DETECTOR, n_phases=2, n_rotations=1,
                         dose=500, random_state=0)
    truth = get_ground_truth(s)
    X = np.ascontiguousarray(s.data.reshape(-1, np.prod(DETECTOR)), dtype=np.float32)
    Xc, planted, dead = corrupt(X, np.random.default_rng(1))
    return dict(X=X, Xc=Xc, planted=planted, dead=dead, truth=truth, k=truth.factors.shape[1])


def map_r(W, H, truth):
    return score_decomposition(H.T, W, truth.factors, truth.loadings).mean_map_correlation


@pytest.fixture(scope="module")
def fits(scan):
    k, truth = scan["k"], scan["truth"]
    options = dict(loss="kl", random_state=0, max_iter=300)
    clean = HNMF(k, **options)
    W_clean = clean.fit_transform(scan["X"])
    plain = HNMF(k, **options)
    W_plain = plain.fit_transform(scan["Xc"])
    robust = HNMF(k, outliers="auto", signal_grid=DETECTOR, **options)
    W_robust = robust.fit_transform(scan["Xc"])
    robust_clean = HNMF(k, outliers="auto", signal_grid=DETECTOR, **options)
    W_robust_clean = robust_clean.fit_transform(scan["X"])
    return {name: (W, model, map_r(W, model.components_, truth)) for name, W, model in (
        ("clean", W_clean, clean), ("plain", W_plain, plain), ("robust", W_robust, robust),
        ("robust_clean", W_robust_clean, robust_clean))}


def test_robust_maps_stay_with_the_clean_fit_where_plain_kl_breaks(fits):
    clean, plain, robust = (fits[name][2] for name in ("clean", "plain", "robust"))
    assert clean > 0.95
    assert abs(robust - clean) <= 0.02
    assert plain < clean - 0.1  # the plain KL fit is pulled by the hot pixels


def test_outliers_found_are_the_planted_ones(scan, fits):
    found = fits["robust"][1].outliers_
    assert found.dead_channels.tolist() == scan["dead"].tolist()
    assert found.hot_channels.size == 0
    flat = found.rows * scan["X"].shape[1] + found.cols
    hits = np.intersect1d(flat, scan["planted"]).size
    precision, recall = hits / flat.size, hits / scan["planted"].size
    assert precision >= 0.98 and recall >= 0.95, (precision, recall)
    assert np.all(found.values[np.isin(flat, scan["planted"])] > found.expected[
        np.isin(flat, scan["planted"])])


def test_clean_data_flag_almost_nothing_and_keep_their_maps(scan, fits):
    found = fits["robust_clean"][1].outliers_
    assert found.dead_channels.size == found.hot_channels.size == 0
    assert found.n_entries / scan["X"].size <= 1e-5  # false-alarm rate
    assert abs(fits["robust_clean"][2] - fits["clean"][2]) <= 0.01
    assert 0.9 < found.dispersion < 1.1  # Poisson counts: the rule's rate holds


def _streaks(X, rng, n=40, counts=300.0):
    """Cosmic-ray tracks: 3 to 6 neighbouring detector pixels of one pattern."""
    X, planted = X.copy(), []
    for _ in range(n):
        i, (y, x), length = rng.integers(X.shape[0]), rng.integers(3, 18, 2), rng.integers(3, 7)
        for d in range(length):
            X[i, y * DETECTOR[1] + x + d] += counts
            planted.append(i * X.shape[1] + y * DETECTOR[1] + x + d)
    return X, np.unique(planted)


def _intermittent(X, rng, channel=7 * DETECTOR[1] + 9, share=0.3):
    """One detector pixel hot (100× the mean count) in ``share`` of the patterns."""
    X = X.copy()
    rows = np.flatnonzero(rng.random(X.shape[0]) < share)
    X[rows, channel] = np.round(100 * X.mean())
    return X, rows * X.shape[1] + channel


@pytest.mark.parametrize("corruption", [_streaks, _intermittent])
def test_events_a_plain_fit_spends_a_component_on(scan, fits, corruption):
    X, planted = corruption(scan["X"], np.random.default_rng(4))
    k, truth = scan["k"], scan["truth"]
    plain = HNMF(k, loss="kl", random_state=0, max_iter=300).fit(X)
    robust = HNMF(k, loss="kl", random_state=0, max_iter=300, outliers="auto",
                  signal_grid=DETECTOR)
    W = robust.fit_transform(X)
    assert map_r(W, robust.components_, truth) >= fits["clean"][2] - 0.02
    assert map_r(plain.transform(X), plain.components_, truth) < fits["clean"][2] - 0.1
    found = robust.outliers_
    flagged = found.rows * X.shape[1] + found.cols
    assert np.isin(planted, flagged).mean() >= 0.95
    assert np.isin(flagged, planted).mean() >= 0.95


def test_lazy_equals_in_memory(scan):
    Xc, k = scan["Xc"][:288], scan["k"]
    options = dict(loss="kl", random_state=0, max_iter=100, signal_shape=DETECTOR)
    memory, found = robust_nmf(Xc, k, **options)
    lazy, found_lazy = robust_nmf(da.from_array(Xc, chunks=(50, Xc.shape[1])), k, **options)
    assert np.array_equal(found.rows, found_lazy.rows)
    assert np.array_equal(found.cols, found_lazy.cols)
    assert np.array_equal(found.dead_channels, found_lazy.dead_channels)
    np.testing.assert_allclose(lazy.W, memory.W, rtol=1e-3, atol=1e-3 * memory.W.max())
    assert memory.W.dtype == np.float32


def test_frobenius_rule_finds_spikes_in_gaussian_noise():
    rng = np.random.default_rng(3)
    clean = rng.random((120, 3)) @ rng.random((3, 60)) * 10
    X = (clean + rng.normal(0, 0.1, clean.shape)).clip(0)
    planted = np.sort(rng.choice(X.size, 12, replace=False))
    X.flat[planted] += 20.0
    result, found = robust_nmf(X, 3, loss="frobenius", random_state=0, max_iter=1000)
    flagged = found.rows * X.shape[1] + found.cols
    assert np.isin(planted, flagged).all()  # recall 1
    assert flagged.size - planted.size <= 2  # false alarms: 0.7 expected at 1e-4 per entry
    assert np.abs(result.W @ result.H - clean).max() < 0.5  # spikes (+20) left out


def test_hyperspy_signals_and_summary(scan, capsys, tmp_path):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(scan["Xc"].reshape(SCAN + DETECTOR))
    s.decomposition(algorithm="hnmf", output_dimension=scan["k"], loss="kl", outliers="auto",
                    random_state=0, max_iter=100)
    assert "Outliers: " in capsys.readouterr().out
    per_position, per_channel, entries = get_outliers(s)
    assert per_position.data.shape == SCAN and per_channel.data.shape == DETECTOR
    assert per_channel.data[:, DEAD_COLUMN].tolist() == [np.prod(SCAN)] * DETECTOR[0]
    assert per_position.data.sum() == entries["navigation_index"].size + np.prod(SCAN) * 24
    s.save(tmp_path / "robust.hspy")
    loaded = get_outliers(hs.load(tmp_path / "robust.hspy"))
    assert np.array_equal(loaded[0].data, per_position.data)
    assert np.array_equal(loaded[2]["signal_index"], entries["signal_index"])
    s.decomposition(algorithm="hnmf", output_dimension=2, loss="kl", print_info=False)
    with pytest.raises(ValueError, match="was not robust"):
        get_outliers(s)


def test_lazy_signal_stores_the_same_outliers(scan):
    import hyperspy.api as hs

    data = scan["Xc"][:288].reshape((12, 24) + DETECTOR)
    signals = [hs.signals.Signal2D(data), hs.signals.Signal2D(da.from_array(data, chunks=(
        5, 24) + DETECTOR)).as_lazy()]
    for s in signals:
        s.decomposition(algorithm="hnmf", output_dimension=scan["k"], loss="kl",
                        outliers="auto", random_state=0, max_iter=60, print_info=False)
    a, b = (get_outliers(s)[2] for s in signals)
    assert np.array_equal(a["navigation_index"], b["navigation_index"])
    assert np.array_equal(a["signal_index"], b["signal_index"])
    assert np.array_equal(a["dead_channels"], b["dead_channels"])


@pytest.mark.parametrize("value", [0.5, -1e-6, "yes", True, 0])
def test_bad_option_values_are_refused_before_fitting(value):
    with pytest.raises(ValueError, match=r"`outliers` must be None \(off\), 'auto' or a "
                                         r"false-alarm rate per entry in \(0, 0.01\]"):
        HNMF(2, outliers=value).fit(np.ones((6, 5)))


def test_outliers_need_a_flat_fit_with_kl_or_frobenius():
    X = np.random.default_rng(0).random((12, 8))
    with pytest.raises(ValueError, match="applies to flat fits with the Kullback-Leibler or "
                                         "Frobenius loss"):
        HNMF([4, 2], outliers="auto").fit(X)
    with pytest.raises(ValueError, match="solver='randomized'"):
        HNMF(2, outliers="auto", solver="randomized").fit(X)
    with pytest.raises(ValueError, match="scipy.sparse matrix"):
        HNMF(2, outliers="auto").fit(sp.csr_matrix(X))


def test_clean_counts_flag_no_hot_channel_beside_channels_that_saw_nothing():
    # On a 32 x 32 detector at 200 e-/pattern, outer pixels hold 1-3 counts over the
    # whole scan next to pixels that hold none: no evidence of a hot pixel.
    s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32), random_state=0)
    s.decomposition(algorithm="hnmf", output_dimension=4, loss="kl", outliers="auto",
                    random_state=0, print_info=False)
    found = s.learning_results.hnmf["outliers"]
    assert found["hot_channels"].size == 0
    totals = s.data.reshape(256, -1).sum(axis=0)
    assert totals.min() == 0 and np.sort(totals)[:50].max() <= 3  # the dim outer pixels


# --- whole channels: lines and points, judged against neighbours that exist ------------

def _totals(detector, dose, seed, n_phases=2):
    s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=detector, dose=dose,
                         n_phases=n_phases, random_state=seed)
    X = s.data.reshape(256, -1).astype(np.float64)
    return X, 1.0 / X.size


CLEAN_SETTINGS = [((16, 16), 2000, 1, 2), ((16, 16), 200, 0, 4), ((16, 24), 2000, 0, 2),
                  ((16, 24), 20000, 1, 2), ((24, 24), 2000, 0, 4), ((32, 32), 200, 1, 2)]


def test_clean_scans_with_pixel_scale_structure_flag_no_channel():
    # Coarse detectors sample the diffraction spots with one or two pixels, and the
    # pattern falls off towards the detector's edges. The rule of "all neighbours but
    # two" flagged 20 channels on these six clean scans (8 on the first alone).
    flagged = {}
    for detector, dose, seed, n_phases in CLEAN_SETTINGS:
        X, alpha = _totals(detector, dose, seed, n_phases)
        dead, hot = bad_channels(X.sum(axis=0), detector, alpha, True)
        flagged[(detector, dose, seed)] = dead.size + hot.size
    assert sum(flagged.values()) == 0, flagged


def test_clean_robust_fit_on_a_coarse_detector_keeps_every_channel():
    s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(16, 16), dose=2000,
                         random_state=1)
    X = s.data.reshape(256, -1).astype(np.float32)
    _, found = robust_nmf(X, 3, loss="kl", random_state=0, max_iter=200, signal_shape=(16, 16))
    assert found.dead_channels.size == found.hot_channels.size == 0


def _plant(X, detector, dead_points, dead_column, rows, hot_points, rng):
    X = X.copy()
    image = X.reshape(X.shape[0], *detector)
    for r, c in dead_points:
        image[:, r, c] = 0
    image[:, rows, dead_column] = 0
    for r, c in hot_points:
        image[:, r, c] += rng.poisson(20 * X.mean(), X.shape[0])
    return X


def _cells(indices, detector):
    return sorted(tuple(int(v) for v in divmod(j, detector[1])) for j in indices)


@pytest.mark.parametrize("detector, column, rows", [
    ((24, 24), 12, slice(None)),      # a whole column
    ((24, 24), 1, slice(None)),       # next to the edge: the edge column stays live
    ((24, 24), 23, slice(None)),      # the edge column itself (one side only)
    ((24, 24), 9, slice(0, 12)),      # half a column (one chip of two)
    ((16, 24), 5, slice(4, 16)),
])
def test_planted_dead_lines_and_pixels_are_found_exactly(detector, column, rows):
    X, alpha = _totals(detector, 20000, 0)
    rng = np.random.default_rng(2)
    image = X.sum(axis=0).reshape(detector)
    # dead and hot points where the pattern is bright enough to tell (and off the line)
    live = np.argwhere(image >= 200)
    live = live[np.abs(live[:, 1] - column) > 1]
    picks = live[rng.choice(len(live), 5, replace=False)]
    dead_points, hot_points = [tuple(p) for p in picks[:3]], [tuple(p) for p in picks[3:]]
    truth_image = X.sum(axis=0).reshape(detector)
    hot_points = [p for p in hot_points  # hot means 10x above every neighbour
                  if 20 * X.mean() * X.shape[0] > 10 * truth_image[
                      max(p[0] - 1, 0): p[0] + 2, max(p[1] - 1, 0): p[1] + 2].max()]
    Xc = _plant(X, detector, dead_points, column, rows, hot_points, rng)
    dead, hot = bad_channels(Xc.sum(axis=0), detector, alpha, True)
    line = [(int(r), column) for r in np.arange(detector[0])[rows]]
    # zero counts must be unlikely (a tenth of that level for the edge, judged on one side)
    enough = 300 if column in (0, detector[1] - 1) else 30
    expected_line = [p for p in line if image[p] >= enough]
    assert set(expected_line) <= set(_cells(dead, detector))
    assert set(dead_points) <= set(_cells(dead, detector))
    assert set(_cells(dead, detector)) <= set(line) | set(dead_points)
    assert _cells(hot, detector) == sorted(hot_points)


def test_a_disk_edge_and_a_dim_detector_edge_are_not_defects():
    # A bright-field disk 100x brighter than the dark field around it, and a detector
    # whose outermost column is 20x dimmer than the next one (a fall-off, not a defect).
    yy, xx = np.mgrid[:32, :32]
    image = np.where((yy - 16) ** 2 + (xx - 15.5) ** 2 < 10 ** 2, 5000.0, 50.0)
    image[:, 0] = image[:, 1] / 20
    dead, hot = bad_channels(image.ravel(), (32, 32), 1e-7, True)
    assert dead.size == hot.size == 0


def test_spectrum_rule_one_sided_at_the_ends_and_dead_pairs_found():
    # An EELS-like spectrum that starts just below the zero-loss peak, with a dead pair.
    spectrum = np.full(64, 800.0)
    spectrum[:6] = [40.0, 900.0, 20000.0, 25000.0, 18000.0, 900.0]
    spectrum[30:32] = 0.0
    dead, hot = bad_channels(spectrum, None, 1e-6, True)
    assert dead.tolist() == [30, 31] and hot.size == 0
