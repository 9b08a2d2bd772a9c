"""Chunks kept in memory (mostly-zero ones as CSR, dense small counts as bytes): read
once per fit, with every result unchanged."""

import re
import sys
import threading

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import hyperspy_hnmf
import hyperspy_hnmf.matrix.compact as compact_module
from hyperspy_hnmf.matrix.compact import (PACKED_FRACTION, SPARSE_CHUNK_DENSITY, CompactChunk,
                                          NarrowChunk, byte_codec, compact_chunk,
                                          memory_mapped)
from hyperspy_hnmf.matrix.streamed import csr_chunk
from hyperspy_hnmf.solvers._passes import MissingEntries
from hyperspy_hnmf.streaming import StreamedMatrix, randomized_nmf, streaming_nmf


def counted(n=600, m=256, k=3, rate=0.05, dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    maps, patterns = rng.random((n, k)), rng.random((k, m)) ** 3
    return rng.poisson(rate * 4 * maps @ patterns).astype(dtype)


def narrow_bytes(X, rows):
    """Bytes of X's chunks kept dense: LZ4 of the bit-shuffled bytes, slab by slab, where
    that takes at most PACKED_FRACTION of them, else the bytes."""
    total = 0
    slab = compact_module.PACKED_SLAB_BYTES // X.shape[1]
    for start in range(0, X.shape[0], rows):
        raw = X[start:start + rows].astype(np.uint8)
        packed = sum(len(byte_codec().encode(raw[top:top + slab]))
                     for top in range(0, len(raw), slab))
        total += packed if packed <= PACKED_FRACTION * raw.nbytes else raw.nbytes
    return total


@pytest.fixture
def no_codec(monkeypatch):
    """As without numcodecs: dense chunks kept as plain bytes."""
    monkeypatch.setattr(compact_module, "byte_codec", lambda: None)


class Reads:
    """A dask array over ``X`` that counts the chunks read from it."""

    def __init__(self, X, rows):
        self.count = 0
        self._lock = threading.Lock()  # dask reads chunks on several threads
        self.array = da.from_array(X, chunks=(rows, -1)).map_blocks(
            self._read, dtype=X.dtype, meta=np.empty((0, 0), X.dtype))  # (no call for meta)

    def _read(self, block):
        with self._lock:
            self.count += 1
        return block


@pytest.fixture(autouse=True)
def default_budget():
    yield
    StreamedMatrix.compact_cache_bytes = None


def fit_twice(X, rows, fit):
    """``fit`` on a matrix that keeps nothing and on one that keeps what it may."""
    results = []
    for budget in (0, None):
        StreamedMatrix.compact_cache_bytes = budget
        reads = Reads(X, rows)
        matrix = StreamedMatrix(reads.array)
        results.append((fit(matrix), reads.count, matrix))
    return results


@pytest.mark.parametrize("dtype, rate", [
    (np.uint8, 0.05), (np.uint16, 0.05), (np.float32, 0.05),  # mostly zero: CSR
    (np.uint8, 8.0), (np.uint16, 8.0), (np.int16, 8.0)])  # dense, below 256: bytes
@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_kept_chunks_are_read_once_and_change_no_bit(dtype, rate, loss):
    X = counted(rate=rate, dtype=dtype)
    (plain, plain_reads, _), (kept, kept_reads, matrix) = fit_twice(
        X, 100, lambda Xs: streaming_nmf(Xs, 3, loss=loss, init="nndsvda", max_iter=15, tol=0,
                                         random_state=0))
    np.testing.assert_array_equal(kept.W, plain.W)
    np.testing.assert_array_equal(kept.H, plain.H)
    np.testing.assert_array_equal(kept.objective, plain.objective)
    # Every pass reads every chunk, or only the first one.
    assert plain_reads == 6 * matrix.passes and kept_reads == 6
    density = np.count_nonzero(X) / X.size
    if rate < 1:
        assert 0.02 < density < SPARSE_CHUNK_DENSITY
        kind = CompactChunk  # uint16 columns, own values, indptr:
        expected = np.count_nonzero(X) * (2 + X.itemsize) + 6 * 101 * 8
    else:
        assert density > 0.5 and 16 < X.max() < 256
        kind, expected = NarrowChunk, narrow_bytes(X, 100)  # a byte per entry, compressed
        assert expected < 0.75 * X.size
    assert matrix.compact_bytes == expected
    assert all(type(chunk) is kind for chunk in matrix._compact.values())


def test_poisson_weighted_randomized_fit_keeps_chunks_and_changes_no_bit():
    # The Poisson-weighted view (normalize_poissonian_noise) shares the chunks kept.
    X = counted(rate=0.03)
    row_scale = np.sqrt(X.mean(axis=1) + 0.1)
    column_scale = np.sqrt(X.mean(axis=0) + 0.1)
    (plain, plain_reads, _), (kept, kept_reads, matrix) = fit_twice(
        X, 128, lambda Xs: randomized_nmf(Xs.scaled(row_scale, column_scale), 3,
                                          random_state=1, max_iter=8))
    np.testing.assert_array_equal(kept.W, plain.W)
    np.testing.assert_array_equal(kept.H, plain.H)
    assert kept_reads == 5 and plain_reads == 5 * matrix.passes > 5 * 8


def test_tree_and_missing_entries_on_kept_chunks_change_no_bit():
    X = counted(n=400, rate=0.04, seed=2)
    (plain, _, _), (kept, reads, _) = fit_twice(
        X, 100, lambda Xs: hyperspy_hnmf.hierarchy.rank2_tree(Xs, 3))
    np.testing.assert_array_equal(kept.labels(), plain.labels())
    missing = MissingEntries([3, 250, 399], [7, 100, 255], [17])
    (plain, _, _), (kept, reads, _) = fit_twice(
        X, 100, lambda Xs: streaming_nmf(Xs, 3, loss="kl", init="nndsvda", max_iter=5, tol=0,
                                         random_state=0, missing=missing))
    np.testing.assert_array_equal(kept.W, plain.W)
    assert reads == 4


def test_wide_counts_floats_and_memory_mapped_files_are_read_at_every_pass(tmp_path):
    noisy = counted(rate=8.0)  # its fifth chunk: 16-bit counts that do not pack into a byte
    noisy[400:500] = np.random.default_rng(5).integers(256, 65536, (100, 256))
    mapped = np.lib.format.open_memmap(tmp_path / "counts.npy", mode="w+", dtype=np.uint16,
                                       shape=noisy.shape)
    mapped[:] = counted(rate=8.0)
    for X, on_disk in ((noisy, {4}), (counted(rate=40.0, dtype=np.float32), set(range(6))),
                       (counted(rate=40.0, dtype=np.int32), set(range(6))),
                       (mapped, set(range(6)))):
        assert np.count_nonzero(X) / X.size > 0.5
        reads = Reads(X, 100)
        matrix = StreamedMatrix(reads.array)
        streaming_nmf(matrix, 3, loss="kl", init="nndsvda", max_iter=5, tol=0, random_state=0)
        assert {i for i, chunk in matrix._compact.items() if chunk is None} == on_disk
        assert reads.count == 6 + (matrix.passes - 1) * len(on_disk)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_counts_over_a_byte_are_kept_packed_in_their_own_type_and_change_no_bit(dtype, loss,
                                                                                monkeypatch):
    X = counted(rate=20.0, dtype=dtype)  # a mean of 28 counts, and in every chunk
    X[::50, 5] = 300  # counts over a byte
    X[250, 3] = 30000
    (plain, plain_reads, _), (kept, kept_reads, matrix) = fit_twice(
        X, 100, lambda Xs: streaming_nmf(Xs, 3, loss=loss, init="nndsvda", max_iter=10,
                                         tol=0, random_state=0))
    np.testing.assert_array_equal(kept.W, plain.W)
    np.testing.assert_array_equal(kept.H, plain.H)
    np.testing.assert_array_equal(kept.objective, plain.objective)
    assert plain_reads == 6 * matrix.passes and kept_reads == 6
    for index, chunk in matrix._compact.items():
        assert type(chunk) is NarrowChunk and chunk.packed and chunk.nbytes <= 100 * 256
        values = chunk.values
        assert values.dtype == dtype
        np.testing.assert_array_equal(values, X[matrix.rows(index)])
    assert X.max() > 255 and matrix.compact_bytes < 0.9 * X.size  # under a byte per entry
    assert compact_module.pack_bytes(X[:100], byte_codec(), 10**9, narrow=False,
                                     per_entry=0.2) is None  # (the bound per entry holds)
    monkeypatch.setattr(compact_module, "byte_codec", lambda: None)
    assert compact_chunk(X[:100], 10**9) is None  # no codec: bytes cannot hold the counts


@pytest.mark.parametrize("rate, codec", [(0.05, False), (8.0, True)])  # CSR, packed bytes
def test_the_budget_bounds_the_memory_kept_and_each_chunk_takes_its_share(rate, codec,
                                                                          monkeypatch):
    if not codec:
        monkeypatch.setattr(compact_module, "byte_codec", lambda: None)
    X = counted(rate=rate)
    sizes = [compact_chunk(X[start:start + 100], 10**9).nbytes for start in range(0, 600, 100)]
    ones = np.ones((256, 1), np.float32)
    StreamedMatrix.compact_cache_bytes = 6 * max(sizes)  # room for every chunk's share
    full = StreamedMatrix(da.from_array(X, chunks=(100, -1)))
    product = full @ ones
    assert full.compact_bytes == sum(sizes)
    StreamedMatrix.compact_cache_bytes = budget = 6 * min(sizes) + 6
    part = StreamedMatrix(da.from_array(X, chunks=(100, -1)))
    np.testing.assert_array_equal(part @ ones, product)
    kept = [part._compact[i] is not None for i in range(6)]
    assert kept == [size <= budget // 6 for size in sizes] and 0 < sum(kept) < 6
    assert part.compact_bytes <= budget
    np.testing.assert_array_equal(part @ ones, product)


@pytest.mark.parametrize("rate", [0.05, 8.0])  # mostly zero (CSR), dense (bytes)
@pytest.mark.parametrize("kind", ["poisson", "uniform", "resampler"])
def test_perturbed_views_share_the_kept_chunks_and_keep_their_noise(kind, rate):
    # A perturbation draws its noise from the chunk as read: the same draws
    # whether the chunk comes from the file or from memory.
    X = counted(rate=rate)
    ones = np.ones((256, 1), np.float32)
    plain = StreamedMatrix(da.from_array(X, chunks=(100, -1)))
    reads = Reads(X, 100)
    matrix = StreamedMatrix(reads.array)
    views = []
    for parent in (plain, matrix):
        if kind == "resampler":
            views.append(parent.resampled(lambda chunk, start: chunk * (1 + start % 7)))
        else:
            views.append(parent.perturbed(0.2, seed=4, kind=kind))
    StreamedMatrix.compact_cache_bytes = 0
    from_file = views[0] @ ones
    StreamedMatrix.compact_cache_bytes = None
    first = views[1] @ ones  # reads the file and keeps the chunks, for the parent too
    assert matrix.compact_bytes > 0 and reads.count == 6
    np.testing.assert_array_equal(first, from_file)
    np.testing.assert_array_equal(views[1] @ ones, from_file)  # from memory
    assert (matrix @ ones).shape == (600, 1) and reads.count == 6


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64,
                                   np.bool_])
