"""Rank selection, stability and consensus components (issue 7)."""

import re

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pytest
import scipy.sparse as sp

import hyperspy_hnmf
from hyperspy_hnmf.constraints import (ContinuousIntensity, MapResolution, Penalty, Projection,
                                       dip_score, signal_grids)
from hyperspy_hnmf.data import synthetic_spectrum_image
from hyperspy_hnmf.rank_selection import (
    match_restart_components,
    cluster_silhouettes,
    consensus_matrix,
    cophenetic_correlation,
    estimate_rank,
    iq_index,
    knee,
    stability,
)
from hyperspy_hnmf.rank_selection._estimate import recommend


def planted(k=4, n=240, m=60, scale=60.0, seed=0, dtype="float32"):
    """Poisson counts of k sparse patterns with sparse, overlapping maps."""
    rng = np.random.default_rng(seed)
    H = rng.random((k, m)) ** 6
    H /= H.sum(axis=1, keepdims=True)
    W = rng.random((n, k)) ** 3
    W[np.arange(n), rng.integers(k, size=n)] += 1.0
    X = rng.poisson(W @ H * scale * m / 4).astype(dtype)
    return X, H


@pytest.fixture(scope="module")
def planted_result():
    X, H = planted()
    return X, H, estimate_rank(X, ranks=range(2, 8), n_restarts=6, random_state=1)


# -- bad input ----------------------------------------------------------------

def test_empty_ranks():
    with pytest.raises(ValueError, match=r"^ranks is empty: give the candidate numbers of "
                                         r"components, e\.g\. ranks=range\(2, 11\)\.$"):
        estimate_rank(np.ones((10, 8)), ranks=[])


def test_unsorted_ranks():
    with pytest.raises(ValueError, match=r"^ranks must be strictly increasing, got \[3, 2\]; "
                                         r"use sorted\(set\(ranks\)\) = \[2, 3\]\.$"):
        estimate_rank(np.ones((10, 8)), ranks=[3, 2])
    with pytest.raises(ValueError, match="strictly increasing"):
        estimate_rank(np.ones((10, 8)), ranks=[2, 2, 3])


def test_ranks_beyond_data_size():
    message = ("rank {} exceeds the data size: data of shape {} (probe positions × signal "
               "pixels) allow at most {} components. Pass smaller ranks, e.g. {} (the default "
               "ranks are range(2, 11)).")
    for X, ranks, expected in [(np.ones((10, 8)), [2, 9], (9, (10, 8), 8, "ranks=range(2, 9)")),
                               (np.ones((6, 40)), range(2, 11),
                                (10, (6, 40), 6, "ranks=range(2, 7)")),
                               (np.ones((1, 40)), range(2, 11),
                                (10, (1, 40), 1, "ranks=[1]"))]:
        with pytest.raises(ValueError, match="^" + re.escape(message.format(*expected)) + "$"):
            estimate_rank(X, ranks=ranks)


def test_nonpositive_ranks():
    with pytest.raises(ValueError, match=r"ranks must be positive integers, got 0"):
        estimate_rank(np.ones((10, 8)), ranks=[0, 2])


@pytest.mark.parametrize("n_restarts", [1, 0])
def test_too_few_restarts(n_restarts):
    with pytest.raises(ValueError, match=rf"^n_restarts must be at least 2, got {n_restarts}: "
                                         r"stability compares the components of several runs "
                                         r"\(10 or more recommended\)\.$"):
        estimate_rank(np.ones((10, 8)), ranks=[2], n_restarts=n_restarts)


def test_bad_perturbation():
    with pytest.raises(ValueError, match="perturbation must be one of"):
        estimate_rank(np.ones((10, 8)), ranks=[2], perturbation="jitter")
    with pytest.raises(ValueError, match="not integers"):
        estimate_rank(np.full((10, 8), 0.5), ranks=[2], perturbation="poisson")


def test_negative_data():
    with pytest.raises(ValueError, match="negative"):
        estimate_rank(-np.ones((10, 8)), ranks=[2])


