"""Figures of hierarchical decompositions (matplotlib only)."""

from dataclasses import dataclass

import numpy as np
from matplotlib.colors import PowerNorm

from . import results as integration

__all__ = ["plot_hierarchy"]


@dataclass
class _Node:
    key: tuple
    row: int
    position: float
    pattern: np.ndarray
    image: np.ndarray


def _pattern_image(signal, column):
    """A component as an image (2D signals) or a curve (1D signals)."""
    shape = signal.axes_manager._signal_shape_in_array
    return np.nan_to_num(np.asarray(column, dtype=np.float64)).reshape(shape)


def _map_image(signal, column):
    shape = signal.axes_manager._navigation_shape_in_array
    return np.asarray(column, dtype=np.float64).reshape(shape)


def _layer_graph(signal, hierarchy, min_weight):
    ranks = [int(rank) for rank in hierarchy["ranks"]]
    n_levels = len(ranks)
    nodes, edges = {}, []
    for level in range(1, n_levels + 1):
        factors, loadings = integration.get_hierarchy_level(signal, level)
        k = ranks[level - 1]
        for j in range(k):
            nodes[(level, j)] = _Node(
                key=(level, j),
                row=n_levels - level,
                position=(j + 0.5) / k,
                pattern=factors.data[j],
                image=loadings.data[j],
            )
    for level, M in integration.get_mixing_matrices(signal).items():
        for p, q in zip(*np.nonzero(M >= min_weight)):
            edges.append(((level, int(p)), (level - 1, int(q)), float(M[p, q])))
    return nodes, edges


def _tree_graph(signal, min_weight):
    tree = integration.get_split_tree(signal)
    leaves = [leaf.id for leaf in tree.leaves]
    maps = signal.get_decomposition_loadings().data
    depth = max(node.depth for node in tree.nodes)
    positions = {leaf: (i + 0.5) / len(leaves) for i, leaf in enumerate(leaves)}

    def place(node):
        if node.id not in positions:
            positions[node.id] = float(np.mean([place(tree.nodes[c]) for c in node.children]))
        return positions[node.id]

    place(tree.root)
    labels = integration.get_cluster_labels(signal).data
    nodes = {}
    for node in tree.nodes:
        if node.id in leaves:
            image = maps[leaves.index(node.id)]
        else:
            below = [leaves.index(i) for i in _leaves_below(tree, node)]
            image = np.isin(labels, below).astype(np.float64)
        nodes[node.id] = _Node(
            key=node.id,
            row=node.depth,
            position=positions[node.id],
            pattern=_pattern_image(signal, node.component),
            image=image,
        )
    pairs, weights = tree.edges()
    edges = [
        (int(parent), int(child), float(weight))
        for (parent, child), weight in zip(pairs, weights)
        if weight >= min_weight
    ]
    return nodes, edges, depth, len(leaves)


def _leaves_below(tree, node):
    if node.is_leaf:
        return [node.id]
    return [leaf for child in node.children for leaf in _leaves_below(tree, tree.nodes[child])]


def _thumbnail(figure, axis, node, x, y, size, cmap, show_map):
    """Draw the node's pattern (and map) as small axes centred at data (x, y)."""
    to_figure = axis.transData + figure.transFigure.inverted()
    fx, fy = to_figure.transform((x, y))
    images = [(node.pattern, cmap)] + ([(node.image, "viridis")] if show_map else [])
    width = size * len(images)
    for i, (data, colormap) in enumerate(images):
        inset = figure.add_axes([fx - width / 2 + i * size, fy - size / 2, size, size])
        if data.ndim == 2:
            # Patterns are shown on a square-root scale so weak spots stay visible.
            norm = PowerNorm(0.5) if colormap == cmap and np.nanmin(data) >= 0 else None
            inset.imshow(data, cmap=colormap, norm=norm, interpolation="nearest")
        else:
            inset.plot(data, lw=0.8)
        inset.set_xticks([])
        inset.set_yticks([])


def plot_hierarchy(signal, *, thumbnails=True, maps=True, min_weight=0.05, cmap="inferno",
                   figsize=None):
    """Draw a hierarchical decomposition: nodes, weighted edges and thumbnails.

    Multi-layer decompositions are drawn with the coarsest level at the top;
    an edge joins a coarse component to each finer component it mixes, its
    width and label giving the weight (the entry of the mixing matrix, rows
    summing to 1). Splitting trees are drawn root at the top, the edge weight
    being the fraction of the parent's intensity that goes to the child.
    Each node shows its component (pattern or spectrum) and, with ``maps``,
    its map (for a tree's inner nodes, the probe positions below it).

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        A signal decomposed with ``algorithm="hnmf"`` and a hierarchy.
    thumbnails : bool, default True
        Draw pattern (and map) thumbnails at the nodes; else numbered markers.
    maps : bool, default True
        Add a map thumbnail beside each pattern.
    min_weight : float, default 0.05
        Edges with a smaller weight are not drawn.
    cmap : str, default "inferno"
        Colormap of the pattern thumbnails.
    figsize : tuple, optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> rng = np.random.default_rng(0)
    >>> s = hs.signals.Signal2D(rng.random((6, 6, 8, 8)).astype("float32"))
    >>> s.decomposition(algorithm="hnmf", output_dimension=[4, 2], print_info=False)
    >>> figure = plot_hierarchy(s)
    >>> len(figure.axes) > 1
    True
    """
    import matplotlib.pyplot as plt

    hierarchy = integration._hierarchy(signal)
    if hierarchy["kind"] == "layers":
        nodes, edges = _layer_graph(signal, hierarchy, min_weight)
        n_rows = len(hierarchy["ranks"])
        widest = int(hierarchy["ranks"][0])
    else:
        nodes, edges, depth, widest = _tree_graph(signal, min_weight)
        n_rows = depth + 1
    width = max(6.0, 1.3 * widest * (2 if maps else 1))
    figure = plt.figure(figsize=figsize or (min(width, 24.0), 2.2 * n_rows + 0.6))
    axis = figure.add_axes([0.02, 0.02, 0.96, 0.96])
    axis.set_xlim(0, 1)
    axis.set_ylim(n_rows - 0.5, -0.5)
    axis.axis("off")
    for start, end, weight in edges:
        a, b = nodes[start], nodes[end]
        axis.plot([a.position, b.position], [a.row, b.row], color="0.4",
                  lw=0.5 + 4 * weight, zorder=1)
        axis.text((a.position + b.position) / 2, (a.row + b.row) / 2, f"{weight:.2f}",
                  fontsize=7, ha="center", va="center", zorder=2,
                  bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    for node in nodes.values():
        axis.plot(node.position, node.row, "o", color="C0", ms=4, zorder=3)
    if thumbnails:
        figure_width, figure_height = figure.get_size_inches()
        size = min(0.7 / figure_height, 0.9 / (widest * (2 if maps else 1)))
        size = min(size, 0.9 / n_rows)
        for node in nodes.values():
            _thumbnail(figure, axis, node, node.position, node.row, size, cmap, maps)
    else:
        for node in nodes.values():
            axis.annotate(str(node.key), (node.position, node.row), fontsize=7,
                          xytext=(0, 6), textcoords="offset points", ha="center")
    return figure
