"""One owner of validation: every option is resolved once, by ``resolve_fit``, into a FitSpec.

Every public entry (HNMF, nmf, streaming_nmf, randomized_nmf, multilayer_nmf,
rank2_tree, s.decomposition) raises the same message for the same bad option,
and one fit resolves its options and builds its constraint plan exactly once.
"""

import dataclasses

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pytest

from hyperspy_hnmf import HNMF, _spec
from hyperspy_hnmf.constraints import ContinuousIntensity, MapResolution, Penalty
from hyperspy_hnmf.hierarchy import multilayer
from hyperspy_hnmf.hierarchy.multilayer import multilayer_nmf
from hyperspy_hnmf.hierarchy.tree import rank2_tree
from hyperspy_hnmf.solvers import nmf, randomized_nmf, robust_nmf, streaming_nmf

SHAPE = (40, 30)  # a 5 × 8 scan of 5 × 6 patterns


def data(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((SHAPE[0], 3)) @ rng.random((3, SHAPE[1]))).astype(dtype) + 0.01


def lazy(X=None):
    return da.from_array(data() if X is None else X, chunks=(10, SHAPE[1]))


# -- every public entry, called with k components (or ranks) and the options --
def via_hnmf(k, **options):
    HNMF(k, **options).fit(data())


def via_hnmf_lazy(k, **options):
    HNMF(k, **options).fit(lazy())


def via_nmf(k, **options):
    nmf(data(), k, **options)


def via_streaming(k, **options):
    streaming_nmf(lazy(), k, **options)


def via_randomized(k, **options):
    options.pop("solver", None)  # randomized_nmf is the randomized solver
    randomized_nmf(lazy(), k, **options)


def via_multilayer(k, **options):
    multilayer_nmf(data(), k, **options)


def via_tree(k, **options):
    rank2_tree(data(), k, **options)


def via_robust(k, **options):
    robust_nmf(data(), k, **options)


def via_decomposition(k, **options):
    s = hs.signals.Signal2D(data().reshape(5, 8, 5, 6))
    s.decomposition(algorithm="hnmf", output_dimension=k, print_info=False, **options)


def via_lazy_decomposition(k, **options):
    s = hs.signals.Signal2D(data().reshape(5, 8, 5, 6)).as_lazy()
    s.decomposition(algorithm="hnmf", output_dimension=k, print_info=False, **options)


FLAT = (via_hnmf, via_hnmf_lazy, via_nmf, via_streaming, via_decomposition)
RANDOMIZED = (via_hnmf, via_hnmf_lazy, via_nmf, via_randomized, via_decomposition)
LAYERS = (via_hnmf, via_multilayer, via_decomposition)
TREE = (via_hnmf, via_tree, via_decomposition)

LOSSES = ("'auto', 'frobenius', 'kullback-leibler', 'kl', 'itakura-saito', 'is', or a real β "
          "of the β-divergence (2 = Frobenius, 1 = Kullback-Leibler, 0 = Itakura-Saito).")

