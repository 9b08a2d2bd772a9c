"""Writing decompositions into ``learning_results`` and reading them back.

The accessors (:func:`get_hierarchy_level`, :func:`get_mixing_matrices`,
:func:`get_split_tree`, :func:`get_cluster_labels`) read what
``decomposition(algorithm="hnmf")`` and the other writers of this package
stored in ``learning_results.hnmf``. Every writer stamps the results it
wrote (:func:`stamp_results`: the algorithm, the shapes and the sum of
every factor and loading); the accessors refuse, with the reason, results
that no longer carry a matching stamp: a later decomposition by another
algorithm (which also removes ``learning_results.hnmf``, see
:mod:`~hyperspy_hnmf._hyperspy.decomposition`), factors changed or reordered
afterwards, or a signal cropped or transposed after its decomposition.

``s.save``/``hs.load`` keep ``learning_results.hnmf`` (arrays that a lazy
``hs.load`` reads as dask arrays are read into memory by the accessors);
:func:`install_results_io` makes ``learning_results.save``/``load`` keep it
too (HyperSpy's ``load`` alone reads it back as None).
"""

import contextlib
import functools

import numpy as np

__all__ = ["check_stamp", "clear_results", "get_cluster_labels", "get_hierarchy_level",
           "get_mixing_matrices", "get_split_tree", "install_results_io", "stamp_results",
           "store_decomposition", "uninstall_results_io"]

#: How to get a decomposition the accessors can read.
_HOW_TO_FIT = (
    "Run s.decomposition(algorithm='hnmf', output_dimension=[k1, k2, ...]) or "
    "s.decomposition(algorithm='hnmf', hierarchy='tree', output_dimension=n) first "
    "(after `import hyperspy_hnmf`, which registers algorithm='hnmf')."
)


def _sums(results):
    """Sum of every factor (row 0) and every loading (row 1), NaN rows of masks ignored.

    One sum per component, so that components reordered afterwards no
    longer match the stamp (all factors of this package sum to 1, but their
    loadings differ).
    """
    return np.stack([np.nansum(np.asarray(array, dtype=np.float64), axis=0)
                     for array in (results.factors, results.loadings)])


def _same_sums(results, written):
    """Whether the current factors and loadings have the sums the stamp recorded."""
    current, recorded = _sums(results), np.asarray(written, dtype=np.float64)
    if recorded.ndim == 1:  # stamps of earlier versions: the two totals
        current = current.sum(axis=1)
    return current.shape == recorded.shape and np.allclose(current, recorded, rtol=1e-6, atol=0)


def _materialize(info):
    """Replace, in place, every dask array of a nested dict by a NumPy array.

    ``hs.load(..., lazy=True)`` reads the arrays of ``learning_results.hnmf``
    as dask arrays; the accessors and figures need their values.
    """
    for key, value in info.items():
        if isinstance(value, dict):
            _materialize(value)
        elif hasattr(value, "compute") and hasattr(value, "dask"):
            info[key] = np.asarray(value.compute())
    return info


def stamp_results(results):
    """Record in ``results.hnmf["written"]`` what this package wrote.

    Parameters
    ----------
    results : hyperspy.learn.mva.LearningResults
        With ``factors``, ``loadings``, ``decomposition_algorithm`` and the
        ``hnmf`` dict just written.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> s = hs.signals.Signal1D(np.ones((4, 3)))
    >>> store_decomposition(s, np.ones((3, 1)) / 3, np.full((4, 1), 3.0), "hnmf", {})
    >>> s.learning_results.hnmf["written"]["algorithm"]
    'hnmf'
    """
    results.hnmf["written"] = {
        "algorithm": str(results.decomposition_algorithm),
        "factors_shape": np.asarray(np.shape(results.factors)),
        "loadings_shape": np.asarray(np.shape(results.loadings)),
        "sums": _sums(results),
    }


