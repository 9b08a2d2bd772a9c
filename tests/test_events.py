"""Event-based detector data: event lists binned sparse, fitted without densifying.

- :func:`~hyperspy_hnmf.events.events_to_array` counts every event once, sums
  duplicates, honours the time window and refuses bad events with messages
  that name the column and the allowed range;
- fits of scipy CSR, pydata sparse and dask arrays of sparse chunks agree
  with the fits of the same data dense (relative difference ≤ 1e-5);
- a fit of events whose dense form would take 256 MiB allocates a small
  fraction of that (tracemalloc);
- :func:`hyperspy_hnmf.events_to_signal` gives a calibrated lazy signal with
  the same counts, and ``decomposition(algorithm="hnmf")`` recovers the
  planted maps from it.
"""

import tracemalloc

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from hyperspy_hnmf import HNMF, events_to_signal
from hyperspy_hnmf.events import events_to_array
from hyperspy_hnmf.solvers import nmf, streaming_nmf

sparse = pytest.importorskip("sparse")


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def dense_counts(events, scan_shape, detector_shape):
    out = np.zeros((scan_shape[0] * scan_shape[1], detector_shape[0] * detector_shape[1]))
    rows = events[:, 0].astype(int) * scan_shape[1] + events[:, 1].astype(int)
    columns = events[:, 2].astype(int) * detector_shape[1] + events[:, 3].astype(int)
    np.add.at(out, (rows, columns), 1)
    return out


def planted_events(n_events, scan_shape=(12, 10), detector_shape=(8, 9), k=3, seed=0):
    """Events drawn from a planted model; returns (events (n, 5), true maps (positions × k))."""
    rng = np.random.default_rng(seed)
    n_pos, n_pix = scan_shape[0] * scan_shape[1], detector_shape[0] * detector_shape[1]
    maps = rng.random((n_pos, k)) ** 4 + 0.01
    patterns = rng.random((k, n_pix)) ** 6 + 0.001
    patterns /= patterns.sum(axis=1, keepdims=True)
    component = rng.choice(k, n_events, p=maps.sum(0) / maps.sum())
    position = np.empty(n_events, dtype=np.int64)
    pixel = np.empty(n_events, dtype=np.int64)
    for c in range(k):
        where = component == c
        position[where] = rng.choice(n_pos, where.sum(), p=maps[:, c] / maps[:, c].sum())
        pixel[where] = rng.choice(n_pix, where.sum(), p=patterns[c])
    events = np.stack([position // scan_shape[1], position % scan_shape[1],
                       pixel // detector_shape[1], pixel % detector_shape[1],
                       rng.random(n_events)], axis=1)
    return events, maps


@pytest.fixture(scope="module")
def small():
    events, maps = planted_events(6000)
    return events, maps, (12, 10), (8, 9)


# -- binning ------------------------------------------------------------------
def test_counts_and_duplicates(small):
    events, _, scan, detector = small
    positions = events[:, :4].astype(np.uint16)
    X = events_to_array(positions, scan, detector)
    reference = dense_counts(events, scan, detector)
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32
    assert X.has_sorted_indices and X.nnz == np.count_nonzero(reference)
    np.testing.assert_array_equal(X.toarray(), reference)
    assert reference.max() > 1  # duplicates were summed
    as_dict = {name: positions[:, c] for c, name in
               enumerate(("scan_y", "scan_x", "detector_y", "detector_x"))}
    np.testing.assert_array_equal(events_to_array(as_dict, scan, detector).toarray(), reference)
    structured = np.zeros(len(events), dtype=[("scan_y", "u2"), ("scan_x", "u2"),
                                              ("detector_y", "u2"), ("detector_x", "u2"),
                                              ("time", "f8")])
    for name in as_dict:
        structured[name] = as_dict[name]
    np.testing.assert_array_equal(events_to_array(structured, scan, detector).toarray(),
                                  reference)
    chunked = events_to_array(positions, scan, detector, chunks=5)
    assert chunked.chunks == ((50, 50, 20), (72,))
    assert sp.issparse(chunked.blocks[0].compute())
    blocks = [block.compute() for block in chunked.to_delayed().ravel()]
    np.testing.assert_array_equal(sp.vstack(blocks).toarray(), reference)


def test_time_window(small):
    events, _, scan, detector = small
    X = events_to_array(events, scan, detector, time_window=(0.25, 0.5))
    kept = events[(events[:, 4] >= 0.25) & (events[:, 4] < 0.5)]
    np.testing.assert_array_equal(X.toarray(), dense_counts(kept, scan, detector))
    assert 0 < X.sum() < len(events)