# -- scores ---------------------------------------------------------------------

def test_clustering_undoes_the_permutations_of_the_runs():
    rng = np.random.default_rng(0)
    base = rng.random((4, 30)) ** 6
    perms = [rng.permutation(4) for _ in range(5)]
    runs = np.stack([base[p] + 0.01 * rng.random((4, 30)) for p in perms])
    labels, centroids = match_restart_components(runs)
    # Components from the same base pattern share a label in every run.
    for r, p in enumerate(perms):
        assert np.array_equal(labels[r][np.argsort(p)], labels[0][np.argsort(perms[0])])
    assert np.all(np.sort(labels, axis=1) == np.arange(4))
    assert cluster_silhouettes(runs, labels).min() > 0.9
    assert iq_index(runs, labels).min() > 0.5


def test_random_components_score_low():
    runs = np.random.default_rng(1).random((6, 4, 30))
    labels, _ = match_restart_components(runs)
    assert cluster_silhouettes(runs, labels).max() < 0.3
    assert iq_index(runs, labels).max() < 0.1


def test_cophenetic_correlation_falls_with_disagreement():
    agree = consensus_matrix(np.array([[0, 0, 1, 1, 2, 2]] * 4))
    rng = np.random.default_rng(0)
    disagree = consensus_matrix(rng.integers(3, size=(4, 6)))
    assert cophenetic_correlation(agree) == pytest.approx(1.0)
    assert cophenetic_correlation(disagree) < 0.95
    assert np.isnan(cophenetic_correlation(np.ones((4, 4))))


def test_knee_is_unit_invariant():
    x = np.arange(2, 11)
    y = np.r_[100.0, 60, 30, 10, 9, 8.5, 8.2, 8.0, 7.9]
    assert x[knee(x, y)] == 5
    assert knee(x * 7, y * 1e-3 + 5) == knee(x, y)
    assert knee([1, 2], [2.0, 1.0]) == 0


# -- estimate_rank ----------------------------------------------------------------

def test_recommends_the_planted_rank(planted_result):
    X, H, result = planted_result
    assert result.rank == 4
    assert "k=4" in result.reason
    assert result.ranks == [2, 3, 4, 5, 6, 7]
    errors = result.errors
    assert errors[0] > errors[1] > errors[2]           # falls to the true rank...
    assert np.ptp(errors[2:]) < 0.1 * (errors[0] - errors[2])   # ...then flattens
    assert result.knee_rank == 4
    assert result[4].silhouettes.min() > 0.9
    assert result[6].silhouettes.min() < result[4].silhouettes.min()


def test_consensus_components_match_the_truth(planted_result):
    X, H, result = planted_result
    st = result.stability(4)
    assert st.components.dtype == np.float32
    assert np.allclose(st.components.sum(axis=1), 1, atol=1e-5)
    similarity = (st.components / np.linalg.norm(st.components, axis=1, keepdims=True)) @ (
        H / np.linalg.norm(H, axis=1, keepdims=True)).T
    assert np.all(similarity.max(axis=0) > 0.97)
    assert np.all(np.diff(st.intensities) <= 0)    # canonical order
    assert st.stability_index.min() > 0.5


def test_true_clusters_have_higher_iq_when_k_is_overestimated(planted_result):
    X, H, result = planted_result
    scores = result[7]
    C = scores.consensus_components()
    similarity = (C / np.linalg.norm(C, axis=1, keepdims=True)) @ (
        H / np.linalg.norm(H, axis=1, keepdims=True)).T
    true = np.zeros(7, dtype=bool)
    true[similarity.argmax(axis=0)] = True
    assert true.sum() == 4
    assert scores.iq[true].min() > scores.iq[~true].max()


