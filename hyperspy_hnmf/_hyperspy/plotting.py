"""Figures of decompositions: calibrated component images and hierarchies."""

from dataclasses import dataclass

import textwrap

import numpy as np
from matplotlib.colors import ListedColormap, Normalize, PowerNorm

from . import results as integration

_MASK_COLORS = ListedColormap(["#e0e0e0", "#404040"])

__all__ = ["plot_decomposition_images", "plot_hierarchy"]


@dataclass
class _Node:
    key: tuple
    row: int
    position: float
    pattern: np.ndarray
    image: np.ndarray
    mask: bool = False
    name: str = ""


def _pattern_image(signal, column):
    """A component as an image (2D signals) or a curve (1D signals)."""
    shape = signal.axes_manager._signal_shape_in_array
    return np.nan_to_num(np.asarray(column, dtype=np.float64)).reshape(shape)


def _stack(images):
    """The component images of HyperSpy's loadings/factors signal, component axis first.

    HyperSpy drops the component axis when there is one component: it comes back.
    """
    data = np.asarray(images.data)
    return data[None] if images.axes_manager.navigation_dimension == 0 else data


def _panels(images):
    """One HyperSpy signal per component (the signal itself for one component)."""
    if images.axes_manager.navigation_dimension == 0:
        return [images]
    return [images.inav[j] for j in range(images.axes_manager.navigation_size)]


def _map_image(signal, column):
    shape = signal.axes_manager._navigation_shape_in_array
    return np.asarray(column, dtype=np.float64).reshape(shape)


def _layer_graph(signal, hierarchy, min_weight):
    ranks = [int(rank) for rank in hierarchy["ranks"]]
    n_levels = len(ranks)
    nodes, edges = {}, []
    for level in range(1, n_levels + 1):
        factors, loadings = integration.get_hierarchy_level(signal, level)
        patterns, images = _stack(factors), _stack(loadings)
        k = ranks[level - 1]
        for j in range(k):
            nodes[(level, j)] = _Node(
                key=(level, j),
                row=n_levels - level,
                position=(j + 0.5) / k,
                pattern=patterns[j],
                image=images[j],
                name=f"#{j}",
            )
    for level, M in integration.get_mixing_matrices(signal).items():
        for p, q in zip(*np.nonzero(M >= min_weight)):
            edges.append(((level, int(p)), (level - 1, int(q)), float(M[p, q]), True))
    return nodes, edges


def _tree_graph(signal, min_weight):
    tree = integration.get_split_tree(signal)
    leaves = [leaf.id for leaf in tree.leaves]
    maps = _stack(signal.get_decomposition_loadings())
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
            mask=node.id not in leaves,
            name=(f"comp. {leaves.index(node.id)}" if node.id in leaves else f"node {node.id}"),
        )
    pairs, weights = tree.edges()
    edges = [
        (int(parent), int(child), float(weight), weight >= min_weight)
        for (parent, child), weight in zip(pairs, weights)
    ]
    return nodes, edges, depth, len(leaves)


def _leaves_below(tree, node):
    if node.is_leaf:
        return [node.id]
    return [leaf for child in node.children for leaf in _leaves_below(tree, tree.nodes[child])]


def _quantity(signal):
    """What the data count, from HyperSpy's ``Signal.quantity`` (counts by default)."""
    quantity = signal.metadata.get_item("Signal.quantity", "counts")
    return str(quantity) or "counts"


def _lower(quantity):
    """``"Counts"`` as it reads inside a sentence; acronyms (``"EELS counts"``) kept."""
    return quantity[0].lower() + quantity[1:] if quantity[1:2].islower() else quantity


def _extent(axes):
    """Calibrated ``imshow`` extent of two HyperSpy axes (x, y), pixel edges included."""
    x, y = axes
    return [x.low_value - x.scale / 2, x.high_value + x.scale / 2,
            y.high_value + y.scale / 2, y.low_value - y.scale / 2]


