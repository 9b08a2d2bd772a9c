"""
Rotation-invariant clustering: from NMF components to phase maps
================================================================

A crystal rotated in the image plane gives the same diffraction pattern,
rotated; NMF then finds one component per phase *and* orientation. This
example decomposes the synthetic 4D-STEM scan (3 phases x 3 rotations in an
amorphous film), groups the components by phase with the normalized
cross-correlation along φ of their polar transforms, merges each group into
one phase map, and finally clusters every probe position's pattern directly,
whatever its rotation, with an orientation map on top. Writes three figures.

Run from the repository root (about 30 s)::

    python examples/polar_clustering.py
    python examples/polar_clustering.py --output docs/images   # the docs' figures
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hyperspy_hnmf  # noqa: E402, F401  (registers the methods)
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem  # noqa: E402


def main(scan=64, output="examples/output"):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    s = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(64, 64), n_phases=3,
                         n_rotations=3, dose=400, random_state=0)
    truth = get_ground_truth(s)

    # 1. NMF: one component per phase and rotation (plus the amorphous halo).
    s.decomposition(algorithm="hnmf", output_dimension=truth.n_components, loss="kl",
                    random_state=0, print_info=False, show_progressbar=False)
    score = score_signal(s)
    names = {learned: truth.names[true] for true, learned in score.pairs}
    print(f"NMF: {truth.n_components} components, mean pattern correlation with the "
          f"truth {score.mean_pattern_correlation:.3f}")

    # 2. Group the components up to rotation and merge every group.
    result = s.cluster_decomposition_components(n_clusters=4)
    for c in range(result.n_clusters):
        members = ", ".join(f"{names[m]} ({result.angles_deg[m]:+.0f}°)"
                            for m in result.members(c))
        print(f"cluster {c}: {members}")
    result.plot_dendrogram(figsize=(9, 4)).savefig(output / "polar_dendrogram.png", dpi=80)

    figure, axes = plt.subplots(2, 4, figsize=(10, 5.4))
    for c in range(4):
        members = result.members(c)
        phase = truth.phase[[t for t, learned in score.pairs if learned == members[0]][0]]
        true_map = truth.loadings[:, truth.phase == phase].sum(axis=1).reshape(scan, scan)
        title = "amorphous" if phase < 0 else f"phase {phase}"
        axes[0, c].imshow(result.loadings.data[c], cmap="viridis")
        axes[0, c].set_title(f"merged cluster {c}\n({len(members)} components)", fontsize=9)
        axes[1, c].imshow(true_map, cmap="viridis")
        axes[1, c].set_title(f"truth: {title}", fontsize=9)
    for axis in axes.ravel():
        axis.axis("off")
    figure.suptitle("Merged maps (top) against the true phase maps (bottom)")
    figure.tight_layout()
    figure.savefig(output / "polar_merged_maps.png", dpi=80)

    # 3. Cluster every probe position's pattern, whatever its rotation.
    labels, centres, rotation = s.polar_cluster_analysis(4, random_state=0)
    print(f"pixel clusters: sizes {np.bincount(labels.data.ravel()).tolist()}")
    figure, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
    axes[0].imshow(labels.data, cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
    axes[0].set_title("cluster of each probe position")
    crystal = truth.loadings[:, truth.phase >= 0].sum(axis=1).reshape(scan, scan)
    shown = np.where(crystal > 0.5 * crystal.max(), rotation.data, np.nan)
    image = axes[1].imshow(shown, cmap="twilight", vmin=-90, vmax=90,
                           interpolation="nearest")
    axes[1].set_title("rotation from the cluster centre (°)\n(crystals only)")
    figure.colorbar(image, ax=axes[1], fraction=0.046)
    phi, r = centres.axes_manager.signal_axes
    gap = np.full((2, centres.data.shape[2]), np.nan)
    stacked = np.concatenate([part for c in centres.data for part in (c / np.abs(c).max(), gap)])
    axes[2].imshow(stacked[:-2], aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=[phi.axis[0], phi.axis[-1], 4, 0])
    axes[2].set_yticks(np.arange(4) + 0.5, [f"cluster {c}" for c in range(4)])
    axes[2].set_xlabel("φ (°)")
    axes[2].set_title(f"polar centres (r {r.axis[0]:.1f} to {r.axis[-1]:.1f} {r.units} "
                      "downwards)", fontsize=9)
    for axis in axes[:2]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(output / "polar_pixel_clusters.png", dpi=80)
    plt.close("all")
    print(f"figures written to {output}/polar_*.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=int, default=64)
    parser.add_argument("--output", default="examples/output")
    arguments = parser.parse_args()
    main(arguments.scan, arguments.output)
