"""Joint decomposition: shared maps across modalities, known components, pure regions.

The residual check of known components: tests/test_known.py.
"""

import dask.array as da
import numpy as np
import pytest

import hyperspy_hnmf
from hyperspy_hnmf.constraints import KnownComponent, MapResolution, PureRegion, out_of_band_fraction
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_joint
from hyperspy_hnmf.solvers import joint_nmf, noise_variance


def joint_score(W, Hs, truths):
    factors = np.vstack([H.T / H.sum(axis=1) for H in Hs])
    return score_decomposition(factors, W, np.vstack([t.factors for t in truths]),
                               truths[0].loadings, names=truths[0].names)


@pytest.fixture(scope="module")
def planted():
    dp, eds = synthetic_joint(scan_shape=(32, 32), detector_shape=(24, 24), n_channels=128)
    return dp, eds, get_ground_truth(dp), get_ground_truth(eds)


@pytest.fixture(scope="module")
def small():
    return synthetic_joint(scan_shape=(12, 12), detector_shape=(16, 16), n_channels=64,
                           random_state=3)


def test_joint_fit_sees_what_each_modality_alone_cannot(planted):
    dp, eds, tA, tB = planted
    XA, XB = dp.data.reshape(1024, -1), eds.data.reshape(1024, -1)
    r_A = joint_score(*_fit([XA]), [tA]).map_correlation
    r_B = joint_score(*_fit([XB]), [tB]).map_correlation
    r_joint = joint_score(*_fit([XA, XB]), [tA, tB]).map_correlation
    # components: matrix, alpha, beta (same diffraction), gamma, delta (same spectrum)
    assert r_joint.mean() >= 0.95, r_joint
    assert r_A[1:3].min() <= 0.8, r_A
    assert r_B[3:5].min() <= 0.8, r_B
    assert min(r_joint[1:]) >= 0.98


def _fit(blocks, **options):
    result = joint_nmf(blocks, 5, max_iter=1000, tol=1e-7, random_state=0, **options)
    return result.W, result.H


def test_lazy_joint_fit_equals_in_memory(small):
    dp, eds = small
    blocks = [s.data.reshape(144, -1) for s in (dp, eds)]
    eager = joint_nmf(blocks, 5, max_iter=60, tol=0, random_state=0)
    lazy = joint_nmf([da.from_array(b, chunks=(50, -1)) for b in blocks], 5, max_iter=60,
                     tol=0, random_state=0)
    assert np.linalg.norm(lazy.W - eager.W) / np.linalg.norm(eager.W) < 1e-4
    for H_lazy, H in zip(lazy.H, eager.H):
        assert np.linalg.norm(H_lazy - H) / np.linalg.norm(H) < 1e-4


def test_objective_decreases_and_contributions_sum_to_one(small):
    dp, eds = small
    result = joint_nmf([s.data.reshape(144, -1) for s in (dp, eds)], 5, max_iter=80, tol=0,
                       random_state=0)
    assert np.all(np.diff(result.objective) <= 1e-9 * result.objective[0])
    assert result.betas == [1.0, 1.0]
    np.testing.assert_allclose(result.contributions.sum(), 1.0)
    np.testing.assert_allclose(result.contributions,
                               result.weights * result.divergences
                               / (result.weights * result.divergences).sum())


def test_noise_weights_use_the_noise_variance_of_frobenius_data():
    rng = np.random.default_rng(0)
    W = rng.random((300, 2))
    counts = rng.poisson(20 * W @ rng.random((2, 40))).astype(float)
    smooth = W @ np.vstack([np.linspace(0, 1, 60), np.linspace(1, 0, 60)])
    gaussian = smooth + rng.normal(0, 0.05, smooth.shape)
    result = joint_nmf([counts, np.maximum(gaussian, 0)], 2, loss=["kl", "frobenius"],
                       max_iter=5, random_state=0)
    ratio = result.weights[1] / result.weights[0]
    assert ratio == pytest.approx(1 / noise_variance(np.maximum(gaussian, 0)))
    assert ratio == pytest.approx(1 / 0.05**2, rel=0.15)
    balanced = joint_nmf([counts, np.maximum(gaussian, 0)], 2, loss=["kl", "frobenius"],
                         weights="balanced", max_iter=5, random_state=0)
    assert balanced.weights[1] / balanced.weights[0] == pytest.approx(ratio * 40 / 60)


