"""HNMFk: recursive NMF that picks the number of clusters at every node.

Starting with all rows (probe positions), each node runs
:func:`~hyperspy_hnmf.rank_selection.estimate_rank` on its rows; if a rank
``k`` is recommended and stable, the node's rows are fitted on the ``k``
consensus components, with the loss of the rank selection's fits
(Frobenius unless ``loss`` names another), and each row goes to the
component with the largest coefficient (its intensity, components summing
to 1). Children smaller than
``min_cluster_size`` are dissolved into the others. Recursion stops at
``max_depth``, at nodes under ``2 * min_cluster_size`` rows, and where no rank
is stable or only one cluster is left (status ``"single_cluster"``).

The result is a :class:`~hyperspy_hnmf.hierarchy.tree.SplitTree` with any
number of children per node: ``labels()``, ``components``, ``maps()``,
``edges()``, ``to_dict()`` work as for the rank-2 tree, and
:func:`hnmfk_decomposition` stores it in a signal's ``learning_results`` so
that :func:`~hyperspy_hnmf.plot_hierarchy`,
:func:`~hyperspy_hnmf.get_split_tree` and
:func:`~hyperspy_hnmf.get_cluster_labels` work.

References
----------
LANL's HNMFk (TELF / pyDNMFk): M. E. Eren, M. Bhattarai, et al.,
"Semantic hierarchical NMF ... with automatic model determination", and
the NMFk rank selection of Alexandrov, Vesselinov et al.
"""

import numpy as np
import scipy.sparse as sp

from .. import _ports, solvers
from .._checks import check_count, check_real, resolve_loss
from ..solvers._linalg import squared_norm
from .tree import SplitNode, SplitTree

__all__ = ["hnmfk", "hnmfk_decomposition"]

_POWER_ITER = 50
#: Keywords of HyperSpy's ``decomposition`` that users may pass by habit.
_DECOMPOSITION_KEYWORDS = ("output_dimension", "navigation_mask", "signal_mask", "algorithm",
                           "centre", "reproject", "return_info", "print_info")


def _rank1(X):
    """Nonnegative leading singular pair: component (sum 1), error, intensity.

    ``X`` is an array or a :class:`~hyperspy_hnmf.matrix.StreamedMatrix`
    (products are then passes).
    """
    v = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
    norm2 = squared_norm(X)
    if not v.any():
        return np.full(X.shape[1], 1.0 / X.shape[1]), norm2, 0.0
    v /= np.linalg.norm(v)
    dtype = X.dtype
    for _ in range(_POWER_ITER):
        u = X @ v[:, None].astype(dtype)
        w = np.asarray(X.T @ u, dtype=np.float64).ravel()
        w /= max(np.linalg.norm(w), 1e-300)
        if np.allclose(w, v, rtol=0, atol=1e-9):
            v = w
            break
        v = w
    sigma2 = float(np.square(X @ v[:, None].astype(dtype), dtype=np.float64).sum())
    v = np.abs(v)
    return v / v.sum(), max(norm2 - sigma2, 0.0), float(X.sum(dtype=np.float64))


def _split_rows(W, min_size):
    """Largest coefficient of each row; clusters under ``min_size`` dissolved."""
    keep = np.ones(W.shape[1], dtype=bool)
    while True:
        labels = np.argmax(np.where(keep, W, -np.inf), axis=1)
        sizes = np.bincount(labels, minlength=W.shape[1])
        small = keep & (sizes < min_size)
        if not small.any() or keep.sum() == 1:
            return labels, keep
        smallest = np.flatnonzero(small)[np.argmin(sizes[small])]
        keep[smallest] = False


def _check_ranks(ranks):
    """hnmfk's candidate ranks: an integer or integers ≥ 2, strictly increasing."""
    from ..rank_selection._estimate import rank_list

    ranks = rank_list(ranks)
    if ranks[0] < 2:
        raise ValueError(f"hnmfk ranks must be integers >= 2 (candidate numbers of children), "
                         f"got {ranks}.")
    return ranks


