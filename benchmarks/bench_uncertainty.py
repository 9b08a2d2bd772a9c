"""Coverage of bootstrap intervals of hnmf maps on synthetic 4D-STEM with known truth.

Prints a markdown table: for two data sets, two doses and two seeds, per
component, the fraction of probe positions whose true map value lies inside
the nominal 90 % interval, for the hybrid (default), the basic and the
percentile interval, over all positions, where the component is present (> 5 % of its
largest value) and where it is absent; the stability score; and the cost of
the resamples as a multiple of the reference fit, measured in the same run.
With ``--figure PATH`` it also draws the figure of docs/uncertainty.md.

Data sets (``synthetic_4dstem``, 24×24 scan, 24×24 detector, 2 phases):

``identifiable``
    ``halo=False``, 8 particles of radius 3.5 pixels per phase: every
    component has probe positions of its own and Bragg spots of its own,
    so the NMF is unique and the truth is what the fit estimates.
``default``
    with the amorphous halo: present at every probe position, it shares
    the direct beam with the phases and the factorization is not unique
    (the phases can absorb part of the halo); coverage there measures the
    bias of the fit, which no bootstrap sees.

The truth is put in the fit's normalisation: components sum to one and maps
hold the expected counts of each component (``get_ground_truth``), matched to
the fitted components by the Hungarian assignment on pattern correlation.

With ``--lift 0`` the refits start from the reference maps themselves (the
behaviour before the lifted warm start; ``--lift`` default: ``LIFT``).

Usage: python benchmarks/bench_uncertainty.py [--resamples 50] [--max-iter 20] [--lift 0.1]
       [--doses 50,200] [--seeds 0,1] [--data identifiable,default]
       [--methods poisson,nonparametric] [--figure docs/images/uncertainty.png]
"""

import argparse
import os
import time

import numpy as np

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem
from hyperspy_hnmf.solvers import match_components
from hyperspy_hnmf.solvers._bootstrap import INTERVALS, LIFT

DATA = {
    "identifiable": dict(halo=False, particles_per_component=8, particle_radius=3.5),
    "default": dict(halo=True),
}


def run(data, dose, seed, method, resamples, max_iter, lift):
    s = synthetic_4dstem(scan_shape=(24, 24), detector_shape=(24, 24), n_phases=2,
                         n_rotations=1, dose=dose, random_state=seed, **DATA[data])
    truth = get_ground_truth(s)
    start = time.perf_counter()
    s.decomposition(algorithm="hnmf", output_dimension=truth.n_components, loss="kl",
                    max_iter=1000, tol=1e-6, random_state=0, print_info=False,
                    show_progressbar=False)
    fit_time = time.perf_counter() - start
    order, pattern_r = match_components(truth.factors.T, s.learning_results.factors.T)
    start = time.perf_counter()
    u = hyperspy_hnmf.uncertainty(s, n_resamples=resamples, method=method, max_iter=max_iter,
                                  lift=lift, random_state=seed, keep_samples=True,
                                  show_progressbar=False)
    cost = (time.perf_counter() - start) / fit_time
    true_maps = truth.loadings[:, order]
    result = u.result
    inside = {}
    for interval in INTERVALS:
        lower, upper = result.map_bounds(interval)
        inside[interval] = (true_maps >= lower) & (true_maps <= upper)
    return dict(s=s, u=u, truth=true_maps, names=[truth.names[i] for i in order],
                inside=inside, cost=cost, pattern_r=pattern_r,
                n_iter=s.learning_results.hnmf["n_iter"], fit_time=fit_time)


