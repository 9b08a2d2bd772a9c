"""Chunks kept in memory in few bytes, and the one nonzero gather of mostly-zero chunks.

Counted electrons are mostly zeros. :func:`row_nonzeros` finds a row's
nonzeros in a raw chunk (the KL pass kernels and the CSR conversion of a
chunk share it). :func:`compact_chunk` keeps a chunk read from a file so
that :class:`~hyperspy_hnmf.matrix.StreamedMatrix` reads and decompresses
it once per fit instead of once per pass:

- a mostly-zero chunk as a :class:`CompactChunk`: CSR with the narrowest
  column index and the data's own type (4 bytes per nonzero for uint16
  counts on a detector of up to 65536 pixels, against 4 bytes per *entry*
  for float32);
- a dense chunk of counts as a :class:`NarrowChunk`: counts below 256 as
  one byte per entry, a quarter of their float32 size, compressed when that
  pays (7–15 % of the float32 size for a few electrons per pixel); 16-bit
  counts over 255 compressed in their own type, when that takes at most a
  byte per entry.

Counts that the caller holds in memory already need no copy: a dense chunk
of them is a :class:`HeldChunk`, a view read in place at every pass.
"""

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

__all__ = ["CompactChunk", "HeldChunk", "NarrowChunk", "PACKED_FRACTION", "PACKED_SLAB_BYTES",
           "PACKED_WIDE_BYTES", "SPARSE_CHUNK_DENSITY", "byte_codec", "compact_chunk",
           "leading_density", "leading_rows", "memory_mapped", "mostly_zero", "nonzero_words",
           "pack_bytes", "row_nonzeros"]

#: Chunks with at most this fraction of nonzeros (counted electrons) are
#: multiplied as CSR matrices, and kept in memory as :class:`CompactChunk`
#: by a :class:`~hyperspy_hnmf.matrix.StreamedMatrix`.
SPARSE_CHUNK_DENSITY = 0.1


