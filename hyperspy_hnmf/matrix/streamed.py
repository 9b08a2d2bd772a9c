"""A data matrix read chunk by chunk from a dask array: one pass per operation.

:class:`StreamedMatrix` wraps a 2D dask array (rows = probe positions,
columns = detector pixels or channels) chunked along rows only. Every
operation reads each chunk once, converts it to floating point in the task
(integer counts are never copied whole), checks it, and returns results that
are small (a few columns per row, or a few rows per column): the data never
sit in memory as a whole. The same code runs with dask's local schedulers and
under a ``dask.distributed`` client; large inputs of a pass (the components)
enter the graph once, as one key, not once per chunk.
"""

import operator
import os
import threading
import uuid
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numba
import numpy as np

from .._checks import check_finite, check_nonnegative, row_blocks
from .compact import (CompactChunk, HeldChunk, NarrowChunk, compact_chunk, csr_structure,
                      mostly_zero)

__all__ = ["StreamedMatrix", "as_row_chunks", "compute_dtype", "held_counts", "held_matrix",
           "is_sparse", "sparse_chunk", "to_csr", "value_range", "views_matrix"]

#: Target size of one row chunk in float32 bytes when chunks must be made.
TARGET_CHUNK_BYTES = 64 * 2**20

#: Power iterations of the randomized SVD behind the NNDSVD initializations of
#: data in memory (arrays, and integer counts read in place by
#: :func:`held_matrix`); data read from files take
#: :attr:`StreamedMatrix.power_iterations`.
IN_MEMORY_POWER_ITERATIONS = 4