def test_bad_events_are_refused_with_the_range():
    events = np.array([[0, 0, 0, 0], [1, 2, 3, 9]], dtype=np.int32)
    with pytest.raises(ValueError, match=r"^1 event\(s\) lie outside the detector width 9: "
                       r"column 'detector_x' spans 0 to 9, allowed 0 to 8\. Check "
                       r"scan_shape=\(2, 3\), detector_shape=\(4, 9\)"):
        events_to_array(events, (2, 3), (4, 9))
    with pytest.raises(ValueError, match="column 'scan_y' spans -1 to -1, allowed 0 to 1"):
        events_to_array(np.array([[-1, 0, 0, 0]]), (2, 3), (4, 9))
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['detector_x'\]"):
        events_to_array({"scan_y": [0], "scan_x": [0], "detector_y": [0]}, (2, 3), (4, 9))
    with pytest.raises(ValueError, match="non-integer positions"):
        events_to_array(np.array([[0.5, 0, 0, 0]]), (2, 3), (4, 9))
    with pytest.raises(ValueError, match="time_window needs a 'time' column"):
        events_to_array(events[:1], (2, 3), (4, 9), time_window=(0, 1))
    with pytest.raises(ValueError, match="4 or 5 columns"):
        events_to_array(np.zeros((3, 3), dtype=int), (2, 3), (4, 9))


