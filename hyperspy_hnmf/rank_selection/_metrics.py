"""Scores of an ensemble of NMF runs: component clusters, silhouettes, Iq,
consensus matrices and their cophenetic correlation, and the knee of a curve."""

import numpy as np
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform

__all__ = [
    "match_restart_components",
    "cluster_silhouettes",
    "cophenetic_correlation",
    "consensus_matrix",
    "information_criterion",
    "iq_index",
    "knee",
]

_MAX_CLUSTER_ITER = 50


def _unit_rows(H):
    H = np.asarray(H, dtype=np.float64)
    norms = np.linalg.norm(H, axis=1, keepdims=True)
    return H / np.where(norms > 0, norms, 1.0)


def match_restart_components(components):
    """Cluster the components of several runs of the same rank (NMFk).

    Every run contributes exactly one member to every cluster: the runs'
    components are matched to the centroids by the Hungarian algorithm
    (largest total cosine similarity), the centroids are updated as the
    normalized means of their members, until the assignment stops changing.
    The first run gives the initial centroids.

    Parameters
    ----------
    components : ndarray, shape (n_runs, k, m)
        Components (rows) of each run.

    Returns
    -------
    labels : ndarray of int64, shape (n_runs, k)
        Cluster of every component of every run; each row is a permutation
        of ``0..k-1``.
    centroids : ndarray, shape (k, m)
        Unit-norm (L2) cluster centroids.

    Examples
    --------
    >>> runs = np.array([[[1.0, 0, 0], [0, 1, 0]], [[0, 1, 0.1], [1, 0.1, 0]]])
    >>> labels, centroids = match_restart_components(runs)
    >>> labels.tolist()
    [[0, 1], [1, 0]]
    """
    runs = np.asarray(components, dtype=np.float64)
    n_runs, k, _ = runs.shape
    units = np.stack([_unit_rows(H) for H in runs])
    centroids = units[0].copy()
    labels = np.tile(np.arange(k), (n_runs, 1))
    for iteration in range(_MAX_CLUSTER_ITER):
        new = np.empty_like(labels)
        for r in range(n_runs):
            rows, cols = linear_sum_assignment(-(units[r] @ centroids.T))
            new[r, rows] = cols
        changed = iteration == 0 or not np.array_equal(new, labels)
        labels = new
        sums = np.zeros_like(centroids)
        for r in range(n_runs):
            sums[labels[r]] += units[r]
        centroids = _unit_rows(sums)
        if not changed:
            break
    return labels, centroids


def _flat(components, labels):
    units = np.concatenate([_unit_rows(H) for H in np.asarray(components)])
    return units, np.asarray(labels).ravel()


