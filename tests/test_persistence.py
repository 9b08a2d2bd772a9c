"""hnmf results through save/load: signal files, lazy reads, learning_results files, crops."""

import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import hyperspy.api as hs  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import hyperspy_hnmf  # noqa: E402
from hyperspy_hnmf import (get_cluster_labels, get_hierarchy_level, get_mixing_matrices,  # noqa: E402
                           get_outliers, get_split_tree, plot_hierarchy)
from hyperspy_hnmf.data import synthetic_4dstem  # noqa: E402

KINDS = {"flat": dict(output_dimension=4), "layers": dict(output_dimension=[6, 3]),
         "tree": dict(output_dimension=3, hierarchy="tree")}

HOW_TO_FIT = ("Run s.decomposition(algorithm='hnmf', output_dimension=[k1, k2, ...]) or "
              "s.decomposition(algorithm='hnmf', hierarchy='tree', output_dimension=n) first "
              "(after `import hyperspy_hnmf`, which registers algorithm='hnmf').")


def scan():
    return synthetic_4dstem(scan_shape=(10, 12), detector_shape=(16, 16), n_phases=1, dose=200,
                            random_state=0)


@pytest.fixture(scope="module")
def fitted():
    signals = {}
    for kind, options in KINDS.items():
        s = scan()
        s.decomposition(algorithm="hnmf", print_info=False, random_state=0,
                        show_progressbar=False, **options)
        signals[kind] = s
    return signals


@pytest.fixture(scope="module")
def robust():
    s = scan()
    s.data[2, 3, 5, 5] = 5000  # a hot pixel at one probe position
    s.decomposition(algorithm="hnmf", output_dimension=3, loss="kl", outliers="auto",
                    print_info=False, random_state=0, show_progressbar=False)
    return s


