"""
Hierarchical NMF of a 4D-STEM scan: layers and a splitting tree
===============================================================

Decompose the synthetic 4D-STEM scan into fine components (phase x rotation)
and coarser groups of them with a multi-layer NMF, then split the probe
positions into a binary tree of clusters with rank-2 NMF. Writes the
hierarchy figures and the tree's cluster-label map.

Run from the repository root::

    python examples/hierarchy.py
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import hyperspy_hnmf  # noqa: E402
from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem  # noqa: E402


def main(scan=64, output="examples/output"):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    s = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(48, 48), random_state=0)
    k = get_ground_truth(s).n_components

    s.decomposition(algorithm="hnmf", output_dimension=[k, 4, 2], loss="kl", random_state=0,
                    print_info=False)
    info = s.learning_results.hnmf["hierarchy"]
    print(f"layers {list(info['ranks'])}: total error greedy {info['greedy_errors'][-1]:.6g}, "
          f"fine-tuned {info['errors'][-1]:.6g}")
    for level, M in hyperspy_hnmf.get_mixing_matrices(s).items():
        print(f"mixing matrix of level {level} (rows: coarse components):\n{M.round(2)}")
    hyperspy_hnmf.plot_hierarchy(s).savefig(output / "hierarchy_layers.png", dpi=80)

    s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=k, loss="kl",
                    min_leaf_size=20, random_state=0, print_info=False)
    tree = hyperspy_hnmf.get_split_tree(s)
    print(tree)
    hyperspy_hnmf.plot_hierarchy(s).savefig(output / "hierarchy_tree.png", dpi=80)
    labels = hyperspy_hnmf.get_cluster_labels(s)
    figure, axis = plt.subplots(figsize=(4, 4))
    axis.imshow(labels.data, cmap="tab10", interpolation="nearest")
    axis.set_title("tree leaf of each probe position")
    axis.axis("off")
    figure.savefig(output / "hierarchy_labels.png", dpi=80)
    plt.close("all")
    print(f"figures written to {output}/hierarchy_*.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=int, default=64)
    parser.add_argument("--output", default="examples/output")
    arguments = parser.parse_args()
    main(arguments.scan, arguments.output)
