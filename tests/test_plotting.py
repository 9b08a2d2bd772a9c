"""Figures of decompositions: calibrated, named, with labelled colour bars."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import hyperspy_hnmf  # noqa: E402,F401
from hyperspy_hnmf.data import score_signal, synthetic_4dstem  # noqa: E402
from hyperspy_hnmf.plotting import plot_decomposition_images  # noqa: E402


@pytest.fixture(scope="module")
def decomposed():
    s = synthetic_4dstem(scan_shape=(24, 24), detector_shape=(32, 32), n_phases=1,
                         dose=400, random_state=0)
    s.decomposition(algorithm="hnmf", output_dimension=3, loss="kl", random_state=0,
                    print_info=False, show_progressbar=False)
    score = score_signal(s)
    order = [learned for _, learned in score.pairs]
    names = [score.names[true] for true, _ in score.pairs]
    return s, order, names


def test_images_are_named_calibrated_and_labelled(decomposed):
    s, order, names = decomposed
    figure = plot_decomposition_images(s, order=order, names=names)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == names
    labels = [axis.get_ylabel() for axis in figure.axes if not axis.images]
    assert labels == ["Counts per probe position"] * 3
    assert all(hasattr(axis, "scalebar") for axis in figure.axes if axis.get_title())


def test_components_default_to_a_square_root_scale(decomposed):
    s, order, names = decomposed
    figure = plot_decomposition_images(s, "factors", order=order, names=names)
    image = figure.axes[0].images[0]
    assert image.norm.gamma == 0.5
    label = figure.axes[1].get_ylabel()
    assert label.replace("\n", " ") == "fraction of the component per pixel"


def test_spectra_are_refused_with_a_pointer():
    import hyperspy.api as hs
    import numpy as np

    s = hs.signals.Signal1D(np.random.default_rng(0).random((4, 4, 16)).astype("float32"))
    s.decomposition(algorithm="hnmf", output_dimension=2, print_info=False,
                    show_progressbar=False)
    with pytest.raises(ValueError, match="plot_spectra"):
        plot_decomposition_images(s, "factors")


@pytest.mark.mpl_image_compare(baseline_dir="baseline", tolerance=5)
def test_plot_decomposition_maps(decomposed):
    s, order, names = decomposed
    return plot_decomposition_images(s, order=order, names=names, title="maps")


@pytest.mark.mpl_image_compare(baseline_dir="baseline", tolerance=5)
def test_plot_decomposition_components(decomposed):
    s, order, names = decomposed
    return plot_decomposition_images(s, "factors", order=order, names=names)


@pytest.mark.parametrize("options", [dict(hierarchy="tree", output_dimension=1),
                                     dict(output_dimension=[2, 1])])
def test_hierarchy_with_a_single_component_level_is_drawn(options):
    # HyperSpy drops the component axis of one-component loadings: the images
    # must still be 2D maps and patterns, not rows of them.
    s = synthetic_4dstem(scan_shape=(12, 12), detector_shape=(16, 16), n_phases=1,
                         n_rotations=1, random_state=0)
    s.decomposition(algorithm="hnmf", print_info=False, **options)
    figure = hyperspy_hnmf.plot_hierarchy(s)
    shapes = [image.get_array().shape for axis in figure.axes for image in axis.images]
    assert shapes and all(shape in ((12, 12), (16, 16)) for shape in shapes)
    matplotlib.pyplot.close("all")


def test_one_component_images_and_bad_panel_options():
    s = synthetic_4dstem(scan_shape=(12, 12), detector_shape=(16, 16), n_phases=1,
                         n_rotations=1, random_state=0)
    s.decomposition(algorithm="hnmf", output_dimension=1, print_info=False)
    figure = plot_decomposition_images(s)
    assert [axis.get_title() for axis in figure.axes[::2]] == ["component 0"]
    with pytest.raises(ValueError, match=r"order must list component indices between 0 and 0 "
                                         r"\(at least one\), got \[\]\."):
        plot_decomposition_images(s, order=[])
    with pytest.raises(ValueError, match=r"per_row must be an integer ≥ 1, got 0\."):
        plot_decomposition_images(s, per_row=0)
    matplotlib.pyplot.close("all")


def _tree_with_masked_positions():
    s = synthetic_4dstem(scan_shape=(8, 10), detector_shape=(16, 16), n_phases=1, dose=200,
                         random_state=0)
    mask = np.zeros(s.axes_manager.navigation_shape, dtype=bool)
    mask[:3, 0] = True                          # three probe positions left out
    s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=3,
                    navigation_mask=mask, print_info=False, random_state=0)
    return s


def test_masked_positions_leave_the_map_scale_finite():
    # Masked positions are NaN in the maps: the shared colour scale must come
    # from the other positions, not turn into NaN (a blank -0.1..0.1 colour bar).
    s = _tree_with_masked_positions()
    figure = hyperspy_hnmf.plot_hierarchy(s)
    expected = float(np.nanmax(s.learning_results.loadings))
    maps = [image for axis in figure.axes for image in axis.images
            if image.get_cmap().name == "viridis"]
    assert len(maps) == 3
    assert all(image.norm.vmax == expected and image.norm.vmin == 0.0 for image in maps)
    matplotlib.pyplot.close("all")


def test_line_scan_maps_are_drawn_along_the_scan():
    import hyperspy.api as hs

    rng = np.random.default_rng(0)
    data = rng.poisson(rng.random((30, 3)) @ rng.random((3, 36)) * 20).astype("float32")
    s = hs.signals.Signal2D(data.reshape(30, 6, 6))
    s.axes_manager.navigation_axes[0].scale = 0.5
    s.decomposition(algorithm="hnmf", output_dimension=[3, 2], print_info=False,
                    random_state=0)
    figure = hyperspy_hnmf.plot_hierarchy(s)
    curves = [line for axis in figure.axes for line in axis.lines if len(line.get_xdata()) == 30]
    assert len(curves) == 5                     # one map per node, against the scan axis
    assert all(np.array_equal(line.get_xdata(), np.arange(30) * 0.5) for line in curves)
    labels = [axis.get_xlabel() for axis in figure.axes if axis.get_xlabel()]
    assert not any(label.startswith("map:") for label in labels)  # no colour bar for curves
    matplotlib.pyplot.close("all")


# --- calibrations, titles and layout a microscopist can read --------------------------


def _inside(figure, artist, box=None):
    """Whether ``artist``'s drawn extent lies within ``box`` (the figure by default)."""
    renderer = figure.canvas.get_renderer()
    extent = artist.get_window_extent(renderer)
    box = figure.bbox if box is None else box
    return (extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1
            and extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1)