def test_a_compact_chunk_is_the_chunk_as_read(dtype):
    X = counted(n=50, dtype=dtype)
    chunk = compact_chunk(X, 10**9)
    assert chunk.dense().dtype == X.dtype
    np.testing.assert_array_equal(chunk.dense(), X)
    ours, theirs = chunk.csr(np.dtype(np.float32)), csr_chunk(X, np.dtype(np.float32), 0)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    assert chunk.total() == X.sum(dtype=np.float64)
    assert chunk.indices.dtype == np.uint16


def test_wide_detectors_bad_values_and_dense_first_rows_are_not_kept():
    wide = np.zeros((2, (1 << 16) + 8), dtype=np.uint8)
    wide[1, -1] = 3
    chunk = compact_chunk(wide, 10**9)
    assert chunk.indices.dtype == np.int32 and chunk.dense()[1, -1] == 3
    for bad in (-1.0, np.nan, np.inf):
        X = counted(n=50, dtype=np.float32)
        X[30, 4] = bad
        assert compact_chunk(X, 10**9) is None
    assert compact_chunk(counted(n=50).astype(">u2"), 10**9) is None  # (numba: native only)
    X = counted(n=400, m=4096, rate=0.01)
    X[:30] = 1  # the first 256 rows decide how products read a chunk: dense here
    assert np.count_nonzero(X) / X.size < SPARSE_CHUNK_DENSITY
    assert np.count_nonzero(X[:256]) / X[:256].size > SPARSE_CHUNK_DENSITY
    assert type(compact_chunk(X, 10**9)) is NarrowChunk  # kept dense, as products read it


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16, np.bool_])
@pytest.mark.parametrize("rate, packed, slab_rows", [
    (8.0, True, None), (8.0, False, None), (0.4, True, None), (0.4, True, 7)])