def check_stamp(signal):
    """The ``learning_results.hnmf`` dict, if the current decomposition is the one it describes.

    Arrays that ``hs.load(..., lazy=True)`` read as dask arrays are read
    into memory (in place) first.

    Raises
    ------
    ValueError
        With the reason: no decomposition by this package, metadata lost by
        HyperSpy's ``learning_results.load`` without this package, a later
        decomposition by another algorithm, factors or loadings changed
        (or reordered) after this package wrote them, or a signal cropped or
        transposed after its decomposition.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> s = hs.signals.Signal1D(np.ones((4, 3)))
    >>> store_decomposition(s, np.ones((3, 1)) / 3, np.full((4, 1), 3.0), "hnmf", {})
    >>> sorted(check_stamp(s))
    ['written']
    >>> s.learning_results.loadings *= 2
    >>> check_stamp(s)
    Traceback (most recent call last):
    ...
    ValueError: The decomposition in learning_results was changed after hyperspy_hnmf wrote it ...
    """
    results = signal.learning_results
    info = getattr(results, "hnmf", None)
    current = results.decomposition_algorithm
    if info is None and "hnmf" in results.__dict__:
        raise ValueError(
            f"learning_results.hnmf of this signal's decomposition (algorithm={current!r}) "
            "was lost: HyperSpy's learning_results.load reads it as None when hyperspy_hnmf "
            "is not imported. Run `import hyperspy_hnmf`, then load the results again, or "
            f"decompose again. {_HOW_TO_FIT}")
    if not isinstance(info, dict):
        made = (f"was made by algorithm={current!r}, not by hyperspy_hnmf" if current
                else "is empty")
        raise ValueError(f"This signal's decomposition {made}, so it has no hierarchy, tree "
                         f"or constraint metadata to read. {_HOW_TO_FIT}")
    written = info.get("written")
    if not isinstance(written, dict):
        raise ValueError(
            "learning_results.hnmf carries no stamp of the decomposition it describes (it was "
            "not written by this version of hyperspy_hnmf), so it cannot be matched with the "
            f"stored factors. {_HOW_TO_FIT}")
    _materialize(info)
    if str(current) != str(written["algorithm"]):
        raise ValueError(
            f"The current decomposition was made by algorithm={current!r}, but "
            f"learning_results.hnmf describes an earlier {written['algorithm']!r} fit: it is "
            f"stale and is not used. {_HOW_TO_FIT}")
    same = (tuple(np.shape(results.factors)) == tuple(np.asarray(written["factors_shape"]))
            and tuple(np.shape(results.loadings)) == tuple(np.asarray(written["loadings_shape"]))
            and _same_sums(results, written["sums"]))
    if not same:
        raise ValueError(
            "The decomposition in learning_results was changed after hyperspy_hnmf wrote it "
            "(e.g. by crop_decomposition_dimension, reverse_decomposition_component, "
            "normalize_decomposition_components, components reordered or a direct "
            "assignment), so the hierarchy in learning_results.hnmf no longer matches it. "
            f"{_HOW_TO_FIT}")
    _check_geometry(signal)
    return info


def _check_geometry(signal):
    """Refuse results whose loadings or factors no longer fit the signal's axes.

    HyperSpy keeps ``learning_results`` unchanged when a signal is cropped in
    place (``s.crop``) or transposed (``s.T``): its rows then describe probe
    positions or pixels the signal no longer has.
    """
    results, am = signal.learning_results, signal.axes_manager
    n_nav, n_sig = max(am.navigation_size, 1), am.signal_size
    n_loadings, n_factors = np.shape(results.loadings)[0], np.shape(results.factors)[0]
    if (n_loadings, n_factors) != (n_nav, n_sig):
        raise ValueError(
            f"The decomposition in learning_results has {n_loadings} probe positions and "
            f"{n_factors} signal pixels, but this signal now has {n_nav} and {n_sig}: it was "
            "cropped in place (s.crop, s.crop_signal, s.crop_image) or transposed (s.T, "
            "s.transpose) after its decomposition, and HyperSpy keeps learning_results as "
            "they were. Decompose the signal again, or crop with s.inav[...] / s.isig[...] "
            f"before decomposing. {_HOW_TO_FIT}")


