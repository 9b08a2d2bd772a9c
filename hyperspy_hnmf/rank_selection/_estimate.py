"""``estimate_rank``: an ensemble of NMF runs per candidate rank and its scores."""

import inspect
import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import scipy.sparse as sp

from .._checks import check_count, check_flag, check_random_state, check_rank, check_tol
from ..solvers._init import poisson_scales_from_sums
from ..solvers._linalg import squared_norm
from . import _fits
from ._data import data_matrix, signal_grids_of
from ._stability import Stability
from ._metrics import (
    match_restart_components,
    cluster_silhouettes,
    consensus_matrix,
    cophenetic_correlation,
    information_criterion,
    iq_index,
    knee,
)

_COMPRESSED_OPTIONS = {"loss": ("frobenius", 2, 2.0), "solver": ("auto", "hals")}


def rank_list(ranks):
    """Candidate ranks as a list of int: one integer, or integers ≥ 1, strictly increasing.

    Examples
    --------
    >>> rank_list(3), rank_list(range(2, 5))
    ([3], [2, 3, 4])
    >>> rank_list([2.5, 3])
    Traceback (most recent call last):
    ...
    ValueError: ranks must be positive integers, got 2.5 in [2.5, 3].
    """
    if isinstance(ranks, numbers.Integral) and not isinstance(ranks, bool):
        ranks = [ranks]
    try:
        ranks = list(ranks)
    except TypeError:
        raise ValueError(f"ranks must be an integer or an iterable of integers, e.g. "
                         f"ranks=range(2, 11); got {ranks!r}.") from None
    if not ranks:
        raise ValueError("ranks is empty: give the candidate numbers of components, "
                         "e.g. ranks=range(2, 11).")
    for k in ranks:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"ranks must be positive integers, got {k!r} in {ranks!r}.")
    ranks = [int(k) for k in ranks]
    if any(b <= a for a, b in zip(ranks, ranks[1:])):
        raise ValueError(f"ranks must be strictly increasing, got {ranks}; "
                         f"use sorted(set(ranks)) = {sorted(set(ranks))}.")
    return ranks


def check_candidate_ranks(ranks, shape):
    """Validated candidate ranks as a list of int (:func:`rank_list`), within the data size."""
    ranks = rank_list(ranks)
    limit = min(shape)
    if ranks[-1] > limit:
        first = min(ranks[0], limit)
        fits = f"ranks=range({first}, {limit + 1})" if first < limit else f"ranks=[{limit}]"
        raise ValueError(
            f"rank {ranks[-1]} exceeds the data size: data of shape {tuple(shape)} "
            f"(probe positions × signal pixels) allow at most {limit} components. Pass "
            f"smaller ranks, e.g. {fits} (the default ranks are range(2, 11))."
        )
    return ranks


def check_restarts(n_restarts):
    if isinstance(n_restarts, bool) or not isinstance(n_restarts, numbers.Integral):
        raise ValueError(f"n_restarts must be an integer >= 2, got {n_restarts!r}.")
    if n_restarts < 2:
        raise ValueError(
            f"n_restarts must be at least 2, got {n_restarts}: stability compares the "
            "components of several runs (10 or more recommended)."
        )
    return int(n_restarts)


def check_perturbation(perturbation):
    """``(kind, level)`` from ``"none"``, ``"uniform"``, ``"poisson"`` or a float."""
    if isinstance(perturbation, numbers.Real) and not isinstance(perturbation, bool):
        if not 0 <= perturbation < 1:
            raise ValueError(f"A numeric perturbation is the relative amplitude of uniform "
                             f"noise, in [0, 1); got {perturbation!r}.")
        return ("uniform", float(perturbation)) if perturbation > 0 else ("none", 0.0)
    if perturbation in (None, False):
        return "none", 0.0
    if perturbation == "auto":
        return "auto", 0.03
    if perturbation not in _fits.PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {('auto',) + _fits.PERTURBATIONS} or a float "
                         f"in [0, 1), got {perturbation!r}.")
    return perturbation, 0.03 if perturbation == "uniform" else 0.0


def _use_compression(compression, options):
    if isinstance(compression, (bool, np.bool_)):
        compression = bool(compression)
    elif not (isinstance(compression, str) and compression == "auto"):
        raise ValueError(f"compression must be 'auto', True or False, got {compression!r}.")
    fast = all(options.get(name, allowed[0]) in allowed
               for name, allowed in _COMPRESSED_OPTIONS.items())
    fast = fast and set(options) <= set(_COMPRESSED_OPTIONS)
    if compression == "auto":
        return fast
    if compression and not fast:
        raise ValueError("compression=True needs the Frobenius loss with the HALS solver and "
                         f"no other options, got {options!r}; use compression=False.")
    return compression


def check_silhouette_threshold(threshold):
    """A real number in [-1, 1] (silhouettes lie there), as float.

    Examples
    --------
    >>> check_silhouette_threshold(2)
    Traceback (most recent call last):
    ...
    ValueError: silhouette_threshold must be a real number in [-1, 1] (the range of silhouettes; NMFk uses 0.5), got 2.
    """
    if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
            or not -1 <= threshold <= 1):
        raise ValueError("silhouette_threshold must be a real number in [-1, 1] (the range "
                         f"of silhouettes; NMFk uses 0.5), got {threshold!r}.")
    return float(threshold)


