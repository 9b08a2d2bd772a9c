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


if __name__ == "__main__":
    main()
