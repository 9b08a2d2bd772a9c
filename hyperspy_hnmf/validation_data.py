"""Multislice 4D-STEM validation data shipped with the package (pure numpy).

Two scenes simulated from first principles with abTEM by
``validation/simulate_multislice.py`` (200 kV, 2.5 mrad probe, 30 x 30 probe
positions, 64 x 64 detector pixels), stored as quantised noise-free
intensities; :func:`load_multislice` draws Poisson counts at the requested dose
with a fixed seed, so every user and test sees the same counts.

- Scene ``"A"``: a ZrCuAl-like metallic glass, 6 nm thick, with fcc Cu [001]
  nanocrystals (in-plane rotations 0° and 30°, and one at 15° tilted 3° off the
  zone axis) and B2 CuZr [111] nanocrystals (10° and 40°), each filling at most
  a third of the thickness.
- Scene ``"B"``: the same glass 8 nm thick with precipitates at the exit
  surface: hcp Zr [0001] (5°, 25°, 45°) and fcc Cu [011] (20°, 110°).
"""

import json
import operator
from pathlib import Path

import numpy as np

__all__ = ["load_multislice", "multislice_path"]

_FILES = Path(__file__).resolve().parent / "_validation_files"
SCENES = ("A", "B")


def multislice_path(scene="A"):
    """Path of the shipped file of a scene.

    Parameters
    ----------
    scene : {"A", "B"}

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> multislice_path("A").name
    'multislice_A.npz'
    """
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {', '.join(map(repr, SCENES))}, got {scene!r}.")
    return _FILES / f"multislice_{scene}.npz"


def _airy(radius_A, semiangle_mrad, wavelength_A):
    """Intensity of an aberration-free probe (Airy disc) at ``radius_A``, peak 1."""
    from scipy.special import j1

    v = 2 * np.pi * semiangle_mrad * 1e-3 * radius_A / wavelength_A
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(v > 0, (2 * j1(v) / np.where(v > 0, v, 1.0)) ** 2, 1.0)
    return out


def _probe_weighted(record, oversample=8):
    """Class and crystal thickness fractions averaged over the probe intensity."""
    params = record["params"]
    extent, n = params["extent_A"], params["scan_gpts"]
    m = n * oversample
    step = extent / m
    y, x = np.mgrid[0:m, 0:m] * step
    crystals = record["crystals"]
    fine = np.zeros((len(crystals), m, m))
    for c, crystal in enumerate(crystals):
        dx = x - crystal["center"][0]
        dy = y - crystal["center"][1]
        dx -= extent * np.round(dx / extent)
        dy -= extent * np.round(dy / extent)
        rho2 = (dx**2 + dy**2) / crystal["radius"] ** 2
        fine[c] = 2 * crystal["half"] * np.sqrt(np.clip(1 - rho2, 0, None)) / record["thickness_A"]
    energy = params["energy_eV"]
    # Relativistic electron wavelength in Å.
    wavelength = 12.2643 / np.sqrt(energy * (1 + 0.97845e-6 * energy))
    ry = np.minimum(y, extent - y)
    rx = np.minimum(x, extent - x)
    kernel = _airy(np.hypot(ry, rx), params["semiangle_mrad"], wavelength)
    kernel /= kernel.sum()
    blurred = np.real(np.fft.ifft2(np.fft.fft2(fine) * np.fft.fft2(kernel)))
    crystal_maps = blurred[:, ::oversample, ::oversample]
    classes = record["classes"]
    fractions = np.zeros((len(classes), n, n))
    for c, crystal in enumerate(crystals):
        fractions[classes.index(crystal["phase"])] += crystal_maps[c]
    fractions[0] = 1.0 - fractions[1:].sum(axis=0)
    return fractions.astype(np.float32), crystal_maps.astype(np.float32)


def load_multislice(scene="A", dose=2000, seed=0):
    """Load a multislice 4D-STEM scene with Poisson counts and its ground truth.

    Parameters
    ----------
    scene : {"A", "B"}
        Which simulated specimen (see the module description).
    dose : float or None
        Expected electrons per diffraction pattern (the simulation conserves
        the beam, so every pattern's expectation sums to it); ``None`` returns
        the noise-free expectation at 2000 electrons as the data.
    seed : int
        Seed of the Poisson draw (``numpy.random.default_rng``).

    Returns
    -------
    dict
        ``data``: counts, uint16 array (30, 30, 64, 64), scan rows/columns then
        detector rows/columns (float32 expectation when ``dose`` is None);
        ``expected``: float32 noise-free expected counts at ``dose``;
        ``fractions``: (n_classes, 30, 30) thickness fraction of every class
        (``classes[0]`` is the amorphous matrix);
        ``fractions_probe``, ``crystal_maps_probe``: the same weighted by the
        probe's intensity (an Airy disc of the probe's semi-angle, 0.52 nm
        FWHM), i.e. the fractions a probe position illuminates;
        ``classes``: class names; ``crystal_maps``: (n_crystals, 30, 30)
        thickness fraction of each crystal; ``crystal_class``: class index of
        each crystal; ``crystal_rotation_deg``: in-plane rotation of each
        crystal about the beam (counter-clockwise as displayed, detector rows
        growing downwards); ``crystal_tilt_deg``; ``symmetry_deg``: the
        rotation period of each crystal class's zone-axis pattern;
        ``scan_step_nm``, ``detector_scale``: 1/nm per detector pixel,
        ``mrad_per_pixel``; ``parameters``: every simulation parameter and
        the run time, as recorded by the script.

    Raises
    ------
    ValueError
        For an unknown scene, a dose that is not positive or a bad seed.

    Examples
    --------
    >>> scene = load_multislice("A", dose=500, seed=0)
    >>> scene["data"].shape, scene["data"].dtype, scene["classes"][0]
    ((30, 30, 64, 64), dtype('uint16'), 'matrix')
    >>> round(float(scene["data"].sum(axis=(2, 3)).mean()), -1)
    500.0
    """
    path = multislice_path(scene)
    if dose is not None:
        try:
            value = float(dose)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 < value < 30000:
            raise ValueError(
                f"dose must be a number of electrons per pattern above 0 and below 30000, got {dose!r}."
            )
    try:
        seed = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed must be an integer, got {seed!r}.") from None
    with np.load(path) as stored:
        record = json.loads(str(stored["parameters"]))
        params = record["params"]
        unit = params["quantisation"] / params["reference_dose"]
        reference = 2000.0 if dose is None else value
        expected = (stored["expected"].astype(np.float32) * np.float32(unit * reference))
        out = {key: stored[key] for key in ("fractions", "crystal_maps", "crystal_class",
                                            "crystal_rotation_deg", "crystal_tilt_deg")}
    out["fractions_probe"], out["crystal_maps_probe"] = _probe_weighted(record)
    if dose is None:
        data = expected
    else:
        data = np.random.default_rng(seed).poisson(expected).astype(np.uint16)
    out.update(
        data=data, expected=expected, classes=list(record["classes"]),
        symmetry_deg=[record["symmetry_deg"].get(name) for name in record["classes"]],
        scan_step_nm=record["scan_step_A"] / 10.0,
        detector_scale=record["inverse_A_per_pixel"] * 10.0,
        mrad_per_pixel=record["mrad_per_pixel"], parameters=record,
    )
    return out
