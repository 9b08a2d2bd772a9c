"""Fault injection: every numerical failure is a clear error, raised before
``learning_results`` changes; no NaN is ever stored; no result of an earlier
fit is read back as if it were current (issue 15).

Each case of the issue's "Why" is one parametrized test asserting the exact
error type and a message naming the cause, in memory and lazy (dask), flat,
multi-layer and tree where the case applies. Then a seeded random fuzz test
over shapes, dtypes, ranks, losses, solvers and hierarchies, and a
``dask.distributed`` worker killed in the middle of a lazy fit.
"""

import os
import re
import signal as signals
import subprocess
import sys
import traceback
import warnings

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pytest

import hyperspy_hnmf
from hyperspy_hnmf import HNMF, NumericalError, get_cluster_labels, get_hierarchy_level
from hyperspy_hnmf.constraints import Projection
from hyperspy_hnmf.solvers import make_update, nmf, streaming_nmf
from hyperspy_hnmf.solvers._loop import alternate, record

KINDS = {
    "flat": dict(output_dimension=3),
    "layers": dict(output_dimension=[3, 2]),
    "tree": dict(output_dimension=3, hierarchy="tree"),
}


def planted(scale=1.0, dtype="float32", seed=0, shape=(8, 8), m=40, k=3):
    rng = np.random.default_rng(seed)
    maps = rng.random(shape + (k,))
    maps[..., 0] += 2 * (np.arange(shape[1]) < shape[1] // 2)
    X = maps @ (rng.random((k, m)) ** 3) * 10
    return (X * scale).astype(dtype)


def signal(data, lazy):
    s = hs.signals.Signal1D(data)
    return s.as_lazy() if lazy else s


def decompose(s, **options):
    options.setdefault("print_info", False)
    options.setdefault("show_progressbar", False)
    options.setdefault("random_state", 0)
    s.decomposition(algorithm="hnmf", **options)


def previous_results(s):
    """A successful SVD first: a failed hnmf must leave exactly this behind."""
    s.decomposition(algorithm="SVD", print_info=False, output_dimension=3)
    return s.learning_results.decomposition_algorithm, np.array(s.learning_results.factors)


def assert_untouched(s, before):
    algorithm, factors = before
    assert s.learning_results.decomposition_algorithm == algorithm
    assert np.array_equal(np.asarray(s.learning_results.factors), factors)
    assert not hasattr(s.learning_results, "hnmf")


def assert_finite_results(s):
    results = s.learning_results
    for name in ("factors", "loadings"):
        assert np.isfinite(np.asarray(getattr(results, name))).all(), name
    assert np.isfinite(results.hnmf["reconstruction_error"])
    assert np.isfinite(np.asarray(results.hnmf["objective_history"])).all()


# -- 1. numerical failures --------------------------------------------------------


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_float32_data_whose_products_overflow_are_fitted_in_float64(kind, lazy, loss):
    """Finite float32 data up to 3e19 used to end with NaN factors stored."""
    s = signal(planted(scale=3e19 / 25), lazy)
    assert 1e19 < float(np.max(s.data)) < 3.4e38
    with pytest.warns(UserWarning, match=r"The float32 data reach .*: their products would "
                      r"overflow float32, so the fit runs in float64"):
        decompose(s, loss=loss, **KINDS[kind])
    assert_finite_results(s)
    assert s.learning_results.factors.dtype == np.float64
    model = np.asarray(s.learning_results.loadings) @ np.asarray(s.learning_results.factors).T
    data = np.asarray(s.data, dtype=np.float64).reshape(model.shape)
    assert np.linalg.norm(model - data) / np.linalg.norm(data) < 0.5


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("maximum, what", [(1e160, "overflow"), (1e-160, "underflow")])
def test_data_out_of_float64_range_are_refused(kind, lazy, maximum, what):
    data = planted(dtype="float64")
    s = signal(data / data.max() * maximum, lazy)
    before = previous_results(s)
    with pytest.raises(ValueError, match=rf"The data reach .*: the products NMF computes "
                       rf".* {what} even in float64.*Rescale the data first"):
        decompose(s, **KINDS[kind])
    assert_untouched(s, before)


def _init(name, k=3, n=64, m=40):
    rng = np.random.default_rng(1)
    W, H = rng.random((n, k)) + 0.1, rng.random((k, m)) + 0.1
    if name == "zero W":
        W[:] = 0
    elif name == "zero H":
        H[:] = 0
    elif name == "zero map":
        W[:, 1] = 0
    elif name == "zero pattern":
        H[2] = 0
    elif name == "dependent patterns":
        H[2] = 0.5 * H[0] + 0.5 * H[1]
    return W, H


INIT_MESSAGES = {
    "zero W": r"The initial W is all zeros: the updates cannot move it away from zero",
    "zero H": r"The initial H is all zeros: the updates cannot move it away from zero",
    "zero map": r"The initial W is rank-deficient: the map \(column of W\) of component\(s\) "
                r"\[1\] is all zeros",
    "zero pattern": r"The initial H is rank-deficient: the pattern \(row of H\) of "
                    r"component\(s\) \[2\] is all zeros",
    "dependent patterns": r"The initial H is rank-deficient: its 3 components span only 2 "
                          r"dimension\(s\)",
}


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
@pytest.mark.parametrize("kind", ["flat", "layers"])
@pytest.mark.parametrize("loss", ["frobenius", "kl"])
@pytest.mark.parametrize("case", list(INIT_MESSAGES))
def test_degenerate_user_init_is_refused(case, loss, kind, lazy):
    """An all-zero W or H used to end with zero factors (MU) or a silent fix."""
    s = signal(planted(), lazy)
    before = previous_results(s)
    with pytest.raises(ValueError, match=INIT_MESSAGES[case]):
        decompose(s, init=_init(case), loss=loss, **KINDS[kind])
    assert_untouched(s, before)


def nan_after(calls):
    """A user projection that works for ``calls`` calls, then returns NaN."""
    count = {"n": 0}

    def nan_after_3(stack):
        count["n"] += 1
        return stack * np.nan if count["n"] > calls else stack

    return nan_after_3


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
@pytest.mark.parametrize("kind", ["flat", "layers"])
@pytest.mark.parametrize("on", ["maps", "components"])
@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_projection_returning_nan_mid_fit(on, kind, lazy, loss):
    """A user Projection that starts returning NaN after the first iterations used to
    end "successfully" with NaN stored."""
    s = signal(planted(), lazy)
    before = previous_results(s)
    with pytest.raises(NumericalError, match=rf"The Projection 'nan_after_3' applied to the "
                       rf"{on} returned NaN or infinite values at its call 4 .* nothing was "
                       "stored"):
        decompose(s, loss=loss, constraints=[Projection(nan_after(3), on=on)], **KINDS[kind])
    assert_untouched(s, before)


def test_tree_with_projection_returning_nan():
    s = signal(planted(), False)
    before = previous_results(s)
    with pytest.raises(NumericalError, match=r"Projection 'nan_after_3' applied to the "
                       r"(maps|components) returned NaN or infinite values at its call 4"):
        decompose(s, constraints=[Projection(nan_after(3), on="maps")], **KINDS["tree"])
    assert_untouched(s, before)


class NaNAfter:
    """An update that turns the objective into NaN at a given iteration."""

    def __init__(self, iteration):
        self.inner = make_update("hals", 2.0)
        self.balance = self.inner.balance
        self.iteration = iteration
        self.steps = 0

    def prepare(self, X):
        return self.inner.prepare(X)

    def objective(self, Y, A, B):
        return self.inner.objective(Y, A, B)

    def step(self, Y, A, B, want_objective, side=None):
        value = self.inner.step(Y, A, B, want_objective, side)
        if want_objective:
            self.steps += 1
            if self.steps >= self.iteration:
                return float("nan")
        return value


def test_nan_objective_in_memory_names_the_iteration():
    X = planted().reshape(64, 40)
    rng = np.random.default_rng(0)
    with pytest.raises(NumericalError, match=r"The objective became nan at iteration 4 \(it "
                       r"was .* before\)\. The fit was stopped and nothing was stored\. Likely "
                       r"causes: the data's range .* a degenerate initialization .* a user "
                       r"Projection"):
        alternate(X, rng.random((64, 3)), rng.random((3, 40)), NaNAfter(4), max_iter=50, tol=0)


def test_nan_objective_in_passes_names_the_iteration(monkeypatch):
    from hyperspy_hnmf.solvers import _passes

    calls = {"n": 0}
    objective = _passes._objective

    def failing(*args):
        calls["n"] += 1
        return float("inf") if calls["n"] > 3 else objective(*args)

    monkeypatch.setattr(_passes, "_objective", failing)
    X = da.from_array(planted().reshape(64, 40), chunks=(16, 40))
    with pytest.raises(NumericalError, match=r"The objective became inf at iteration 3"):
        streaming_nmf(X, 3, max_iter=20, tol=0, random_state=0)


def test_nan_initial_objective_is_named():
    with pytest.raises(NumericalError, match=r"The objective became nan with the initial "
                       r"factors \(before the first iteration\)"):
        record([float("nan")], 1.0, 1, None, 1e-4)


@pytest.mark.parametrize("kind", ["flat", "layers"])
def test_nan_in_fine_tuning_or_layers_is_caught(kind, monkeypatch):
    """Multi-layer fine-tuning checks its objective too."""
    from hyperspy_hnmf.hierarchy import multilayer

    s = signal(planted(), False)
    before = previous_results(s)
    if kind == "layers":
        original = multilayer._normalize

        def poisoned(Ws, Ht, Ms, sort, blocks=None):
            Ht[:] = np.nan
            return original(Ws, Ht, Ms, sort, blocks)

        monkeypatch.setattr(multilayer, "_normalize", poisoned)
        match = r"The objective became nan at fine-tuning iteration 2"
    else:
        from hyperspy_hnmf.solvers import _loop

        original = _loop.rescale

        def poisoned(W, Ht, update, constraints=None):
            W[:] = np.inf
            original(W, Ht, update, constraints)

        monkeypatch.setattr(_loop, "rescale", poisoned)
        match = r"The objective became (nan|inf) at iteration 2"
    with pytest.raises(NumericalError, match=match):
        decompose(s, **KINDS[kind])
    assert_untouched(s, before)


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_complex_data_are_refused_before_any_work(kind, lazy):
    """Lazy complex data used to be accepted with a cast warning."""
    data = planted().astype("complex64") + 1j
    s = signal(data, lazy)
    before = previous_results(s) if not lazy else None
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with pytest.raises(ValueError, match=r"Complex data not supported by "
                           r"decomposition\(algorithm='hnmf'\): the data are complex64, NMF "
                           r"needs real, nonnegative data.*abs\(s\)"):
            decompose(s, **KINDS[kind])
    if before is not None:
        assert_untouched(s, before)


def test_complex_dask_array_refused_by_the_estimator():
    X = da.from_array(planted().reshape(64, 40).astype("complex128"), chunks=16)
    with pytest.raises(ValueError, match=r"Complex data not supported by HNMF\.fit"):
        HNMF(3).fit(X)


def test_all_zero_fit_result_is_not_stored():
    """The last guard: factors that end all zero are an error, not a result."""
    from hyperspy_hnmf.estimators import _check_fitted_factors

    with pytest.raises(NumericalError, match=r"The fit ended with all-zero maps W"):
        _check_fitted_factors(np.zeros((4, 2)), np.ones((2, 3)), {"divergence": 1.0})
    with pytest.raises(NumericalError, match=r"The fit ended with NaN or infinite components H"):
        _check_fitted_factors(np.ones((4, 2)), np.full((2, 3), np.nan), {"divergence": 1.0})


# -- 2. stale results ----------------------------------------------------------------


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
@pytest.mark.parametrize("kind", ["layers", "tree"])
@pytest.mark.parametrize("other", ["SVD", "NMF"])
def test_other_decomposition_clears_our_metadata(kind, other, lazy):
    s = signal(planted(), lazy)
    decompose(s, **({"output_dimension": [6, 3]} if kind == "layers" else KINDS["tree"]))
    assert "hierarchy" in s.learning_results.hnmf
    options = {"output_dimension": 3, "print_info": False}
    if other == "NMF" and lazy:
        other = "ORNMF"                 # HyperSpy's NMF for lazy signals
    elif other == "NMF":
        options["max_iter"] = 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.decomposition(algorithm=other, **options)
    assert not hasattr(s.learning_results, "hnmf")
    accessor = (lambda: get_hierarchy_level(s, 2)) if kind == "layers" else (
        lambda: get_cluster_labels(s))
    with pytest.raises(ValueError, match=rf"This signal's decomposition was made by "
                       rf"algorithm='{other}', not by hyperspy_hnmf.*import hyperspy_hnmf"):
        accessor()


def test_accessors_refuse_results_they_did_not_write():
    s = signal(planted(), False)
    decompose(s, output_dimension=[6, 3])
    s.learning_results.decomposition_algorithm = "SVD"      # written behind our back
    with pytest.raises(ValueError, match=r"The current decomposition was made by "
                       r"algorithm='SVD', but learning_results\.hnmf describes an earlier "
                       r"'hnmf' fit: it is stale"):
        get_hierarchy_level(s, 2)
    s.learning_results.decomposition_algorithm = "hnmf"
    s.reverse_decomposition_component(0)
    with pytest.raises(ValueError, match=r"The decomposition in learning_results was changed "
                       r"after hyperspy_hnmf wrote it"):
        get_hierarchy_level(s, 2)


def test_failed_other_decomposition_keeps_our_results():
    s = signal(planted(), False)
    decompose(s, output_dimension=[6, 3])
    with pytest.raises(ValueError):
        s.decomposition(algorithm="no such algorithm", print_info=False)
    assert get_hierarchy_level(s, 2)[0].data.shape == (3, 40)


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
def test_interrupted_fit_keeps_previous_results(lazy, monkeypatch):
    s = signal(planted(), lazy)
    decompose(s, output_dimension=[6, 3])
    factors = np.array(s.learning_results.factors)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(HNMF, "_set_fitted", interrupt)
    with pytest.raises(KeyboardInterrupt):
        decompose(s, output_dimension=4)
    assert np.array_equal(s.learning_results.factors, factors)
    assert get_hierarchy_level(s, 2)[0].data.shape == (3, 40)


# -- 5. HyperSpy habits ------------------------------------------------------------------


@pytest.mark.parametrize("lazy", [False, True], ids=["memory", "lazy"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_scree_plots_work_after_hnmf(kind, lazy):
    """They used to raise "did you forget to run decomposition()?"."""
    import matplotlib.pyplot as plt

    s = signal(planted(), lazy)
    decompose(s, loss="kl", **KINDS[kind])
    ratio = np.asarray(s.learning_results.explained_variance_ratio)
    assert ratio.shape == (s.learning_results.output_dimension,)
    assert np.all(ratio > 0) and 0.8 < ratio.sum() < 1.2
    if kind != "tree":
        assert np.all(np.diff(ratio) <= 1e-12)      # decreasing, in the component order
    s.plot_explained_variance_ratio()
    s.plot_scree_plot()
    plt.close("all")


def test_scree_ratio_is_the_fraction_of_the_counts():
    s = signal(planted(), False)
    decompose(s, loss="kl", output_dimension=3, max_iter=500, tol=1e-8)
    results = s.learning_results
    intensity = np.nansum(results.loadings, axis=0) * np.nansum(results.factors, axis=0)
    assert np.allclose(results.explained_variance, intensity)
    assert np.allclose(results.explained_variance_ratio, intensity / s.data.sum(), rtol=1e-5)
    assert abs(results.explained_variance_ratio.sum() - 1) < 1e-3   # KL keeps the counts


def _run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, MPLBACKEND="Agg"))


def test_algorithm_not_recognised_without_import():
    """HyperSpy reads our entry point but does not import the package: the documented
    answer is ``import hyperspy_hnmf``. If HyperSpy ever imports extensions on
    ``import hyperspy.api``, this test fails and the docs can drop the advice."""
    setup = ("import numpy as np, hyperspy.api as hs\n"
             "s = hs.signals.Signal1D(np.random.default_rng(0).random((20, 30)))\n")
    fit = "s.decomposition(algorithm='hnmf', output_dimension=2, print_info=False)\n"
    without = _run_python(setup + fit)
    assert without.returncode != 0
    assert re.search(r"ValueError: algorithm=hnmf' not recognised", without.stderr)
    with_import = _run_python(setup + "import hyperspy_hnmf\n" + fit + "print('fitted')")
    assert with_import.returncode == 0, with_import.stderr
    assert with_import.stdout.strip() == "fitted"


def test_not_recognised_answer_is_documented():
    root = os.path.join(os.path.dirname(__file__), os.pardir)
    for name in ("README.md", os.path.join("docs", "index.md")):
        with open(os.path.join(root, name), encoding="utf-8") as handle:
            text = handle.read()
        assert "not recognised" in text and "import hyperspy_hnmf" in text, name


# -- 6. seeded random fuzz ------------------------------------------------------------------

DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "bool"]


