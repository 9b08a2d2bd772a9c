"""
Domain constraints: smooth maps and a halo without dips
=======================================================

The synthetic 4D-STEM scan (an amorphous halo under the Bragg spots of
crystalline precipitates, Poisson counts, a probe of 2 nm) decomposed twice
with the Kullback-Leibler loss: unconstrained, then with the maps limited to
the probe's resolution and the components kept free of narrow dips. The
numbers say what the constraints bought (dip score, map energy beyond the
resolution, error against the noise-free data, match with the ground truth);
the figures show the halo component and the maps side by side. Runs in about
40 s.
"""

# %%
# Imports; progress bars off through HyperSpy's preferences.
import hyperspy.api as hs
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import PowerNorm
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

import hyperspy_hnmf  # noqa: F401  (registers algorithm="hnmf")
from hyperspy_hnmf.constraints import (
    ContinuousIntensity,
    MapResolution,
    dip_score,
    out_of_band_fraction,
)
from hyperspy_hnmf.constraints.filters import dip_envelope
from hyperspy_hnmf.data import (
    get_ground_truth,
    get_ground_truth_model,
    score_signal,
    synthetic_4dstem,
)

hs.preferences.General.show_progressbar = False
RESOLUTION = 2.0  # nm: the probe's FWHM
DIP_WIDTH = 1.25  # 1/nm: a little wider than a Bragg spot

# %%
# The scan: 128 x 128 probe positions of 0.5 nm, a 64 x 64 detector of
# 0.25 1/nm, about 200 electrons per pattern, a probe of 2 nm FWHM
# (``probe_fwhm`` is in probe positions). The noise-free model is kept to
# measure the error of each fit.
s = synthetic_4dstem(scan_shape=(128, 128), detector_shape=(64, 64), probe_fwhm=4.0,
                     random_state=0)
truth = get_ground_truth(s)
k = truth.n_components
clean = get_ground_truth_model(s).data.reshape(128 * 128, -1)
scan_axes = s.axes_manager.navigation_axes
detector_axes = s.axes_manager.signal_axes


# %%
# One function runs a decomposition and collects what we compare: the maps
# and components, the learned component matched to the true halo and to a
# crystal, the dip score of every component and the fraction of every map's
# energy beyond the probe's resolution.
def decompose(constraints):
    s.decomposition(algorithm="hnmf", output_dimension=k, loss="kl", random_state=0,
                    constraints=constraints, print_info=False)
    lr = s.learning_results
    score = score_signal(s)
    maps = lr.loadings.T.reshape((k, 128, 128))
    components = lr.factors.T.reshape((k, 64, 64))
    dip_px = DIP_WIDTH / detector_axes[0].scale
    return dict(maps=maps, components=components, score=score, dip_px=dip_px,
                halo=int(score.matched[0]), crystal=int(score.matched[1]),
                dips=dip_score(components, dip_px),
                oob=out_of_band_fraction(maps, RESOLUTION / scan_axes[0].scale),
                model=lr.loadings @ lr.factors.T)


runs = {
    "unconstrained": decompose(None),
    "constrained": decompose([MapResolution(RESOLUTION), ContinuousIntensity(DIP_WIDTH)]),
}

# %%
# What the constraints bought. The dip score is 1 for a halo that falls to
# zero under a Bragg spot and 0 for one without dips; the error is measured
# against the noise-free data; map and pattern r are the mean correlations
# with the ground truth.
print(f"{'':14s} {'halo dip':>9s} {'beyond res.':>12s} {'err vs clean':>13s} "
      f"{'map r':>6s} {'pattern r':>9s}")
for name, run in runs.items():
    error = np.linalg.norm(run["model"] - clean) / np.linalg.norm(clean)
    print(f"{name:14s} {run['dips'][run['halo']]:9.3f} {run['oob'].mean():12.2e} "
          f"{error:13.4f} {run['score'].mean_map_correlation:6.3f} "
          f"{run['score'].mean_pattern_correlation:9.3f}")

# %%
# The halo component without and with the constraints (square-root colour
# scale, both on the same scale), and a detector row through the deepest dip
# of the unconstrained halo.
free = runs["unconstrained"]
halo = free["components"][free["halo"]]
envelope = dip_envelope(halo[None], free["dip_px"])[0]
depth = np.where(envelope > 0.05 * envelope.mean(), 1 - halo / np.maximum(envelope, 1e-30), 0)
row = int(np.unravel_index(np.argmax(depth), depth.shape)[0])
kx, ky = detector_axes[0].axis, detector_axes[1].axis
half = detector_axes[0].scale / 2
extent = [kx[0] - half, kx[-1] + half, ky[-1] + half, ky[0] - half]
top = max(run["components"][run["halo"]].max() for run in runs.values())

figure, axes = plt.subplots(1, 3, figsize=(12, 3.9), width_ratios=[1, 1, 1.35],
                            layout="constrained")
for axis, (name, run) in zip(axes[:2], runs.items()):
    image = axis.imshow(run["components"][run["halo"]], cmap="inferno", extent=extent,
                        norm=PowerNorm(0.5, vmin=0, vmax=top), interpolation="nearest")
    axis.axhline(ky[row], color="w", lw=0.6, ls=":")
    axis.set_title(f"halo, {name}\ndip score {run['dips'][run['halo']]:.2f}", fontsize=10)
    axis.set_axis_off()
    axis.add_artist(AnchoredSizeBar(axis.transData, 5, "5 1/nm", "lower left", color="w",
                                    frameon=False, size_vertical=0))
figure.get_layout_engine().set(wspace=0.06)
figure.colorbar(image, ax=axes[:2], shrink=0.85,
                label="fraction of the halo per\ndetector pixel (√ scale)")
for name, run in runs.items():
    axes[2].plot(kx, run["components"][run["halo"]][row], label=name)
axes[2].set_xlabel(f"{detector_axes[0].name} ({detector_axes[0].units})")
axes[2].set_ylabel("fraction of the halo per pixel")
axes[2].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
axes[2].set_title(f"halo along {detector_axes[1].name} = {ky[row]:.2f} "
                  f"{detector_axes[1].units} (dotted line)", fontsize=10)
axes[2].legend(fontsize=8)
plt.show()

# %%
# The halo map and a crystal map of both runs, each pair on one colour scale:
# the constrained maps keep their shapes and lose the pixel-to-pixel noise.
x, y = scan_axes[0].axis, scan_axes[1].axis
half = scan_axes[0].scale / 2
extent = [x[0] - half, x[-1] + half, y[-1] + half, y[0] - half]
figure, axes = plt.subplots(2, 2, figsize=(9, 8.2), layout="constrained")
for row_index, key in enumerate(("halo", "crystal")):
    name_true = truth.names[0 if key == "halo" else 1]
    top = max(run["maps"][run[key]].max() for run in runs.values())
    for column, (name, run) in enumerate(runs.items()):
        axis = axes[row_index, column]
        image = axis.imshow(run["maps"][run[key]], cmap="viridis", vmin=0, vmax=top,
                            extent=extent, interpolation="nearest")
        axis.set_title(f"{name_true} map, {name}\nenergy beyond 2 nm: "
                       f"{run['oob'][run[key]]:.1e}", fontsize=9)
        axis.set_axis_off()
        axis.add_artist(AnchoredSizeBar(axis.transData, 10, "10 nm", "lower left",
                                        color="w", frameon=False, size_vertical=0))
    figure.colorbar(image, ax=axes[row_index], shrink=0.9, label="counts per probe position")
plt.show()
