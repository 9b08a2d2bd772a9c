"""Validation of solver inputs: one place for every message a user reads.

All checks read the data without copying it (reductions only) and run before
any result is modified.
"""

import numbers

import numpy as np
import scipy.sparse as sp

#: Loss names and their β of the β-divergence.
LOSSES = {
    "frobenius": 2.0,
    "kullback-leibler": 1.0,
    "kl": 1.0,
    "itakura-saito": 0.0,
    "is": 0.0,
}

#: Solver names and the losses (β values) each one supports; ``None`` = any β.
SOLVERS = {
    "hals": (2.0,),
    "als": (2.0,),
    "mu": None,
    "randomized": (2.0,),
}

SOLVER_NAMES = ("auto",) + tuple(SOLVERS)

_BLOCK_ELEMENTS = 1 << 20

#: The causes a non-finite objective or factor usually has, for the messages.
LIKELY_CAUSES = (
    "Likely causes: the data's range (values so large that their products overflow, or "
    "so small that they underflow: rescale the data, e.g. s.data / s.data.max()); a "
    "degenerate initialization (an all-zero or rank-deficient user init (W, H)); or a "
    "user Projection that returned NaN or infinity."
)


class NumericalError(ValueError, FloatingPointError):
    """A fit produced non-finite or degenerate values; nothing was stored.

    Raised when the objective or the factors become NaN or infinite during a
    fit (the message names the iteration and the likely cause) or when a
    fit ends with all-zero factors. A subclass of both :class:`ValueError`
    and :class:`FloatingPointError`.

    Examples
    --------
    >>> issubclass(NumericalError, ValueError), issubclass(NumericalError, FloatingPointError)
    (True, True)
    """


def row_blocks(n_rows, n_cols, block_elements=_BLOCK_ELEMENTS):
    """Yield ``slice`` objects that cover ``range(n_rows)`` in blocks.

    Each block holds about ``block_elements`` entries of a row-major
    ``(n_rows, n_cols)`` array, so a temporary of one block stays small.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of the array to traverse.
    block_elements : int, optional
        Target number of entries per block.

    Yields
    ------
    slice

    Examples
    --------
    >>> [s.stop for s in row_blocks(10, 4, block_elements=12)]
    [3, 6, 9, 10]
    """
    step = max(1, block_elements // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def loss_to_beta(loss):
    """Return the β of the β-divergence named by ``loss``.

    Parameters
    ----------
    loss : str or float
        ``"frobenius"``, ``"kullback-leibler"`` (``"kl"``),
        ``"itakura-saito"`` (``"is"``) or a real β.

    Returns
    -------
    float

    Examples
    --------
    >>> loss_to_beta("kl")
    1.0
    >>> loss_to_beta(0.5)
    0.5
    """
    if isinstance(loss, str):
        key = loss.lower()
        if key not in LOSSES:
            raise ValueError(
                f"Unknown loss {loss!r}. Valid losses are 'auto', "
                f"{', '.join(repr(name) for name in LOSSES)}, or a real β of the "
                "β-divergence (2 = Frobenius, 1 = Kullback-Leibler, 0 = Itakura-Saito)."
            )
        return LOSSES[key]
    if isinstance(loss, numbers.Real) and not isinstance(loss, bool) and np.isfinite(loss):
        return float(loss)
    raise ValueError(
        f"`loss` must be a loss name or a real β, not {loss!r}. Valid names are "
        f"{', '.join(repr(name) for name in LOSSES)}."
    )


#: The default loss of every fit: chosen from the data (:func:`resolve_loss`).
DEFAULT_LOSS = "auto"


def is_auto_loss(loss):
    """Whether ``loss`` asks for the loss to be chosen from the data.

    Examples
    --------
    >>> is_auto_loss("auto"), is_auto_loss("kl"), is_auto_loss(2.0)
    (True, False, False)
    """
    return isinstance(loss, str) and loss.lower() == "auto"


def looks_like_counts(X):
    """Whether ``X`` holds integer counts (integer dtype, or floats that are all integers).

    In-memory data are read block by block (no copy); data read in passes
    (a :class:`~hyperspy_hnmf.matrix.StreamedMatrix` or dask array) are
    judged by their dtype, or for floating dtypes by their first chunk only,
    so that nothing is read beyond one chunk.

    Parameters
    ----------
    X : ndarray, scipy.sparse matrix, dask array or StreamedMatrix

    Returns
    -------
    bool

    Examples
    --------
    >>> looks_like_counts(np.array([[0.0, 3.0], [1.0, 2.0]], dtype=np.float32))
    True
    >>> looks_like_counts(np.array([[0.5, 3.0]]))
    False
    """
    array = getattr(X, "array", X)  # StreamedMatrix / ArrayMatrix hold the data here
    dtype = np.dtype(array.dtype)
    if dtype.kind in "uib":
        return True
    if dtype.kind != "f":
        return False
    if type(array).__module__.startswith("dask."):
        first = array.blocks[(0,) * array.ndim].compute()
        if sp.issparse(first) or type(first).__module__.split(".")[0] == "sparse":
            return _integer_valued(first.data)  # sparse chunk (events): its stored values
        return _integer_valued(np.asarray(first))
    if sp.issparse(array):
        return _integer_valued(array.data)
    values = np.asarray(array)
    values = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(1, -1)
    return all(_integer_valued(values[rows]) for rows in row_blocks(*values.shape))


def _integer_valued(values):
    values = np.asarray(values)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.rint(values)))


