"""Coverage of bootstrap intervals of hnmf maps on synthetic 4D-STEM with known truth.

Prints a markdown table: per component and method, the fraction of probe
positions whose true map value lies inside the nominal 90 % interval (all
positions, positions where the component is present, > 5 % of its maximum,
and where it is absent), the stability score, and the cost of the resamples as
a multiple of the reference fit measured in the same run. With ``--figure PATH``
it also draws the figure of docs/uncertainty.md.

The truth is put in the fit's normalisation: components sum to one and maps
hold the expected counts of each component (``get_ground_truth``), matched to
the fitted components by the Hungarian assignment on pattern correlation.

Usage: python benchmarks/bench_uncertainty.py [--dose 200] [--resamples 50]
       [--max-iter 20] [--halo 0|1] [--figure docs/images/uncertainty.png]
"""

import argparse
import os
import time

import numpy as np

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem
from hyperspy_hnmf.solvers import match_components


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dose", type=float, default=200.0)
    parser.add_argument("--resamples", type=int, default=50)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--scan", type=int, default=24)
    parser.add_argument("--halo", type=int, default=1)
    parser.add_argument("--figure", default=None)
    args = parser.parse_args()
    s = synthetic_4dstem(scan_shape=(args.scan, args.scan), detector_shape=(24, 24), n_phases=2,
                         n_rotations=1, dose=args.dose, halo=bool(args.halo), random_state=0)
    truth = get_ground_truth(s)
    k = truth.n_components
    start = time.perf_counter()
    s.decomposition(algorithm="hnmf", output_dimension=k, loss="kl", max_iter=1000, tol=1e-6,
                    random_state=0, print_info=False, show_progressbar=False)
    fit_time = time.perf_counter() - start
    results = s.learning_results
    order, pattern_r = match_components(truth.factors.T, results.factors.T)
    true_maps = truth.loadings[:, order]
    names = [truth.names[i] for i in order]
    print(f"Reference fit: KL, {results.hnmf['n_iter']} iterations, {fit_time:.2f} s; "
          f"pattern r with the truth: {', '.join(f'{r:.3f}' for r in pattern_r)}")
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}\n")
    print("| method | component | coverage (all) | present | absent | stability | "
          "cost (resamples / fit) |")
    print("|---|---|---|---|---|---|---|")
    kept = None
    for method in ("poisson", "nonparametric"):
        start = time.perf_counter()
        u = hyperspy_hnmf.uncertainty(s, n_resamples=args.resamples, method=method,
                                      max_iter=args.max_iter, random_state=0,
                                      show_progressbar=False)
        cost = (time.perf_counter() - start) / fit_time
        result = u.result
        inside = (true_maps >= result.W_lower) & (true_maps <= result.W_upper)
        present = true_maps > 0.05 * true_maps.max(axis=0)
        for j in range(k):
            absent = (inside[~present[:, j], j].mean() if (~present[:, j]).any()
                      else float("nan"))
            print(f"| {method} | {names[j]} | {inside[:, j].mean():.3f} | "
                  f"{inside[present[:, j], j].mean():.3f} | {absent:.3f} | "
                  f"{u.stability[j]:.3f} | {cost:.1f} |")
        if kept is None:
            kept = (u, inside)
    if args.figure:
        figure(s, kept[0], kept[1], true_maps, names, args.figure)


def figure(s, u, inside, true_maps, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    axes_manager = s.axes_manager
    ny, nx = axes_manager.navigation_shape[::-1]
    step = axes_manager[0].scale
    units = axes_manager[0].units
    extent = [0, nx * step, ny * step, 0]
    loadings = s.learning_results.loadings
    k = loadings.shape[1]
    fig, grid = plt.subplots(k, 3, figsize=(10, 3.1 * k), constrained_layout=True)
    for j in range(k):
        panels = [(loadings[:, j], "fitted map", "counts", "viridis"),
                  (u.loadings_width.data[j].ravel(), f"width of the {100 * u.confidence:g} % "
                   "interval", "counts", "magma"),
                  (inside[:, j].astype(float), f"true map inside? "
                   f"({100 * inside[:, j].mean():.0f} % of positions)", "1 = covered", "RdYlGn")]
        for ax, (values, title, unit, cmap) in zip(grid[j], panels):
            image = ax.imshow(values.reshape(ny, nx), extent=extent, cmap=cmap,
                              vmin=0 if unit != "counts" else None,
                              vmax=1 if unit != "counts" else None)
            ax.set_title(f"{names[j]}: {title}", fontsize=9)
            ax.set_xlabel(f"x ({units})")
            ax.set_ylabel(f"y ({units})")
            colorbar = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.05)
            fig.colorbar(image, cax=colorbar, label=unit)
    fig.suptitle(f"Bootstrap of an hnmf fit ({u.n_resamples} {u.method} resamples), "
                 "synthetic 4D-STEM, 200 e⁻ per pattern")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"\nfigure: {path}")


if __name__ == "__main__":
    main()
