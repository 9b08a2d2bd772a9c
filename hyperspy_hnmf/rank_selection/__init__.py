"""Choosing the number of NMF components, and how far to trust them.

:func:`estimate_rank` runs NMF many times per candidate rank, from random
starts on perturbed copies of the data, and scores each rank by the knee of
the error curve, the silhouette of the components clustered across runs
(NMFk), ICASSO's Iq index of each cluster and the cophenetic correlation of
the consensus matrix (Brunet et al.). :func:`stability` scores one rank and
gives its consensus components, which :meth:`Stability.to_learning_results`
writes to a signal. :func:`hnmfk` (in :mod:`hyperspy_hnmf.hierarchy`) applies
the criterion recursively.
"""

from ._estimate import RankEstimate, RankScores, estimate_rank, stability
from ._stability import Stability
from ._metrics import (
    match_restart_components,
    cluster_silhouettes,
    consensus_matrix,
    cophenetic_correlation,
    information_criterion,
    iq_index,
    knee,
)

__all__ = [
    "RankEstimate",
    "RankScores",
    "Stability",
    "match_restart_components",
    "cluster_silhouettes",
    "consensus_matrix",
    "cophenetic_correlation",
    "estimate_rank",
    "information_criterion",
    "iq_index",
    "knee",
    "stability",
]
