"""Integer counts held in memory: read in place, in passes, never converted whole to floats.

A NumPy array of counts (uint8, uint16...) goes through the code that reads a
dask array (:func:`hyperspy_hnmf.matrix.held_matrix`): the fit takes the
memory of its factors, not a float copy of the data, agrees with the fit of
the same counts as float32 (same start or same seed), and is bit-identical
to the fit of the same counts as a dask array with the same chunks and power
iterations. In-memory
integer signals decompose through the same path (HyperSpy's own
``decomposition`` takes floats only).
"""

import tracemalloc

import dask.array as da
import numpy as np
import pytest

import hyperspy_hnmf  # noqa: F401  (registers algorithm="hnmf")
from hyperspy_hnmf import HNMF
from hyperspy_hnmf.data import synthetic_4dstem
from hyperspy_hnmf.matrix import StreamedMatrix, compute_dtype, held_counts, held_matrix
from hyperspy_hnmf.matrix.compact import CompactChunk, HeldChunk
from hyperspy_hnmf.matrix.streamed import IN_MEMORY_POWER_ITERATIONS, TARGET_CHUNK_BYTES
from hyperspy_hnmf.solvers import nmf, solve_loadings


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def scan():
    s = synthetic_4dstem(scan_shape=(16, 14), detector_shape=(16, 16), random_state=4,
                         dtype="uint16")
    return s


def start(n, m, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, k)).astype(np.float32) + 0.1,
            rng.random((k, m)).astype(np.float32) + 0.1)


def test_held_matrix_reads_views_of_the_array_and_keeps_mostly_zero_chunks_as_csr():
    rng = np.random.default_rng(0)
    dense = rng.poisson(3.0, (40, 50)).astype(np.uint16)
    sparse = (rng.random((40, 50)) < 0.02).astype(np.uint16)
    X = np.vstack([dense, sparse])
    M = held_matrix(X, target_bytes=40 * 50 * 4)  # 40 rows per chunk
    assert M.n_chunks == 2
    assert isinstance(M._compact[0], HeldChunk) and np.shares_memory(M._compact[0].values, X)
    assert isinstance(M._compact[1], CompactChunk)
    assert M.compact_bytes == M._compact[1].nbytes  # the views take nothing
    B = rng.random((50, 3)).astype(np.float32)
    np.testing.assert_allclose(M @ B, X.astype(np.float32) @ B, rtol=1e-6)
    np.testing.assert_allclose(M.T @ B[:3].T.repeat(80 // 3 + 1, axis=0)[:80],
                               X.T.astype(np.float32) @ B[:3].T.repeat(27, axis=0)[:80],
                               rtol=1e-5)
    assert M.dtype == np.float32 and M.array.dtype == np.uint16


def test_statistics_of_kept_mostly_zero_counts_are_exact_without_densifying(monkeypatch):
    rng = np.random.default_rng(1)
    X = (rng.random((300, 400)) < 0.03).astype(np.uint16) * rng.integers(1, 9, (300, 400),
                                                                          dtype=np.uint16)
    M = held_matrix(X, target_bytes=100 * 400 * 4)
    assert all(isinstance(chunk, CompactChunk) for chunk in M._compact.values())

    def refuse(self):
        raise AssertionError("a kept mostly-zero chunk was densified")

    monkeypatch.setattr(CompactChunk, "dense", refuse)
    rows, columns, norm2 = M.statistics()
    np.testing.assert_array_equal(rows, X.sum(axis=1, dtype=np.float64))
    np.testing.assert_array_equal(columns, X.sum(axis=0, dtype=np.float64))
    assert norm2 == float((X.astype(np.float64) ** 2).sum())


def test_held_matrix_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="held_matrix needs a 2D NumPy array of integers, "
                                         "got ndarray float32"):
        held_matrix(np.ones((3, 2), dtype=np.float32))
    assert held_counts(np.ones((3, 2), dtype=np.uint8))
    assert not held_counts(np.ones((3, 2, 2), dtype=np.uint8))
    assert not held_counts(da.ones((3, 2), dtype=np.uint8, chunks=1))


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_counts_in_memory_fit_as_the_same_counts_as_a_dask_array(scan, loss):
    X = scan.data.reshape(224, 256)
    rows = TARGET_CHUNK_BYTES // (4 * 256)  # held_matrix's chunks: one here
    held = HNMF(5, loss=loss, random_state=0, max_iter=30)
    W = held.fit_transform(X)
    lazy = HNMF(5, loss=loss, random_state=0, max_iter=30)
    chunked = StreamedMatrix(da.from_array(X, chunks=(rows, -1)))
    chunked.power_iterations = IN_MEMORY_POWER_ITERATIONS  # (a file's data take fewer)
    W_lazy = lazy.fit_transform(chunked)
    np.testing.assert_array_equal(W, W_lazy)
    np.testing.assert_array_equal(held.components_, lazy.components_)
    assert held.passes_ == lazy.passes_ > 30


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_counts_in_memory_agree_with_their_float32_copy_from_the_same_start(scan, loss,
                                                                            dtype):
    X = scan.data.reshape(224, 256).astype(dtype)
    W0, H0 = start(224, 256, 4)
    held = HNMF(4, loss=loss, init=(W0, H0), max_iter=40, tol=0)
    W = held.fit_transform(X)
    eager = HNMF(4, loss=loss, init=(W0, H0), max_iter=40, tol=0)
    W_float = eager.fit_transform(X.astype(np.float32))
    assert held.passes_ > 0 and not hasattr(eager, "passes_")
    assert W.dtype == held.components_.dtype == compute_dtype(dtype)
    assert relative(W @ held.components_, W_float @ eager.components_) <= 1e-4
    assert relative(held.objective_history_, eager.objective_history_) <= 1e-4
    np.testing.assert_array_equal(X, scan.data.reshape(224, 256).astype(dtype))  # untouched


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_same_random_state_same_fit_as_the_float32_copy(scan, loss):
    # The default initialization of counts read in place takes the power
    # iterations of the same array in memory: the fits agree up to rounding.
    X = scan.data.reshape(224, 256)
    held = HNMF(4, loss=loss, random_state=3).fit(X)
    eager = HNMF(4, loss=loss, random_state=3).fit(X.astype(np.float32))
    assert held.n_iter_ == eager.n_iter_
    assert relative(held.components_, eager.components_) <= 1e-4


