"""The KL start: NNDSVDa's zeros filled with sqrt(mean / k) against the data mean.

Default KL fits (``HNMF(k, loss="kl", random_state=0)``) of synthetic 4D-STEM
counts, from the default start, and from the same Poisson-weighted NNDSVD with
its zeros filled with the data mean (Boutsidis & Gallopoulos' NNDSVDa, and
scikit-learn's; the start of every KL fit before 2026-12-02), given as
``init=(W, H)``. Mean map correlation with the planted maps (Hungarian
matching), final objective and iterations.

- ``96``: 96 × 96 scans, 48 × 48 detector, 9 settings (dose 200–40 000 counts
  per pattern, 2–4 phases, 5 seeds);
- ``small``: 32 × 32 scans, 24 × 24 and 32 × 32 detectors, doses 200, 2000 and
  20 000, 2 or 4 phases, 2 seeds (24 settings; ``max_iter=400``).

``--tol-study``: both starts, each with ``tol=1e-4`` (the default) and
``1e-5`` (``max_iter=400``), on the ``96`` set and on six 96 × 96 scans whose
phases mix rotations (``mixed_rotations=True``, 200 and 500 counts, 3 seeds):
map correlation and iterations of each.

Usage: python benchmarks/bench_kl_start.py [--set 96|small|both] [--tol-study]
"""

import argparse
import itertools
import os
import time
import warnings

import numpy as np

from hyperspy_hnmf import HNMF
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_4dstem
from hyperspy_hnmf.solvers._init import _FILLS, _nndsvd, _poisson_weighted
from hyperspy_hnmf.solvers._linalg import as_generator

SETS = {
    "96": [((96, 96), (48, 48), dose, phases, seed, 200) for dose, seed, phases in
           [(200, 0, 2), (3000, 0, 2), (40000, 0, 2), (3000, 1, 4), (3000, 2, 4),
            (40000, 2, 4), (1000, 3, 3), (10000, 3, 3), (500, 4, 4)]],
    "small": [((32, 32), detector, dose, phases, seed, 400) for detector, dose, phases, seed in
              itertools.product([(24, 24), (32, 32)], [200, 2000, 20000], [2, 4], [5, 6])],
}


def mean_fill_start(X, k, random_state):
    """The Poisson-weighted NNDSVD start with its zeros filled with the data mean."""
    scaled, a, b = _poisson_weighted(X)
    W, H = _nndsvd(scaled, k, as_generator(random_state), _FILLS["nndsvda"])
    return (W * a[:, None]).astype(X.dtype), (H * b[None, :]).astype(X.dtype)


def fit(X, truth, k, max_iter, init):
    model = HNMF(k, loss="kl", random_state=0, max_iter=max_iter, init=init)
    start = time.perf_counter()
    W = model.fit_transform(X)
    seconds = time.perf_counter() - start
    r = score_decomposition(model.components_.T, W, truth.factors,
                            truth.loadings).mean_map_correlation
    return r, float(model.objective_history_[-1]), model.n_iter_, seconds


def main(names):
    warnings.filterwarnings("ignore")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for name in names:
        print(f"\nset {name}\n")
        print("| scan | detector | dose | phases | seed | k | map r: mean fill | map r: now | "
              "objective now / mean fill | iterations: mean fill → now |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        rows = []
        for scan, detector, dose, phases, seed, max_iter in SETS[name]:
            s = synthetic_4dstem(scan_shape=scan, detector_shape=detector, dose=dose,
                                 n_phases=phases, random_state=seed)
            truth = get_ground_truth(s)
            k = truth.factors.shape[1]
            X = np.ascontiguousarray(s.data.reshape(scan[0] * scan[1], -1), dtype=np.float32)
            before = fit(X, truth, k, max_iter, mean_fill_start(X, k, 0))
            now = fit(X, truth, k, max_iter, "nndsvda")
            rows.append((before, now))
            print(f"| {scan[0]}×{scan[1]} | {detector[0]}×{detector[1]} | {dose} | {phases} | "
                  f"{seed} | {k} | {before[0]:.3f} | {now[0]:.3f} | {now[1] / before[1]:.3f} | "
                  f"{before[2]} → {now[2]} |")
        r_before = np.mean([b[0] for b, _ in rows])
        r_now = np.mean([n[0] for _, n in rows])
        iters = np.mean([b[2] for b, _ in rows]) / np.mean([n[2] for _, n in rows])
        print(f"\nmean map r {r_before:.3f} → {r_now:.3f}; below 0.95: "
              f"{sum(b[0] < 0.95 for b, _ in rows)} → {sum(n[0] < 0.95 for _, n in rows)} of "
              f"{len(rows)}; {iters:.1f}× fewer iterations")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def tol_study():
    warnings.filterwarnings("ignore")
    print(f"load average at start: {os.getloadavg()[0]:.2f}\n")
    cases = [dict(scan_shape=scan, detector_shape=detector, dose=dose, n_phases=phases,
                  random_state=seed) for scan, detector, dose, phases, seed, _ in SETS["96"]]
    cases += [dict(scan_shape=(96, 96), detector_shape=(48, 48), dose=dose,
                   mixed_rotations=True, random_state=seed)
              for dose in (200, 500) for seed in (0, 1, 2)]
    runs = [(start, tol) for start in ("mean fill", "now") for tol in (1e-4, 1e-5)]
    print("| data | dose | seed | k | " + " | ".join(f"{a}, tol {t:g}: map r (iterations)"
                                                  for a, t in runs) + " |")
    print("| --- | ---: | ---: | ---: |" + " ---: |" * len(runs))
    results = {run: [] for run in runs}
    for case in cases:
        s = synthetic_4dstem(**case)
        truth = get_ground_truth(s)
        k = truth.factors.shape[1]
        X = np.ascontiguousarray(s.data.reshape(-1, s.data[0, 0].size), dtype=np.float32)
        cells = []
        for start, tol in runs:
            init = mean_fill_start(X, k, 0) if start == "mean fill" else "nndsvda"
            model = HNMF(k, loss="kl", random_state=0, max_iter=400, tol=tol, init=init)
            W = model.fit_transform(X)
            r = score_decomposition(model.components_.T, W, truth.factors,
                                    truth.loadings).mean_map_correlation
            results[(start, tol)].append((r, model.n_iter_))
            cells.append(f"{r:.3f} ({model.n_iter_})")
        data = ("mixed rotations" if case.get("mixed_rotations")
                else f"{case['n_phases']} phases")
        print(f"| {data} | {case['dose']} | {case['random_state']} | {k} | "
              + " | ".join(cells) + " |")
    print("\n| start | tol | mean map r | worst map r | mean iterations |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for (start, tol), values in results.items():
        r = [v[0] for v in values]
        print(f"| {start} | {tol:g} | {np.mean(r):.3f} | {min(r):.3f} | "
              f"{np.mean([v[1] for v in values]):.1f} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="both", choices=["96", "small", "both"])
    parser.add_argument("--tol-study", action="store_true")
    args = parser.parse_args()
    if args.tol_study:
        tol_study()
    else:
        main(["96", "small"] if args.set == "both" else [args.set])
