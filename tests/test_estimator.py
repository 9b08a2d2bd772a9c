"""The HNMF estimator: scikit-learn's own checks and the estimator protocol."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from hyperspy_hnmf import HNMF, NotFittedError

# Every check of scikit-learn's suite applies to a nonnegative model once the
# estimator declares ``positive_only`` in its tags (the checks then feed
# nonnegative data and verify the "Negative values in data passed to" error),
# so none is skipped. The array-API check is skipped by scikit-learn itself
# unless SCIPY_ARRAY_API is set; HNMF does not claim array-API support.
# The suite runs on the default estimator (HALS) and on projected ALS. The KL
# (multiplicative update) variant passes every check but one, which compares
# ``fit_transform`` with ``transform`` to 1e-2 absolute: multiplicative updates
# approach entries near zero too slowly for that on the check's data; KL's
# transform consistency is tested below at a tolerance relative to the data.


@parametrize_with_checks([HNMF(), HNMF(solver="als", n_restarts=2)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def data(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((60, 3)) @ rng.random((3, 40))).astype(np.float32)


def test_params_roundtrip_and_clone():
    model = HNMF(5, loss="kl", init="spa", random_state=3)
    params = model.get_params()
    assert params["n_components"] == 5 and params["init"] == "spa"
    copy = clone(model)
    assert copy.get_params() == params
    with pytest.raises(ValueError, match="Invalid parameter 'alpha' for estimator"):
        model.set_params(alpha=1)
    assert repr(model) == "HNMF(init='spa', loss='kl', n_components=5, random_state=3)"


def test_fitted_attributes():
    X = data()
    model = HNMF(3, random_state=0, max_iter=500, tol=1e-9)
    W = model.fit_transform(X)
    assert model.components_.shape == (3, 40) and W.dtype == np.float32
    assert model.n_features_in_ == 40 and model.n_components_ == 3
    assert model.n_iter_ == len(model.objective_history_) - 1
    residual = np.linalg.norm(X - W @ model.components_)
    assert model.reconstruction_err_ == pytest.approx(residual, rel=1e-3, abs=1e-4)
    np.testing.assert_allclose(model.inverse_transform(W), W @ model.components_)


def test_transform_matches_fit_transform():
    X = data()
    for loss in ("frobenius", "kl"):
        model = HNMF(3, loss=loss, random_state=0, max_iter=1000, tol=1e-8)
        W = model.fit_transform(X)
        W2 = model.transform(X)
        assert np.linalg.norm(W2 @ model.components_ - W @ model.components_) <= (
            1e-2 * np.linalg.norm(X)
        )


def test_not_fitted_and_feature_mismatch():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        HNMF(2).transform(data())
    model = HNMF(2).fit(data())
    with pytest.raises(ValueError, match="X has 5 features, but HNMF is expecting 40 features"):
        model.transform(np.ones((3, 5)))


def test_clip_negative_opt_in():
    X = data()
    X[0, 0] = -0.5
    with pytest.raises(ValueError, match="pass clip_negative=True"):
        HNMF(2).fit(X)
    with pytest.warns(UserWarning, match="1 negative entries .* were set to zero"):
        HNMF(2, clip_negative=True).fit(X)
    assert X[0, 0] == -0.5  # the caller's data are untouched


def _negative_data():
    X = data()
    X[3, 4] = -0.5
    return X


def _call_with_negative_data(caller):
    import hyperspy.api as hs

    import hyperspy_hnmf
    from hyperspy_hnmf.hierarchy import hnmfk
    from hyperspy_hnmf.hierarchy.multilayer import multilayer_nmf
    from hyperspy_hnmf.solvers import nmf

    X = _negative_data()
    calls = {
        "HNMF.fit": lambda: HNMF(2).fit(X),
        "HNMF.transform": lambda: HNMF(2).fit(np.abs(X)).transform(X),
        "decomposition(algorithm='hnmf')": lambda: hs.signals.Signal1D(X.reshape(6, 10, 40))
        .decomposition(algorithm="hnmf", output_dimension=2, print_info=False),
        "nmf": lambda: nmf(X, 2),
        "multilayer_nmf": lambda: multilayer_nmf(X, [3, 2]),
        "estimate_rank": lambda: hyperspy_hnmf.estimate_rank(X, ranks=[2, 3], n_restarts=2),
        "hnmfk": lambda: hnmfk(X, ranks=[2, 3], n_restarts=2),
    }
    with pytest.raises(ValueError) as error:
        calls[caller]()
    return str(error.value)


@pytest.mark.parametrize("caller", ["HNMF.fit", "HNMF.transform",
                                    "decomposition(algorithm='hnmf')"])
def test_negative_data_advise_clip_negative_where_it_is_taken(caller):
    message = _call_with_negative_data(caller)
    assert message.startswith(f"Negative values in data passed to {caller}:")
    assert message.endswith("pass clip_negative=True to set them to zero with a warning.")


@pytest.mark.parametrize("caller", ["nmf", "multilayer_nmf", "estimate_rank", "hnmfk"])
def test_negative_data_advise_clipping_first_where_clip_negative_is_not_taken(caller):
    # The message advised clip_negative=True, which these functions refuse (hnmfk and
    # estimate_rank with an unknown option, nmf with a TypeError).
    assert _call_with_negative_data(caller) == (
        f"Negative values in data passed to {caller}: X has 1 negative entries (minimum "
        "-0.5). NMF needs nonnegative data. Add an offset (e.g. subtract the minimum, 0.5), "
        "or, if the negative values are noise around zero (e.g. after background "
        "subtraction), set them to zero first, e.g. X = np.maximum(X, 0) (for a signal: "
        "s.data = np.maximum(s.data, 0)).")


def test_sparse_input():
    X = sp.random(80, 50, density=0.1, random_state=0, format="csr", dtype=np.float32)
    W = HNMF(3, loss="kl", random_state=0).fit_transform(X)
    assert W.shape == (80, 3) and np.isfinite(W).all() and W.dtype == np.float32


@pytest.mark.parametrize(
    "params,message",
    [
        (dict(max_iter=0), r"max_iter must be an integer ≥ 1, got 0"),
        (dict(tol=-1.0), r"tol must be a real number ≥ 0, got -1.0"),
        (dict(n_components=0), r"integer ≥ 1 for data of shape \(60, 40\), got 0"),
        (dict(loss="l1"), r"Unknown loss 'l1'"),
        (dict(random_state="a"), r"random_state must be None, an integer ≥ 0, a "
                                 r"numpy.random.Generator or a numpy.random.RandomState, got 'a'"),
        (dict(random_state=-1), r"random_state must be None, an integer ≥ 0, .* got -1\."),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        HNMF(**params).fit(data())


def test_progress_callback_reports_every_iteration(monkeypatch):
    """The bar starts after the first iteration (counted as done), so its ETA
    leaves out the start-up work; every later iteration is one update."""
    updates = []

    class FakeBar:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            updates.append(("initial", kwargs["initial"]))

        def update(self, n):
            updates.append(n)

        def set_postfix(self, **kwargs):
            assert "objective" in kwargs

        def close(self):
            updates.append("closed")

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", lambda **kw: FakeBar(**kw))
    model = HNMF(2, show_progressbar=True, max_iter=7, tol=0).fit(data())
    assert updates == [("initial", 1)] + [1] * (model.n_iter_ - 1) + ["closed"]


def test_progress_bar_starts_after_the_first_iteration():
    """The first iteration's start-up cost does not enter the bar's rate or ETA."""
    import time

    from hyperspy_hnmf.estimators import _Progress

    progress = _Progress(total=100)
    time.sleep(0.3)                     # start-up work inside the first iteration
    before = time.time()
    progress(1, 10.0)
    assert progress.bar.n == 1 and progress.bar.initial == 1
    assert progress.bar.start_t >= before
    progress(2, 9.0)
    assert progress.bar.format_dict["elapsed"] < 0.3
    progress.close()


def test_estimator_is_a_scikit_learn_estimator():
    """With scikit-learn installed HNMF inherits its BaseEstimator and TransformerMixin."""
    import warnings

    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils.estimator_checks import check_estimator

    assert isinstance(HNMF(), BaseEstimator) and isinstance(HNMF(), TransformerMixin)
    assert repr(HNMF(3, loss="kl")) == "HNMF(loss='kl', n_components=3)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_estimator(HNMF(max_iter=50), on_fail=None)
    assert not [w for w in caught if "BaseEstimator" in str(w.message)]


def test_estimator_without_scikit_learn():
    """scikit-learn stays optional: without it HNMF is a plain class that still fits."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import numpy as np, hyperspy_hnmf\n"
            "m = hyperspy_hnmf.HNMF(2, random_state=0)\n"
            "W = m.fit_transform(np.random.default_rng(0).random((20, 10)))\n"
            "print(type(m).__mro__[1:], W.shape, m.get_params()['n_components'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "(<class 'object'>,) (20, 2) 2"
