"""
Quickstart: decompose a synthetic 4D-STEM scan
==============================================

A 4D-STEM scan of an amorphous film with crystalline precipitates (three
phases, each in two in-plane rotations) at a low dose, decomposed with
``algorithm="hnmf"`` and the Poisson (Kullback-Leibler) loss. The dataset
comes with its ground truth, so every learned component can be named by the
phase it recovered and scored. Runs in about 15 s (``python
examples/quickstart.py`` from the repository root).
"""

# %%
# Importing ``hyperspy_hnmf`` registers ``algorithm="hnmf"`` with HyperSpy.
# Progress bars are switched off for the whole session through HyperSpy's
# preferences (not saved to disk).
import time

import hyperspy.api as hs
import matplotlib.pyplot as plt

import hyperspy_hnmf
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem

hs.preferences.General.show_progressbar = False

# %%
# The synthetic scan: 64 x 64 probe positions 0.5 nm apart, a 64 x 64
# detector of 0.25 1/nm per pixel, about 200 electrons per pattern
# (Poisson counts).
s = synthetic_4dstem(scan_shape=(64, 64), detector_shape=(64, 64), dose=200.0,
                     random_state=0)
truth = get_ground_truth(s)
k = truth.n_components
print(s)
print(f"{k} true components: {', '.join(truth.names)}")

# %%
# What a microscopist looks at first: the mean diffraction pattern (on a
# square-root scale, so that the weak Bragg spots show next to the direct
# beam) and the total counts at every probe position.
mean_pattern = s.mean(axis=(0, 1))
mean_pattern.metadata.General.title = "mean diffraction pattern"
total = s.sum(axis=(2, 3)).T
total.metadata.General.title = "total counts per probe position"
figure = plt.figure(figsize=(9, 4.2))
hs.plot.plot_images([mean_pattern, total], cmap=["inferno", "gray"], scalebar="all",
                    colorbar="multi", axes_decor="off", fig=figure, suptitle="",
                    label=["mean diffraction pattern (counts, √ scale)",
                           "total counts per probe position"],
                    padding=dict(left=0.02, right=0.92, bottom=0.03, top=0.9, wspace=0.45))
figure.axes[0].images[0].set_norm(plt.matplotlib.colors.PowerNorm(0.5))
plt.show()

# %%
# Decompose into as many components as there are true ones, with the
# Poisson loss that suits electron counts.
start = time.perf_counter()
s.decomposition(algorithm="hnmf", output_dimension=k, loss="kl", random_state=0)
print(f"fitted in {time.perf_counter() - start:.1f} s")

# %%
# Match every learned component to a true one (Hungarian matching of the
# pattern correlations) and score the match: Pearson correlation of the
# patterns and of the maps.
score = score_signal(s)
print(score)
order = [learned for _, learned in score.pairs]
names = [f"{truth.names[true]} (#{learned})" for true, learned in score.pairs]

# %%
# The maps, each titled by the phase it recovered and the learned component's
# index. HNMF components sum to 1, so a map reads in counts per probe
# position.
hyperspy_hnmf.plot_decomposition_images(s, "loadings", order=order, names=names,
                                        colorbar_label="counts per probe position")
plt.show()

# %%
# The components: one diffraction pattern per phase and rotation, plus the
# amorphous halo. Square-root colour scale; the colour bars are in the
# fraction of the component's counts that falls on a detector pixel.
hyperspy_hnmf.plot_decomposition_images(s, "factors", order=order, names=names)
plt.show()
