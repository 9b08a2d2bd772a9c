"""scikit-learn compatible estimator over the array-level solvers.

scikit-learn is not a runtime dependency: :class:`HNMF` implements the
estimator protocol itself (``get_params``/``set_params``, fitted attributes
with a trailing underscore, ``__sklearn_tags__``). When scikit-learn can be
imported, :class:`HNMF` also inherits from its ``TransformerMixin`` and
``BaseEstimator`` (so ``isinstance(model, BaseEstimator)`` holds and
scikit-learn's ``check_estimator`` passes without its "does not inherit from
BaseEstimator" warning); without scikit-learn it is a plain class with the
same methods.
"""

import inspect
import warnings

import dask.array as da
import numpy as np
import scipy.sparse as sp

from . import _checks, solvers
from ._checks import DEFAULT_LOSS, NumericalError, check_nonnegative, check_real
from ._spec import (DEFAULT_FINE_TUNE, DEFAULT_FINE_TUNE_ITER, DEFAULT_INIT, DEFAULT_MAX_ITER,
                    DEFAULT_MIN_LEAF_SIZE, DEFAULT_N_RESTARTS, DEFAULT_POWER_ITERATIONS,
                    DEFAULT_REFINE_PASSES, DEFAULT_SOLVER, DEFAULT_TOL, resolve_fit)
from .matrix import StreamedMatrix, as_streamed, compute_dtype, held_matrix
from .matrix.streamed import value_range
from .solvers import _checked_streamed, promote_if_overflowing
from .solvers._init import _poisson_weighted


def _estimator_bases():
    """scikit-learn's ``(TransformerMixin, BaseEstimator)`` if importable, else ``()``."""
    try:
        from sklearn.base import BaseEstimator, TransformerMixin
    except ImportError:
        return ()
    return (TransformerMixin, BaseEstimator)


def _is_dask(X):
    """Whether ``X`` is read in passes (a dask array or a StreamedMatrix)."""
    from .matrix import is_chunked

    return is_chunked(X)


