"""Dendrogram of clustered components with a thumbnail of every pattern."""

import numpy as np
from scipy.cluster import hierarchy

__all__ = ["plot_component_dendrogram"]


def _display(pattern):
    """Square-root intensities scaled to [0, 1] (the direct beam would hide the rest)."""
    values = np.sqrt(np.clip(pattern, 0.0, None))
    top = np.percentile(values, 99.5)
    return np.clip(values / top, 0.0, 1.0) if top > 0 else values


def plot_component_dendrogram(clusters, ax=None, figsize=None, thumbnail_size=0.9,
                              cmap="viridis", pixel_size=None, units=None):
    """Plot the dendrogram of :func:`cluster_components` with pattern thumbnails.

    Leaves are coloured by cluster; under every leaf, the component's pattern
    (square-root intensity, each scaled to its own 99.5th percentile, with
    one colour bar), its index and its rotation relative to its cluster's
    reference. The cut (threshold) is drawn as a dashed line. With
    ``pixel_size`` and ``units`` (the signal method passes the detector's
    calibration) the first thumbnail has a scale bar.

    Parameters
    ----------
    clusters : ComponentClusters
    ax : matplotlib.axes.Axes, optional
        Axes for the dendrogram; a new figure by default.
    figsize : tuple of float, optional
        Figure size when a new figure is made; default grows with the number
        of components.
    thumbnail_size : float
        Thumbnail width as a fraction of the spacing between leaves.
    cmap : str
        Colour map of the thumbnails.
    pixel_size : float, optional
        Size of one pattern pixel in ``units`` (e.g. 0.25 for 0.25 1/nm).
    units : str, optional
        Units of ``pixel_size``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from hyperspy_hnmf.polar import cluster_components
    >>> rng = np.random.default_rng(0)
    >>> result = cluster_components(rng.random((4, 16, 16)), n_clusters=2, center=(7.5, 7.5))
    >>> figure = plot_component_dendrogram(result, pixel_size=0.25, units="1/nm")
    >>> len(figure.axes)  # dendrogram, 4 thumbnails, colour bar
    6
    """
    import matplotlib.pyplot as plt
    from matplotlib import colormaps

    k = len(clusters.labels)
    if ax is None:
        if figsize is None:
            figsize = (max(4.5, 0.9 * k + 2.0), 4.0)
        figure, ax = plt.subplots(figsize=figsize)
        width, height = figure.get_size_inches()  # margins in inches: labels never clipped
        title_room = 0.65 if getattr(clusters, "data_title", None) else 0.4  # inches
        figure.subplots_adjust(left=0.95 / width, right=1 - 1.1 / width,
                               top=1 - title_room / height, bottom=0.34)
    else:
        figure = ax.figure
    palette = colormaps["tab10"]
    colors = [palette(c % 10) for c in range(clusters.n_clusters)]
    leaf_color = {i: colors[clusters.labels[i]] for i in range(k)}

    def link_color(node):
        if node < k:
            return _hex(leaf_color[node])
        left, right = (int(n) for n in clusters.linkage[node - k, :2])
        a, b = link_color(left), link_color(right)
        return a if a == b else "#808080"

    tree = hierarchy.dendrogram(
        clusters.linkage, ax=ax, no_labels=True, link_color_func=link_color,
    )
    if clusters.cut_distance is not None:
        ax.axhline(clusters.cut_distance, color="0.3", linestyle="--", linewidth=1)
    ax.set_ylabel("dissimilarity\n(1 − max. φ cross-correlation)")
    title = f"{k} components in {clusters.n_clusters} clusters (φ cross-correlation)"
    data_title = getattr(clusters, "data_title", None)
    ax.set_title(f"{data_title}\n{title}" if data_title else title)
    ax.set_xticks([])
    ax.yaxis.set_ticks_position("left")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    figure.canvas.draw()
    box = ax.get_position()
    spacing = box.width / k
    rows, columns = np.asarray(clusters.components[0]).shape
    size = thumbnail_size * spacing
    height = size * rows / columns * figure.get_figwidth() / figure.get_figheight()
    room = box.y0 - 0.02 - 0.45 / figure.get_figheight()  # the index and angle under each
    if height > room:  # tall patterns: as high as the room under the dendrogram allows
        size, height = size * room / height, room
    image = None
    for position, leaf in enumerate(tree["leaves"]):
        left = box.x0 + (position + 0.5) * spacing - size / 2
        thumb = figure.add_axes([left, box.y0 - height - 0.02, size, height])
        image = thumb.imshow(_display(clusters.components[leaf]), cmap=cmap,
                             interpolation="nearest", vmin=0, vmax=1)
        if position == 0 and pixel_size and units and units != "<undefined>":
            _scale_bar(thumb, clusters.components[leaf].shape, pixel_size, units)
        thumb.set_xticks([])
        thumb.set_yticks([])
        for spine in thumb.spines.values():
            spine.set_color(leaf_color[leaf])
            spine.set_linewidth(2)
        angle = clusters.angles_deg[leaf]
        thumb.set_xlabel(f"#{leaf}\n{angle:+.0f}°", fontsize=8, color=leaf_color[leaf])
    if image is not None:
        bar_height = max(height, 0.2)
        bar = figure.add_axes([box.x1 + 0.015, box.y0 - 0.02 - (height + bar_height) / 2,
                               0.012, bar_height])
        colorbar = figure.colorbar(image, cax=bar, ticks=[0, 0.5, 1])
        colorbar.set_label("√intensity ÷\n99.5th pct.\nof each pattern", fontsize=7)
        colorbar.ax.tick_params(labelsize=7)
    return figure


def _scale_bar(ax, shape, pixel_size, units):
    """A white bar of a round length (about a quarter of the pattern's width) with its label.

    Placed in the lower left corner of a pattern of ``shape`` (rows, columns) pixels.
    """
    height_px, width_px = shape
    target = 0.25 * width_px * pixel_size
    length = 10 ** np.floor(np.log10(target))
    for factor in (5, 2, 1):
        if factor * length <= target:
            length *= factor
            break
    pixels = length / pixel_size
    x0, y0 = 0.08 * width_px, 0.88 * height_px
    ax.plot([x0, x0 + pixels], [y0, y0], color="white", linewidth=3, solid_capstyle="butt")
    ax.text(x0, y0 - 0.06 * height_px, f"{length:g} {units}", color="white",
            fontsize=7, ha="left", va="bottom", fontweight="bold")


def _hex(color):
    from matplotlib.colors import to_hex

    return to_hex(color)