def _check_node_options(options):
    """Refuse what cannot apply at a node: a node's rows are a subset of the scan.

    Constraints on the components (their grid is the signal's, at every
    node) and penalties on the maps (row by row) apply; map projections
    (:class:`~hyperspy_hnmf.constraints.MapResolution`, a
    :class:`~hyperspy_hnmf.constraints.Projection` on the maps) and
    ``map_grid`` need the maps of the whole scan.
    """
    from ..constraints import Penalty
    from ..rank_selection._estimate import _constraint_list

    given = [name for name in _DECOMPOSITION_KEYWORDS if name in options]
    if given:
        raise TypeError(
            f"hnmfk takes no {', '.join(given)} (keywords of s.decomposition): it picks the "
            "number of clusters at every node from `ranks` and reads every probe position and "
            "pixel. To leave data out, crop the signal (s.inav[...], s.isig[...]) first.")
    why = ("each node below the root is fitted on a subset of the probe positions, which "
           "does not fill the scan grid")
    if options.get("map_grid") is not None:
        raise ValueError(f"hnmfk takes no map_grid: {why}. Drop map_grid; constraints on the "
                         "components and penalties on the maps apply at every node.")
    for constraint in _constraint_list(options):
        if constraint.on == "maps" and not isinstance(constraint, Penalty):
            raise ValueError(
                f"hnmfk cannot apply {constraint._describe()} to the maps: {why}. Use it in a "
                "flat fit (estimate_rank, or s.decomposition(algorithm='hnmf')); hnmfk takes "
                "constraints on the components (e.g. ContinuousIntensity) and penalties only.")