def _units(axes):
    units = {str(a.units) for a in axes}
    return units.pop() if len(units) == 1 and "<undefined>" not in units else ""


def _axis_label(axis, default=""):
    """``"name (units)"`` of a HyperSpy axis, the parts it has (``default`` for no name)."""
    name = default if str(axis.name) == "<undefined>" else str(axis.name)
    units = _units([axis])
    return f"{name} ({units})".strip() if units else name


def _power_ticks(vmax, gamma, gap=0.18):
    """Round colour-bar ticks (1, 2, 5 x 10^n) at least ``gap`` apart on a power-law scale.

    Ticks spread evenly in the data crowd at the top of a square-root scale.
    """
    if not vmax > 0:
        return [0.0]
    top = int(np.floor(np.log10(vmax)))
    nice = sorted({m * 10.0 ** e for e in range(top - 4, top + 1) for m in (1, 2, 5)
                   if m * 10.0 ** e <= vmax}, reverse=True)
    ticks, last = [], np.inf
    for value in nice:
        position = (value / vmax) ** gamma
        if last - position >= gap and position >= gap:
            ticks.append(float(f"{value:.1g}"))
            last = position
    return [0.0] + ticks[::-1]


def _scale_bar(axis, length, units, color="white"):
    """A scale bar of ``length`` data units in the lower left corner of ``axis``."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    axis.add_artist(AnchoredSizeBar(axis.transData, length, f"{length:g} {units}", "lower left",
                                    pad=0.2, color=color, frameon=False, size_vertical=0,
                                    fontproperties={"size": 7, "weight": "bold"}))


def _nice_length(span):
    """A round length near a quarter of ``span`` (1, 2 or 5 times a power of ten)."""
    target = span / 4
    power = 10 ** np.floor(np.log10(target))
    return float(max(m for m in (1, 2, 5) if m * power <= target) * power)


def _thumbnail(figure, axis, node, x, y, size, cmap, show_map, style):
    """Draw the node's pattern (and map) as small axes centred at data (x, y)."""
    to_figure = axis.transData + figure.transFigure.inverted()
    fx, fy = to_figure.transform((x, y))
    images = [("pattern", node.pattern)] + ([("map", node.image)] if show_map else [])
    width = size * len(images)
    figure_width, figure_height = figure.get_size_inches()
    height = size * figure_width / figure_height  # square in inches
    for i, (kind, data) in enumerate(images):
        inset = figure.add_axes([fx - width / 2 + i * size, fy - height / 2, size, height])
        inset.set_label(f"{kind} {node.name}")
        inset.set_xticks([])
        inset.set_yticks([])
        if data.ndim == 2:
            colormap, norm = style[kind]
            if kind == "map" and node.mask:
                colormap, norm = _MASK_COLORS, Normalize(0, 1)
            inset.imshow(data, cmap=colormap, norm=norm, interpolation="nearest",
                         extent=style[kind + "_extent"])
            if style.get(kind + "_bar") and node is style["first"]:
                _scale_bar(inset, *style[kind + "_bar"])
        else:
            inset.plot(style[kind + "_x"], data, lw=0.8)
            inset.set_xlim(style[kind + "_x"][0], style[kind + "_x"][-1])
            inset.set_ylim(0, style["map_top"] if kind == "map" else None)
            if node is style["first"]:
                from matplotlib.ticker import MaxNLocator

                inset.xaxis.set_major_locator(MaxNLocator(4, prune="both"))
                inset.tick_params(axis="x", labelsize=6, length=2, pad=1)
                inset.set_xlabel(style[kind + "_label"], fontsize=6, labelpad=1)
        inset.apply_aspect()
        fy_top = max(fy_top, inset.get_position().y1) if i else inset.get_position().y1
    figure.text(fx, fy_top + 0.004, node.name, fontsize=7, ha="center", va="bottom",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none"))


def plot_hierarchy(signal, *, thumbnails=True, maps=True, min_weight=0.05, cmap="inferno",
                   figsize=None):
    """Draw a hierarchical decomposition: nodes, weighted edges and thumbnails.

    Multi-layer decompositions are drawn with the coarsest level at the top;
    an edge joins a coarse component to each finer component it mixes, its
    width and label giving the weight (the entry of the mixing matrix, rows
    summing to 1). Splitting trees are drawn root at the top, the edge weight
    being the fraction of the parent's intensity that goes to the child.
    Each node is named (``#j``: component ``j`` of
    ``get_hierarchy_level(s, level)``; in a tree ``comp. j`` for leaf ``j``,
    ``node i`` for inner nodes) and shows its component (pattern or
    spectrum) and, with ``maps``, its map (for a tree's inner nodes, the
    probe positions below it). All patterns share one colour scale (square
    root of the fraction of the component's intensity per pixel) and all
    maps another (the data's quantity, counts by default, per probe
    position); both are drawn as colour bars under the hierarchy, and the
    leftmost node of the bottom row carries scale bars in the calibrated
    units of the signal and navigation axes (curves, such as spectra and
    line-scan maps, a calibrated x axis instead; maps drawn as curves share
    one y scale from 0, spectra each have their own). The figure's title
    ends with the signal's title.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        A signal decomposed with ``algorithm="hnmf"`` and a hierarchy.
    thumbnails : bool, default True
        Draw pattern (and map) thumbnails at the nodes; else numbered markers.
    maps : bool, default True
        Add a map thumbnail beside each pattern.
    min_weight : float, default 0.05
        Edges with a smaller weight are not drawn (in a tree, they are
        dotted and unlabelled, so that no node floats alone).
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
        row_names = {n_rows - level: f"level {level}\n({rank} comp.)"
                     for level, rank in enumerate(hierarchy["ranks"], start=1)}
        title = "Multi-layer NMF: each coarse component (above) mixes finer ones (below)"
        nodes_named = "#j: component j of get_hierarchy_level(s, level)"
    else:
        nodes, edges, depth, widest = _tree_graph(signal, min_weight)
        n_rows = depth + 1
        row_names = {row: f"depth {row}" for row in range(n_rows)}
        title = "Splitting tree: fraction of the parent's intensity on each edge"
        nodes_named = "comp. j: leaf j, component j of the decomposition"
    data_title = str(signal.metadata.get_item("General.title", "") or "")
    if data_title:
        title = f"{title}\n{data_title}"
    width = max(6.0, 1.3 * widest * (2 if maps else 1))
    figure = plt.figure(figsize=figsize or (min(width, 24.0), max(2.2 * n_rows + 1.2, 4.4)))
    legend = _legend(figure, signal, maps, nodes_named, any(n.mask for n in nodes.values()))
    footer = legend["footer"] / figure.get_figheight() if thumbnails else 0.04
    top = 0.9 if "\n" not in title else 0.86
    axis = figure.add_axes([0.1, footer, 0.89, top - footer])
    axis.set_xlim(0, 1)
    axis.set_ylim(n_rows - 0.5, -0.5)
    axis.axis("off")
    figure.suptitle(title, fontsize=10, y=0.985)
    for row, name in row_names.items():
        axis.text(-0.01, row, name, fontsize=7, ha="right", va="center")
    for start, end, weight, shown in edges:
        a, b = nodes[start], nodes[end]
        if not shown:  # a tree edge under min_weight: dotted, so that no node floats alone
            axis.plot([a.position, b.position], [a.row, b.row], color="0.6", lw=0.6, ls=":",
                      zorder=1)
            continue
        axis.plot([a.position, b.position], [a.row, b.row], color="0.4",
                  lw=0.5 + 4 * weight, zorder=1)
        axis.text((a.position + b.position) / 2, (a.row + b.row) / 2, f"{weight:.2f}",
                  fontsize=7, ha="center", va="center", zorder=2,
                  bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    for node in nodes.values():
        axis.plot(node.position, node.row, "o", color="C0", ms=4, zorder=3)
    if thumbnails:
        figure.canvas.draw()
        box = axis.get_position()
        figure_width, figure_height = figure.get_size_inches()
        size = min(0.7 * box.height / n_rows * figure_height / figure_width,
                   0.9 * box.width / (widest * (2 if maps else 1)))
        size = min(size, 0.9 * box.height / n_rows)
        style = _thumbnail_style(signal, nodes, cmap)
        for node in nodes.values():
            _thumbnail(figure, axis, node, node.position, node.row, size, cmap, maps, style)
        _thumbnail_colorbars(figure, style, legend)
    else:
        for node in nodes.values():
            axis.annotate(node.name, (node.position, node.row), fontsize=7,
                          xytext=(0, 6), textcoords="offset points", ha="center")
        figure.text(0.5, 0.01, nodes_named, fontsize=7, ha="center", va="bottom", color="0.25")
    return figure


def _thumbnail_style(signal, nodes, cmap):
    """Shared colour scales and calibrations of the thumbnails of one figure.

    Masked probe positions and pixels (NaN) are left out of the scales.
    """
    values = list(nodes.values())
    patterns = np.array([_largest(np.clip(node.pattern, 0, None)) for node in values])
    maps = [_largest(node.image) for node in values if not node.mask]
    signal_axes = signal.axes_manager.signal_axes
    navigation_axes = signal.axes_manager.navigation_axes
    style = {
        "pattern": (cmap, PowerNorm(0.5, vmin=0.0, vmax=float(patterns.max()) or 1.0)),
        "map": ("viridis", Normalize(0.0, max(maps, default=0.0) or 1.0)),
        "pattern_extent": _extent(signal_axes) if len(signal_axes) == 2 else None,
        "map_extent": _extent(navigation_axes) if len(navigation_axes) == 2 else None,
        "pattern_x": signal_axes[0].axis if len(signal_axes) == 1 else None,
        "map_x": navigation_axes[0].axis if len(navigation_axes) == 1 else None,
        "pattern_label": _axis_label(signal_axes[0]),
        "map_label": _axis_label(navigation_axes[0]) if navigation_axes else "",
        "map_top": 1.05 * max(maps, default=0.0) or 1.0,
        "first": min(values, key=lambda node: (-node.row, node.position)),
    }
    for kind, axes in (("pattern", signal_axes), ("map", navigation_axes)):
        units = _units(axes) if len(axes) == 2 else ""
        if units:
            span = abs(axes[0].high_value - axes[0].low_value)
            style[kind + "_bar"] = (_nice_length(span), units)
    return style


def _largest(values):
    """The largest value, NaN (masked entries) ignored; 0 when there is none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 0.0


_LINE = 0.125  # inches per line of 7-point text


def _legend(figure, signal, maps, nodes_named, masked):
    """What the thumbnails show, and the height (inches) it takes under the drawing.

    Images get colour bars with units; curves (spectra, line-scan maps) get a
    line of text saying what their y axis shows (the first curve of the
    bottom row has a calibrated x axis), as does the naming of the nodes.
    """
    masks = " (inner tree nodes: their probe positions in dark grey)" if masked else ""
    quantity = _lower(_quantity(signal))
    entries, notes = [], [nodes_named]
    if signal.axes_manager.signal_dimension == 2:
        entries.append(("pattern", "component: fraction of its intensity per pixel "
                                   "(square-root scale)"))
    else:
        notes.append("components: fraction of their intensity per channel, each on its own "
                     "scale from 0")
    if maps and signal.axes_manager.navigation_dimension != 1:
        entries.append(("map", f"map: {quantity} per probe position{masks}"))
    elif maps:
        notes.append(f"maps: {quantity} per probe position, one scale from 0{masks}")
    width = 0.8 / max(len(entries), 1)
    characters = max(int(figure.get_figwidth() * width * 14), 30)
    entries = [(kind, textwrap.fill(label, characters)) for kind, label in entries]
    note = textwrap.fill("; ".join(notes), int(figure.get_figwidth() * 15))
    note_height = 0.06 + _LINE * (note.count("\n") + 1)
    label_lines = max((label.count("\n") + 1 for _, label in entries), default=0)
    bar_bottom = note_height + 0.28 + _LINE * label_lines
    footer = bar_bottom + 0.1 + 0.3 if entries else note_height + 0.35
    return dict(entries=entries, note=note, width=width, bar_bottom=bar_bottom, footer=footer)


def _thumbnail_colorbars(figure, style, legend):
    """Colour bars (with units) of the thumbnails and the line of notes, under the drawing."""
    from matplotlib.cm import ScalarMappable

    height = figure.get_figheight()
    figure.text(0.5, 0.05 / height, legend["note"], fontsize=7, ha="center", va="bottom",
                color="0.25")
    width = legend["width"]
    for i, (kind, label) in enumerate(legend["entries"]):
        cmap, norm = style[kind]
        cax = figure.add_axes([0.1 + i * (width + 0.04), legend["bar_bottom"] / height,
                               width - 0.04, 0.1 / height])
        bar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax,
                              orientation="horizontal")
        if kind == "pattern":
            bar.set_ticks(_power_ticks(norm.vmax, norm.gamma))
        bar.set_label(label, fontsize=7)
        bar.ax.tick_params(labelsize=6)