def _fuzz_case(rng):
    nav = tuple(int(v) for v in rng.integers(2, 9, size=rng.integers(1, 3)))
    m = int(rng.integers(2, 30))
    dtype = DTYPES[rng.integers(len(DTYPES))]
    n = int(np.prod(nav))
    k_true = int(rng.integers(1, 4))
    X = rng.random((n, k_true)) @ rng.random((k_true, m)) * 10 ** rng.uniform(-2, 4)
    if rng.random() < 0.2:
        X[rng.random(n) < 0.5] = 0               # empty probe positions
    if dtype == "bool":
        data = X > np.median(X)
    elif dtype.startswith(("uint", "int")):
        data = np.minimum(rng.poisson(np.minimum(X, 1e6)), np.iinfo(dtype).max).astype(dtype)
    else:
        data = X.astype(dtype)
    kind = ["flat", "layers", "tree"][rng.integers(3)]
    k = int(rng.integers(1, 6))
    options = dict(output_dimension=k)
    if kind == "layers":
        options["output_dimension"] = [k + 1, k]
    elif kind == "tree":
        options["hierarchy"] = "tree"
    options["loss"] = ["frobenius", "kl", "is"][rng.integers(3)]
    options["solver"] = ["auto", "hals", "mu", "als", "randomized"][rng.integers(5)]
    options["max_iter"] = 20
    lazy = bool(rng.random() < 0.35)
    return data.reshape(nav + (m,)), kind, options, lazy