def compute_dtype(dtype):
    """Floating type the solvers use for data of ``dtype``.

    Integers of up to 16 bits (counted electrons) and float32 give float32,
    everything else float64.

    Examples
    --------
    >>> compute_dtype(np.uint16), compute_dtype(np.int64), compute_dtype(np.float32)
    (dtype('float32'), dtype('float64'), dtype('float32'))
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32 or (dtype.kind in "ui" and dtype.itemsize <= 2) or dtype == np.bool_:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_row_chunks(data, n_signal_dims, target_bytes=TARGET_CHUNK_BYTES):
    """A 2D dask array (navigation × signal) chunked along rows only.

    Parameters
    ----------
    data : dask.array.Array
        Navigation axes first, then ``n_signal_dims`` signal axes.
    n_signal_dims : int
    target_bytes : int
        Float32 bytes per row chunk when the signal axes must be rechunked.

    Returns
    -------
    dask.array.Array, shape (n_navigation, n_signal)

    Warns
    -----
    UserWarning
        When the signal axes are split into chunks: each pattern must sit in
        one chunk, so the array is rechunked along the navigation axes only.

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.ones((8, 6, 4, 4), chunks=(2, 6, 4, 4))
    >>> as_row_chunks(x, 2).chunks
    ((12, 12, 12, 12), (16,))
    """
    n_nav_dims = data.ndim - n_signal_dims
    signal_shape = data.shape[n_nav_dims:]
    n_signal = int(np.prod(signal_shape))
    if any(len(chunks) > 1 for chunks in data.chunks[n_nav_dims:]):
        rows = max(1, target_bytes // (4 * n_signal))
        warnings.warn(
            f"The signal axes are split into chunks {data.chunks[n_nav_dims:]}; NMF needs "
            "whole patterns, so the data are rechunked along the navigation axes only "
            f"(about {rows} patterns per chunk). Save or load the data with chunks "
            "that span the signal axes to avoid this extra work.",
            UserWarning, stacklevel=3)
        flat_nav = data.reshape((-1,) + signal_shape)
        data = flat_nav.rechunk((rows,) + (-1,) * n_signal_dims)
    n_nav = int(np.prod(data.shape[: data.ndim - n_signal_dims]))
    return data.reshape(n_nav, n_signal)


def held_counts(X):
    """Whether ``X`` is integer counts held in memory: a 2D NumPy array of integers (not empty).

    The solvers read such an array in place, in passes (:func:`held_matrix`),
    as they read a dask array, instead of converting it whole to floats.
    (An empty array goes the float way, to its error message.)

    Examples
    --------
    >>> held_counts(np.ones((2, 2), dtype=np.uint16)), held_counts(np.ones((2, 2)))
    (True, False)
    """
    return isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "ui" and X.size > 0


def held_matrix(X, target_bytes=TARGET_CHUNK_BYTES):
    """Integer counts held in memory as a :class:`StreamedMatrix` that reads them in place.

    The counts are never converted whole: every pass reads row chunks of
    about ``target_bytes`` float32 bytes as the chunks of a dask array are
    read, through the same kernels (counts of up to 16 bits are computed in
    float32), so a fit takes the memory of its maps and components, not a
    float copy of the data (two to four times the counts' size). Dense
    chunks are views of ``X`` (:class:`~hyperspy_hnmf.matrix.compact.HeldChunk`);
    mostly-zero chunks are kept as CSR in their own type
    (:class:`~hyperspy_hnmf.matrix.compact.CompactChunk`, memory ∝ their
    nonzeros), as a :class:`StreamedMatrix` keeps chunks read from a file,
    so KL passes over them cost time ∝ their nonzeros. Passes run on a
    thread pool without a task graph and sum in a fixed order: results are
    bit-identical whatever the number of threads. The default initialization
    takes as many power iterations as for the same array as floats
    (:data:`IN_MEMORY_POWER_ITERATIONS`; passes over data in memory are
    cheap), so a fit agrees with that of ``X.astype(np.float32)`` up to
    rounding, where a dask array of ``X`` takes fewer.

    Parameters
    ----------
    X : ndarray of integers, shape (n, m)
        Copied once, in its own type, only if it is not C-contiguous.
    target_bytes : int
        Float32 bytes of one row chunk.

    Returns
    -------
    StreamedMatrix

    Examples
    --------
    >>> counts = np.arange(12, dtype=np.uint16).reshape(4, 3)
    >>> X = held_matrix(counts, target_bytes=24)  # two rows per chunk
    >>> X.n_chunks, X.compact_bytes, (X @ np.ones((3, 1), np.float32)).ravel().tolist()
    (2, 0, [3.0, 12.0, 21.0, 30.0])
    """
    if not held_counts(X):
        raise ValueError(f"held_matrix needs a 2D NumPy array of integers, got "
                         f"{type(X).__name__} {getattr(X, 'dtype', '')}.")
    matrix = views_matrix(X, target_bytes)
    matrix.power_iterations = IN_MEMORY_POWER_ITERATIONS  # the initialization of floats in memory
    return matrix


def views_matrix(X, target_bytes=TARGET_CHUNK_BYTES):
    """A 2D array held in memory as a :class:`StreamedMatrix` of row views (no copy).

    The chunks of :func:`held_matrix`, for any real array: dense chunks are
    views (:class:`~hyperspy_hnmf.matrix.compact.HeldChunk`), mostly-zero
    ones CSR in their own type; ``held_array`` is ``X``. The initialization
    takes the passes' :attr:`StreamedMatrix.power_iterations` (robust fits
    read every input this way, so that in-memory and lazy fits agree).

    Examples
    --------
    >>> X = views_matrix(np.arange(6.0).reshape(3, 2), target_bytes=8)
    >>> X.n_chunks, X.held_array is not None, X.sum(axis=1).tolist()
    (3, True, [1.0, 5.0, 9.0])
    """
    X = np.ascontiguousarray(X)
    if not X.dtype.isnative:
        X = X.astype(X.dtype.newbyteorder("="))
    n, m = X.shape
    rows = max(1, int(target_bytes) // (4 * max(m, 1)))
    # The graph of views that dask.array.from_array builds, without its copy of the array.
    name = f"hnmf-held-{uuid.uuid4().hex}"
    sizes = tuple(min(rows, n - start) for start in range(0, n, rows))
    graph = {(name, index, 0): X[index * rows:index * rows + size]
             for index, size in enumerate(sizes)}
    matrix = StreamedMatrix(da.Array(graph, name, (sizes, (m,)), meta=X[:0, :0]))
    budget = matrix._compact_budget()
    held = {}
    for index in range(matrix.n_chunks):
        view = X[matrix.rows(index)]
        kept = None
        if budget and mostly_zero(view):
            kept = compact_chunk(view, budget * view.shape[0] // max(n, 1))
        held[index] = kept if isinstance(kept, CompactChunk) else HeldChunk(view)
    matrix._compact = held
    matrix.held_array = X  # (for the rare step that needs all rows at once: map projections)
    return matrix


def _float_block(block, dtype, start):
    """A chunk as float, checked: finite and nonnegative, with the first bad row in messages."""
    values = np.asarray(block, dtype=dtype)
    if np.asarray(block).dtype.kind in "ub":
        return values  # unsigned counts: nothing to check
    try:
        check_finite(values, name="The data")
        # Read in passes by any caller (decomposition, HNMF, nmf, estimate_rank,
        # hnmfk, ...): the advice names the option where it exists.
        check_nonnegative(values, name="the data read in passes", where="NMF",
                          clip_option=True)
    except ValueError as error:
        message = str(error).replace(
            "or exclude the affected pixels with `navigation_mask`/`signal_mask`",
            "or crop them away (s.inav[...], s.isig[...])").replace(
            "pass clip_negative=True to set them to zero with a warning.",
            "pass clip_negative=True to set them to zero as the chunks are read, with a "
            "warning (decomposition(algorithm='hnmf'), HNMF); elsewhere (nmf, "
            "multilayer_nmf, estimate_rank, hnmfk) set them to zero lazily first, e.g. "
            "X = da.maximum(X, 0) (for a lazy signal: s.data = da.maximum(s.data, 0)).")
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)).all(axis=1))
        row = start + int(bad[0]) if bad.size else start
        raise ValueError(
            f"{message} Found first in row {row} (probe positions in scan order, row = "
            f"y * width + x), in the rows {start} to {start + values.shape[0] - 1} read "
            "together.") from None
    return values


def is_sparse(X):
    """Whether ``X`` is a sparse array: scipy.sparse, or pydata ``sparse`` (COO, GCXS, ...).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> is_sparse(sp.eye(2)), is_sparse(np.eye(2))
    (True, False)
    """
    import scipy.sparse as sp

    return sp.issparse(X) or type(X).__module__.split(".")[0] == "sparse"


def to_csr(X):
    """A 2D array as scipy CSR, duplicates summed: sparse (scipy, pydata) or dense.

    Memory and time ∝ the nonzeros: a pydata COO (canonical: duplicates
    summed, row-major sorted, as reshaping keeps it) becomes CSR without
    sorting; other sparse layouts go through scipy's conversion; a dense
    array is converted block by block (no dense temporary larger than one
    block). The dtype is kept.

    Parameters
    ----------
    X : ndarray, scipy.sparse matrix/array or pydata sparse array, 2D

    Returns
    -------
    scipy.sparse.csr_matrix

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> to_csr(sp.coo_matrix(([1.0, 2.0], ([0, 0], [1, 1])), shape=(2, 2))).toarray()
    array([[0., 3.],
           [0., 0.]])
    >>> to_csr(np.eye(3, dtype=np.float32)).nnz
    3
    """
    import scipy.sparse as sp

    if not is_sparse(X):
        X = np.asarray(X)
        return sp.vstack([sp.csr_matrix(X[rows]) for rows in row_blocks(*X.shape)],
                         format="csr")
    if sp.issparse(X):
        X = sp.csr_matrix(X)  # (may share the input's arrays)
        if not X.has_canonical_format:
            X = X.copy()  # summed in a copy: the input is left as it was
            X.sum_duplicates()
        return X
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D sparse array (samples × features), got {X.ndim}D; "
                         "reshape it to (probe positions, detector pixels) first.")
    if type(X).__name__ == "COO":
        # pydata COO arrays are canonical (duplicates summed, row-major sorted
        # unless built with sorted=True on unsorted input): check the order.
        rows, columns = X.coords
        n = int(X.shape[0])
        if rows.size < 2 or bool(np.all(rows[1:] >= rows[:-1])):
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
            index_type = np.int32 if X.shape[1] < 2**31 else np.int64
            return sp.csr_matrix((X.data, columns.astype(index_type), indptr), shape=X.shape)
        return sp.csr_matrix((X.data, (rows, columns)), shape=X.shape)
    return to_csr(X.to_scipy_sparse())


def sparse_chunk(block, dtype, start):
    """A sparse chunk as a checked CSR matrix of ``dtype`` (finite, ≥ 0), no dense copy.

    Parameters
    ----------
    block : scipy.sparse or pydata sparse array, shape (n, m)
    dtype : numpy.dtype
    start : int
        Index of the chunk's first row (for messages).

    Returns
    -------
    scipy.sparse.csr_matrix of ``dtype``

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> sparse_chunk(sp.eye(3, dtype=np.uint16), np.dtype(np.float32), 0).dtype
    dtype('float32')
    """
    X = to_csr(block)
    if X.dtype != dtype:
        X = X.astype(dtype)
    if X.data.size and not (np.all(np.isfinite(X.data)) and X.data.min() >= 0):
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        bad = rows[~(np.isfinite(X.data) & (X.data >= 0))]
        _float_block(np.asarray(X[int(bad[0])].toarray()), dtype, start + int(bad[0]))
    return X


def value_range(array):
    """``(max |x|, min x, sum x)`` of a 2D dask array in one pass (float64 sum).

    Dense chunks go through dask's reductions; sparse chunks (scipy or
    pydata, which dask's reductions do not all support) through their stored
    values, a chunk with implicit zeros having a minimum of at most 0. A
    :class:`StreamedMatrix` gives the range of its data as stored (without
    its scales or perturbation), from the chunks it keeps in memory where it
    has them, and keeps the chunks it reads as a pass would (this pass is
    not counted in :attr:`StreamedMatrix.passes`).

    Examples
    --------
    >>> import dask.array as da
    >>> value_range(da.from_array(np.array([[1.0, -2.0], [0.0, 3.0]]), chunks=1))
    (3.0, -2.0, 2.0)
    >>> value_range(StreamedMatrix(da.from_array(np.array([[1, 0], [0, 3]]), chunks=1)))
    (3.0, 0.0, 4.0)
    """
    import dask

    if isinstance(array, StreamedMatrix):
        if not is_sparse(array.array._meta):
            plain = StreamedMatrix(array.array, _compact=array._compact, _keeps=array._keeps)
            parts = np.array(plain.map_chunks(_chunk_range))  # (NaN propagates)
            return float(parts[:, 0].max()), float(parts[:, 1].min()), float(parts[:, 2].sum())
        array = array.array
    if not is_sparse(array._meta):
        result = dask.compute(da.absolute(array).max() if array.dtype.kind == "f" else array.max(),
                              array.min(), array.sum(dtype=np.float64))
    else:
        parts = dask.compute(*[dask.delayed(_sparse_range)(block)
                               for block in array.to_delayed().ravel()])
        result = (max(p[0] for p in parts), min(p[1] for p in parts), sum(p[2] for p in parts))
    return tuple(float(value) for value in result)


def _chunk_range(block, start):
    """``(max |x|, min x, sum x)`` of a raw or kept chunk (see :func:`value_range`)."""
    if isinstance(block, CompactChunk):
        values = block.values
        if not values.size:
            return 0.0, 0.0, 0.0
        zero = 0.0 if block.nnz < block.shape[0] * block.shape[1] else np.inf
        return float(values.max()), min(float(values.min()), zero), block.total()
    block = np.asarray(block)
    top = np.abs(block).max() if block.dtype.kind == "f" else block.max()
    return float(top), float(block.min()), float(block.sum(dtype=np.float64))


_chunk_range.reads_raw_chunks = True
_chunk_range.reads_compact_chunks = True


def _sparse_range(block):
    X = to_csr(block)
    data = X.data
    zero = 0.0 if X.nnz < X.shape[0] * X.shape[1] else np.inf
    if not data.size:
        return 0.0, zero, 0.0
    return float(np.abs(data).max()), min(float(data.min()), zero), float(data.sum(dtype=np.float64))


class StreamedMatrix:
    """A nonnegative data matrix held as a row-chunked dask array.

    Parameters
    ----------
    array : dask.array.Array, shape (n, m)
        Chunked along rows only (see :func:`as_row_chunks`).
    row_scale, column_scale : ndarray, optional
        The matrix represents ``X / outer(row_scale, column_scale)``
        (the Poisson weighting of the initialization).

    Notes
    -----
    Counted electrons are read from the file once per fit: the first pass
    that reads a chunk keeps it in memory (:func:`~hyperspy_hnmf.matrix.compact.compact_chunk`)
    and later passes compute from it instead of reading and decompressing
    the chunk again. A mostly-zero chunk (counts at low dose: at most
    :data:`~hyperspy_hnmf.matrix.compact.SPARSE_CHUNK_DENSITY` nonzero) is
    kept as a :class:`~hyperspy_hnmf.matrix.compact.CompactChunk` (CSR in the
    data's own type, e.g. 4 bytes per nonzero for uint16 counts); a dense
    chunk of counts as a
    :class:`~hyperspy_hnmf.matrix.compact.NarrowChunk` (at most one byte per
    entry: counts below 256 as bytes, LZ4-compressed when that pays; 16-bit
    counts over 255 compressed in their own type), unless the file is
    memory-mapped (its pages are in the operating system's cache already).
    Other chunks (floats, 32-bit integers, counts that do not compress into
    a byte per entry) are read at every pass. Every result is the same, bit
    for bit: the same kernels run on the same numbers (a function that does
    not take kept chunks gets the chunk rebuilt as it was read, perturbations
    included). A pass whose
    chunks are all kept runs on a thread pool the size of dask's local
    scheduler, without building a task graph, and sums in the same order.
    The views of :meth:`scaled`, :meth:`perturbed` and :meth:`resampled`
    share the chunks kept. They take at most :attr:`compact_cache_bytes` in
    all (each chunk its share by rows). Nothing is kept under a ``dask.distributed``
    client or dask's processes scheduler (the chunks would travel with every
    task) or for :meth:`subset`
    selections (tree nodes, which have their own row cache).

    Examples
    --------
    >>> import dask.array as da
    >>> X = StreamedMatrix(da.from_array(np.arange(12.0).reshape(4, 3), chunks=(2, 3)))
    >>> (X @ np.ones((3, 1))).ravel().tolist()
    [3.0, 12.0, 21.0, 30.0]
    >>> (X.T @ np.ones((4, 1))).ravel().tolist()
    [18.0, 22.0, 26.0]
    >>> X.sum(), X.sum(axis=1).tolist()
    (66.0, [3.0, 12.0, 21.0, 30.0])
    """

    #: Power iterations of the randomized SVD behind the NNDSVD
    #: initializations (each costs two passes over the data); a
    #: :func:`held_matrix` takes :data:`IN_MEMORY_POWER_ITERATIONS`, as the
    #: same array as floats would. Views (:meth:`scaled`...) keep it.
    power_iterations = 1

    #: The array a :func:`held_matrix` (or :func:`views_matrix`) reads in place
    #: (None for data read from files): the few steps that need every row at
    #: once (map projections of a tree's leaf maps) compute on it in memory.
    held_array = None

    #: Memory, in bytes, that the chunks kept in memory by one matrix and its
    #: views (one fit's data) may take (see Notes). None: a
    #: quarter of the machine's physical memory; 0: read every chunk from the
    #: file at every pass.
    compact_cache_bytes = None

    def __init__(self, array, row_scale=None, column_scale=None, _counter=None,
                 perturbation=None, _compact=None, _keeps=True):
        if not isinstance(array, da.Array) or array.ndim != 2:
            raise ValueError("StreamedMatrix needs a 2D dask array.")
        if len(array.chunks[1]) > 1:
            array = array.rechunk({1: -1})
        if not array.dtype.isnative:  # e.g. big-endian files: the kernels read native
            array = array.astype(array.dtype.newbyteorder("="))  # (chunk by chunk)
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = compute_dtype(array.dtype)
        self.row_scale = row_scale
        self.column_scale = column_scale
        self.starts = np.concatenate([[0], np.cumsum(array.chunks[0])]).astype(int)
        self._counter = _counter if _counter is not None else [0]
        self.perturbation = perturbation
        self.blocks = list(array.to_delayed().ravel())
        # Chunk index -> CompactChunk or NarrowChunk, or None once a chunk is known to
        # stay on disk.
        self._compact = {} if _compact is None else _compact
        self._keeps = _keeps

    @property
    def passes(self):
        """Number of passes over the data so far (shared with :meth:`scaled` copies)."""
        return self._counter[0]

    @property
    def n_chunks(self):
        """Number of row chunks."""
        return len(self.blocks)

    def rows(self, index):
        """The row slice of chunk ``index``."""
        return slice(int(self.starts[index]), int(self.starts[index + 1]))

    def _view(self, row_scale, column_scale, perturbation):
        """The same chunks (and those kept), read with other scales or noise."""
        view = StreamedMatrix(self.array, row_scale, column_scale, self._counter, perturbation,
                              self._compact, self._keeps)
        view.power_iterations = self.power_iterations
        return view

    def scaled(self, row_scale, column_scale):
        """The same data divided by ``outer(row_scale, column_scale)`` (no pass)."""
        return self._view(row_scale, column_scale, self.perturbation)

    @property
    def compact_bytes(self):
        """Memory taken by the chunks kept in memory (see Notes), in bytes."""
        return sum(chunk.nbytes for chunk in self._compact.values() if chunk is not None)

    def perturbed(self, level, seed, kind="uniform"):
        """The data times ``1 + U(-level, level)`` (``kind="uniform"``) or resampled as
        ``Poisson(X)`` (``kind="poisson"``, counts), the same noise at every pass (no pass).

        Each chunk draws its noise from a generator seeded by ``(seed, first
        row)``, so a pass reads the same perturbed data whatever the order
        or the worker (resampling for stability analysis of data read in
        passes). Zeros stay zero under both kinds, so a mostly-zero chunk
        draws its noise at its nonzeros only and is read as CSR.
        """
        return self._view(self.row_scale, self.column_scale, (kind, float(level), int(seed)))

    def resampled(self, draw):
        """The data resampled chunk by chunk by ``draw(chunk, start)`` in every pass (no pass).

        ``draw`` (e.g. :class:`~hyperspy_hnmf.solvers.PoissonResampler`) must
        give the same rows whatever the chunk they arrive in, so that every
        pass reads the same resample; the resample never sits in memory whole.

        Examples
        --------
        >>> import dask.array as da
        >>> X = StreamedMatrix(da.from_array(np.ones((4, 3)), chunks=(2, 3)))
        >>> X.resampled(lambda chunk, start: chunk * (start + 1)).sum(axis=1).tolist()
        [3.0, 3.0, 9.0, 9.0]
        """
        return self._view(self.row_scale, self.column_scale, draw)

    def map_chunks(self, function, per_chunk=None, shared=(), reduce=None, only=None):
        """Run ``function(block, start, *per_chunk[i], *shared)`` on every chunk, in one pass.

        ``block`` arrives as a checked float array (scaled if this matrix is
        scaled). ``shared`` arguments enter the graph once. ``only``: the
        indices of the chunks to read (default all; ``per_chunk`` is then
        indexed like ``only``). Sums run in a fixed pairwise order, so
        results are bit-identical whatever the scheduler or the worker that
        computes a chunk. ``reduce``:

        - ``None``: return the list of chunk results;
        - ``True``: sum the results pairwise in the graph (a tree; tuples and
          dicts element by element) and return the sum;
        - ``"second"``: results are pairs ``(own, summable)``; return the list
          of the first elements and the sum of the second ones.
        """
        budget = self._compact_budget()  # (checks compact_cache_bytes first)
        self._counter[0] += 1
        chosen = range(self.n_chunks) if only is None else only
        workers = _local_threads()
        if workers and all(self._compact.get(index) is not None for index in chosen):
            return self._map_kept(function, per_chunk, shared, reduce, chosen, workers)
        shared = [dask.delayed(value, pure=True) if isinstance(value, np.ndarray) else value
                  for value in shared]
        results, kept = [], {}
        for index, arguments in self._chunk_arguments(function, per_chunk, shared, chosen,
                                                      in_graph=True):
            if budget and index not in self._compact:
                # Read from the file: the task also returns the chunk kept compact, or None.
                share = budget * (self.starts[index + 1] - self.starts[index]) // self.shape[0]
                task = dask.delayed(_run_chunk_and_keep, pure=False)(share, *arguments)
                kept[index] = dask.delayed(operator.getitem)(task, 1)
                results.append(dask.delayed(operator.getitem)(task, 0))
            else:
                results.append(dask.delayed(_run_chunk, pure=False)(*arguments))
        if reduce is None:
            out, kept = dask.compute(results, kept)
            out = list(out)
        elif reduce == "second":
            own = [dask.delayed(operator.getitem)(r, 0) for r in results]
            total = _tree_sum([dask.delayed(operator.getitem)(r, 1) for r in results])
            own, total, kept = dask.compute(own, total, kept)
            out = list(own), total
        else:
            out, kept = dask.compute(_tree_sum(results), kept)
        self._compact.update(kept)
        return out

    def _map_kept(self, function, per_chunk, shared, reduce, chosen, workers):
        """:meth:`map_chunks` when every chunk is kept in memory: no task graph.

        The chunks run on a pool of as many threads as dask's local scheduler
        has (the kernels release the GIL), and the results are summed in the
        same pairwise order as in the graph: the same bits, without the
        scheduling of a graph (a few milliseconds a pass, a tenth of a pass
        over mostly-zero chunks).
        """
        tasks = [arguments for _, arguments in self._chunk_arguments(
            function, per_chunk, shared, chosen, in_graph=False)]
        # (synchronous scheduler, or one chunk: in this thread, as dask would)
        results = (_in_order(_thread_pool(workers), tasks, 2 * workers)
                   if workers > 1 and len(tasks) > 1 else (_run_chunk(*task) for task in tasks))
        if reduce is None:
            return list(results)
        if reduce == "second":
            own = []
            total = _pairwise((own.append(r[0]) or r[1] for r in results), _add)
            return own, total
        return _pairwise(results, _add)  # summed as they come: little held

    def _chunk_arguments(self, function, per_chunk, shared, chosen, in_graph):
        """``(index, arguments of _run_chunk)`` of the chosen chunks, kept ones from memory.

        ``in_graph``: the column scale enters a task graph once, as one key.
        """
        column_scale = None
        if self.column_scale is not None:
            column_scale = self.column_scale.astype(self.dtype)
            if in_graph:
                column_scale = dask.delayed(column_scale, pure=True)
        for position, index in enumerate(chosen):
            row_scale = (None if self.row_scale is None
                         else self.row_scale[self.rows(index)].astype(self.dtype))
            extra = per_chunk[position] if per_chunk is not None else ()
            block = self._compact.get(index) or self.blocks[index]
            yield index, (function, block, int(self.starts[index]), self.dtype, row_scale,
                          column_scale, self.perturbation, *extra, *shared)

    def _compact_budget(self):
        """Bytes that chunks may still be kept in, or 0 (see Notes)."""
        limit = self.compact_cache_bytes
        number = isinstance(limit, (int, np.integer, float)) and not isinstance(limit, bool)
        if limit is not None and not (number and limit >= 0):
            raise ValueError(
                f"StreamedMatrix.compact_cache_bytes must be None (a quarter of the machine's "
                f"memory) or a number of bytes >= 0 (0: keep no chunk in memory), got "
                f"{limit!r}.")
        if not self._keeps or len(self._compact) == self.n_chunks or not _local_threads():
            return 0
        return int(_physical_memory() // 4 if limit is None else limit)

    # -- row subsets (splitting trees, HNMFk) -----------------------------
    #: Row subsets of at most this many float64 bytes are read into memory
    #: once and kept (the most recent ones, up to this total) for the many
    #: products of a tree node's rank-2 fit; larger subsets are read in passes.
    row_cache_bytes = 512 * 2**20

    def subset(self, rows):
        """The same interface over the rows ``rows`` (no pass; a lazy selection).

        Examples
        --------
        >>> import dask.array as da
        >>> X = StreamedMatrix(da.from_array(np.arange(12.0).reshape(4, 3), chunks=(2, 3)))
        >>> X.subset(np.array([3, 0])).array.compute().tolist()
        [[9.0, 10.0, 11.0], [0.0, 1.0, 2.0]]
        """
        rows = np.asarray(rows, dtype=np.int64)
        row_scale = self.row_scale[rows] if self.row_scale is not None else None
        return StreamedMatrix(self.array[rows], row_scale, self.column_scale, self._counter,
                              self.perturbation, _keeps=False)

    def _by_chunk(self, rows):
        """Chunks holding ``rows`` and the local row positions in each, in sorted order."""
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        chunk_of = np.searchsorted(self.starts, ordered, side="right") - 1
        chunks = np.unique(chunk_of)
        local = [ordered[chunk_of == c] - self.starts[c] for c in chunks]
        return order, [int(c) for c in chunks], local

    def take(self, rows):
        """The rows ``rows`` as a float array (checked, scaled), in one pass over their chunks.

        Examples
        --------
        >>> import dask.array as da
        >>> X = StreamedMatrix(da.from_array(np.arange(8, dtype=np.uint8).reshape(4, 2),
        ...                                  chunks=(2, 2)))
        >>> X.take(np.array([2, 1])).tolist()
        [[4.0, 5.0], [2.0, 3.0]]
        """
        rows = np.asarray(rows, dtype=np.int64)
        order, chunks, local = self._by_chunk(rows)
        parts = self.map_chunks(_take_rows, per_chunk=[(i,) for i in local], only=chunks)
        out = np.empty((rows.size, self.shape[1]), dtype=self.dtype)
        out[order] = np.concatenate(parts) if parts else out[:0]
        return out

    def _row_statistics(self):
        if getattr(self, "_row_stats", None) is None:
            results = self.map_chunks(_row_statistics)
            self._row_stats = tuple(np.concatenate([r[i] for r in results]) for i in (0, 1))
        return self._row_stats

    @property
    def row_sums(self):
        """Sum of every row (float64; one pass, the first time)."""
        return self._row_statistics()[0]

    @property
    def row_squares(self):
        """Squared norm of every row (float64; one pass, the first time)."""
        return self._row_statistics()[1]

    def _cached_rows(self, rows):
        """RowData of ``rows`` held in memory when they fit :attr:`row_cache_bytes`, else None."""
        from .rows import RowData

        key = (rows.size, hash(rows.tobytes()))
        cache = self.__dict__.setdefault("_row_cache", {})
        if key in cache:
            return cache[key]
        size = rows.size * self.shape[1] * 8
        if size > self.row_cache_bytes:
            return None
        while cache and sum(d.shape[0] for d in cache.values()) * self.shape[1] * 8 + size \
                > self.row_cache_bytes:
            cache.pop(next(iter(cache)))
        cache[key] = RowData(self.take(rows))
        return cache[key]

    def times(self, rows, H):
        """``X[rows] @ H.T`` in float64 (``H``: few rows), as :class:`~.rows.RowData` does.

        Examples
        --------
        >>> import dask.array as da
        >>> X = StreamedMatrix(da.from_array(np.eye(3), chunks=(2, 3)))
        >>> X.times(np.array([2, 0]), np.ones((2, 3))).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
        """
        rows = np.asarray(rows, dtype=np.int64)
        cached = self._cached_rows(rows)
        if cached is not None:
            return cached.times(np.arange(rows.size, dtype=np.int64), H)
        order, chunks, local = self._by_chunk(rows)
        H = np.ascontiguousarray(H, dtype=np.float64)
        parts = self.map_chunks(_rows_times, per_chunk=[(i,) for i in local], shared=(H,),
                                only=chunks)
        out = np.empty((rows.size, H.shape[0]))
        out[order] = np.concatenate(parts)
        return out

    def t_times(self, rows, A):
        """``(X[rows].T @ A).T`` in float64, as :class:`~.rows.RowData` does."""
        rows = np.asarray(rows, dtype=np.int64)
        cached = self._cached_rows(rows)
        if cached is not None:
            return cached.t_times(np.arange(rows.size, dtype=np.int64), A)
        order, chunks, local = self._by_chunk(rows)
        A_sorted = np.asarray(A, dtype=np.float64)[order]
        bounds = np.cumsum([0] + [len(i) for i in local])
        per_chunk = [(i, A_sorted[bounds[c]:bounds[c + 1]]) for c, i in enumerate(local)]
        return self.map_chunks(_rows_t_times, per_chunk=per_chunk, only=chunks, reduce=True)

    def row(self, i):
        """Row ``i`` as a dense float64 vector (reads its chunk)."""
        return self.take(np.array([i]))[0].astype(np.float64)

    def __matmul__(self, B):
        B = np.asarray(B, dtype=self.dtype)
        parts, total = self.map_chunks(_right_product, shared=(B,), reduce="second")
        self._total = total  # the sum of all entries comes free with the pass
        return np.concatenate(parts)

    @property
    def T(self):
        """The transpose, for products ``X.T @ B`` (one pass, summed over chunks)."""
        return _Transposed(self)

    def sum(self, axis=None, dtype=np.float64):
        """Sum of all entries, of each row (``axis=1``) or of each column (``axis=0``).

        One pass (:meth:`statistics`), or none for the total when an earlier
        product pass gave it.
        """
        if axis is None and getattr(self, "_total", None) is not None:
            return float(self._total)
        rows, columns, _ = self.statistics()
        return {None: float(columns.sum()), 0: columns, 1: rows}[axis]

    def statistics(self):
        """Row sums, column sums and the squared Frobenius norm, in one pass."""
        results = self.map_chunks(_statistics)
        rows = np.concatenate([r[0] for r in results])
        columns = np.sum([r[1] for r in results], axis=0)
        self._total = float(columns.sum())
        return rows, columns, float(sum(r[2] for r in results))


class _Transposed:
    def __init__(self, matrix):
        self.matrix = matrix
        self.shape = matrix.shape[::-1]
        self.dtype = matrix.dtype

    def __matmul__(self, B):
        matrix = self.matrix
        B = np.asarray(B, dtype=matrix.dtype)
        per_chunk = [(B[matrix.rows(i)],) for i in range(matrix.n_chunks)]
        return matrix.map_chunks(_left_product, per_chunk=per_chunk, reduce=True)


def float_rows(block, dtype, start):
    """``(rows, values)`` of a raw chunk in row blocks of about a million entries.

    Each block is converted to ``dtype`` and checked on its own, so a chunk of
    integer counts is never converted whole: the products of a pass read the
    raw chunk once, block by block, while the float block is still in cache.

    Parameters
    ----------
    block : ndarray, shape (n, m)
        A raw chunk (any real dtype).
    dtype : numpy.dtype
        Floating type of the computation.
    start : int
        Index of the chunk's first row in the data (for messages).

    Yields
    ------
    rows : slice
    values : ndarray, shape (rows, m), of ``dtype``

    Examples
    --------
    >>> [(rows.start, values.dtype.name) for rows, values in
    ...  float_rows(np.ones((3, 2), dtype=np.uint8), np.dtype(np.float32), 0)]
    [(0, 'float32')]
    """
    for rows in row_blocks(*block.shape):
        yield rows, _float_block(block[rows], dtype, start + rows.start)


class RawChunk:
    """A raw chunk with the scales of a :meth:`StreamedMatrix.scaled` matrix.

    Chunk functions marked ``reads_scaled_chunks`` receive this instead of a
    scaled float copy: :func:`chunk_matrix` applies the scales block by block
    (dense) or to the nonzeros only (CSR), so a Poisson-weighted pass costs
    what an unweighted one does.

    Parameters
    ----------
    array : ndarray
        The chunk as stored.
    row_scale, column_scale : ndarray or None
        The chunk stands for ``array / outer(row_scale, column_scale)``.

    Examples
    --------
    >>> chunk = RawChunk(np.eye(2, dtype=np.uint16), np.array([1.0, 2.0]), None)
    >>> chunk.scaled_values(np.dtype(np.float32), 0).tolist()
    [[1.0, 0.0], [0.0, 0.5]]
    """

    def __init__(self, array, row_scale, column_scale):
        self.array, self.row_scale, self.column_scale = array, row_scale, column_scale
        self.shape = array.shape

    def scaled_values(self, dtype, start):
        """The whole chunk as checked, scaled floats (for kernels that need them)."""
        array = self.array.dense() if isinstance(self.array, CompactChunk) else self.array
        values = _float_block(array, dtype, start)
        return _apply_scales(values, self.row_scale, self.column_scale, slice(None))


def _apply_scales(values, row_scale, column_scale, rows):
    """``values / outer(row_scale[rows], column_scale)`` as a new array (``values`` untouched)."""
    if row_scale is None and column_scale is None:
        return values
    out = values / row_scale[rows, None] if row_scale is not None else values.copy()
    if column_scale is not None:
        out /= column_scale[None, :]
    return out


def _unwrap(block):
    """``(array, row_scale, column_scale)`` of a raw or :class:`RawChunk` block."""
    if isinstance(block, RawChunk):
        return block.array, block.row_scale, block.column_scale
    return block, None, None


class _DenseChunk:
    """Products of a raw dense chunk, converted block by block (see :func:`float_rows`).

    The scales of a weighted matrix act on the small factors, not on the
    chunk: ``(X / outer(a, b)) @ B = (X @ (B / b)) / a`` and
    ``Aᵀ (X / outer(a, b)) = ((A / a)ᵀ X) / b``, so a weighted product costs
    what an unweighted one does (no scaled copy of each block).
    """

    def __init__(self, block, dtype, start, row_scale=None, column_scale=None):
        self.block, self.dtype, self.start = block, dtype, start
        self.row_scale, self.column_scale = row_scale, column_scale

    def _values(self):
        for rows, values in float_rows(self.block, self.dtype, self.start):
            yield rows, _apply_scales(values, self.row_scale, self.column_scale, rows)

    def __matmul__(self, B):
        out = np.empty((self.block.shape[0], B.shape[1]), dtype=np.result_type(self.dtype, B))
        if self.column_scale is not None:
            B = B / self.column_scale[:, None]
        for rows, values in float_rows(self.block, self.dtype, self.start):
            product = values @ B
            if self.row_scale is not None:
                product /= self.row_scale[rows, None]
            out[rows] = product
        return out

    def left(self, A):
        """``A.T @ X`` (k × m), as float64."""
        out = np.zeros((A.shape[1], self.block.shape[1]))
        for rows, values in float_rows(self.block, self.dtype, self.start):
            weights = A[rows] if self.row_scale is None else A[rows] / self.row_scale[rows, None]
            out += weights.T @ values
        if self.column_scale is not None:
            out /= self.column_scale[None, :]
        return out

    def sums(self):
        """Total and squared norm, in float64."""
        total = norm2 = 0.0
        for _, values in self._values():
            flat = values.ravel()
            total += float(flat.sum(dtype=np.float64))
            norm2 += float(np.dot(flat, flat.astype(np.float64)))
        return total, norm2


class _SparseChunk:
    """Products of a mostly-zero chunk held as CSR."""

    def __init__(self, matrix):
        self.matrix = matrix

    def __matmul__(self, B):
        return np.asarray(self.matrix @ B)

    def left(self, A):
        return np.asarray((self.matrix.T @ A).T, dtype=np.float64)

    def sums(self):
        data = self.matrix.data.astype(np.float64)
        return float(data.sum()), float(data @ data)


def chunk_matrix(block, dtype, start):
    """A raw chunk ready for products: CSR when mostly zero, else dense row blocks.

    The density is estimated on the first rows; counted electrons at low dose
    go the sparse way, whose products touch only the nonzeros.

    Examples
    --------
    >>> chunk = chunk_matrix(np.eye(4, dtype=np.uint16), np.dtype(np.float32), 0)
    >>> type(chunk).__name__, (chunk @ np.ones((4, 1), np.float32)).ravel().tolist()
    ('_DenseChunk', [1.0, 1.0, 1.0, 1.0])
    """
    if is_sparse(block):
        return _SparseChunk(sparse_chunk(block, dtype, start))
    block, row_scale, column_scale = _unwrap(block)
    if row_scale is not None:
        row_scale = np.asarray(row_scale, dtype=dtype)
    if column_scale is not None:
        column_scale = np.asarray(column_scale, dtype=dtype)
    if not mostly_zero(block):
        block = block.dense() if isinstance(block, CompactChunk) else block
    else:
        # The same CSR matrix whether the chunk was read from the file or kept compact.
        matrix = (block.csr(dtype) if isinstance(block, CompactChunk)
                  else csr_chunk(block, dtype, start))
        if row_scale is not None or column_scale is not None:
            _scale_csr(matrix.indptr, matrix.indices, matrix.data,
                       _ones_if_none(row_scale, block.shape[0], dtype),
                       _ones_if_none(column_scale, block.shape[1], dtype))
        return _SparseChunk(matrix)
    return _DenseChunk(block, dtype, start, row_scale, column_scale)


def _ones_if_none(scale, size, dtype):
    return np.ones(size, dtype=dtype) if scale is None else scale


@numba.njit(parallel=True, cache=True, nogil=True)
def _scale_csr(indptr, indices, data, row_scale, column_scale):
    for i in numba.prange(indptr.size - 1):
        for position in range(indptr[i], indptr[i + 1]):
            data[position] = data[position] / row_scale[i] / column_scale[indices[position]]


def csr_chunk(block, dtype, start):
    """A raw chunk as a checked CSR matrix of ``dtype`` (no dense float copy).

    Integer counts are read twice by numba kernels (count, then fill), at
    about the speed of a sum; other types go through :func:`float_rows`.

    Examples
    --------
    >>> csr_chunk(np.eye(3, dtype=np.uint16), np.dtype(np.float32), 0).nnz
    3
    """
    import scipy.sparse as sp

    block = np.asarray(block)
    if block.dtype.kind not in "ui" or not block.flags.c_contiguous:
        return sp.vstack([sp.csr_matrix(values)
                          for _, values in float_rows(block, dtype, start)], format="csr")
    indptr, indices, data = csr_structure(block, np.int32, dtype)
    if block.dtype.kind == "i" and data.size and data.min() < 0:
        _float_block(block, dtype, start)  # raises the message with the rows
    return sp.csr_matrix((data, indices, indptr), shape=block.shape)


_POOL = {}
_POOL_LOCK = threading.Lock()


def _thread_pool(threads):
    """A pool of ``threads`` threads kept for the process (as dask keeps its own).

    Keyed by process too: a forked child has none of its parent's threads.
    """
    key = (os.getpid(), threads)
    with _POOL_LOCK:
        if key not in _POOL:
            _POOL[key] = ThreadPoolExecutor(threads, thread_name_prefix="hnmf-kept")
        return _POOL[key]


def _in_order(pool, tasks, ahead):
    """:func:`_run_chunk` of the tasks on ``pool``, yielded in order, at most ``ahead`` at once.

    Results are yielded in task order; no more than ``ahead`` tasks are
    queued or done but not yet taken, so few chunk results wait in memory.
    """
    running = deque()
    for task in tasks:
        running.append(pool.submit(_run_chunk, *task))
        if len(running) >= ahead:
            yield running.popleft().result()
    while running:
        yield running.popleft().result()


def _local_threads():
    """Threads of dask's current scheduler if it runs in this process, else 0.

    The synchronous scheduler: 1; threads: dask's ``num_workers`` or the CPU
    count; ``dask.distributed`` or processes: 0.
    """
    import dask.local
    import dask.threaded

    scheduler = dask.base.get_scheduler()
    if scheduler is dask.local.get_sync:
        return 1
    if scheduler is None or scheduler is dask.threaded.get:
        return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
    return 0


def _physical_memory():
    """The machine's physical memory in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows
        try:
            import psutil
        except ImportError:
            return 0
        return psutil.virtual_memory().total


def _run_chunk_and_keep(max_bytes, function, block, *arguments):
    """:func:`_run_chunk`, then the chunk kept compact (:func:`compact_chunk`) or None.

    The chunk is kept only once the function has accepted it (its checks
    ran), so a chunk with bad values is read, and refused, at every pass.
    """
    result = _run_chunk(function, block, *arguments)
    return result, (None if is_sparse(block) else compact_chunk(block, max_bytes))


def _run_chunk(function, block, start, dtype, row_scale, column_scale, perturbation, *args):
    drawn = perturbation is not None and not callable(perturbation)
    if isinstance(block, (NarrowChunk, HeldChunk)):  # its values are the chunk's counts,
        block = block.values  # computed in float32 alike (compute_dtype): read as the chunk
    if isinstance(block, CompactChunk):
        if perturbation is None and getattr(function, "reads_compact_chunks", False):
            if row_scale is None and column_scale is None:
                return function(block, start, *args)
            if getattr(function, "reads_scaled_chunks", False):
                return function(RawChunk(block, row_scale, column_scale), start, *args)
        # As a chunk read from the file: CSR when perturbed (below), else dense.
        block = block.csr(dtype) if drawn else block.dense()
    elif drawn and not is_sparse(block) and mostly_zero(np.asarray(block)):
        # Noise (Poisson or multiplicative) leaves zeros at zero: it is drawn
        # at the nonzeros of the chunk as CSR, whether read or kept.
        block = csr_chunk(block, dtype, start)
    if is_sparse(block):
        return _run_sparse_chunk(function, block, start, dtype, row_scale, column_scale,
                                 perturbation, *args)
    if getattr(function, "reads_raw_chunks", False) and perturbation is None:
        if row_scale is None and column_scale is None:
            return function(np.asarray(block), start, *args)
        if getattr(function, "reads_scaled_chunks", False):
            return function(RawChunk(np.asarray(block), row_scale, column_scale), start, *args)
    values = _float_block(block, dtype, start)
    if callable(perturbation):  # a resampler (bootstrap): values -> resampled values
        values = perturbation(values, start)
    elif perturbation is not None:
        kind, level, seed = perturbation
        rng = np.random.default_rng([seed, start])
        if kind == "poisson":
            values = rng.poisson(values).astype(values.dtype)
        else:
            noise = rng.random(values.shape, dtype=values.dtype)
            values = values * (1 - level + 2 * level * noise)
    if row_scale is not None:
        values = values / row_scale[:, None]
    if column_scale is not None:
        values = values / column_scale[None, :]
    return function(values, start, *args)


def _run_sparse_chunk(function, block, start, dtype, row_scale, column_scale, perturbation,
                      *args):
    """:func:`_run_chunk` for a sparse chunk: the function gets a checked CSR matrix.

    Scaling and perturbation act on the stored values only (zeros stay
    zero), so nothing is densified.
    """
    import scipy.sparse as sp

    values = sparse_chunk(block, dtype, start)
    if callable(perturbation):  # a resampler (bootstrap); it keeps CSR as CSR
        values = perturbation(values, start)
    elif perturbation is not None:
        kind, level, seed = perturbation
        rng = np.random.default_rng([seed, start])
        values = values.copy()
        if kind == "poisson":  # zeros stay zero: a Poisson draw of 0 is 0
            values.data = rng.poisson(values.data).astype(values.dtype)
            values.eliminate_zeros()
        else:
            values.data *= 1 - level + 2 * level * rng.random(values.data.shape,
                                                              dtype=values.dtype)
    if row_scale is not None:
        values = sp.csr_matrix(sp.diags(1 / row_scale) @ values)
    if column_scale is not None:
        values = sp.csr_matrix(values @ sp.diags(1 / column_scale))
    return function(values, start, *args)


def _pairwise(results, add):
    """``add`` of the results by pairs, then pairs of pairs...: a fixed order.

    The tree of pairing 0 + 1, 2 + 3, ... level by level (an odd one out
    waits for the next level), built as the results arrive: a partial sum
    is added as soon as its partner is there, so at most one per level is
    held (``results`` may be an iterator).
    """
    held = []  # (level, partial sum), levels decreasing
    for value in results:
        level = 0
        while held and held[-1][0] == level:
            value = add(held.pop()[1], value)
            level += 1
        held.append((level, value))
    value = held.pop()[1]
    while held:  # the odd ones out, from the lowest level up
        value = add(held.pop()[1], value)
    return value


def _tree_sum(results):
    """:func:`_pairwise` sum of delayed results, in the graph."""
    return _pairwise(results, dask.delayed(_add))


def _add(a, b):
    if isinstance(a, tuple):
        return tuple(_add(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {key: _add(a[key], b[key]) for key in a}
    return a + b


def _right_product(block, start, B):
    chunk = chunk_matrix(block, B.dtype, start)
    return chunk @ B, chunk.sums()[0]


def _left_product(block, start, B_rows):
    return chunk_matrix(block, B_rows.dtype, start).left(B_rows).T


def _statistics(block, start):
    if isinstance(block, CompactChunk):
        # A kept mostly-zero chunk: counts as CSR (their float64 sums are exact, the
        # same whatever the order), floats as read from the file (the same bits).
        block = (block.csr(compute_dtype(block.dtype)) if block.dtype.kind in "uib"
                 else block.dense())
    if is_sparse(block):
        data = block.data.astype(np.float64)
        rows = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
        columns = np.bincount(block.indices, weights=data, minlength=block.shape[1])
        return rows, columns, float(data @ data)
    rows, columns, norm2 = [], 0.0, 0.0
    for _, values in float_rows(block, compute_dtype(block.dtype), start):
        rows.append(values.sum(axis=1, dtype=np.float64))
        columns = columns + values.sum(axis=0, dtype=np.float64)
        flat = values.ravel()
        norm2 += float(np.dot(flat, flat.astype(np.float64)))
    return np.concatenate(rows), columns, norm2


_statistics.reads_compact_chunks = True
for _function in (_right_product, _left_product, _statistics):
    _function.reads_raw_chunks = True
for _function in (_right_product, _left_product):
    _function.reads_scaled_chunks = True  # they take a RawChunk when the matrix is scaled
    _function.reads_compact_chunks = True  # and a CompactChunk (see chunk_matrix)


def _take_rows(block, start, local):
    if is_sparse(block):
        return block[local].toarray()  # a few rows (a tree node's subset)
    return np.ascontiguousarray(block[local])


def _rows_times(block, start, local, H):
    return block[local].astype(np.float64) @ H.T


def _rows_t_times(block, start, local, A):
    return (block[local].T.astype(np.float64) @ A).T


def _row_statistics(block, start):
    if is_sparse(block):
        squared = block.multiply(block)
        return (np.asarray(block.sum(axis=1, dtype=np.float64)).ravel(),
                np.asarray(squared.sum(axis=1, dtype=np.float64)).ravel())
    sums, squares = [], []
    for _, values in float_rows(block, compute_dtype(block.dtype), start):
        sums.append(values.sum(axis=1, dtype=np.float64))
        squares.append(np.einsum("ij,ij->i", values, values, dtype=np.float64))
    return np.concatenate(sums), np.concatenate(squares)


_row_statistics.reads_raw_chunks = True
