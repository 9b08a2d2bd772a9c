"""Joint decomposition: each modality alone misses a pair of phases, together they see all.

Planted data (:func:`hyperspy_hnmf.data.synthetic_joint`): an amorphous matrix and
four precipitate phases; ``alpha``/``beta`` diffract identically (different
chemistry), ``gamma``/``delta`` have identical spectra (different structure).
Prints the map correlation r of every true component for the diffraction-only,
EDS-only and joint fits (Hungarian matching on patterns + maps), and the lazy
joint fit against the in-memory one. Accuracy only: no timing, so it can run
on a loaded machine.

``--known`` runs the known-component acceptance instead (issue 16, item 5) on
:func:`~hyperspy_hnmf.data.synthetic_4dstem` scans (halo + 2 phases, 32×32
positions, 32×32 detector) at 100 and 200 electrons per pattern and several
noise seeds: the mean map r of the two phases of the free fit and of the fit
with the true matrix (halo) pattern fixed; and the residual check of four
references (true halo, halo rotated 10°, true phase pattern, phase pattern
rotated 10°): ``G/df``, the over-dispersion ``φ``, ``F`` and its p-value,
flagged when p < 10⁻³.

    PYTHONPATH=. python benchmarks/bench_joint.py [--figure] [--known [--dose=100]]
"""

import warnings

import numpy as np
from scipy import ndimage

import hyperspy_hnmf
from hyperspy_hnmf.constraints import KnownComponent
from hyperspy_hnmf.data import (get_ground_truth, score_decomposition, synthetic_4dstem,
                                synthetic_joint)
from hyperspy_hnmf.solvers import joint_nmf


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


def _rotated(pattern, shape, angle):
    return ndimage.rotate(pattern.reshape(shape), angle, reshape=False, order=1).clip(0).ravel()


def known(doses=(100, 200), seeds=(1, 2, 3), check_seeds=(1, 2), max_iter=400):
    """Known components: map r with the true halo fixed, and the residual check of 4 references."""
    improvement, checks = [], []
    for dose in doses:
        for seed in seeds:
            s = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(32, 32), n_phases=2,
                                 n_rotations=1, dose=dose, random_state=seed)
            X, truth = s.data.reshape(1024, -1), get_ground_truth(s)

            def fit(references=None):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    result = joint_nmf([X], 3, max_iter=max_iter, tol=1e-7, random_state=0,
                                       known_components=references)
                score = score_decomposition(result.H[0].T, result.W, truth.factors,
                                            truth.loadings)
                return result, score.map_correlation

            _, r_free = fit()
            references = {
                "true halo": (0, truth.factors[:, 0]),
                "halo rotated 10°": (0, _rotated(truth.factors[:, 0], (32, 32), 10)),
                "true phase": (1, truth.factors[:, 1]),
                "phase rotated 10°": (1, _rotated(truth.factors[:, 1], (32, 32), 10)),
            }
            for name, (index, pattern) in references.items():
                if seed not in check_seeds and name != "true halo":
                    continue
                result, r = fit([KnownComponent(pattern, index=index, name=name)])
                check = result.known_checks[0]
                if seed in check_seeds:
                    checks.append((dose, seed, name, check, r))
                if name == "true halo":
                    improvement.append((dose, seed, r_free[1:].mean(), r[1:].mean()))
                    print(f"  dose {dose} seed {seed}: mean map r of the phases, free "
                          f"{r_free[1:].mean():.3f}, true halo fixed {r[1:].mean():.3f}",
                          flush=True)
                print(f"  dose {dose} seed {seed} {name}: G/df = {check['statistic']:.3f}, "
                      f"φ = {check['dispersion']:.3f}, F = {check['F']:.3f}, "
                      f"p = {check['p_value']:.2g}, map r of its slot {r[index]:.2f}",
                      flush=True)
    print("\n| counts/pattern | seed | free fit: mean map r (phases) | true halo fixed | gain |")
    print("|---|---|---|---|---|")
    for dose, seed, free, fixed in improvement:
        print(f"| {dose} | {seed} | {free:.3f} | {fixed:.3f} | {fixed - free:+.3f} |")
    print("\n| counts/pattern | seed | reference | G/df | φ | F | p | flagged | map r of "
          "its slot |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dose, seed, name, check, r in checks:
        index = check["index"]
        print(f"| {dose} | {seed} | {name} | {check['statistic']:.3f} | "
              f"{check['dispersion']:.3f} | {check['F']:.3f} | {check['p_value']:.2g} | "
              f"{'**yes**' if check['contradicted'] else 'no'} | {r[index]:.2f} |")
    return improvement, checks


if __name__ == "__main__":
    import sys

    if "--known" in sys.argv:
        doses = [int(a.split("=")[1]) for a in sys.argv if a.startswith("--dose=")]
        known(doses=doses or (100, 200))
    else:
        main()
    if "--figure" in sys.argv:
        figure()