def test_integer_counts_never_wrap_around():
    # 300 electrons on one pixel of one probe position: uint8 holds 255 and
    # once silently stored 300 mod 256 = 44.
    hot = np.tile([[0, 1, 2, 3]], (300, 1))
    with pytest.raises(ValueError, match=r"^300 events hit one detector pixel at probe position "
                       r"\(0, 1\) \(scan y, scan x\), more than dtype uint8 holds \(255\)\. "
                       r"Use a wider type"):
        events_to_array(hot, (2, 3), (4, 4), dtype=np.uint8)
    assert events_to_array(hot, (2, 3), (4, 4), dtype=np.uint16)[1, 11] == 300
    # 300 events at one position spread over 16 pixels fit uint8: exact counts.
    spread = np.stack([np.zeros(300, int), np.ones(300, int), np.arange(300) % 4,
                       np.arange(300) // 4 % 4], axis=1)
    X = events_to_array(spread, (2, 3), (4, 4), dtype=np.uint8)
    assert X.dtype == np.uint8
    np.testing.assert_array_equal(X.toarray(), dense_counts(spread, (2, 3), (4, 4)))


@pytest.mark.parametrize("kwargs, message", [
    ({"dtype": np.float16}, r"^dtype must be float32, float64 or an integer type for counts, "
                            r"got float16\.$"),
    ({"dtype": complex}, r"got complex128"),
    ({"dtype": bool}, r"got bool"),
    ({"scan_shape": (2.5, 3)}, r"^scan_shape must be two positive integers \(rows, columns\), "
                               r"got \(2\.5, 3\.0\)\.$"),
    ({"chunks": 1.5}, r"^chunks must be a positive number of scan lines, got 1\.5\.$"),
    ({"time_window": (0, 1, 2)}, r"^time_window must be two numbers \(start, stop\), "
                                 r"got \(0, 1, 2\)\.$"),
    ({"time_window": 1.0}, r"^time_window must be two numbers"),
])
def test_bad_options_are_refused_with_what_to_pass(kwargs, message):
    events = np.array([[0, 0, 0, 0, 0.5], [1, 2, 3, 3, 0.7]])
    arguments = {"scan_shape": (2, 3), "detector_shape": (4, 4), **kwargs}
    with pytest.raises(ValueError, match=message):
        events_to_array(events, **arguments)


def test_bad_event_values_are_named():
    with pytest.raises(ValueError, match=r"^Event column 'scan_y' holds 1 NaN or infinite "
                       r"position\(s\); positions must be pixel indices"):
        events_to_array(np.array([[np.inf, 0, 0, 0], [0, 0, 0, 0]]), (2, 3), (4, 4))
    times = {"scan_y": [0, 1], "scan_x": [0, 0], "detector_y": [0, 0], "detector_x": [0, 0],
             "time": np.array(["a", "b"])}
    with pytest.raises(ValueError, match=r"^The 'time' column has dtype <U1; time stamps must "
                       r"be numbers\.$"):
        events_to_array(times, (2, 3), (4, 4), time_window=(0, 1))
    times["time"] = np.array([2**60, 2**60 + 1], dtype=np.int64)
    with pytest.raises(ValueError, match=r"compared in float64, where its bounds are equal"):
        events_to_array(times, (2, 3), (4, 4), time_window=(2**60, 2**60 + 1))


@pytest.mark.parametrize("kwargs, message", [
    ({"detector_offset": (1.0,)}, r"^detector_offset must be two finite numbers, the calibrated "
                                  r"position of detector pixel \(0, 0\) as \(y, x\), "
                                  r"got \(1\.0,\)\.$"),
    ({"scan_scale": 0.0}, r"^scan_scale must be a finite nonzero number"),
    ({"detector_scale": float("nan")}, r"^detector_scale must be a finite nonzero number"),
    ({"chunks": 0}, r"^chunks must be a positive number of scan lines, got 0\.$"),
])
def test_signal_options_are_checked_before_binning(monkeypatch, kwargs, message):
    import hyperspy_hnmf._hyperspy.events as module

    def never(*args, **kwargs):
        raise AssertionError("the events were binned before the options were checked")

    monkeypatch.setattr(module, "events_to_array", never)
    with pytest.raises(ValueError, match=message):
        events_to_signal(np.array([[0, 0, 0, 0]]), (2, 3), (4, 4), **kwargs)


def test_signal_counts_every_event_in_its_metadata(monkeypatch):
    # The float32 counts were summed in float32: beyond 2**24 events the
    # recorded number was rounded (2**24 + 1 read 2**24).
    import hyperspy_hnmf._hyperspy.events as module

    binned = sp.csr_matrix((np.array([2.0**24, 1.0], dtype=np.float32), np.array([0, 1]),
                            np.array([0, 1, 2])), shape=(2, 4))
    monkeypatch.setattr(module, "events_to_array", lambda *args, **kwargs: binned)
    s = events_to_signal(np.zeros((1, 4), dtype=int), (1, 2), (2, 2))
    assert s.metadata.Acquisition_instrument.events.n_events == 2**24 + 1


# -- sparse fits == dense fits -----------------------------------------------------
@pytest.fixture(scope="module")
def counts(small):
    events, _, scan, detector = small
    X = dense_counts(events, scan, detector)  # float64: agreement limited by the method only
    rng = np.random.default_rng(3)
    W0, H0 = rng.random((X.shape[0], 3)) + 0.1, rng.random((3, X.shape[1])) + 0.1
    return X, W0, H0


@pytest.mark.parametrize("loss, solver", [("kl", "mu"), ("frobenius", "hals"),
                                          ("frobenius", "mu")])
def test_in_memory_sparse_fits_match_dense(counts, loss, solver):
    X, W0, H0 = counts
    options = dict(loss=loss, solver=solver, init=(W0, H0), max_iter=40, tol=0)
    dense = nmf(X, 3, **options)
    for data in (sp.csr_matrix(X), sparse.COO.from_numpy(X), sparse.GCXS.from_numpy(X)):
        fit = nmf(data, 3, **options)
        assert relative(fit.W, dense.W) <= 1e-5 and relative(fit.H, dense.H) <= 1e-5


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_dask_of_sparse_chunks_matches_dense(counts, loss):
    X, W0, H0 = counts
    lazy = da.from_array(X, chunks=(32, -1))
    options = dict(loss=loss, W=W0, H=H0, max_iter=40, tol=0)
    dense = streaming_nmf(lazy, 3, **options)
    coo_chunks = lazy.map_blocks(sparse.COO.from_numpy)
    csr_chunks = lazy.map_blocks(sp.csr_matrix, meta=sp.csr_matrix((0, 0)))
    for data in (coo_chunks, csr_chunks):
        fit = streaming_nmf(data, 3, **options)
        assert relative(fit.W, dense.W) <= 1e-5 and relative(fit.H, dense.H) <= 1e-5
        assert abs(fit.divergence - dense.divergence) <= 1e-8 * abs(dense.divergence)


def test_estimator_and_transform_take_every_sparse_form(small):
    events, _, scan, detector = small
    X = events_to_array(events, scan, detector)
    reference = HNMF(3, loss="kl", random_state=0, max_iter=30).fit(X.toarray())
    for data in (sparse.COO.from_scipy_sparse(X), events_to_array(events, scan, detector,
                                                                  chunks=4)):
        model = HNMF(3, loss="kl", random_state=0, max_iter=30).fit(data)
        assert np.isfinite(model.components_).all()
        maps = model.transform(data)
        assert maps.shape == (120, 3) and np.isfinite(maps).all()
    tree = HNMF(3, hierarchy="tree", loss="kl", random_state=0).fit(X)
    assert tree.components_.shape == (3, 72)
    assert relative(HNMF(3, loss="kl", random_state=0, max_iter=30).fit(X).components_,
                    reference.components_) <= 1e-4


# -- no densification ----------------------------------------------------------
def test_fit_of_events_never_densifies():
    rng = np.random.default_rng(0)
    scan, detector, n = (64, 64), (128, 128), 40_000  # dense: 4096 × 16384 float32 = 256 MiB
    events = {"scan_y": rng.integers(0, 64, n), "scan_x": rng.integers(0, 64, n),
              "detector_y": rng.integers(60, 68, n), "detector_x": rng.integers(0, 128, n)}
    dense_bytes = scan[0] * scan[1] * detector[0] * detector[1] * 4
    for chunks in (None, 16):
        X = events_to_array(events, scan, detector, chunks=chunks)
        HNMF(2, loss="kl", max_iter=1, random_state=0).fit(X)  # compile, warm caches
        tracemalloc.start()
        X = events_to_array(events, scan, detector, chunks=chunks)
        model = HNMF(2, loss="kl", max_iter=5, random_state=0).fit(X)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.isfinite(model.components_).all()
        assert peak < dense_bytes / 16, (chunks, peak)


# -- HyperSpy --------------------------------------------------------------------
def test_signal_round_trip_and_decomposition():
    events, maps = planted_events(60_000, scan_shape=(12, 10), detector_shape=(8, 9), seed=1)
    s = events_to_signal(events, (12, 10), (8, 9), chunks=5, scan_scale=2.5, scan_units="nm",
                         detector_scale=0.1, detector_units="1/nm")
    assert s._lazy and s.data.shape == (12, 10, 8, 9)
    assert type(s.data._meta).__name__ == "COO"
    nav, sig = s.axes_manager.navigation_axes, s.axes_manager.signal_axes
    assert [(a.size, a.scale, a.units) for a in nav] == [(10, 2.5, "nm"), (12, 2.5, "nm")]
    assert [(a.size, a.scale, a.units, a.offset) for a in sig] == [
        (9, 0.1, "1/nm", pytest.approx(-0.4)), (8, 0.1, "1/nm", pytest.approx(-0.4))]
    dense = s.data.map_blocks(lambda block: block.todense(), meta=np.array((), np.float32))
    np.testing.assert_array_equal(dense.compute().reshape(120, 72),
                                  dense_counts(events, (12, 10), (8, 9)))
    assert s.metadata.Acquisition_instrument.events.n_events == 60_000
    s.decomposition(algorithm="hnmf", output_dimension=3, loss="kl", max_iter=300,
                    random_state=0, print_info=False)
    loadings = s.learning_results.loadings
    r = np.corrcoef(loadings.T, maps.T)[:3, 3:]
    assert np.sort(r.max(axis=0)).min() >= 0.9
    windowed = events_to_signal(events, (12, 10), (8, 9), time_window=(0.0, 0.5))
    assert float(windowed.data.sum().compute()) == np.count_nonzero(events[:, 4] < 0.5)


def test_robust_fit_of_events_equals_the_dense_lazy_fit(small):
    # Event data (sparse chunks) go through the same outlier tests as dense chunks.
    events, _, scan_shape, detector_shape = small
    events = events.copy()
    hot = np.array([[3, 4, 2, 5, 0.5]] * 200)  # 200 events in one pixel of one pattern
    events = np.vstack([events, hot])
    signal = events_to_signal(events, scan_shape, detector_shape)
    dense = signal.deepcopy()
    dense.data = da.from_array(
        dense_counts(events, scan_shape, detector_shape).reshape(scan_shape + detector_shape),
        chunks=signal.data.chunksize)
    for s in (signal, dense):
        s.decomposition(algorithm="hnmf", output_dimension=3, loss="kl", outliers="auto",
                        random_state=0, print_info=False)
    found = signal.learning_results.hnmf["outliers"]
    assert found["hot_channels"].size + found["navigation_index"].size > 0
    for key in ("navigation_index", "signal_index", "hot_channels", "dead_channels"):
        np.testing.assert_array_equal(found[key], dense.learning_results.hnmf["outliers"][key])
    assert relative(signal.learning_results.loadings, dense.learning_results.loadings) <= 1e-5