def test_reproducible_and_independent_of_threads():
    X, _ = planted(k=3, n=80, m=30)
    a = estimate_rank(X, ranks=[2, 3, 4], n_restarts=3, n_jobs=1, random_state=5)
    b = estimate_rank(X, ranks=[2, 3, 4], n_restarts=3, n_jobs=3, random_state=5)
    assert np.array_equal(a.errors, b.errors)
    assert np.array_equal(a[3].components, b[3].components)


def test_integer_counts_are_read_as_float32_copies_and_give_the_float32_result():
    # uint16 counts in memory: one float32 copy (exact), not float64 (twice its memory).
    import tracemalloc

    from hyperspy_hnmf.rank_selection._data import signal_matrix

    X, _ = planted(k=3, n=400, m=64, dtype="float32")
    counts = X.astype(np.uint16)
    assert signal_matrix(counts).dtype == np.float32
    assert np.array_equal(signal_matrix(counts), X)
    big = np.array([[2 ** 24 + 1, 0]], dtype=np.int64)
    assert signal_matrix(big).dtype == np.float64 and signal_matrix(big)[0, 0] == 2 ** 24 + 1
    tracemalloc.start()
    matrix = signal_matrix(counts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * X.nbytes  # a float64 copy alone is 2 * X.nbytes (measured 1.65)
    del matrix
    options = dict(ranks=[2, 3, 4], n_restarts=3, random_state=2, loss="kl", max_iter=100)
    from_counts = estimate_rank(counts, **options)
    from_float = estimate_rank(X, **options)
    assert np.array_equal(from_counts.errors, from_float.errors)
    assert from_counts.rank == from_float.rank == 3


def test_signal_input_and_exact_kl_path():
    X, H = planted(k=3, n=90, m=40)
    s = hs.signals.Signal1D(X.reshape(9, 10, 40))
    fast = estimate_rank(s, ranks=[2, 3, 4], n_restarts=3)
    assert fast.settings["compressed"] and fast.rank == 3
    kl = estimate_rank(s, ranks=[2, 3, 4], n_restarts=3, loss="kl", max_iter=300)
    assert not kl.settings["compressed"] and not kl.settings["normalized"]
    assert kl.rank == 3
    with pytest.raises(ValueError, match="compression=True needs the Frobenius loss"):
        estimate_rank(s, ranks=[2], n_restarts=2, compression=True, loss="kl")


def test_table_and_str(planted_result):
    _, _, result = planted_result
    assert len(result.table()) == 7
    assert "recommended rank 4" in str(result)


# -- writing the consensus ----------------------------------------------------------

def test_consensus_to_learning_results():
    X, H = planted(k=3, n=90, m=40)
    s = hs.signals.Signal1D(X.reshape(9, 10, 40))
    st = stability(s, 3, n_restarts=4)
    st.to_learning_results(s)
    results = s.learning_results
    assert results.decomposition_algorithm == "hnmf_consensus"
    assert results.factors.shape == (40, 3) and results.loadings.shape == (90, 3)
    assert results.factors.dtype == np.float32
    model = s.get_decomposition_model().data.reshape(90, 40)
    assert np.linalg.norm(model - X) / np.linalg.norm(X) < 0.3
    assert np.allclose(results.hnmf["stability"]["stability_index"], st.stability_index)


def test_failed_write_keeps_previous_results():
    X, H = planted(k=3, n=90, m=40)
    s = hs.signals.Signal1D(X.reshape(9, 10, 40))
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False)
    before = s.learning_results.factors.copy()
    other = stability(X[:, :30], 3, n_restarts=2)
    with pytest.raises(ValueError, match="30"):
        other.to_learning_results(s)
    assert s.learning_results.decomposition_algorithm == "hnmf"
    assert np.array_equal(s.learning_results.factors, before)


@pytest.mark.mpl_image_compare(baseline_dir="baseline", tolerance=5)
def test_plot_rank_estimate(planted_result):
    return planted_result[2].plot(figsize=(8, 6))