def _raised_by_numpy_internals(error):
    frames = traceback.extract_tb(error.__traceback__)
    last = frames[-1].filename if frames else ""
    return not any(name in last for name in ("hyperspy_hnmf", os.sep + "hyperspy" + os.sep))


def _fit_array(data, options):
    """In-memory integer and boolean data through the estimator (HyperSpy's own
    ``decomposition`` refuses them in memory with its TypeError)."""
    options = dict(options)
    model = HNMF(options.pop("output_dimension"), random_state=0, **options)
    W = model.fit_transform(data.reshape(-1, data.shape[-1]))
    assert np.isfinite(W).all() and np.isfinite(model.components_).all()
    assert np.isfinite(model.reconstruction_err_)
    assert np.isfinite(model.explained_intensity_ratio_).all()


def test_fuzz_no_stored_nan_no_bare_numpy_errors():
    rng = np.random.default_rng(15)
    outcomes = {"fitted": 0, "refused": 0}
    for case in range(70):
        data, kind, options, lazy = _fuzz_case(rng)
        s = signal(data, lazy)
        label = f"case {case}: {data.shape} {data.dtype} {kind} {options} lazy={lazy}"
        through_estimator = not lazy and data.dtype.kind != "f"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if through_estimator:
                    _fit_array(data, options)
                else:
                    decompose(s, **options)
        except (IndexError, KeyError, TypeError, ZeroDivisionError) as error:
            pytest.fail(f"{label}: bare {type(error).__name__}: {error}")
        except ValueError as error:
            assert not _raised_by_numpy_internals(error), f"{label}: {error!r}"
            assert not hasattr(s.learning_results, "hnmf"), label
            outcomes["refused"] += 1
            continue
        if through_estimator:
            outcomes["fitted"] += 1
            continue
        results = s.learning_results
        factors, loadings = np.asarray(results.factors), np.asarray(results.loadings)
        assert np.isfinite(factors).all() and np.isfinite(loadings).all(), label
        assert np.isfinite(results.hnmf["reconstruction_error"]), label
        assert np.isfinite(np.asarray(results.explained_variance_ratio)).all(), label
        outcomes["fitted"] += 1
    assert outcomes["fitted"] >= 15 and outcomes["refused"] >= 3, outcomes