def hnmfk(s, ranks=range(2, 7), *, n_restarts=6, min_cluster_size=10, max_depth=3,
          random_state=0, **estimate_options):
    """Hierarchical NMF with the rank chosen at every node (HNMFk).

    Parameters
    ----------
    s : hyperspy signal, array-like, sparse matrix or dask array, shape (n, m)
        Rows are probe positions. Sparse input (``scipy.sparse``, pydata
        ``sparse``) is fitted as CSR, never densified. Lazy signals and dask
        arrays are read in passes (the default Frobenius/HALS rank selection
        only, as in :func:`~hyperspy_hnmf.rank_selection.estimate_rank`);
        a node's rows are read into memory once they fit
        :attr:`~hyperspy_hnmf.matrix.StreamedMatrix.row_cache_bytes`.
    ranks : int or iterable of int, default range(2, 7)
        Candidate numbers of children per node, integers ≥ 2, strictly
        increasing (clipped to the node's size).
    n_restarts : int, default 6
        Restarts of :func:`~hyperspy_hnmf.rank_selection.estimate_rank` per node.
    min_cluster_size : int, default 10
        Smallest cluster (rows); smaller children are merged into the others
        and nodes under twice this size are not split.
    max_depth : int, default 3
        Depth of the deepest leaves (the root is depth 0).
    random_state : int, Generator or None, default 0
    **estimate_options
        Other arguments of ``estimate_rank`` (``perturbation``,
        ``silhouette_threshold``, ``loss``, ``constraints``...). The
        perturbation defaults to ``"auto"`` here: a Poisson resample of
        counts, so that a node of one pattern plus counting noise, whose
        noise-fitted split would be the same in every restart under a 3 %
        perturbation, is left a leaf. Every node below the root holds a
        subset of the probe positions, which does not fill the scan grid:
        constraints on the components (with a signal, on the grid of its
        signal axes, or ``component_grid``) and penalties apply at every
        node; map projections (``MapResolution``, ``Projection`` on the
        maps) and ``map_grid`` are refused.

    Returns
    -------
    SplitTree
        Node ``score``: the smallest cluster silhouette of the chosen rank
        (NaN where none was evaluated). ``tree.reports`` maps node ids to
        their :class:`~hyperspy_hnmf.rank_selection.RankEstimate`.

    Raises
    ------
    ValueError
        Before any work: ranks that are not integers ≥ 2 in increasing
        order, any option :func:`~hyperspy_hnmf.rank_selection.estimate_rank`
        refuses, or a constraint that cannot apply to a node.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> patterns = rng.random((4, 30)) ** 6
    >>> X = rng.poisson(patterns[np.repeat(np.arange(4), 25)] * 40).astype("float32")
    >>> tree = hnmfk(X, ranks=range(2, 6), n_restarts=4, min_cluster_size=5)
    >>> tree.n_leaves, len(tree.root.children)
    (4, 4)
    >>> np.bincount(tree.labels()).tolist()
    [25, 25, 25, 25]
    """
    from ..rank_selection._data import data_matrix
    from ..rank_selection._estimate import (_seed, _with_signal_grids, check_options,
                                            estimate_rank, perturbation_kind)

    # Every option is checked before any work (the root's fits included).
    ranks = _check_ranks(ranks)
    min_cluster_size = check_count(min_cluster_size, "min_cluster_size", 1)
    max_depth = check_count(max_depth, "max_depth", 0)
    seed = _seed(random_state)
    _check_node_options(estimate_options)
    dtype = getattr(getattr(s, "data", s) if hasattr(s, "axes_manager") else s, "dtype", None)
    if dtype is not None:  # (a cast to float would drop the imaginary part with a warning)
        check_real(dtype, "hnmfk")
    X = data_matrix(s, where="hnmfk")
    estimate_options = {"perturbation": "auto",
                        **_with_signal_grids(s, estimate_options)}
    estimate_options.pop("map_grid", None)  # (a signal's scan grid: not a node's)
    root_ranks = [k for k in ranks if k <= min(X.shape)] or [min(ranks[0], min(X.shape))]
    plan = check_options(X, root_ranks, n_restarts, estimate_options, "hnmfk")
    if plan["settings"]["kind"] == "poisson":  # asked for: are the data counts?
        perturbation_kind(X, "poisson")
    seeds = iter(np.random.SeedSequence(seed).generate_state(10_000))
    nodes, reports, queue = [], {}, [(-1, 0, np.arange(X.shape[0], dtype=np.int64))]

    def node_data(rows):
        """The rows in memory when they fit (lazy data), else a lazy selection."""
        if isinstance(X, np.ndarray) or sp.issparse(X):
            return X[rows]
        if rows.size * X.shape[1] * 8 <= X.row_cache_bytes:
            return X.take(rows)
        return X.subset(rows)

    def new_node(parent, depth, rows):
        component, error, intensity = _rank1(node_data(rows))
        node = SplitNode(id=len(nodes), parent=parent, depth=depth, rows=rows,
                         component=component.astype(X.dtype), rank1_error=error,
                         intensity=intensity)
        nodes.append(node)
        return node

    root = new_node(-1, 0, np.arange(X.shape[0], dtype=np.int64))
    queue = [root]
    while queue:
        node = queue.pop(0)
        if node.depth >= max_depth:
            node.status = "max_depth"
            continue
        node_ranks = [k for k in ranks if k <= min(node.size, X.shape[1])]
        if node.size < 2 * min_cluster_size or not node_ranks or node.intensity == 0:
            node.status = "too_small"
            continue
        Xn = node_data(node.rows)
        estimate = estimate_rank(Xn, node_ranks, n_restarts, random_state=int(next(seeds)),
                                 **{"perturbation": "auto", **estimate_options})
        reports[node.id] = estimate
        k = estimate.rank
        scores = estimate[k]
        node.score = float(scores.silhouettes.min())
        if not estimate.supported or node.score < estimate.silhouette_threshold:
            node.status = "single_cluster"
            continue
        components = estimate.stability(k).components.astype(X.dtype)
        W = solvers.solve_loadings(Xn, components, loss=plan["beta"])
        labels, keep = _split_rows(W, min_cluster_size)
        if keep.sum() < 2:
            node.status = "single_cluster"
            continue
        kept = np.flatnonzero(keep)
        node.status = "split"
        node.child_sizes = np.array([np.sum(labels == j) for j in kept], dtype=np.int64)
        node.coefficient_sums = W.sum(axis=0)[kept].astype(np.float64)
        node.purity = float(np.mean(W.max(axis=1) / np.maximum(W.sum(axis=1), 1e-300)))
        children = [new_node(node.id, node.depth + 1, node.rows[labels == j]) for j in kept]
        node.children = tuple(child.id for child in children)
        queue.extend(children)
    parameters = {"method": "hnmfk", "ranks": np.asarray(ranks, dtype=np.int64),
                  "n_restarts": int(n_restarts), "min_cluster_size": min_cluster_size,
                  "max_depth": max_depth,
                  "random_state": (int(random_state)
                                   if isinstance(random_state, (int, np.integer)) else -1)}
    counts = {}
    for node in nodes:
        if node.is_leaf:
            counts[node.status] = counts.get(node.status, 0) + 1
    reason = "no leaf can be split: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    total = squared_norm(X)
    tree = SplitTree(nodes, X.shape[0], X.shape[1], root.rank1_error or total, parameters,
                     reason)
    tree.reports = reports
    return tree