def _seed(random_state):
    """An entropy for :class:`numpy.random.SeedSequence` from a checked ``random_state``."""
    random_state = check_random_state(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31))
    return random_state


def hnmf_option_names():
    """The keywords that :func:`estimate_rank` passes on to its fits, sorted.

    Those of :func:`hyperspy_hnmf.solvers.nmf` except the data, the rank and
    what :func:`estimate_rank` sets itself (``random_state``,
    ``n_restarts``, ``max_iter``, ``tol``, ``init``) or never calls
    (``callback``); :func:`check_hnmf_options` refuses ``init`` with its own
    message.

    Examples
    --------
    >>> "loss" in hnmf_option_names(), "callback" in hnmf_option_names(), "init" in hnmf_option_names()
    (True, False, False)
    """
    from .. import solvers

    own = {"X", "n_components", "randomized_options", "callback", "random_state",
           "n_restarts", "max_iter", "tol", "init"}
    names = set(inspect.signature(solvers.nmf).parameters) - own
    return sorted(names | {"oversampling", "power_iterations", "refine_passes"})


def check_hnmf_options(options, where="estimate_rank"):
    """Refuse keywords that neither ``where`` nor its fits take, naming the accepted ones.

    Parameters
    ----------
    options : dict
        The keywords :func:`estimate_rank` would pass on to its fits.
    where : str
        The caller's name, for the message.

    Raises
    ------
    TypeError
        For an unknown keyword, before anything is read or fitted.
    ValueError
        For ``init``: the starts are chosen by :func:`estimate_rank`.

    Examples
    --------
    >>> check_hnmf_options({"loss": "kl"})
    >>> check_hnmf_options({"bogus": 1})
    Traceback (most recent call last):
    ...
    TypeError: estimate_rank got the unknown option(s) ['bogus']. Its own options are ...
    """
    if "init" in options:
        raise ValueError(
            f"{where} chooses the starts itself, so that the restarts differ: each run is "
            "the best of 4 fits, one started by SPA and three at random (fits with other "
            "losses, solvers or constraints: random starts); remove init "
            f"(got init={options['init']!r}).")
    unknown = sorted(set(options) - set(hnmf_option_names()))
    if not unknown:
        return
    own = [name for name in inspect.signature(estimate_rank).parameters
           if name not in ("s", "hnmf_options")]
    hint = ""
    if "clip_negative" in unknown:
        hint = (" It takes the data as they are: set negative values to zero first, e.g. "
                "X = np.maximum(X, 0) (for a signal: s.data = np.maximum(s.data, 0)).")
    takes = ("Its own options are" if where == "estimate_rank" else
             f"{where} passes its other options to estimate_rank, whose options are")
    raise TypeError(
        f"{where} got the unknown option(s) {unknown}. {takes} {', '.join(own)}; the "
        f"options of its fits are {', '.join(hnmf_option_names())}.{hint}")


def _constraint_list(options):
    """The constraints in ``options`` as a list ([] if none, or not a list of constraints)."""
    from ..constraints import Constraint

    constraints = options.get("constraints")
    if isinstance(constraints, Constraint):
        return [constraints]
    if isinstance(constraints, (list, tuple)):
        return [c for c in constraints if isinstance(c, Constraint)]
    return []


def _check_grids(options, where):
    """Refuse a constraint that needs a grid none of ``options`` gives (before any fit)."""
    from ..constraints import Penalty, Projection

    for constraint in _constraint_list(options):
        if isinstance(constraint, (Penalty, Projection)):
            continue
        name = "map_grid" if constraint.on == "maps" else "component_grid"
        if options.get(name) is None:
            raise ValueError(
                f"{constraint._describe()} needs the shape of the {constraint.on}: pass a "
                f"HyperSpy signal to {where} (its axes give it), or {name}=Grid(shape, "
                "scale, units) (from hyperspy_hnmf.constraints) with an array.")


def _with_signal_grids(s, options):
    """``options`` with the signal's grids as ``map_grid`` and ``component_grid``
    when constraints or groups are given and the grids are not."""
    if options.get("constraints") is None and options.get("groups") is None:
        return dict(options)
    navigation, sig = signal_grids_of(s)
    options = dict(options)
    for name, grid in (("map_grid", navigation), ("component_grid", sig)):
        if options.get(name) is None and grid is not None:
            options[name] = grid
    return options


