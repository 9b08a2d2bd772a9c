"""
Hierarchical NMF of a 4D-STEM scan: layers and a splitting tree
===============================================================

The synthetic 4D-STEM scan decomposed into fine components (phase x
rotation) and coarser groups of them with a multi-layer NMF, then its probe
positions split into a binary tree of clusters with rank-2 NMF. Runs in
about 20 s.
"""

# %%
# Imports; progress bars off through HyperSpy's preferences.
import hyperspy.api as hs
import matplotlib.pyplot as plt
import numpy as np

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem

hs.preferences.General.show_progressbar = False

# %%
# The scan: 64 x 64 positions of 0.5 nm, a 48 x 48 detector, 200 electrons
# per pattern; seven true components (halo, 3 phases x 2 rotations).
s = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(48, 48), random_state=0)
truth = get_ground_truth(s)
k = truth.n_components
print(f"{k} true components: {', '.join(truth.names)}")

# %%
# A multi-layer NMF with ranks 7, 4 and 2: level 1 holds the fine
# components, each level above mixes the one below. The fine-tuning lowers
# the total error of the greedy layer-by-layer fit.
s.decomposition(algorithm="hnmf", output_dimension=[k, 4, 2], loss="kl", random_state=0,
                print_info=False)
info = s.learning_results.hnmf["hierarchy"]
print(f"layers {list(info['ranks'])}: total error greedy {info['greedy_errors'][-1]:.6g}, "
      f"fine-tuned {info['errors'][-1]:.6g}")
for level, M in hyperspy_hnmf.get_mixing_matrices(s).items():
    print(f"mixing matrix of level {level} (rows: coarse components):\n{M.round(2)}")

# %%
# The hierarchy: every node shows its diffraction pattern and its map, on
# scales shared by all nodes (colour bars under the drawing); the scale bars
# on the first node give the calibration.
hyperspy_hnmf.plot_hierarchy(s, figsize=(14, 7.5))
plt.show()

# %%
# The same scan split into a binary tree of clusters of probe positions with
# rank-2 NMF, until seven leaves.
s.decomposition(algorithm="hnmf", hierarchy="tree", output_dimension=k, loss="kl",
                min_leaf_size=20, random_state=0, print_info=False)
tree = hyperspy_hnmf.get_split_tree(s)
print(tree)
hyperspy_hnmf.plot_hierarchy(s, figsize=(12, 9))
plt.show()

# %%
# The leaf of every probe position, as a calibrated label map.
labels = hyperspy_hnmf.get_cluster_labels(s)
x, y = labels.axes_manager.signal_axes
n_leaves = int(labels.data.max()) + 1
figure, axis = plt.subplots(figsize=(6, 5), layout="constrained")
image = axis.imshow(labels.data, cmap=plt.get_cmap("tab10", n_leaves), vmin=-0.5,
                    vmax=n_leaves - 0.5, interpolation="nearest",
                    extent=[x.low_value, x.high_value + x.scale, y.high_value + y.scale,
                            y.low_value])
axis.set_xlabel(f"{x.name} ({x.units})")
axis.set_ylabel(f"{y.name} ({y.units})")
axis.set_title("tree leaf of each probe position")
figure.colorbar(image, ax=axis, ticks=np.arange(n_leaves), label="leaf")
plt.show()