def resolve_loss(loss, X=None, solver="auto"):
    """The β of a fit's loss; ``"auto"`` chooses it from the data.

    ``"auto"``: the Kullback-Leibler (Poisson) loss for integer counts
    (:func:`looks_like_counts`), the Frobenius loss otherwise, and also when
    ``solver`` is one that minimises the Frobenius loss only (``"hals"``,
    ``"als"``, ``"randomized"``). Other values go through :func:`loss_to_beta`.

    Parameters
    ----------
    loss : str or float
    X : array-like, optional
        The data (``"auto"`` without data gives the Frobenius loss).
    solver : str, default "auto"

    Returns
    -------
    float

    Examples
    --------
    >>> resolve_loss("auto", np.array([[1, 0], [2, 5]], dtype=np.uint16))
    1.0
    >>> resolve_loss("auto", np.array([[0.5, 1.0]])), resolve_loss("kl")
    (2.0, 1.0)
    """
    if not is_auto_loss(loss):
        return loss_to_beta(loss)
    if isinstance(solver, str) and solver.lower() in ("hals", "als", "randomized"):
        return 2.0
    return 1.0 if X is not None and looks_like_counts(X) else 2.0


def resolve_solver(solver, beta):
    """Return the concrete solver name for ``solver`` and the loss ``beta``.

    ``"auto"`` picks HALS for the Frobenius loss and multiplicative updates
    otherwise.

    Parameters
    ----------
    solver : str
        One of ``SOLVER_NAMES``.
    beta : float
        β of the loss.

    Returns
    -------
    str

    Examples
    --------
    >>> resolve_solver("auto", 1.0)
    'mu'
    >>> resolve_solver("auto", 2.0)
    'hals'
    """
    if not isinstance(solver, str) or solver.lower() not in SOLVER_NAMES:
        raise ValueError(
            f"Unknown solver {solver!r}. Valid solvers are "
            f"{', '.join(repr(name) for name in SOLVER_NAMES)}."
        )
    solver = solver.lower()
    if solver == "auto":
        return "hals" if beta == 2.0 else "mu"
    supported = SOLVERS[solver]
    if supported is not None and beta not in supported:
        raise ValueError(
            f"solver={solver!r} minimises the Frobenius loss only, but the loss has "
            f"β={beta:g}. Use solver='mu' (multiplicative updates) for the "
            "Kullback-Leibler and other β-divergences, or loss='frobenius'."
        )
    return solver