CASES = [
    # option(s), entries, components, exact message
    (dict(loss="l1"), FLAT + (via_multilayer,), 3, f"Unknown loss 'l1'. Valid losses are {LOSSES}"),
    (dict(solver="newton"), FLAT + (via_multilayer,), 3,
     "Unknown solver 'newton'. Valid solvers are 'auto', 'hals', 'als', 'mu', 'randomized'."),
    (dict(solver="hals", loss="kl"), FLAT + (via_multilayer,), 3,
     "solver='hals' minimises the Frobenius loss only, but the loss has β=1. Use solver='mu' "
     "(multiplicative updates) for the Kullback-Leibler and other β-divergences, or "
     "loss='frobenius'."),
    (dict(init="svd"), FLAT + (via_randomized, via_multilayer), 3,
     "Unknown init 'svd'. Valid values are 'nndsvd', 'nndsvda', 'nndsvdar', 'spa', 'random', "
     "or a tuple (W, H) of initial arrays."),
    (dict(max_iter=0), FLAT + (via_randomized, via_multilayer), 3,
     "max_iter must be an integer ≥ 1, got 0."),
    (dict(max_iter=2.5), FLAT + (via_randomized, via_multilayer), 3,
     "max_iter must be an integer ≥ 1, got 2.5."),
    (dict(tol=-1.0), FLAT + (via_randomized, via_multilayer, via_tree), 3,
     "tol must be a real number ≥ 0, got -1.0."),
    (dict(n_restarts=0), (via_hnmf, via_hnmf_lazy, via_nmf, via_decomposition), 3,
     "n_restarts must be an integer ≥ 1, got 0."),
    (dict(), (via_hnmf, via_hnmf_lazy, via_nmf, via_streaming, via_randomized), 0,
     "The number of components must be an integer ≥ 1 for data of shape (40, 30), got 0."),
    (dict(solver="randomized", power_iterations=-1), RANDOMIZED, 3,
     "power_iterations must be an integer ≥ 0, got -1."),
    (dict(solver="randomized", refine_passes=1.5), RANDOMIZED, 3,
     "refine_passes must be an integer ≥ 0, got 1.5."),
    (dict(solver="randomized", oversampling=-2), (via_nmf, via_randomized), 3,
     "oversampling must be an integer ≥ 0, got -2."),
    (dict(solver="hals", power_iterations=1), (via_hnmf, via_nmf, via_decomposition), 3,
     "`power_iterations` applies to solver='randomized' only."),
    (dict(solver="randomized", n_restarts=2),
     (via_hnmf, via_hnmf_lazy, via_nmf, via_decomposition), 3,
     "solver='randomized' makes one run from the compressed data: use n_restarts=1."),
    (dict(solver="randomized", init="spa"), RANDOMIZED, 3,
     "The randomized solver initializes from the compressed data: use init='nndsvd', "
     "'nndsvda', 'nndsvdar' or 'random'."),
    (dict(loss="is"), (via_hnmf_lazy, via_streaming, via_lazy_decomposition), 3,
     "Data read in passes (lazy signals) support the Frobenius and Kullback-Leibler losses, "
     "got β=0. Use loss='frobenius' or loss='kl', or load the data."),
    (dict(init="spa"), (via_hnmf_lazy, via_streaming, via_lazy_decomposition), 3,
     "init='spa' is not available for data read in passes; use 'nndsvda' (the default) or "
     "give (W, H)."),
    (dict(callback=3), (via_nmf, via_streaming, via_randomized, via_multilayer), 3,
     "callback must be callable, got 3."),
    # multi-layer
    (dict(), LAYERS, [2, 4],
     "ranks must be strictly decreasing (finest level first), but ranks[0]=2 is not larger "
     "than ranks[1]=4."),
    (dict(), (via_hnmf, via_multilayer), [30, 3],
     "The finest rank ranks[0]=30 must be smaller than min(n, m) = 30 for data of shape "
     "(40, 30)."),
    (dict(loss="is"), LAYERS, [4, 2],
     "multilayer_nmf supports the Frobenius (β=2) and Kullback-Leibler (β=1) losses, got β=0. "
     "Use loss='frobenius' or loss='kl'."),
    (dict(fine_tune_iter=0), LAYERS, [4, 2], "fine_tune_iter must be an integer ≥ 1, got 0."),
    (dict(fine_tune="yes"), LAYERS, [4, 2], "fine_tune must be True or False, got 'yes'."),
    (dict(layer_weights=[1.0, -0.5]), LAYERS, [4, 2],
     "layer_weights must be finite and ≥ 0, got [1.0, -0.5]."),
    (dict(level=3), (via_hnmf, via_decomposition), [4, 2],
     "level must be an integer from 1 (finest) to 2 (coarsest), got 3."),
    (dict(level=1), (via_hnmf, via_decomposition), 3,
     "`level` applies to multi-layer NMF only (a list of ranks as n_components), not to "
     "hierarchy=None."),
    # tree
    (dict(hierarchy="tree", min_leaf_size=0), TREE, 3,
     "min_leaf_size must be an integer ≥ 1, got 0."),
    (dict(hierarchy="tree", max_depth=0), TREE, 3, "max_depth must be an integer ≥ 1, got 0."),
    (dict(hierarchy="tree", score_threshold=np.nan), TREE, 3,
     "score_threshold must be a finite number or None, got nan."),
    (dict(hierarchy="tree"), (via_hnmf, via_tree), 41,
     "n_leaves must be an integer between 1 and 40 (the number of rows of X, 40), got 41."),
    (dict(min_leaf_size=3), (via_hnmf, via_decomposition), 3,
     "`min_leaf_size` applies to hierarchy='tree' only; set hierarchy='tree' to build a "
     "splitting tree."),
    (dict(hierarchy="pyramid"), (via_hnmf, via_decomposition), 3,
     "Unknown hierarchy 'pyramid'. Valid values are None (flat, or layers when n_components "
     "is a list), 'layers' and 'tree'."),
    (dict(hierarchy="tree", solver="als"), (via_hnmf, via_decomposition), 3,
     "solver='als' cannot compute the tree's maps; use 'hals' or 'mu'."),
    # outlier-robust fits
    (dict(outliers=0.5), (via_hnmf, via_hnmf_lazy, via_robust, via_decomposition), 3,
     "`outliers` must be None (off), 'auto' or a false-alarm rate per entry in (0, 0.01], "
     "got 0.5. E.g. outliers='auto' (about one false alarm per dataset) or outliers=1e-6."),
    (dict(outliers="auto", loss="is"), (via_hnmf, via_robust, via_decomposition), 3,
     "outliers='auto' applies to flat fits with the Kullback-Leibler or Frobenius loss and "
     "an exact solver; this fit is 'flat' with solver='mu' and β=0. Drop `outliers`, or fit "
     "a flat model (one number of components) with loss='kl' or 'frobenius'."),
]