def test_counts_in_memory_take_no_float_copy():
    rng = np.random.default_rng(0)
    X = rng.poisson(2.0, (16384, 2048)).astype(np.uint16)  # 64 MiB; 128 MiB as float32
    HNMF(3, random_state=0, max_iter=2).fit(X[:256])  # compile the kernels
    tracemalloc.start()
    model = HNMF(3, random_state=0, max_iter=3, tol=0).fit(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    float_bytes = X.size * 4
    # The float32 copy alone took 1.0 of float_bytes; now the temporaries of
    # row blocks (about 20 MiB per thread, whatever the data's size) and the
    # factors remain: 0.39 of float_bytes here, with two threads.
    assert peak < 0.5 * float_bytes, peak / float_bytes
    assert model.passes_ > 3


def test_transform_and_solve_loadings_read_counts_in_place(scan):
    X = scan.data.reshape(224, 256)
    model = HNMF(4, random_state=0, max_iter=30).fit(X.astype(np.float32))
    W = model.transform(X)
    W_float = model.transform(X.astype(np.float32))
    assert relative(W, W_float) <= 1e-5
    loadings = solve_loadings(X, model.components_, loss="kl", max_iter=50)
    np.testing.assert_allclose(
        loadings, solve_loadings(X.astype(np.float32), model.components_, loss="kl",
                                 max_iter=50), rtol=1e-4, atol=1e-3)


def test_nmf_reads_counts_in_place_and_converts_them_for_other_losses(scan):
    X = scan.data.reshape(224, 256)
    W0, H0 = start(224, 256, 3)
    calls = []
    original = StreamedMatrix.map_chunks

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    StreamedMatrix.map_chunks = counting
    try:
        kl = nmf(X, 3, loss="kl", init=(W0, H0), max_iter=10, tol=0)
        assert len(calls) >= 10  # read in passes
        calls.clear()
        itakura = nmf(X + 1, 3, loss="is", init=(W0, H0), max_iter=10, tol=0)
        assert not calls  # β = 0: converted to float32, as before
    finally:
        StreamedMatrix.map_chunks = original
    reference = nmf(X.astype(np.float32), 3, loss="kl", init=(W0, H0), max_iter=10, tol=0)
    assert relative(kl.W @ kl.H, reference.W @ reference.H) <= 1e-4
    same = nmf((X + 1).astype(np.float32), 3, loss="is", init=(W0, H0), max_iter=10, tol=0)
    np.testing.assert_array_equal(itakura.W, same.W)


def test_in_memory_integer_signal_decomposes_in_place(scan):
    s = scan.deepcopy()
    before = s.data.copy()
    W0, H0 = start(224, 256, 4)
    s.decomposition(algorithm="hnmf", output_dimension=4, init=(W0, H0), max_iter=40, tol=0,
                    print_info=False)
    f = scan.deepcopy()
    f.change_dtype("float32")
    f.decomposition(algorithm="hnmf", output_dimension=4, init=(W0, H0), max_iter=40, tol=0,
                    print_info=False)
    assert s.data.dtype == np.uint16
    np.testing.assert_array_equal(s.data, before)
    results, reference = s.learning_results, f.learning_results
    assert results.hnmf["loss"] == "kullback-leibler" and results.hnmf["passes"] > 40
    assert relative(results.loadings @ results.factors.T,
                    reference.loadings @ reference.factors.T) <= 1e-4
    model = s.get_decomposition_model()
    assert model.data.shape == s.data.shape and np.isfinite(model.data).all()


def test_integer_signal_options_that_need_floats_are_refused_before_any_change(scan):
    s = scan.deepcopy()
    s.decomposition(algorithm="hnmf", output_dimension=3, max_iter=5, print_info=False)
    factors = s.learning_results.factors.copy()
    mask = np.zeros(s.axes_manager.navigation_shape[::-1], dtype=bool)
    with pytest.raises(ValueError) as error:
        s.decomposition(algorithm="hnmf", output_dimension=3, navigation_mask=mask)
    assert str(error.value) == (
        "navigation_mask is not supported with algorithm='hnmf' on integer counts held in "
        "memory (uint16, read in place in passes, as lazy signals are). Crop the signal "
        "(s.inav[...], s.isig[...]) instead of masking; for counted data use loss='kl' "
        "instead of Poisson normalization. To use them on this signal, convert it first "
        "with s.change_dtype('float32').")
    with pytest.raises(TypeError) as error:
        s.decomposition(algorithm="hnmf", output_dimension=3, loss="is")
    assert str(error.value) == (
        "decomposition(algorithm='hnmf') reads integer counts held in memory in place for "
        "the Frobenius and Kullback-Leibler losses with init other than 'spa'; this call asks "
        "for loss='is', init='nndsvda' on uint16 data. Convert the data first with "
        "s.change_dtype('float32') (float32 is exact for counts up to 2**24), or change those "
        "options. No decomposition was performed.")
    np.testing.assert_array_equal(s.learning_results.factors, factors)
    assert s.data.dtype == np.uint16


def test_negative_signed_counts_in_memory_are_refused_with_their_rows(scan):
    X = scan.data.reshape(224, 256).astype(np.int16)
    X[100, 7] = -3
    with pytest.raises(ValueError, match=r"Found first in row 100 \(probe"):
        HNMF(3, max_iter=5).fit(X)
    clipped = HNMF(3, max_iter=30, clip_negative=True, random_state=0)
    with pytest.warns(UserWarning, match=r"negative entries \(minimum -3\) were set to zero "
                                         r"\(in a copy\)"):
        W = clipped.fit_transform(X)  # a clipped copy in int16, read in place
    assert clipped.passes_ > 0 and X[100, 7] == -3
    floats = HNMF(3, max_iter=30, clip_negative=True, random_state=0)
    with pytest.warns(UserWarning, match="1 negative entries"):
        W_float = floats.fit_transform(X.astype(np.float32))
    assert relative(W @ clipped.components_, W_float @ floats.components_) <= 1e-4


def test_tree_with_map_projections_on_counts_in_memory_and_refused_up_front_lazily(scan):
    from hyperspy_hnmf.constraints import MapResolution

    options = dict(algorithm="hnmf", loss="kl", constraints=[MapResolution(2.0)],
                   output_dimension=3, hierarchy="tree", random_state=0, print_info=False)
    held, floats = scan.deepcopy(), scan.deepcopy()
    floats.change_dtype("float32")
    held.decomposition(**options)
    floats.decomposition(**options)
    assert relative(held.learning_results.loadings, floats.learning_results.loadings) <= 1e-4
    lazy = scan.as_lazy()
    with pytest.raises(ValueError) as error:
        lazy.decomposition(**options)
    assert str(error.value) == (
        "Map projections (e.g. MapResolution) act across probe positions, so the maps of a "
        "tree's leaves cannot be solved chunk by chunk on data read from a file. Use them in a "
        "flat or multi-layer fit (which read the data in passes), or load the data "
        "(s.compute()) for a tree.")
    assert lazy.learning_results.loadings is None


def decomposed_three_ways(s, **options):
    """``learning_results`` of ``s`` (uint16 in memory), of its float32 copy and of ``s`` lazy."""
    results = {}
    for kind in ("uint16", "float32", "lazy"):
        signal = s.deepcopy()
        if kind == "float32":
            signal.change_dtype("float32")
        elif kind == "lazy":
            signal = signal.as_lazy()
        signal.decomposition(algorithm="hnmf", print_info=False, **options)
        results[kind] = signal.learning_results
    return results


def test_robust_fit_of_counts_in_memory_equals_its_float32_copy_and_lazy(scan):
    s = scan.deepcopy()
    s.data[3, 4, 5, 6] = 900  # hot entries
    s.data[7, 2, 9, 1] = 700
    results = decomposed_three_ways(s, output_dimension=3, loss="kl", outliers="auto",
                                    random_state=0)
    for kind in ("float32", "lazy"):
        assert results["uint16"].hnmf["n_iter"] == results[kind].hnmf["n_iter"]
        assert relative(results["uint16"].loadings, results[kind].loadings) <= 1e-5
        for key in ("navigation_index", "signal_index"):
            np.testing.assert_array_equal(results["uint16"].hnmf["outliers"][key],
                                          results[kind].hnmf["outliers"][key])


def test_robust_fit_of_counts_in_memory_compresses_each_chunk_once(monkeypatch):
    # Mostly-zero counts: the chunks the estimator kept as CSR serve the robust fit too.
    import hyperspy_hnmf.matrix.streamed as streamed

    built = []
    original = streamed.compact_chunk

    def counting(view, budget):
        built.append(view.shape[0])
        return original(view, budget)

    monkeypatch.setattr(streamed, "compact_chunk", counting)
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.05, (600, 400)).astype(np.uint16)
    target = 600 * 400 * 4 // 3  # three chunks
    for function in (streamed.held_matrix, streamed.views_matrix):
        monkeypatch.setattr(function, "__defaults__", (target,))
    reference = held_matrix(counts, target_bytes=target)
    assert reference.compact_bytes > 0 and len(built) == reference.n_chunks == 3
    built.clear()
    model = HNMF(2, loss="kl", outliers="auto", random_state=0, max_iter=20)
    model.fit(counts)
    assert len(built) == 3  # once per chunk (the view of the robust fit built them again)
    assert np.isfinite(model.components_).all()


