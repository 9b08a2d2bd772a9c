"""Figure of docs/validation.md: scene A at 500 electrons per pattern, truth and phase map.

Run from the repository root: ``python validation/make_figure.py``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

import hyperspy.api as hs  # noqa: E402
import hyperspy_hnmf  # noqa: E402,F401
from hyperspy_hnmf.constraints import MapResolution  # noqa: E402
from hyperspy_hnmf.validation_data import load_multislice  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "validation_scene_A.png"
DOSE = 500


def main():
    scene = load_multislice("A", dose=DOSE, seed=0)
    s = hs.signals.Signal2D(scene["data"].astype(np.float32))
    for axis in s.axes_manager.navigation_axes:
        axis.scale, axis.units = scene["scan_step_nm"], "nm"
    for axis in s.axes_manager.signal_axes:
        axis.scale, axis.units = scene["detector_scale"], "1/nm"
        axis.offset = -32 * scene["detector_scale"]
    s.decomposition(algorithm="hnmf", output_dimension=8, loss="kl", print_info=False,
                    random_state=0, show_progressbar=False, constraints=[MapResolution(1.2)])
    labels, maps, orientation, result = s.decomposition_phase_map(n_phases=2)
    # Name the found phases by the truth they overlap most (for the titles only).
    fractions = scene["fractions_probe"]
    names = {0: "matrix"}
    for c in (1, 2):
        overlap = [np.corrcoef(maps.data[c].ravel(), fractions[j].ravel())[0, 1] for j in (1, 2)]
        names[c] = scene["classes"][1 + int(np.argmax(overlap))]
    crystal = fractions[1:].sum(axis=0)
    truth = np.where(crystal < 0.02, 0, 1 + np.argmax(fractions[1:], axis=0))
    truth_names = scene["classes"]
    size = 30 * scene["scan_step_nm"]
    extent = (0, size, size, 0)
    g = 32 * scene["detector_scale"]
    colours = ["0.85", "tab:orange", "tab:blue"]

    plt.rcParams["axes.titlesize"] = 11
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), layout="constrained")
    ax = axes[0, 0]
    image = ax.imshow(np.log10(scene["data"].mean(axis=(0, 1)) + 1e-2), cmap="magma",
                      extent=(-g, g, -g, g))
    ax.set(title="Mean diffraction pattern", xlabel="kx (1/nm)",
           ylabel="ky (1/nm)")
    fig.colorbar(image, ax=ax, label="log₁₀ counts per pixel")

    ax = axes[0, 1]
    order = [truth_names.index(names[c]) for c in (0, 1, 2)]
    cmap = ListedColormap([colours[order.index(i)] for i in range(3)])
    image = ax.imshow(truth, cmap=cmap, vmin=-0.5, vmax=2.5, extent=extent)
    ax.contour(np.linspace(0, size, 30), np.linspace(0, size, 30), crystal, [0.02, 0.15],
               colors="k", linewidths=0.6)
    ax.set(title="True phase\n(contours: crystal fraction 0.02, 0.15)", xlabel="x (nm)",
           ylabel="y (nm)")
    bar = fig.colorbar(image, ax=ax, ticks=[0, 1, 2])
    bar.ax.set_yticklabels(truth_names)

    ax = axes[0, 2]
    cmap = ListedColormap(colours)
    image = ax.imshow(labels.data, cmap=cmap, vmin=-0.5, vmax=2.5, extent=extent)
    ax.set(title="Labels from\ndecomposition_phase_map", xlabel="x (nm)", ylabel="y (nm)")
    bar = fig.colorbar(image, ax=ax, ticks=[0, 1, 2])
    bar.ax.set_yticklabels([names[c] for c in (0, 1, 2)])

    for c, ax in zip((1, 2), axes[1, :2]):
        image = ax.imshow(maps.data[c], cmap="viridis", extent=extent)
        j = truth_names.index(names[c])
        r = np.corrcoef(maps.data[c].ravel(), fractions[j].ravel())[0, 1]
        ax.set(title=f"Class map: {names[c]}\n(r = {r:.3f} with the true fraction)", xlabel="x (nm)",
               ylabel="y (nm)")
        fig.colorbar(image, ax=ax, label="electrons per probe position")

    ax = axes[1, 2]
    image = ax.imshow(orientation.data, cmap="twilight", extent=extent, vmin=-45, vmax=45)
    ax.set(title="Orientation map\n(rotation from the phase reference)", xlabel="x (nm)", ylabel="y (nm)")
    fig.colorbar(image, ax=ax, label="in-plane rotation (deg)")
    fig.suptitle("Multislice scene A: fcc Cu and B2 CuZr nanocrystals in a ZrCuAl glass, "
                 f"{DOSE} electrons per pattern")
    fig.savefig(OUT, dpi=80)
    print(OUT.name)


if __name__ == "__main__":
    main()