def clear_results(signal):
    """Remove this package's metadata (``learning_results.hnmf``) from ``signal``.

    Called after every decomposition by another algorithm, so that no
    hierarchy, tree or constraint metrics of an earlier fit survive it.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> s = hs.signals.Signal1D(np.ones((4, 3)))
    >>> store_decomposition(s, np.ones((3, 1)) / 3, np.full((4, 1), 3.0), "hnmf", {})
    >>> clear_results(s)
    >>> hasattr(s.learning_results, "hnmf")
    False
    """
    signal.learning_results.__dict__.pop("hnmf", None)


def _wrap_load(original):
    """``LearningResults.load`` that reads ``hnmf`` back (HyperSpy's sets every dict to None).

    A file without it (results of another algorithm) removes the ``hnmf`` of
    the results it replaces.
    """

    @functools.wraps(original)
    def load(self, filename):
        original(self, filename)
        with np.load(filename, allow_pickle=True) as stored:
            info = stored["hnmf"].item() if "hnmf" in stored.files else None
        if isinstance(info, dict):
            self.hnmf = info
        else:
            self.__dict__.pop("hnmf", None)

    load._hnmf_original = original
    return load


def install_results_io():
    """Make ``learning_results.load`` read ``learning_results.hnmf`` back (idempotent).

    HyperSpy's ``LearningResults.save`` stores every attribute in a ``.npz``
    file, but its ``load`` replaces every dict by None: without this, the
    hierarchy, tree, outliers and fit details of a decomposition would be
    lost on the way (``s.save``/``hs.load`` keep them without help).

    Examples
    --------
    >>> from hyperspy.learn._mva import LearningResults
    >>> install_results_io()
    >>> hasattr(LearningResults.load, "_hnmf_original")
    True
    """
    from hyperspy.learn._mva import LearningResults

    if not hasattr(LearningResults.__dict__["load"], "_hnmf_original"):
        LearningResults.load = _wrap_load(LearningResults.__dict__["load"])


def uninstall_results_io():
    """Restore HyperSpy's own ``LearningResults.load``.

    Examples
    --------
    >>> from hyperspy.learn._mva import LearningResults
    >>> uninstall_results_io()
    >>> hasattr(LearningResults.load, "_hnmf_original")
    False
    >>> install_results_io()
    """
    from hyperspy.learn._mva import LearningResults

    current = LearningResults.__dict__["load"]
    if hasattr(current, "_hnmf_original"):
        LearningResults.load = current._hnmf_original


@contextlib.contextmanager
def _keeping_previous_results(signal):
    """Restore ``learning_results`` as they were if the body fails or is interrupted."""
    previous = dict(signal.learning_results.__dict__)
    try:
        yield
    except BaseException:
        signal.learning_results.__dict__.clear()
        signal.learning_results.__dict__.update(previous)
        raise


