"""
Measured EDS spectra: NMF maps against exspy's line-intensity maps
==================================================================

eXSpy ships two experimental EDS spectra in its wheel (no download): FePt
nanoparticles measured in a TEM (``EDS_TEM_FePt_nanoparticles``) and the
BAM reference material EDS-TM002 (Al, C, Cu, Mn, Zr) measured in an SEM
(``EDS_SEM_TM002``). It ships no spectrum image, so the scan here is built
from these two measured spectra: FePt particles on a TM002-like film,
Poisson counts at a low dose. The spectra keep everything a real detector
gives (peak shapes, bremsstrahlung, the Pt M / Zr L overlap at 2.05 keV);
only the mixing is simulated, which gives us the true maps. What an EDS user
would check: do the NMF maps agree with exspy's own line-intensity maps, and
where do they differ? Runs in about 15 s.
"""

# %%
# Imports; progress bars off through HyperSpy's preferences.
import exspy
import hyperspy.api as hs
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

import hyperspy_hnmf  # noqa: F401  (registers algorithm="hnmf")

hs.preferences.General.show_progressbar = False

# %%
# The two measured spectra, put on one energy axis (20 eV channels, 0.2 to
# 10 keV) and normalised to unit sum.
fept = exspy.data.EDS_TEM_FePt_nanoparticles()
tm002 = exspy.data.EDS_SEM_TM002()
energy = np.arange(0.2, 10.0, 0.02)


def on_axis(spectrum):
    axis = spectrum.axes_manager.signal_axes[0]
    values = np.interp(energy, axis.axis, spectrum.data.astype(float), left=0, right=0)
    return values / values.sum()


spectra = np.stack([on_axis(tm002), on_axis(fept)])
names = ["film (EDS-TM002)", "FePt particles"]
print(fept.metadata.Sample.description, "|", tm002.metadata.Sample.description)

# %%
# The scan: 64 x 64 positions of 1 nm; a film whose thickness grows from
# left to right, and FePt particles (2 to 4 nm radius) on it. About 150
# X-ray counts per spectrum, Poisson noise.
rng = np.random.default_rng(0)
yy, xx = np.mgrid[:64, :64]
film = 0.6 + 0.8 * xx / 63
particles = np.zeros((64, 64))
for _ in range(14):
    cy, cx, radius = rng.uniform(4, 60), rng.uniform(4, 60), rng.uniform(2, 4)
    particles += np.clip(1 - ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2, 0, None)
particles = ndimage.gaussian_filter(particles, 0.7) * 2.5
true_maps = np.stack([film, particles]) * 100  # counts per position of each phase
counts = rng.poisson(np.einsum("kyx,ke->yxe", true_maps, spectra)).astype("float32")
s = exspy.signals.EDSTEMSpectrum(counts, axes=[
    dict(name="y", units="nm", scale=1.0, size=64),
    dict(name="x", units="nm", scale=1.0, size=64),
    dict(name="Energy", units="keV", scale=0.02, offset=0.2, size=energy.size),
])
s.set_microscope_parameters(beam_energy=200)
s.add_elements(["Al", "Cu", "Fe", "Mn", "Pt", "Zr"])
print(s, f"mean counts per spectrum {counts.sum(-1).mean():.0f}")

# %%
# The sum spectrum with exspy's line markers: what a user sees first.
total = s.sum(axis=(0, 1))
total.add_lines()
lines = total.metadata.Sample.xray_lines
figure, axis = plt.subplots(figsize=(10, 3.6), layout="constrained")
axis.plot(energy, total.data, lw=0.8, color="k")
for line in lines:
    element, name = line.split("_")
    position = exspy.material.elements[element].Atomic_properties.Xray_lines[name]["energy (keV)"]
    axis.axvline(position, color="C3", lw=0.6, ls=":")
    axis.text(position, total.data.max() * 0.95, line, rotation=90, fontsize=7, va="top",
              ha="right")
axis.set_xlabel("energy (keV)")
axis.set_ylabel("counts per 20 eV channel")
axis.set_title("sum spectrum of the scan, with the X-ray lines exspy selected")
plt.show()

