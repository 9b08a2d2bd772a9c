"""decomposition(algorithm="hnmf") on HyperSpy signals."""

import numpy as np
import pytest
import hyperspy.api as hs
import matplotlib

import hyperspy_hnmf
from hyperspy_hnmf import HNMF, integration

matplotlib.use("Agg")


def low_rank_signal(kind="2d", k=3, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    if kind == "2d":
        W = rng.gamma(1.0, 1.0, (12 * 10, k))
        H = rng.gamma(0.5, 1.0, (k, 16 * 16))
        data = rng.poisson(5 * W @ H).astype(dtype).reshape(12, 10, 16, 16)
        return hs.signals.Signal2D(data)
    W = rng.gamma(1.0, 1.0, (15 * 8, k))
    H = rng.gamma(0.5, 1.0, (k, 64))
    return hs.signals.Signal1D(rng.poisson(5 * W @ H).astype(dtype).reshape(15, 8, 64))


def fitted(kind="2d", **kwargs):
    s = low_rank_signal(kind)
    options = dict(output_dimension=3, random_state=0, print_info=False)
    options.update(kwargs)
    s.decomposition(algorithm="hnmf", **options)
    return s


@pytest.mark.parametrize("kind", ["1d", "2d"])
@pytest.mark.parametrize("loss,solver", [("frobenius", "hals"), ("kl", "mu"), ("frobenius", "als")])
def test_results_fill_learning_results(kind, loss, solver):
    s = fitted(kind, loss=loss, solver=solver)
    lr = s.learning_results
    n_nav, n_sig = s.axes_manager.navigation_size, s.axes_manager.signal_size
    assert lr.factors.shape == (n_sig, 3) and lr.loadings.shape == (n_nav, 3)
    assert lr.factors.dtype == np.float32 and lr.loadings.dtype == np.float32
    assert lr.decomposition_algorithm == "hnmf" and lr.output_dimension == 3
    np.testing.assert_allclose(lr.factors.sum(axis=0), 1, rtol=1e-4)
    assert np.all(np.diff(lr.loadings.sum(axis=0)) <= 0)
    assert lr.hnmf["solver"] == solver and lr.hnmf["n_iter"] >= 1
    model = s.get_decomposition_model()
    data = s.data.reshape(n_nav, n_sig)
    fit_error = np.linalg.norm(model.data.reshape(n_nav, n_sig) - data) / np.linalg.norm(data)
    assert fit_error < 0.5  # Poisson noise at ~5 counts per pixel
    assert lr.hnmf["reconstruction_error"] > 0


def test_same_random_state_gives_identical_results():
    a = fitted(init="random", random_state=4)
    b = fitted(init="random", random_state=4)
    np.testing.assert_array_equal(a.learning_results.factors, b.learning_results.factors)
    np.testing.assert_array_equal(a.learning_results.loadings, b.learning_results.loadings)


def test_estimator_instance_and_return_info():
    s = low_rank_signal()
    model = HNMF(3, loss="kl", random_state=0)
    returned = s.decomposition(algorithm=model, return_info=True, print_info=False)
    assert returned is model
    np.testing.assert_allclose(s.learning_results.factors, model.components_.T)
    assert s.learning_results.decomposition_algorithm == "hnmf"


def test_print_info(capsys):
    fitted(print_info=True, loss="kl")
    out = capsys.readouterr().out
    assert "algorithm=hnmf" in out and "loss=kl (beta=1), solver=mu" in out


def test_masks_and_nan_in_masked_pixels():
    s = low_rank_signal()
    s.data[0, 0] = np.nan
    s.data[:, :, 3, 4] = np.nan
    nav_mask = np.zeros(s.axes_manager.navigation_shape, dtype=bool)
    nav_mask[0, 0] = True  # navigation_shape is (x, y) = (10, 12)
    sig_mask = np.zeros(s.axes_manager.signal_shape, dtype=bool)
    sig_mask[3, 4] = True  # HyperSpy reads signal masks in array order
    s.decomposition(algorithm="hnmf", output_dimension=3, navigation_mask=nav_mask,
                    signal_mask=sig_mask, print_info=False)
    lr = s.learning_results
    assert np.isnan(lr.loadings[0]).all() and np.isfinite(lr.loadings[1:]).all()
    assert np.isnan(lr.factors[3 * 16 + 4]).all()
    assert np.isfinite(np.delete(lr.factors, 3 * 16 + 4, axis=0)).all()


@pytest.mark.parametrize("hierarchy", ["tree", "layers"])
def test_masks_of_an_earlier_call_do_not_stay_with_the_next_one(hierarchy):
    # HyperSpy keeps learning_results' masks when a call passes none: the maps of an
    # unmasked fit were then read with the earlier mask (reshape errors, wrong labels).
    s = low_rank_signal()
    nav_mask = np.zeros(s.axes_manager.navigation_shape, dtype=bool)
    nav_mask[0, :] = True
    sig_mask = np.zeros(s.axes_manager.signal_shape, dtype=bool)
    sig_mask[3, 4] = True
    ranks = 3 if hierarchy == "tree" else [3, 2]
    options = dict(output_dimension=ranks, hierarchy=hierarchy, random_state=0,
                   print_info=False)
    s.decomposition(algorithm="hnmf", navigation_mask=nav_mask, signal_mask=sig_mask,
                    **options)
    assert s.learning_results.navigation_mask is not None
    s.decomposition(algorithm="hnmf", **options)
    lr = s.learning_results
    assert lr.navigation_mask is None and lr.signal_mask is None
    assert np.isfinite(lr.loadings).all() and np.isfinite(lr.factors).all()
    if hierarchy == "tree":
        labels = hyperspy_hnmf.get_cluster_labels(s)
        assert labels.data.shape == s.data.shape[:2]
    else:
        level = hyperspy_hnmf.get_hierarchy_level(s, 1)
        assert np.isfinite(np.asarray(level[1].data)).all()


def test_normalize_poissonian_noise():
    s = low_rank_signal()
    before = s.data.copy()
    s.decomposition(algorithm="hnmf", output_dimension=3, normalize_poissonian_noise=True,
                    loss="frobenius", print_info=False)
    # HyperSpy divides the data in place and multiplies them back (rounding
    # errors in a few percent of the entries): they come back bit for bit.
    np.testing.assert_array_equal(s.data, before)
    s.decomposition(algorithm="hnmf", output_dimension=3, print_info=False, max_iter=5)
    assert s.learning_results.hnmf["loss"] == "kullback-leibler"  # still integer counts
    s.decomposition(algorithm="hnmf", output_dimension=3, normalize_poissonian_noise=True,
                    loss="frobenius", print_info=False)
    lr = s.learning_results
    assert lr.poissonian_noise_normalized
    np.testing.assert_allclose(lr.factors.sum(axis=0), 1, rtol=1e-4)
    with pytest.warns(UserWarning, match="Kullback-Leibler loss already models Poisson noise"):
        s.decomposition(algorithm="hnmf", output_dimension=3, loss="kl",
                        normalize_poissonian_noise=True, print_info=False)
    assert not s.learning_results.poissonian_noise_normalized


@pytest.mark.parametrize("extension", ["hspy", "zspy"])
def test_save_load_roundtrip(tmp_path, extension):
    s = fitted(loss="kl")
    path = tmp_path / f"scan.{extension}"
    s.save(path)
    loaded = hs.load(path)
    lr, lr2 = s.learning_results, loaded.learning_results
    np.testing.assert_array_equal(lr.factors, lr2.factors)
    np.testing.assert_array_equal(lr.loadings, lr2.loadings)
    assert lr2.decomposition_algorithm == "hnmf"
    assert lr2.hnmf["loss"] == "kl" and lr2.hnmf["n_iter"] == lr.hnmf["n_iter"]
    np.testing.assert_array_equal(lr2.hnmf["objective_history"], lr.hnmf["objective_history"])
    model = loaded.get_decomposition_model()
    np.testing.assert_allclose(model.data, s.get_decomposition_model().data, rtol=1e-6)


def test_hyperspy_viewers_and_bss_work():
    s = fitted()
    s.plot_decomposition_results()
    s.plot_decomposition_factors()
    s.plot_decomposition_loadings()
    factors = s.get_decomposition_factors()
    assert factors.axes_manager.signal_shape == (16, 16)
    s.blind_source_separation(2, print_info=False)
    assert s.learning_results.bss_factors.shape == (256, 2)
    matplotlib.pyplot.close("all")


def test_zero_rows_and_columns_give_no_nan():
    s = low_rank_signal()
    s.data[2, 3] = 0
    s.data[:, :, 5, :] = 0
    s.decomposition(algorithm="hnmf", output_dimension=3, loss="kl", print_info=False)
    assert np.isfinite(s.learning_results.factors).all()
    assert np.isfinite(s.learning_results.loadings).all()


def previous_results():
    s = fitted()
    return s, dict(s.learning_results.__dict__)


def assert_unchanged(s, snapshot):
    assert s.learning_results.__dict__.keys() == snapshot.keys()
    for key, value in snapshot.items():
        assert s.learning_results.__dict__[key] is value, key


@pytest.mark.parametrize(
    "change,kwargs,error,message",
    [
        ("negative", {}, ValueError,
         r"Negative values in data passed to decomposition\(algorithm='hnmf'\): the signal "
         r"has 2 negative entries \(minimum -3\)"),
        ("nan", {}, ValueError, r"The data contains NaN or infinity \(1 NaN, 0 infinite"),
        ("zero", {}, ValueError, "The \\(unmasked\\) data is all zeros"),
        (None, dict(output_dimension=None), ValueError,
         "algorithm='hnmf' needs the number of components: pass output_dimension=k"),
        (None, dict(output_dimension=0), ValueError,
         "The number of components must be an integer ≥ 1, got 0"),
        (None, dict(output_dimension=120), ValueError,
         r"output_dimension=120 is too large: it must be smaller than min\(navigation size, "
         r"signal size\) = min\(120, 256\) = 120"),
        (None, dict(loss="poisson"), ValueError, "Unknown loss 'poisson'. Valid losses are"),
        (None, dict(solver="cd"), ValueError, "Unknown solver 'cd'. Valid solvers are"),
        (None, dict(init="pca"), ValueError, "Unknown init 'pca'. Valid values are"),
        (None, dict(solver="hals", loss="kl"), ValueError, "minimises the Frobenius loss only"),
        (None, dict(alpha=0.1), TypeError, r"Unknown option\(s\) \['alpha'\] for algorithm='hnmf'"),
        (None, dict(centre="signal"), ValueError, "centring makes the data negative"),
        (None, dict(reproject="both"), ValueError,
         r"reproject='both' is not available with algorithm='hnmf': HyperSpy reprojects only "
         r"the maps of an estimator's fit"),
        ("int", dict(loss="is"), TypeError,
         r"reads integer counts held in memory in place for the Frobenius and "
         r"Kullback-Leibler losses .* Convert the data first with s.change_dtype\('float32'\)"),
        ("int", dict(signal_mask=np.zeros((16, 16), dtype=bool)), ValueError,
         r"signal_mask is not supported with algorithm='hnmf' on integer counts held in "
         r"memory \(int32"),
    ],
)
def test_bad_input_leaves_previous_results(change, kwargs, error, message):
    s, snapshot = previous_results()
    before = s.data.copy()
    if change == "negative":
        s.data[1, 1, 0, :2] = [-3, -1]
    elif change == "nan":
        s.data[1, 1, 0, 0] = np.nan
    elif change == "zero":
        s.data[:] = 0
    elif change == "int":
        s.change_dtype("int32")
    if change is not None:
        before = s.data.copy()
    options = dict(output_dimension=3, print_info=False)
    options.update(kwargs)
    with pytest.raises(error, match=message):
        s.decomposition(algorithm="hnmf", **options)
    assert_unchanged(s, snapshot)
    np.testing.assert_array_equal(s.data, before)


@pytest.mark.parametrize("kind", ["lazy", "uint16"])
def test_data_read_in_passes_need_output_dimension_as_in_memory(kind):
    s = low_rank_signal(dtype="uint16") if kind == "uint16" else low_rank_signal().as_lazy()
    with pytest.raises(ValueError) as error:
        s.decomposition(algorithm="hnmf")
    assert str(error.value) == (
        "algorithm='hnmf' needs the number of components: pass output_dimension=k (e.g. "
        "s.decomposition(algorithm='hnmf', output_dimension=4)).")
    assert s.learning_results.loadings is None


def test_instance_with_conflicting_options():
    s, snapshot = previous_results()
    with pytest.raises(ValueError, match="output_dimension=2 disagrees with the HNMF"):
        s.decomposition(algorithm=HNMF(3), output_dimension=2)
    with pytest.raises(TypeError, match=r"Options \['loss'\] were given with an HNMF instance"):
        s.decomposition(algorithm=HNMF(3), loss="kl")
    assert_unchanged(s, snapshot)


def test_keyboard_interrupt_keeps_previous_results(monkeypatch):
    s, snapshot = previous_results()
    before = s.data.copy()

    def interrupted(X, spec, callback=None):
        callback(1, 1.0)
        raise KeyboardInterrupt

    monkeypatch.setattr(hyperspy_hnmf.estimators.solvers, "_fit_nmf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        s.decomposition(algorithm="hnmf", output_dimension=3, normalize_poissonian_noise=True,
                        loss="frobenius", show_progressbar=True)
    assert_unchanged(s, snapshot)
    # HyperSpy weighted the data in place: they come back bit for bit.
    np.testing.assert_array_equal(s.data, before)
    assert s.axes_manager.navigation_dimension == 2  # folded back


def test_lazy_signal_with_masks_raises_clear_error():
    s = low_rank_signal().as_lazy()
    with pytest.raises(ValueError, match=r"navigation_mask is not supported with algorithm='hnmf' "
                                         r"on lazy signals\. Crop the signal"):
        s.decomposition(algorithm="hnmf", output_dimension=3,
                        navigation_mask=np.zeros((12, 10), dtype=bool))


def test_lazy_clip_negative_clips_as_chunks_are_read():
    s = low_rank_signal()
    s.data[1, 2, 3, 4] = -1.5
    lazy = s.as_lazy()
    with pytest.raises(ValueError, match=r"pass clip_negative=True to set them to zero as the "
                                         r"chunks are read, with a warning \(decomposition\("
                                         r"algorithm='hnmf'\), HNMF\); .* Found first in row 12 "):
        lazy.decomposition(algorithm="hnmf", output_dimension=3, max_iter=5)
    with pytest.warns(UserWarning, match=r"clip_negative=True: negative entries \(minimum "
                                         r"-1\.5\) are set to zero as the chunks are read"):
        lazy.decomposition(algorithm="hnmf", output_dimension=3, max_iter=20, random_state=0,
                           clip_negative=True, print_info=False)
    clipped = s.deepcopy()
    clipped.data[1, 2, 3, 4] = 0
    clipped = clipped.as_lazy()
    clipped.decomposition(algorithm="hnmf", output_dimension=3, max_iter=20, random_state=0,
                          print_info=False)
    np.testing.assert_array_equal(lazy.learning_results.factors,
                                  clipped.learning_results.factors)
    assert float(lazy.data[1, 2, 3, 4].compute()) == -1.5  # the signal is left as it was


def test_show_progressbar_follows_preferences(monkeypatch):
    monkeypatch.setattr(hs.preferences.General, "show_progressbar", False)
    s = low_rank_signal()
    model = s.decomposition(algorithm="hnmf", output_dimension=3, return_info=True,
                            print_info=False)
    assert model.show_progressbar is False
    model = s.decomposition(algorithm="hnmf", output_dimension=3, return_info=True,
                            print_info=False, show_progressbar=True)
    assert model.show_progressbar is True


def test_register_is_idempotent_and_other_algorithms_untouched():
    wrapped = hs.signals.Signal1D.decomposition
    integration.register()
    assert hs.signals.Signal1D.decomposition is wrapped
    assert "algorithm" in str(__import__("inspect").signature(wrapped))
    assert "algorithm=\"hnmf\"" in wrapped.__doc__
    s = low_rank_signal()
    s.decomposition(algorithm="SVD", output_dimension=3, print_info=False)
    assert s.learning_results.decomposition_algorithm == "SVD"
    s.decomposition(algorithm="NMF", output_dimension=3, print_info=False, max_iter=50)
    assert s.learning_results.decomposition_algorithm == "NMF"


def test_pyxem_diffraction2d():
    pxm = pytest.importorskip("pyxem")
    s = pxm.signals.Diffraction2D(low_rank_signal().data)
    s.decomposition(algorithm="hnmf", output_dimension=3, print_info=False)
    assert s.learning_results.factors.shape == (256, 3)


def test_extension_is_listed_by_hyperspy():
    from hyperspy.extensions import ALL_EXTENSIONS  # noqa: F401
    import importlib.metadata

    names = [ep.name for ep in importlib.metadata.entry_points(group="hyperspy.extensions")]
    assert "hyperspy_hnmf" in names


def test_reproject_navigation_fills_masked_positions():
    s = low_rank_signal()
    nav_mask = np.zeros(s.axes_manager.navigation_shape, dtype=bool)
    nav_mask[:3] = True
    s.decomposition(algorithm="hnmf", output_dimension=3, navigation_mask=nav_mask,
                    reproject="navigation", print_info=False, random_state=0)
    loadings = s.learning_results.loadings
    assert np.isfinite(loadings).all() and loadings.min() >= 0
    masked_rows = np.flatnonzero(nav_mask.T.ravel())
    model = loadings[masked_rows] @ s.learning_results.factors.T
    data = s.data.reshape(120, 256)[masked_rows]
    assert np.linalg.norm(model - data) < 0.5 * np.linalg.norm(data)


def test_lazy_tree_takes_as_many_leaves_as_probe_positions_as_in_memory():
    rng = np.random.default_rng(0)
    s = hs.signals.Signal2D(rng.poisson(3, (2, 3, 8, 8)).astype(np.float32))
    for signal in (s, s.as_lazy()):
        signal.decomposition(algorithm="hnmf", output_dimension=6, hierarchy="tree",
                             print_info=False)
        assert signal.learning_results.factors.shape == (64, 6)
        with pytest.raises(ValueError, match="A tree with 7 leaves needs at least as many probe "
                                             "positions, but there are 6"):
            signal.decomposition(algorithm="hnmf", output_dimension=7, hierarchy="tree")


def test_an_estimator_instance_keeps_its_parameters_and_serves_another_signal():
    # The adapter wrote n_components and the grids resolved for one signal onto the user's
    # HNMF: a second signal of another shape then failed with "map_grid has shape (12, 10)
    # (120 pixels), but the data have 120 rows" or worse, took the first signal's grids.
    from hyperspy_hnmf.constraints import ContinuousIntensity

    model = HNMF(loss="kl", random_state=0, max_iter=30,
                 constraints=[ContinuousIntensity(3.0, units="px")])
    given = model.get_params()
    for kind, signal_shape in (("2d", (16, 16)), ("1d", (64,))):
        s = low_rank_signal(kind)
        returned = s.decomposition(algorithm=model, output_dimension=3, return_info=True,
                                   print_info=False)
        assert model.get_params() == given
        assert model.n_components is None and model.signal_grid is None
        # fitted in place, as HyperSpy fits an estimator passed as algorithm
        assert returned is model and model.spec_.signal_grid.shape == signal_shape
        np.testing.assert_allclose(s.learning_results.factors, model.components_.T)
        assert model.n_components_ == 3


@pytest.mark.parametrize("lazy", [False, True])
def test_a_refused_call_leaves_the_estimator_instance_as_it_was(lazy):
    from hyperspy_hnmf.constraints import MapResolution

    s = low_rank_signal()
    model = HNMF(random_state=0, max_iter=20, constraints=[MapResolution(2.0)])
    model.set_params(n_components=3, navigation_grid=(12, 10)).fit(s.data.reshape(120, -1))
    model.set_params(n_components=None, navigation_grid=None)
    fitted_state = dict(vars(model))
    if lazy:
        s = s.as_lazy()
    mask = np.zeros(s.axes_manager.navigation_shape, dtype=bool)
    with pytest.raises(ValueError, match="navigation_mask"):
        s.decomposition(algorithm=model, output_dimension=3, navigation_mask=mask,
                        print_info=False)
    assert vars(model).keys() == fitted_state.keys()
    for name, value in fitted_state.items():
        assert vars(model)[name] is value, name


def _one_position(shape, kind):
    s = hs.signals.Signal1D(np.arange(1, 65, dtype="uint16" if kind == "counts"
                                      else "float32").reshape(shape))
    return s.as_lazy() if kind == "lazy" else s


@pytest.mark.parametrize("kind", ["memory", "lazy", "counts"])
@pytest.mark.parametrize("shape,what", [
    ((1, 64), "one (navigation shape (1,))"),
    ((1, 1, 64), "one (navigation shape (1, 1))"),
    ((64,), "one: it has no navigation axes"),
])
@pytest.mark.parametrize("options", [dict(output_dimension=1),
                                     dict(output_dimension=1, hierarchy="tree")])
def test_one_probe_position_gets_one_error_in_memory_and_lazily(kind, shape, what, options):
    # In memory HyperSpy's "navigation_size < 2", lazily (and for counts read in place)
    # "output_dimension=1 is too large", a lazy tree of one leaf went on, and a signal
    # without navigation axes failed in a reshape.
    s = _one_position(shape, kind)
    with pytest.raises(ValueError) as error:
        s.decomposition(algorithm="hnmf", print_info=False, **options)
    assert str(error.value) == (
        "decomposition(algorithm='hnmf') needs at least two probe positions (NMF fits fewer "
        f"components than positions), but this signal has {what}. Decompose a signal of "
        "several positions, e.g. hs.stack([s1, s2, ...]) of spectra or patterns.")
    assert s.learning_results.loadings is None