def test_poisson_normalized_fit_of_counts_in_memory_is_hyperspys_weighting(scan):
    # The weights of data read in passes are HyperSpy's own (Keenan & Kotula,
    # sums not over their means): the same fit and objective as the float path.
    W0, H0 = start(224, 256, 4)
    results = decomposed_three_ways(scan, output_dimension=4, loss="frobenius",
                                    normalize_poissonian_noise=True, init=(W0, H0), max_iter=40,
                                    tol=0)
    reference = results["float32"]
    for kind in ("uint16", "lazy"):
        result = results[kind]
        assert result.poissonian_noise_normalized
        assert relative(result.loadings @ result.factors.T,
                        reference.loadings @ reference.factors.T) <= 1e-5
        assert result.hnmf["reconstruction_error"] == pytest.approx(
            reference.hnmf["reconstruction_error"], rel=1e-5)


def test_weighted_products_scale_the_factors_not_the_chunk():
    # (X / outer(a, b)) @ B and its transpose, on dense counts read in place,
    # with no scaled copy of any block: the products of the weighted array.
    rng = np.random.default_rng(2)
    X = rng.poisson(4.0, (300, 200)).astype(np.uint16)
    a, b = rng.random(300) + 0.5, rng.random(200) + 0.5
    M = held_matrix(X, target_bytes=100 * 200 * 4).scaled(a, b)
    weighted = X / np.outer(a, b)
    B, A = rng.random((200, 5)), rng.random((300, 5))
    np.testing.assert_allclose(M @ B.astype(np.float32), weighted @ B, rtol=2e-5)
    np.testing.assert_allclose(M.T @ A, weighted.T @ A, rtol=2e-5)