def coverage(inside, present):
    absent = (inside[~present].mean() if (~present).any() else float("nan"))
    return f"{inside.mean():.2f} | {inside[present].mean():.2f} | {absent:.2f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--resamples", type=int, default=50)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--lift", type=float, default=LIFT)
    parser.add_argument("--doses", default="50,200")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--data", default="identifiable,default")
    parser.add_argument("--methods", default="poisson,nonparametric",
                        help="methods run at the first seed (later seeds: poisson only)")
    parser.add_argument("--figure", default=None)
    args = parser.parse_args()
    doses = [float(d) for d in args.doses.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}; {args.resamples} "
          f"resamples × {args.max_iter} warm-started iterations (lift {args.lift:g}); "
          f"nominal 90 %\n")
    print("| data | dose | seed | method | component | hybrid: all | present | absent | "
          "basic: all | present | absent | percentile: all | present | absent | stability | "
          "cost (resamples / fit) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    figure_run = None
    for data in args.data.split(","):
        for dose in doses:
            for seed in seeds:
                methods = args.methods.split(",") if seed == seeds[0] else ("poisson",)
                for method in methods:
                    out = run(data, dose, seed, method, args.resamples, args.max_iter,
                              args.lift)
                    present = out["truth"] > 0.05 * out["truth"].max(axis=0)
                    for j, name in enumerate(out["names"]):
                        cells = " | ".join(coverage(out["inside"][interval][:, j], present[:, j])
                                           for interval in INTERVALS)
                        print(f"| {data} | {dose:g} | {seed} | {method} | {name} | {cells} | "
                              f"{out['u'].stability[j]:.3f} | {out['cost']:.1f} |")
                        for interval in INTERVALS:
                            summary.setdefault((data, method, interval), []).append(
                                out["inside"][interval][:, j].mean())
                    if data == "identifiable" and dose == 200 and method == "poisson" \
                            and figure_run is None:
                        figure_run = out
    print("\n| data | method | interval | coverage per component: min | mean | max |")
    print("|---|---|---|---|---|---|")
    for (data, method, interval), values in summary.items():
        print(f"| {data} | {method} | {interval} | {min(values):.2f} | {np.mean(values):.2f} | "
              f"{max(values):.2f} |")
    print(f"\nload average: {open('/proc/loadavg').read().split()[:3]}")
    if args.figure and figure_run is not None:
        figure(figure_run, args.figure)


def figure(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    # "The truth is outside / inside the interval": the two ends of cividis,
    # told apart with any colour vision.
    inside_map = ListedColormap(["#00224e", "#fee838"], name="outside-inside")
    s, u, inside, names = out["s"], out["u"], out["inside"][out["u"].interval], out["names"]
    axes_manager = s.axes_manager
    ny, nx = axes_manager.navigation_shape[::-1]
    step = axes_manager[0].scale
    units = axes_manager[0].units
    extent = [0, nx * step, ny * step, 0]
    loadings = s.learning_results.loadings * s.learning_results.factors.sum(axis=0)
    k = loadings.shape[1]
    fig, grid = plt.subplots(k, 4, figsize=(15, 3.4 * k), constrained_layout=True,
                             sharex=True, sharey=True)
    percent = f"{100 * u.confidence:g} %"
    for j in range(k):
        panels = [
            (out["truth"][:, j], "true map", "electrons per pattern", "viridis", None),
            (loadings[:, j], "fitted map", "electrons per pattern", "viridis", None),
            (u.loadings_width.data[j].ravel(), f"width of the {percent} interval",
             "electrons per pattern", "magma", None),
            (inside[:, j].astype(float),
             f"truth inside? ({100 * inside[:, j].mean():.0f} % of positions)",
             "true value", inside_map, (0, 1)),
        ]
        vmax = max(out["truth"][:, j].max(), loadings[:, j].max())
        for column, (ax, (values, title, unit, cmap, limits)) in enumerate(zip(grid[j], panels)):
            if limits is None:
                limits = (0, vmax) if column < 2 else (0, None)
            image = ax.imshow(values.reshape(ny, nx), extent=extent, cmap=cmap,
                              vmin=limits[0], vmax=limits[1])
            ax.set_title(f"{names[j]}: {title}", fontsize=10)
            if j == k - 1:
                ax.set_xlabel(f"x ({units})")
            if column == 0:
                ax.set_ylabel(f"y ({units})")
            bar = fig.colorbar(image, ax=ax, shrink=0.85, label=unit)
            if cmap is inside_map:  # two colours (colour-blind safe), named
                bar.set_ticks([0.25, 0.75], labels=["outside\ninterval", "inside\ninterval"])
    fig.suptitle(f"Bootstrap of an hnmf fit: {u.n_resamples} {u.method} resamples, {u.interval} "
                 f"{percent} intervals; synthetic 4D-STEM without halo (identifiable), "
                 f"{s.metadata.Ground_truth.dose:g} e⁻ per pattern")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"\nfigure: {path}")


if __name__ == "__main__":
    main()