# -- 6. a dask.distributed worker killed mid-fit ------------------------------------------------


def test_worker_killed_mid_fit_recovers(monkeypatch):
    distributed = pytest.importorskip("distributed")
    from hyperspy_hnmf import estimators

    X = planted(shape=(16, 16), m=64)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        killed = []
        original = estimators._Progress.__call__

        def kill_one_worker(self, iteration, objective):
            if iteration == 3 and not killed:
                nanny = next(iter(cluster.workers.values()))
                pid = nanny.process.process.pid
                os.kill(pid, signals.SIGKILL)
                killed.append(pid)
            original(self, iteration, objective)

        monkeypatch.setattr(estimators._Progress, "__call__", kill_one_worker)
        s = hs.signals.Signal1D(da.from_array(X, chunks=(4, 16, 64))).as_lazy()
        decompose(s, output_dimension=3, max_iter=15, tol=0, show_progressbar=True)
    assert killed, "the worker was not killed during the fit"
    assert_finite_results(s)
    assert s.learning_results.hnmf["n_iter"] == 15


def test_readme_follows_a_newcomer():
    """venv advice before the first install; the heading counts its command blocks."""
    root = os.path.join(os.path.dirname(__file__), os.pardir)
    with open(os.path.join(root, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    assert text.index("python -m venv") < text.index("pip install")
    words = {"One": 1, "Two": 2, "Three": 3, "Four": 4, "Five": 5}
    heading = re.search(r"^## (\w+) commands$", text, flags=re.M)
    section = text[heading.end():].split("\n## ")[0]
    assert len(re.findall(r"```bash", section)) == words[heading.group(1)]


def test_negative_chunk_advice_fits_callers_without_clip_negative():
    """nmf (no clip_negative option) on a dask array is told how to clip lazily."""
    X = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    X[25, 3] = -2.0
    with pytest.raises(ValueError, match=r"elsewhere \(nmf, multilayer_nmf, estimate_rank, "
                                         r"hnmfk\) set them to zero lazily first, e\.g\. "
                                         r"X = da\.maximum\(X, 0\) .* Found first in row 25 "):
        nmf(da.from_array(X, chunks=(10, -1)), 2, max_iter=3)