@pytest.mark.parametrize("perturbation", ["poisson", 0.1, "none"])
def test_perturbations_keep_the_planted_rank(perturbation):
    X, _ = planted(k=3, n=120, m=40)
    result = estimate_rank(X, ranks=[2, 3, 4, 5], n_restarts=4, perturbation=perturbation)
    assert result.rank == 3
    assert result[3].silhouettes.min() > 0.9
    assert result[5].silhouettes.min() < 0.5


# -- constraints on a signal: the grids of its axes ----------------------------------

@pytest.fixture(scope="module")
def spectrum_image():
    return synthetic_spectrum_image(scan_shape=(16, 16), n_channels=128, random_state=0)


def test_map_constraints_take_the_navigation_grid_of_the_signal(spectrum_image):
    s = spectrum_image
    shapes = []

    def record(maps):
        shapes.append(maps.shape)
        return maps

    result = estimate_rank(s, ranks=[2, 3], n_restarts=2, max_iter=30,
                           constraints=[MapResolution(2.0), Projection(record, on="maps",
                                                                       components=[0])])
    navigation, signal = signal_grids(s)
    assert result.settings["options"]["map_grid"] == navigation
    assert result.settings["options"]["component_grid"] == signal
    assert not result.settings["compressed"]
    # The maps reach the projections on the scan grid (16 × 16), not as a column.
    assert set(shapes) == {(1, 16, 16)}
    # The Poisson weighting would reshape the maps the constraints act on.
    assert result.settings["normalized"] is False


def test_component_constraints_take_the_signal_grid(spectrum_image):
    result = estimate_rank(spectrum_image, ranks=[2, 3], n_restarts=2, max_iter=50,
                           constraints=[ContinuousIntensity(0.5)])   # keV: 6.25 channels
    assert result.settings["options"]["component_grid"].shape == (128,)
    for scores in result.scores:
        # Every run's components keep no dip deeper than the tolerance (2 %).
        assert dip_score(scores.components.reshape(-1, 128), 6.25).max() <= 0.021


def test_penalties_turn_the_poisson_weighting_off():
    X, _ = planted(k=3, n=60, m=30)
    result = estimate_rank(X, ranks=[2, 3], n_restarts=2, max_iter=30,
                           constraints=[Penalty(l1=0.01)])
    assert result.settings["normalized"] is False
    assert estimate_rank(X, ranks=[2, 3], n_restarts=2).settings["normalized"] is True


def test_a_constraint_without_its_grid_is_refused_on_an_array():
    X, _ = planted(k=3, n=64, m=30)
    message = ("MapResolution needs the shape of the maps: pass a HyperSpy signal to "
               "estimate_rank (its axes give it), or map_grid=Grid(shape, scale, units) (from "
               "hyperspy_hnmf.constraints) with an array.")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        estimate_rank(X, ranks=[2, 3], n_restarts=2, constraints=[MapResolution(2.0)])
    result = estimate_rank(X, ranks=[2, 3], n_restarts=2, max_iter=20, map_grid=(8, 8),
                           constraints=[MapResolution(2.0)])
    assert result.settings["options"]["map_grid"] == (8, 8)


# -- sparse input --------------------------------------------------------------------