def cluster_silhouettes(components, labels):
    """Mean silhouette of every component cluster (cosine distance).

    Parameters
    ----------
    components : ndarray, shape (n_runs, k, m)
    labels : ndarray of int, shape (n_runs, k)
        From :func:`match_restart_components`.

    Returns
    -------
    ndarray, shape (k,)
        Mean silhouette of the members of each cluster, from -1 (members
        closer to another cluster) to 1 (tight, well separated). A rank of 1
        has no silhouette: ones are returned.

    Examples
    --------
    >>> runs = np.array([[[1.0, 0], [0, 1]], [[0, 1.0], [1, 0.05]]])
    >>> labels, _ = match_restart_components(runs)
    >>> np.round(cluster_silhouettes(runs, labels), 2).tolist()
    [1.0, 1.0]
    """
    units, flat = _flat(components, labels)
    k = int(flat.max()) + 1
    if k == 1:
        return np.ones(1)
    distance = np.clip(1.0 - units @ units.T, 0.0, 2.0)
    members = np.stack([flat == c for c in range(k)])          # (k, N)
    sizes = members.sum(axis=1)
    mean_to = (distance @ members.T.astype(np.float64))        # (N, k) summed
    own = sizes[flat]
    a = mean_to[np.arange(flat.size), flat] / np.maximum(own - 1, 1)
    others = mean_to / sizes
    others[np.arange(flat.size), flat] = np.inf
    b = others.min(axis=1)
    s = np.where(np.maximum(a, b) > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    s[own == 1] = 0.0
    return np.array([s[flat == c].mean() for c in range(k)])


def iq_index(components, labels):
    """ICASSO's cluster quality index Iq for every component cluster.

    ``Iq = mean similarity within the cluster - mean similarity between its
    members and all other components``, with the cosine similarity of the
    components. 1 for a cluster of identical components unlike all others;
    near 0 for components that are no more alike than any two components.

    Parameters
    ----------
    components : ndarray, shape (n_runs, k, m)
    labels : ndarray of int, shape (n_runs, k)

    Returns
    -------
    ndarray, shape (k,)

    References
    ----------
    J. Himberg, A. Hyvärinen and F. Esposito, "Validating the independent
    components of neuroimaging time series via clustering and visualization",
    NeuroImage 22 (2004) 1214-1222.

    Examples
    --------
    >>> runs = np.array([[[1.0, 0], [0, 1]], [[0, 1.0], [1, 0]]])
    >>> labels, _ = match_restart_components(runs)
    >>> iq_index(runs, labels).tolist()
    [1.0, 1.0]
    """
    units, flat = _flat(components, labels)
    k = int(flat.max()) + 1
    similarity = units @ units.T
    iq = np.empty(k)
    for c in range(k):
        inside = flat == c
        within = similarity[np.ix_(inside, inside)]
        n_in = inside.sum()
        mean_within = ((within.sum() - np.trace(within)) / (n_in * (n_in - 1))
                       if n_in > 1 else 1.0)
        mean_between = similarity[np.ix_(inside, ~inside)].mean() if (~inside).any() else 0.0
        iq[c] = mean_within - mean_between
    return iq


def consensus_matrix(assignments):
    """Fraction of runs in which two samples share a cluster (Brunet et al.).

    Parameters
    ----------
    assignments : ndarray of int, shape (n_runs, n_samples)
        Cluster of every sample in every run (e.g. its largest NMF
        coefficient).

    Returns
    -------
    ndarray, shape (n_samples, n_samples)

    Examples
    --------
    >>> consensus_matrix(np.array([[0, 0, 1], [0, 1, 1]])).tolist()
    [[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]]
    """
    assignments = np.asarray(assignments)
    n_runs, n = assignments.shape
    C = np.zeros((n, n))
    for labels in assignments:
        onehot = np.zeros((n, int(labels.max()) + 1))
        onehot[np.arange(n), labels] = 1.0
        C += onehot @ onehot.T
    return C / n_runs


def cophenetic_correlation(consensus):
    """Cophenetic correlation of a consensus matrix (Brunet et al., 2004).

    The correlation between the distances ``1 - C`` and the cophenetic
    distances of their average-linkage dendrogram: 1 when the runs always
    agree, lower when the clustering is unstable. NaN when all distances are
    equal (nothing to correlate).

    Parameters
    ----------
    consensus : ndarray, shape (n, n)

    Returns
    -------
    float

    References
    ----------
    J.-P. Brunet, P. Tamayo, T. R. Golub and J. P. Mesirov, "Metagenes and
    molecular pattern discovery using matrix factorization", PNAS 101 (2004)
    4164-4169.

    Examples
    --------
    >>> C = consensus_matrix(np.array([[0, 0, 1, 1], [0, 0, 1, 1]]))
    >>> round(cophenetic_correlation(C), 6)
    1.0
    """
    distance = squareform(1.0 - np.asarray(consensus, dtype=np.float64), checks=False)
    if distance.size < 2 or np.ptp(distance) == 0:
        return float("nan")
    coefficient, _ = cophenet(linkage(distance, method="average"), distance)
    return float(coefficient)


def knee(x, y):
    """Knee of a decreasing curve: the point farthest below its chord.

    Both axes are scaled to [0, 1] first (the Kneedle normalization of
    Satopää et al., 2011), so the result does not depend on units; the knee
    is the point of largest vertical distance below the straight line from
    the first to the last point.

    Parameters
    ----------
    x : array-like, increasing
    y : array-like, decreasing overall

    Returns
    -------
    index : int
        Position of the knee in ``x``; 0 for fewer than three points or a
        straight line.

    Examples
    --------
    >>> knee([1, 2, 3, 4, 5, 6], [10, 5, 1, 0.9, 0.8, 0.7])
    2
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 3 or np.ptp(y) == 0:
        return 0
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y.min()) / np.ptp(y)
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    gap = chord - yn
    index = int(np.argmax(gap))
    return index if gap[index] > 1e-12 else 0


def information_criterion(ranks, errors, shape, loss="frobenius"):
    """Akaike's information criterion of the best fit of every rank (NMFk).

    A rank-``k`` NMF of an ``n × m`` matrix has ``k (n + m)`` free
    parameters. With Gaussian noise of unknown variance (Frobenius loss; the
    Poisson-normalized data of :func:`estimate_rank` are close to it),
    ``AIC = n m ln(RSS / (n m)) + 2 k (n + m)`` with ``RSS = ε² ||Y||²`` for
    the relative error ``ε``; with Poisson noise (KL loss, ``errors`` the KL
    divergences), ``AIC = 2 D_KL + 2 k (n + m)``. One more component lowers
    the AIC only if it lowers the residual by more than two noise variances
    per parameter: more than the largest singular value² of the noise
    (``(√n + √m)² σ² ≤ 2 (n + m) σ²``) that an extra component fitted to
    noise captures.

    Parameters
    ----------
    ranks : array-like of int
    errors : array-like of float
        Relative errors ``||Y - WH|| / ||Y||`` (Frobenius) or KL divergences.
    shape : tuple of int
        ``(n, m)`` of the data.
    loss : {"frobenius", "kl"}

    Returns
    -------
    ndarray
        AIC per rank, up to a constant (only differences are meaningful).

    References
    ----------
    B. S. Alexandrov and V. V. Vesselinov, "Blind source separation for
    groundwater pressure analysis based on nonnegative matrix factorization",
    Water Resour. Res. 50 (2014) 7332-7347.

    Examples
    --------
    >>> aic = information_criterion([1, 2, 3], [0.5, 0.2, 0.199], (100, 50))
    >>> int(np.argmin(aic))
    1
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    n, m = shape
    penalty = 2.0 * ranks * (n + m)
    if loss == "kl":
        return 2.0 * errors + penalty
    return n * m * np.log(np.maximum(errors, 1e-300) ** 2) + penalty
