"""Joint NMF of several datasets that share their maps: ``X_b ≈ W H_b``.

Every dataset ("block", "modality") of a joint fit has the same rows (probe
positions) and its own columns (detector pixels, energy channels), loss and
weight. The objective is ``Σ_b λ_b D_b(X_b | W H_b)`` with ``D_b`` the
Kullback-Leibler divergence (counts) or ``½‖·‖²`` (Frobenius). The shared maps
``W`` and every ``H_b`` are updated by multiplicative updates, the update of
``W`` summing the weighted numerators and denominators of all blocks
(Lee & Seung; joint/multi-view NMF, e.g. Liu et al., SDM 2013).

The data are seen only through :mod:`hyperspy_hnmf.matrix`: ``X @ B``,
``X.T @ A`` and the KL ratio products of :mod:`._ratio`, so NumPy, CSR and
dask data take one code path (lazy fits equal in-memory fits up to rounding).
They may mix: a block in memory beside one read in passes is read in place
(integer counts through :func:`~hyperspy_hnmf.matrix.held_matrix`, row views
for the initialization), and dense and sparse chunks are put side by side
chunk by chunk (:func:`_side_by_side`). Every block is checked first
(:func:`check_values`, :func:`check_joint_rank`), and messages name it.

The same loop holds components given by the user fixed or near a reference
(:class:`~hyperspy_hnmf.constraints.KnownComponent`), masks the maps at
labelled probe positions (:class:`~hyperspy_hnmf.constraints.PureRegion`),
and applies the map constraints of :mod:`hyperspy_hnmf.constraints` to the
shared maps. A fit of one block is an ordinary NMF with these extras.
"""

import uuid
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import scipy.sparse as sp
import scipy.stats

from .._checks import NumericalError, check_rank, check_real, loss_to_beta, row_blocks
from ..constraints.known import label_mask
from ..matrix import (ArrayMatrix, StreamedMatrix, as_data_matrix, held_counts, held_matrix,
                      is_chunked, is_sparse, to_csr)
from ..matrix.compact import SPARSE_CHUNK_DENSITY
from ..matrix.streamed import TARGET_CHUNK_BYTES, value_range
from ._init import (_least_squares_loadings, _poisson_weighted, check_init, initialize,
                    poisson_scales, successive_projection)
from ._linalg import as_generator, randomized_svd
from ._loop import intensity_order, record
from ._ratio import kl_data
from ._residuals import residual_pattern, row_statistics
from ._updates import MUUpdate

__all__ = ["JointResult", "joint_nmf", "noise_variance"]

#: Joint fits support these β: Kullback-Leibler (counts) and Frobenius.
_JOINT_BETAS = (1.0, 2.0)



@dataclass
class JointResult:
    """Outcome of :func:`joint_nmf`.

    Attributes
    ----------
    W : ndarray, shape (n, k)
        The shared maps, scaled so that the components of block 0 sum to 1.
    H : list of ndarray, shape (k, m_b)
        The components of every block.
    betas : list of float
        The loss of every block (1 KL, 2 Frobenius).
    weights : ndarray, shape (n_blocks,)
        The weights ``λ_b`` used (see :func:`joint_nmf`).
    divergences : ndarray, shape (n_blocks,)
        ``D_b(X_b | W H_b)`` at the returned factors, unweighted.
    contributions : ndarray, shape (n_blocks,)
        Effective contribution of every block: ``λ_b D_b / Σ λ D``, the
        share of the weighted objective (sums to 1).
    objective : ndarray
        Weighted objective after initialization and after every iteration.
    n_iter : int
    converged : bool
    known_checks : list of dict
        For each known component: the residual check of
        :func:`check_known_components` (``statistic`` = G/df, ``df``,
        ``dispersion``, ``F``, ``p_value``, ``change``, ``residual_map``,
        ``contradicted``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W = rng.random((30, 2))
    >>> result = joint_nmf([W @ rng.random((2, 8)), W @ rng.random((2, 5))], 2,
    ...                    max_iter=50, random_state=0)
    >>> [H.shape for H in result.H], round(float(result.contributions.sum()), 6)
    ([(2, 8), (2, 5)], 1.0)
    """

    W: np.ndarray
    H: list
    betas: list
    weights: np.ndarray
    divergences: np.ndarray
    contributions: np.ndarray
    objective: np.ndarray
    n_iter: int
    converged: bool
    known_checks: list = field(default_factory=list)

    def block_factors(self, b):
        """Maps and components of block ``b`` in the package's canonical scale.

        The components of block ``b`` sum to 1 and the maps carry the
        intensity of that block (counts of block ``b`` at every position),
        so ``maps @ components`` is the model of ``X_b``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = rng.random((10, 2)) @ rng.random((2, 4))
        >>> result = joint_nmf([X, 2 * X], 2, max_iter=20, random_state=0)
        >>> W1, H1 = result.block_factors(1)
        >>> H1.sum(axis=1).round(6).tolist()
        [1.0, 1.0]
        """
        H = self.H[b]
        sums = H.sum(axis=1)
        scale = np.where(sums > 0, sums, 1.0)
        return self.W * scale[None, :], H / scale[:, None]


class _Block:
    """One dataset of a joint fit: its data, loss, weight and fixed statistics.

    ``source`` is the array held in memory (NumPy or CSR) that the
    initialization reads row views of (default: the array of data in
    memory), or None for data read in passes.
    """

    def __init__(self, X, beta, source=None):
        self.data = as_data_matrix(X)
        self.beta = beta
        self.source = self.data.array if isinstance(self.data, ArrayMatrix) else source
        if beta == 1:
            # In memory the CSR copy (and its transpose) is built once per fit.
            self.kl = kl_data(self.data if is_chunked(self.data) else self.data.array)
            self.sum = self.kl.sum
        else:
            self.kl = None
            self.norm2 = self.data.statistics()[2]

    @property
    def shape(self):
        return self.data.shape

    def map_products(self, W, Ht):
        """Numerator and denominator of the map update (one pass)."""
        if self.beta == 1:
            numerator, _ = self.kl.right(W, Ht, Ht)
            return numerator, np.broadcast_to(Ht.sum(axis=0)[None, :], W.shape)
        return _f64(self.data @ Ht), W @ (Ht.T @ Ht)

    def component_products(self, W, Ht):
        """Numerator and denominator of the component update, and ``D_b`` at ``(W, Ht)`` (one pass)."""
        if self.beta == 1:
            numerator, data_term = self.kl.left(W, Ht, W, True)
            model_total = float(W.sum(axis=0) @ Ht.sum(axis=0))
            return (numerator, np.broadcast_to(W.sum(axis=0)[None, :], Ht.shape),
                    data_term - self.sum + model_total)
        numerator = _f64(self.data.T @ W)
        gram = W.T @ W
        divergence = 0.5 * (self.norm2 - 2.0 * float(np.sum(numerator * Ht))
                            + float(np.sum(gram * (Ht.T @ Ht))))
        return numerator, Ht @ gram, divergence

    def divergence(self, W, Ht):
        """``D_b(X_b | W Htᵀ)`` (one pass)."""
        return self.component_products(W, Ht)[2]


