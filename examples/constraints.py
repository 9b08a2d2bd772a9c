"""
Domain constraints: smooth maps and a halo without dips
=======================================================

Decompose the synthetic 4D-STEM scan (amorphous halo under the Bragg spots
of crystalline precipitates, Poisson counts, a probe of 2 nm) twice with the
Kullback-Leibler loss: unconstrained, then with the maps limited to the
probe's resolution and the components kept free of narrow dips. Print what
the constraints bought (dip score, map energy beyond the resolution, error
against the noise-free data, match with the ground truth) and write figures
of the halo component and of the maps side by side.

Run from the repository root::

    python examples/constraints.py            # 128 x 128 scan, 64 x 64 detector
    python examples/constraints.py --scan 64  # a smaller, faster run
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hyperspy_hnmf  # noqa: E402,F401  (registers algorithm="hnmf")
from hyperspy_hnmf.constraints import (  # noqa: E402
    ContinuousIntensity,
    MapResolution,
    dip_score,
    out_of_band_fraction,
)
from hyperspy_hnmf.constraints.filters import dip_envelope  # noqa: E402
from hyperspy_hnmf.data import (  # noqa: E402
    get_ground_truth,
    get_ground_truth_model,
    score_signal,
    synthetic_4dstem,
)

RESOLUTION = 2.0  # nm: the probe's FWHM
DIP_WIDTH = 1.25  # 1/nm: a little wider than a Bragg spot


def decompose(s, k, constraints):
    s.decomposition(algorithm="hnmf", output_dimension=k, loss="kl", random_state=0,
                    constraints=constraints, print_info=constraints is not None)
    lr = s.learning_results
    score = score_signal(s)
    scan, detector = s.axes_manager.navigation_shape[::-1], s.axes_manager.signal_shape[::-1]
    maps = lr.loadings.T.reshape((k,) + scan)
    components = lr.factors.T.reshape((k,) + detector)
    nav_px = RESOLUTION / s.axes_manager.navigation_axes[0].scale
    sig_px = DIP_WIDTH / s.axes_manager.signal_axes[0].scale
    return dict(maps=maps, components=components, score=score, dip_width=sig_px,
                halo=int(score.matched[0]), crystal=int(score.matched[1]),
                dips=dip_score(components, sig_px), oob=out_of_band_fraction(maps, nav_px),
                model=lr.loadings @ lr.factors.T)


def figure_components(runs, path):
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for axis, (name, run) in zip(axes[:2], runs.items()):
        halo = run["components"][run["halo"]]
        axis.imshow(np.sqrt(halo), cmap="inferno")
        axis.set_title(f"halo, {name}\ndip score {run['dips'][run['halo']]:.2f}", fontsize=10)
        axis.axis("off")
    free = runs["unconstrained"]
    halo = free["components"][free["halo"]]
    envelope = dip_envelope(halo[None], free["dip_width"])[0]
    depth = np.where(envelope > 0.05 * envelope.mean(), 1 - halo / np.maximum(envelope, 1e-30), 0)
    row = int(np.unravel_index(np.argmax(depth), depth.shape)[0])
    for name, run in runs.items():
        axes[2].plot(run["components"][run["halo"]][row], label=name)
    axes[2].set_title(f"halo, detector row {row} (through its deepest dip)", fontsize=10)
    axes[2].set_xlabel("detector pixel")
    axes[2].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def figure_maps(runs, path):
    figure, axes = plt.subplots(2, 2, figsize=(7, 7))
    for column, (name, run) in enumerate(runs.items()):
        for row, key in enumerate(("halo", "crystal")):
            axis = axes[row, column]
            axis.imshow(run["maps"][run[key]], cmap="viridis")
            axis.set_title(f"{key} map, {name}\nenergy beyond 2 nm: {run['oob'][run[key]]:.1e}",
                           fontsize=9)
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(scan=128, output="examples/output"):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    s = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(64, 64), probe_fwhm=4.0,
                         random_state=0)
    k = get_ground_truth(s).n_components
    clean = get_ground_truth_model(s).data.reshape(scan * scan, -1)
    runs = {}
    for name, constraints in (
        ("unconstrained", None),
        ("constrained", [MapResolution(RESOLUTION), ContinuousIntensity(DIP_WIDTH)]),
    ):
        runs[name] = decompose(s, k, constraints)
    print(f"\n{'':14s} {'halo dip':>9s} {'beyond res.':>12s} {'err vs clean':>13s} "
          f"{'map r':>6s} {'pattern r':>9s}")
    for name, run in runs.items():
        error = np.linalg.norm(run["model"] - clean) / np.linalg.norm(clean)
        print(f"{name:14s} {run['dips'][run['halo']]:9.3f} {run['oob'].mean():12.2e} "
              f"{error:13.4f} {run['score'].mean_map_correlation:6.3f} "
              f"{run['score'].mean_pattern_correlation:9.3f}")
    figure_components(runs, output / "constraints_components.png")
    figure_maps(runs, output / "constraints_maps.png")
    print(f"\nfigures written to {output}/constraints_components.png and constraints_maps.png")
    return runs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=int, default=128, help="scan side in probe positions")
    parser.add_argument("--output", default="examples/output", help="folder for the figures")
    arguments = parser.parse_args()
    main(arguments.scan, arguments.output)
