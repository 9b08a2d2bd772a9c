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
    assert figure.axes[1].get_ylabel() == "fraction of the component per pixel"


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