def _one_blas_thread():
    """BLAS on one thread: the products are small, and restarts run in threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def _integer_chunk(block, start):
    return bool(np.all(block == np.round(block)))


def _are_counts(X):
    """Whether all values are integers (counts: the Poisson resampling applies)."""
    if sp.issparse(X):
        return bool(np.all(X.data == np.round(X.data)))
    if isinstance(X, np.ndarray):
        return bool(np.all(X == np.round(X)))
    if np.issubdtype(X.array.dtype, np.integer):
        return True
    return all(X.map_chunks(_integer_chunk))


def perturbation_kind(X, kind):
    """The perturbation for the data: ``"auto"`` resolved, ``"poisson"`` checked.

    ``"auto"`` and ``"poisson"`` read the data (lazy data: one pass) to tell
    whether they are counts; other kinds are returned as they are.

    Examples
    --------
    >>> perturbation_kind(np.array([[1.0, 2.0]]), "auto")
    'poisson'
    >>> perturbation_kind(np.array([[0.5, 2.0]]), "poisson")
    Traceback (most recent call last):
    ...
    ValueError: perturbation='poisson' resamples counts, but the data are not integers; use perturbation='uniform'.
    """
    if kind not in ("auto", "poisson"):
        return kind
    counts = _are_counts(X)
    if kind == "poisson" and not counts:
        raise ValueError("perturbation='poisson' resamples counts, but the data are not "
                         "integers; use perturbation='uniform'.")
    return "poisson" if counts else "uniform"


def _lazy_data(Y, normalize):
    """Data read in passes (a StreamedMatrix), Poisson-weighted if asked, the scales,
    and the row and column sums.

    The first pass (the range of the values) refuses data that are all
    zeros and gives float64 to float32 data whose squares would overflow or
    underflow, with a warning, as for data in memory
    (:func:`~hyperspy_hnmf.solvers.promote_if_overflowing`), before any
    restart; the sums (for the weights and the information criterion) take a
    second pass.
    """
    from ..solvers import _checked_streamed

    Y, _ = _checked_streamed(Y, 2.0, stacklevel=4)
    row_sums, column_sums, _ = Y.statistics()
    scales = None
    if normalize:
        scales = poisson_scales_from_sums(row_sums, column_sums, Y.dtype)
        Y = Y.scaled(*scales)
    return Y, scales, (row_sums, column_sums)


def _compress_lazy(Y, rank, settings, rng):
    """``(Q, B, ||Y'||²)`` of one perturbed copy ``Y'`` of lazy data, in ``3 + 2q`` passes."""
    from ..solvers._linalg import randomized_range

    if settings["kind"] != "none":
        Y = Y.perturbed(settings["level"], int(rng.integers(2**63)), settings["kind"])
    norm2 = Y.statistics()[2]
    Q = np.ascontiguousarray(randomized_range(Y, min(rank, *Y.shape), rng, 0, _fits._POWER_ITER),
                             dtype=Y.dtype)
    return Q, np.ascontiguousarray((Y.T @ Q).T, dtype=Y.dtype), norm2


def _rank_rng(seed, k):
    """The generator of the fits of rank ``k`` in the restart seeded by ``seed``.

    Derived from the restart's seed and ``k`` alone, so the fits of a rank do
    not depend on which other ranks are fitted before it.

    Examples
    --------
    >>> seed = np.random.SeedSequence(0).spawn(1)[0]
    >>> _rank_rng(seed, 3).random() == _rank_rng(seed, 3).random() != _rank_rng(seed, 4).random()
    True
    """
    return np.random.default_rng(
        np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + (int(k),)))


def _restart(X, scales, ranks, seed, settings, specs):
    """All ranks of one restart on one perturbed copy of the data.

    ``specs``: the resolved options of the exact fits, by rank (None when
    the fits run on the compressed data). ``seed`` (a SeedSequence) draws
    the perturbation and the compression; the fits of each rank draw from
    their own generator (:func:`_rank_rng`).

    ``X`` is an array, a CSR matrix (perturbed, weighted and compressed at
    its nonzeros), or lazy data (:class:`~hyperspy_hnmf.streaming.StreamedMatrix`):
    the perturbed copy is then compressed in passes over the chunks.
    """
    rng = np.random.default_rng(seed)
    fit = {"max_iter": settings["max_iter"], "tol": settings["tol"]}
    if not isinstance(X, np.ndarray) and not sp.issparse(X):
        Q, B, norm2 = _compress_lazy(X, ranks[-1] + _fits._OVERSAMPLES, settings, rng)
        return [_fits.fit_compressed(Q, B, norm2, k, _rank_rng(seed, k), **fit) for k in ranks]
    Y = _fits.perturb(X, settings["kind"], settings["level"], rng)
    if scales is not None:
        Y = _fits.weighted(Y, *scales)
    if settings["compressed"]:
        norm2 = squared_norm(Y)
        Q, B = _fits.compress(Y, min(ranks[-1] + _fits._OVERSAMPLES, min(Y.shape)), rng)
        del Y
        return [_fits.fit_compressed(Q, B, norm2, k, _rank_rng(seed, k), **fit) for k in ranks]
    return [_fits.fit_exact(Y, specs[k], int(_rank_rng(seed, k).integers(2**31)))
            for k in ranks]


class RankScores:
    """Scores of the runs of one rank (see :class:`RankEstimate`).

    Attributes
    ----------
    rank : int
    errors : ndarray, shape (n_restarts,)
    labels : ndarray of int, shape (n_restarts, rank)
        Cluster of every component of every run.
    centroids : ndarray, shape (rank, m)
        Unit-norm centroids in the fitted space.
    silhouettes : ndarray, shape (rank,)
    iq : ndarray, shape (rank,)
    cophenetic : float
    components : ndarray, shape (n_restarts, rank, m)
        Components of every run in the data's units, each summing to 1.
    intensities : ndarray, shape (n_restarts, rank)
        Total intensity (counts) of every component of every run.

    Examples
    --------
    >>> X = np.random.default_rng(0).random((30, 20))
    >>> estimate_rank(X, ranks=[2], n_restarts=3).scores[0].components.shape
    (3, 2, 20)
    """

    def __init__(self, rank, errors, labels, centroids, silhouettes, iq, cophenetic,
                 components, intensities):
        self.rank = rank
        self.errors = errors
        self.labels = labels
        self.centroids = centroids
        self.silhouettes = silhouettes
        self.iq = iq
        self.cophenetic = cophenetic
        self.components = components
        self.intensities = intensities

    def consensus_components(self):
        """Mean of each cluster's members in the data's units (rows sum to 1).

        Returns
        -------
        ndarray, shape (rank, m)

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> H = estimate_rank(X, ranks=[2], n_restarts=3).scores[0].consensus_components()
        >>> H.shape, np.allclose(H.sum(axis=1), 1)
        ((2, 20), True)
        """
        sums = np.zeros((self.rank, self.components.shape[2]))
        for r, labels in enumerate(self.labels):
            sums[labels] += self.components[r]
        sums /= np.maximum(sums.sum(axis=1, keepdims=True), 1e-300)
        return sums.astype(self.components.dtype)

    def cluster_intensities(self):
        """Mean total intensity of each cluster's members over the runs.

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> estimate_rank(X, ranks=[2], n_restarts=3).scores[0].cluster_intensities().shape
        (2,)
        """
        sums = np.zeros(self.rank)
        for r, labels in enumerate(self.labels):
            sums[labels] += self.intensities[r]
        return sums / len(self.labels)

    def __repr__(self):
        return (f"<RankScores k={self.rank}: error {self.errors.min():.4g}, min silhouette "
                f"{self.silhouettes.min():.3f}, cophenetic {self.cophenetic:.3f}>")


def _score_rank(k, runs, scales, consensus_rows):
    fitted = np.stack([run.H for run in runs]).astype(np.float64)
    labels, centroids = match_restart_components(fitted)
    H_raw = fitted if scales is None else fitted * scales[1][None, None, :]
    sums = H_raw.sum(axis=2)
    components = (H_raw / np.where(sums > 0, sums, 1)[:, :, None]).astype(runs[0].H.dtype)
    W_raw = [run.W if scales is None else run.W * scales[0][:, None] for run in runs]
    intensities = np.stack([W.sum(axis=0) * s for W, s in zip(W_raw, sums)])
    assignments = np.stack([np.argmax(run.W[consensus_rows] * np.linalg.norm(run.H, axis=1),
                                      axis=1) for run in runs])
    return RankScores(
        rank=k,
        errors=np.array([run.error for run in runs]),
        labels=labels,
        centroids=centroids,
        silhouettes=cluster_silhouettes(fitted, labels),
        iq=iq_index(fitted, labels),
        cophenetic=cophenetic_correlation(consensus_matrix(assignments)) if k > 1 else 1.0,
        components=components,
        intensities=intensities,
    )


def knee_of(ranks, errors):
    """The rank at the knee of the error curve, or None if it has none.

    :func:`knee` gives index 0 when there is no knee (fewer than three
    points, or none below the chord); the first point is never a knee.

    Examples
    --------
    >>> knee_of([2, 3, 4, 5], [1.0, 0.4, 0.35, 0.3]), knee_of([2, 3, 4], [1.0, 0.9, 0.5])
    (3, None)
    """
    index = knee(ranks, errors)
    return list(ranks)[index] if index > 0 else None


def recommend(ranks, errors, min_silhouettes, threshold, aic=None, reference=None):
    """The recommended rank, why, and whether any rank is supported (see
    :func:`estimate_rank`, Notes).

    ``aic`` holds the information criterion per rank (None: stability alone);
    ``reference`` is ``(rank, aic)`` of the rank below the smallest candidate.
    """
    ranks = list(ranks)
    knee_rank = knee_of(ranks, errors)
    stable = [k for k, s in zip(ranks, min_silhouettes) if s >= threshold]
    if not stable:
        k = ranks[0]
        return k, (f"no rank has stable components (every min silhouette below "
                   f"{threshold:.2f}); the smallest rank tried, {k}, is returned: try smaller "
                   "ranks, more restarts, or a weaker perturbation"), False
    if aic is None:
        k = stable[-1]
        reason = (f"largest rank whose components are stable (min silhouette "
                  f"{min_silhouettes[ranks.index(k)]:.2f} >= {threshold:.2f})")
    else:
        k = min(stable, key=lambda rank: aic[ranks.index(rank)])
        if reference is not None and reference[1] <= aic[ranks.index(k)]:
            return ranks[0], (
                f"no stable rank fits better than rank {reference[0]} once its extra "
                f"parameters are counted (information criterion); the smallest rank tried, "
                f"{ranks[0]}, is returned: the data may hold fewer components"), False
        reason = (f"stable components (min silhouette {min_silhouettes[ranks.index(k)]:.2f} "
                  f">= {threshold:.2f}) and the lowest information criterion of the stable "
                  "ranks")
        larger = [rank for rank in stable if rank > k]
        if larger:
            reason += f" (stable but not better fits: k={', '.join(map(str, larger))})"
    if knee_rank is None:
        if len(ranks) < 3:
            return k, reason, True
        return k, reason + "; the error curve has no knee (no rank below its chord)", True
    if knee_rank == k:
        return k, reason + f", at the knee of the error curve (k={knee_rank})", True
    return k, reason + f"; the knee of the error curve is at k={knee_rank}", True


class RankEstimate:
    """Result of :func:`estimate_rank`.

    Attributes
    ----------
    ranks : list of int
    scores : list of RankScores
        One per rank.
    rank : int
        The recommended rank.
    reason : str
        Why it was recommended.
    knee_rank : int or None
        Rank at the knee of the error curve; None when it has none (fewer
        than three ranks, or no point below the chord: a straight or
        concave curve).
    aic : ndarray or None
        Akaike's information criterion of the best fit per rank, up to a
        constant (:func:`~hyperspy_hnmf.rank_selection.information_criterion`);
        None for losses without a likelihood (β other than 1 and 2).
    reference : tuple or None
        ``(rank, aic)`` of the rank below the smallest candidate (fitted,
        not scored), or None when the smallest candidate is 1.
    supported : bool
        Whether the recommended rank is stable and, with an information
        criterion, fits better than ``reference`` (HNMFk makes a leaf of a
        node whose estimate is not supported).
    settings : dict
        Restarts, perturbation, compression and solver settings used
        (``beta``: the β of the loss of the error curve).
    shape : tuple of int
        ``(n, m)``: probe positions × signal pixels of the data.
    title : str or None
        The signal's title (None for arrays), named by :meth:`plot`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.poisson(rng.random((60, 3)) @ (rng.random((3, 40)) ** 4) * 50)
    >>> result = estimate_rank(X.astype("float32"), ranks=[1, 2, 3, 4, 5], n_restarts=4)
    >>> result.rank
    3
    >>> list(result.table()[0])
    ['rank', 'error', 'min_silhouette', 'mean_silhouette', 'min_iq', 'cophenetic']
    """

    def __init__(self, scores, rank, reason, knee_rank, threshold, settings, scales=None,
                 shape=None, aic=None, reference=None, supported=True, title=None):
        self.scores = list(scores)
        self.ranks = [s.rank for s in self.scores]
        self.rank = rank
        self.reason = reason
        self.knee_rank = knee_rank
        self.silhouette_threshold = threshold
        self.settings = dict(settings)
        self.shape = shape
        self.aic = None if aic is None else np.asarray(aic, dtype=np.float64)
        self.reference = reference
        self.supported = bool(supported)
        self.title = title

    @property
    def errors(self):
        """Lowest error over the restarts, per rank (ndarray)."""
        return np.array([s.errors.min() for s in self.scores])

    @property
    def min_silhouettes(self):
        """Smallest cluster silhouette per rank (NMFk's criterion)."""
        return np.array([s.silhouettes.min() for s in self.scores])

    @property
    def mean_silhouettes(self):
        """Mean cluster silhouette per rank."""
        return np.array([s.silhouettes.mean() for s in self.scores])

    @property
    def cophenetic(self):
        """Cophenetic correlation of the consensus matrix per rank."""
        return np.array([s.cophenetic for s in self.scores])

    def __getitem__(self, rank):
        if rank not in self.ranks:
            raise KeyError(f"rank {rank} was not tried; ranks: {self.ranks}.")
        return self.scores[self.ranks.index(rank)]

    def table(self):
        """The curves as rows of a table (a header row, then one row per rank).

        Returns
        -------
        list of tuple

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> len(estimate_rank(X, ranks=[1, 2], n_restarts=2).table())
        3
        """
        rows = [("rank", "error", "min_silhouette", "mean_silhouette", "min_iq", "cophenetic")]
        for s in self.scores:
            rows.append((s.rank, float(s.errors.min()), float(s.silhouettes.min()),
                         float(s.silhouettes.mean()), float(s.iq.min()), float(s.cophenetic)))
        return rows

    def __str__(self):
        lines = [" rank   error    min sil  mean sil  min Iq  cophenetic"]
        for row in self.table()[1:]:
            mark = " <" if row[0] == self.rank else ""
            lines.append(f" {row[0]:4d}  {row[1]:.5f}  {row[2]:7.3f}  {row[3]:8.3f}  {row[4]:6.3f}"
                         f"  {row[5]:10.3f}{mark}")
        lines.append(f"recommended rank {self.rank}: {self.reason}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<RankEstimate: ranks {self.ranks[0]}-{self.ranks[-1]}, recommended {self.rank}>"

    def stability(self, rank=None):
        """Stability of the decomposition of one rank and its consensus components.

        Parameters
        ----------
        rank : int, optional
            One of :attr:`ranks`; default the recommended rank.

        Returns
        -------
        Stability

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> estimate_rank(X, ranks=[2, 3], n_restarts=3).stability(2).components.shape
        (2, 20)
        """

        return Stability.from_scores(self[self.rank if rank is None else rank], self.settings)

    def plot(self, figsize=(9, 6.5)):
        """One figure with the error curve and information criterion, silhouettes, Iq
        and cophenetic correlation.

        Parameters
        ----------
        figsize : tuple

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> figure = estimate_rank(X, ranks=[1, 2, 3], n_restarts=2).plot()
        >>> len(figure.axes)
        4
        """
        from ._plot import plot_rank_estimate

        return plot_rank_estimate(self, figsize=figsize)


def _plan(X, ranks, n_restarts, perturbation, normalize_poissonian_noise, compression,
          silhouette_threshold, max_iter, tol, n_jobs, random_state, consensus_rows,
          where="estimate_rank", **hnmf_options):
    """Every option of :func:`estimate_rank` checked and resolved for the data ``X``.

    Nothing is fitted and the data are not read (except that the exact
    fits' ``loss="auto"`` looks at them, see
    :func:`~hyperspy_hnmf._checks.resolve_loss`): callers that fit later
    (:func:`~hyperspy_hnmf.hierarchy.hnmfk`) call it first to refuse bad
    input before any work.

    Returns
    -------
    dict
        ``ranks``, ``fitted_ranks`` (with the rank below the smallest
        candidate), ``specs`` (resolved exact fits by rank, or None when
        compressed), ``settings`` (of :class:`RankEstimate`, the perturbation
        kind still ``"auto"`` where the data decide), ``beta``, ``threshold``,
        ``n_jobs``, ``seed``, ``consensus_rows``.
    """
    lazy = not isinstance(X, np.ndarray) and not sp.issparse(X)
    n_restarts = check_restarts(n_restarts)
    kind, level = check_perturbation(perturbation)
    normalize = check_flag(normalize_poissonian_noise, "normalize_poissonian_noise")
    threshold = check_silhouette_threshold(silhouette_threshold)
    max_iter = check_count(max_iter, "max_iter", 1)
    tol = check_tol(tol)
    if n_jobs is not None:
        n_jobs = check_count(n_jobs, "n_jobs", 1)
    consensus_rows = check_count(consensus_rows, "consensus_rows", 1)
    seed = _seed(random_state)
    ranks = check_candidate_ranks(ranks, X.shape)
    compressed = _use_compression(compression, hnmf_options)
    if lazy and not compressed:
        raise ValueError(
            "On lazy signals estimate_rank works on a compressed copy of the data: use the "
            "default Frobenius/HALS options (no loss, solver or constraints).")
    # The rank below the smallest candidate is fitted too (not scored): the
    # information criterion needs it to tell whether any candidate is supported.
    fitted_ranks = ([ranks[0] - 1] if ranks[0] > 1 else []) + ranks
    specs = None
    if not compressed:
        _check_grids(hnmf_options, where)
        # Exact fits: their options resolved once per rank, before any work.
        specs = {k: _fits.exact_spec(X, k, max_iter, tol, hnmf_options) for k in fitted_ranks}
    beta = 2.0 if compressed else specs[ranks[0]].beta
    # The Poisson weighting applies to Frobenius fits without constraints: it
    # would reshape the maps and components that constraints act on.
    constrained = hnmf_options.get("constraints") is not None or \
        hnmf_options.get("groups") is not None
    normalize = normalize and beta == 2.0 and not constrained
    settings = {"kind": kind, "level": level, "compressed": compressed, "max_iter": max_iter,
                "tol": tol, "normalized": normalize, "n_restarts": n_restarts, "beta": beta,
                "options": dict(hnmf_options)}
    return {"ranks": ranks, "fitted_ranks": fitted_ranks, "specs": specs,
            "settings": settings, "beta": beta, "threshold": threshold, "n_jobs": n_jobs,
            "seed": seed, "consensus_rows": consensus_rows}


def check_options(X, ranks, n_restarts, options, where):
    """Check ``options`` (keywords of :func:`estimate_rank`) for the data ``X``; fit nothing.

    Defaults are :func:`estimate_rank`'s.

    Parameters
    ----------
    X : ndarray, CSR matrix or StreamedMatrix
        The data, as :func:`~hyperspy_hnmf.rank_selection._data.data_matrix` gives them.
    ranks, n_restarts
        As in :func:`estimate_rank`.
    options : dict
        The other keywords of :func:`estimate_rank`.
    where : str
        The caller's name, for the messages.

    Returns
    -------
    dict
        As :func:`_plan`.

    Examples
    --------
    >>> check_options(np.ones((10, 8)), [2, 3], 4, {"max_iter": 0}, "hnmfk")
    Traceback (most recent call last):
    ...
    ValueError: max_iter must be an integer ≥ 1, got 0.
    """
    bound = inspect.signature(estimate_rank).bind(X, ranks, n_restarts, **options)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    del arguments["s"]
    hnmf_options = arguments.pop("hnmf_options")
    check_hnmf_options(hnmf_options, where)
    return _plan(X, **arguments, where=where, **hnmf_options)


def estimate_rank(s, ranks=range(2, 11), n_restarts=10, perturbation="uniform", *,
                  normalize_poissonian_noise=True, compression="auto", silhouette_threshold=0.5,
                  max_iter=200, tol=1e-4, n_jobs=None, random_state=0, consensus_rows=500,
                  **hnmf_options):
    """Choose the number of NMF components: error knee, stability and consensus.

    For every candidate rank, NMF is run ``n_restarts`` times from random
    starts on perturbed copies of the data (one perturbed copy per restart,
    shared by all ranks). The components of the runs of a rank are clustered
    (each run contributing one member to every cluster, NMFk), which gives the
    silhouette of every cluster and ICASSO's Iq index; each run also assigns
    every probe position to its largest coefficient, and the consensus matrix
    of these assignments gives Brunet's cophenetic correlation.

    Parameters
    ----------
    s : hyperspy.signals.BaseSignal, array-like, sparse matrix or dask array, shape (n, m)
        A signal (in memory or lazy), or a matrix of probe positions × signal
        pixels: a NumPy array, a ``scipy.sparse`` matrix or pydata ``sparse``
        array (read as CSR: perturbed, weighted and compressed at its
        nonzeros, never densified), or a dask array or
        :class:`~hyperspy_hnmf.matrix.StreamedMatrix`. Lazy signals and dask
        arrays are read in passes and take the default (compressed) fits
        only; see Notes.
    ranks : int or iterable of int, default range(2, 11)
        Candidate ranks, strictly increasing.
    n_restarts : int, default 10
        Runs per rank, at least 2.
    perturbation : {"uniform", "poisson", "auto", "none"} or float, default "uniform"
        ``"poisson"``: a parametric bootstrap of counted data,
        ``X' ~ Poisson(X)``; ``"uniform"``: multiply every value by
        ``1 + U(-0.03, 0.03)``, a float sets that amplitude (NMFk's
        resampling); ``"none"``: random starts only. ``"auto"``: ``"poisson"``
        when every value is a nonnegative integer (counts), else
        ``"uniform"``. Only a perturbation as large as the noise makes
        components fitted to noise differ between restarts (see Notes).
    normalize_poissonian_noise : bool, default True
        Fit ``X / sqrt(row sums ⊗ column sums)``, as HyperSpy does, so
        Poisson noise weighs alike everywhere. Frobenius loss without
        ``constraints`` or ``groups`` only (the weighting would reshape the
        maps and components the constraints act on); other fits run on the
        data as they are, and ``settings["normalized"]`` says which was done.
    compression : {"auto", True, False}
        True: HALS on a randomized rank-``(max(ranks) + 10)`` compression of
        each perturbed copy (fast; Frobenius loss). ``"auto"`` uses it unless
        ``hnmf_options`` ask for another loss, solver or constraints, which
        run :func:`hyperspy_hnmf.solvers.nmf` on the full data.
    silhouette_threshold : float in [-1, 1], default 0.5
        A rank is *stable* when the smallest cluster silhouette reaches it.
    max_iter, tol : int ≥ 1, float ≥ 0
        Per run, as in :func:`~hyperspy_hnmf.solvers.nmf`.
    n_jobs : int ≥ 1, optional
        Threads running restarts in parallel; default: the CPU count (data
        read in passes: one).
    random_state : int, Generator or None, default 0
        Seed of all perturbations and starts (results do not depend on n_jobs).
    consensus_rows : int ≥ 1, default 500
        Probe positions (a fixed random subset) in the consensus matrices.
    **hnmf_options
        ``loss``, ``solver``, ``constraints``, ``groups``, ``map_grid``,
        ``component_grid``... of :func:`~hyperspy_hnmf.solvers.nmf`
        (not ``init``: estimate_rank chooses the starts). Constraints on a
        signal take the grids of its navigation and signal axes (unless
        ``map_grid`` or ``component_grid`` are given); on an array, give the
        grids a constraint needs, e.g. ``map_grid=Grid((64, 64), 2.0, "nm")``
        for :class:`~hyperspy_hnmf.constraints.MapResolution`.

    Returns
    -------
    RankEstimate
        ``rank``, ``reason``, the per-rank :class:`RankScores`, ``plot()``,
        ``stability(k)``.

    Raises
    ------
    ValueError
        Before any fit: empty, unsorted, non-integer or too large ranks;
        ``n_restarts < 2``; any other option out of range; data that are
        not 2D, finite and nonnegative (lazy data: as the first pass reads
        them); a constraint without the grid it needs; options other than
        the defaults on lazy data.

    Notes
    -----
    The recommendation: among the *stable* ranks (smallest cluster
    silhouette ≥ ``silhouette_threshold``, NMFk), the one with the lowest
    Akaike information criterion (:func:`information_criterion`; Frobenius
    and KL losses; ``n`` and ``m`` count the rows and columns with any
    signal, ``settings["aic_shape"]``: all-zero ones are fitted exactly by
    every rank), compared also with the rank below the smallest candidate
    (fitted, not scored; if that one is lower, no rank is ``supported``).
    Converged fits of a rank beyond the truth often split one component the
    same way in every restart when the perturbation is much smaller than the
    noise (a 3 % perturbation of counted data), so stability alone would
    overestimate; the criterion rejects a component that lowers the
    residual no more than fitting noise does. With other β, stability
    alone decides (the largest stable rank). Beyond the true rank
    the extra components fit noise and differ between runs (low silhouette
    and Iq) while the error curve flattens; its knee (lowest error per rank
    against rank, :func:`~hyperspy_hnmf.rank_selection.knee`) is reported
    alongside, and often agrees. Each run is the best of 4 HALS fits (one
    started by SPA on the denoised data, three random): single random starts
    miss weak components often enough to make the true rank look unstable.

    Lazy signals (and dask arrays) are never loaded: each restart
    compresses its perturbed copy of the data in passes over the chunks,
    and the fits run on the compressed copy as for data in memory. Only the
    default fits run this way (Frobenius loss, HALS, no constraints,
    ``compression`` "auto" or True); other options are refused. The
    consensus components of a lazy signal come from :meth:`RankEstimate.stability`;
    :meth:`Stability.maps` and :meth:`Stability.to_learning_results` need
    the data in memory.

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_spectrum_image
    >>> s = synthetic_spectrum_image(scan_shape=(24, 24), n_components=3,
    ...                              random_state=0)
    >>> result = estimate_rank(s, ranks=range(2, 6), n_restarts=4)
    >>> result.rank
    3
    >>> figure = result.plot()

    Constraints take the grids of the signal's axes:

    >>> from hyperspy_hnmf.constraints import MapResolution
    >>> estimate_rank(s, ranks=[2, 3], n_restarts=2, max_iter=20,
    ...               constraints=[MapResolution(2.0)]).settings["compressed"]
    False
    """
    check_hnmf_options(hnmf_options)
    X = data_matrix(s)
    plan = _plan(X, ranks, n_restarts, perturbation, normalize_poissonian_noise, compression,
                 silhouette_threshold, max_iter, tol, n_jobs, random_state, consensus_rows,
                 **_with_signal_grids(s, hnmf_options))
    lazy = not isinstance(X, np.ndarray) and not sp.issparse(X)
    shape = X.shape
    ranks, fitted_ranks, specs = plan["ranks"], plan["fitted_ranks"], plan["specs"]
    settings = plan["settings"]
    settings["kind"] = perturbation_kind(X, settings["kind"])
    if lazy:
        X, scales, sums = _lazy_data(X, settings["normalized"])
    else:
        sums = (np.asarray(X.sum(axis=1)).ravel(), np.asarray(X.sum(axis=0)).ravel())
        scales = poisson_scales_from_sums(*sums, X.dtype) if settings["normalized"] else None
    # All-zero rows and columns (dead or masked pixels, blanked positions) are
    # fitted exactly by every rank: the criterion counts the others only.
    settings["aic_shape"] = tuple(int(np.count_nonzero(total > 0)) for total in sums)
    seeds = np.random.SeedSequence(plan["seed"]).spawn(settings["n_restarts"] + 1)
    rows = np.random.default_rng(seeds[-1]).permutation(shape[0])[:plan["consensus_rows"]]
    rows.sort()
    n_restarts = settings["n_restarts"]
    n_jobs = 1 if lazy else max(1, min(n_restarts, plan["n_jobs"] or os.cpu_count() or 1))
    with _one_blas_thread():
        if n_jobs == 1:
            per_restart = [_restart(X, scales, fitted_ranks, seed, settings, specs)
                           for seed in seeds[:-1]]
        else:
            with ThreadPoolExecutor(n_jobs) as pool:
                per_restart = list(pool.map(
                    lambda seed: _restart(X, scales, fitted_ranks, seed, settings, specs),
                    seeds[:-1]))
    offset = len(fitted_ranks) - len(ranks)
    scores = [_score_rank(k, [runs[offset + i] for runs in per_restart], scales, rows)
              for i, k in enumerate(ranks)]
    errors = [sc.errors.min() for sc in scores]
    min_sil = [sc.silhouettes.min() for sc in scores]
    aic = reference = None
    likelihood = {2.0: "frobenius", 1.0: "kl"}.get(plan["beta"])
    if likelihood is not None:
        best = errors if not offset else [min(runs[0].error for runs in per_restart)] + errors
        values = information_criterion(fitted_ranks, best, settings["aic_shape"], likelihood)
        aic = values[offset:]
        reference = (fitted_ranks[0], float(values[0])) if offset else None
    threshold = plan["threshold"]
    rank, reason, supported = recommend(ranks, errors, min_sil, threshold, aic, reference)
    return RankEstimate(scores, rank, reason, knee_of(ranks, errors), threshold,
                        settings, shape=shape, aic=aic, reference=reference,
                        supported=supported, title=_title_of(s))


def _title_of(s):
    """The title of a HyperSpy signal (None for arrays and untitled signals)."""
    try:
        title = s.metadata.General.title
    except AttributeError:
        return None
    return str(title) if title else None


def stability(s, n_components, n_restarts=10, perturbation="uniform", **options):
    """Stability of the rank-``n_components`` NMF of ``s`` and its consensus.

    Shorthand for ``estimate_rank(s, [n_components], ...).stability()``.

    Parameters
    ----------
    s : signal, array-like, sparse matrix or dask array, shape (n, m)
        As in :func:`estimate_rank` (lazy data: the default options only).
    n_components : int
    n_restarts : int, default 10
    perturbation : str or float, default "uniform"
    **options
        Other arguments of :func:`estimate_rank`.

    Returns
    -------
    Stability

    Examples
    --------
    >>> X = np.random.default_rng(0).random((30, 20))
    >>> stability(X, 2, n_restarts=3).rank
    2
    """
    n_components = check_rank(n_components)
    return estimate_rank(s, [n_components], n_restarts, perturbation, **options).stability()
