"""Hierarchical rank-2 splitting of the rows of a data matrix (HierNMF2, H2NMF).

All rows (probe positions) start in the root. A leaf is split in two by a rank-2
NMF of its rows (:mod:`~hyperspy_hnmf.hierarchy.rank2`): with the two
components scaled to unit sum, each row goes to the child whose coefficient
(its intensity in that component) is larger. By default (``refine=True``) rows
then move to the child whose rank-1 component fits them better, alternating
with the children's rank-1 fits for a few steps: a cluster whose pattern lies
between the two rank-2 components would otherwise be cut in two (on six
planted Poisson clusters this raised the worst adjusted Rand index over 20
seeds from 0.86 to 0.996). As in HierNMF2, the tentative
split of every leaf, with its score, is computed when the leaf is created, and
the leaf with the best score is split next, until the requested number of
leaves is reached or no leaf can be split.

Split score
-----------
Every node is summarized by the rank-1 NMF of its rows (the dominant singular
pair, nonnegative for nonnegative data): its *component* is that pattern scaled
to sum 1, its *rank-one error* ``E(S) = ||X_S||^2 - sigma_1(X_S)^2``. The tree
approximates the data by one rank-1 model per leaf, with total error
``sum_leaves E(leaf)``. A split of ``S`` into ``S0`` and ``S1`` lowers that
total by ``E(S) - E(S0) - E(S1) ≥ 0``.

- ``split_score="error"`` (default): that decrease over the root's rank-one
  error, i.e. the fraction of the data's rank-one residual that the split
  removes. Choosing the largest is the greedy minimization of the tree's total
  error (the criterion of Gillis, Kuang & Park's H2NMF, measured on the actual
  children); scores of all splits of a tree add up to at most 1, so
  ``score_threshold`` reads as a fraction of the data's variation beyond rank 1.
- ``split_score="relative"``: the decrease over the leaf's own rank-one error.
  Scale-free per leaf, but pure noise gives small leaves larger relative
  decreases than large ones, so this score tends to split small leaves first.

HierNMF2's own score (a ranking measure on the top words of each topic) is
specific to text and not offered.

References
----------
D. Kuang and H. Park, "Fast rank-2 nonnegative matrix factorization for
hierarchical document clustering", KDD 2013, 739-747.
N. Gillis, D. Kuang and H. Park, "Hierarchical clustering of hyperspectral
images using rank-two nonnegative matrix factorization", IEEE TGRS 53 (2015)
2066-2078.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .._checks import check_count, check_n_leaves, check_score_threshold
from .._spec import DEFAULT_MIN_LEAF_SIZE, DEFAULT_TOL
from ..solvers import canonical_order, check_data, solve_loadings
from ..solvers._linalg import as_generator
from ..matrix import as_data_matrix, is_chunked
from .rank2 import RowData, check_fit_options, fit_rank2, initial_components

__all__ = ["SPLIT_SCORES", "STATUSES", "SplitNode", "SplitTree", "rank2_tree"]

#: Names accepted by ``rank2_tree(split_score=...)``.
SPLIT_SCORES = ("error", "relative")

#: Why a node is, or is not, split:
#: ``"split"`` (internal node), ``"candidate"`` (a leaf with a valid tentative
#: split that was not needed), ``"max_depth"``, ``"too_small"`` (fewer than
#: ``2 * min_leaf_size`` rows), ``"small_child"`` (the rank-2 split leaves a
#: child with fewer than ``min_leaf_size`` rows, e.g. all rows alike),
#: ``"below_threshold"`` (score under ``score_threshold``), ``"not_evaluated"``
#: (no split was needed: ``n_leaves=1``), ``"no_gain"`` (the split would not
#: lower the error beyond rounding), ``"single_cluster"`` (HNMFk,
#: :func:`~hyperspy_hnmf.hierarchy.hnmfk`: the rank criterion finds one
#: cluster only).
STATUSES = ("split", "candidate", "max_depth", "too_small", "small_child",
            "below_threshold", "not_evaluated", "no_gain", "single_cluster")

_FORMAT = "hyperspy_hnmf.rank2_tree"
_VERSION = 1
# Power iterations for the rank-1 model of each child.
_POWER_MAX_ITER = 30
_POWER_TOL = 1e-6
# Most reassignment steps of a split (later iterations only refine the
# children's rank-1 models).
_REFINE_MAX_ITER = 10
# A split lowering the error by less than this fraction of ||X[rows]||^2 is
# rounding noise.
_NO_GAIN = 1e-9


@dataclass(eq=False)
class SplitNode:
    """One node of a :class:`SplitTree`: a set of rows and its rank-1 model.

    Attributes
    ----------
    id : int
        Position in ``SplitTree.nodes`` (nodes are numbered as created; the
        root is 0, the children of a node have consecutive ids).
    parent : int
        Id of the parent, -1 for the root.
    depth : int
        0 for the root.
    rows : ndarray of int64
        Member row indices, ascending.
    component : ndarray, shape (m,)
        Rank-1 NMF component of the rows, summing to 1.
    rank1_error : float
        ``||X[rows] - rank-1 model||^2``.
    intensity : float
        Sum of ``X[rows]``.
    children : tuple of int
        Ids of the children (empty for a leaf): two in a rank-2 tree, the
        first child taking the rank-2 component of larger total intensity;
        any number in an HNMFk tree (:func:`~hyperspy_hnmf.hierarchy.hnmfk`).
    status : str
        One of :data:`STATUSES`.
    score : float
        Split score (see the module notes); NaN if no valid split was found.
    child_sizes : ndarray of int64, shape (max(2, n_children),)
        Rows that the (tentative) rank-2 split gives each child; -1 if not
        evaluated.
    coefficient_sums : ndarray, shape (max(2, n_children),)
        Summary of the rank-2 coefficients: total intensity of the rows in each
        of the two rank-2 components (which sum to 1); NaN if not evaluated.
    purity : float
        Mean over the rows of the larger coefficient's share of the two,
        between 0.5 (rows halfway between the components) and 1 (every row
        in one component only); NaN if not evaluated.
    rank2_error : float
        ``||X[rows] - W H||^2`` of the rank-2 fit; NaN if not evaluated.

    Examples
    --------
    >>> node = SplitNode(id=0, parent=-1, depth=0, rows=np.arange(3),
    ...                  component=np.array([0.5, 0.5]), rank1_error=0.0,
    ...                  intensity=6.0)
    >>> node.is_leaf, node.size
    (True, 3)
    """

    id: int
    parent: int
    depth: int
    rows: np.ndarray
    component: np.ndarray
    rank1_error: float
    intensity: float
    children: tuple = ()
    status: str = "not_evaluated"
    score: float = float("nan")
    child_sizes: np.ndarray = field(default_factory=lambda: np.full(2, -1, dtype=np.int64))
    coefficient_sums: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    purity: float = float("nan")
    rank2_error: float = float("nan")
    pending: object = field(default=None, repr=False)

    @property
    def is_leaf(self):
        """Whether the node has no children."""
        return not self.children

    @property
    def size(self):
        """Number of member rows."""
        return int(self.rows.size)


class SplitTree:
    """Tree of row clusters: binary from :func:`rank2_tree`, n-ary from HNMFk.

    :func:`~hyperspy_hnmf.hierarchy.hnmfk` builds the same class with any
    number of children per node; every method works on both.

    Attributes
    ----------
    nodes : list of SplitNode
        All nodes, by id.
    n_rows, n_columns : int
        Shape of the data.
    root_error : float
        Rank-one error of all rows (the normalizer of the ``"error"`` score).
    parameters : dict
        The arguments of :func:`rank2_tree` (``max_depth=-1`` and
        ``score_threshold=nan`` stand for None).
    stop_reason : str
        ``"n_leaves"``, or why no leaf could be split, with the count of leaves
        of each status.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> patterns = np.array([[8.0, 1, 1, 0], [0, 8, 1, 1], [1, 0, 1, 8]])
    >>> X = rng.poisson(patterns[np.repeat([0, 1, 2], 20)] * 5).astype(float)
    >>> tree = rank2_tree(X, 3)
    >>> tree
    <SplitTree: 3 leaves, 5 nodes, depth 2, stopped by n_leaves>
    >>> np.bincount(tree.labels()).tolist()
    [20, 20, 20]
    >>> tree.components.shape, bool(np.allclose(tree.components.sum(axis=1), 1))
    ((3, 4), True)
    >>> pairs, weights = tree.edges()
    >>> pairs.tolist()
    [[0, 1], [0, 2], [1, 3], [1, 4]]
    >>> restored = SplitTree.from_dict(tree.to_dict())
    >>> bool(np.array_equal(restored.labels(), tree.labels()))
    True
    """

    def __init__(self, nodes, n_rows, n_columns, root_error, parameters, stop_reason):
        self.nodes = list(nodes)
        self.n_rows = int(n_rows)
        self.n_columns = int(n_columns)
        self.root_error = float(root_error)
        self.parameters = dict(parameters)
        self.stop_reason = str(stop_reason)

    def __repr__(self):
        depth = max(node.depth for node in self.nodes)
        reason = self.stop_reason.split(":")[0]
        return (f"<SplitTree: {self.n_leaves} leaves, {len(self.nodes)} nodes, depth {depth}, "
                f"stopped by {reason}>")

    @property
    def root(self):
        """The root node (all rows)."""
        return self.nodes[0]

    @property
    def leaves(self):
        """Leaves in depth-first order, first child before second.

        Leaves that are next to each other in this order share the most recent
        ancestor, so the order follows the hierarchy; ``labels()`` and
        ``components`` use it.
        """
        order = []
        stack = [0]
        while stack:
            node = self.nodes[stack.pop()]
            if node.children:
                stack.extend(reversed(node.children))
            else:
                order.append(node)
        return order

    @property
    def n_leaves(self):
        """Number of leaves."""
        return sum(1 for node in self.nodes if node.is_leaf)

    def labels(self):
        """Leaf index (position in :attr:`leaves`) of every row.

        Returns
        -------
        ndarray of int64, shape (n_rows,)

        Examples
        --------
        >>> X = np.vstack([np.tile([5.0, 0, 1], (4, 1)), np.tile([0, 5.0, 1], (3, 1))])
        >>> rank2_tree(X, 2).labels().tolist()
        [0, 0, 0, 0, 1, 1, 1]
        """
        labels = np.empty(self.n_rows, dtype=np.int64)
        for index, leaf in enumerate(self.leaves):
            labels[leaf.rows] = index
        return labels

    @property
    def components(self):
        """Leaf components, shape (n_leaves, n_columns), each row summing to 1."""
        return np.vstack([leaf.component for leaf in self.leaves])

    def maps(self, X, *, loss="frobenius", solver="auto", max_iter=200, tol=1e-4,
             constraints=None):
        """Maps of all rows on the leaf components (components fixed).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, shape (n_rows, n_columns)
            The data the tree was built from (or data of the same shape).
        loss, solver, max_iter, tol
            As in :func:`~hyperspy_hnmf.solvers.solve_loadings`; e.g.
            ``loss="kl"`` for counted electrons.
        constraints : ConstraintPlan, optional
            Map penalties and projections to apply (the components are fixed).

        Returns
        -------
        ndarray, shape (n_rows, n_leaves)
            Column ``j`` is the intensity of leaf component ``j`` at each row.

        Examples
        --------
        >>> X = np.vstack([np.tile([5.0, 0, 1], (4, 1)), np.tile([0, 5.0, 1], (3, 1))])
        >>> np.round(rank2_tree(X, 2).maps(X), 3)[[0, 6]]
        array([[6., 0.],
               [0., 6.]])
        """
        shape = X.shape if sp.issparse(X) or is_chunked(X) else np.shape(X)
        if tuple(shape) != (self.n_rows, self.n_columns):
            raise ValueError(
                f"X has shape {tuple(shape)}, but the tree was built from data of shape "
                f"({self.n_rows}, {self.n_columns})."
            )
        return solve_loadings(X, self.components, loss=loss, solver=solver,
                              max_iter=max_iter, tol=tol, constraints=constraints)

    def edges(self, weight="intensity"):
        """Parent-child pairs and their weights.

        Parameters
        ----------
        weight : {"intensity", "rows"}
            ``"intensity"``: the fraction of the parent's total intensity in the
            child; ``"rows"``: the fraction of the parent's rows.

        Returns
        -------
        pairs : ndarray of int64, shape (n_nodes - 1, 2)
            ``(parent id, child id)``, ordered by child id.
        weights : ndarray, shape (n_nodes - 1,)
            The children of a node have weights adding up to 1.

        Examples
        --------
        >>> X = np.vstack([np.tile([5.0, 0, 1], (4, 1)), np.tile([0, 5.0, 1], (3, 1))])
        >>> pairs, weights = rank2_tree(X, 2).edges(weight="rows")
        >>> pairs.tolist(), np.round(weights, 3).tolist()
        ([[0, 1], [0, 2]], [0.571, 0.429])
        """
        if weight not in ("intensity", "rows"):
            raise ValueError(f"weight must be 'intensity' or 'rows', got {weight!r}.")
        children = [node for node in self.nodes if node.parent >= 0]
        pairs = np.array([[node.parent, node.id] for node in children], dtype=np.int64)
        pairs = pairs.reshape(-1, 2)
        weights = []
        for node in children:
            parent = self.nodes[node.parent]
            if weight == "rows":
                weights.append(node.size / parent.size)
            else:
                weights.append(node.intensity / parent.intensity if parent.intensity > 0
                               else node.size / parent.size)
        return pairs, np.asarray(weights, dtype=np.float64)

    def to_dict(self):
        """The tree as a dict of numpy arrays, ints, floats and strings.

        Nested dicts hold the parameters and the node table, so the tree can be
        stored in HyperSpy's ``learning_results`` and saved to hspy/zspy;
        :meth:`from_dict` restores it exactly. ``None`` parameters are stored as
        -1 (``max_depth``) and NaN (``score_threshold``).

        Returns
        -------
        dict

        Examples
        --------
        >>> X = np.vstack([np.tile([5.0, 0, 1], (4, 1)), np.tile([0, 5.0, 1], (3, 1))])
        >>> d = rank2_tree(X, 2).to_dict()
        >>> sorted(d["nodes"])[:4]
        ['child_sizes', 'children', 'coefficient_sums', 'components']
        """
        nodes = self.nodes
        offsets = np.zeros(len(nodes) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([node.size for node in nodes])
        # 2 columns for a binary tree; as many as the most children for n-ary trees.
        width = max([2] + [len(node.children) for node in nodes]
                    + [len(node.child_sizes) for node in nodes])
        children = np.full((len(nodes), width), -1, dtype=np.int64)
        for node in nodes:
            children[node.id, :len(node.children)] = node.children
        table = {
            "parent": np.array([node.parent for node in nodes], dtype=np.int64),
            "depth": np.array([node.depth for node in nodes], dtype=np.int64),
            "children": children,
            "row_offsets": offsets,
            "rows": np.concatenate([node.rows for node in nodes]).astype(np.int64),
            "components": np.vstack([node.component for node in nodes]),
            "rank1_error": np.array([node.rank1_error for node in nodes], dtype=np.float64),
            "intensity": np.array([node.intensity for node in nodes], dtype=np.float64),
            "status": np.array([STATUSES.index(node.status) for node in nodes],
                               dtype=np.int64),
            "score": np.array([node.score for node in nodes], dtype=np.float64),
            "child_sizes": np.vstack([_padded(node.child_sizes, width, -1)
                                      for node in nodes]).astype(np.int64),
            "coefficient_sums": np.vstack([_padded(node.coefficient_sums, width, np.nan)
                                           for node in nodes]),
            "purity": np.array([node.purity for node in nodes], dtype=np.float64),
            "rank2_error": np.array([node.rank2_error for node in nodes], dtype=np.float64),
        }
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "root_error": self.root_error,
            "stop_reason": self.stop_reason,
            "status_names": ",".join(STATUSES),
            "parameters": dict(self.parameters),
            "nodes": table,
        }

    @classmethod
    def from_dict(cls, d):
        """Rebuild a tree from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict

        Returns
        -------
        SplitTree

        Examples
        --------
        >>> X = np.vstack([np.tile([5.0, 0, 1], (4, 1)), np.tile([0, 5.0, 1], (3, 1))])
        >>> tree = rank2_tree(X, 2)
        >>> SplitTree.from_dict(tree.to_dict()).labels().tolist()
        [0, 0, 0, 0, 1, 1, 1]
        """
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"Not a rank-2 tree dict (expected format {_FORMAT!r}).")
        if int(d["version"]) > _VERSION:
            raise ValueError(f"Rank-2 tree dict version {d['version']} is newer than this "
                             f"package reads ({_VERSION}); upgrade hyperspy_hnmf.")
        statuses = str(d["status_names"]).split(",")
        table = d["nodes"]
        offsets = np.asarray(table["row_offsets"])
        rows = np.asarray(table["rows"], dtype=np.int64)
        nodes = []
        for i in range(len(table["parent"])):
            children = tuple(int(c) for c in table["children"][i] if c >= 0)
            n_entries = max(2, len(children))
            nodes.append(SplitNode(
                id=i,
                parent=int(table["parent"][i]),
                depth=int(table["depth"][i]),
                rows=rows[offsets[i]:offsets[i + 1]].copy(),
                component=np.array(table["components"][i]),
                rank1_error=float(table["rank1_error"][i]),
                intensity=float(table["intensity"][i]),
                children=children,
                status=statuses[int(table["status"][i])],
                score=float(table["score"][i]),
                child_sizes=np.array(table["child_sizes"][i][:n_entries], dtype=np.int64),
                coefficient_sums=np.array(table["coefficient_sums"][i][:n_entries],
                                          dtype=np.float64),
                purity=float(table["purity"][i]),
                rank2_error=float(table["rank2_error"][i]),
            ))
        return cls(nodes, d["n_rows"], d["n_columns"], d["root_error"],
                   dict(d["parameters"]), d["stop_reason"])


def _padded(values, width, fill):
    values = np.asarray(values)
    out = np.full(width, fill, dtype=np.result_type(values.dtype, type(fill)))
    out[:values.size] = values
    return out


def _group_rank1(data, rows, groups, V, reassign=False):
    """Rank-1 models of the rows of each group (0 and 1) by power iteration.

    Both groups are iterated together: one product ``X[rows] @ V.T`` and one
    ``X[rows].T @ U`` per iteration, whatever the groups. With ``reassign``,
    the first ``_REFINE_MAX_ITER`` iterations also move each row to the group
    whose direction it is closer to (larger ``x @ v``, i.e. smaller rank-1
    residual): two-line "k-subspaces" clustering started from the given
    groups. Both steps lower the total rank-one error of the two groups.
    Clusters settle in a few steps; the cap stops rows without cluster
    structure (noise) from drifting for many.

    Returns
    -------
    V : ndarray, shape (2, m)
        Unit-norm dominant right singular vectors (nonnegative).
    sigma2 : ndarray, shape (2,)
        Squared dominant singular values (Rayleigh quotients).
    groups : ndarray of int8
        The final groups.
    """
    groups = np.array(groups, dtype=np.int8)
    V = _unit_rows(np.array(V, dtype=np.float64))
    previous = None
    sigma2 = np.zeros(2)
    for iteration in range(_POWER_MAX_ITER):
        U = data.times(rows, V)
        moved = False
        if reassign and iteration < _REFINE_MAX_ITER:
            closer = np.where(U[:, 1] > U[:, 0], 1, np.where(U[:, 0] > U[:, 1], 0, groups))
            moved = bool(np.any(closer != groups))
            groups = closer.astype(np.int8)
        in_first = groups == 0
        U[~in_first, 0] = 0
        U[in_first, 1] = 0
        sigma2 = np.einsum("ij,ij->j", U, U)
        V = _unit_rows(data.t_times(rows, U))
        if (not moved and previous is not None
                and np.all(np.abs(sigma2 - previous) <= _POWER_TOL * sigma2)):
            break
        previous = sigma2
    return V, sigma2, groups


def _unit_rows(V):
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    return np.divide(V, norms, out=np.zeros_like(V), where=norms > 0)


def _as_component(v, m):
    total = v.sum()
    return v / total if total > 0 else np.full(m, 1.0 / m)


class _Builder:
    """Grows a tree: node creation, tentative splits, and the splitting loop."""

    def __init__(self, data, n_leaves, min_leaf_size, max_depth, score_threshold,
                 split_score, max_iter, tol, init, random_state, refine):
        self.data = data
        self.refine = refine
        self.n_leaves = n_leaves
        self.min_leaf_size = min_leaf_size
        self.max_depth = max_depth
        self.score_threshold = score_threshold
        self.split_score = split_score
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.rng = as_generator(random_state) if init == "random" else None
        self.nodes = []
        self.root_error = 0.0

    def new_node(self, parent, depth, rows, v, sigma2):
        m = self.data.shape[1]
        error = max(float(self.data.row_squares[rows].sum()) - float(sigma2), 0.0)
        node = SplitNode(
            id=len(self.nodes), parent=parent, depth=depth, rows=rows,
            component=_as_component(v, m).astype(self.data.dtype), rank1_error=error,
            intensity=float(self.data.row_sums[rows].sum()),
        )
        node.pending = {"direction": v}
        self.nodes.append(node)
        return node

    def evaluate(self, node):
        """Compute the tentative split of a new leaf and its score."""
        direction = node.pending["direction"]
        node.pending = None
        if self.max_depth is not None and node.depth >= self.max_depth:
            node.status = "max_depth"
            return
        if node.size < max(2, 2 * self.min_leaf_size):
            node.status = "too_small"
            return
        rows = node.rows
        H0 = initial_components(self.data, rows, self.init, self.rng, v1=direction)
        W, H, objective = fit_rank2(self.data, rows, H0, max_iter=self.max_iter, tol=self.tol)
        W, H, _ = canonical_order(W, H)
        second = W[:, 1] > W[:, 0]
        sizes = np.array([rows.size - np.count_nonzero(second), np.count_nonzero(second)])
        totals = W.sum(axis=1)
        shares = np.max(W, axis=1)[totals > 0] / totals[totals > 0]
        node.child_sizes = sizes.astype(np.int64)
        node.coefficient_sums = W.sum(axis=0).astype(np.float64)
        node.purity = float(shares.mean()) if shares.size else float("nan")
        node.rank2_error = 2.0 * float(objective[-1])
        if sizes.min() < max(1, self.min_leaf_size):
            node.status = "small_child"
            return
        V, sigma2, groups = _group_rank1(self.data, rows, second, H, reassign=self.refine)
        child_rows = [rows[groups == 0], rows[groups == 1]]
        node.child_sizes = np.array([r.size for r in child_rows], dtype=np.int64)
        if min(r.size for r in child_rows) < max(1, self.min_leaf_size):
            node.status = "small_child"
            return
        child_errors = [
            max(float(self.data.row_squares[r].sum()) - float(s), 0.0)
            for r, s in zip(child_rows, sigma2)
        ]
        decrease = node.rank1_error - sum(child_errors)
        if decrease <= _NO_GAIN * float(self.data.row_squares[rows].sum()):
            node.status = "no_gain"
            return
        scale = self.root_error if self.split_score == "error" else node.rank1_error
        node.score = float(decrease / scale) if scale > 0 else 0.0
        node.status = "candidate"
        node.pending = {"children": list(zip(child_rows, V, sigma2))}

    def split(self, node):
        children = [self.new_node(node.id, node.depth + 1, rows, v, s)
                    for rows, v, s in node.pending["children"]]
        node.pending = None
        node.status = "split"
        node.children = tuple(child.id for child in children)
        for child in children:
            self.evaluate(child)

    def grow(self):
        data = self.data
        rows = np.arange(data.shape[0], dtype=np.int64)
        start = np.zeros((2, data.shape[1]))
        start[0] = data.t_times(rows, np.ones((rows.size, 2)))[0]
        V, sigma2, _ = _group_rank1(data, rows, np.zeros(rows.size, dtype=np.int8), start)
        root = self.new_node(-1, 0, rows, V[0], sigma2[0])
        self.root_error = root.rank1_error
        leaves = {root.id}
        if self.n_leaves > 1:
            self.evaluate(root)
        else:
            root.pending = None
        while len(leaves) < self.n_leaves:
            candidates = [self.nodes[i] for i in sorted(leaves)
                          if self.nodes[i].status == "candidate"]
            if self.score_threshold is not None:
                for node in candidates:
                    if node.score < self.score_threshold:
                        node.status = "below_threshold"
                candidates = [node for node in candidates if node.status == "candidate"]
            if not candidates:
                break
            best = max(candidates, key=lambda node: (node.score, -node.id))
            self.split(best)
            leaves.remove(best.id)
            leaves.update(best.children)
        for node in self.nodes:
            node.pending = None
        if len(leaves) >= self.n_leaves:
            return "n_leaves"
        counts = {}
        for i in sorted(leaves):
            counts[self.nodes[i].status] = counts.get(self.nodes[i].status, 0) + 1
        details = ", ".join(f"{count} {status}" for status, count in counts.items())
        return f"no_split: no leaf can be split ({details})"


#: Iterations of each rank-2 NMF of a tree, at most.
RANK2_MAX_ITER = 100


def rank2_tree(X, n_leaves, *, min_leaf_size=DEFAULT_MIN_LEAF_SIZE, max_depth=None,
               score_threshold=None, split_score="error", random_state=None,
               max_iter=RANK2_MAX_ITER, tol=DEFAULT_TOL, init="svd", refine=True):
    """Cluster the rows of ``X`` by hierarchical rank-2 NMF splitting.

    Starting with all rows in the root, the leaf with the best split score is
    split in two by a rank-2 NMF of its rows (exact alternating NNLS,
    :func:`~hyperspy_hnmf.hierarchy.rank2.rank2_nmf`); each row goes to the
    child whose component (scaled to unit sum) carries more of its intensity.
    Each leaf's tentative split and score are computed when the leaf is
    created (HierNMF2). Splitting stops at ``n_leaves`` leaves, or when no leaf
    can be split: every leaf is at ``max_depth``, has fewer than
    ``2 * min_leaf_size`` rows, would leave a child with fewer than
    ``min_leaf_size`` rows, or scores below ``score_threshold``.

    Parameters
    ----------
    X : array-like or scipy.sparse matrix, shape (n, m), nonnegative
        Rows are clustered (probe positions); columns are detector pixels or
        channels. Sparse data are never densified and dense data never copied
        (dense data with at most 30 % nonzeros are read as CSR).
    n_leaves : int
        Number of leaves to reach, 1 to n.
    min_leaf_size : int, default 1
        Smallest number of rows of a leaf.
    max_depth : int or None, default None
        Largest depth of a leaf (the root has depth 0), ≥ 1.
    score_threshold : float or None, default None
        Split only leaves whose score is at least this.
    split_score : {"error", "relative"}, default "error"
        ``"error"``: the decrease of the tree's total rank-one error that the
        split brings, over the root's rank-one error; ``"relative"``: over the
        leaf's own rank-one error (see the module notes).
    random_state : None, int or numpy.random.Generator
        Seed of ``init="random"``; the default initialization is deterministic.
    max_iter : int, default 100
        Maximum iterations of each rank-2 NMF.
    tol : float, default 1e-4
        Relative decrease of the objective that ends a rank-2 NMF.
    init : {"svd", "random"}, default "svd"
        Initialization of each rank-2 NMF (see
        :func:`~hyperspy_hnmf.hierarchy.rank2.rank2_nmf`).
    refine : bool, default True
        After the assignment by the larger rank-2 coefficient, move rows
        between the two children to the child whose rank-1 component fits them
        better, alternating with the children's rank-1 fits until no row moves
        (this lowers the tree error that the split score measures). It keeps
        a cluster whose pattern lies between the two rank-2 components from
        being cut in two. False: the plain HierNMF2 assignment.

    Returns
    -------
    SplitTree

    Warns
    -----
    UserWarning
        When splitting stops before ``n_leaves`` leaves, with the reason
        (``SplitTree.stop_reason``) and what to change.

    Notes
    -----
    Each tentative split reads its leaf's rows a few dozen times through
    two-column products (no copies; see
    :class:`~hyperspy_hnmf.hierarchy.rank2.RowData`), and the leaves of one
    level hold each row once, so a tree costs about that many passes over the
    data per level; on sparse counted data this is far less than a flat NMF
    with as many components.

    The splits minimize squared errors. On raw electron counts the brightest
    pixels (the direct beam) and Poisson noise dominate them, as for flat
    Frobenius NMF: weight the data first (HyperSpy's
    ``normalize_poissonian_noise``), and raise ``min_leaf_size`` to keep single
    noisy rows from becoming leaves.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> patterns = rng.random((4, 30)) ** 4
    >>> truth = np.repeat(np.arange(4), 25)
    >>> X = rng.poisson(50 * patterns[truth]).astype(np.float32)
    >>> tree = rank2_tree(X, 4)
    >>> tree.n_leaves, tree.components.dtype
    (4, dtype('float32'))
    >>> from sklearn.metrics import adjusted_rand_score
    >>> adjusted_rand_score(truth, tree.labels())
    1.0
    """
    if not sp.issparse(X) and not is_chunked(X):
        X = np.asarray(X)
    if len(X.shape) != 2:
        raise ValueError(
            f"Expected a 2D array (rows to cluster × channels), got {len(X.shape)}D: reshape "
            "the data to (positions, channels) first."
        )
    n_leaves = check_n_leaves(n_leaves, X.shape[0])
    min_leaf_size = check_count(min_leaf_size, "min_leaf_size", 1)
    if max_depth is not None:
        max_depth = check_count(max_depth, "max_depth", 1)
    check_score_threshold(score_threshold)
    if split_score not in SPLIT_SCORES:
        raise ValueError(f"Unknown split_score {split_score!r}. Valid values are "
                         f"{', '.join(repr(name) for name in SPLIT_SCORES)}.")
    if not isinstance(init, str):
        raise ValueError(f"init must be 'svd' or 'random' for a tree, got {init!r}.")
    check_fit_options(max_iter, tol, init)
    if not is_chunked(X):  # data read in passes are checked chunk by chunk
        check_data(X, where="rank2_tree")
    return _grow_tree(X, n_leaves, min_leaf_size, max_depth, score_threshold, random_state,
                      split_score, max_iter, tol, init, refine)


def _split_further(statuses, min_leaf_size, max_depth, score_threshold):
    """What would split the leaves of ``statuses`` further: only the options that stopped them.

    Examples
    --------
    >>> _split_further({"max_depth", "small_child"}, 20, 3, None)
    'Lower min_leaf_size (now 20) or raise max_depth (now 3) to split further'
    >>> _split_further({"small_child"}, 1, None, None)
    'No split separates the rows of these leaves: ask for fewer leaves'
    """
    changes = []
    if statuses & {"too_small", "small_child"} and min_leaf_size > 1:
        changes.append(f"lower min_leaf_size (now {min_leaf_size})")
    if "max_depth" in statuses:
        changes.append(f"raise max_depth (now {max_depth})")
    if "below_threshold" in statuses:
        changes.append(f"lower score_threshold (now {score_threshold:g})")
    if not changes:
        return "No split separates the rows of these leaves: ask for fewer leaves"
    advice = " or ".join(changes) + " to split further"
    return advice[0].upper() + advice[1:]


def _grow_tree(X, n_leaves, min_leaf_size, max_depth, score_threshold, random_state,
               split_score="error", max_iter=RANK2_MAX_ITER, tol=DEFAULT_TOL, init="svd",
               refine=True):
    """:func:`rank2_tree` with checked options and data: no checks.

    Integer counts held in memory (a :func:`~hyperspy_hnmf.matrix.held_matrix`)
    are read in place by :class:`~hyperspy_hnmf.matrix.rows.RowData`, as
    floats in memory are, not through the row cache of data read from files.
    """
    held = getattr(X, "held_array", None)
    if held is not None:
        data = RowData(held)
    else:
        data = as_data_matrix(X) if is_chunked(X) else RowData(X)
    builder = _Builder(data, n_leaves, min_leaf_size, max_depth, score_threshold,
                       split_score, max_iter, tol, init, random_state, bool(refine))
    stop_reason = builder.grow()
    reached = sum(1 for node in builder.nodes if node.is_leaf)
    if reached < n_leaves:
        advice = _split_further({node.status for node in builder.nodes if node.is_leaf},
                                min_leaf_size, max_depth, score_threshold)
        warnings.warn(
            f"The tree has {reached} {'leaf' if reached == 1 else 'leaves'}, not the "
            f"{n_leaves} asked for: {stop_reason.split(': ', 1)[-1]}. {advice} (node "
            "statuses: SplitTree.nodes).", UserWarning, stacklevel=3)
    parameters = {
        "n_leaves": n_leaves,
        "min_leaf_size": min_leaf_size,
        "max_depth": -1 if max_depth is None else max_depth,
        "score_threshold": float("nan") if score_threshold is None else float(score_threshold),
        "split_score": split_score,
        "max_iter": int(max_iter),
        "tol": float(tol),
        "init": init,
        "refine": int(bool(refine)),
    }
    return SplitTree(builder.nodes, X.shape[0], X.shape[1], builder.root_error, parameters,
                     stop_reason)