def test_a_narrow_chunk_is_the_chunk_as_read(dtype, rate, packed, slab_rows, monkeypatch):
    if not packed:
        monkeypatch.setattr(compact_module, "byte_codec", lambda: None)
    if slab_rows:  # 50 rows in slabs of 7: the last one short
        monkeypatch.setattr(compact_module, "PACKED_SLAB_BYTES", slab_rows * 256)
    X = counted(n=50, rate=rate, dtype=dtype)
    assert np.count_nonzero(X) > SPARSE_CHUNK_DENSITY * X.size
    chunk = compact_chunk(X, X.size)
    expected = narrow_bytes(X, 50) if packed else X.size
    assert type(chunk) is NarrowChunk and chunk.packed == (expected < X.size)
    assert chunk.nbytes == expected and chunk.shape == X.shape
    values = chunk.values
    assert values.dtype == (np.bool_ if dtype == np.bool_ else np.uint8)
    assert not np.shares_memory(values, X)
    assert chunk.dense().dtype == X.dtype
    np.testing.assert_array_equal(chunk.dense(), X)
    np.testing.assert_array_equal(values, X)
    if chunk.packed:  # each read decodes into a new array
        assert not np.shares_memory(chunk.values, values)
        assert len(chunk._stored) == (8 if slab_rows else 1)
        if dtype != np.bool_ and rate < 1:  # a few counts: a tenth of float32 or less
            assert chunk.nbytes < 0.4 * X.size
    assert compact_chunk(X, expected - 1) is None  # over the budget
    assert compact_chunk(X, expected).nbytes == expected