def test_auto_loss_is_kl_for_counts_and_frobenius_otherwise():
    rng = np.random.default_rng(1)
    X = rng.poisson(5, (20, 10)).astype(np.float32)
    result = joint_nmf([X, X + 0.5], 2, max_iter=3, random_state=0)
    assert result.betas == [1.0, 2.0]


def test_map_constraints_act_on_the_shared_maps(small):
    dp, eds = small
    result = joint_nmf([s.data.reshape(144, -1) for s in (dp, eds)], 5, max_iter=40,
                       constraints=[MapResolution(4)], map_grid=(12, 12), random_state=0)
    maps = result.W.T.reshape(5, 12, 12)
    assert out_of_band_fraction(maps, 4).max() < 1e-3


def test_signals_get_their_own_results_and_save_and_load(small, tmp_path):
    dp, eds = (s.deepcopy() for s in small)
    info = hyperspy_hnmf.joint_decomposition([dp, eds], 5, max_iter=60, print_info=False,
                                             return_info=True)
    for b, signal in enumerate((dp, eds)):
        results = signal.learning_results
        assert results.decomposition_algorithm == "hnmf_joint"
        np.testing.assert_allclose(results.factors.sum(axis=0), 1.0, rtol=1e-6)
        model = signal.get_decomposition_model().data.reshape(144, -1)
        np.testing.assert_allclose(model, info.W @ info.H[b], rtol=1e-5, atol=1e-8)
        assert results.hnmf["joint"]["dataset"] == b
    # the shared maps are the same up to a scale per component
    ratio = dp.learning_results.loadings / eds.learning_results.loadings
    np.testing.assert_allclose(ratio / ratio[0], 1.0, rtol=1e-6)
    dp.save(tmp_path / "dp.hspy")
    import hyperspy.api as hs

    loaded = hs.load(tmp_path / "dp.hspy")
    np.testing.assert_allclose(loaded.learning_results.loadings, dp.learning_results.loadings)
    assert loaded.learning_results.decomposition_algorithm == "hnmf_joint"


def test_lazy_signals_give_the_in_memory_result(small):
    eager = [s.deepcopy() for s in small]
    lazy = [s.as_lazy() for s in small]
    for signals in (eager, lazy):
        hyperspy_hnmf.joint_decomposition(signals, 5, max_iter=40, tol=0, random_state=0,
                                          print_info=False)
    for a, b in zip(eager, lazy):
        np.testing.assert_allclose(b.learning_results.loadings, a.learning_results.loadings,
                                   rtol=1e-4, atol=1e-6 * np.abs(a.learning_results.loadings).max())


def test_mismatched_probe_positions_are_refused(small):
    dp, eds = small
    with pytest.raises(ValueError, match="navigation shape"):
        hyperspy_hnmf.joint_decomposition([dp, eds.inav[:6]], 5, print_info=False)
    with pytest.raises(ValueError, match="same probe positions"):
        joint_nmf([np.ones((4, 3)), np.ones((5, 3))], 1)


# -- known components and pure regions -------------------------------------------------