def check_rank(n_components, shape=None):
    """Check that ``n_components`` is a positive integer.

    Parameters
    ----------
    n_components : int
        Requested number of components.
    shape : tuple of int, optional
        Unused by the check itself; kept for messages that name the data size.

    Returns
    -------
    int

    Examples
    --------
    >>> check_rank(3)
    3
    """
    if (
        isinstance(n_components, bool)
        or not isinstance(n_components, numbers.Integral)
        or n_components < 1
    ):
        size = f" for data of shape {shape}" if shape is not None else ""
        raise ValueError(
            f"The number of components must be an integer ≥ 1{size}, "
            f"got {n_components!r}."
        )
    return int(n_components)


#: Initialization names of the flat solvers (a ``(W, H)`` tuple is accepted too).
INIT_METHODS = ("nndsvd", "nndsvda", "nndsvdar", "spa", "random")


def check_init(init):
    """Raise ``ValueError`` unless ``init`` names a method or is a ``(W, H)`` tuple.

    Examples
    --------
    >>> check_init("spa")
    """
    if isinstance(init, tuple) or (isinstance(init, str) and init in INIT_METHODS):
        return
    raise ValueError(
        f"Unknown init {init!r}. Valid values are "
        f"{', '.join(repr(name) for name in INIT_METHODS)}, or a tuple (W, H) "
        "of initial arrays."
    )