def _f64(array):
    return np.asarray(array.toarray() if sp.issparse(array) else array, dtype=np.float64)


def _in_chunks(data, function):
    """``function(chunk, start)`` of every row chunk, listed in order.

    Data read in passes give their chunks (one pass); data held in memory
    are read in row blocks of one chunk's size
    (:data:`~hyperspy_hnmf.matrix.streamed.TARGET_CHUNK_BYTES` in float32,
    so that data smaller than a chunk are one block, as when read in
    passes): no temporary of the whole array is made.
    """
    if isinstance(data, ArrayMatrix):
        return [function(data.array[rows], rows.start)
                for rows in row_blocks(*data.shape, block_elements=TARGET_CHUNK_BYTES // 4)]
    return data.map_chunks(function)


def _is_counts(data):
    """Whether every value is an integer (counts): integer types, or read chunk by chunk."""
    if np.dtype(data.array.dtype).kind in "uib":
        return True
    return all(_in_chunks(data, _chunk_is_counts))


def _chunk_is_counts(block, start):
    values = block.data if sp.issparse(block) else np.asarray(block)
    return bool(np.all(values == np.round(values)))


def _chunk_difference_mad(block, start):
    values = block.toarray() if sp.issparse(block) else np.asarray(block, dtype=np.float64)
    if values.shape[1] < 2:
        return np.nan
    difference = np.diff(values, axis=1)
    return float(np.median(np.abs(difference - np.median(difference))))


def noise_variance(X):
    """Noise variance per entry, from the differences of neighbouring columns.

    ``σ̂ = 1.4826 · MAD(x[:, j+1] - x[:, j]) / √2``: the differences of
    neighbouring channels (pixels) cancel the smooth signal and keep twice the
    noise variance; the median absolute deviation ignores the few large
    differences at sharp peaks. The MAD is taken per row chunk, and the
    median over chunks is used (the same for any chunking of small data);
    data held in memory are read in row blocks of one chunk's size
    (:func:`_in_chunks`), never converted whole.

    Parameters
    ----------
    X : array-like, dask array or data matrix, shape (n, m)

    Returns
    -------
    float
        Never below ``1e-12`` times the mean square of ``X`` (noise-free data).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.outer(np.ones(200), np.linspace(0, 1, 300)) + rng.normal(0, 0.1, (200, 300))
    >>> round(noise_variance(X), 3)
    0.01
    """
    data = as_data_matrix(X)
    mad = float(np.nanmedian(_in_chunks(data, _chunk_difference_mad)))
    variance = (1.4826 * mad) ** 2 / 2.0
    floor = 1e-12 * data.statistics()[2] / max(data.shape[0] * data.shape[1], 1)
    return max(variance, floor, np.finfo(float).tiny)


def _block_names(names, count):
    """The datasets' names for messages: ``names`` checked, or ``"dataset b of joint_nmf"``."""
    if names is None:
        return [f"dataset {b} of joint_nmf" for b in range(count)]
    names = [str(name) for name in names]
    if len(names) != count:
        raise ValueError(f"names has {len(names)} entries for {count} datasets.")
    return names


def _as_block(X, name):
    """A dataset as given, checked for shape and type: in memory as it is, dask as a StreamedMatrix.

    Nothing is read or converted: lists become arrays, dask arrays a
    :class:`~hyperspy_hnmf.matrix.StreamedMatrix` (chunks read later).
    """
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    array = X.array if isinstance(X, (ArrayMatrix, StreamedMatrix)) else X
    if len(X.shape) != 2:
        raise ValueError(f"{name} has shape {tuple(X.shape)}; a joint fit takes 2D datasets "
                         "(probe positions × signal values): reshape it, e.g. "
                         "X.reshape(n_positions, -1).")
    check_real(array.dtype, name)
    return as_data_matrix(X) if is_chunked(X) else X


def check_joint_rank(n_components, n, sizes, name="n_components", signals=False):
    """Check the rank of a joint fit: an integer ≥ 1, smaller than the rows and the columns.

    The shared maps and the components of all datasets side by side form a
    factorization of the ``n × Σ m_b`` stacked data, so ``k`` must be
    smaller than ``min(n, Σ m_b)``, as ``output_dimension`` is for one
    signal.

    Parameters
    ----------
    n_components : int
    n : int
        Number of rows (probe positions).
    sizes : list of int
        Number of columns of every dataset.
    name : str
        The option's name in the message.
    signals : bool
        Word the message for signals (navigation and signal sizes).

    Returns
    -------
    int

    Examples
    --------
    >>> check_joint_rank(3, 100, [64, 16])
    3
    >>> check_joint_rank(300, 256, [256, 64], name="output_dimension", signals=True)
    Traceback (most recent call last):
    ...
    ValueError: output_dimension=300 is too large: it must be smaller than min(navigation size, signal sizes summed over the signals) = min(256, 256 + 64 = 320) = 256.
    """
    k = check_rank(n_components, (n, int(sum(sizes))))
    total = int(sum(sizes))
    limit = min(int(n), total)
    if k >= limit:
        rows, columns = (("navigation size", "signal sizes summed over the signals") if signals
                         else ("rows", "columns summed over the datasets"))
        if len(sizes) == 1:
            columns = "signal size" if signals else "columns"
        summed = " + ".join(str(int(m)) for m in sizes)
        summed = f"{summed} = {total}" if len(sizes) > 1 else summed
        raise ValueError(f"{name}={k} is too large: it must be smaller than min({rows}, "
                         f"{columns}) = min({int(n)}, {summed}) = {limit}.")
    return k


def check_values(X, name="X"):
    """Refuse data that NMF cannot fit: NaN or infinite, negative, or all zero.

    Data in memory are read in place (a sum and a minimum); data read in
    passes take one pass (:func:`~hyperspy_hnmf.matrix.streamed.value_range`,
    which also keeps chunks of counts in memory for the fit). Only bad data
    are read again, to count the bad values and find the first row holding
    one (:func:`_bad_values`).

    Parameters
    ----------
    X : ndarray, scipy.sparse or pydata sparse array, ArrayMatrix or StreamedMatrix
    name : str
        How the message calls the data.

    Raises
    ------
    ValueError
        Naming the data, what is wrong, where, and how to fix it.

    Examples
    --------
    >>> check_values(np.ones((2, 3)))
    >>> check_values(np.array([[1.0, -2.0], [0.0, -1.0]]), "dataset 1 of joint_nmf")
    Traceback (most recent call last):
    ...
    ValueError: Negative values in dataset 1 of joint_nmf: 2 negative entries (minimum -2), the first in row 0 (probe positions in scan order, row = y * width + x). ...
    """
    if isinstance(X, StreamedMatrix):
        maximum, minimum, total = value_range(X)
        if np.all(np.isfinite([maximum, minimum, total])) and minimum >= 0 and maximum > 0:
            return
        import dask

        found = dask.compute(*[dask.delayed(_bad_values)(block, int(start))
                               for block, start in zip(X.array.to_delayed().ravel(), X.starts)])
    else:
        array = X.array if isinstance(X, ArrayMatrix) else X
        if _valid_in_memory(array):
            return
        found = [_bad_values(array, 0)]
    _refuse(name, found)


def _stored_values(array):
    """The stored values of an array in memory: the nonzeros of sparse ones, else itself."""
    return np.asarray(array.data) if is_sparse(array) else np.asarray(array)


def _valid_in_memory(array):
    """Finite, nonnegative and not all zero, from reductions only (no temporary copy)."""
    values = _stored_values(array)
    if values.size == 0:
        return False
    if values.dtype.kind in "ub":
        return bool(values.max() > 0)
    if values.dtype.kind == "i":
        return bool(values.min() >= 0 and values.max() > 0)
    total = float(np.sum(values, dtype=np.float64))
    # Nonnegative finite values sum to 0 only if all are 0.
    return bool(np.isfinite(total) and values.min() >= 0 and total > 0)


def _bad_values(block, start):
    """What is wrong in a chunk (or an array in memory), read in row blocks.

    Returns ``(NaN count, infinite count, first non-finite row, negative
    count, smallest finite value, first negative row, largest finite value)``;
    the rows are absolute (``start`` added), None when there is none.
    """
    counts = np.zeros(3, dtype=np.int64)  # NaN, infinite, negative
    first_bad = first_negative = None
    minimum, maximum = np.inf, -np.inf
    if is_sparse(block):
        matrix = to_csr(block)
        row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        pieces = [(matrix.data, row_of)]
        if matrix.nnz < matrix.shape[0] * matrix.shape[1]:
            minimum = maximum = 0.0  # implicit zeros
    else:
        block = np.asarray(block)
        pieces = ((block[rows], rows.start) for rows in row_blocks(*block.shape))
    for values, rows in pieces:
        values = np.asarray(values)
        if values.dtype.kind == "f":
            nan, inf = np.isnan(values), np.isinf(values)
            counts[0] += int(np.count_nonzero(nan))
            counts[1] += int(np.count_nonzero(inf))
            bad = _first_row(nan | inf, rows)
            first_bad = bad if first_bad is None else first_bad
            finite = ~(nan | inf)
        else:
            finite = None
        negative = values < 0  # (False for NaN)
        counts[2] += int(np.count_nonzero(negative))
        row = _first_row(negative, rows)
        first_negative = row if first_negative is None else first_negative
        if values.size and values.dtype.kind == "f":
            minimum = min(minimum, float(np.min(values, where=finite, initial=np.inf)))
            maximum = max(maximum, float(np.max(values, where=finite, initial=-np.inf)))
        elif values.size:
            minimum, maximum = min(minimum, float(values.min())), max(maximum, float(values.max()))
    first_bad, first_negative = (None if row is None else start + int(row)
                                 for row in (first_bad, first_negative))
    return (int(counts[0]), int(counts[1]), first_bad, int(counts[2]), minimum, first_negative,
            maximum)


def _first_row(mask, rows):
    """The first row (of the block or chunk) where ``mask`` holds, or None.

    ``rows``: the offset of a dense row block, or the row of every stored value.
    """
    if isinstance(rows, np.ndarray):  # stored values of a sparse chunk
        hits = rows[mask]
        return int(hits.min()) if hits.size else None
    hits = np.flatnonzero(mask.any(axis=1) if mask.ndim == 2 else mask)
    return rows + int(hits[0]) if hits.size else None


def _refuse(name, found):
    """Raise the message of the first problem among the chunks' :func:`_bad_values`."""
    nan = sum(part[0] for part in found)
    inf = sum(part[1] for part in found)
    where = " (probe positions in scan order, row = y * width + x)"
    subject = name[:1].upper() + name[1:]  # (the start of a sentence)
    if nan or inf:
        row = min(part[2] for part in found if part[2] is not None)
        raise ValueError(
            f"{subject} contains NaN or infinity ({nan} NaN, {inf} infinite values), the first "
            f"in row {row}{where}: NMF needs finite data. Replace them (e.g. with 0 or a "
            "local mean), or crop them away: the affected probe positions from every "
            "dataset alike (s.inav[...] on every signal), or the affected channels from "
            "this one (s.isig[...]).")
    negative = sum(part[3] for part in found)
    if negative:
        minimum = min(part[4] for part in found)
        row = min(part[5] for part in found if part[5] is not None)
        raise ValueError(
            f"Negative values in {name}: {negative} negative entries (minimum "
            f"{minimum:.6g}), the first in row {row}{where}. NMF needs nonnegative data. "
            f"Add an offset (e.g. subtract the minimum, {-minimum:.6g}), or, if the negative "
            "values are noise around zero (e.g. after background subtraction), set them to "
            "zero first: np.clip(X, 0, None), for a signal s.data = np.clip(s.data, 0, None) "
            "(a lazy signal stays lazy).")
    if max(part[6] for part in found) <= 0:
        raise ValueError(
            f"{subject} is all zeros: there is nothing to factorize. Check that the data were "
            "loaded correctly, or leave this dataset out of the joint fit.")


def _resolve_losses(loss, blocks):
    losses = loss if isinstance(loss, (list, tuple)) else [loss] * len(blocks)
    if len(losses) != len(blocks):
        raise ValueError(f"loss has {len(losses)} entries for {len(blocks)} datasets.")
    betas = []
    for value, data in zip(losses, blocks):
        if isinstance(value, str) and value == "auto":
            beta = 1.0 if _is_counts(data) else 2.0
        else:
            beta = loss_to_beta(value)
        if beta not in _JOINT_BETAS:
            raise ValueError(f"Joint fits support the 'kl' and 'frobenius' losses, got β={beta:g}.")
        betas.append(beta)
    return betas


def _resolve_weights(weights, blocks):
    """The weights ``λ_b``, scaled to mean 1.

    ``"noise"``: ``λ_b = 1 / s_b`` with ``s_b = 1`` for KL (Poisson counts are
    their own noise scale) and the noise variance :func:`noise_variance` for
    Frobenius: every entry is weighted by its inverse noise variance, the
    joint maximum likelihood. ``"balanced"``: ``λ_b = 1 / (m_b s_b)``, so that
    pure noise costs every block the same whatever its number of channels.
    """
    if isinstance(weights, str):
        if weights not in ("noise", "balanced"):
            raise ValueError(f"weights must be 'noise', 'balanced' or one number per "
                             f"dataset, got {weights!r}.")
        noise = np.array([1.0 if block.beta == 1 else noise_variance(block.data)
                          for block in blocks])
        values = 1.0 / noise
        if weights == "balanced":
            values = values / np.array([block.shape[1] for block in blocks], dtype=float)
    else:
        values = np.asarray(weights, dtype=np.float64).ravel()
        if values.size != len(blocks) or not np.all(np.isfinite(values)) or values.min() <= 0:
            raise ValueError(f"weights must be {len(blocks)} positive numbers, got {weights!r}.")
    return values / values.mean()


def _stacked(blocks, weights):
    """All blocks side by side, each scaled by ``√λ_b / rms_b``, for the initialization.

    In memory: one array (CSR if any block is sparse). When any block is
    read in passes: a :class:`StreamedMatrix` whose row chunks are those of
    the widest block read in passes (the others rechunked to them), each
    chunk made when read by :func:`_stack_chunk` from the blocks' chunks and
    from row views of the blocks held in memory, which are never copied
    whole (``dask.array.from_array`` would copy them).
    """
    scales = []
    for block, weight in zip(blocks, weights):
        statistics = block.data.statistics()
        rms = np.sqrt(statistics[2] / max(block.shape[0] * block.shape[1], 1))
        scales.append(np.sqrt(weight / block.shape[1]) / max(rms, np.finfo(float).tiny))
    scales = np.asarray(scales) / max(scales)
    if any(block.source is None for block in blocks):
        widest = max((block for block in blocks if block.source is None),
                     key=lambda block: block.shape[1])
        rows = widest.data.array.chunks[0]
        arrays, layout = [], []
        for block in blocks:
            if block.source is None:
                layout.append(len(arrays))
                arrays.append(block.data.array.rechunk((rows, -1)))
            else:
                layout.append(block.source)
        width = sum(block.shape[1] for block in blocks)
        stacked = da.map_blocks(
            _stack_chunk, *arrays, layout=layout, scales=[float(scale) for scale in scales],
            chunks=(rows, (width,)), dtype=np.float32, meta=np.empty((0, 0), np.float32),
            name=f"hnmf-joint-stacked-{uuid.uuid4().hex}")  # (named: no hash of the views)
        return StreamedMatrix(stacked), scales
    arrays = [block.source * scale for block, scale in zip(blocks, scales)]
    if any(sp.issparse(array) for array in arrays):
        return sp.hstack(arrays, format="csr"), scales
    return np.hstack([np.asarray(array, dtype=np.float64) for array in arrays]), scales


def _stack_chunk(*chunks, layout, scales, block_info=None):
    """One row chunk of the stacked data of :func:`_stacked`.

    ``layout`` has, for every block, the index of its chunk in ``chunks``
    (data read in passes) or the array held in memory, whose rows of this
    chunk are taken as a view (CSR: a copy of these rows only).
    """
    start, stop = block_info[None]["array-location"][0]
    parts = [chunks[item] if isinstance(item, int) else item[start:stop] for item in layout]
    return _side_by_side(parts, scales)


def _side_by_side(parts, scales):
    """Row chunks of several blocks, each times its scale, side by side in float32.

    Dense chunks give a dense chunk, sparse ones (scipy.sparse or pydata
    ``sparse``, e.g. electron events) a CSR chunk. A mix is made CSR when at
    most :data:`~hyperspy_hnmf.matrix.compact.SPARSE_CHUNK_DENSITY` of its
    entries are nonzero (the products then read its nonzeros only), else
    dense; only this chunk is converted.

    Parameters
    ----------
    parts : list of ndarray or sparse arrays
        The same rows of every block.
    scales : sequence of float

    Returns
    -------
    ndarray or scipy.sparse.csr_matrix of float32

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> _side_by_side([np.ones((2, 1)), sp.csr_matrix(np.eye(2))], [2.0, 1.0]).tolist()
    [[2.0, 1.0, 0.0], [2.0, 0.0, 1.0]]
    >>> chunk = _side_by_side([np.eye(2), sp.csr_matrix((2, 30))], [1.0, 1.0])
    >>> type(chunk).__name__, chunk.nnz
    ('csr_matrix', 2)
    """
    sparse = [is_sparse(part) for part in parts]
    if any(sparse):
        matrices = [to_csr(part) if flag else None for part, flag in zip(parts, sparse)]
        nonzeros = sum(matrix.nnz if matrix is not None else int(np.count_nonzero(part))
                       for part, matrix in zip(parts, matrices))
        entries = parts[0].shape[0] * sum(part.shape[1] for part in parts)
        if all(sparse) or nonzeros <= SPARSE_CHUNK_DENSITY * entries:
            pieces = []
            for part, matrix, scale in zip(parts, matrices, scales):
                matrix = (matrix if matrix is not None else to_csr(np.asarray(part)))
                matrix = matrix.astype(np.float32, copy=True)  # (the data stay as they are)
                matrix.data *= np.float32(scale)
                pieces.append(matrix)
            return sp.hstack(pieces, format="csr")
        parts = [matrix.toarray() if matrix is not None else part
                 for part, matrix in zip(parts, matrices)]
    return np.hstack([np.asarray(part).astype(np.float32) * np.float32(scale)
                      for part, scale in zip(parts, scales)])


def _initial_factors(blocks, weights, k, init, rng, poisson):
    if isinstance(init, tuple):
        W, Hs = init
        if W is None or Hs is None or len(Hs) != len(blocks):
            raise ValueError("A user initialization of a joint fit is (W, [H_1, H_2, ...]).")
        W = np.array(W, dtype=np.float64)
        Hs = [np.array(H, dtype=np.float64) for H in Hs]
        for b, H in enumerate(Hs):
            if H.shape != (k, blocks[b].shape[1]) or W.shape != (blocks[b].shape[0], k):
                raise ValueError(f"Initial factors of dataset {b} have shapes {W.shape} and "
                                 f"{H.shape}, expected {(blocks[b].shape[0], k)} and "
                                 f"{(k, blocks[b].shape[1])}.")
        return W, Hs
    check_init(init)
    stacked, scales = _stacked(blocks, weights)
    if init == "spa":
        W, H = _spa(stacked, k, rng, poisson)
    else:
        W, H = initialize(stacked, k, init, rng, poisson_weighted=poisson)
    edges = np.cumsum([0] + [block.shape[1] for block in blocks])
    Hs = [H[:, edges[b]:edges[b + 1]].astype(np.float64) / scales[b] for b in range(len(blocks))]
    return W.astype(np.float64), Hs


def _spa(X, k, rng, poisson):
    """SPA initialization (:func:`~._init.spa_rows`) with the same arithmetic in memory and in passes.

    The purest rows of the (Poisson-weighted) stacked data become the
    components, the maps their nonnegative least-squares coefficients. The
    SVD always takes four power iterations, so lazy and in-memory data pick
    the same rows.
    """
    a = b = None
    streamed = isinstance(X, StreamedMatrix)
    if poisson:
        a, b = poisson_scales(X)
        X = X.scaled(a, b) if streamed else _poisson_weighted(X)[0]
    U, S, _ = randomized_svd(X, k, rng, n_power_iter=4)
    row_sums = X.sum(axis=1) if streamed else np.asarray(X.sum(axis=1)).ravel()
    rows = np.asarray(successive_projection(U * S, row_sums, k))
    if rows.size < k:
        rows = np.concatenate([rows, rng.choice(np.setdiff1d(np.arange(X.shape[0]), rows),
                                                k - rows.size, replace=False)])
    H = X.take(rows) if streamed else X[rows]
    H = _f64(H)
    W = _least_squares_loadings(X, H)
    W[:, W.sum(axis=0) == 0] = max(float(X.sum()) / (X.shape[0] * X.shape[1]), 1e-12) / k
    if poisson:
        W, H = W * a[:, None], H * b[None, :]
    return W, H


def _check_known(known, blocks, k):
    known = list(known or [])
    seen = set()
    for item in known:
        if item.block >= len(blocks):
            raise ValueError(f"{item!r} names dataset {item.block}; there are {len(blocks)}.")
        if item.index >= k:
            raise ValueError(f"{item!r} names component {item.index}; the fit has {k}.")
        if item.reference.size != blocks[item.block].shape[1]:
            raise ValueError(f"{item!r} has {item.reference.size} values; dataset {item.block} "
                             f"has {blocks[item.block].shape[1]} signal pixels.")
        if (item.block, item.index) in seen:
            raise ValueError(f"Two known components for component {item.index} of dataset "
                             f"{item.block}.")
        seen.add((item.block, item.index))
    return known


#: Iterations of the short trial fits that place the known components (:func:`_match_known`).
_MATCH_ITERATIONS = 20


def _match_known(items, lam, W, Hs, known, options):
    """Permute the initial components so that each known one replaces the one it stands for.

    The initialization orders its components arbitrarily, and on counted
    data every pattern contains the matrix background, so neither the
    correlation of patterns nor the divergence right after the swap says
    reliably which one the reference stands for; holding it in a slot that
    started as another phase loses that phase. For every known component in
    turn, each free slot ``c`` is tried in a short fit (``_MATCH_ITERATIONS``
    iterations, the reference held in ``c`` and the components placed so
    far held in theirs); the slot of the lowest objective moves to the
    component's index.
    """
    import copy

    k = W.shape[1]
    placed = []
    for item in known:
        best, best_value = item.index, np.inf
        for c in range(k):
            if c in {other.index for other in placed}:
                continue
            trial = copy.copy(item)
            trial.index = c
            fit = _fit(items, k, lam, (W, Hs), _MATCH_ITERATIONS, 0.0, options,
                       placed + [trial], reorder=False)
            value = float(fit.objective[-1])
            if value < best_value:
                best, best_value = c, value
        order = np.arange(k)
        order[[best, item.index]] = order[[item.index, best]]
        W = W[:, order]
        Hs = [H[order] for H in Hs]
        placed.append(item)
    return W, Hs


def _project_known(known, Hts):
    for item in known:
        item.project(Hts[item.block][:, item.index])


def _mask_labels(labels, W):
    if labels is not None:
        rows, allowed = labels
        W[rows] *= allowed


def _normalize(W, Hts):
    """Components of block 0 sum to 1, the maps carry the scale (in place)."""
    sums = Hts[0].sum(axis=0)
    scale = np.where(sums > 0, sums, 1.0)
    W *= scale[None, :]
    for Ht in Hts:
        Ht /= scale[None, :]


def joint_nmf(blocks, n_components, *, loss="auto", weights="noise", init="spa",
              max_iter=500, tol=1e-6, random_state=None, constraints=None, groups=None,
              map_grid=None, known_components=None, pure_regions=None, callback=None,
              names=None):
    """Joint NMF ``X_b ≈ W H_b`` of datasets that share their probe positions.

    Parameters
    ----------
    blocks : list of array-like, scipy.sparse, dask arrays or data matrices
        The datasets, each of shape ``(n, m_b)``: the same ``n`` rows (probe
        positions, in the same order), any number of columns. Finite,
        nonnegative and not all zero (checked before the fit, see
        :func:`check_values`). Dask arrays are read chunk by chunk (two
        passes per dataset and iteration; dense and sparse chunks, e.g.
        electron events, mix); the maps ``W`` and components stay in memory.
        Arrays held in memory may be combined with dask arrays: they are
        read in place (integer counts through
        :func:`~hyperspy_hnmf.matrix.held_matrix`, row views for the
        initialization), never copied whole.
    n_components : int
        Number of components ``k`` (shared maps), smaller than the number
        of rows and than the total number of columns (:func:`check_joint_rank`).
    loss : "auto", str or float, or a list of them (one per dataset)
        ``"kl"`` (Poisson counts) or ``"frobenius"``; ``"auto"`` picks KL for
        data whose values are all integers (counts), else Frobenius.
    weights : "noise", "balanced" or sequence of float
        ``λ_b`` in ``Σ_b λ_b D_b``. ``"noise"`` (default): ``λ_b ∝ 1 / s_b``,
        with ``s_b = 1`` for KL (Poisson noise is its own scale) and ``s_b``
        the noise variance estimated by :func:`noise_variance` for Frobenius:
        every entry counts by its inverse noise variance (joint maximum
        likelihood; a dataset with more channels or counts carries more
        information and counts more). ``"balanced"``: ``λ_b ∝ 1 / (m_b s_b)``,
        every dataset costs the same at its noise level whatever its number
        of channels. Numbers are used as given (scaled to mean 1). The
        effective contribution of every dataset (its share of the weighted
        objective) is reported in the result.
    init : str or tuple, default "spa"
        A method of :func:`~hyperspy_hnmf.solvers._init.initialize` applied to
        the datasets side by side (each scaled by its weight and its RMS;
        Poisson-weighted when all losses are KL), or ``(W, [H_1, H_2, ...])``.
        ``"spa"`` (the purest probe positions) finds the planted phases of
        ``benchmarks/bench_joint.py`` where the SVD-based starts end in a
        local minimum.
    max_iter : int, default 500
    tol : float, default 1e-6
        Stop when the weighted objective changes by less than this fraction.
    random_state : None, int or numpy.random.Generator
    constraints : Constraint or list of Constraint, optional
        Map constraints of :mod:`hyperspy_hnmf.constraints` (``MapResolution``,
        ``Penalty(on="maps")``, map ``Projection``), applied to the shared maps.
    groups : dict, optional
        Named groups of components the constraints refer to.
    map_grid : Grid or tuple of int, optional
        Shape (and calibration) of one map, for map constraints.
    known_components : list of KnownComponent, optional
        Components held fixed or within a tolerance of a reference. After
        the fit each is checked against the data (see ``known_checks``).
    pure_regions : list of PureRegion, optional
        Probe positions that hold one component only.
    callback : callable, optional
        ``callback(iteration, objective)`` after every iteration.
    names : list of str, optional
        How error messages call every dataset; default ``"dataset b of
        joint_nmf"`` (:func:`hyperspy_hnmf.joint_decomposition` names the
        signals).

    Returns
    -------
    JointResult

    Raises
    ------
    ValueError
        Before anything is fitted, for data that are not finite, have
        negative values or are all zero (naming the dataset, the counts and
        the first row concerned), a rank ``k`` too large for the data, and
        constraints on the components (a joint fit constrains its shared
        maps only).

    Warns
    -----
    UserWarning
        When the data contradict a known component (likelihood-ratio check
        of :func:`check_known_components`).

    Examples
    --------
    Two modalities with the same three maps; each alone sees only two
    distinct patterns, together they separate all three:

    >>> rng = np.random.default_rng(1)
    >>> W = rng.random((200, 3)) ** 4
    >>> A = np.array([[1.0, 0, 0, 1], [0, 1, 1, 0], [0, 1, 1, 0]])   # 1 and 2 look alike
    >>> B = np.array([[1.0, 1, 0], [1.0, 1, 0], [0, 0, 1]])          # 0 and 1 look alike
    >>> XA, XB = rng.poisson(50 * W @ A), rng.poisson(50 * W @ B)
    >>> result = joint_nmf([XA, XB], 3, max_iter=1000, random_state=0)
    >>> result.betas
    [1.0, 1.0]
    >>> r = np.corrcoef(W.T, result.W.T)[:3, 3:]
    >>> bool(np.all(r.max(axis=1) > 0.9))
    True
    """
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError("blocks must be a non-empty list of datasets.")
    names = _block_names(names, len(blocks))
    raw = [_as_block(X, name) for X, name in zip(blocks, names)]
    n = raw[0].shape[0]
    for b, X in enumerate(raw):
        if X.shape[0] != n:
            raise ValueError(f"All datasets need the same probe positions: dataset 0 has {n} "
                             f"rows, dataset {b} has {X.shape[0]}.")
    k = check_joint_rank(n_components, n, [X.shape[1] for X in raw])
    plan = _map_plan(constraints, groups, k, map_grid, n)
    labels = label_mask(list(pure_regions or []), n, k)
    known = _check_known(known_components, raw, k)
    for X, name in zip(raw, names):  # before any conversion or fit
        check_values(X, name)
    reads_in_passes = any(isinstance(X, StreamedMatrix) for X in raw)
    data, sources = [], []
    for X in raw:
        if reads_in_passes and held_counts(X):
            # Counts in memory read in place, never converted whole.
            data.append(held_matrix(X, target_bytes=TARGET_CHUNK_BYTES))
            sources.append(X)
        else:
            data.append(as_data_matrix(X))
            sources.append(None)  # (an array in memory is its own source)
    betas = _resolve_losses(loss, data)
    items = [_Block(X, beta, source) for X, beta, source in zip(data, betas, sources)]
    lam = _resolve_weights(weights, items)
    options = dict(maps_side=plan.maps if plan is not None else None, labels=labels,
                   callback=callback)
    W, Hs = _initial_factors(items, lam, k, init, as_generator(random_state),
                             poisson=all(b == 1 for b in betas))
    W = np.maximum(W, 1e-3 * max(float(W.mean()), 1e-12))
    Hs = [np.maximum(H, 1e-3 * max(float(H.mean()), 1e-12)) for H in Hs]
    if known and not isinstance(init, tuple):
        W, Hs = _match_known(items, lam, W, Hs, known, dict(options, callback=None))
    result = _fit(items, k, lam, (W, Hs), max_iter, tol, options, known)
    result.known_checks = check_known_components(result, items, known, options)
    return result


def _fit(items, k, lam, start, max_iter, tol, options, known, reorder=True):
    """The alternating multiplicative updates of :func:`joint_nmf` from ``start = (W, Hs)``."""
    maps_side, labels = options["maps_side"], options["labels"]
    W = np.array(start[0], dtype=np.float64)
    Hts = [np.array(H, dtype=np.float64).T.copy() for H in start[1]]
    _project_known(known, Hts)
    _mask_labels(labels, W)
    if maps_side is not None:
        maps_side.project(W)
    update = MUUpdate(1.0)  # β = 1 and 2 share the exponent 1: one update for both

    def penalty():
        return maps_side.penalty_value(W) if maps_side is not None else 0.0

    history = [float(lam @ [block.divergence(W, Ht) for block, Ht in zip(items, Hts)])
               + penalty()]
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        numerator = np.zeros_like(W)
        denominator = np.zeros_like(W)
        for weight, block, Ht in zip(lam, items, Hts):
            top, bottom = block.map_products(W, Ht)
            numerator += weight * top
            denominator += weight * bottom
        update.apply_ratio(W, numerator, denominator, side=maps_side)
        _mask_labels(labels, W)
        objective = 0.0
        for weight, block, Ht in zip(lam, items, Hts):
            top, bottom, divergence = block.component_products(W, Ht)
            objective += weight * divergence
            update.apply_ratio(Ht, top, bottom)
        _project_known(known, Hts)
        _normalize(W, Hts)
        if record(history, objective + penalty(), iteration, options["callback"], tol):
            converged = True
            break

    fixed = {item.index for item in known} | (
        set(np.flatnonzero(labels[1].any(axis=0)).tolist()) if labels is not None else set())
    order_blocks = [np.array(sorted(set(range(k)) - fixed))] + [np.array([j]) for j in fixed]
    order = (intensity_order(W.sum(axis=0), [block for block in order_blocks if block.size])
             if reorder else np.arange(k))
    W = np.ascontiguousarray(W[:, order])
    Hs = [np.ascontiguousarray(Ht[:, order].T) for Ht in Hts]
    divergences = np.array([block.divergence(W, H.T) for block, H in zip(items, Hs)])
    for name, value in [("maps", W)] + [(f"components of signal {b}", H)
                                         for b, H in enumerate(Hs)] + [("divergence", divergences)]:
        if not np.isfinite(np.sum(value, dtype=np.float64)):
            raise NumericalError(
                f"The joint fit ended with NaN or infinite {name} after {iteration} iterations; "
                "nothing was stored. Check the data for NaN/inf or extreme values, or fix the "
                "weights.")
    weighted = lam * divergences
    total = weighted.sum()
    contributions = weighted / total if total > 0 else np.full(len(items), 1 / len(items))
    return JointResult(W=W, H=Hs, betas=[block.beta for block in items], weights=lam,
                       divergences=divergences, contributions=contributions,
                       objective=np.asarray(history), n_iter=iteration, converged=converged)


def _map_plan(constraints, groups, k, map_grid, n):
    """The constraints of the shared maps, checked; a constraint on the components is refused.

    The components of a joint fit are one set per dataset, each on its own
    signal grid, and the joint updates constrain none of them, so a
    component constraint (``ContinuousIntensity``, ``Penalty(on="components")``,
    ``Projection(on="components")``) is refused whatever the grids.
    """
    from ..constraints import Penalty, Projection, build_plan
    from ..constraints.plan import _as_constraint_list

    if constraints is None and groups is None:
        return None
    for constraint in _as_constraint_list(constraints):
        if constraint.on == "components":
            raise ValueError(
                f"{constraint._describe()} constrains the components, but a joint fit "
                "(joint_decomposition, joint_nmf, or a decomposition with known_components "
                "or pure_regions) shares its maps and constrains only them: MapResolution, "
                "Penalty(on='maps') and Projection(on='maps'). For components of one signal "
                "that follow this constraint, decompose that signal alone without known "
                "components or pure regions (s.decomposition(algorithm='hnmf', "
                "constraints=[...])); else leave the constraint out.")
        if map_grid is None and not isinstance(constraint, (Penalty, Projection)):
            raise ValueError(
                f"{constraint._describe()} needs the shape of the maps: pass "
                "map_grid=(rows, columns) of the scan, or a Grid(shape, scale, units), to "
                "joint_nmf (joint_decomposition takes it from the signals).")
    plan = build_plan(constraints, k, groups=groups, map_grid=map_grid)
    if plan.maps.grid is not None and plan.maps.grid.size != n:
        raise ValueError(f"map_grid has {plan.maps.grid.size} positions, the data {n}.")
    return plan if plan.active else None


#: Iterations of every continued fit in :func:`check_known_components`.
_CHECK_ITERATIONS = 100

#: Significance level below which a known component is reported as contradicted.
KNOWN_COMPONENT_ALPHA = 1e-3

#: Share of the probe positions, those with the largest residual deviance of
#: the held fit, whose missed counts re-initialize the released component.
_RESIDUAL_SHARE = 0.05


def _scale(block):
    """Noise scale ``s_b`` of a block's loss: 1 for KL, the noise variance for Frobenius."""
    return 1.0 if block.beta == 1 else noise_variance(block.data)


def _per_position(blocks, fit, scales):
    """Deviance and Pearson statistic of every position, summed over blocks (in noise units)."""
    deviance = np.zeros(fit.W.shape[0])
    pearson = np.zeros(fit.W.shape[0])
    positive = []
    for block, H, scale in zip(blocks, fit.H, scales):
        d, p, r = row_statistics(block.data, fit.W, np.ascontiguousarray(H.T), block.beta)
        deviance += d / scale
        pearson += p / scale
        positive.append(r)
    return deviance, pearson, positive


def _residual_start(blocks, held, item, deviance, positive):
    """Held factors with the known component's slot re-initialized from the residual.

    The positions with the largest residual deviance (``_RESIDUAL_SHARE``
    of them, at least ``k + 1``) show what the held model misses; their
    positive residual becomes the component's pattern, every position's
    missed counts its map.
    """
    n, k = held.W.shape
    count = min(n, max(k + 1, int(np.ceil(_RESIDUAL_SHARE * n))))
    rows = np.argsort(-deviance, kind="stable")[:count]
    b, j = item.block, item.index
    pattern = residual_pattern(blocks[b].data, held.W, np.ascontiguousarray(held.H[b].T), rows)
    W = held.W.copy()
    Hs = [H.copy() for H in held.H]
    if pattern.sum() <= 0:
        return None
    floor = 1e-3 * pattern.mean()
    Hs[b][j] = (pattern + floor) / (pattern + floor).sum() * max(float(Hs[b][j].sum()), 1e-12)
    W[:, j] = positive[b] / max(float(Hs[b][j].sum()), 1e-12) + 1e-3 * max(float(W.mean()),
                                                                             1e-12)
    return W, Hs


def _released(start, item):
    """``start`` with the known component's pattern and map lifted off zero.

    Multiplicative updates never move an exact zero: a reference with zero
    pixels (a rotated or cropped pattern) or an abandoned map (zero almost
    everywhere) would stay so after its release. A floor of 10⁻³ of the
    mean lets them grow.
    """
    W, Hs = start[0].copy(), [H.copy() for H in start[1]]
    b, j = item.block, item.index
    Hs[b][j] = np.maximum(Hs[b][j], 1e-3 * max(float(Hs[b][j].mean()), 1e-300))
    W[:, j] = np.maximum(W[:, j], 1e-3 * max(float(W.mean()), 1e-300))
    return W, Hs


def check_known_components(result, blocks, known, options):
    """Test every known component against the data through the fit's residual.

    For the known component ``j`` of block ``b``, three fits are continued
    for ``_CHECK_ITERATIONS`` iterations (the other known components held
    in all of them): the **held** fit from the result, and two **free**
    fits of the same rank with ``j`` released, one warm-started from the
    result (``j``'s pattern and map lifted off exact zeros, which
    multiplicative updates cannot move), one with ``j``'s slot re-initialized from the residual of the
    held fit (the missed counts at the positions with the largest residual
    deviance: a phase whose reference was so wrong that the fit abandoned
    it, its map near zero, is found there again). The better free fit
    gives the likelihood-ratio statistic

        ``G = 2 Σ_b (D_b(held) − D_b(free)) / s_b``

    (``s_b`` = 1 for KL, the noise variance for Frobenius) on
    ``df = m_b + n`` degrees of freedom: the released pattern's channels
    and its map entries (nonnegativity makes this count conservative).
    The statistic is calibrated by the over-dispersion of the free fit,
    ``φ = X² / (N − p)`` (Pearson's ``X²`` over the ``N`` entries minus the
    ``p = k (n + Σ m_b)`` parameters; 1 for exact Poisson counts, larger
    when the model or the noise is rougher), in the quasi-likelihood F test
    ``F = G / (df φ)`` against ``F(df, N − p)``. Contradicted: p-value
    below ``KNOWN_COMPONENT_ALPHA`` (10⁻³); a warning gives the numbers.

    The per-position share of ``G``, ``g_i = 2 (d_i(held) − d_i(free)) / φ``
    (``residual_map``), shows where the reference fails; under the
    reference it averages at most ``df / n``.

    Returns
    -------
    list of dict
        ``name``, ``block``, ``index``, ``statistic`` (``G / df``), ``df``,
        ``dispersion`` (``φ``), ``F``, ``p_value``, ``change`` (relative L2
        change of the released pattern, matched by correlation),
        ``restarted`` (whether the residual start gave the better free fit),
        ``residual_map`` (``g_i``, one value per position) and
        ``contradicted``.

    Examples
    --------
    >>> from hyperspy_hnmf.constraints import KnownComponent
    >>> rng = np.random.default_rng(0)
    >>> W, H = rng.random((300, 2)) * 40, rng.random((2, 50))
    >>> X = rng.poisson(W @ H)
    >>> good = joint_nmf([X], 2, known_components=[KnownComponent(H[0], index=0)],
    ...                  max_iter=300, random_state=0)
    >>> check = good.known_checks[0]
    >>> bool(check["contradicted"]), check["df"], check["residual_map"].shape
    (False, 350, (300,))
    """
    import warnings

    checks = []
    scales = [_scale(block) for block in blocks]
    n, k = result.W.shape
    n_entries = n * sum(block.shape[1] for block in blocks)
    n_parameters = k * (n + sum(block.shape[1] for block in blocks))
    for item in known:
        others = [other for other in known if other is not item]
        start = (result.W, result.H)
        held = _fit(blocks, k, result.weights, start, _CHECK_ITERATIONS, 0.0, options, known)
        free = _fit(blocks, k, result.weights, _released(start, item), _CHECK_ITERATIONS, 0.0,
                    options, others)
        held_deviance, _, positive = _per_position(blocks, held, scales)
        restart = _residual_start(blocks, held, item, held_deviance, positive)
        restarted = False
        if restart is not None:
            second = _fit(blocks, k, result.weights, restart, _CHECK_ITERATIONS, 0.0, options,
                          others)
            if _likelihood(second, scales) < _likelihood(free, scales):
                free, restarted = second, True
        free_deviance, free_pearson, _ = _per_position(blocks, free, scales)
        dispersion = max(float(free_pearson.sum()) / max(n_entries - n_parameters, 1), 1e-12)
        df = blocks[item.block].shape[1] + n
        statistic = max(2.0 * (_likelihood(held, scales) - _likelihood(free, scales)), 0.0)
        F = statistic / (df * dispersion)
        p_value = float(scipy.stats.f.sf(F, df, max(n_entries - n_parameters, 1)))
        reference = _unit_sum(result.H[item.block][item.index])
        freed = [_unit_sum(H) for H in free.H[item.block]]
        closest = max(freed, key=lambda h: float(np.dot(h - h.mean(), reference - reference.mean())
                                                 / (np.linalg.norm(h - h.mean()) + 1e-300)))
        change = float(np.linalg.norm(closest - reference) / np.linalg.norm(reference))
        check = dict(name=item.name, block=item.block, index=item.index,
                     statistic=statistic / df, df=df, dispersion=dispersion, F=F,
                     p_value=p_value, change=change, restarted=restarted,
                     residual_map=2.0 * (held_deviance - free_deviance) / dispersion,
                     contradicted=p_value < KNOWN_COMPONENT_ALPHA)
        if check["contradicted"]:
            warnings.warn(
                f"The data contradict {item.name} (component {item.index} of dataset "
                f"{item.block}): releasing it lowers the deviance by G = {statistic:.4g} on "
                f"{df} degrees of freedom (G/df = {statistic / df:.3g}, dispersion "
                f"{dispersion:.3g}, F = {F:.3g}, p = {p_value:.2g} < {KNOWN_COMPONENT_ALPHA:g}); "
                f"the released pattern differs from the reference by {100 * change:.3g} %. "
                "The residual map (known_checks[...]['residual_map']; for a signal "
                "hyperspy_hnmf.get_known_component_checks(s)) shows where. Check the "
                "reference (orientation, calibration, centre) or give it a tolerance.",
                UserWarning, stacklevel=3)
        checks.append(check)
    return checks


def _likelihood(fit, scales):
    """``Σ_b D_b / s_b``: the negative log-likelihood up to a constant."""
    return float(np.sum(fit.divergences / np.asarray(scales)))


def _unit_sum(vector):
    return vector / max(float(vector.sum()), np.finfo(float).tiny)
