"""Stability of one decomposition and its consensus components."""

import numpy as np

from .. import _ports, solvers
from ._data import signal_matrix


class Stability:
    """Per-component stability of a rank and its consensus decomposition.

    Clusters are ordered by decreasing mean total intensity (the package's
    canonical component order).

    Attributes
    ----------
    rank : int
    components : ndarray, shape (rank, m)
        Consensus components: the mean of each cluster's members over the
        runs, in the data's units, each summing to 1.
    stability_index : ndarray, shape (rank,)
        ICASSO's Iq of each cluster (1: identical in every run and unlike
        the others; near 0: no more alike than unrelated components).
    silhouettes : ndarray, shape (rank,)
        Mean silhouette of each cluster.
    intensities : ndarray, shape (rank,)
        Mean total intensity of each cluster over the runs.
    n_restarts : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.poisson(rng.random((60, 3)) @ (rng.random((3, 40)) ** 4) * 50)
    >>> from hyperspy_hnmf.rank_selection import stability
    >>> st = stability(X.astype("float32"), 3, n_restarts=4)
    >>> st.components.shape, bool(st.silhouettes.min() > 0.5)
    ((3, 40), True)
    """

    def __init__(self, rank, components, stability_index, silhouettes, intensities,
                 n_restarts, settings):
        self.rank = rank
        self.components = components
        self.stability_index = stability_index
        self.silhouettes = silhouettes
        self.intensities = intensities
        self.n_restarts = n_restarts
        self.settings = dict(settings)

    @classmethod
    def from_scores(cls, scores, settings):
        """Build from the :class:`RankScores` of one rank."""
        intensities = scores.cluster_intensities()
        order = np.argsort(-intensities, kind="stable")
        return cls(scores.rank, scores.consensus_components()[order], scores.iq[order],
                   scores.silhouettes[order], intensities[order], len(scores.labels), settings)

    def __repr__(self):
        values = ", ".join(f"{v:.2f}" for v in self.stability_index)
        return f"<Stability k={self.rank}: Iq per component [{values}]>"

    def maps(self, s, **options):
        """Maps of the data on the consensus components (components fixed).

        Parameters
        ----------
        s : signal (in memory), array-like or sparse matrix, shape (n, m)
            ``m`` must be the number of signal pixels of the components.
            Lazy signals are refused (load them, or a region, first).
        **options
            ``loss``, ``solver``, ``max_iter``, ``tol`` of
            :func:`~hyperspy_hnmf.solvers.solve_loadings`.

        Returns
        -------
        ndarray, shape (n, rank)

        Raises
        ------
        ValueError
            For data whose number of signal pixels differs from the
            components'.
        NotImplementedError
            For lazy signals.

        Examples
        --------
        >>> X = np.random.default_rng(0).random((30, 20))
        >>> from hyperspy_hnmf.rank_selection import stability
        >>> stability(X, 2, n_restarts=3).maps(X).shape
        (30, 2)
        """
        X = signal_matrix(s, where="Stability.maps")
        self._check_width(X)
        return solvers.solve_loadings(X, self.components.astype(X.dtype), **options)

    def _check_width(self, X):
        if X.shape[1] != self.components.shape[1]:
            raise ValueError(
                f"The data have {X.shape[1]} signal pixels, but the consensus components "
                f"have {self.components.shape[1]}: give the signal (or matrix) the "
                "stability was estimated on, or one of the same signal shape.")

    def to_learning_results(self, s, **options):
        """Write the consensus decomposition to ``s.learning_results``.

        ``factors`` are the consensus components, ``loadings`` their maps
        (:meth:`maps`), ``decomposition_algorithm`` is ``"hnmf_consensus"`` and
        ``learning_results.hnmf["stability"]`` holds the stability index,
        silhouettes and settings. Everything is computed before anything is
        written: if it fails, the previous results stay as they were. To keep
        them as well, ``s.learning_results.save("previous")`` first (or work
        on ``s.deepcopy()``).

        Parameters
        ----------
        s : hyperspy.signals.BaseSignal
            The signal the stability was estimated on (same shape), in
            memory: lazy signals are refused.
        **options
            Passed to :meth:`maps` (e.g. ``loss="kl"``).

        Raises
        ------
        TypeError
            For data that are not a HyperSpy signal.
        ValueError
            For a signal whose number of signal pixels differs from the
            components'.
        NotImplementedError
            For lazy signals.

        Examples
        --------
        >>> import hyperspy.api as hs
        >>> rng = np.random.default_rng(0)
        >>> s = hs.signals.Signal1D(rng.random((6, 5, 20)).astype("float32"))
        >>> from hyperspy_hnmf.rank_selection import stability
        >>> stability(s, 2, n_restarts=3).to_learning_results(s)
        >>> s.get_decomposition_factors().data.shape
        (2, 20)
        """
        if not hasattr(s, "learning_results"):
            raise TypeError(
                f"to_learning_results writes to a HyperSpy signal's learning_results, got "
                f"{type(s).__name__}; for an array, the maps are Stability.maps(X) and the "
                "components Stability.components.")
        X = signal_matrix(s, where="to_learning_results")
        self._check_width(X)
        loadings = self.maps(X, **options)
        factors = np.ascontiguousarray(self.components.T.astype(X.dtype))
        info = {
            "loss": str(options.get("loss", "frobenius")),
            "hierarchy": {"kind": "flat"},
            "stability": {
                "stability_index": np.asarray(self.stability_index, dtype=np.float64),
                "silhouettes": np.asarray(self.silhouettes, dtype=np.float64),
                "n_restarts": int(self.n_restarts),
                "perturbation": f"{self.settings.get('kind')}:{self.settings.get('level')}",
            },
        }
        _ports.store_decomposition(s, factors, loadings, "hnmf_consensus", info)