def _in_mrad(detector_shape):
    """A scan in nm whose patterns are calibrated in mrad, centred on the beam, untitled."""
    import hyperspy.api as hs

    s = synthetic_4dstem(scan_shape=(10, 14), detector_shape=detector_shape, n_phases=1,
                         dose=300, random_state=0)
    s = hs.signals.Signal2D(s.data)
    for axis in s.axes_manager.navigation_axes:
        axis.scale, axis.units = 0.2, "nm"
    for axis, name in zip(s.axes_manager.signal_axes, ("kx", "ky")):
        axis.scale, axis.units, axis.name = 0.85, "mrad", name
        axis.offset = -axis.scale * (axis.size // 2)
    s.decomposition(algorithm="hnmf", output_dimension=2, loss="kl", random_state=0,
                    print_info=False, show_progressbar=False)
    return s


@pytest.fixture(scope="module")
def diffraction_in_mrad():
    return _in_mrad((24, 32))


def test_axes_without_scale_bars_are_labelled_in_calibrated_units(diffraction_in_mrad):
    s = diffraction_in_mrad
    figure = plot_decomposition_images(s, "factors", scalebar=False)
    panels = [axis for axis in figure.axes if axis.images]
    assert [axis.get_xlabel() for axis in panels] == ["kx (mrad)"] * 2
    assert [axis.get_ylabel() for axis in panels] == ["ky (mrad)"] * 2
    kx, ky = s.axes_manager.signal_axes
    left, right, bottom, top = panels[0].images[0].get_extent()
    assert np.isclose(left, kx.low_value - kx.scale / 2)
    assert np.isclose(right, kx.high_value + kx.scale / 2)
    figure.canvas.draw()
    labels = [label for axis in panels for label in axis.get_yticklabels() + [axis.yaxis.label]
              if label.get_text()]
    assert labels and all(_inside(figure, label) for label in labels)
    matplotlib.pyplot.close("all")


def test_scale_bar_labels_stay_inside_their_panels():
    # "5 mrad" centred on its short bar began left of the (narrow) panel and was clipped.
    figure = plot_decomposition_images(_in_mrad((40, 16)), "factors")
    figure.canvas.draw()
    panels = [axis for axis in figure.axes if axis.images]
    texts = [axis.scalebar.text for axis in panels]
    assert all("mrad" in text.get_text() for text in texts)
    assert all(_inside(figure, text, axis.bbox) for text, axis in zip(texts, panels))
    matplotlib.pyplot.close("all")


def test_colour_bar_labels_fit_their_bars(diffraction_in_mrad):
    figure = plot_decomposition_images(diffraction_in_mrad, "factors")
    figure.canvas.draw()
    bars = [axis for axis in figure.axes if not axis.images]
    for bar in bars:
        label = bar.yaxis.label
        assert label.get_text().replace("\n", " ") == "fraction of the component per pixel"
        extent = label.get_window_extent(figure.canvas.get_renderer())
        assert extent.height <= bar.bbox.height + 1
    matplotlib.pyplot.close("all")


def test_square_root_colour_bars_have_spread_round_ticks(diffraction_in_mrad):
    figure = plot_decomposition_images(diffraction_in_mrad, "factors")
    for axis in figure.axes:
        if not axis.images:
            continue
        norm = axis.images[0].norm
        cax = next(other for other in figure.axes if not other.images
                   and other.get_position().x0 > axis.get_position().x0)
        ticks = np.array([t for t in cax.get_yticks() if norm.vmin <= t <= norm.vmax])
        positions = np.sort(np.asarray(norm(ticks)))
        assert len(ticks) >= 3 and np.diff(positions).min() >= 0.15
        assert all(float(f"{t:.1g}") == t for t in ticks)
    matplotlib.pyplot.close("all")


def test_default_title_names_the_data(decomposed):
    s = decomposed[0]
    figure = plot_decomposition_images(s)
    assert figure._suptitle.get_text() == f"Maps of {s.metadata.General.title}"
    figure = plot_decomposition_images(s, "factors")
    assert figure._suptitle.get_text() == f"Components of {s.metadata.General.title}"
    matplotlib.pyplot.close("all")


def _node_labels(figure):
    return [text.get_text() for text in figure.texts]


def test_hierarchy_nodes_are_named_and_the_data_titled(diffraction_in_mrad):
    s = diffraction_in_mrad.deepcopy()
    s.metadata.General.title = "scan 7"
    s.decomposition(algorithm="hnmf", output_dimension=[3, 2], print_info=False,
                    random_state=0, show_progressbar=False)
    figure = hyperspy_hnmf.plot_hierarchy(s)
    assert figure._suptitle.get_text().splitlines()[-1] == "scan 7"
    labels = _node_labels(figure)
    assert labels.count("#0") == 2 and labels.count("#1") == 2 and labels.count("#2") == 1
    bars = [axis.get_xlabel() for axis in figure.axes if axis.get_xlabel().startswith("map:")]
    assert bars == ["map: counts per probe position"]
    figure = hyperspy_hnmf.plot_hierarchy(s, thumbnails=False)
    labels = [text.get_text() for text in figure.axes[0].texts] + _node_labels(figure)
    assert {"#0", "#1", "#2"} <= set(labels)
    assert any(label.startswith("#j: component j of get_hierarchy_level") for label in labels)
    matplotlib.pyplot.close("all")


def test_spectra_in_a_hierarchy_carry_a_calibrated_energy_axis():
    from hyperspy_hnmf.data import synthetic_spectrum_image

    s = synthetic_spectrum_image(scan_shape=(12, 12), random_state=0)
    s.decomposition(algorithm="hnmf", output_dimension=[3, 2], print_info=False,
                    random_state=0, show_progressbar=False)
    figure = hyperspy_hnmf.plot_hierarchy(s)
    energy = s.axes_manager.signal_axes[0]
    spectra = [axis for axis in figure.axes if axis.get_label().startswith("pattern")]
    assert len(spectra) == 5
    labelled = [axis for axis in spectra if axis.get_xlabel()]
    assert [axis.get_xlabel() for axis in labelled] == [f"{energy.name} ({energy.units})"]
    assert len(labelled[0].get_xticks()) >= 2
    assert all(axis.get_ylim()[0] == 0 for axis in spectra)
    assert any("per channel" in text for text in _node_labels(figure))
    matplotlib.pyplot.close("all")


def test_tree_edges_under_min_weight_still_join_their_nodes():
    s = synthetic_4dstem(scan_shape=(10, 10), detector_shape=(16, 16), n_phases=1, dose=200,
                         random_state=0)
    s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=3, print_info=False,
                    random_state=0)
    tree = hyperspy_hnmf.get_split_tree(s)
    figure = hyperspy_hnmf.plot_hierarchy(s, min_weight=1.0)
    drawing = figure.axes[0]
    edges = [line for line in drawing.lines if len(line.get_xdata()) == 2]
    assert len(edges) == len(tree.edges()[0]) and all(e.get_linestyle() == ":" for e in edges)
    names = sorted(text for text in _node_labels(figure) if text.startswith("comp. ")
                   and ":" not in text)
    assert names == ["comp. 0", "comp. 1", "comp. 2"]
    matplotlib.pyplot.close("all")