def store_decomposition(signal, factors, loadings, algorithm, info,
                        explained_intensity_ratio=None, poissonian_noise_normalized=False):
    """Replace the decomposition in ``signal.learning_results``, all or nothing.

    For results computed outside HyperSpy's ``decomposition`` (lazy fits,
    consensus components, HNMFk trees). BSS results, masks and the previous
    decomposition's statistics are cleared; if an assignment fails, the
    previous results are restored.

    Parameters
    ----------
    signal : hyperspy.signal.BaseSignal
    factors : ndarray, shape (n_signal, k)
    loadings : ndarray, shape (n_navigation, k)
    algorithm : str
        Stored as ``decomposition_algorithm``.
    info : dict
        Stored as ``learning_results.hnmf`` (with the stamp of
        :func:`stamp_results`).
    explained_intensity_ratio : ndarray, optional
        Fraction of the data's total intensity each component explains;
        computed from ``signal.data`` when omitted (in-memory signals only).
        Stored as ``explained_variance_ratio`` (and the components'
        intensities as ``explained_variance``) for HyperSpy's scree plots.
    poissonian_noise_normalized : bool
        Whether the fit saw Poisson-weighted data (the results are already
        scaled back, as HyperSpy's own are).

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> s = hs.signals.Signal1D(np.ones((4, 3)))
    >>> store_decomposition(s, np.ones((3, 1)) / 3, np.full((4, 1), 3.0), "hnmf", {})
    >>> s.learning_results.output_dimension, s.get_decomposition_model().data[0].tolist()
    (1, [1.0, 1.0, 1.0])
    """
    with _keeping_previous_results(signal):
        results = signal.learning_results
        for name in ("explained_variance", "explained_variance_ratio",
                     "number_significant_components", "centre", "mean", "navigation_mask",
                     "signal_mask", "unmixing_matrix", "bss_factors", "bss_loadings",
                     "bss_algorithm"):
            setattr(results, name, None)
        results.factors = factors
        results.loadings = loadings
        results.decomposition_algorithm = algorithm
        results.output_dimension = int(factors.shape[1])
        results.poissonian_noise_normalized = bool(poissonian_noise_normalized)
        results.hnmf = info
        intensity = _component_intensity(loadings, factors)
        if explained_intensity_ratio is None and not signal._lazy:
            total = float(np.nansum(signal.data, dtype=np.float64))
            explained_intensity_ratio = intensity / max(total, np.finfo(float).tiny)
        if explained_intensity_ratio is not None:
            results.explained_variance = intensity
            results.explained_variance_ratio = np.asarray(explained_intensity_ratio,
                                                          dtype=np.float64)
        stamp_results(results)


def _component_intensity(loadings, factors):
    """Total intensity of each component in the model (NaN rows of masked positions ignored)."""
    return (np.nansum(loadings, axis=0, dtype=np.float64)
            * np.nansum(factors, axis=0, dtype=np.float64))


def _hierarchy(signal, kind=None):
    info = check_stamp(signal)
    hierarchy = info.get("hierarchy")
    if not hierarchy or hierarchy.get("kind") == "flat":
        raise ValueError(f"This signal has no hierarchical decomposition: its hnmf "
                         f"decomposition is flat. {_HOW_TO_FIT}")
    if kind is not None and hierarchy["kind"] != kind:
        raise ValueError(
            f"This signal's hierarchy is a {hierarchy['kind']!r} hierarchy, not {kind!r}."
        )
    return hierarchy


def _expand_navigation(signal, array):
    """Rows of masked probe positions come back as NaN, as in ``learning_results``."""
    from hyperspy.learn._mva import _nan_expand_rows

    mask = signal.learning_results.navigation_mask
    if mask is None:
        return array
    return _nan_expand_rows(array, np.asarray(mask).ravel(), mask.size)


def _expand_signal(signal, array):
    from hyperspy.learn._mva import _nan_expand_rows

    mask = signal.learning_results.signal_mask
    if mask is None:
        return array
    return _nan_expand_rows(array, np.asarray(mask).ravel(), mask.size)