def _calls():
    for options, entries, k, message in CASES:
        for entry in entries:
            yield pytest.param(entry, k, options, message,
                               id=f"{entry.__name__[4:]}-{sorted(options)}-{k}")


@pytest.mark.parametrize("entry,k,options,message", list(_calls()))
def test_every_entry_raises_the_same_message(entry, k, options, message):
    if entry is via_tree:  # rank2_tree is a tree by definition
        options = {key: value for key, value in options.items() if key != "hierarchy"}
    with pytest.raises(ValueError) as error:
        entry(k, **options)
    assert str(error.value) == message


def test_tree_leaf_count_and_result_level_use_the_same_checks():
    result = multilayer_nmf(data(), [4, 2], random_state=0, fine_tune=False)
    with pytest.raises(ValueError) as error:
        result.level(3)
    assert str(error.value) == "level must be an integer from 1 (finest) to 2 (coarsest), got 3."


def test_bad_options_raise_before_any_result_is_stored():
    model = HNMF(3, random_state=0).fit(data())
    before = model.components_
    with pytest.raises(ValueError, match="max_iter must be an integer"):
        model.set_params(max_iter=0).fit(data(seed=1))
    assert model.components_ is before


# -- the spec ----------------------------------------------------------------
def test_spec_is_frozen_and_stored_after_fit():
    model = HNMF(3, random_state=0).fit(data())
    spec = model.spec_
    assert isinstance(spec, _spec.FitSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.max_iter = 1
    assert (spec.kind, spec.ranks, spec.max_iter, spec.tol, spec.n_restarts) == (
        "flat", (3,), 200, 1e-4, 1)
    assert spec.shape == SHAPE and not spec.streamed and spec.plan is None


@pytest.mark.parametrize(
    "X,options,expected",
    [
        # loss="auto": KL on counts (integer dtype, or floats that are all integers)
        (np.ones((6, 4), dtype=np.uint16), dict(), (1.0, "kullback-leibler", "mu")),
        (np.round(data() * 10), dict(), (1.0, "kullback-leibler", "mu")),
        (data(), dict(), (2.0, "frobenius", "hals")),
        # a Frobenius-only solver makes "auto" Frobenius even on counts
        (np.ones((6, 4), dtype=np.uint16), dict(solver="als"), (2.0, "frobenius", "als")),
        (np.ones((6, 4), dtype=np.uint16), dict(solver="randomized"),
         (2.0, "frobenius", "randomized")),
        (lazy(np.ones((40, 30), dtype=np.uint8)), dict(), (1.0, "kullback-leibler", "mu")),
        (data(), dict(loss="is"), (0.0, "itakura-saito", "mu")),
        (data(), dict(loss=0.5), (0.5, 0.5, "mu")),
        (None, dict(), (2.0, "frobenius", "hals")),
    ],
)
def test_spec_resolves_auto_loss_and_solver(X, options, expected):
    spec = _spec.resolve_fit(X, 2, **options)
    assert (spec.beta, spec.loss, spec.solver) == expected


def test_spec_values_of_representative_calls():
    layers = _spec.resolve_fit(SHAPE, [6, 3, 1], layer_weights=[1, 0, 1], level=2)
    assert (layers.kind, layers.ranks, layers.n_components, layers.level) == (
        "layers", (6, 3, 1), 6, 2)
    np.testing.assert_array_equal(layers.layer_weights, [1.0, 0.0, 1.0])
    tree = _spec.resolve_fit(SHAPE, 4, hierarchy="tree", min_leaf_size=2, max_depth=3)
    assert (tree.kind, tree.ranks, tree.min_leaf_size, tree.max_depth) == ("tree", (4,), 2, 3)
    default_rank = _spec.resolve_fit(data(), None)
    assert default_rank.ranks == (30,)
    randomized = _spec.resolve_fit(lazy(), 3, solver="randomized", power_iterations=1)
    assert (randomized.streamed, randomized.power_iterations, randomized.refine_passes,
            randomized.oversampling) == (True, 1, _spec.DEFAULT_REFINE_PASSES,
                                         _spec.DEFAULT_OVERSAMPLING)
    constrained = _spec.resolve_fit(SHAPE, 3, constraints=[MapResolution(2)],
                                    navigation_grid=(5, 8))
    assert constrained.plan is not None and constrained.plan.map_resolution == 2
    assert constrained.navigation_grid.shape == (5, 8)


def test_defaults_are_declared_once():
    """Every fit function's defaults are the constants of ``_spec``."""
    import inspect

    expected = {"solver": _spec.DEFAULT_SOLVER, "init": _spec.DEFAULT_INIT,
                "max_iter": _spec.DEFAULT_MAX_ITER, "tol": _spec.DEFAULT_TOL,
                "n_restarts": _spec.DEFAULT_N_RESTARTS,
                "oversampling": _spec.DEFAULT_OVERSAMPLING,
                "power_iterations": _spec.DEFAULT_POWER_ITERATIONS,
                "refine_passes": _spec.DEFAULT_REFINE_PASSES,
                "fine_tune": _spec.DEFAULT_FINE_TUNE,
                "fine_tune_iter": _spec.DEFAULT_FINE_TUNE_ITER,
                "min_leaf_size": _spec.DEFAULT_MIN_LEAF_SIZE, "loss": _spec.DEFAULT_LOSS}
    for function in (HNMF.__init__, nmf, streaming_nmf, randomized_nmf, multilayer_nmf,
                     _spec.resolve_fit):
        parameters = inspect.signature(function).parameters
        for name, value in expected.items():
            if name in parameters and parameters[name].default is not None:
                assert parameters[name].default == value, (function, name)


# -- one resolution, one plan per fit ------------------------------------------
@pytest.fixture
def counters(monkeypatch):
    """Count every call of resolve_fit (through any module) and of build_plan."""
    from hyperspy_hnmf import constraints, estimators, solvers
    from hyperspy_hnmf.solvers import _passes, _randomized

    counts = {"resolve_fit": 0, "build_plan": 0}
    resolve, build = _spec.resolve_fit, constraints.build_plan

    def counted_resolve(*args, **kwargs):
        counts["resolve_fit"] += 1
        return resolve(*args, **kwargs)

    def counted_build(*args, **kwargs):
        counts["build_plan"] += 1
        return build(*args, **kwargs)

    for module in (_spec, estimators, solvers, _passes, _randomized, multilayer):
        monkeypatch.setattr(module, "resolve_fit", counted_resolve)
    monkeypatch.setattr(constraints, "build_plan", counted_build)
    return counts


@pytest.mark.parametrize(
    "X,options,plans",
    [
        (data(), dict(n_components=3), 0),
        (data(), dict(n_components=3, n_restarts=2,
                      constraints=[MapResolution(2), Penalty(l1=0.1, on="components")],
                      navigation_grid=(5, 8)), 1),
        (lazy(), dict(n_components=3, constraints=[MapResolution(2)],
                      navigation_grid=(5, 8)), 1),
        (lazy(), dict(n_components=3, solver="randomized", power_iterations=1,
                      constraints=[Penalty(l1=0.1)]), 1),
        (data(), dict(n_components=[4, 2], constraints=[ContinuousIntensity(2)],
                      signal_grid=(5, 6), max_iter=20, fine_tune_iter=5), 1),
        (lazy(), dict(n_components=[4, 2], fine_tune=False, max_iter=20), 0),
        (data(), dict(n_components=3, hierarchy="tree", constraints=[MapResolution(2)],
                      navigation_grid=(5, 8)), 1),
    ],
    ids=["flat", "flat-constrained-restarts", "lazy", "lazy-randomized", "layers",
         "lazy-layers", "tree"],
)
def test_one_fit_resolves_once_and_builds_one_plan(counters, X, options, plans):
    model = HNMF(random_state=0, **options).fit(X)
    assert counters == {"resolve_fit": 1, "build_plan": plans}
    assert model.spec_.plan is (None if plans == 0 else model.spec_.level_plans[0])


def test_layers_with_shared_map_constraints_build_one_plan_per_level(counters):
    model = HNMF([4, 2, 1], constraints=[MapResolution(2)], navigation_grid=(5, 8),
                 max_iter=20, fine_tune_iter=5, random_state=0).fit(data())
    # The finest plan, then one for each coarser level (the shared map constraint):
    # each built once, in resolve_fit.
    assert counters == {"resolve_fit": 1, "build_plan": 3}
    assert all(plan is not None for plan in model.spec_.level_plans)


def test_public_shims_resolve_once(counters):
    nmf(data(), 3, random_state=0, max_iter=20)
    assert counters["resolve_fit"] == 1
    multilayer_nmf(data(), [4, 2], random_state=0, max_iter=20, fine_tune_iter=5)
    assert counters["resolve_fit"] == 2
    randomized_nmf(lazy(), 3, random_state=0)
    assert counters["resolve_fit"] == 3
    streaming_nmf(lazy(), 3, random_state=0, max_iter=5)
    assert counters["resolve_fit"] == 4


def test_shims_give_the_estimators_results():
    """A public function and HNMF share the private entry: the same numbers."""
    X = data()
    W = HNMF(3, random_state=0, max_iter=50).fit_transform(X)
    result = nmf(X, 3, random_state=0, max_iter=50)
    np.testing.assert_array_equal(W, result.W)
    model = HNMF([4, 2], random_state=0, max_iter=30, fine_tune_iter=5).fit(X)
    layered = multilayer_nmf(X, [4, 2], random_state=0, max_iter=30, fine_tune_iter=5)
    np.testing.assert_array_equal(model.components_, layered.H[0])


def test_hyperspy_layer_resolves_through_the_same_function(counters):
    s = hs.signals.Signal2D(data().reshape(5, 8, 5, 6))
    s.decomposition(algorithm="hnmf", output_dimension=3, random_state=0, max_iter=20,
                    print_info=False)
    # once before the data are read (the options alone), once in the fit
    assert counters["resolve_fit"] == 2


def test_rank_selection_resolves_exact_fits_once_per_rank(counters):
    # Exact fits (options that need the full data): one resolution per fitted
    # rank (the candidates and the rank below them), not one per restart.
    from hyperspy_hnmf.rank_selection import estimate_rank

    estimate = estimate_rank(data(), ranks=[2, 3], n_restarts=3, max_iter=20,
                             constraints=[Penalty(l1=0.01)])
    assert counters["resolve_fit"] == 3
    assert estimate.settings["compressed"] is False
    assert sorted(estimate.ranks) == [2, 3]


def test_rank_selection_rejects_a_bad_fit_option_before_any_fit(counters):
    from hyperspy_hnmf.rank_selection import estimate_rank

    with pytest.raises(ValueError, match="Unknown loss .poisson."):
        estimate_rank(data(), ranks=[2, 3], n_restarts=3, loss="poisson")
    assert counters["resolve_fit"] == 1


ESTIMATE_RANK_OPTIONS = (
    "ranks, n_restarts, perturbation, normalize_poissonian_noise, compression, "
    "silhouette_threshold, max_iter, tol, n_jobs, random_state, consensus_rows; the options "
    "of its fits are component_grid, constraints, groups, loss, map_grid, "
    "oversampling, power_iterations, refine_passes, solver.")


@pytest.mark.parametrize("caller", ["estimate_rank", "stability", "hnmfk"])
def test_rank_selection_refuses_an_unknown_option_before_reading_the_data(counters, caller):
    # An unknown keyword went on to nmf(), which raised "nmf() got an unexpected keyword
    # argument 'bogus'" after the data were read and checked.
    from hyperspy_hnmf.hierarchy import hnmfk
    from hyperspy_hnmf.rank_selection import estimate_rank, stability

    X = data()
    X[0, 0] = np.nan  # never read: the option is refused first
    call = {"estimate_rank": lambda: estimate_rank(X, ranks=[2, 3], n_restarts=2, bogus=1),
            "stability": lambda: stability(X, 2, n_restarts=2, bogus=1),
            "hnmfk": lambda: hnmfk(np.abs(data()), ranks=[2, 3], n_restarts=2, bogus=1)}
    with pytest.raises(TypeError) as error:
        call[caller]()
    where = "hnmfk" if caller == "hnmfk" else "estimate_rank"
    takes = ("Its own options are" if where == "estimate_rank" else
             "hnmfk passes its other options to estimate_rank, whose options are")
    assert str(error.value) == (
        f"{where} got the unknown option(s) ['bogus']. {takes} {ESTIMATE_RANK_OPTIONS}")
    assert counters["resolve_fit"] == 0


def test_rank_selection_tells_how_to_clip_when_asked_for_clip_negative():
    from hyperspy_hnmf.rank_selection import estimate_rank

    with pytest.raises(TypeError) as error:
        estimate_rank(data(), ranks=[2, 3], n_restarts=2, clip_negative=True)
    assert str(error.value) == (
        f"estimate_rank got the unknown option(s) ['clip_negative']. Its own options are "
        f"{ESTIMATE_RANK_OPTIONS} It takes the data as they are: set negative values to zero "
        "first, e.g. X = np.maximum(X, 0) (for a signal: s.data = np.maximum(s.data, 0)).")
