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

import hyperspy.api as hs  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import hyperspy_hnmf  # noqa: E402,F401  (registers algorithm="hnmf")
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem  # noqa: E402


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
    hs.plot.plot_images(factors, cmap="inferno", per_row=k, axes_decor="off",
                        label=[f"component {i}" for i in range(k)], colorbar=None)
    plt.gcf().savefig(output / "quickstart_components.png", dpi=80)
    hs.plot.plot_images(loadings, cmap="viridis", per_row=k, axes_decor="off",
                        label=[f"map {i}" for i in range(k)], colorbar=None)
    plt.gcf().savefig(output / "quickstart_maps.png", dpi=80)
    plt.close("all")
    print(f"\nfigures written to {output}/quickstart_components.png and quickstart_maps.png")
    return s


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=int, default=128, help="scan side in probe positions")
    parser.add_argument("--dose", type=float, default=200.0, help="electrons per pattern")
    parser.add_argument("--output", default="examples/output", help="folder for the figures")
    arguments = parser.parse_args()
    main(arguments.scan, arguments.dose, arguments.output)
