"""Rank selection on synthetic 4D-STEM data with a known number of components.

Prints three tables:

1. the 9 cases (3 settings of k and dose x 3 seeds), 64x64 scan x 64x64
   detector, ranks 2-12 x 10 restarts: true k, recommended k, knee, and the
   wall time of each (the 2-minute target applies to each case);
2. Iq of the true and the spurious component clusters when k is
   overestimated (k_true + 2), two ways: (a) clusters matched one-to-one to
   the ground truth by the Hungarian algorithm (cosine similarity of the
   patterns) against the rest; (b) clusters that are the only match of their
   true component against clusters sharing one (the parts of a true
   component that the extra ranks split, typically the halo);
3. the total time.

Settings: the defaults of ``estimate_rank`` (Frobenius HALS on the
Poisson-normalized data compressed to rank 22 by a randomized range finder,
best of 3 random starts per run, max_iter 200, tol 1e-4 of the decrease so
far, uniform 3 % perturbation, all CPU cores as threads).

Run: ``python benchmarks/bench_rank.py`` (about 2-4 minutes on 2 cores).
"""

import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem
from hyperspy_hnmf.rank_selection import estimate_rank

SETTINGS = [  # (n_phases, n_rotations, dose)
    (1, 2, 500.0),
    (2, 2, 200.0),
    (3, 2, 1000.0),
]
SEEDS = [0, 1, 2]
RANKS = range(2, 13)


def _similarity(scores, truth_factors):
    H = scores.consensus_components()
    T = truth_factors.T / np.linalg.norm(truth_factors.T, axis=1, keepdims=True)
    return (H / np.linalg.norm(H, axis=1, keepdims=True)) @ T.T


def iq_hungarian(scores, truth_factors):
    """Iq of the clusters matched one-to-one to the truth (Hungarian) vs the rest."""
    rows, _ = linear_sum_assignment(-_similarity(scores, truth_factors))
    true = np.zeros(scores.rank, dtype=bool)
    true[rows] = True
    return scores.iq[true], scores.iq[~true]


def iq_unique(scores, truth_factors, names):
    """Iq of the clusters that are the only match of their true component vs
    the clusters that share a true component (a true component split in parts)."""
    best = _similarity(scores, truth_factors).argmax(axis=1)
    counts = np.bincount(best, minlength=truth_factors.shape[1])
    unique = counts[best] == 1
    split = sorted({names[j] for j in best[~unique]})
    return scores.iq[unique], scores.iq[~unique], split


def main():
    lines = ["| setting (phases x rotations, dose) | seed | true k | recommended | knee | "
             "min silhouette at true k | time (s) |", "|---|---|---|---|---|---|---|"]
    iq_lines = ["| setting | seed | k fitted | Hungarian: Iq true min / mean | Iq rest max / mean "
                "| true > rest | one-to-one: Iq min | Iq of split parts max | split component "
                "| one-to-one > split |", "|---|---|---|---|---|---|---|---|---|---|"]
    hits, times, iq_ok, iq_unique_ok = 0, [], 0, 0
    start = time.perf_counter()
    for n_phases, n_rotations, dose in SETTINGS:
        for seed in SEEDS:
            s = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(64, 64),
                                 n_phases=n_phases, n_rotations=n_rotations, dose=dose,
                                 random_state=seed)
            truth = get_ground_truth(s)
            k = truth.n_components
            t0 = time.perf_counter()
            result = estimate_rank(s, ranks=RANKS, n_restarts=10, random_state=seed)
            elapsed = time.perf_counter() - t0
            times.append(elapsed)
            hits += result.rank == k
            label = f"{n_phases} x {n_rotations}, {dose:g}"
            lines.append(f"| {label} | {seed} | {k} | {result.rank} | {result.knee_rank} | "
                         f"{result[k].silhouettes.min():.2f} | {elapsed:.1f} |")
            true_iq, spurious_iq = iq_hungarian(result[k + 2], truth.factors)
            ok = true_iq.min() > spurious_iq.max()
            iq_ok += ok
            unique_iq, split_iq, split = iq_unique(result[k + 2], truth.factors, truth.names)
            ok_unique = split_iq.size == 0 or unique_iq.min() > split_iq.max()
            iq_unique_ok += ok_unique
            iq_lines.append(f"| {label} | {seed} | {k + 2} | {true_iq.min():.2f} / "
                            f"{true_iq.mean():.2f} | {spurious_iq.max():.2f} / "
                            f"{spurious_iq.mean():.2f} | {'yes' if ok else 'no'} | "
                            f"{unique_iq.min():.2f} | "
                            f"{split_iq.max() if split_iq.size else float('nan'):.2f} | "
                            f"{', '.join(split) or '-'} | {'yes' if ok_unique else 'no'} |")
            print(lines[-1], flush=True)
    print("\n## Recommended rank vs truth "
          "(ranks 2-12 x 10 restarts, 64x64 scan x 64x64 detector)\n")
    print("\n".join(lines))
    print(f"\ncorrect: {hits} / {len(times)}")
    print("\n## Iq when k is overestimated (k_true + 2)\n")
    print("\n".join(iq_lines))
    print(f"\nHungarian-matched clusters all above the rest: {iq_ok} / {len(times)}")
    print(f"one-to-one clusters all above the parts of split components: {iq_unique_ok} / "
          f"{len(times)}")
    print(f"\n## Time\n\nper case: min {min(times):.1f} s, median {np.median(times):.1f} s, "
          f"max {max(times):.1f} s (target < 120 s); total {time.perf_counter() - start:.0f} s")
    s = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(64, 64), n_phases=3,
                         n_rotations=2, dose=1000.0, random_state=0)
    print("\n| threads (n_jobs) | time (s) | recommended |\n|---|---|---|")
    for n_jobs in (1, None):
        t0 = time.perf_counter()
        result = estimate_rank(s, ranks=RANKS, n_restarts=10, n_jobs=n_jobs)
        print(f"| {n_jobs or 'all cores'} | {time.perf_counter() - t0:.1f} | {result.rank} |")


if __name__ == "__main__":
    main()
