"""Joint decomposition: each modality alone misses a pair of phases, together they see all.

Planted data (:func:`hyperspy_hnmf.data.synthetic_joint`): an amorphous matrix and
four precipitate phases; ``alpha``/``beta`` diffract identically (different
chemistry), ``gamma``/``delta`` have identical spectra (different structure).
Prints the map correlation r of every true component for the diffraction-only,
EDS-only and joint fits (Hungarian matching on patterns + maps), and the lazy
joint fit against the in-memory one. Accuracy only: no timing, so it can run
on a loaded machine.

    PYTHONPATH=. python benchmarks/bench_joint.py
"""

import numpy as np

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_joint


def score(signals):
    truths = [get_ground_truth(s) for s in signals]
    factors = np.vstack([s.learning_results.factors for s in signals])
    true_factors = np.vstack([t.factors for t in truths])
    return score_decomposition(factors, signals[0].learning_results.loadings, true_factors,
                               truths[0].loadings, names=truths[0].names)


def main(scan_shape=(32, 32), detector_shape=(24, 24), n_channels=128, max_iter=1000):
    dp, eds = synthetic_joint(scan_shape=scan_shape, detector_shape=detector_shape,
                              n_channels=n_channels)
    rows = {}
    for name, signals in (("diffraction only", [dp]), ("EDS only", [eds]),
                          ("joint", [dp, eds])):
        copies = [s.deepcopy() for s in signals]
        result = hyperspy_hnmf.joint_decomposition(copies, 5, max_iter=max_iter, tol=1e-7,
                                                   random_state=0, print_info=False,
                                                   return_info=True)
        rows[name] = (score(copies).map_correlation, result)
    lazy = [s.as_lazy() for s in (dp, eds)]
    lazy_result = hyperspy_hnmf.joint_decomposition(lazy, 5, max_iter=max_iter, tol=1e-7,
                                                    random_state=0, print_info=False,
                                                    return_info=True)
    names = get_ground_truth(dp).names
    print(f"{'fit':<18}" + "".join(f"{n:>8}" for n in names) + f"{'mean':>8}   contributions")
    for name, (r, result) in rows.items():
        print(f"{name:<18}" + "".join(f"{v:>8.3f}" for v in r) + f"{r.mean():>8.3f}   "
              + ", ".join(f"{100 * c:.0f} %" for c in result.contributions))
    joint = rows["joint"][1]
    difference = np.linalg.norm(lazy_result.W - joint.W) / np.linalg.norm(joint.W)
    print(f"lazy vs in-memory joint maps: relative difference {difference:.2e}")
    return rows


def figure(path="docs/_static/joint_maps.png"):
    """Maps of alpha..delta: truth, diffraction only, EDS only, joint (calibrated, with colour bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dp, eds = synthetic_joint(scan_shape=(32, 32), detector_shape=(24, 24), n_channels=128)
    truth = get_ground_truth(dp)
    fits = {}
    for name, signals in (("diffraction only", [dp]), ("EDS only", [eds]), ("joint", [dp, eds])):
        copies = [s.deepcopy() for s in signals]
        hyperspy_hnmf.joint_decomposition(copies, 5, max_iter=1000, tol=1e-7, random_state=0,
                                          print_info=False)
        result = score(copies)
        fits[name] = (copies[0].learning_results.loadings, result)
    axis = dp.axes_manager.navigation_axes[0]
    extent = [0, axis.scale * 32, axis.scale * 32, 0]
    rows = [("truth", truth.loadings, None)] + [(n, L, r) for n, (L, r) in fits.items()]
    fig, axes = plt.subplots(len(rows), 4, figsize=(11, 10.5), constrained_layout=True)
    for i, (name, loadings, result) in enumerate(rows):
        for j, c in enumerate(range(1, 5)):
            column = c if result is None else result.matched[c]
            image = axes[i, j].imshow(loadings[:, column].reshape(32, 32), extent=extent,
                                      cmap="viridis")
            r = "" if result is None else f", r = {result.map_correlation[c]:.2f}"
            axes[i, j].set_title(f"{name}\n{truth.names[c]}{r}", fontsize=9)
            axes[i, j].set_xlabel(f"x ({axis.units})")
            axes[i, j].set_ylabel(f"y ({axis.units})")
            fig.colorbar(image, ax=axes[i, j], label="counts per position", shrink=0.8)
    fig.suptitle("Phase maps: alpha/beta diffract alike, gamma/delta share a spectrum")
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    import sys

    main()
    if "--figure" in sys.argv:
        figure()