@pytest.mark.filterwarnings("ignore:The data contradict")
def test_fixed_known_component_stays_the_reference():
    rng = np.random.default_rng(0)
    W, H = rng.random((200, 3)) * 30, rng.random((3, 40))
    X = rng.poisson(W @ H)
    reference = rng.random(40)
    result = joint_nmf([X], 3, known_components=[KnownComponent(reference, index=1)],
                       max_iter=50, random_state=0)
    np.testing.assert_allclose(result.H[0][1] / result.H[0][1].sum(), reference / reference.sum())
    loose = joint_nmf([X], 3, known_components=[KnownComponent(reference, index=1,
                                                               tolerance=0.2)],
                      max_iter=50, random_state=0)
    shape = loose.H[0][1] / loose.H[0][1].sum()
    r = reference / reference.sum()
    assert np.linalg.norm(shape - r) <= 0.2 * np.linalg.norm(r) * (1 + 1e-9)


def test_pure_regions_zero_the_other_maps():
    rng = np.random.default_rng(0)
    X = rng.poisson(rng.random((100, 2)) @ rng.random((2, 30)) * 40)
    mask = np.zeros(100, dtype=bool)
    mask[:10] = True
    result = joint_nmf([X], 3, pure_regions=[PureRegion(mask, index=2)], max_iter=30,
                       random_state=0)
    assert np.all(result.W[:10, :2] == 0) and np.all(result.W[:10, 2] > 0)


def test_a_joint_fit_that_ends_non_finite_raises_before_anything_is_stored(monkeypatch):
    # The last guard of joint_nmf: NaN maps (here planted by a broken
    # normalization) raise NumericalError; the signal keeps no new results.
    import hyperspy.api as hs

    from hyperspy_hnmf import NumericalError
    from hyperspy_hnmf.solvers import _multiblock

    rng = np.random.default_rng(0)
    X = rng.poisson(5.0, (36, 20)).astype(np.uint16)
    s = hs.signals.Signal1D(X.reshape(6, 6, 20))

    def broken(W, Hts):
        W[:] = np.nan

    monkeypatch.setattr(_multiblock, "_normalize", broken)
    with pytest.raises(NumericalError, match="nothing was stored"):
        hyperspy_hnmf.joint_decomposition([s], output_dimension=2, max_iter=3)
    assert s.learning_results.loadings is None


# -- bad input, mixed lazy / in-memory / sparse signals ----------------------------------

ROWS = " (probe positions in scan order, row = y * width + x)"
NEGATIVE_ADVICE = (
    "NMF needs nonnegative data. Add an offset (e.g. subtract the minimum, {shift}), or, if "
    "the negative values are noise around zero (e.g. after background subtraction), set "
    "them to zero first: np.clip(X, 0, None), for a signal s.data = np.clip(s.data, 0, "
    "None) (a lazy signal stays lazy).")
FINITE_ADVICE = (
    ": NMF needs finite data. Replace them (e.g. with 0 or a local mean), or crop them "
    "away: the affected probe positions from every dataset alike (s.inav[...] on every "
    "signal), or the affected channels from this one (s.isig[...]).")


def _spoil_all(data):
    np.negative(data, out=data)


def _spoil_one(data):
    data[3, 2, 5] = -1.5


def _spoil_finite(data):
    data[0, 7, 0] = np.nan
    data[5, 1, 3] = np.inf


def _spoil_zero(data):
    data[:] = 0


BAD_EDS = {
    "negated": (_spoil_all,
                "Negative values in signal 1 of joint_decomposition ('EDS'): 6428 negative "
                f"entries (minimum -183), the first in row 0{ROWS}. "
                + NEGATIVE_ADVICE.format(shift=183)),
    "one negative entry": (_spoil_one,
                           "Negative values in signal 1 of joint_decomposition ('EDS'): 1 "
                           f"negative entries (minimum -1.5), the first in row 38{ROWS}. "
                           + NEGATIVE_ADVICE.format(shift=1.5)),
    "nan and inf": (_spoil_finite,
                    "Signal 1 of joint_decomposition ('EDS') contains NaN or infinity (1 NaN, "
                    f"1 infinite values), the first in row 7{ROWS}" + FINITE_ADVICE),
    "all zero": (_spoil_zero,
                 "Signal 1 of joint_decomposition ('EDS') is all zeros: there is nothing to "
                 "factorize. Check that the data were loaded correctly, or leave this dataset "
                 "out of the joint fit."),
}


