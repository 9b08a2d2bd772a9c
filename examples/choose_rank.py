"""
Choosing the number of components, and checking the chosen decomposition
========================================================================

Estimate the rank of a synthetic 4D-STEM scan with a known number of
components (error knee, NMFk silhouettes, ICASSO Iq, cophenetic
correlation), write the consensus components of the recommended rank to the
signal, and build an HNMFk tree that chooses the number of children at every
node (on a scan where each phase's particles hold both of its rotations).
Runs in well under a minute.
"""

# %%
# Imports; progress bars off through HyperSpy's preferences.
import time

import hyperspy.api as hs
import matplotlib.pyplot as plt

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem

hs.preferences.General.show_progressbar = False

# %%
# A scan with two phases in two rotations each, plus the halo: five true
# components.
s = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(64, 64), n_phases=2,
                     n_rotations=2, dose=200, random_state=0)
truth = get_ground_truth(s)
print(f"true number of components: {truth.n_components} ({', '.join(truth.names)})")

# %%
# Ranks 2 to 12, ten restarts each: the error curve and its knee, the
# silhouettes of the components clustered over the restarts, the Iq of every
# cluster and the cophenetic correlation.
start = time.perf_counter()
result = hyperspy_hnmf.estimate_rank(s, ranks=range(2, 13), n_restarts=10)
print(f"estimate_rank, ranks 2-12 x 10 restarts: {time.perf_counter() - start:.1f} s")
print(result)
result.plot(figsize=(10, 7))
plt.show()

# %%
# The consensus components of the recommended rank, written to the signal
# as its decomposition, scored against the truth and drawn with their
# names and stability (Iq).
stability = result.stability()
print(stability)
stability.to_learning_results(s)
score = score_signal(s)
print(score)
order = [learned for _, learned in score.pairs]
names = [f"{truth.names[true]} (Iq {stability.stability_index[learned]:.2f})"
         for true, learned in score.pairs]
hyperspy_hnmf.plot_decomposition_images(s, "factors", order=order, names=names,
                                        per_row=5)
plt.show()

# %%
# HNMFk on a scan with a two-level structure: every particle of a phase
# holds both rotations of that phase, as stripe domains. At most 3 children
# per node, and a strict stability threshold so that the thickness variation
# of the halo is not split.
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
hyperspy_hnmf.plot_hierarchy(nested, min_weight=0.0, figsize=(10, 6.5))
plt.show()