def get_hierarchy_level(signal, level):
    """Components and maps of one level of a hierarchical decomposition.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        A signal decomposed with ``algorithm="hnmf"`` and a list of ranks
        (multi-layer) or ``hierarchy="tree"`` (then only level 1, the leaves,
        exists here; use :func:`get_split_tree` for the inner nodes).
    level : int
        1 = finest; ``len(ranks)`` = coarsest.

    Returns
    -------
    factors, loadings : hyperspy signals
        Like ``get_decomposition_factors()`` / ``get_decomposition_loadings()``.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> rng = np.random.default_rng(0)
    >>> s = hs.signals.Signal1D(rng.poisson(rng.random((20, 4)) @ rng.random((4, 30)) * 9)
    ...                          .astype("float32"))
    >>> s.decomposition(algorithm="hnmf", output_dimension=[4, 2], print_info=False,
    ...                 random_state=0)
    >>> factors, loadings = get_hierarchy_level(s, 2)
    >>> factors.data.shape, loadings.data.shape
    ((2, 30), (2, 20))
    """
    hierarchy = _hierarchy(signal)
    if hierarchy["kind"] == "tree":
        if level != 1:
            raise ValueError("A tree's leaves are level 1; use get_split_tree for the nodes.")
        factors, loadings = signal.learning_results.factors, signal.learning_results.loadings
    else:
        n_levels = len(hierarchy["ranks"])
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not (
            1 <= level <= n_levels
        ):
            raise ValueError(
                f"level must be an integer from 1 (finest) to {n_levels} (coarsest), "
                f"got {level!r}."
            )
        factors = _expand_signal(signal, hierarchy["components"][str(level)].T)
        loadings = _expand_navigation(signal, hierarchy["maps"][str(level)])
    return signal._get_factors(factors), signal._get_loadings(loadings)


def get_mixing_matrices(signal):
    """Mixing matrices of a multi-layer decomposition, finest to coarsest.

    ``M[ℓ]`` (k_ℓ × k_{ℓ-1}) expresses each component of level ℓ as a
    nonnegative mixture of the components of level ℓ-1; rows sum to 1.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal

    Returns
    -------
    dict of int to ndarray
        ``{2: M2, 3: M3, ...}``.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> rng = np.random.default_rng(0)
    >>> s = hs.signals.Signal1D(rng.random((20, 30)).astype("float32"))
    >>> s.decomposition(algorithm="hnmf", output_dimension=[4, 2], print_info=False)
    >>> get_mixing_matrices(s)[2].shape
    (2, 4)
    """
    hierarchy = _hierarchy(signal, "layers")
    return {int(key): value for key, value in sorted(hierarchy["mixing"].items())}


def get_split_tree(signal):
    """The rank-2 splitting tree of ``decomposition(hierarchy="tree")``.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal

    Returns
    -------
    hyperspy_hnmf.hierarchy.tree.SplitTree
        Every node with its member probe positions (indices into the unmasked
        positions, in HyperSpy's unfolded order), component and split score.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> rng = np.random.default_rng(0)
    >>> s = hs.signals.Signal1D(rng.random((20, 30)).astype("float32"))
    >>> s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=3,
    ...                 print_info=False)
    >>> get_split_tree(s).n_leaves
    3
    """
    from ..hierarchy.tree import SplitTree

    return SplitTree.from_dict(_hierarchy(signal, "tree")["tree"])


def get_cluster_labels(signal):
    """Map of the tree leaf (cluster) of every probe position, as a signal.

    Masked positions get the label -1.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal

    Returns
    -------
    hyperspy signal
        Integer image (or line) with the navigation shape and axes of ``signal``.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> rng = np.random.default_rng(0)
    >>> s = hs.signals.Signal1D(rng.random((4, 5, 30)).astype("float32"))
    >>> s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=2,
    ...                 print_info=False)
    >>> get_cluster_labels(s).data.shape
    (4, 5)
    """
    labels = get_split_tree(signal).labels().astype(np.int64)
    mask = signal.learning_results.navigation_mask
    if mask is not None:
        full = np.full(mask.size, -1, dtype=np.int64)
        full[~np.asarray(mask).ravel()] = labels
        labels = full
    shape = signal.axes_manager._navigation_shape_in_array
    result = signal._get_navigation_signal(labels.reshape(shape))
    result.metadata.General.title = "tree leaf of each probe position"
    return result