def leading_rows(shape, entries=1 << 20):
    """Number of first rows of a chunk of ``shape`` whose density decides how it is read.

    About ``entries`` entries, at least one row.

    Examples
    --------
    >>> leading_rows((4096, 4096)), leading_rows((10, 4096)), leading_rows((5, 1 << 21))
    (256, 10, 1)
    """
    return max(1, min(shape[0], entries // max(shape[1], 1)))


def leading_density(block, entries=1 << 20):
    """Fraction of nonzeros in the first :func:`leading_rows` of a raw or kept chunk.

    The same number whether the chunk was read from the file or kept as a
    :class:`CompactChunk`, so that both are read the same way.

    Examples
    --------
    >>> leading_density(np.eye(4)), leading_density(compact_chunk(np.eye(20), 10**6))
    (0.25, 0.05)
    """
    rows = leading_rows(block.shape, entries)
    nonzero = (block.count_nonzero(rows) if isinstance(block, CompactChunk)
               else np.count_nonzero(block[:rows]))
    return float(nonzero / (rows * block.shape[1]))


def mostly_zero(block):
    """Whether a raw (or kept) chunk is read as CSR: its first :func:`leading_rows` decide.

    At most :data:`SPARSE_CHUNK_DENSITY` of them nonzero. A chunk kept as a
    :class:`CompactChunk` always is (see :func:`compact_chunk`).

    Examples
    --------
    >>> mostly_zero(np.eye(20)), mostly_zero(np.ones((20, 20)))
    (True, False)
    """
    return bool(leading_density(block) <= SPARSE_CHUNK_DENSITY)


@numba.njit(parallel=True, cache=True, nogil=True)
def _count_rows(block, words, lanes):
    """Nonzeros of every row, after a leading 0 (the row pointers' increments).

    With words (see :func:`nonzero_words`) a zero word is one test and a
    nonzero one is counted without a branch per lane: its lanes are folded
    onto their lowest bit, and one multiplication adds those bits.
    """
    counts = np.zeros(block.shape[0] + 1, dtype=np.int64)
    if lanes > 0:
        bits = 64 // lanes
        low = np.uint64(0)
        for lane in range(lanes):
            low |= np.uint64(1) << np.uint64(lane * bits)
        top = np.uint64(64 - bits)
    for i in numba.prange(block.shape[0]):
        count = 0
        if lanes > 0:
            for t in range(words.shape[1]):
                word = words[i, t]
                if word != 0:
                    shift = bits // 2
                    while shift > 0:
                        word |= word >> np.uint64(shift)
                        shift //= 2
                    count += np.int64(((word & low) * low) >> top)
        else:
            for j in range(block.shape[1]):
                if block[i, j] != 0:
                    count += 1
        counts[i + 1] = count
    return counts


def _csr_counts(block):
    return _count_rows(block, *nonzero_words(block))


def nonzero_words(block):
    """``(words, lanes)`` for :func:`row_nonzeros`: the chunk as 64-bit words of ``lanes`` entries.

    Unsigned integer (and bool) chunks, C-contiguous with rows a whole number
    of words, are viewed as words (no copy); others get ``lanes = 0`` and an
    empty array (entry by entry).

    Examples
    --------
    >>> words, lanes = nonzero_words(np.zeros((2, 8), dtype=np.uint16))
    >>> words.shape, lanes
    ((2, 2), 4)
    """
    lanes = 8 // block.itemsize if block.dtype.kind in "ub" and block.itemsize < 8 else 0
    if lanes and block.flags.c_contiguous and block.shape[1] % lanes == 0:
        return block.view(np.uint64), lanes
    return np.zeros((block.shape[0], 0), dtype=np.uint64), 0


@numba.njit(inline="always", nogil=True)
def row_nonzeros(block, words, lanes, i, columns, values):
    """Gather the nonzeros of row ``i``: their columns and values; returns their count.

    The one nonzero gather of raw chunks: the KL pass kernels, the CSR fill
    of :func:`~hyperspy_hnmf.matrix.streamed.csr_chunk` and
    :func:`compact_chunk` call it. With ``lanes > 0`` (see
    :func:`nonzero_words`), ``words`` is the row-major chunk viewed as 64-bit
    words of ``lanes`` entries each: a zero word (most of them, for counted
    electrons) skips ``lanes`` entries with one test, and in a nonzero word
    only the nonzero lanes are visited (a trailing-zero count finds the next
    one), so the cost follows the nonzeros, not the entries.

    Examples
    --------
    >>> block = np.array([[0, 3, 0, 0, 0, 0, 0, 5]], dtype=np.uint8)
    >>> columns, values = np.empty(8, np.int64), np.empty(8, np.uint8)
    >>> count = row_nonzeros(block, *nonzero_words(block), 0, columns, values)
    >>> columns[:count].tolist(), values[:count].tolist()
    ([1, 7], [3, 5])
    """
    count = 0
    if lanes > 0:
        shift = 3 if lanes == 8 else (4 if lanes == 4 else 5)  # log2 of a lane's bits
        lane_mask = np.uint64((1 << (64 // lanes)) - 1)
        for t in range(words.shape[1]):
            word = words[i, t]
            base = t * lanes
            while word != 0:
                lane = np.int64(trailing_zeros(word)) >> shift
                columns[count] = base + lane
                values[count] = block[i, base + lane]
                count += 1
                word &= ~(lane_mask << np.uint64(lane << shift))
    else:
        for j in range(block.shape[1]):
            x = block[i, j]
            if x != 0:
                columns[count] = j
                values[count] = x
                count += 1
    return count


@numba.njit(parallel=True, cache=True, nogil=True)
def _csr_fill(block, words, lanes, indptr, indices, data):
    for i in numba.prange(block.shape[0]):
        first, last = indptr[i], indptr[i + 1]
        row_nonzeros(block, words, lanes, i, indices[first:last], data[first:last])


def csr_structure(block, index_dtype, value_dtype, indptr=None):
    """``(indptr, indices, values)`` of a C-contiguous raw chunk (integer, bool or float).

    Two passes of numba kernels (count, then fill through
    :func:`row_nonzeros`); ``values`` are cast to ``value_dtype`` as they
    are gathered. ``indptr``: the row pointers, if already counted. Bool
    chunks are passed viewed as uint8.

    Examples
    --------
    >>> csr_structure(np.eye(2, dtype=np.uint8), np.uint16, np.uint8)
    (array([0, 1, 2]), array([0, 1], dtype=uint16), array([1, 1], dtype=uint8))
    """
    if indptr is None:
        indptr = np.cumsum(_csr_counts(block))
    indices = np.empty(indptr[-1], dtype=index_dtype)
    values = np.empty(indptr[-1], dtype=value_dtype)
    _csr_fill(block, *nonzero_words(block), indptr, indices, values)
    return indptr, indices, values


@numba.njit(parallel=True, cache=True, nogil=True)
def _scatter(indptr, indices, values, out):
    for i in numba.prange(out.shape[0]):
        for position in range(indptr[i], indptr[i + 1]):
            out[i, indices[position]] = values[position]


class CompactChunk:
    """A mostly-zero chunk held in memory as CSR in its own type (see :func:`compact_chunk`).

    Parameters
    ----------
    indptr : ndarray of int64, shape (n + 1,)
    indices : ndarray of uint16 (at most 65536 columns) or int32
    values : ndarray
        The nonzeros in the chunk's own type (bool stored as uint8).
    shape : tuple of int
    dtype : numpy.dtype
        Type of the chunk as stored.

    Examples
    --------
    >>> chunk = compact_chunk(np.eye(16, dtype=np.uint16), 1000)
    >>> chunk.nnz, chunk.nbytes, chunk.dense().dtype.name
    (16, 200, 'uint16')
    >>> float(chunk.csr(np.dtype(np.float32)).sum())
    16.0
    """

    __slots__ = ("indptr", "indices", "values", "shape", "dtype")

    def __init__(self, indptr, indices, values, shape, dtype):
        self.indptr, self.indices, self.values = indptr, indices, values
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    @property
    def nnz(self):
        """Number of stored nonzeros."""
        return int(self.indptr[-1])

    @property
    def nbytes(self):
        """Memory held, in bytes."""
        return self.indptr.nbytes + self.indices.nbytes + self.values.nbytes

    def count_nonzero(self, rows):
        """Number of nonzeros in the first ``rows`` rows (as ``np.count_nonzero`` of them)."""
        return int(self.indptr[rows] - self.indptr[0])

    def dense(self):
        """The chunk as it was read: a new dense array of its own type."""
        out = np.zeros(self.shape, dtype=self.values.dtype)
        _scatter(self.indptr, self.indices, self.values, out)
        return out.view(self.dtype) if self.dtype.kind == "b" else out

    def csr(self, dtype):
        """The chunk as a scipy CSR matrix of ``dtype`` (int32 indices; new arrays)."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.values.astype(dtype), self.indices.astype(np.int32),
                              self.indptr), shape=self.shape)

    def total(self):
        """Sum of all entries in float64, equal to the dense chunk's ``sum(dtype=float64)``.

        Integer counts: the sum of the nonzeros (exact in any order); floats:
        the dense sum (same rounding as a chunk read from the file).
        """
        if self.values.dtype.kind in "uib":
            return float(self.values.sum(dtype=np.float64))
        return float(self.dense().sum(dtype=np.float64))


#: A dense chunk of counts below 256 is kept compressed when that takes at
#: most this many bytes per entry; otherwise as plain bytes, which cost nothing
#: to read.
PACKED_FRACTION = 0.75
#: Counts of 16 bits over 255 are kept only compressed, into at most this many
#: bytes per entry (a quarter of their float32 size, as plain bytes take).
PACKED_WIDE_BYTES = 1.0
#: A kept dense chunk is compressed in slabs of rows of about this many
#: bytes, so that compressing and decoding it allocate little at a time (large
#: transient buffers leave the allocator's heaps fragmented: resident memory
#: that is not given back).
PACKED_SLAB_BYTES = 1 << 20


def byte_codec():
    """The codec of kept dense chunks, or None when numcodecs is not installed.

    Blosc's LZ4 on bit-shuffled bytes: counts below 256 use few of a byte's
    eight bits, which shuffling gathers into runs that LZ4 shortens. It
    decodes at several GB/s on one core and releases the GIL.

    Examples
    --------
    >>> codec = byte_codec()
    >>> values = np.random.default_rng(0).integers(0, 4, 4096, dtype=np.uint8)
    >>> len(codec.encode(values)) < 0.3 * values.nbytes  # two bits used of eight
    True
    """
    try:
        from numcodecs import Blosc
    except ImportError:  # (numcodecs comes with zarr, in the "lazy" extra)
        return None
    return Blosc(cname="lz4", clevel=1, shuffle=Blosc.BITSHUFFLE)


def _slab_rows(columns, itemsize):
    """Rows of a slab of :data:`PACKED_SLAB_BYTES` bytes (at least one)."""
    return max(1, PACKED_SLAB_BYTES // max(1, columns * itemsize))


def pack_bytes(block, codec, max_bytes, narrow=True, per_entry=PACKED_FRACTION):
    """A chunk's counts compressed slab by slab, or None when that does not pay or fit.

    Compression stops as soon as the slabs so far take more than
    ``per_entry`` bytes per entry, or more than ``max_bytes`` in all, so an
    incompressible chunk costs about one slab's compression.

    Parameters
    ----------
    block : ndarray, shape (n, m)
        C-contiguous integers of at most 16 bits, all >= 0, or booleans
        (not checked here).
    codec : numcodecs codec
    max_bytes : int
    narrow : bool
        Narrow each slab to one byte per entry first (counts below 256),
        else compress it in its own type.
    per_entry : float
        Bytes per entry that the compressed slabs may take.

    Returns
    -------
    list of bytes or None
        One compressed slab per :func:`_slab_rows` rows.

    Examples
    --------
    >>> counts = np.random.default_rng(0).integers(0, 4, (64, 256), dtype=np.uint16)
    >>> len(pack_bytes(counts, byte_codec(), 10**6))
    1
    >>> pack_bytes(counts, byte_codec(), 100) is None  # over the budget
    True
    >>> pack_bytes(counts * 1000, byte_codec(), 10**6, narrow=False, per_entry=1) is None
    False
    """
    n, m = block.shape
    slab = _slab_rows(m, 1 if narrow else block.itemsize)
    packed, size = [], 0
    for top in range(0, n, slab):
        part = block[top:top + slab]
        if narrow:
            part = part.view(np.uint8) if part.itemsize == 1 else part.astype(np.uint8)
        packed.append(codec.encode(part))
        size += len(packed[-1])
        if size > max_bytes or size > per_entry * min(n, top + slab) * m:
            return None
    return packed


class NarrowChunk:
    """A dense chunk of counts held in memory in at most one byte per entry.

    Counts of up to 16 bits are computed in float32 whatever their width,
    so counts below 256 are held as bytes that stand for the chunk in every
    computation (see :func:`compact_chunk`); 16-bit counts over 255 are held
    in their own type. The values are held plain (bytes only) or
    compressed (:func:`pack_bytes`, in slabs of :data:`PACKED_SLAB_BYTES`)
    and then decoded into a new array each time :attr:`values` is read:
    counts of a few electrons per pixel take 7–15 % of their float32 size,
    for about 4 ms per 16 MiB chunk and pass.

    Parameters
    ----------
    stored : ndarray or list of bytes
        The chunk as uint8 (or bool), or its slabs as :func:`pack_bytes`
        compressed them with ``codec``.
    shape : tuple of int
    dtype : numpy.dtype
        Type of the chunk as read.
    codec : numcodecs codec, optional
        The codec of packed slabs (None: ``stored`` is plain bytes).
    narrow : bool
        Whether the packed slabs hold bytes (else counts of type ``dtype``).

    Examples
    --------
    >>> counts = np.random.default_rng(0).integers(0, 4, (64, 256), dtype=np.uint16)
    >>> chunk = compact_chunk(counts, 10**6)
    >>> chunk.values.dtype.name, chunk.packed, chunk.nbytes < counts.size * 0.3
    ('uint8', True, True)
    >>> bool((chunk.dense() == counts).all()), chunk.dense().dtype.name
    (True, 'uint16')
    >>> compact_chunk(counts * 100, 10**6).values.dtype.name  # over a byte: its own type
    'uint16'
    """

    __slots__ = ("_stored", "_codec", "_type", "shape", "dtype")

    def __init__(self, stored, shape, dtype, codec=None, narrow=True):
        self._stored, self._codec = stored, codec
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._type = np.dtype(np.uint8) if narrow else self.dtype  # of the values

    @property
    def packed(self):
        """Whether the values are held compressed."""
        return self._codec is not None

    @property
    def values(self):
        """The chunk's values: bytes, or 16-bit counts over 255 in their own type
        (decoded into a new array when packed)."""
        if self._codec is None:
            return self._stored
        out = np.empty(self.shape, dtype=self._type)
        slab = _slab_rows(self.shape[1], self._type.itemsize)
        for index, packed in enumerate(self._stored):
            self._codec.decode(packed, out=out[index * slab:(index + 1) * slab])
        return out.view(np.bool_) if self.dtype.kind == "b" else out

    @property
    def nbytes(self):
        """Memory held, in bytes."""
        if self._codec is None:
            return self._stored.nbytes
        return sum(len(packed) for packed in self._stored)

    def dense(self):
        """The chunk as it was read: a new array of its own type."""
        return self.values.astype(self.dtype)


class HeldChunk:
    """A dense chunk of counts that the caller holds in memory: read in place, never copied.

    :func:`~hyperspy_hnmf.matrix.held_matrix` reads integer counts held in
    memory in passes; their dense chunks are views of the caller's array,
    which stand for the chunk in every computation as a
    :class:`NarrowChunk` does, and take no memory of their own.

    Parameters
    ----------
    values : ndarray, shape (n, m)
        A C-contiguous view of the caller's array.

    Examples
    --------
    >>> counts = np.arange(6, dtype=np.uint16).reshape(3, 2)
    >>> chunk = HeldChunk(counts[1:])
    >>> bool(np.shares_memory(chunk.values, counts)), chunk.nbytes, chunk.dense().tolist()
    (True, 0, [[2, 3], [4, 5]])
    """

    __slots__ = ("values",)

    #: Memory held by the chunk itself (the caller holds the values).
    nbytes = 0

    def __init__(self, values):
        self.values = values

    @property
    def shape(self):
        """Shape of the chunk."""
        return self.values.shape

    @property
    def dtype(self):
        """Type of the chunk's values."""
        return self.values.dtype

    def dense(self):
        """The chunk as it is held (the view itself)."""
        return self.values


def memory_mapped(block):
    """Whether an array is a view of a memory-mapped file (its pages are the OS's cache).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.ones((4, 4)))
    >>> memory_mapped(np.load(path, mmap_mode="r")[:2]), memory_mapped(np.ones(3))
    (True, False)
    """
    while block is not None:
        if isinstance(block, np.memmap):
            return True
        block = getattr(block, "base", None)
    return False


def compact_chunk(block, max_bytes):
    """A chunk as read, kept in memory in few bytes, or None when it should stay on disk.

    - A :class:`CompactChunk` (CSR) when the chunk is mostly zero (at most
      :data:`SPARSE_CHUNK_DENSITY` nonzero, both over the whole chunk and
      over its first :func:`leading_rows`, which decide how products read
      it) and holds valid data (finite, nonnegative).
    - Else a :class:`NarrowChunk` when it holds nonnegative integers of at
      most 16 bits, or booleans, and is not a view of a memory-mapped file
      (whose pages the operating system keeps already). Counts all below
      256 take one byte per entry, compressed by :func:`byte_codec` when
      that takes at most :data:`PACKED_FRACTION` of the bytes; 16-bit
      counts over 255 are kept only compressed in their own type, into at
      most :data:`PACKED_WIDE_BYTES` bytes per entry. Other chunks (floats,
      32-bit integers, counts that do not compress) are not kept dense: they
      would take more than a quarter of their float32 size.

    Either takes at most ``max_bytes``. Finding a chunk dense costs one test
    of its first rows; keeping it, one pass for its range and one
    compression (about 10 ms per 16 MiB of bytes, once per fit).

    Parameters
    ----------
    block : ndarray, shape (n, m)
        The chunk as read (any real dtype or bool).
    max_bytes : int
        Memory the kept chunk may take.

    Returns
    -------
    CompactChunk, NarrowChunk or None

    Examples
    --------
    >>> compact_chunk(np.eye(64, dtype=np.uint8), 10**6).nnz
    64
    >>> type(compact_chunk(np.ones((4, 4), dtype=np.uint16), 10**6)).__name__  # dense
    'NarrowChunk'
    >>> wide = np.random.default_rng(0).integers(256, 65536, (64, 64), dtype=np.uint16)
    >>> compact_chunk(wide, 10**6) is None  # over 255 and not compressible into a byte
    True
    >>> compact_chunk(np.eye(64, dtype=np.uint8), 10) is None  # over the budget
    True
    """
    block = np.asarray(block)
    if block.ndim != 2 or block.dtype.kind not in "uibf" or not block.dtype.isnative \
            or not block.flags.c_contiguous or block.size == 0:
        return None
    n, m = block.shape
    if mostly_zero(block):
        raw = block.view(np.uint8) if block.dtype.kind == "b" else block
        index_dtype = np.uint16 if m <= 1 << 16 else np.int32
        indptr = np.cumsum(_csr_counts(raw))
        nnz = int(indptr[-1])
        size = indptr.nbytes + nnz * (np.dtype(index_dtype).itemsize + raw.itemsize)
        if nnz <= SPARSE_CHUNK_DENSITY * n * m and size <= max_bytes:
            indptr, indices, values = csr_structure(raw, index_dtype, raw.dtype, indptr)
            if block.dtype.kind in "if" and values.size and not (
                    values.min() > 0 and (block.dtype.kind == "i" or np.isfinite(values).all())):
                return None  # negative or non-finite values: left to the checks of every pass
            return CompactChunk(indptr, indices, values, block.shape, block.dtype)
    return _narrow_chunk(block, max_bytes)


def _narrow_chunk(block, max_bytes):
    """:func:`compact_chunk`'s dense case: a :class:`NarrowChunk`, or None."""
    if block.dtype.kind not in "uib" or block.dtype.itemsize > 2 or memory_mapped(block) \
            or (block.dtype.kind == "i" and block.min() < 0):
        return None  # (negative values are left to the checks of every pass)
    narrow = block.dtype.itemsize == 1 or block.max() <= 255
    codec = byte_codec()  # (packed, a chunk over the budget as plain bytes may fit)
    packed = None if codec is None else pack_bytes(
        block, codec, max_bytes, narrow, PACKED_FRACTION if narrow else PACKED_WIDE_BYTES)
    if packed is not None:
        return NarrowChunk(packed, block.shape, block.dtype, codec, narrow)
    if not narrow or block.size > max_bytes:
        return None  # (counts over a byte are kept only packed)
    plain = block.copy() if block.dtype.kind == "b" else block.astype(np.uint8)
    return NarrowChunk(plain, block.shape, block.dtype)
