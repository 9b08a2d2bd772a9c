"""Hierarchical NMF: timings against flat fits and a scikit-learn cascade.

On the built-in synthetic 4D-STEM (128 x 128 scan x 64 x 64 detector,
float32, 200 counts per pattern), in one run:

- multi-layer NMF with layers [12, 6, 3] and joint fine-tuning against a
  flat k = 12 fit with the same solver (goal: <= 3x), with the total error
  of the greedy result and of the fine-tuned one;
- a greedy cascade of scikit-learn NMFs (k = 12 on the data, 6 on its maps,
  3 on those) as the peer;
- the 16-leaf rank-2 splitting tree against a flat k = 16 HALS fit (goal: <= 1x),
  the estimator's tree with the maps of all positions fitted on the leaves
  with the loss, and, for a tree with as many leaves as true components, the
  adjusted Rand index of its leaves against the dominant true component of
  every probe position and its leaf maps' objective and correlation with the
  true maps;
- the grouping of fine into coarse components on the planted two-level data
  (``synthetic_4dstem(mixed_rotations=True)``) at several doses: a fine
  component belongs to the coarse component that mixes it with the largest
  weight (``MultiLayerResult.groups``); the grouping is right when the
  rotations of every phase, and only they, share a parent.

Usage::

    python benchmarks/bench_hierarchy.py            # about 3 minutes
"""

import argparse
import time
import warnings

import numpy as np

from hyperspy_hnmf import HNMF, solvers
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_4dstem
from hyperspy_hnmf.hierarchy.multilayer import multilayer_nmf
from hyperspy_hnmf.hierarchy.tree import rank2_tree
from hyperspy_hnmf.solvers._init import _poisson_weighted


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def sklearn_cascade(X, ranks, beta):
    from sklearn.decomposition import NMF

    options = dict(solver="cd", init="nndsvda") if beta == 2 else dict(
        solver="mu", beta_loss="kullback-leibler", init="nndsvda")
    data, maps = X, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        components = None
        for rank in ranks:
            model = NMF(n_components=rank, random_state=0, **options)
            maps = model.fit_transform(data)
            components = model.components_ if components is None else model.components_ @ components
            data = maps
    return maps, components


def grouping_is_right(X, truth, k_fine, k_coarse, beta):
    result = multilayer_nmf(X, [k_fine, k_coarse], loss=beta, random_state=0)
    score = score_decomposition(result.H[0].T, result.W[0], truth.factors, truth.loadings)
    groups = result.groups(2)
    phase_of = {int(learned): int(truth.phase[t]) for t, learned in enumerate(score.matched)
                if learned >= 0}
    by_phase = {}
    for learned, phase in phase_of.items():
        by_phase.setdefault(phase, set()).add(int(groups[learned]))
    right = all(len(g) == 1 for g in by_phase.values()) and len(
        set.union(*by_phase.values())) == len(by_phase)
    return right, score.mean_map_correlation


def main(scan, detector, dose, loss):
    from sklearn.metrics import adjusted_rand_score

    beta = solvers._checks.loss_to_beta(loss)
    s = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(detector, detector),
                         dose=dose, random_state=0)
    X = s.data.reshape(scan * scan, -1)
    truth = get_ground_truth(s)
    print(f"data: {X.shape[0]} x {X.shape[1]} float32, {dose:g} counts/pattern, loss {loss}\n")
    solvers.nmf(X[:300], 3, loss=beta, max_iter=2)

    flat12, t_flat12 = timed(solvers.nmf, X, 12, loss=beta, random_state=0)
    layers, t_layers = timed(multilayer_nmf, X, [12, 6, 3], loss=beta, random_state=0)
    (cascade_W, cascade_H), t_cascade = timed(sklearn_cascade, X, [12, 6, 3], beta)
    cascade_error = solvers.beta_divergence(X, cascade_W, cascade_H, beta)
    flat16, t_flat16 = timed(solvers.nmf, X, 16, solver="hals", random_state=0)
    tree_input = _poisson_weighted(X)[0] if beta < 2 else X
    tree, t_tree = timed(rank2_tree, tree_input, 16, min_leaf_size=20, random_state=0)
    model = HNMF(16, hierarchy="tree", loss=loss, min_leaf_size=20, random_state=0)
    _, t_tree_fit = timed(model.fit_transform, X)

    print("| method | time (s) | ratio | goal | total error (deepest level) |")
    print("| --- | ---: | ---: | --- | ---: |")
    print(f"| flat k = 12 ({loss}) | {t_flat12:.1f} | 1.00 | | |")
    print(f"| layers [12, 6, 3] + fine-tuning | {t_layers:.1f} | {t_layers / t_flat12:.2f} | ≤ 3 | "
          f"greedy {layers.greedy_total_error:.6g} → tuned {layers.total_error:.6g} |")
    print(f"| sklearn greedy cascade [12, 6, 3] | {t_cascade:.1f} | {t_cascade / t_flat12:.2f} | "
          f"(peer) | {cascade_error:.6g} |")
    print(f"| flat k = 16 HALS | {t_flat16:.1f} | 1.00 | | |")
    print(f"| rank-2 tree, 16 leaves asked ({tree.n_leaves} reached) | {t_tree:.1f} | "
          f"{t_tree / t_flat16:.2f} | ≤ 1 | |")
    print(f"| HNMF(hierarchy='tree'): tree + {loss} maps ({model.hierarchy_.n_leaves} leaves) | "
          f"{t_tree_fit:.1f} | "
          f"{t_tree_fit / t_flat16:.2f} | | |")

    # Reference clusters: the crystal component dominating a position where a
    # crystal carries at least half the halo's counts, else the film.
    crystal = truth.loadings[:, 1:]
    reference = np.where(crystal.max(axis=1) > 0.5 * truth.loadings[:, 0],
                         1 + np.argmax(crystal, axis=1), 0)
    model7 = HNMF(truth.n_components, hierarchy="tree", loss=loss, min_leaf_size=20,
                  random_state=0)
    maps7 = model7.fit_transform(X)
    ari = adjusted_rand_score(reference, model7.hierarchy_.labels())
    score7 = score_decomposition(model7.components_.T, maps7, truth.factors, truth.loadings)
    print(f"\ntree with {truth.n_components} leaves vs film/dominant-crystal clusters: "
          f"ARI {ari:.3f}; leaf maps: {loss} objective "
          f"{solvers.beta_divergence(X, maps7, model7.components_, beta):.9g}, map r "
          f"{score7.mean_map_correlation:.3f}, pattern r {score7.mean_pattern_correlation:.3f}")

    print("\n| planted two-level data (mixed_rotations) dose | fine→coarse grouping right | "
          "fine map r |")
    print("| ---: | --- | ---: |")
    for planted_dose in (100, 200, 500, 1000, 2000):
        planted = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(detector, detector),
                                   dose=planted_dose, mixed_rotations=True, random_state=0)
        ptruth = get_ground_truth(planted)
        right, maps_r = grouping_is_right(planted.data.reshape(scan * scan, -1), ptruth,
                                          ptruth.n_components, 4, beta)
        print(f"| {planted_dose} | {right} | {maps_r:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=int, default=128)
    parser.add_argument("--detector", type=int, default=64)
    parser.add_argument("--dose", type=float, default=200.0)
    parser.add_argument("--loss", default="kl")
    arguments = parser.parse_args()
    main(arguments.scan, arguments.detector, arguments.dose, arguments.loss)