def assert_same(a, b, where="hnmf"):
    """Equal values, keys and array dtypes, recursively (NaN equals NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where} is a {type(b).__name__}, not an ndarray"
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, str):
        assert a == b, where
    else:
        assert a == b or (a != a and b != b), where


def figure_pixels(signal):
    figure = plot_hierarchy(signal)
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba()).copy()
    plt.close(figure)
    return pixels


@pytest.mark.parametrize("extension", ["hspy", "zspy"])
@pytest.mark.parametrize("kind", ["flat", "layers", "tree"])
def test_signal_files_keep_every_hnmf_entry(fitted, tmp_path, extension, kind):
    s = fitted[kind]
    s.save(tmp_path / f"scan.{extension}")
    loaded = hs.load(tmp_path / f"scan.{extension}")
    assert_same(s.learning_results.hnmf, loaded.learning_results.hnmf)
    assert loaded.learning_results.factors.dtype == np.float32
    if kind == "layers":
        assert_same(get_mixing_matrices(s), get_mixing_matrices(loaded))
    if kind != "flat":
        assert np.array_equal(figure_pixels(s), figure_pixels(loaded))


@pytest.mark.parametrize("extension", ["hspy", "zspy"])
def test_lazy_reads_give_the_hierarchy_as_numpy_arrays(fitted, tmp_path, extension):
    s = fitted["layers"]
    s.save(tmp_path / f"scan.{extension}")
    loaded = hs.load(tmp_path / f"scan.{extension}", lazy=True)
    mixing = get_mixing_matrices(loaded)
    assert all(type(M) is np.ndarray for M in mixing.values())
    assert_same(get_mixing_matrices(s), mixing)
    assert np.array_equal(figure_pixels(s), figure_pixels(loaded))


def test_lazy_reads_give_the_same_outliers(robust, tmp_path):
    per_position, per_channel, entries = get_outliers(robust)
    assert per_position.data[2, 3] > per_position.data[0, 0]
    robust.save(tmp_path / "robust.hspy")
    lazy = get_outliers(hs.load(tmp_path / "robust.hspy", lazy=True))
    assert np.array_equal(lazy[0].data, per_position.data)
    assert np.array_equal(lazy[1].data, per_channel.data)
    assert_same(entries, lazy[2])


@pytest.mark.parametrize("kind", ["layers", "tree"])
def test_learning_results_files_keep_the_hierarchy(fitted, tmp_path, kind):
    s = fitted[kind]
    s.learning_results.save(tmp_path / "results.npz")
    other = scan()
    other.learning_results.load(tmp_path / "results.npz")
    assert_same(s.learning_results.hnmf, other.learning_results.hnmf)
    if kind == "layers":
        assert_same(get_mixing_matrices(s), get_mixing_matrices(other))
        assert np.array_equal(get_hierarchy_level(s, 2)[1].data,
                              get_hierarchy_level(other, 2)[1].data)
    else:
        assert np.array_equal(get_cluster_labels(s).data, get_cluster_labels(other).data)


def test_learning_results_of_another_algorithm_remove_stale_hnmf(fitted, tmp_path):
    svd = scan()
    svd.decomposition(print_info=False)
    svd.learning_results.save(tmp_path / "svd.npz")
    s = fitted["tree"].deepcopy()
    s.learning_results.load(tmp_path / "svd.npz")
    assert not hasattr(s.learning_results, "hnmf")
    message = (f"This signal's decomposition was made by algorithm='SVD', not by hyperspy_hnmf, "
               f"so it has no hierarchy, tree or constraint metadata to read. {HOW_TO_FIT}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        get_split_tree(s)


def test_results_read_without_the_extension_say_what_was_lost(fitted, tmp_path):
    s = fitted["layers"]
    s.learning_results.save(tmp_path / "results.npz")
    other = scan()
    hyperspy_hnmf.unregister()
    try:
        other.learning_results.load(tmp_path / "results.npz")
    finally:
        hyperspy_hnmf.register()
    message = ("learning_results.hnmf of this signal's decomposition (algorithm='hnmf') was "
               "lost: HyperSpy's learning_results.load reads it as None when hyperspy_hnmf is "
               "not imported. Run `import hyperspy_hnmf`, then load the results again, or "
               f"decompose again. {HOW_TO_FIT}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        get_mixing_matrices(other)
    other.learning_results.load(tmp_path / "results.npz")
    assert_same(get_mixing_matrices(s), get_mixing_matrices(other))


def geometry_message(n_nav, n_sig):
    return (f"The decomposition in learning_results has 120 probe positions and 256 signal "
            f"pixels, but this signal now has {n_nav} and {n_sig}: it was cropped in place "
            "(s.crop, s.crop_signal, s.crop_image) or transposed (s.T, s.transpose) after its "
            "decomposition, and HyperSpy keeps learning_results as they were. Decompose the "
            "signal again, or crop with s.inav[...] / s.isig[...] before decomposing. "
            f"{HOW_TO_FIT}")


@pytest.mark.parametrize("kind", ["layers", "tree"])
def test_cropped_or_transposed_signals_are_refused(fitted, kind):
    cropped = fitted[kind].deepcopy()
    cropped.crop(0, 2, 6)                      # 4 of the 12 columns of the scan
    transposed = fitted[kind].T
    for signal, (n_nav, n_sig) in ((cropped, (40, 256)), (transposed, (256, 120))):
        message = f"^{re.escape(geometry_message(n_nav, n_sig))}$"
        with pytest.raises(ValueError, match=message):
            plot_hierarchy(signal)
        accessor = get_cluster_labels if kind == "tree" else get_mixing_matrices
        with pytest.raises(ValueError, match=message):
            accessor(signal)


def test_reordered_components_are_refused(fitted):
    s = fitted["tree"].deepcopy()
    results = s.learning_results
    results.factors, results.loadings = results.factors[:, ::-1], results.loadings[:, ::-1]
    with pytest.raises(ValueError, match=r"^The decomposition in learning_results was changed "
                                         r"after hyperspy_hnmf wrote it .*components reordered"):
        plot_hierarchy(s)


def test_svd_after_hnmf_leaves_no_hnmf_in_the_file(fitted, tmp_path):
    s = fitted["layers"].deepcopy()
    s.decomposition(print_info=False)
    s.save(tmp_path / "svd.hspy")
    loaded = hs.load(tmp_path / "svd.hspy")
    assert loaded.learning_results.decomposition_algorithm == "SVD"
    assert not hasattr(loaded.learning_results, "hnmf")
    with pytest.raises(ValueError, match=r"^This signal's decomposition was made by "
                                         r"algorithm='SVD', not by hyperspy_hnmf"):
        plot_hierarchy(loaded)