@pytest.fixture
def never_densified(monkeypatch):
    """Sparse matrices that raise if anything converts them to dense arrays."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        for name in ("toarray", "todense"):
            monkeypatch.setattr(cls, name, refuse)


@pytest.mark.parametrize("options", [{"perturbation": "none"}, {"perturbation": "poisson"},
                                     {"perturbation": "none", "loss": "kl", "max_iter": 100}])
@pytest.mark.parametrize("kind", ["csr", "coo"])
def test_sparse_input_gives_the_dense_estimate(options, kind, never_densified):
    X, _ = planted(k=3, n=90, m=40)
    dense = estimate_rank(X, ranks=[2, 3, 4], n_restarts=3, **options)
    result = estimate_rank(getattr(sp, f"{kind}_matrix")(X), ranks=[2, 3, 4], n_restarts=3,
                           **options)
    assert result.rank == dense.rank == 3
    np.testing.assert_allclose(result.errors, dense.errors, rtol=1e-4)
    np.testing.assert_allclose(result[3].components, dense[3].components, rtol=0, atol=1e-5)


def test_sparse_uniform_perturbation_keeps_the_planted_rank(never_densified):
    X, _ = planted(k=3, n=120, m=40)
    result = estimate_rank(sp.csr_matrix(X), ranks=[2, 3, 4, 5], n_restarts=4)
    assert result.rank == 3 and result.settings["normalized"]
    assert result[3].silhouettes.min() > 0.9


def test_pydata_sparse_input_and_sparse_maps(never_densified):
    sparse = pytest.importorskip("sparse")
    X, _ = planted(k=3, n=90, m=40)
    dense = stability(X, 3, n_restarts=3, perturbation="none")
    st = stability(sparse.GCXS.from_numpy(X), 3, n_restarts=3, perturbation="none")
    np.testing.assert_allclose(st.components, dense.components, rtol=0, atol=1e-5)
    np.testing.assert_allclose(st.maps(sp.csr_matrix(X)), dense.maps(X), rtol=1e-4, atol=1e-3)


def test_sparse_input_of_the_wrong_dimension():
    sparse = pytest.importorskip("sparse")
    with pytest.raises(ValueError, match=r"^Expected a 2D sparse matrix \(probe positions × "
                                         r"signal pixels\), got 3D\.$"):
        estimate_rank(sparse.COO.from_numpy(np.ones((2, 3, 4))), ranks=[2])


# -- options checked before any work -------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"consensus_rows": 0}, "consensus_rows must be an integer ≥ 1, got 0."),
    ({"silhouette_threshold": 2}, "silhouette_threshold must be a real number in [-1, 1] (the "
                                  "range of silhouettes; NMFk uses 0.5), got 2."),
    ({"max_iter": 0}, "max_iter must be an integer ≥ 1, got 0."),
    ({"tol": -1.0}, "tol must be a real number ≥ 0, got -1.0."),
    ({"n_jobs": 0}, "n_jobs must be an integer ≥ 1, got 0."),
    ({"compression": "yes"}, "compression must be 'auto', True or False, got 'yes'."),
    ({"normalize_poissonian_noise": "no"}, "normalize_poissonian_noise must be True or False, "
                                           "got 'no'."),
    ({"random_state": -1}, "random_state must be None, an integer ≥ 0, a "
                           "numpy.random.Generator or a numpy.random.RandomState, got -1."),
    ({"ranks": 2.5}, "ranks must be an integer or an iterable of integers, e.g. "
                     "ranks=range(2, 11); got 2.5."),
])
def test_bad_options_are_refused_before_any_fit(options, message, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a fit started")

    monkeypatch.setattr("hyperspy_hnmf.rank_selection._estimate._restart", fail)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        estimate_rank(np.ones((10, 8)), **{"ranks": [2], "n_restarts": 2, **options})


def test_one_rank_and_a_generator_seed():
    X, _ = planted(k=3, n=60, m=30)
    result = estimate_rank(X, ranks=3, n_restarts=2, random_state=np.random.default_rng(0))
    assert result.ranks == [3]


def test_stability_checks_the_number_of_components():
    with pytest.raises(ValueError, match=r"^The number of components must be an integer ≥ 1, "
                                         r"got 2\.5\.$"):
        stability(np.ones((10, 8)), 2.5)


def test_nan_message_names_what_estimate_rank_accepts():
    X = np.ones((10, 8))
    X[2, 3] = np.nan
    message = ("The data contain NaN or infinity (1 NaN, 0 infinite values): estimate_rank "
               "needs finite data. Replace them (e.g. with 0 or a local mean), or crop them "
               "away (s.inav[...] / s.isig[...]).")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        estimate_rank(X, ranks=[2], n_restarts=2)


def test_maps_of_data_of_another_width():
    X, _ = planted(k=3, n=60, m=30)
    st = stability(X, 2, n_restarts=2)
    message = ("The data have 20 signal pixels, but the consensus components have 30: give "
               "the signal (or matrix) the stability was estimated on, or one of the same "
               "signal shape.")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        st.maps(hs.signals.Signal1D(np.ones((4, 5, 20))))


def test_consensus_is_written_to_signals_only():
    X, _ = planted(k=3, n=60, m=30)
    st = stability(X, 2, n_restarts=2)
    with pytest.raises(TypeError, match=r"^to_learning_results writes to a HyperSpy signal's "
                                        r"learning_results, got ndarray; for an array, the "
                                        r"maps are Stability\.maps\(X\) and the components "
                                        r"Stability\.components\.$"):
        st.to_learning_results(X)


def test_lazy_signals_estimate_but_maps_need_memory():
    X, _ = planted(k=3, n=90, m=40)
    lazy = hs.signals.Signal1D(X.reshape(9, 10, 40)).as_lazy()
    st = stability(lazy, 3, n_restarts=3)
    assert st.components.shape == (3, 40)
    message = ("Stability.maps does not run on lazy signals (estimate_rank and hnmfk do, on "
               "compressed copies), and it will not load the data silently. Load them with "
               "s.compute() if they fit in memory, or run it on a cropped or binned region, "
               "e.g. s.inav[:64, :64].compute() or s.rebin(scale=(1, 1, 2, 2)).compute().")
    with pytest.raises(NotImplementedError, match="^" + re.escape(message) + "$"):
        st.maps(lazy)
    with pytest.raises(NotImplementedError, match=r"^to_learning_results does not run on lazy"):
        st.to_learning_results(lazy)


@pytest.mark.parametrize("normalize", [True, False])
def test_lazy_data_of_zeros_are_refused_as_in_memory(normalize):
    message = "^X is all zeros: there is nothing to factorize"
    lazy = hs.signals.Signal1D(da.zeros((4, 5, 12), chunks=(2, 5, 12))).as_lazy()
    with pytest.raises(ValueError, match=message):
        estimate_rank(lazy, ranks=[2, 3], n_restarts=2, normalize_poissonian_noise=normalize)
    with pytest.raises(ValueError, match=message):
        estimate_rank(np.zeros((20, 12)), ranks=[2, 3], n_restarts=2,
                      normalize_poissonian_noise=normalize)


def test_plot_names_the_data_and_the_loss_of_its_error_curve():
    X, _ = planted(k=2, n=30, m=20)
    s = hs.signals.Signal1D(X.reshape(5, 6, 20))
    s.metadata.General.title = "EELS map of grain 7"
    figure = estimate_rank(s, ranks=[1, 2], n_restarts=2, max_iter=20).plot()
    assert figure._suptitle.get_text().splitlines()[:2] == [
        "EELS map of grain 7: 30 probe positions × 20 signal pixels, 2 restarts per rank",
        "Recommended number of components: k = 2"]
    assert (figure.axes[0].get_ylabel()
            == "relative error ‖X − WH‖ / ‖X‖\n(X Poisson-weighted)")
    labels = {}
    for options in ({"loss": 2.0, "solver": "mu"}, {"loss": "frobenius", "solver": "mu",
                                                     "normalize_poissonian_noise": False},
                    {"loss": "kl"}):
        result = estimate_rank(X, ranks=[2], n_restarts=2, max_iter=20, **options)
        assert result.title is None
        labels[str(options)] = result.plot().axes[0].get_ylabel()
    assert list(labels.values()) == [
        "relative error ‖X − WH‖ / ‖X‖\n(X Poisson-weighted)",
        "relative error ‖X − WH‖ / ‖X‖", "KL divergence D(X ‖ WH) (counts)"]
    assert figure.axes[0].get_title() == "(a) reconstruction error"


def test_complex_data_are_refused_not_cast_to_their_real_part():
    X, _ = planted(k=2, n=30, m=20)
    Z = X + 1j * X
    message = ("Complex data not supported by {}: the data are complex64, NMF needs real, "
               "nonnegative data, and a cast would silently drop the imaginary part. Take the "
               "modulus or the intensity first (e.g. abs(s) or abs(s)**2 for a signal, "
               "np.abs(X) for an array).")
    signal = hs.signals.ComplexSignal1D(Z.reshape(5, 6, 20))
    for data in (Z, sp.csr_matrix(Z), da.from_array(Z, chunks=10), signal, signal.as_lazy()):
        with pytest.raises(ValueError, match="^" + re.escape(message.format("estimate_rank"))):
            estimate_rank(data, ranks=[2], n_restarts=2)
    st = stability(X, 2, n_restarts=2)
    with pytest.raises(ValueError, match="^" + re.escape(message.format("Stability.maps"))):
        st.maps(Z)


def test_plot_shows_the_information_criterion_that_picks_the_rank():
    X, _ = planted(k=2, n=40, m=20)
    result = estimate_rank(X, ranks=[2, 3], n_restarts=2, max_iter=30)
    figure = result.plot()
    assert len(figure.axes) == 4
    right = figure.axes[0].child_axes[0]
    assert right.get_ylabel() == ("ΔAIC = AIC − min (lower: better fit\nonce the parameters "
                                  "are counted)")
    curve, = [line for line in figure.axes[0].lines if line.get_label().startswith("ΔAIC (")]
    # Read on the right axis, the curve is the criterion relative to its minimum.
    np.testing.assert_allclose(right._functions[0](np.asarray(curve.get_ydata())),
                               result.aic - result.aic.min(), atol=1e-6 * np.ptp(result.aic))
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend[-2:] == [
        "ΔAIC (right axis): of the stable\nranks, the lowest is recommended",
        f"ΔAIC of k = 1 (not a\ncandidate): {result.reference[1] - result.aic.min():+.4g}"]
    # β-divergences other than Frobenius and KL have no likelihood: no criterion.
    result = estimate_rank(X, ranks=[2, 3], n_restarts=2, max_iter=30, loss=0.5)
    assert result.aic is None and not result.plot().axes[0].child_axes


@pytest.mark.parametrize("scale, direction", [(1e-35, "underflow"), (1e30, "overflow")])
@pytest.mark.parametrize("lazy", [False, True])
def test_float32_data_far_from_unit_scale_give_the_rank_of_unit_data(scale, direction, lazy):
    # Counts in physical units (e.g. amperes, or summed frames): the squares of
    # float32 values of 1e-35 underflow and of 1e30 overflow. The estimate
    # must not depend on the units: the fits run in float64, with a warning.
    X, _ = planted(k=3, n=90, m=40)
    options = dict(ranks=[2, 3, 4], n_restarts=3)
    reference = estimate_rank(X.astype(np.float64), **options)
    Y = X * np.float32(scale)
    with pytest.warns(UserWarning, match=rf"^The float32 data reach .*: their products would "
                                         rf"{direction} float32, so the fit runs in float64"):
        result = estimate_rank(da.from_array(Y, chunks=30) if lazy else Y, **options)
    assert reference.rank == result.rank == 3
    assert result.scores[0].components.dtype == np.float64
    np.testing.assert_allclose(result.errors, reference.errors, rtol=5e-3)
    np.testing.assert_allclose(result.min_silhouettes[:2], reference.min_silhouettes[:2],
                               atol=0.02)


def test_no_knee_is_claimed_where_the_error_curve_has_none():
    # A concave curve (no point below its chord): the first point is not a knee.
    k, reason, supported = recommend([2, 3, 4], [1.0, 0.9, 0.5], [1.0, 1.0, 1.0], 0.5)
    assert (k, supported) == (4, True)
    assert reason == ("largest rank whose components are stable (min silhouette 1.00 >= 0.50); "
                      "the error curve has no knee (no rank below its chord)")
    assert recommend([2, 3, 4, 5], [1.0, 0.4, 0.35, 0.3], [1.0, 1.0, 1.0, 1.0], 0.5)[1] == (
        "largest rank whose components are stable (min silhouette 1.00 >= 0.50); the knee of "
        "the error curve is at k=3")
    # Two ranks have no knee: none is reported or drawn.
    X, _ = planted(k=2, n=40, m=20)
    result = estimate_rank(X, ranks=[2, 3], n_restarts=2, max_iter=30)
    assert result.knee_rank is None
    legend = [text.get_text() for text in result.plot().axes[0].get_legend().get_texts()]
    assert not [text for text in legend if "knee" in text]


def test_information_criterion_ignores_pixels_and_positions_without_counts():
    # Dead or masked detector pixels and blanked probe positions are all-zero
    # columns and rows: every rank fits them exactly, and they must not move
    # the criterion (counted, they tripled the data and made every extra
    # component look worth its parameters).
    X, _ = planted(k=3, n=90, m=40)
    X = X[:, X.sum(axis=0) > 0]
    padded = np.zeros((120, 200), dtype=X.dtype)
    padded[:90, :X.shape[1]] = X
    options = dict(ranks=range(2, 7), n_restarts=3, perturbation="none")
    plain, with_zeros = estimate_rank(X, **options), estimate_rank(padded, **options)
    assert plain.settings["aic_shape"] == with_zeros.settings["aic_shape"] == X.shape
    assert int(np.argmin(plain.aic)) == int(np.argmin(with_zeros.aic)) == 1  # k = 3
    np.testing.assert_allclose(with_zeros.aic - with_zeros.aic.min(),
                               plain.aic - plain.aic.min(), atol=0.05 * np.ptp(plain.aic))
    lazy = estimate_rank(da.from_array(padded, chunks=(40, 200)), **options)
    assert lazy.settings["aic_shape"] == X.shape


@pytest.mark.parametrize("call", ["estimate_rank", "stability", "hnmfk"])
def test_init_is_refused_not_silently_replaced(call, monkeypatch):
    # init="nndsvd" used to switch to the slow exact fits, which then started at
    # random anyway (and from one start instead of the best of four).
    from hyperspy_hnmf.hierarchy import hnmfk

    monkeypatch.setattr(hyperspy_hnmf.rank_selection._fits, "fit_exact", None)
    monkeypatch.setattr(hyperspy_hnmf.rank_selection._fits, "fit_compressed", None)
    X, _ = planted(k=2, n=40, m=20)
    run = {"estimate_rank": lambda: estimate_rank(X, ranks=[2, 3], init="nndsvd"),
           "stability": lambda: stability(X, 2, init="nndsvd"),
           "hnmfk": lambda: hnmfk(X, ranks=[2, 3], init="nndsvd")}[call]
    where = "hnmfk" if call == "hnmfk" else "estimate_rank"
    message = (f"{where} chooses the starts itself, so that the restarts differ: each run is "
               "the best of 4 fits, one started by SPA and three at random (fits with other "
               "losses, solvers or constraints: random starts); remove init "
               "(got init='nndsvd').")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        run()


@pytest.mark.parametrize("options", [{}, {"solver": "mu", "max_iter": 20}])
def test_scores_of_a_rank_do_not_depend_on_the_smaller_ranks_tried(options):
    # Each rank's fits draw from their own generator: adding rank 2 to the
    # candidates leaves the fits of ranks 3 and 4 as they were.
    X, _ = planted(k=3, n=60, m=30)
    wide = estimate_rank(X, ranks=[2, 3, 4], n_restarts=3, **options)
    narrow = estimate_rank(X, ranks=[3, 4], n_restarts=3, **options)
    for k in (3, 4):
        np.testing.assert_array_equal(wide[k].errors, narrow[k].errors)
        np.testing.assert_array_equal(wide[k].silhouettes, narrow[k].silhouettes)
    np.testing.assert_array_equal(wide.aic[1:], narrow.aic)
