"""
Choosing the number of components, and checking the chosen decomposition
========================================================================

Estimate the rank of a synthetic 4D-STEM scan with a known number of
components (error knee, NMFk silhouettes, ICASSO Iq, cophenetic
correlation), write the consensus components of the recommended rank to the
signal, and build an HNMFk tree that chooses the number of children at every
node (on a scan where each phase's particles hold both of its rotations). Writes ``docs/images/rank_*.png``; runs in well under a minute.

Run from the repository root::

    python examples/choose_rank.py
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hyperspy_hnmf  # noqa: E402
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem  # noqa: E402


def main(output="docs/images"):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    s = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(64, 64), n_phases=2,
                         n_rotations=2, dose=200, random_state=0)
    truth = get_ground_truth(s)
    print(f"true number of components: {truth.n_components} ({', '.join(truth.names)})")

    start = time.perf_counter()
    result = hyperspy_hnmf.estimate_rank(s, ranks=range(2, 13), n_restarts=10)
    print(f"estimate_rank, ranks 2-12 x 10 restarts: {time.perf_counter() - start:.1f} s")
    print(result)
    result.plot().savefig(output / "rank_estimate.png", dpi=90)

    stability = result.stability()
    print(stability)
    stability.to_learning_results(s)
    print(score_signal(s))
    figure, axes = plt.subplots(1, stability.rank, figsize=(2.2 * stability.rank, 2.6))
    for j, axis in enumerate(axes):
        axis.imshow(np.sqrt(stability.components[j].reshape(64, 64)), cmap="inferno")
        axis.set_title(f"Iq {stability.stability_index[j]:.2f}", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"consensus components of k = {stability.rank} (square-root scale)",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(output / "rank_consensus.png", dpi=90)

    # HNMFk on a scan with a two-level structure: every particle of a phase
    # holds both rotations of that phase, as stripe domains. At most 3 children
    # per node, and a stricter stability threshold so that the thickness
    # variation of the halo is not split.
    nested = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(64, 64), n_phases=2,
                              n_rotations=2, dose=500, mixed_rotations=True, random_state=0)
    start = time.perf_counter()
    tree = hyperspy_hnmf.hnmfk_decomposition(nested, ranks=range(2, 4), n_restarts=6,
                                             min_cluster_size=40, max_depth=2,
                                             silhouette_threshold=0.75)
    print(f"HNMFk: {tree} in {time.perf_counter() - start:.1f} s")
    for node in tree.nodes:
        print(f"  node {node.id} (depth {node.depth}, {node.size} positions): {node.status}, "
              f"children {list(node.children)}")
    figure = hyperspy_hnmf.plot_hierarchy(nested, min_weight=0.0, figsize=(8, 5))
    figure.savefig(output / "rank_hnmfk.png", dpi=90)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Choose the number of components")
    parser.add_argument("--output", default="docs/images")
    main(**vars(parser.parse_args()))