def _is_sequence(value):
    return isinstance(value, (list, tuple, np.ndarray))


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator.

    Examples
    --------
    >>> issubclass(NotFittedError, ValueError)
    True
    """


def _validate_array(X, where, reset_features=None):
    """Turn ``X`` into a 2D float array or CSR/CSC matrix without copying float data.

    Other types follow :func:`~hyperspy_hnmf.matrix.compute_dtype`, as data
    read in passes do (counts of up to 16 bits give float32). pydata
    ``sparse`` arrays (event data) become CSR, with memory ∝ their nonzeros.
    """
    from .matrix import is_sparse, to_csr

    if is_sparse(X) and not sp.issparse(X):
        X = to_csr(X)
    if sp.issparse(X):
        if X.format not in ("csr", "csc"):
            X = X.tocsr()
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(compute_dtype(X.dtype))
    else:
        X = np.asarray(X)
        check_real(X.dtype, where)
        if X.dtype.kind in "OUSV":
            X = X.astype(np.float64)
        if X.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {X.ndim}D array instead: {where} needs data "
                "of shape (n_samples, n_features). Reshape your data either using "
                "array.reshape(-1, 1) if your data has a single feature or "
                "array.reshape(1, -1) if it contains a single sample."
            )
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(compute_dtype(X.dtype))
    n_samples, n_features = X.shape
    if n_samples < 1 or n_features < 1:
        raise ValueError(
            f"Found array with {n_samples} sample(s) and {n_features} feature(s) "
            f"(shape={X.shape}) while a minimum of 1 is required by {where}."
        )
    _checks.check_finite(X)
    return X


class HNMF(*_estimator_bases()):
    """Nonnegative matrix factorization with a scikit-learn interface.

    Factorizes nonnegative data ``X`` (n_samples × n_features; for HyperSpy,
    probe positions × detector pixels or channels) as ``X ≈ W @ H`` with
    ``W = fit_transform(X)`` (the maps) and ``H = components_`` (the patterns
    or spectra). ``X`` may be a dask array chunked along rows: it is then
    read chunk by chunk, one pass per iteration, and never held in memory
    (:mod:`hyperspy_hnmf.streaming`; flat fits, Frobenius or KL).

    Components come in a fixed order: each row of ``components_`` sums to 1
    and the maps carry the intensity; components are sorted by decreasing
    total intensity ``W.sum(axis=0)``.

    Parameters
    ----------
    n_components : int, sequence of int, or None, default None
        Number of components; ``None`` uses ``min(n_samples, n_features)``. A
        strictly decreasing sequence such as ``[12, 6, 3]`` fits a multi-layer
        (hierarchical) NMF, finest level first; with ``hierarchy="tree"`` the
        number of leaves of the rank-2 splitting tree.
    loss : str or float, default "auto"
        ``"auto"``: the Kullback-Leibler loss when the data are integer
        counts (integer dtype, or floats that are all integers; data read in
        passes are judged by their dtype or first chunk), the Frobenius loss
        otherwise or with a Frobenius-only solver; the choice is in
        ``loss_`` after fitting. ``"frobenius"``, ``"kullback-leibler"``
        (``"kl"``, the Poisson maximum-likelihood loss for counted
        electrons), ``"itakura-saito"`` (``"is"``) or a real β of the
        β-divergence.
    solver : {"auto", "hals", "mu", "als", "randomized"}, default "auto"
        ``"hals"``: accelerated HALS (Frobenius); ``"mu"``: multiplicative
        updates (any β, sparse-aware for KL); ``"als"``: projected ALS
        (Frobenius, use with ``n_restarts``); ``"randomized"``: HALS on a
        randomized compression of the data, then five exact HALS passes
        (Frobenius; few passes over data larger than memory); ``"auto"``:
        HALS for Frobenius, MU otherwise.
    init : str or tuple, default "nndsvda"
        ``"nndsvd"``, ``"nndsvda"``, ``"nndsvdar"``, ``"spa"``, ``"random"``,
        or a tuple ``(W, H)`` of initial arrays (one may be ``None``).
    max_iter : int, default 200
        Maximum number of iterations of a run. With ``hierarchy="tree"`` the
        leaf maps (one convex problem per probe position, the leaf
        components fixed) take at least 1000 updates per position:
        ``max_iter`` can only raise that.
    tol : float, default 1e-4
        Relative decrease of the objective over one iteration below which a
        run stops. With ``hierarchy="tree"`` every position's leaf maps stop
        at a relative decrease of at most 1e-6: ``tol`` can only lower that
        (these maps converge slowly: on ``benchmarks/bench_hierarchy.py``'s
        scan, 336 updates per position at the median, and 8 % of positions
        use all 1000).
    random_state : None, int, numpy.random.Generator or RandomState
        Seed for initialization and restarts.
    n_restarts : int, default 1
        Runs to make (the first with ``init``, then random); the lowest
        objective wins.
    clip_negative : bool, default False
        If False, negative data raise ``ValueError``. If True, negative entries
        are set to zero with a warning: on a copy in memory, as the chunks
        are read for data read in passes (one more pass finds them).
    show_progressbar : bool, default False
        Show a progress bar with the current objective; it appears only for
        fits that last more than two seconds.
    hierarchy : {None, "layers", "tree"}, default None
        ``None``: flat NMF, or multi-layer NMF when ``n_components`` is a
        sequence (same as ``"layers"``). ``"tree"``: hierarchical rank-2
        splitting of the samples (probe positions) into ``n_components``
        leaves (:func:`~hyperspy_hnmf.hierarchy.tree.rank2_tree`); the leaves
        are the components, in the tree's leaf order. For losses with β < 2
        (KL: counted data) the rows are split after Poisson weighting (see
        :func:`~hyperspy_hnmf.solvers._init.poisson_scales`), then the maps
        are fitted to the raw data with the loss.
    level : int or None, default None
        Multi-layer only: the level whose components and maps the estimator
        exposes (1 = finest, the default).
    fine_tune : bool, default True
        Multi-layer only: after the greedy layer-by-layer pass, lower the
        total error of all layers jointly.
    fine_tune_iter : int, default 100
        Multi-layer only: maximum number of fine-tuning iterations.
    layer_weights : sequence of float or None, default None
        Multi-layer only: weights of each level's error in the fine-tuning
        objective; ``None`` weights only the deepest level (the total error).
    min_leaf_size : int, default 1
        Tree only: leaves with fewer samples are not split.
    max_depth : int or None, default None
        Tree only: maximum depth of a leaf (the root has depth 0).
    score_threshold : float or None, default None
        Tree only: leaves whose split score is below it are not split.
    constraints : Constraint, list of Constraint or None, default None
        Domain constraints from :mod:`hyperspy_hnmf.constraints`:
        :class:`~hyperspy_hnmf.constraints.MapResolution`,
        :class:`~hyperspy_hnmf.constraints.ContinuousIntensity`,
        :class:`~hyperspy_hnmf.constraints.Penalty`,
        :class:`~hyperspy_hnmf.constraints.Projection`. They act in every
        solver. Multi-layer: on the finest level (and global map
        constraints on every level); tree: projections of the leaf
        components and map constraints in the final maps fit.
    groups : dict of str to list of int, optional
        Named disjoint sets of components (e.g. ``{"background": [0],
        "target": [1, 2, 3]}``) that constraints can name. Components keep
        their positions: the final sort by intensity happens among
        components that share the same constraints and group.
    navigation_grid, signal_grid : Grid or tuple of int, optional
        Shape (and calibration) of one map and of one component, needed by
        constraints that reshape them; set from the axes by
        ``decomposition``.
    power_iterations : int, default 2
        ``solver="randomized"`` only: power iterations of the range finder
        (two passes over the data each).
    refine_passes : int, default 5
        ``solver="randomized"`` only: exact HALS iterations (one pass each)
        after the compressed solve.
    outliers : None, "auto" or float, default None
        Flat fits, KL or Frobenius: keep detector outliers (hot, dead or
        saturated pixels, cosmic-ray hits, dead or hot channels) out of the
        components and maps (:func:`~hyperspy_hnmf.solvers.robust_nmf`).
        Entries whose Poisson tail (KL) or MAD-scaled residual (Frobenius)
        is below the false-alarm rate are fitted as missing data; ``"auto"``
        uses ``min(1 / X.size, 1e-4)`` (about one false alarm per dataset),
        a float in ``(0, 0.01]`` sets the rate per entry. With a 2D
        ``signal_grid`` (set by ``decomposition``) dead and hot channels are
        judged against their 8 detector neighbours. What was found is in ``outliers_``.

    Attributes
    ----------
    components_ : ndarray, shape (n_components, n_features)
        The components ``H``.
    n_components_ : int
        Number of components fitted.
    n_features_in_ : int
        Number of features seen during ``fit``.
    n_iter_ : int
        Iterations of the kept run.
    loss_ : str or float
        The loss the fit minimised (``loss="auto"`` resolved):
        ``"frobenius"``, ``"kullback-leibler"``, ``"itakura-saito"`` or β.
    reconstruction_err_ : float
        ``||X - W H||_F`` for the Frobenius loss; ``sqrt(2 D_β(X | W H))``
        otherwise, as in scikit-learn.
    objective_history_ : ndarray
        β-divergence after initialization and after every iteration of the
        kept run (Frobenius as ``0.5 ||X - W H||^2``).
    converged_ : bool
        Whether the kept run stopped on ``tol``.
    restart_objectives_ : ndarray
        Final objective of each restart.
    hierarchy_ : MultiLayerResult, SplitTree or None
        The whole hierarchy of a hierarchical fit (every level, the mixing
        matrices, or the tree); ``None`` for a flat fit.
    explained_intensity_ratio_ : ndarray of float64, shape (n_components,)
        Fraction of the data's total intensity (sum of ``X``) that each
        component carries in the model, ``W[:, j].sum() * H[j].sum() /
        X.sum()``: the NMF counterpart of PCA's explained variance ratio,
        decreasing in the package's component order. ``decomposition``
        stores it as HyperSpy's ``explained_variance_ratio``, so
        ``plot_explained_variance_ratio()`` works.
    outliers_ : Outliers or None
        With ``outliers``: the outlying entries and channels found
        (:class:`~hyperspy_hnmf.solvers.Outliers`; ``summary()`` gives one
        line); ``None`` otherwise.
    spec_ : FitSpec
        The options of the fit, validated and resolved once
        (:func:`~hyperspy_hnmf._spec.resolve_fit`): ``loss="auto"`` and
        ``solver="auto"`` resolved, the ranks, the constraint plan, and
        every other option as the algorithms received it. Frozen.
    constraint_metrics_ : dict
        What the constraints did: ``dip_score`` of every component (with the
        width of the first ContinuousIntensity, in pixels along each axis of
        the components: ``dip_width_pixels``), ``out_of_band_fraction`` of
        every map (with the first MapResolution, in pixels along each axis
        of the scan: ``map_resolution_pixels``) and
        ``reconstruction_error``; empty without constraints.

    Raises
    ------
    ValueError
        For invalid options or data (complex, negative, NaN, all zero) and
        for an all-zero or rank-deficient user ``init``, before any work.
    hyperspy_hnmf.NumericalError
        When NaN or infinity appear during the fit (the message names the
        iteration, or the user ``Projection`` that produced them, and the
        likely cause) or the fit ends with all-zero factors; no fitted
        attribute is set. float32 data whose products would overflow
        float32 (e.g. a maximum of 3e19) are fitted in float64 with a
        warning instead (:func:`~hyperspy_hnmf._checks.overflow_safe_dtype`).

    See Also
    --------
    hyperspy_hnmf.solvers.nmf : the function this class wraps.

    References
    ----------
    N. Gillis and F. Glineur, Neural Computation 24 (2012) 1085 (accelerated HALS).
    C. Févotte and J. Idier, Neural Computation 23 (2011) 2421 (β-divergence MU).
    T. Uesugi et al., Ultramicroscopy (2021) (projected ALS for 4D-STEM).

    Examples
    --------
    >>> import numpy as np
    >>> from hyperspy_hnmf import HNMF
    >>> rng = np.random.default_rng(0)
    >>> X = rng.poisson(rng.random((100, 3)) @ rng.random((3, 50)) * 20).astype("float32")
    >>> model = HNMF(n_components=3, loss="kl", random_state=0)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape, W.dtype
    ((100, 3), (3, 50), dtype('float32'))
    """

    def __init__(
        self,
        n_components=None,
        *,
        loss=DEFAULT_LOSS,
        solver=DEFAULT_SOLVER,
        init=DEFAULT_INIT,
        max_iter=DEFAULT_MAX_ITER,
        tol=DEFAULT_TOL,
        random_state=None,
        n_restarts=DEFAULT_N_RESTARTS,
        clip_negative=False,
        show_progressbar=False,
        hierarchy=None,
        level=None,
        fine_tune=DEFAULT_FINE_TUNE,
        fine_tune_iter=DEFAULT_FINE_TUNE_ITER,
        layer_weights=None,
        min_leaf_size=DEFAULT_MIN_LEAF_SIZE,
        max_depth=None,
        score_threshold=None,
        constraints=None,
        groups=None,
        navigation_grid=None,
        signal_grid=None,
        power_iterations=DEFAULT_POWER_ITERATIONS,
        refine_passes=DEFAULT_REFINE_PASSES,
        outliers=None,
    ):
        self.n_components = n_components
        self.loss = loss
        self.solver = solver
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_restarts = n_restarts
        self.clip_negative = clip_negative
        self.show_progressbar = show_progressbar
        self.hierarchy = hierarchy
        self.level = level
        self.fine_tune = fine_tune
        self.fine_tune_iter = fine_tune_iter
        self.layer_weights = layer_weights
        self.min_leaf_size = min_leaf_size
        self.max_depth = max_depth
        self.score_threshold = score_threshold
        self.constraints = constraints
        self.groups = groups
        self.navigation_grid = navigation_grid
        self.signal_grid = signal_grid
        self.power_iterations = power_iterations
        self.refine_passes = refine_passes
        self.outliers = outliers

    # -- estimator protocol ------------------------------------------------
    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(name for name in signature.parameters if name != "self")

    def get_params(self, deep=True):
        """Parameters of this estimator, as passed to ``__init__``.

        Parameters
        ----------
        deep : bool
            Accepted for scikit-learn compatibility (no nested estimators).

        Returns
        -------
        dict

        Examples
        --------
        >>> HNMF(4).get_params()["n_components"]
        4
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set parameters; unknown names raise ``ValueError``.

        Returns
        -------
        self

        Examples
        --------
        >>> HNMF().set_params(loss="kl").loss
        'kl'
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {self!r}. "
                    f"Valid parameters are: {valid}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults[name].default
            if isinstance(value, (np.ndarray, tuple, list)) or (
                value is not default and value != default
            ):
                shown = "(W, H)" if isinstance(value, tuple) else repr(value)
                changed.append(f"{name}={shown}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
            input_tags=InputTags(positive_only=True, sparse=True),
        )

    # -- validation ----------------------------------------------------------
    def _validate_params(self, X=None):
        """Check every parameter once; return the resolved :class:`~hyperspy_hnmf._spec.FitSpec`.

        ``X`` (the data, their shape, or None) lets ``loss="auto"`` be
        resolved from the data (:func:`~hyperspy_hnmf._checks.resolve_loss`;
        without data, checked as the Frobenius loss) and the ranks and grids
        be checked against the data's shape.
        """
        return resolve_fit(
            X, self.n_components, loss=self.loss, solver=self.solver, init=self.init,
            max_iter=self.max_iter, tol=self.tol, random_state=self.random_state,
            n_restarts=self.n_restarts, hierarchy=self.hierarchy, level=self.level,
            fine_tune=self.fine_tune, fine_tune_iter=self.fine_tune_iter,
            layer_weights=self.layer_weights, min_leaf_size=self.min_leaf_size,
            max_depth=self.max_depth, score_threshold=self.score_threshold,
            constraints=self.constraints, groups=self.groups,
            navigation_grid=self.navigation_grid, signal_grid=self.signal_grid,
            power_iterations=self.power_iterations, refine_passes=self.refine_passes,
            outliers=self.outliers)

    @property
    def _kind(self):
        """``"flat"``, ``"layers"`` or ``"tree"``."""
        if self.hierarchy == "tree":
            return "tree"
        if self.hierarchy == "layers" or _is_sequence(self.n_components):
            return "layers"
        return "flat"

    def _read_in_passes(self, X):
        """Whether ``X`` is read in passes (see :func:`~hyperspy_hnmf.solvers._reads_in_passes`):
        data read in passes, and integer counts held in memory when passes run the fit."""
        return solvers._reads_in_passes(X, self.loss, self.solver, self.init)

    def _prepare_data(self, X, where):
        X = _validate_array(X, where)
        values = X.data if sp.issparse(X) else X
        if values.size and values.min() < 0:
            if not self.clip_negative:
                check_nonnegative(X, where=where, clip_option=True)
            count = int(np.count_nonzero(values < 0))
            warnings.warn(
                f"clip_negative=True: {count} negative entries (minimum "
                f"{float(values.min()):.6g}) were set to zero.",
                UserWarning,
                stacklevel=3,
            )
            X = X.copy()
            if sp.issparse(X):
                np.maximum(X.data, 0, out=X.data)
                X.eliminate_zeros()
            else:
                np.maximum(X, 0, out=X)
        return promote_if_overflowing(X)

    def _progress(self, total):
        if not self.show_progressbar:
            return None, None
        progress = _Progress(total)
        return progress, progress

    # -- fitting -------------------------------------------------------------
    def fit_transform(self, X, y=None):
        """Fit the model to ``X`` and return the maps ``W``.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, shape (n_samples, n_features)
            Nonnegative data; float32 is kept as float32. Integer counts
            held in memory are read in place, in passes, as a dask array is
            (:func:`~hyperspy_hnmf.matrix.held_matrix`): never converted
            whole to floats.
        y : ignored

        Returns
        -------
        ndarray, shape (n_samples, n_components)

        Examples
        --------
        >>> X = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 2.0]])
        >>> HNMF(2, random_state=0, tol=1e-10, max_iter=2000).fit_transform(X).round(3)
        array([[0., 1.],
               [2., 0.],
               [2., 1.]])
        """
        if self._read_in_passes(X):
            return self._fit_streaming(X)
        X = self._prepare_data(X, f"{type(self).__name__}.fit")
        spec = self._validate_params(X)
        solvers.check_data(X, where=f"{type(self).__name__}.fit", beta=spec.beta)
        W, H, details = self._fit(X, spec)
        return self._set_fitted(W, H, details, spec, X.shape[1],
                                float(X.sum(dtype=np.float64)))

    def _fit(self, X, spec):
        """Run the fit that ``spec.kind`` names, with the progress bar (if asked for)."""
        fit = {"flat": self._fit_flat if spec.outliers is None else self._fit_robust,
               "layers": self._fit_layers, "tree": self._fit_tree}
        if spec.kind == "flat":
            total = spec.max_iter * spec.n_restarts
        elif spec.kind == "layers":
            # Every restart of layer 1 reports its iterations; coarser layers fit once.
            total = (spec.max_iter * (spec.n_restarts + len(spec.ranks) - 1)
                     + (spec.fine_tune_iter if spec.fine_tune else 0))
        else:
            total = None
        bar, callback = self._progress(total)
        try:
            return fit[spec.kind](X, spec, callback)
        finally:
            if bar is not None:
                bar.close()

    def _set_fitted(self, W, H, details, spec, n_features, total):
        _check_fitted_factors(W, H, details)
        self.spec_ = spec
        self.components_ = H
        self.n_components_ = H.shape[0]
        self.n_features_in_ = n_features
        self.n_iter_ = details["n_iter"]
        self.objective_history_ = details["objective"]
        self.reconstruction_err_ = float(np.sqrt(2.0 * max(details["divergence"], 0.0)))
        self.converged_ = details["converged"]
        self.restart_objectives_ = np.asarray(details.get("restarts", [details["divergence"]]))
        self.hierarchy_ = details.get("hierarchy")
        self.constraint_metrics_ = self._metrics(W, H, spec.plan)
        self.outliers_ = details.get("outliers")
        self.explained_intensity_ratio_ = explained_intensity(W, H) / max(total, np.finfo(float).tiny)
        self._beta, self._solver = spec.beta, spec.solver
        self.loss_ = spec.loss
        return W

    def _fit_streaming(self, X):
        """Fit data read chunk by chunk (:class:`~hyperspy_hnmf.matrix.StreamedMatrix`).

        Every kind of fit goes through the same functions as in-memory data
        (:mod:`hyperspy_hnmf.matrix` gives both the same interface); flat
        fits make one pass over the data per iteration, and a matrix given
        is fitted itself, so that the chunks it keeps in memory serve.
        """
        if len(X.shape) != 2:
            raise ValueError(f"Expected a 2D dask array (samples × features), got "
                             f"{len(X.shape)}D.")
        Xs = self._streamed(X)
        check_real(Xs.array.dtype, f"{type(self).__name__}.fit")
        spec = self._validate_params(Xs)
        Xs, total = _checked_streamed(Xs, spec.beta, stacklevel=4)
        before = Xs.passes
        W, H, details = self._fit(Xs, spec)
        self.passes_ = Xs.passes - before
        return self._set_fitted(W, H, details, spec, Xs.shape[1], total)

    def _streamed(self, X):
        """Data read in passes as a StreamedMatrix, clipped at zero if ``clip_negative``
        and the data hold negative values (one pass to find them): as the chunks
        are read, or for signed counts held in memory in a clipped copy of their
        own type (half the size of a float32 copy for 16-bit counts)."""
        Xs = as_streamed(X)
        if not self.clip_negative or Xs.array.dtype.kind not in "if":
            return Xs
        minimum = value_range(Xs)[1]
        if not minimum < 0:
            return Xs
        if Xs.held_array is not None:
            warnings.warn(f"clip_negative=True: negative entries (minimum {minimum:.6g}) were "
                          "set to zero (in a copy).", UserWarning, stacklevel=4)
            return held_matrix(np.maximum(Xs.held_array, 0))
        warnings.warn(
            f"clip_negative=True: negative entries (minimum {minimum:.6g}) are set to zero "
            "as the chunks are read.", UserWarning, stacklevel=4)
        return StreamedMatrix(da.maximum(Xs.array, 0), Xs.row_scale, Xs.column_scale,
                              perturbation=Xs.perturbation)

    def _metrics(self, W, H, plan):
        if plan is None:
            return {}
        from .constraints import dip_score, out_of_band_fraction

        metrics = {"reconstruction_error": self.reconstruction_err_,
                   "constraints": plan.summary()}
        # Per axis: on a scan (or detector) whose step differs between the axes the
        # constraint's length is a different number of pixels along each axis.
        if plan.dip_width_axes is not None:
            stack = H.reshape((H.shape[0],) + plan.components.grid.shape)
            metrics["dip_width_pixels"] = np.asarray(plan.dip_width_axes, dtype=np.float64)
            metrics["dip_score"] = dip_score(stack, plan.dip_width_axes)
        if plan.map_resolution_axes is not None:
            stack = np.ascontiguousarray(W.T).reshape((W.shape[1],) + plan.maps.grid.shape)
            metrics["map_resolution_pixels"] = np.asarray(plan.map_resolution_axes,
                                                          dtype=np.float64)
            metrics["out_of_band_fraction"] = out_of_band_fraction(stack,
                                                                   plan.map_resolution_axes)
        return metrics

    def _fit_flat(self, X, spec, callback):
        result = solvers._fit_nmf(X, spec, callback)
        details = dict(n_iter=result.n_iter, objective=result.objective,
                       divergence=result.divergence, converged=result.converged,
                       restarts=result.restart_objectives)
        return result.W, result.H, details

    def _fit_robust(self, X, spec, callback):
        result, found = solvers._robust._fit_robust(X, spec, callback)
        details = dict(n_iter=result.n_iter, objective=result.objective,
                       divergence=result.divergence, converged=result.converged,
                       outliers=found)
        return result.W, result.H, details

    def _fit_layers(self, X, spec, callback):
        from .hierarchy.multilayer import _fit_multilayer

        result = _fit_multilayer(
            X, spec, None if callback is None else (lambda stage, it, obj: callback(it, obj)))
        chosen = result.level(spec.level)
        history = (result.fine_tune_objective if len(result.fine_tune_objective)
                   else result.layer_objectives[0])
        details = dict(n_iter=result.fine_tune_n_iter, objective=np.asarray(history),
                       divergence=chosen.error, converged=True, hierarchy=result)
        return chosen.W, chosen.H, details

    def _fit_tree(self, X, spec, callback=None):
        from .hierarchy.tree import _grow_tree

        beta, plan = spec.beta, spec.plan
        data, column_scales = X, None
        if beta < 2:
            # Counted data: split the Poisson-weighted rows, as the flat
            # initialization does; on raw counts the bright direct beam
            # dominates every rank-2 split.
            data, _, column_scales = _poisson_weighted(X, copy_held=True)
        tree = _grow_tree(data, spec.n_components, spec.min_leaf_size, spec.max_depth,
                          spec.score_threshold, spec.random_state,
                          init="random" if spec.init == "random" else "svd")
        if column_scales is not None:
            for node in tree.nodes:
                component = node.component * column_scales
                node.component = component / max(component.sum(), np.finfo(float).tiny)
        if plan is not None and plan.components.projections:
            Ht = np.ascontiguousarray(tree.components.T)
            plan.components.project(Ht)
            for leaf, component in zip(tree.leaves, Ht.T):
                leaf.component = component / max(component.sum(), np.finfo(float).tiny)
        H = tree.components.astype(X.dtype, copy=False)
        W = tree.maps(X, loss=beta, solver=spec.solver, max_iter=max(spec.max_iter, 1000),
                      tol=min(spec.tol, 1e-6), constraints=plan)
        divergence = solvers.beta_divergence(X, W, H, beta)
        details = dict(n_iter=len(tree.nodes), objective=np.asarray([divergence]),
                       divergence=divergence, converged=True, hierarchy=tree)
        return W, H, details

    def fit(self, X, y=None):
        """Fit the model to ``X``.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self

        Examples
        --------
        >>> HNMF(1).fit(np.ones((4, 3))).components_.round(3)
        array([[0.333, 0.333, 0.333]])
        """
        self.fit_transform(X)
        return self

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with appropriate arguments before using this estimator."
            )

    def _check_features(self, n_features):
        if n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )

    def transform(self, X):
        """Maps ``W ≥ 0`` of new data for the fitted components.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples, n_components)

        Examples
        --------
        >>> model = HNMF(1).fit(np.ones((4, 3)))
        >>> model.transform(2 * np.ones((1, 3))).round(3)
        array([[6.]])
        """
        self._check_fitted()
        if self._read_in_passes(X):
            X = self._streamed(X)
        else:
            X = self._prepare_data(X, f"{type(self).__name__}.transform")
        self._check_features(X.shape[1])
        return solvers.solve_loadings(
            X,
            self.components_.astype(compute_dtype(X.dtype), copy=False),
            loss=self._beta,
            solver=self._solver,
            max_iter=max(self.max_iter, 200),
            tol=min(self.tol, 1e-6),
            constraints=self._map_constraints(X),
        )

    def _map_constraints(self, X):
        """The fit's constraint plan, for maps of ``X`` that it can constrain (else None).

        The maps' penalties apply to any rows; their projections act on the
        fitted scan's grid, so they apply to data with as many rows, held in
        memory. Otherwise the maps are solved without them, with a warning
        that says why.
        """
        plan = getattr(self, "spec_", None) and self.spec_.plan
        if plan is None or not plan.maps.active:
            return None
        if not plan.maps.projections:
            return plan
        grid, n_rows = plan.maps.grid, X.shape[0]
        reason = None
        if grid is not None and grid.size != n_rows:
            reason = (f"act on the fitted scan's grid ({grid.size} probe positions), and these "
                      f"data have {n_rows} rows")
        elif isinstance(X, StreamedMatrix) and X.held_array is None:
            reason = ("act across probe positions, and these data are read chunk by chunk "
                      "(load them to apply them)")
        if reason is None:
            return plan
        labels = ", ".join(label for _, _, label in plan.maps.projections)
        warnings.warn(f"The maps' projections of this fit ({labels}) {reason}: the maps are "
                      "solved without them.", UserWarning, stacklevel=3)
        return None

    def inverse_transform(self, X):
        """Data reconstructed from maps: ``X @ components_``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_components)
            Maps, e.g. from :meth:`transform`.

        Returns
        -------
        ndarray, shape (n_samples, n_features)

        Examples
        --------
        >>> model = HNMF(1).fit(np.ones((4, 3)))
        >>> model.inverse_transform(np.array([[3.0]])).round(3)
        array([[1., 1., 1.]])
        """
        self._check_fitted()
        W = np.asarray(X.toarray() if sp.issparse(X) else X)
        if W.ndim != 2 or W.shape[1] != self.n_components_:
            raise ValueError(
                f"inverse_transform expects maps of shape (n_samples, "
                f"{self.n_components_}), got {W.shape}."
            )
        return W @ self.components_

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``hnmf0``, ``hnmf1``, ...

        Examples
        --------
        >>> HNMF(2).fit(np.eye(3)).get_feature_names_out().tolist()
        ['hnmf0', 'hnmf1']
        """
        self._check_fitted()
        return np.asarray([f"hnmf{i}" for i in range(self.n_components_)], dtype=object)


def explained_intensity(W, H):
    """Total intensity each component carries in the model ``W @ H``: ``W[:, j].sum() * H[j].sum()``.

    Divided by the data's total intensity it is the fraction of the counts
    (or intensity) that each component explains, the NMF counterpart of
    PCA's explained variance ratio (:attr:`HNMF.explained_intensity_ratio_`).
    NaN rows (masked positions) are ignored.

    Parameters
    ----------
    W : ndarray, shape (n, k)
    H : ndarray, shape (k, m)

    Returns
    -------
    ndarray of float64, shape (k,)

    Examples
    --------
    >>> explained_intensity(np.array([[2.0, 1.0], [2.0, 0.0]]), np.array([[0.5, 0.5], [1.0, 1.0]]))
    array([4., 2.])
    """
    return (np.nansum(W, axis=0, dtype=np.float64)
            * np.nansum(H, axis=1, dtype=np.float64))


def _check_fitted_factors(W, H, details):
    """The last guard before anything is stored: finite, not all-zero factors."""
    for name, factor in (("maps W", W), ("components H", H)):
        if not np.isfinite(np.sum(factor, dtype=np.float64)):
            raise NumericalError(
                f"The fit ended with NaN or infinite {name}; nothing was stored. "
                f"{_checks.LIKELY_CAUSES}")
        if not np.any(factor):
            raise NumericalError(
                f"The fit ended with all-zero {name} (a degenerate solution); nothing was "
                "stored. Try another init (e.g. 'nndsvda' or 'random' with n_restarts), "
                "fewer components, or check that the data are not nearly all zero.")
    if not np.isfinite(details["divergence"]):
        raise NumericalError(
            f"The fit ended with a non-finite reconstruction error ({details['divergence']}); "
            f"nothing was stored. {_checks.LIKELY_CAUSES}")


class _Progress:
    """The fit's progress bar, started after the first iteration.

    The first iteration also pays for start-up work (initialization,
    compilation of the kernels, the first read of lazy data), so a bar
    started before it would extrapolate that cost to every iteration (an
    ETA of half an hour for a fit of seconds). This bar is created when the
    first iteration reports, with that iteration counted as done
    (``initial=1``), so its rate and ETA come from the later iterations
    only. Like every bar of the package it appears only for fits that last
    more than two seconds.
    """

    def __init__(self, total):
        self.total = total
        self.bar = None

    def __call__(self, iteration, objective):
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=1, delay=2.0, desc="HNMF", unit="it",
                            leave=False)
        else:
            self.bar.update(1)
        self.bar.set_postfix(objective=f"{objective:.6g}", refresh=False)

    def close(self):
        """Close the bar (if it was started)."""
        if self.bar is not None:
            self.bar.close()