@pytest.mark.parametrize("lazy", [False, True], ids=["in memory", "lazy"])
@pytest.mark.parametrize("case", list(BAD_EDS))
def test_bad_data_are_refused_naming_the_signal_before_any_fit(small, case, lazy, monkeypatch):
    from hyperspy_hnmf.solvers import _multiblock

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit started")

    monkeypatch.setattr(_multiblock, "_initial_factors", no_fit)
    dp, eds = (s.deepcopy() for s in small)
    dp.metadata.General.title, eds.metadata.General.title = "DP", "EDS"
    spoil, message = BAD_EDS[case]
    spoil(eds.data)
    if lazy:
        dp, eds = dp.as_lazy(), eds.as_lazy()
    with pytest.raises(ValueError) as error:
        hyperspy_hnmf.joint_decomposition([dp, eds], 3, print_info=False)
    assert str(error.value) == message
    assert dp.learning_results.loadings is None and eds.learning_results.loadings is None


def test_joint_nmf_names_bad_datasets_in_memory_sparse_and_in_sparse_chunks():
    sparse = pytest.importorskip("sparse")
    import scipy.sparse as sp

    good = np.ones((6, 4))
    bad = np.ones((6, 5))
    bad[4, 1] = np.nan
    expected = ("Dataset 1 of joint_nmf contains NaN or infinity (1 NaN, 0 infinite values), "
                f"the first in row 4{ROWS}" + FINITE_ADVICE)
    chunked = da.from_array(bad, chunks=(2, -1)).map_blocks(sparse.COO.from_numpy)
    for data in (bad, sp.csr_matrix(bad), chunked):
        with pytest.raises(ValueError) as error:
            joint_nmf([good, data], 2, max_iter=2)
        assert str(error.value) == expected
    negative = sp.csr_matrix(-np.eye(6, 3))
    with pytest.raises(ValueError) as error:
        joint_nmf([good, negative], 2, max_iter=2, names=["DP", "the EDS map"])
    assert str(error.value) == (
        "Negative values in the EDS map: 3 negative entries (minimum -1), the first in row "
        f"0{ROWS}. " + NEGATIVE_ADVICE.format(shift=1))