def test_dendrogram_of_wide_patterns_keeps_their_shape_and_text_inside():
    from hyperspy_hnmf.polar import cluster_components, plot_component_dendrogram

    rng = np.random.default_rng(0)
    patterns = rng.random((4, 24, 40))
    result = cluster_components(patterns, n_clusters=2, center=(19.5, 11.5))
    figure = plot_component_dendrogram(result, pixel_size=0.25, units="1/nm")
    figure.canvas.draw()
    thumbnails = [axis for axis in figure.axes if axis.images][:4]
    for axis in thumbnails:
        assert axis.get_ylim() == (23.5, -0.5) and axis.get_xlim() == (-0.5, 39.5)
        box = axis.get_position()
        shown = box.height * figure.get_figheight() / (box.width * figure.get_figwidth())
        assert np.isclose(shown, 24 / 40, rtol=0.02)
    bar_text = [text for axis in thumbnails for text in axis.texts]
    assert [text.get_text() for text in bar_text] == ["2 1/nm"]
    texts = [figure.axes[0].yaxis.label, figure.axes[-1].yaxis.label, *bar_text]
    texts += [axis.xaxis.label for axis in thumbnails]
    assert all(_inside(figure, text) for text in texts)
    plot_component_dendrogram(result, pixel_size=0.25, units="<undefined>")
    assert not [text for axis in matplotlib.pyplot.gcf().axes for text in axis.texts]
    matplotlib.pyplot.close("all")


def test_rank_estimate_names_the_recommended_rank_line():
    from hyperspy_hnmf import estimate_rank

    rng = np.random.default_rng(0)
    X = rng.random((60, 2)) @ rng.random((2, 30))
    result = estimate_rank(X, ranks=[1, 2, 3], n_restarts=2, random_state=0)
    figure = result.plot()
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert f"recommended (k = {result.rank})" in legend
    for axis in figure.axes:
        lines = [line for line in axis.lines if line.get_color() == "C3"
                 and np.all(np.asarray(line.get_xdata()) == result.rank)]
        assert len(lines) == 1
    matplotlib.pyplot.close("all")
