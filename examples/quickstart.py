"""
Quickstart: decompose a synthetic 4D-STEM scan
==============================================

Generate the built-in synthetic 4D-STEM dataset (an amorphous film with
crystalline precipitates of several phases and rotations, Poisson counts at a
low dose), decompose it with ``algorithm="hnmf"`` using the Poisson
(Kullback-Leibler) loss, compare the components with the ground truth and
write figures of the components and their maps.

Run from the repository root::

    python examples/quickstart.py            # 128 x 128 scan, 64 x 64 detector
    python examples/quickstart.py --scan 64  # a smaller, faster run
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import hyperspy_hnmf  # noqa: E402,F401  (registers algorithm="hnmf")
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem  # noqa: E402


def save_grid(images, label, cmap, path, title):
    """Write a row of images with their indices."""
    n = len(images)
    columns = min(n, 4)
    rows = -(-n // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows))
    for i, axis in enumerate(np.ravel(axes)):
        axis.axis("off")
        if i < n:
            axis.imshow(images[i], cmap=cmap)
            axis.set_title(f"{label} {i}", fontsize=10)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(scan=128, dose=200.0, output="examples/output"):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)

    s = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(64, 64), dose=dose,
                         random_state=0)
    truth = get_ground_truth(s)
    k = truth.n_components
    print(s)
    print(f"{k} true components: {', '.join(truth.names)}; dose {dose:g} e-/pattern\n")

    start = time.perf_counter()
    s.decomposition(algorithm="hnmf", output_dimension=k, loss="kl", random_state=0)
    elapsed = time.perf_counter() - start
    print(f"\nfitted in {elapsed:.1f} s\n")
    print(score_signal(s))

    factors = s.get_decomposition_factors()
    loadings = s.get_decomposition_loadings()
    save_grid(np.sqrt(factors.data), "component", "inferno",
              output / "quickstart_components.png", "components (square root of intensity)")
    save_grid(loadings.data, "map", "viridis", output / "quickstart_maps.png",
              "maps (counts per probe position)")
    print(f"\nfigures written to {output}/quickstart_components.png and quickstart_maps.png")
    return s


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=int, default=128, help="scan side in probe positions")
    parser.add_argument("--dose", type=float, default=200.0, help="electrons per pattern")
    parser.add_argument("--output", default="examples/output", help="folder for the figures")
    arguments = parser.parse_args()
    main(arguments.scan, arguments.dose, arguments.output)