def plot_decomposition_images(signal, what="loadings", order=None, names=None, *,
                              per_row=4, cmap=None, gamma=None, colorbar_label=None,
                              scalebar=True, title=None, figsize=None):
    """Calibrated images of a decomposition's maps or 2D components.

    A thin layer over :func:`hyperspy.api.plot.plot_images`: one panel per
    component with a scale bar in the calibrated units, its own colour bar
    with the units written on it, and the name of the component (for example
    the phase it was matched to) as its title.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        A decomposed signal (any algorithm).
    what : {"loadings", "factors"}, default "loadings"
        Draw the maps (``"loadings"``) or the components (``"factors"``, which
        must be images, as for 4D-STEM).
    order : sequence of int, optional
        Components to draw, in this order; all by default.
    names : sequence of str, optional
        One title per drawn component; ``"component i"`` by default.
    per_row : int, default 4
        Panels per row.
    cmap : str, optional
        Colour map; ``"viridis"`` for maps, ``"inferno"`` for components.
    gamma : float, optional
        Draw on a power-law colour scale (0.5: square root, which keeps weak
        diffraction spots visible next to the direct beam); the colour bar
        keeps the data's units. Default: linear for maps, 0.5 for components.
    colorbar_label : str, optional
        Label of every colour bar. Default: "<quantity> per probe position"
        for maps, with the quantity from ``metadata.Signal.quantity``
        (``"counts"`` if unset), and "fraction of the component per pixel"
        for components (HNMF components sum to 1).
    scalebar : bool, default True
        Draw a scale bar in every panel (else calibrated axes with ticks).
    title : str, optional
        Figure title; default "Maps of <title>" or "Components of <title>"
        with the signal's title (none for an untitled signal).
    figsize : tuple of float, optional
        Figure size in inches; grows with the number of panels by default.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    hyperspy.api.plot.plot_images

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_4dstem
    >>> s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16), n_phases=1)
    >>> s.decomposition(algorithm="hnmf", output_dimension=3, print_info=False,
    ...                 show_progressbar=False)
    >>> figure = plot_decomposition_images(s, names=["halo", "rot. 0", "rot. 1"])
    >>> [axis.get_title() for axis in figure.axes[::2]]
    ['halo', 'rot. 0', 'rot. 1']
    """
    import hyperspy.api as hs
    import matplotlib.pyplot as plt

    if what not in ("loadings", "factors"):
        raise ValueError(f"what must be 'loadings' or 'factors', not {what!r}")
    if what == "loadings":
        images = signal.get_decomposition_loadings()
        default_label = f"{_quantity(signal)} per probe position"
        shown = "Maps"
    else:
        images = signal.get_decomposition_factors()
        default_label = "fraction of the component per pixel"
        shown = "Components"
    data_title = str(signal.metadata.get_item("General.title", "") or "")
    if title is None and data_title:
        title = f"{shown} of {data_title}"
    if images.axes_manager.signal_dimension != 2:
        raise ValueError(
            f"The {what} of this signal are {images.axes_manager.signal_dimension}D; "
            "plot_decomposition_images draws 2D images only (use "
            "hyperspy.api.plot.plot_spectra for spectra)."
        )
    panels = _panels(images)
    order = list(range(len(panels))) if order is None else list(order)
    if not order or any(not isinstance(j, (int, np.integer)) or not 0 <= j < len(panels)
                        for j in order):
        raise ValueError(
            f"order must list component indices between 0 and {len(panels) - 1} (at least "
            f"one), got {order!r}.")
    if not isinstance(per_row, (int, np.integer)) or isinstance(per_row, bool) or per_row < 1:
        raise ValueError(f"per_row must be an integer ≥ 1, got {per_row!r}.")
    names = [f"component {j}" for j in order] if names is None else list(names)
    if len(names) != len(order):
        raise ValueError(f"{len(names)} names given for {len(order)} components")
    if gamma is None:
        gamma = 0.5 if what == "factors" else 1.0
    columns = min(per_row, len(order))
    rows = -(-len(order) // columns)
    x_axis, y_axis = images.axes_manager.signal_axes
    aspect = abs(y_axis.scale * y_axis.size / (x_axis.scale * x_axis.size))
    panel = 1.75 * min(max(aspect, 0.3), 2.0) + (0.55 if scalebar else 0.8)
    header = 0.55 if title else (0.15 if scalebar else 0.3)
    height = panel * rows + header
    width = (2.75 if scalebar else 3.1) * columns + (0.9 if scalebar else 1.3)
    figure = plt.figure(figsize=figsize or (width, height))
    height = figure.get_figheight()
    axes = hs.plot.plot_images(
        [panels[j] for j in order], label=names, per_row=columns,
        cmap=cmap or ("viridis" if what == "loadings" else "inferno"),
        colorbar="multi", scalebar="all" if scalebar else None,
        axes_decor="off" if scalebar else "all", suptitle="", fig=figure,
        padding=dict(left=0.02 if scalebar else 0.9 / figure.get_figwidth(), right=0.9,
                     bottom=0.03 if scalebar else 0.55 / height,
                     top=1 - header / height, wspace=0.55 if scalebar else 1.05,
                     hspace=0.25 if scalebar else 0.45),
    )
    drawn = set(axes)
    colorbars = [axis for axis in figure.axes if axis not in drawn]
    label = colorbar_label or default_label
    figure.canvas.draw()
    for axis, cax in zip(axes, colorbars):
        image = axis.images[0]
        if gamma != 1.0:
            low, high = image.get_clim()
            image.set_norm(PowerNorm(gamma, vmin=max(low, 0.0), vmax=high))
            cax.set_yticks(_power_ticks(high, gamma))
        axis.title.set_fontsize(9)
        bar_height = cax.get_position().height * height * 72  # points
        cax.set_ylabel(textwrap.fill(label, max(12, int(bar_height / 4.2))), fontsize=7)
        cax.tick_params(labelsize=7)
        if scalebar:  # the label starts at the bar: centred on a short bar, it left the panel
            text = axis.scalebar.text
            text.set_horizontalalignment("left")
            text.set_x(axis.scalebar.position[0])
        else:
            axis.set_xlabel(_axis_label(x_axis, "x"), fontsize=8)
            axis.set_ylabel(_axis_label(y_axis, "y"), fontsize=8)
            axis.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure
