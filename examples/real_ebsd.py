"""
Real data: grains in a nickel EBSD scan
=======================================

kikuchipy ships a small experimental EBSD scan of polycrystalline nickel in
its wheel (``kikuchipy.data.nickel_ebsd_small``: 3 x 3 patterns of 60 x 60
pixels, 1.5 µm apart, no download) with the orientations indexed by its
authors. The scan crosses a grain boundary. An NMF of two components should
give one Kikuchi pattern per grain and maps that split the scan at the
boundary. What a microscopist would check: do the NMF maps follow the known
grains, and does each NMF component index, with kikuchipy's own dictionary
indexing, to the orientation of its grain? Runs in about 25 s.
"""

# %%
# Imports; progress bars off through HyperSpy's preferences. kikuchipy
# reports its indexing on standard output, which we keep off the page.
import contextlib
import io

import hyperspy.api as hs
import kikuchipy as kp
import matplotlib.pyplot as plt
import numpy as np
from orix.sampling import get_sample_fundamental

import hyperspy_hnmf  # noqa: F401  (registers algorithm="hnmf")

hs.preferences.General.show_progressbar = False

# %%
# Load the scan (read from the installed package) and remove the static and
# dynamic backgrounds, as before any EBSD analysis: what remains are the
# Kikuchi bands.
s = kp.data.nickel_ebsd_small()
s.remove_static_background(show_progressbar=False)
s.remove_dynamic_background(show_progressbar=False)
s.change_dtype("float32")
print(s)

# %%
# The known microstructure: the orientations stored with the scan. Two
# grains, 34° apart; positions within 5° of the first position belong to
# grain A.
known = s.xmap.orientations
misorientation = known.angle_with_outer(known, degrees=True)
print("misorientation between the 9 positions (°):")
print(misorientation.round(1))
grain = np.where(misorientation[0] < 5, 0, 1)
print("known grain of each position:\n", grain.reshape(3, 3))

# %%
# Decompose into two components. Background-corrected EBSD intensities are
# not counts, so the Frobenius loss is the right one here.
t = s.deepcopy()  # kikuchipy indexes ``s`` below; the decomposition lives on ``t``
t.decomposition(algorithm="hnmf", output_dimension=2, loss="frobenius", random_state=0,
                print_info=False)
loadings = t.learning_results.loadings
# Name the components after the grains: order[g] is the component of grain g.
order = [0, 1] if np.mean(loadings.argmax(axis=1) == grain) >= 0.5 else [1, 0]
label = np.array([order.index(j) for j in loadings.argmax(axis=1)])
agreement = np.mean(label == grain)
print(f"positions whose largest NMF map is their known grain: {agreement:.0%}")
r = [np.corrcoef(loadings[:, order[g]], grain == g)[0, 1] for g in (0, 1)]
print(f"correlation of the NMF maps with the grain masks: A {r[0]:.3f}, B {r[1]:.3f}")

# %%
# The two maps beside the known grains, in micrometres, on one colour scale
# from zero (the same quantity, compared).
x, y = s.axes_manager.navigation_axes
half = x.scale / 2
extent = [x.low_value - half, x.high_value + half, y.high_value + half, y.low_value - half]
figure, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
grains = axes[0].imshow(grain.reshape(3, 3), cmap=plt.get_cmap("tab10", 2), vmin=-0.5,
                        vmax=1.5, extent=extent)
axes[0].set_title("known grains (stored orientations)", fontsize=10)
figure.colorbar(grains, ax=axes[0], ticks=[0, 1], format=lambda v, _: "AB"[int(v)],
                label="grain", shrink=0.7)
top = max(loadings[:, order[g]].max() for g in (0, 1))
for g, axis in zip((0, 1), axes[1:]):
    image = axis.imshow(loadings[:, order[g]].reshape(3, 3), cmap="viridis", extent=extent,
                        vmin=0, vmax=top)
    axis.set_title(f"NMF map of grain {'AB'[g]}", fontsize=10)
figure.colorbar(image, ax=axes[1:], shrink=0.7,
                label="intensity (background-corrected, a.u.)")
for axis in axes:
    axis.set_xlabel("x (µm)")
    axis.set_ylabel("y (µm)")
plt.show()

# %%
# Index the two NMF components with kikuchipy, exactly as one indexes
# experimental patterns: simulate a dictionary of nickel patterns from the
# master pattern shipped with kikuchipy (orientations every 4° over the
# fundamental zone, the detector at the scan's mean projection centre) and
# take the best normalised cross-correlation. The raw patterns go through the
# same indexing for comparison.
master = kp.data.nickel_ebsd_master_pattern_small(projection="lambert")
detector = s.detector.deepcopy()
detector.pc = detector.pc_average
rotations = get_sample_fundamental(resolution=4, point_group=master.phase.point_group)
dictionary = master.get_patterns(rotations, detector, energy=20, compute=True,
                                 show_progressbar=False, dtype_out=np.float32)
components = kp.signals.EBSD(t.get_decomposition_factors().data[order])
components.detector = detector.deepcopy()
with contextlib.redirect_stdout(io.StringIO()):
    from_components = components.dictionary_indexing(dictionary, keep_n=1)
    from_patterns = s.dictionary_indexing(dictionary, keep_n=1)
print(f"dictionary: {rotations.size} orientations")
for g in (0, 1):
    angle = from_components.orientations[g].angle_with(known[grain == g], degrees=True)
    print(f"NMF component of grain {'AB'[g]}: NCC {from_components.scores[g, 0]:.3f}, "
          f"{angle.min():.1f}° from the grain's stored orientation")
raw = np.array([from_patterns.orientations[i].angle_with(known[i], degrees=True)[0]
                for i in range(9)])
for g in (0, 1):
    print(f"raw patterns of grain {'AB'[g]}: {np.round(raw[grain == g], 1).tolist()}° from "
          "their stored orientations")

# %%
# The NMF components next to the dictionary pattern they matched best: the
# same Kikuchi bands, without the noise of a single pattern.
best = master.get_patterns(from_components.orientations.flatten(), detector, energy=20,
                           compute=True, show_progressbar=False, dtype_out=np.float32)
figure, axes = plt.subplots(2, 2, figsize=(8, 8), layout="constrained")
for g in (0, 1):
    panels = ((components.data[g], f"NMF component, grain {'AB'[g]}",
               "fraction of the component per pixel"),
              (best.data[g], f"best dictionary match (NCC {from_components.scores[g, 0]:.2f})",
               "simulated intensity (a.u.)"))
    for axis, (data, title, units) in zip(axes[g], panels):
        image = axis.imshow(data, cmap="gray")
        axis.set_title(title, fontsize=10)
        axis.set_axis_off()
        figure.colorbar(image, ax=axis, shrink=0.8, label=units)
plt.show()