def check_count(value, name, minimum):
    """Check that the option ``name`` is an integer ≥ ``minimum``; return it as ``int``.

    Examples
    --------
    >>> check_count(3, "max_iter", 1)
    3
    >>> check_count(0, "max_iter", 1)
    Traceback (most recent call last):
    ...
    ValueError: max_iter must be an integer ≥ 1, got 0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return int(value)


def check_random_state(random_state):
    """Check a seed: what :func:`numpy.random.default_rng` takes, or a ``RandomState``.

    None, an integer ≥ 0, a sequence of them, a ``SeedSequence``, a bit
    generator, a ``Generator`` or a ``RandomState``.

    Examples
    --------
    >>> check_random_state(3), check_random_state(None)
    (3, None)
    >>> check_random_state("a")
    Traceback (most recent call last):
    ...
    ValueError: random_state must be None, an integer ≥ 0, a numpy.random.Generator or a numpy.random.RandomState, got 'a'.
    """
    if random_state is None or isinstance(random_state, (
            np.random.Generator, np.random.RandomState, np.random.SeedSequence,
            np.random.BitGenerator)):
        return random_state

    def seed(value):
        return (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                and value >= 0)

    if seed(random_state):
        return int(random_state)
    if isinstance(random_state, (list, tuple)) and random_state and all(map(seed, random_state)):
        return random_state
    raise ValueError(
        "random_state must be None, an integer ≥ 0, a numpy.random.Generator or a "
        f"numpy.random.RandomState, got {random_state!r}.")


def check_tol(tol):
    """Check that ``tol`` is a real number ≥ 0; return it as ``float``.

    Examples
    --------
    >>> check_tol(1e-4)
    0.0001
    >>> check_tol(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: tol must be a real number ≥ 0, got -1.0.
    """
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a real number ≥ 0, got {tol!r}.")
    return float(tol)


def check_flag(value, name):
    """Check that the option ``name`` is ``True`` or ``False``; return it as ``bool``.

    Examples
    --------
    >>> check_flag(True, "fine_tune")
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_layer_ranks(ranks):
    """Check the ranks of a multi-layer fit: integers ≥ 1, strictly decreasing.

    Parameters
    ----------
    ranks : sequence of int
        Number of components per level, finest first.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> check_layer_ranks([12, 6, 3])
    (12, 6, 3)
    """
    if isinstance(ranks, (str, bytes)) or not hasattr(ranks, "__len__"):
        raise ValueError(
            f"ranks must be a sequence of integers, finest first (e.g. [12, 6, 3]), "
            f"got {ranks!r}."
        )
    ranks = list(ranks)
    if not ranks:
        raise ValueError("ranks is empty: give at least one rank, e.g. [12, 6, 3].")
    for position, rank in enumerate(ranks):
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
            raise ValueError(
                f"ranks must be a sequence of integers, but ranks[{position}] is "
                f"{rank!r}."
            )
        if rank < 1:
            raise ValueError(
                f"Every rank must be ≥ 1, but ranks[{position}] is {rank}."
            )
    for position in range(1, len(ranks)):
        if ranks[position] >= ranks[position - 1]:
            raise ValueError(
                "ranks must be strictly decreasing (finest level first), but "
                f"ranks[{position - 1}]={ranks[position - 1]} is not larger than "
                f"ranks[{position}]={ranks[position]}."
            )
    return tuple(int(rank) for rank in ranks)


def check_layer_weights(layer_weights, n_levels):
    """The weights λ of a multi-layer fine-tuning, one per level (``None``: the deepest only).

    Returns
    -------
    ndarray of float64, shape (n_levels,)

    Examples
    --------
    >>> check_layer_weights(None, 3)
    array([0., 0., 1.])
    """
    if layer_weights is None:
        weights = np.zeros(n_levels)
        weights[-1] = 1.0
        return weights
    try:
        weights = np.asarray(layer_weights, dtype=np.float64)
    except (TypeError, ValueError):
        weights = None
    if weights is None or weights.ndim != 1:
        raise ValueError(
            f"layer_weights must be a sequence of {n_levels} nonnegative numbers "
            f"(one per level), got {layer_weights!r}."
        )
    if weights.size != n_levels:
        raise ValueError(
            f"layer_weights has {weights.size} entries, but there are {n_levels} "
            "levels: give one weight per rank."
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            f"layer_weights must be finite and ≥ 0, got {weights.tolist()}."
        )
    if not np.any(weights > 0):
        raise ValueError(
            "layer_weights are all zero: at least one level must be weighted "
            "(the default weights only the deepest level)."
        )
    return weights


def check_level(level, n_levels):
    """Check a level of a multi-layer result: 1 (finest) to ``n_levels`` (coarsest).

    Examples
    --------
    >>> check_level(2, 3)
    2
    """
    if (
        isinstance(level, bool)
        or not isinstance(level, numbers.Integral)
        or not 1 <= level <= n_levels
    ):
        raise ValueError(
            f"level must be an integer from 1 (finest) to {n_levels} "
            f"(coarsest), got {level!r}."
        )
    return int(level)


def check_n_leaves(n_leaves, n_rows):
    """Check the number of leaves of a splitting tree: 1 to the number of rows.

    Examples
    --------
    >>> check_n_leaves(4, 100)
    4
    """
    if (isinstance(n_leaves, bool) or not isinstance(n_leaves, numbers.Integral)
            or not 1 <= n_leaves <= n_rows):
        raise ValueError(
            f"n_leaves must be an integer between 1 and {n_rows} (the number of rows of X, "
            f"{n_rows}), got {n_leaves!r}.")
    return int(n_leaves)


def check_score_threshold(score_threshold):
    """Check a tree's split-score threshold: a finite number or ``None``.

    Examples
    --------
    >>> check_score_threshold(0.1), check_score_threshold(None)
    (0.1, None)
    """
    if score_threshold is not None and (
        isinstance(score_threshold, bool) or not isinstance(score_threshold, numbers.Real)
        or not np.isfinite(score_threshold)
    ):
        raise ValueError(f"score_threshold must be a finite number or None, "
                         f"got {score_threshold!r}.")
    return score_threshold


def data_values(X):
    """Return the stored values of ``X`` (dense array or the nonzeros of sparse).

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix

    Returns
    -------
    ndarray
        A view, never a copy, for dense and CSR/CSC input.

    Examples
    --------
    >>> data_values(np.ones((2, 2))).shape
    (2, 2)
    """
    return X.data if sp.issparse(X) else X


def check_finite(X, name="X"):
    """Raise ``ValueError`` if ``X`` holds NaN or infinite values.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix
    name : str
        How to call the data in the message.

    Examples
    --------
    >>> check_finite(np.ones(3))
    """
    values = data_values(X)
    total = np.sum(values, dtype=np.float64)
    if np.isfinite(total):
        return
    n_nan = int(np.count_nonzero(np.isnan(values)))
    n_inf = int(np.count_nonzero(np.isinf(values)))
    if n_nan == 0 and n_inf == 0:
        return
    raise ValueError(
        f"{name} contains NaN or infinity ({n_nan} NaN, {n_inf} infinite values): "
        "NMF needs finite data. Replace them (e.g. with 0 or a local mean), or "
        "exclude the affected pixels with `navigation_mask`/`signal_mask`."
    )


def check_real(dtype, where="NMF"):
    """Raise ``ValueError`` for complex data, before any value is read.

    Parameters
    ----------
    dtype : numpy dtype
        The data's dtype (of a NumPy or dask array).
    where : str
        The caller, for the message.

    Examples
    --------
    >>> check_real(np.float32)
    >>> check_real(np.complex64)
    Traceback (most recent call last):
    ...
    ValueError: Complex data not supported by NMF: the data are complex64, ...
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported by {where}: the data are {dtype}, NMF needs "
            "real, nonnegative data, and a cast would silently drop the imaginary part. Take "
            "the modulus or the intensity first (e.g. abs(s) or abs(s)**2 for a signal, "
            "np.abs(X) for an array)."
        )


#: Data are fitted in a floating type where ``max(X)² · n · m`` stays below this
#: fraction of the type's largest value (``‖X‖²`` and the products of the data
#: with factors of its own size cannot overflow) and ``max(X)²`` above the
#: inverse fraction of its smallest normal value (they do not underflow).
_HEADROOM = 1e-4


def _in_range(dtype, maximum, size):
    info = np.finfo(dtype)
    square = float(maximum) * float(maximum)
    return square * size <= _HEADROOM * float(info.max) and square >= float(info.tiny) / _HEADROOM


def overflow_safe_dtype(dtype, maximum, shape):
    """The floating type in which data of ``dtype`` and range ``maximum`` can be fitted.

    float32 data whose squared norm could overflow float32 (``maximum² · n · m``
    above 1e-4 of float32's largest value: a maximum of 3e19, or about 3e12
    for a 256 × 256 scan of 256 × 256 patterns) or whose squares underflow
    (a maximum below about 1e-17) are fitted in float64; the factors are then
    float64. float64 data out of float64's range (e.g. a maximum of 1e160)
    are refused: no floating type holds their products.

    Parameters
    ----------
    dtype : numpy dtype
        The floating type the data would be fitted in.
    maximum : float
        Largest absolute value of the data (0 or non-finite: no change; those
        data are refused elsewhere with their own message).
    shape : tuple of int
        ``(n, m)``.

    Returns
    -------
    numpy dtype

    Raises
    ------
    ValueError
        For float64 data whose products overflow or whose squares underflow.

    Examples
    --------
    >>> overflow_safe_dtype(np.float32, 3e19, (64, 40))
    dtype('float64')
    >>> overflow_safe_dtype(np.float32, 1e4, (64, 40))
    dtype('float32')
    >>> overflow_safe_dtype(np.float64, 1e160, (64, 40))
    Traceback (most recent call last):
    ...
    ValueError: The data reach 1e+160: ...
    """
    dtype = np.dtype(dtype)
    maximum = float(maximum)
    if dtype.kind != "f" or not np.isfinite(maximum) or maximum <= 0:
        return dtype
    size = float(shape[0]) * float(shape[1])
    if _in_range(dtype, maximum, size):
        return dtype
    if dtype == np.float32 and _in_range(np.float64, maximum, size):
        return np.dtype(np.float64)
    raise ValueError(
        f"The data reach {maximum:.3g}: the products NMF computes (squares summed over "
        f"{int(size)} values) {'overflow' if maximum > 1 else 'underflow'} even in float64, "
        "and the fit would end in NaN or zeros. Rescale the data first, e.g. "
        "s.data / s.data.max() (or X / X.max()); the components are the same up to that "
        "scale.")


def promotion_warning(maximum):
    """The message of the float32 → float64 promotion (see :func:`overflow_safe_dtype`).

    Examples
    --------
    >>> promotion_warning(3e19)[:32]
    'The float32 data reach 3e+19: th'
    """
    kind = "overflow" if float(maximum) > 1 else "underflow"
    return (f"The float32 data reach {float(maximum):.3g}: their products would {kind} "
            "float32, so the fit runs in float64 and the factors are float64. Rescale the "
            "data (e.g. s.data / s.data.max()) to fit in float32.")


#: Callers (the ``where`` of :func:`check_nonnegative`) that take ``clip_negative``;
#: the others are told to set negative values to zero themselves.
CLIP_NEGATIVE_CALLERS = ("HNMF.fit", "HNMF.transform", "decomposition(algorithm='hnmf')")


def check_nonnegative(X, name="X", where="NMF", clip_option=None):
    """Raise ``ValueError`` if ``X`` has negative entries, saying how many and what to do.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix
    name : str
        How to call the data in the message.
    where : str
        The caller, for the message (``"HNMF.fit"``, ...).
    clip_option : bool or None
        Whether the caller takes ``clip_negative=True`` (the message then
        advises it) or not (the message advises clipping the data first);
        None: whether ``where`` is one of :data:`CLIP_NEGATIVE_CALLERS`.

    Examples
    --------
    >>> check_nonnegative(np.zeros((2, 2)))
    >>> check_nonnegative(-np.ones((1, 2)), where="estimate_rank")
    Traceback (most recent call last):
    ...
    ValueError: Negative values in data passed to estimate_rank: ... set them to zero first, e.g. X = np.maximum(X, 0) ...
    """
    values = data_values(X)
    if values.size == 0:
        return
    minimum = values.min()
    if minimum >= 0:
        return
    count = int(np.count_nonzero(values < 0))
    if clip_option is None:
        clip_option = where in CLIP_NEGATIVE_CALLERS
    clip = ("pass clip_negative=True to set them to zero with a warning." if clip_option else
            "set them to zero first, e.g. X = np.maximum(X, 0) (for a signal: s.data = "
            "np.maximum(s.data, 0)).")
    raise ValueError(
        f"Negative values in data passed to {where}: {name} has {count} negative "
        f"entries (minimum {float(minimum):.6g}). NMF needs nonnegative data. "
        f"Add an offset (e.g. subtract the minimum, {-float(minimum):.6g}), or, if the "
        f"negative values are noise around zero (e.g. after background subtraction), {clip}"
    )


def check_zeros_for_beta(beta, has_zero):
    """Refuse zeros in the data for losses with β ≤ 0 (Itakura-Saito and below).

    Examples
    --------
    >>> check_zeros_for_beta(1.0, True)
    >>> check_zeros_for_beta(0.0, True)
    Traceback (most recent call last):
    ...
    ValueError: The loss with β=0 is undefined where the data are zero, ...
    """
    if beta <= 0 and has_zero:
        raise ValueError(
            f"The loss with β={beta:g} is undefined where the data are zero, and "
            "X contains zeros. Add a small positive offset to X, or use the "
            "Kullback-Leibler or Frobenius loss."
        )


def check_not_all_zero(X, name="X"):
    """Raise ``ValueError`` if every entry of ``X`` is zero.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix
    name : str
        How to call the data in the message.

    Examples
    --------
    >>> check_not_all_zero(np.eye(2))
    """
    values = data_values(X)
    if values.size and values.max() > 0:
        return
    raise ValueError(
        f"{name} is all zeros: there is nothing to factorize. Check that the data "
        "were loaded correctly and that the masks do not exclude every nonzero pixel."
    )


def check_factor(array, shape, name, dtype):
    """Validate a user-supplied factor and return it as a writable array.

    Parameters
    ----------
    array : array-like
        The user's factor.
    shape : tuple of int
        Expected shape.
    name : str
        Name used in messages (``"W"``, ``"H"``).
    dtype : numpy dtype
        dtype of the data, which the factor takes.

    Returns
    -------
    ndarray
        A C-contiguous copy of the factor, of ``dtype``.

    Examples
    --------
    >>> check_factor([[1, 2]], (1, 2), "H", np.float32).dtype
    dtype('float32')
    """
    factor = np.array(array, dtype=dtype, order="C", copy=True)
    if factor.shape != tuple(shape):
        raise ValueError(
            f"The initial {name} has shape {factor.shape}, but the data need "
            f"shape {tuple(shape)}."
        )
    if not np.all(np.isfinite(factor)):
        raise ValueError(f"The initial {name} contains NaN or infinite values.")
    if factor.min(initial=0) < 0:
        raise ValueError(f"The initial {name} has negative entries; NMF factors are ≥ 0.")
    return factor


def check_init_factor(factor, name):
    """Refuse a user-supplied initial factor that is all zero or rank-deficient.

    Multiplicative updates never move an entry away from zero, and a
    component whose map or pattern starts at zero, or that repeats a
    combination of the others, cannot become a component of its own: the
    fit would end with zero or duplicate factors.

    Parameters
    ----------
    factor : ndarray
        ``W`` (n × k, one column per component) or ``H`` (k × m, one row per
        component), already checked by :func:`check_factor`.
    name : {"W", "H"}

    Examples
    --------
    >>> check_init_factor(np.eye(2), "W")
    >>> check_init_factor(np.zeros((3, 2)), "W")
    Traceback (most recent call last):
    ...
    ValueError: The initial W is all zeros: ...
    """
    rows = factor.T if name == "W" else factor  # one row per component
    what = "map (column of W)" if name == "W" else "pattern (row of H)"
    if not np.any(rows):
        raise ValueError(
            f"The initial {name} is all zeros: the updates cannot move it away from zero, "
            "so the fit would end with zero factors. Give an initial "
            f"{name} with positive entries, or pass None in its place to compute it from "
            "the other factor.")
    zero = np.flatnonzero(~np.any(rows, axis=1))
    if zero.size:
        raise ValueError(
            f"The initial {name} is rank-deficient: the {what} of component(s) "
            f"{zero.tolist()} is all zeros, and it would stay zero. Give every component "
            "positive entries, or ask for fewer components.")
    k = rows.shape[0]
    # Singular values below the rounding of the factor's own dtype are zero.
    singular = np.linalg.svd(rows.astype(np.float64), compute_uv=False)
    eps = np.finfo(factor.dtype if factor.dtype.kind == "f" else np.float64).eps
    rank = int(np.count_nonzero(singular > singular[0] * max(rows.shape) * eps))
    if rank < k:
        raise ValueError(
            f"The initial {name} is rank-deficient: its {k} components span only {rank} "
            f"dimension(s) (some are equal or combinations of the others), so they cannot "
            "separate into distinct components. Give linearly independent components, "
            "e.g. perturb them or use init='nndsvda'.")


#: Largest false-alarm rate accepted (beyond it the "outliers" are the data).
MAX_FALSE_ALARM = 0.01


def check_outliers(value):
    """Validate the ``outliers`` option: ``None``, ``"auto"`` or a false-alarm rate.

    Parameters
    ----------
    value : None, "auto" or float
        ``None``: no outlier handling. ``"auto"``: false-alarm rate
        ``1 / (number of entries)``. A float in ``(0, 0.01]``: the
        false-alarm rate per entry.

    Returns
    -------
    None, "auto" or float

    Raises
    ------
    ValueError
        For anything else, with what is accepted.

    Examples
    --------
    >>> check_outliers("auto"), check_outliers(1e-6)
    ('auto', 1e-06)
    >>> check_outliers(0.5)
    Traceback (most recent call last):
    ...
    ValueError: `outliers` must be None (off), 'auto' or a false-alarm rate per entry in (0, 0.01], got 0.5. ...
    """
    if value is None or (isinstance(value, str) and value.lower() == "auto"):
        return None if value is None else "auto"
    if (not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.number))
            and 0 < float(value) <= MAX_FALSE_ALARM):
        return float(value)
    raise ValueError(
        f"`outliers` must be None (off), 'auto' or a false-alarm rate per entry in "
        f"(0, {MAX_FALSE_ALARM}], got {value!r}. E.g. outliers='auto' (about one false "
        "alarm per dataset) or outliers=1e-6.")