def hnmfk_decomposition(s, ranks=range(2, 7), **options):
    """Run :func:`hnmfk` on a signal and store the tree in ``learning_results``.

    ``factors`` are the leaf components (summing to 1), ``loadings`` their
    maps (all probe positions fitted on the leaf components, with the
    ``loss`` of the nodes' fits: Frobenius by default, KL with
    ``loss="kl"``), and
    ``learning_results.hnmf["hierarchy"]`` the tree, as for
    ``decomposition(algorithm="hnmf", hierarchy="tree")``: use
    :func:`~hyperspy_hnmf.plot_hierarchy`, :func:`~hyperspy_hnmf.get_split_tree`
    and :func:`~hyperspy_hnmf.get_cluster_labels`. If anything fails, the
    previous results stay unchanged.

    Parameters
    ----------
    s : hyperspy.signals.BaseSignal
        In memory or lazy (read in passes, as by :func:`hnmfk`).
    ranks : int or iterable of int
    **options
        Other arguments of :func:`hnmfk`.

    Returns
    -------
    SplitTree

    Raises
    ------
    TypeError
        For data that are not a HyperSpy signal (before any work).
    ValueError
        As :func:`hnmfk`.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> import hyperspy_hnmf
    >>> rng = np.random.default_rng(0)
    >>> patterns = rng.random((3, 30)) ** 6
    >>> X = rng.poisson(patterns[np.repeat(np.arange(3), 30)] * 40).astype("float32")
    >>> s = hs.signals.Signal1D(X.reshape(9, 10, 30))
    >>> tree = hnmfk_decomposition(s, ranks=range(2, 5), n_restarts=4, min_cluster_size=5)
    >>> hyperspy_hnmf.get_cluster_labels(s).data.shape, s.learning_results.output_dimension
    ((9, 10), 3)
    """
    from ..rank_selection._data import data_matrix

    if not hasattr(s, "learning_results"):
        raise TypeError(
            f"hnmfk_decomposition stores the tree in a HyperSpy signal's learning_results, "
            f"got {type(s).__name__}; for an array, use hnmfk(X, ...), which returns the tree.")
    tree = hnmfk(s, ranks, **options)
    X = data_matrix(s, where="hnmfk_decomposition")
    # The maps are fitted with the loss of the nodes' fits (Frobenius unless
    # ``loss`` was given), as decomposition(hierarchy="tree") fits its maps.
    beta = 2.0
    if options.get("loss") is not None:
        beta = resolve_loss(options["loss"], X, options.get("solver", "auto"))
    loadings = tree.maps(X, loss=beta)
    factors = np.ascontiguousarray(tree.components.T.astype(X.dtype))
    loss = {1.0: "kl", 2.0: "frobenius"}.get(beta, beta)
    info = {"loss": loss, "hierarchy": {"kind": "tree", "tree": tree.to_dict()}}
    _ports.store_decomposition(s, factors, loadings.astype(X.dtype), "hnmfk", info)
    return tree
