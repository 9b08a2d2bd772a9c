"""
Rotation-invariant clustering: from NMF components to phase maps
================================================================

A crystal rotated in the image plane gives the same diffraction pattern,
rotated; NMF then finds one component per phase *and* orientation. This
example decomposes the synthetic 4D-STEM scan (3 phases x 3 rotations in an
amorphous film), groups the components by phase with the normalized
cross-correlation along φ of their polar transforms, merges each group into
one phase map, and finally clusters every probe position's pattern directly,
whatever its rotation, with an orientation map on top. Runs in about 30 s.
"""

# %%
# Imports; progress bars off through HyperSpy's preferences. The scan:
# 64 x 64 positions of 0.5 nm, 64 x 64 detector, 400 electrons per pattern.
import hyperspy.api as hs
import matplotlib.pyplot as plt
import numpy as np

import hyperspy_hnmf  # noqa: F401  (registers the methods)
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem

hs.preferences.General.show_progressbar = False

s = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(64, 64), n_phases=3,
                     n_rotations=3, dose=400, random_state=0)
truth = get_ground_truth(s)
extent = [0, 32, 32, 0]  # nm: 64 positions of 0.5 nm

# %%
# NMF: one component per phase and rotation (plus the amorphous halo),
# with the Poisson loss.
s.decomposition(algorithm="hnmf", output_dimension=truth.n_components, loss="kl",
                random_state=0, print_info=False, show_progressbar=False)
score = score_signal(s)
names = {learned: truth.names[true] for true, learned in score.pairs}
print(f"NMF: {truth.n_components} components, mean pattern correlation with the "
      f"truth {score.mean_pattern_correlation:.3f}")

# %%
# Group the components up to rotation (normalised cross-correlation along φ
# of their polar transforms) and merge every group. The dendrogram shows
# every component under its leaf with its rotation against its cluster.
result = s.cluster_decomposition_components(n_clusters=4)
for c in range(result.n_clusters):
    members = ", ".join(f"{names[m]} ({result.angles_deg[m]:+.0f}°)"
                        for m in result.members(c))
    print(f"cluster {c}: {members}")
result.plot_dendrogram(figsize=(10, 4.5))
plt.show()

# %%
# The merged maps against the true phase maps, on one colour scale per
# column, in nanometres.
figure, axes = plt.subplots(2, 4, figsize=(12, 6.4), layout="constrained")
for c in range(4):
    members = result.members(c)
    phase = truth.phase[[t for t, learned in score.pairs if learned == members[0]][0]]
    true_map = truth.loadings[:, truth.phase == phase].sum(axis=1).reshape(64, 64)
    title = "amorphous" if phase < 0 else f"phase {phase}"
    r = np.corrcoef(result.loadings.data[c].ravel(), true_map.ravel())[0, 1]
    top = max(result.loadings.data[c].max(), true_map.max())
    axes[0, c].imshow(result.loadings.data[c], cmap="viridis", vmin=0, vmax=top,
                      extent=extent)
    axes[0, c].set_title(f"merged cluster {c}: {title}\n({len(members)} component"
                         f"{'s' if len(members) > 1 else ''}, r {r:.2f})", fontsize=9)
    image = axes[1, c].imshow(true_map, cmap="viridis", vmin=0, vmax=top, extent=extent)
    axes[1, c].set_title(f"truth: {title}", fontsize=9)
    figure.colorbar(image, ax=axes[:, c], orientation="horizontal", shrink=0.9,
                    label="counts per probe position")
for axis in axes.ravel():
    axis.set_xticks([0, 10, 20, 30])
    axis.set_yticks([0, 10, 20, 30])
for axis in axes[:, 0]:
    axis.set_ylabel("y (nm)")
for axis in axes[1]:
    axis.set_xlabel("x (nm)")
figure.suptitle("Merged maps (top) against the true phase maps (bottom)")
plt.show()

# %%
# Cluster every probe position's pattern directly, whatever its rotation,
# and map the rotation of every crystal position against its cluster centre.
labels, centres, rotation = s.polar_cluster_analysis(4, random_state=0)
print(f"pixel clusters: sizes {np.bincount(labels.data.ravel()).tolist()}")
figure, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained",
                            width_ratios=[1, 1, 1.2])
clusters = axes[0].imshow(labels.data, cmap=plt.get_cmap("tab10", 4), vmin=-0.5, vmax=3.5,
                          interpolation="nearest", extent=extent)
axes[0].set_title("cluster of each probe position")
figure.colorbar(clusters, ax=axes[0], ticks=range(4), label="cluster", shrink=0.85)
crystal = truth.loadings[:, truth.phase >= 0].sum(axis=1).reshape(64, 64)
shown = np.where(crystal > 0.5 * crystal.max(), rotation.data, np.nan)
image = axes[1].imshow(shown, cmap="twilight", vmin=-90, vmax=90,
                       interpolation="nearest", extent=extent)
axes[1].set_title("rotation from the cluster centre\n(crystals only)")
figure.colorbar(image, ax=axes[1], label="rotation (°)", shrink=0.85)
phi, r = centres.axes_manager.signal_axes
gap = np.full((2, centres.data.shape[2]), np.nan)
stacked = np.concatenate([part for c in centres.data for part in (c / np.abs(c).max(), gap)])
polar = axes[2].imshow(stacked[:-2], aspect="auto", cmap="viridis", interpolation="nearest",
                       extent=[phi.axis[0], phi.axis[-1], 4, 0], vmin=0, vmax=1)
figure.colorbar(polar, ax=axes[2], label="intensity ÷ its cluster's maximum", shrink=0.85)
axes[2].set_yticks(np.arange(4) + 0.5, [f"cluster {c}" for c in range(4)])
axes[2].set_xlabel("φ (°)")
axes[2].set_title(f"polar centres (r {r.axis[0]:.1f} to {r.axis[-1]:.1f} {r.units} "
                  "downwards)", fontsize=9)
for axis in axes[:2]:
    axis.set_xlabel("x (nm)")
    axis.set_ylabel("y (nm)")
plt.show()