# %%
# Decompose into two components with the Poisson (KL) loss, the
# maximum-likelihood loss for X-ray counts. exspy's EDS signals ask for
# HyperSpy's Poisson weighting by default; the KL loss models the noise
# itself, so it is switched off.
s.decomposition(algorithm="hnmf", output_dimension=2, loss="kl", random_state=0,
                normalize_poissonian_noise=False, print_info=False)
loadings = s.learning_results.loadings.T.reshape(2, 64, 64)
factors = s.learning_results.factors.T
pattern_r = np.corrcoef(factors, spectra)[:2, 2:]
order = [int(np.argmax(pattern_r[:, j])) for j in range(2)]
for j, name in enumerate(names):
    map_r = np.corrcoef(loadings[order[j]].ravel(), true_maps[j].ravel())[0, 1]
    print(f"{name}: spectrum r {pattern_r[order[j], j]:.3f} with the measured one, "
          f"map r {map_r:.3f} with the true map")

# %%
# exspy's own maps: the intensity of every X-ray line in a window of about
# twice its resolution, summed per probe position (``get_lines_intensity``).
# The correlation of each line's map with the NMF map of the phase whose
# measured spectrum carries most of that line's window tells whether the two
# agree. (The FePt spectrum has a Cu K peak too: the copper grid.)
intensities = {i.metadata.Sample.xray_lines[0]: i.data
               for i in s.get_lines_intensity(show_progressbar=False)}
print(f"{'line':8s} {'r with film map':>16s} {'r with FePt map':>16s}   mostly from")
for line, data in intensities.items():
    r = [np.corrcoef(data.ravel(), loadings[order[j]].ravel())[0, 1] for j in range(2)]
    element, name = line.split("_")
    centre = exspy.material.elements[element].Atomic_properties.Xray_lines[name][
        "energy (keV)"]
    window = np.abs(energy - centre) < 0.1
    share = (true_maps.sum(axis=(1, 2)) * spectra[:, window].sum(axis=1))
    print(f"{line:8s} {r[0]:16.3f} {r[1]:16.3f}   {names[int(np.argmax(share))]} "
          f"({share.max() / share.sum():.0%})")

# %%
# The NMF maps beside exspy's maps of four lines. Two overlaps of real
# spectra show: Zr La (2.04 keV) sits on Pt Ma (2.05 keV), so the Zr La
# window counts platinum and its map shows the particles; Fe Ka (6.40 keV)
# sits on the film's Mn Kb (6.49 keV), so the Fe Ka map has a film
# background. The NMF film map is not clean either: at about 110 counts per
# spectrum it keeps a trace of the particles (map r 0.85 with the true film
# map, against 0.99 for the particles), a limit to keep in mind at this dose.
panels = [(loadings[order[0]], "NMF: film", "counts per position"),
          (loadings[order[1]], "NMF: FePt particles", "counts per position"),
          (intensities["Al_Ka"], "exspy: Al Ka intensity", "counts in the window"),
          (intensities["Fe_Ka"], "exspy: Fe Ka intensity", "counts in the window"),
          (intensities["Zr_La"], "exspy: Zr La (on Pt Ma)", "counts in the window"),
          (intensities["Cu_Ka"], "exspy: Cu Ka intensity", "counts in the window")]
figure, axes = plt.subplots(2, 3, figsize=(12, 7.2), layout="constrained")
for axis, (data, title, units) in zip(axes.ravel(), panels):
    image = axis.imshow(data, cmap="viridis", extent=[0, 64, 64, 0])
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("x (nm)")
    axis.set_ylabel("y (nm)")
    figure.colorbar(image, ax=axis, shrink=0.85, label=units)
plt.show()

# %%
# The NMF spectra against the measured ones (log scale): the learned
# components are the two measured spectra, Pt M and Zr L separated.
figure, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, layout="constrained")
for j, axis in enumerate(axes):
    axis.semilogy(energy, spectra[j], color="0.6", lw=2, label="measured (exspy.data)")
    axis.semilogy(energy, factors[order[j]], color="C0", lw=0.8, label="NMF component")
    axis.set_ylim(1e-5, None)
    axis.set_ylabel("fraction per channel")
    axis.set_title(names[j], fontsize=10)
    axis.legend(fontsize=8)
axes[1].set_xlabel("energy (keV)")
plt.show()