def _relative_difference(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _assert_same_joint_fit(eager, mixed):
    """The joint fits of both lists of signals agree (relative difference ≤ 1e-4)."""
    for signals in (eager, mixed):
        hyperspy_hnmf.joint_decomposition(signals, 5, max_iter=40, tol=0, random_state=0,
                                          print_info=False)
    for a, b in zip(eager, mixed):
        for name in ("loadings", "factors"):
            assert _relative_difference(getattr(b.learning_results, name),
                                        getattr(a.learning_results, name)) <= 1e-4


@pytest.mark.parametrize("lazy_one", [0, 1], ids=["lazy scan", "lazy spectra"])
def test_a_lazy_signal_and_one_in_memory_give_the_in_memory_fit(small, lazy_one):
    eager = [s.deepcopy() for s in small]
    mixed = [s.as_lazy() if b == lazy_one else s.deepcopy() for b, s in enumerate(small)]
    _assert_same_joint_fit(eager, mixed)


def _as_events(signal):
    """An events signal (sparse chunks) of a signal of integer counts."""
    counts = signal.data
    where = np.nonzero(counts)
    events = np.repeat(np.stack(where, axis=1), counts[where].astype(int), axis=0)
    return hyperspy_hnmf.events_to_signal(events, counts.shape[:2], counts.shape[2:], chunks=5)


@pytest.mark.parametrize("spectra", ["lazy", "in memory"])
def test_events_mix_with_dense_signals(small, spectra):
    pytest.importorskip("sparse")
    dp, eds = small
    eager = [dp.deepcopy(), eds.deepcopy()]
    mixed = [_as_events(dp), eds.as_lazy() if spectra == "lazy" else eds.deepcopy()]
    _assert_same_joint_fit(eager, mixed)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_an_in_memory_block_beside_a_lazy_one_is_read_in_place(dtype, monkeypatch):
    # The peak memory of a fit grows by far less than a float copy of the rows added to
    # the block held in memory: it is read in place, chunk by chunk.
    import tracemalloc

    import dask

    from hyperspy_hnmf.solvers import _multiblock

    # Chunks of 1 MiB stand for the 64 MiB of real data.
    monkeypatch.setattr(_multiblock, "TARGET_CHUNK_BYTES", 2**20)
    rng = np.random.default_rng(0)
    W = rng.random((3000, 3))
    lazy = rng.poisson(20 * W @ rng.random((3, 16))).astype(np.float32)
    held = rng.poisson(5 * W @ rng.random((3, 2000))).astype(dtype)

    def peak(n):
        blocks = [da.from_array(lazy[:n], chunks=(60, -1)), held[:n]]
        tracemalloc.start()
        try:
            result = joint_nmf(blocks, 3, max_iter=2, random_state=0)
            return tracemalloc.get_traced_memory()[1], result
        finally:
            tracemalloc.stop()

    with dask.config.set(num_workers=2):
        peak(120)  # (compiles the kernels)
        (smaller, _), (larger, result) = peak(1500), peak(3000)
    assert result.betas == [1.0, 1.0] and result.W.shape == (3000, 3)
    assert larger - smaller < 0.25 * 1500 * 2000 * 4, (smaller, larger)


def test_too_many_components_are_refused_with_the_sizes(small):
    dp, eds = small
    with pytest.raises(ValueError) as error:
        hyperspy_hnmf.joint_decomposition([dp, eds], 300, print_info=False)
    assert str(error.value) == (
        "output_dimension=300 is too large: it must be smaller than min(navigation size, "
        "signal sizes summed over the signals) = min(144, 256 + 64 = 320) = 144.")
    with pytest.raises(ValueError) as error:
        joint_nmf([np.ones((10, 3)), np.ones((10, 2))], 5)
    assert str(error.value) == (
        "n_components=5 is too large: it must be smaller than min(rows, columns summed over "
        "the datasets) = min(10, 3 + 2 = 5) = 5.")


COMPONENT_CONSTRAINT = (
    "{name} constrains the components, but a joint fit (joint_decomposition, joint_nmf, or a "
    "decomposition with known_components or pure_regions) shares its maps and constrains "
    "only them: MapResolution, Penalty(on='maps') and Projection(on='maps'). For components "
    "of one signal that follow this constraint, decompose that signal alone without known "
    "components or pure regions (s.decomposition(algorithm='hnmf', constraints=[...])); else "
    "leave the constraint out.")


def test_component_constraints_are_refused_by_a_joint_fit(small):
    from hyperspy_hnmf.constraints import ContinuousIntensity, Penalty

    dp, eds = (s.deepcopy() for s in small)
    for constraint, name in [(ContinuousIntensity(3, units="px"), "ContinuousIntensity"),
                             (Penalty(l1=0.1, on="components"), "Penalty")]:
        with pytest.raises(ValueError) as error:
            hyperspy_hnmf.joint_decomposition([dp, eds], 3, constraints=[constraint],
                                              print_info=False)
        assert str(error.value) == COMPONENT_CONSTRAINT.format(name=name)
    assert dp.learning_results.loadings is None


def test_map_constraints_of_joint_nmf_ask_for_map_grid():
    with pytest.raises(ValueError) as error:
        joint_nmf([np.ones((16, 3))], 1, constraints=[MapResolution(2)])
    assert str(error.value) == (
        "MapResolution needs the shape of the maps: pass map_grid=(rows, columns) of the "
        "scan, or a Grid(shape, scale, units), to joint_nmf (joint_decomposition takes it "
        "from the signals).")