class CountingCodec:
    """byte_codec(), counting the slabs it compresses."""

    def __init__(self):
        self.codec, self.calls = byte_codec(), 0

    def encode(self, values):
        self.calls += 1
        return self.codec.encode(values)


def test_bytes_that_do_not_compress_are_kept_plain_after_one_slab(monkeypatch):
    monkeypatch.setattr(compact_module, "PACKED_SLAB_BYTES", 8 * 256)  # 8 slabs of 8 rows
    X = np.random.default_rng(3).integers(1, 256, (64, 256), dtype=np.uint16)
    codec = CountingCodec()
    assert compact_module.pack_bytes(X, codec, 10**9) is None and codec.calls == 1
    chunk = compact_chunk(X, 10**9)
    assert type(chunk) is NarrowChunk and not chunk.packed and chunk.nbytes == X.size
    np.testing.assert_array_equal(chunk.dense(), X)
    assert compact_chunk(X, X.size - 1) is None
    few = X % 4  # two bits of eight: packed, in eight slabs
    codec = CountingCodec()
    packed = compact_module.pack_bytes(few, codec, 10**9)
    assert codec.calls == len(packed) == 8
    size = sum(len(slab) for slab in packed)
    assert size < 0.3 * few.size
    codec = CountingCodec()  # over the budget: stops at the slab that crosses it
    assert compact_module.pack_bytes(few, codec, size // 2) is None and codec.calls <= 5
    chunk = compact_chunk(few, size)
    assert chunk.packed and chunk.nbytes == size
    np.testing.assert_array_equal(chunk.dense(), few)


def test_without_numcodecs_dense_chunks_are_kept_as_plain_bytes(monkeypatch):
    monkeypatch.setitem(sys.modules, "numcodecs", None)  # import fails
    assert byte_codec() is None
    X = counted(n=50, rate=0.4)
    chunk = compact_chunk(X, 10**9)
    assert type(chunk) is NarrowChunk and not chunk.packed and chunk.nbytes == X.size
    np.testing.assert_array_equal(chunk.dense(), X)


def test_a_mostly_zero_chunk_over_its_csr_share_is_kept_as_compressed_bytes():
    X = counted(rate=0.05)[:100]
    csr = compact_chunk(X, 10**9)
    assert type(csr) is CompactChunk
    chunk = compact_chunk(X, csr.nbytes - 1)
    assert type(chunk) is NarrowChunk and chunk.packed and chunk.nbytes < csr.nbytes
    np.testing.assert_array_equal(chunk.dense(), X)


def test_negative_or_byte_order_swapped_counts_are_not_kept_dense(tmp_path):
    X = counted(n=50, rate=8.0, dtype=np.int16)
    X[7, 7] = -1
    assert compact_chunk(X, 10**9) is None
    assert compact_chunk(counted(n=50, rate=8.0).astype(">u2"), 10**9) is None
    path = tmp_path / "x.npy"
    np.save(path, counted(n=50, rate=8.0))
    mapped = np.load(path, mmap_mode="r")
    assert memory_mapped(mapped[10:20]) and not memory_mapped(np.array(mapped))
    assert compact_chunk(mapped[10:20], 10**9) is None
    assert type(compact_chunk(np.array(mapped[10:20]), 10**9)) is NarrowChunk


def test_a_bad_value_is_refused_at_every_pass():
    X = counted(dtype=np.float32)
    X[350, 9] = -2.0
    matrix = StreamedMatrix(da.from_array(X, chunks=(100, -1)))
    for _ in range(2):
        with pytest.raises(ValueError, match="rows 300 to 399"):
            streaming_nmf(matrix, 3, loss="kl", init="nndsvda", max_iter=2)
    assert matrix._compact == {}  # a failed pass keeps nothing


def test_nothing_is_kept_under_a_distributed_client(local_cluster):
    X = counted()
    with local_cluster(1, 2, processes=False):
        matrix = StreamedMatrix(da.from_array(X, chunks=(100, -1)))
        remote = streaming_nmf(matrix, 3, loss="kl", init="nndsvda", max_iter=5, tol=0,
                               random_state=0)
        assert matrix._compact == {}
    local = streaming_nmf(StreamedMatrix(da.from_array(X, chunks=(100, -1))), 3, loss="kl",
                          init="nndsvda", max_iter=5, tol=0, random_state=0)
    np.testing.assert_array_equal(remote.W, local.W)


def test_sparse_chunks_are_never_kept_twice():
    X = sp.random(300, 64, density=0.05, random_state=0, format="csr", dtype=np.float32)
    lazy = da.from_array(X.toarray(), chunks=(100, -1)).map_blocks(sp.csr_matrix,
                                                                   meta=sp.csr_matrix((0, 0)))
    matrix = StreamedMatrix(lazy)
    np.testing.assert_allclose(matrix @ np.ones((64, 1)), X @ np.ones((64, 1)), rtol=1e-6)
    assert set(matrix._compact) == {0, 1, 2} and matrix.compact_bytes == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_nonzeros_are_counted_whatever_bit_is_set(dtype):
    rng = np.random.default_rng(5)
    bits = np.iinfo(dtype).bits
    X = np.zeros((40, 64), dtype=dtype)
    where = rng.random(X.shape) < 0.05
    X[where] = (np.ones(1, dtype=dtype) << rng.integers(0, bits, where.sum()).astype(dtype))
    chunk = compact_chunk(X, 10**6)
    assert chunk.nnz == np.count_nonzero(X)
    np.testing.assert_array_equal(np.diff(chunk.indptr), np.count_nonzero(X, axis=1))


@pytest.mark.parametrize("normalize", [False, True])
def test_a_lazy_decomposition_reads_mostly_zero_chunks_once(normalize):
    import hyperspy.api as hs

    X = counted(n=400, m=256, rate=0.04, seed=6)
    results = []
    for budget in (0, None):
        StreamedMatrix.compact_cache_bytes = budget
        reads = Reads(X, 100)
        s = hs.signals.Signal2D(reads.array.reshape(20, 20, 16, 16)).as_lazy()
        s.decomposition(algorithm="hnmf", output_dimension=3, loss="kl", max_iter=20,
                        normalize_poissonian_noise=normalize, random_state=0,
                        print_info=False)
        results.append((s.learning_results, reads.count))
    (plain, plain_reads), (kept, kept_reads) = results
    np.testing.assert_array_equal(kept.factors, plain.factors)
    np.testing.assert_array_equal(kept.loadings, plain.loadings)
    assert kept.hnmf["passes"] == plain.hnmf["passes"] > 20
    assert kept_reads == 4 and plain_reads > 4 * 20


@pytest.mark.parametrize("kind", ["poisson", "uniform"])
def test_noise_is_drawn_at_the_nonzeros_of_mostly_zero_chunks(kind):
    X = counted()
    matrix = StreamedMatrix(da.from_array(X, chunks=(100, -1)))
    rows = np.arange(0, 600, 7)
    perturbed = matrix.perturbed(0.3, seed=1, kind=kind).take(rows)
    zero = X[rows] == 0
    assert np.all(perturbed[zero] == 0)
    changed = np.mean(perturbed[~zero] != X[rows][~zero])
    assert changed > 0.5  # Poisson keeps some counts by chance; uniform noise none
    if kind == "uniform":
        ratio = perturbed[~zero] / X[rows][~zero]
        assert 0.7 <= ratio.min() and ratio.max() <= 1.3
    # The same draws from every pass, and for the chunk kept in memory.
    np.testing.assert_array_equal(matrix.perturbed(0.3, seed=1, kind=kind).take(rows),
                                  perturbed)
    assert matrix.compact_bytes > 0


@pytest.mark.parametrize("bad", [-1, "1GB", float("nan"), True])
def test_a_bad_budget_is_refused_before_any_pass(bad):
    matrix = StreamedMatrix(da.from_array(counted(), chunks=(100, -1)))
    StreamedMatrix.compact_cache_bytes = bad
    message = ("StreamedMatrix.compact_cache_bytes must be None (a quarter of the machine's "
               f"memory) or a number of bytes >= 0 (0: keep no chunk in memory), got {bad!r}.")
    with pytest.raises(ValueError, match=re.escape(message)):
        matrix @ np.ones((256, 1))
    assert matrix.passes == 0 and matrix._compact == {}


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_big_endian_data_give_the_native_fit(loss):
    X = counted()
    fits = [streaming_nmf(da.from_array(X.astype(dtype), chunks=(100, -1)), 3, loss=loss,
                          init="nndsvda", max_iter=5, tol=0, random_state=0)
            for dtype in ("<u2", ">u2")]
    np.testing.assert_array_equal(fits[1].W, fits[0].W)
    np.testing.assert_array_equal(fits[1].H, fits[0].H)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_passes_over_kept_chunks_run_without_a_graph_and_give_the_same_bits(scheduler,
                                                                            monkeypatch):
    import dask

    X = counted()
    StreamedMatrix.compact_cache_bytes = 0
    plain = streaming_nmf(StreamedMatrix(da.from_array(X, chunks=(100, -1))), 3, loss="kl",
                          init="nndsvda", max_iter=6, tol=0, random_state=0)
    StreamedMatrix.compact_cache_bytes = None
    graphs = []
    compute = dask.compute
    monkeypatch.setattr(dask, "compute", lambda *a, **o: graphs.append(1) or compute(*a, **o))
    with dask.config.set(scheduler=scheduler):
        matrix = StreamedMatrix(da.from_array(X, chunks=(100, -1)))
        kept = streaming_nmf(matrix, 3, loss="kl", init="nndsvda", max_iter=6, tol=0,
                             random_state=0)
    np.testing.assert_array_equal(kept.W, plain.W)
    np.testing.assert_array_equal(kept.objective, plain.objective)
    assert len(graphs) == 1 < matrix.passes  # the first pass reads the file, no other


def test_an_error_on_a_kept_chunk_reaches_the_caller():
    matrix = StreamedMatrix(da.from_array(counted(), chunks=(100, -1)))
    matrix @ np.ones((256, 1))  # keeps every chunk

    def refuse(block, start):
        if start == 300:
            raise ValueError(f"rows {start} refused")
        return 0.0

    with pytest.raises(ValueError, match="rows 300 refused"):
        matrix.map_chunks(refuse, reduce=True)
    assert matrix.map_chunks(lambda block, start: start, reduce=True) == 1500


@pytest.mark.parametrize("n", list(range(1, 34)))
def test_results_are_summed_in_one_pairwise_order_as_they_arrive(n):
    from hyperspy_hnmf.matrix.streamed import _pairwise

    def level_by_level(results):  # 0 + 1, 2 + 3, ...; an odd one out waits a level
        while len(results) > 1:
            pairs = [f"({results[i]}+{results[i + 1]})" for i in range(0, len(results) - 1, 2)]
            results = pairs + results[len(results) - len(results) % 2:]
        return results[0]

    names = [str(i) for i in range(n)]
    counts = {"yielded": 0, "added": 0, "held": 0}

    def arriving():
        for name in names:
            counts["yielded"] += 1
            counts["held"] = max(counts["held"], counts["yielded"] - counts["added"])
            yield name

    def add(a, b):
        counts["added"] += 1
        return f"({a}+{b})"

    assert _pairwise(arriving(), add) == level_by_level(names)
    # Summed as they arrive: at most one partial sum per level is held.
    assert counts["held"] <= int(np.log2(n)) + 1


def test_kept_chunks_run_in_order_with_few_results_waiting():
    from concurrent.futures import ThreadPoolExecutor

    from hyperspy_hnmf.matrix.streamed import _in_order

    started = []

    def record(block, start):
        started.append(start)
        return start

    block = np.ones((2, 3), np.float32)
    tasks = [(record, block, start, np.dtype(np.float32), None, None, None)
             for start in range(40)]
    taken = []
    with ThreadPoolExecutor(2) as pool:
        for result in _in_order(pool, tasks, 4):
            taken.append(result)
            assert len(started) <= len(taken) + 4  # never more than 4 ahead
    assert taken == list(range(40))


def test_chunks_are_kept_only_where_dask_computes_in_this_process():
    import dask

    matrix = StreamedMatrix(da.from_array(counted(), chunks=(100, -1)))
    StreamedMatrix.compact_cache_bytes = 10**6
    with dask.config.set(scheduler="processes"):  # chunks would travel with every task
        assert matrix._compact_budget() == 0
    with dask.config.set(scheduler="sync"):
        assert matrix._compact_budget() == 10**6
    with dask.config.set(scheduler="threads", num_workers=3):
        assert matrix._compact_budget() == 10**6
        from hyperspy_hnmf.matrix.streamed import _local_threads
        assert _local_threads() == 3
