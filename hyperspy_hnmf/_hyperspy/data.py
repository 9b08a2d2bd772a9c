"""Synthetic electron-microscopy datasets with a known ground truth, and scores.

Two generators build HyperSpy signals whose true decomposition is known:

- :func:`synthetic_4dstem`: a 4D-STEM scan of an amorphous film (diffuse halo
  rings and the direct beam, present everywhere) with crystalline precipitates of
  several phases, each phase in several in-plane rotations;
- :func:`synthetic_spectrum_image`: an EDS-like spectrum image, a bremsstrahlung
  background everywhere plus the characteristic lines of a few phases in particles.

Both follow the model of HyperSpy's decomposition: the expected counts are
``D = loadings @ factors.T`` with ``D`` of shape ``(n_nav, n_sig)`` (navigation
and signal flattened in row-major order), every factor (pattern or spectrum) sums
to one, and each loading is the number of electrons (or X-ray counts) that
component contributes at each probe position. The data are Poisson samples of
``D``. The truth travels with the signal in ``s.metadata.Ground_truth``, so it
survives ``s.save`` and ``hs.load``; :func:`get_ground_truth` reads it back and
:func:`get_ground_truth_model` rebuilds the noise-free expectation.

:func:`score_decomposition` and :func:`score_signal` compare a decomposition with
the truth: learned and true components are paired by the Hungarian assignment on
the Pearson correlation of their patterns plus that of their maps.
"""

import math
import operator
from dataclasses import dataclass

import numpy as np
from hyperspy.signals import Signal1D, Signal2D
from scipy import ndimage, optimize, special

__all__ = [
    "DecompositionScore",
    "GroundTruth",
    "get_ground_truth",
    "get_ground_truth_model",
    "score_decomposition",
    "score_signal",
    "synthetic_4dstem",
    "synthetic_joint",
    "synthetic_spectrum_image",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
# Navigation positions per chunk of Poisson sampling: about 2**22 values, 32 MB
# for each float64 / int64 temporary whatever the dataset size.
_CHUNK_VALUES = 2**22

# 4D-STEM geometry. The smaller detector side spans +-_G_MAX (1/nm); the direct
# beam is at the detector centre ((n - 1) / 2 in pixels, 0 on the calibrated axes).
_SCAN_STEP_NM = 0.5
_G_MAX = 8.0
_BEAM_SIGMA = 0.3
_SPOT_SIGMA = 0.22
_SPOT_DECAY = 5.0
# Halo: (radius, width) of the amorphous rings in 1/nm, and the share of the halo
# pattern carried by each ring, the diffuse small-angle scattering and the beam.
_HALO_RINGS = ((4.0, 0.45), (7.0, 0.6))
_HALO_RING_SHARES = (0.4, 0.15)
_HALO_DIFFUSE_SHARE, _HALO_DIFFUSE_DECAY = 0.15, 1.5
_HALO_BEAM_SHARE = 0.3
_CRYSTAL_BEAM_SHARE = 0.4
# Reciprocal lattices: name, |a*|, |b*| (1/nm), angle between a* and b* (degrees),
# rotational symmetry (degrees). Phases 3-5 and 6-8 reuse them scaled by
# _LATTICE_SCALES, so every phase has distinct spot radii. The hexagonal a* and
# the square (1, 1) reflection (4.10 1/nm) lie on the first halo ring.
_LATTICES = (
    ("hexagonal", 4.0, 4.0, 60.0, 60.0),
    ("square", 2.9, 2.9, 90.0, 90.0),
    ("rectangular", 2.3, 3.4, 90.0, 180.0),
)
_LATTICE_SCALES = (1.0, 0.82, 1.22)
_MAX_PHASES = len(_LATTICES) * len(_LATTICE_SCALES)
_MAX_ROTATIONS = 6

# Spectrum image: energy range (keV), detector resolution (eV, FWHM at Mn Ka),
# characteristic lines (keV, relative weight) and the phases built from them.
_SI_SCAN_STEP_NM = 1.0
_E_RANGE = 10.24
_BEAM_ENERGY = 15.0
_FWHM_MN_KA, _E_MN_KA = 130.0, 5.8987
_LINES = {
    "O": ((0.525, 1.0),),
    "Mg": ((1.254, 1.0),),
    "Al": ((1.487, 1.0),),
    "Si": ((1.740, 1.0),),
    "Ca": ((3.692, 1.0), (4.013, 0.13)),
    "Ti": ((4.511, 1.0), (4.932, 0.14), (0.452, 0.1)),
    "Cr": ((5.415, 1.0), (5.947, 0.13), (0.573, 0.1)),
    "Fe": ((6.404, 1.0), (7.058, 0.13), (0.705, 0.1)),
    "Ni": ((7.478, 1.0), (8.265, 0.13), (0.851, 0.1)),
    "Cu": ((8.048, 1.0), (8.905, 0.13), (0.930, 0.1)),
    "Zr": ((2.042, 1.0), (2.124, 0.5)),
}
_SI_PHASES = (
    (("Fe", 0.7), ("Cr", 0.3)),
    (("Ti", 0.6), ("O", 0.4)),
    (("Al", 0.5), ("O", 0.5)),
    (("Cu", 0.5), ("Zr", 0.5)),
    (("Ca", 0.4), ("Si", 0.3), ("O", 0.3)),
    (("Ni", 0.6), ("Al", 0.4)),
    (("Mg", 0.6), ("O", 0.4)),
)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """True decomposition of a synthetic signal, in HyperSpy's layout.

    Attributes
    ----------
    factors : ndarray, shape (n_sig, k)
        True patterns (spectra), each column sums to 1; rows are the signal
        pixels flattened in row-major order, as in ``learning_results.factors``.
    loadings : ndarray, shape (n_nav, k)
        True maps: expected counts of each component at each probe position,
        flattened in row-major order, as in ``learning_results.loadings``.
    names : list of str
        Component names, e.g. ``"halo"``, ``"phase0_rot1"``.
    phase : ndarray of int, shape (k,)
        Phase index of each component; -1 for the halo or background.
    rotation_deg : ndarray, shape (k,)
        In-plane rotation of each component in degrees; NaN where it does not
        apply (halo, background, spectra).
    navigation_shape, signal_shape : tuple of int
        Shapes, in array order, to which ``loadings`` and ``factors`` unfold.

    Examples
    --------
    >>> s = synthetic_4dstem(scan_shape=(8, 8), detector_shape=(16, 16), n_phases=1)
    >>> truth = get_ground_truth(s)
    >>> truth.n_components, truth.factors.shape, truth.loadings.shape
    (3, (256, 3), (64, 3))
    """

    factors: np.ndarray
    loadings: np.ndarray
    names: list
    phase: np.ndarray
    rotation_deg: np.ndarray
    navigation_shape: tuple
    signal_shape: tuple

    @property
    def n_components(self):
        """Number of true components ``k``."""
        return self.factors.shape[1]


@dataclass(frozen=True, eq=False)
class DecompositionScore:
    """Agreement between a learned decomposition and the ground truth.

    Produced by :func:`score_decomposition`; ``print`` it for a table.

    Attributes
    ----------
    pairs : tuple of (int, int)
        Matched ``(true_index, learned_index)`` pairs, in the order of the true
        components.
    matched : ndarray of int, shape (k_true,)
        Learned component matched to each true component, -1 if none.
    pattern_correlation, map_correlation : ndarray, shape (k_true,)
        Pearson correlation of each true component's pattern (map) with its
        matched learned one; 0 for unmatched true components.
    pattern_correlation_matrix, map_correlation_matrix : ndarray
        All correlations, shape ``(k_true, k_learned)``.
    unmatched_learned : tuple of int
        Learned components left without a partner (when ``k_learned > k_true``).
    names : tuple of str
        Names of the true components.

    Examples
    --------
    >>> truth = np.eye(4)[:, :2]
    >>> score = score_decomposition(truth[:, ::-1], truth[:, ::-1], truth, truth)
    >>> score.matched.tolist(), score.score
    ([1, 0], 1.0)
    """

    pairs: tuple
    matched: np.ndarray
    pattern_correlation: np.ndarray
    map_correlation: np.ndarray
    pattern_correlation_matrix: np.ndarray
    map_correlation_matrix: np.ndarray
    unmatched_learned: tuple
    names: tuple

    @property
    def unmatched_true(self):
        """True components without a learned partner (when ``k_learned < k_true``)."""
        return tuple(int(i) for i in np.flatnonzero(self.matched < 0))

    @property
    def mean_pattern_correlation(self):
        """Mean pattern correlation over all true components (unmatched count 0)."""
        return float(self.pattern_correlation.mean())

    @property
    def mean_map_correlation(self):
        """Mean map correlation over all true components (unmatched count 0)."""
        return float(self.map_correlation.mean())

    @property
    def score(self):
        """Mean of the mean pattern and mean map correlations; 1 is perfect."""
        return 0.5 * (self.mean_pattern_correlation + self.mean_map_correlation)

    def __str__(self):
        width = max([len("true component")] + [len(n) for n in self.names])
        lines = [f"{'true component':<{width}}  learned  pattern r    map r"]
        for i, name in enumerate(self.names):
            if self.matched[i] < 0:
                lines.append(f"{name:<{width}}  {'-':>7}  {'-':>9}  {'-':>7}")
            else:
                lines.append(
                    f"{name:<{width}}  {self.matched[i]:>7d}  "
                    f"{self.pattern_correlation[i]:>9.3f}  {self.map_correlation[i]:>7.3f}"
                )
        lines.append(
            f"{f'mean ({len(self.names)} true)':<{width}}  {'':>7}  "
            f"{self.mean_pattern_correlation:>9.3f}  {self.mean_map_correlation:>7.3f}"
        )
        lines.append(f"score: {self.score:.3f}")
        if self.unmatched_learned:
            listed = ", ".join(str(j) for j in self.unmatched_learned)
            lines.append(f"unmatched learned components: {listed}")
        return "\n".join(lines)


def synthetic_4dstem(
    scan_shape=(128, 128),
    detector_shape=(64, 64),
    n_phases=3,
    n_rotations=2,
    dose=200.0,
    halo=True,
    probe_fwhm=2.0,
    particle_radius=None,
    particles_per_component=3,
    random_state=0,
    dtype="float32",
    noise=True,
    mixed_rotations=False,
    lazy=False,
):
    """Synthetic 4D-STEM scan of crystalline precipitates in an amorphous film.

    The true components are the amorphous halo (two broad rings, diffuse
    small-angle scattering and the direct beam) and one component per phase and
    in-plane rotation (the direct beam and Bragg spots on the phase's reciprocal
    lattice: hexagonal, square or rectangular, then the same lattices rescaled for
    phases 3 to 8). Spots of the hexagonal and square phases lie on the first halo
    ring. The halo is present everywhere, weighted by a smoothly varying
    thickness and thinned where particles replace the film; each (phase, rotation)
    occupies a few roughly round particles at random places, some overlapping
    particles of another component. All maps are blurred by a Gaussian probe.

    Parameters
    ----------
    scan_shape : tuple of int
        ``(ny, nx)`` probe positions, each at least 4. The step is 0.5 nm.
    detector_shape : tuple of int
        ``(kv, ku)`` detector pixels, each at least 16. The smaller side spans
        -8 to 8 1/nm; the direct beam is at the centre.
    n_phases : int
        Number of crystalline phases, 1 to 9.
    n_rotations : int
        In-plane rotations per phase, 1 to 6, evenly spaced within the lattice's
        rotational symmetry (with a random offset per phase).
    dose : float
        Mean number of electrons per pattern (over the scan), > 0.
    halo : bool
        Include the amorphous film (halo component).
    probe_fwhm : float
        Full width at half maximum of the probe, in scan pixels (>= 0; 0 leaves
        the maps sharp).
    particle_radius : float or None
        Mean particle radius in scan pixels (each particle varies by +-25 %);
        None uses ``max(2, min(scan_shape) / 16)``.
    particles_per_component : int
        Number of particles per (phase, rotation), >= 1.
    random_state : None, int or numpy.random.Generator
        Seed; the same integer always gives the same data.
    dtype : str or numpy.dtype
        Data type of the data: floating point, or integer when ``noise=True``.
    noise : bool
        Poisson-sample the counts; if False the data are the expectation
        ``loadings @ factors.T``.
    mixed_rotations : bool
        Plant a two-level structure: every particle of a phase holds all of
        its rotations, as stripe domains about two particle radii wide
        (along a random direction per phase), instead of one rotation per
        particle. The rotations of a phase then co-occur spatially: the
        fine components (phase × rotation) group into coarse ones (phases),
        given by ``Ground_truth.phase``. Each phase gets
        ``particles_per_component * n_rotations`` particles, so a rotation
        covers about as much of the scan as without mixing.
    lazy : bool
        Return a lazy signal whose counts are drawn chunk by chunk when they
        are read (rows of the scan, about 64 MB of float32 each): the data
        never sit in memory as a whole, so scans larger than memory can be
        made and saved (``s.save("big.zspy")`` writes chunk by chunk). The
        ground truth is the same as with ``lazy=False``; the Poisson noise
        is another realization (each chunk has its own seed, derived from
        ``random_state``), identical between reads.

    Returns
    -------
    hyperspy.signals.Signal2D
        Navigation ``(y, x)`` in nm, signal ``(ky, kx)`` in 1/nm. The truth is in
        ``s.metadata.Ground_truth`` (``factors``, ``loadings``,
        ``component_names``, ``phase``, ``rotation_deg``, ``dose``, ``lattice``,
        ``navigation_shape``, ``signal_shape`` and the ``Parameters`` of this
        call). Components are ordered halo, then ``phase0_rot0``,
        ``phase0_rot1``, ...

    Raises
    ------
    ValueError
        If an argument is out of range.

    See Also
    --------
    get_ground_truth, get_ground_truth_model, score_signal

    Notes
    -----
    Peak memory is the output array plus about 120 MB: the expectation is formed
    and sampled in chunks of probe positions. The ground truth describes the
    whole scan; slicing the signal does not slice ``metadata.Ground_truth``.

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_4dstem, get_ground_truth
    >>> s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32))
    >>> s
    <Signal2D, title: Synthetic 4D-STEM: halo + 3 phases x 2 rotations, dimensions: (16, 16|32, 32)>
    >>> s.data.dtype
    dtype('float32')
    >>> truth = get_ground_truth(s)
    >>> truth.names
    ['halo', 'phase0_rot0', 'phase0_rot1', 'phase1_rot0', 'phase1_rot1', 'phase2_rot0', 'phase2_rot1']
    >>> truth.factors.shape, truth.loadings.shape
    ((1024, 7), (256, 7))
    >>> round(float(truth.loadings.sum(axis=1).mean()), 6)
    200.0
    """
    scan_shape = _check_shape("scan_shape", scan_shape, 4)
    detector_shape = _check_shape("detector_shape", detector_shape, 16)
    n_phases = _check_int("n_phases", n_phases, 1, _MAX_PHASES)
    n_rotations = _check_int("n_rotations", n_rotations, 1, _MAX_ROTATIONS)
    dose = _check_positive("dose", dose)
    probe_fwhm = _check_positive("probe_fwhm", probe_fwhm, allow_zero=True)
    if particle_radius is None:
        particle_radius = max(2.0, min(scan_shape) / 16.0)
    particle_radius = _check_positive("particle_radius", particle_radius)
    if particle_radius > min(scan_shape) / 2.0:
        raise ValueError(
            f"particle_radius must be at most half the smaller scan side "
            f"({min(scan_shape) / 2.0:g} pixels), got {particle_radius:g}"
        )
    particles_per_component = _check_int(
        "particles_per_component", particles_per_component, 1, None
    )
    dtype = _check_dtype(dtype, noise)
    halo = bool(halo)
    rng = np.random.default_rng(random_state)

    scale = 2.0 * _G_MAX / min(detector_shape)
    g_rows, g_cols = _detector_coordinates(detector_shape, scale)
    patterns, names, phase, rotation, lattice = [], [], [], [], []
    if halo:
        patterns.append(_halo_pattern(detector_shape, scale, g_rows, g_cols))
        names.append("halo")
        phase.append(-1)
        rotation.append(np.nan)
    g_limit = math.hypot(*detector_shape) * scale / 2.0 + 4.0 * _SPOT_SIGMA
    for p in range(n_phases):
        kind, a_star, b_star, gamma, symmetry = _LATTICES[p % len(_LATTICES)]
        spacing = _LATTICE_SCALES[p // len(_LATTICES)]
        spots, intensity = _lattice_spots(
            a_star * spacing, b_star * spacing, gamma, g_limit, rng
        )
        step = symmetry / n_rotations
        offset = rng.uniform(0.0, step)
        lattice.append(f"{kind} a*={a_star * spacing:.2f} b*={b_star * spacing:.2f} 1/nm")
        for j in range(n_rotations):
            angle = offset + j * step
            patterns.append(
                _crystal_pattern(detector_shape, scale, spots, intensity, angle)
            )
            names.append(f"phase{p}_rot{j}")
            phase.append(p)
            rotation.append(angle)
    factors = np.stack([pattern.ravel() for pattern in patterns], axis=1)

    if mixed_rotations:
        phases = _particle_maps(rng, scan_shape, n_phases,
                                particles_per_component * n_rotations, particle_radius)
        crystal = np.concatenate(
            [phase_map * _domain_fractions(rng, scan_shape, n_rotations,
                                           period=4.0 * particle_radius)
             for phase_map in phases]
        )
    else:
        crystal = _particle_maps(
            rng, scan_shape, n_phases * n_rotations, particles_per_component,
            particle_radius,
        )
    maps = [_thickness(rng, scan_shape) * (1.0 - 0.7 * crystal.sum(axis=0))] if halo else []
    maps.extend(crystal)
    loadings = _blur_and_scale(maps, probe_fwhm, dose)

    if lazy:
        data = _lazy_sample(loadings, factors, scan_shape + detector_shape, dtype, noise, rng)
    else:
        data = _sample(loadings, factors, scan_shape + detector_shape, dtype, noise, rng)
    axes = [
        _axis("y", "nm", _SCAN_STEP_NM, 0.0, scan_shape[0], True),
        _axis("x", "nm", _SCAN_STEP_NM, 0.0, scan_shape[1], True),
        _axis("ky", "1/nm", scale, -scale * (detector_shape[0] - 1) / 2.0,
              detector_shape[0], False),
        _axis("kx", "1/nm", scale, -scale * (detector_shape[1] - 1) / 2.0,
              detector_shape[1], False),
    ]
    title = "Synthetic 4D-STEM: " + ("halo + " if halo else "")
    title += f"{n_phases} phases x {n_rotations} rotations"
    parameters = dict(
        generator="synthetic_4dstem", scan_shape=scan_shape,
        detector_shape=detector_shape, n_phases=n_phases, n_rotations=n_rotations,
        dose=dose, halo=halo, probe_fwhm=probe_fwhm,
        particle_radius=particle_radius,
        particles_per_component=particles_per_component,
        mixed_rotations=bool(mixed_rotations),
        random_state=_seed_for_metadata(random_state), dtype=dtype.name, noise=noise,
    )
    signal = Signal2D(data, axes=axes)
    if lazy:
        signal = signal.as_lazy()
    _finish_signal(
        signal, title, noise, factors, loadings, names, phase, rotation, dose,
        parameters, {"lattice": lattice},
    )
    return signal


def synthetic_spectrum_image(
    scan_shape=(64, 64),
    n_channels=1024,
    n_components=4,
    dose=1000.0,
    probe_fwhm=2.0,
    random_state=0,
    dtype="float32",
    noise=True,
):
    """Synthetic EDS-like spectrum image with a known decomposition.

    Component 0 is a smooth bremsstrahlung background (Kramers' law with
    low-energy absorption) present everywhere with a smoothly varying
    thickness; components 1 and up are phases, each the characteristic lines of
    a few elements (Gaussian peaks of energy-dependent width) occupying a few
    roughly round particles, some overlapping. Maps are blurred by the probe.

    Parameters
    ----------
    scan_shape : tuple of int
        ``(ny, nx)`` probe positions, each at least 4. The step is 1 nm.
    n_channels : int
        Number of energy channels (>= 64) spanning 0 to 10.24 keV.
    n_components : int
        Number of true components, background included, 1 to 8. The phases are,
        in order, Fe-Cr, Ti-O, Al-O, Cu-Zr, Ca-Si-O, Ni-Al, Mg-O.
    dose : float
        Mean number of counts per spectrum (over the scan), > 0.
    probe_fwhm : float
        Full width at half maximum of the probe in scan pixels (>= 0).
    random_state : None, int or numpy.random.Generator
        Seed; the same integer always gives the same data.
    dtype : str or numpy.dtype
        Data type: floating point, or integer when ``noise=True``.
    noise : bool
        Poisson-sample the counts; if False return the expectation.

    Returns
    -------
    hyperspy.signals.Signal1D
        Navigation ``(y, x)`` in nm, signal ``Energy`` in keV, with the truth in
        ``s.metadata.Ground_truth`` as for :func:`synthetic_4dstem` (components
        ``"background"``, ``"phase0"``, ...; ``elements`` lists each phase's
        elements; ``rotation_deg`` is NaN).

    Raises
    ------
    ValueError
        If an argument is out of range.

    See Also
    --------
    synthetic_4dstem, get_ground_truth, score_signal

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_spectrum_image, get_ground_truth
    >>> s = synthetic_spectrum_image(scan_shape=(16, 16), n_channels=256)
    >>> s
    <Signal1D, title: Synthetic spectrum image: background + 3 phases, dimensions: (16, 16|256)>
    >>> s.axes_manager.signal_axes[0].units
    'keV'
    >>> get_ground_truth(s).names
    ['background', 'phase0', 'phase1', 'phase2']
    """
    scan_shape = _check_shape("scan_shape", scan_shape, 4)
    n_channels = _check_int("n_channels", n_channels, 64, None)
    n_components = _check_int("n_components", n_components, 1, len(_SI_PHASES) + 1)
    dose = _check_positive("dose", dose)
    probe_fwhm = _check_positive("probe_fwhm", probe_fwhm, allow_zero=True)
    dtype = _check_dtype(dtype, noise)
    rng = np.random.default_rng(random_state)

    scale = _E_RANGE / n_channels
    edges = np.arange(n_channels + 1) * scale
    centres = edges[:-1] + scale / 2.0
    energy = np.maximum(centres, scale / 2.0)
    background = (_BEAM_ENERGY - energy) / energy * np.exp(-0.3 / energy**3)
    spectra = [background / background.sum()]
    names, phase, elements = ["background"], [-1], []
    for p in range(n_components - 1):
        spectrum = np.zeros(n_channels)
        for element, fraction in _SI_PHASES[p]:
            for line, weight in _LINES[element]:
                fwhm = math.sqrt(2.5 * (line - _E_MN_KA) * 1000.0 + _FWHM_MN_KA**2)
                sigma = fwhm * 1e-3 * _FWHM_TO_SIGMA
                spectrum += fraction * weight * np.diff(special.ndtr((edges - line) / sigma))
        spectra.append(spectrum / spectrum.sum())
        names.append(f"phase{p}")
        phase.append(p)
        elements.append("-".join(element for element, _ in _SI_PHASES[p]))
    factors = np.stack(spectra, axis=1)

    radius = max(2.0, min(scan_shape) / 8.0)
    particles = _particle_maps(rng, scan_shape, n_components - 1, 3, radius)
    maps = [_thickness(rng, scan_shape)] + list(1.5 * particles)
    loadings = _blur_and_scale(maps, probe_fwhm, dose)

    data = _sample(loadings, factors, scan_shape + (n_channels,), dtype, noise, rng)
    axes = [
        _axis("y", "nm", _SI_SCAN_STEP_NM, 0.0, scan_shape[0], True),
        _axis("x", "nm", _SI_SCAN_STEP_NM, 0.0, scan_shape[1], True),
        _axis("Energy", "keV", scale, 0.0, n_channels, False),
    ]
    title = f"Synthetic spectrum image: background + {n_components - 1} phases"
    parameters = dict(
        generator="synthetic_spectrum_image", scan_shape=scan_shape,
        n_channels=n_channels, n_components=n_components, dose=dose,
        probe_fwhm=probe_fwhm, random_state=_seed_for_metadata(random_state),
        dtype=dtype.name, noise=noise,
    )
    signal = Signal1D(data, axes=axes)
    _finish_signal(
        signal, title, noise, factors, loadings, names, phase,
        [np.nan] * n_components, dose, parameters, {"elements": elements},
    )
    return signal


def get_ground_truth(signal):
    """Read the ground truth stored by a synthetic-data generator.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        A signal made by :func:`synthetic_4dstem` or
        :func:`synthetic_spectrum_image`, possibly saved and loaded again.

    Returns
    -------
    GroundTruth

    Raises
    ------
    ValueError
        If ``signal.metadata`` has no complete ``Ground_truth`` node.

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_4dstem, get_ground_truth
    >>> s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32), n_phases=1)
    >>> truth = get_ground_truth(s)
    >>> truth.names, truth.phase.tolist()
    (['halo', 'phase0_rot0', 'phase0_rot1'], [-1, 0, 0])
    >>> truth.factors.sum(axis=0).round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    metadata = signal.metadata
    if not metadata.has_item("Ground_truth"):
        raise ValueError(
            "signal.metadata has no Ground_truth; make the signal with "
            "synthetic_4dstem or synthetic_spectrum_image"
        )
    node = metadata.Ground_truth
    keys = ("factors", "loadings", "component_names", "phase", "rotation_deg",
            "navigation_shape", "signal_shape")
    missing = [key for key in keys if not node.has_item(key)]
    if missing:
        raise ValueError(f"signal.metadata.Ground_truth lacks {', '.join(missing)}")
    return GroundTruth(
        factors=np.asarray(node.factors, dtype=float),
        loadings=np.asarray(node.loadings, dtype=float),
        names=[str(name) for name in node.component_names],
        phase=np.asarray(node.phase, dtype=int),
        rotation_deg=np.asarray(node.rotation_deg, dtype=float),
        navigation_shape=tuple(int(n) for n in node.navigation_shape),
        signal_shape=tuple(int(n) for n in node.signal_shape),
    )


def get_ground_truth_model(signal, dtype="float32"):
    """Noise-free expectation ``loadings @ factors.T`` as a signal like ``signal``.

    The counterpart of HyperSpy's ``get_decomposition_model`` for the truth.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        A synthetic signal (see :func:`get_ground_truth`) whose shape still
        matches its ground truth.
    dtype : str or numpy.dtype
        Floating-point type of the model's data.

    Returns
    -------
    hyperspy.signals.BaseSignal
        Same class, axes and metadata as ``signal``, title prefixed "Ground truth
        model of".

    Raises
    ------
    ValueError
        If ``signal`` has no ground truth, its shape no longer matches it, or
        ``dtype`` is not floating point.

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_4dstem, get_ground_truth_model
    >>> s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32))
    >>> model = get_ground_truth_model(s)
    >>> model.data.shape, model.data.dtype
    ((16, 16, 32, 32), dtype('float32'))
    >>> round(float(model.data.sum(axis=(2, 3)).mean()), 2)
    200.0
    """
    truth = get_ground_truth(signal)
    shape = truth.navigation_shape + truth.signal_shape
    if signal.data.shape != shape:
        raise ValueError(
            f"signal data shape {signal.data.shape} does not match its ground "
            f"truth {shape}; was the signal sliced or transposed?"
        )
    dtype = _check_dtype(dtype, noise=False)
    data = _sample(truth.loadings, truth.factors, shape, dtype, False, None)
    axes_dict = signal.axes_manager.as_dictionary()
    axes = [axes_dict[f"axis-{i}"] for i in range(len(axes_dict))]
    model = signal.__class__(
        data, axes=axes, metadata=signal.metadata.as_dictionary(),
        original_metadata=signal.original_metadata.as_dictionary(),
    )
    model.metadata.General.title = f"Ground truth model of {signal.metadata.General.title}"
    return model


def score_decomposition(learned_factors, learned_loadings, truth_factors, truth_loadings,
                        names=None):
    """Match learned components to true ones and score the match.

    Learned and true components are paired one to one by the Hungarian
    assignment (:func:`scipy.optimize.linear_sum_assignment`) maximising the sum
    of the Pearson correlations of patterns plus those of maps. Correlation is
    invariant to scaling, so a rescaled or reordered copy of the truth scores 1.
    A column without variance correlates 0 with everything. Rows containing NaN
    in the learned arrays (HyperSpy's masked positions) are left out.

    Parameters
    ----------
    learned_factors : array_like, shape (n_sig, k_learned)
        Learned patterns, as ``learning_results.factors``.
    learned_loadings : array_like, shape (n_nav, k_learned)
        Learned maps, as ``learning_results.loadings``.
    truth_factors : array_like, shape (n_sig, k_true)
    truth_loadings : array_like, shape (n_nav, k_true)
        True patterns and maps.
    names : sequence of str, optional
        Names of the true components, for the table; default ``"c0"``, ``"c1"``...

    Returns
    -------
    DecompositionScore
        The pairs, per-component correlations (0 for true components left
        unmatched when ``k_learned < k_true``), their means over the true
        components and an overall ``score``.

    Raises
    ------
    ValueError
        If the arrays are not 2D, their row counts disagree, or no row is finite.

    Examples
    --------
    >>> import numpy as np
    >>> from hyperspy_hnmf.data import score_decomposition
    >>> rng = np.random.default_rng(0)
    >>> W, H = rng.random((50, 3)), rng.random((40, 3))
    >>> result = score_decomposition(2 * W[:, [2, 0, 1]], H[:, [2, 0, 1]], W, H)
    >>> result.pairs
    ((0, 1), (1, 2), (2, 0))
    >>> round(result.score, 6)
    1.0
    >>> round(score_decomposition(W[:, :2], H[:, :2], W, H).mean_map_correlation, 3)
    0.667
    """
    learned_factors, truth_factors = _check_pair(
        "learned_factors", learned_factors, "truth_factors", truth_factors)
    learned_loadings, truth_loadings = _check_pair(
        "learned_loadings", learned_loadings, "truth_loadings", truth_loadings)
    k_true, k_learned = truth_factors.shape[1], learned_factors.shape[1]
    if truth_loadings.shape[1] != k_true or learned_loadings.shape[1] != k_learned:
        raise ValueError(
            f"factors and loadings disagree on the number of components: learned "
            f"{k_learned} and {learned_loadings.shape[1]}, true {k_true} and "
            f"{truth_loadings.shape[1]}"
        )
    if names is None:
        names = [f"c{i}" for i in range(k_true)]
    if len(names) != k_true:
        raise ValueError(f"names has {len(names)} entries for {k_true} true components")
    patterns = _correlation_matrix(truth_factors, learned_factors)
    maps = _correlation_matrix(truth_loadings, learned_loadings)
    rows, cols = optimize.linear_sum_assignment(patterns + maps, maximize=True)
    matched = np.full(k_true, -1)
    matched[rows] = cols
    pattern_r = np.zeros(k_true)
    map_r = np.zeros(k_true)
    pattern_r[rows] = patterns[rows, cols]
    map_r[rows] = maps[rows, cols]
    return DecompositionScore(
        pairs=tuple((int(i), int(j)) for i, j in zip(rows, cols)),
        matched=matched,
        pattern_correlation=pattern_r,
        map_correlation=map_r,
        pattern_correlation_matrix=patterns,
        map_correlation_matrix=maps,
        unmatched_learned=tuple(int(j) for j in np.setdiff1d(np.arange(k_learned), cols)),
        names=tuple(str(name) for name in names),
    )


def score_signal(signal, truth=None):
    """Score a signal's decomposition against its ground truth.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        A signal after ``signal.decomposition(...)``; its
        ``learning_results.factors`` and ``loadings`` are scored.
    truth : GroundTruth, optional
        The truth; by default read from ``signal.metadata.Ground_truth``.

    Returns
    -------
    DecompositionScore

    Raises
    ------
    ValueError
        If the signal has no decomposition results or no ground truth, or the
        shapes of results and truth disagree.

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_4dstem, score_signal
    >>> s = synthetic_4dstem(scan_shape=(16, 16), detector_shape=(32, 32),
    ...                      n_phases=1, n_rotations=2, dose=2000, noise=False)
    >>> import hyperspy_hnmf
    >>> s.decomposition(algorithm="hnmf", output_dimension=3, print_info=False,
    ...                 max_iter=2000, random_state=0)
    >>> result = score_signal(s)
    >>> result.names
    ('halo', 'phase0_rot0', 'phase0_rot1')
    >>> result.score > 0.9
    True
    """
    if truth is None:
        truth = get_ground_truth(signal)
    learning = signal.learning_results
    if learning.factors is None or learning.loadings is None:
        raise ValueError("signal has no decomposition results; run signal.decomposition() first")
    return score_decomposition(
        learning.factors, learning.loadings, truth.factors, truth.loadings,
        names=truth.names,
    )


def _check_shape(name, value, minimum):
    try:
        shape = tuple(operator.index(n) for n in value)
    except TypeError:
        shape = ()
    if len(shape) != 2 or min(shape) < minimum:
        raise ValueError(f"{name} must be two integers >= {minimum}, got {value!r}")
    return shape


def _check_int(name, value, low, high):
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < low or (
            high is not None and number > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return number


def _check_positive(name, value, allow_zero=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


def _check_dtype(dtype, noise):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or not (dtype.kind == "f" or (noise and dtype.kind in "iu")):
        raise ValueError(
            "dtype must be a floating-point type, or an integer type when "
            f"noise=True; got {dtype!r}"
        )
    return dtype


def _check_pair(learned_name, learned, truth_name, truth):
    learned = np.asarray(learned, dtype=float)
    truth = np.asarray(truth, dtype=float)
    for name, array in ((learned_name, learned), (truth_name, truth)):
        if array.ndim != 2:
            raise ValueError(f"{name} must be 2D (rows, components), got shape {array.shape}")
    if learned.shape[0] != truth.shape[0]:
        raise ValueError(
            f"{learned_name} has {learned.shape[0]} rows but {truth_name} has "
            f"{truth.shape[0]}; do they describe the same signal?"
        )
    finite = np.isfinite(learned).all(axis=1) & np.isfinite(truth).all(axis=1)
    if not finite.any():
        raise ValueError(f"{learned_name} and {truth_name} have no finite row in common")
    return learned[finite], truth[finite]


def _correlation_matrix(a, b):
    """Pearson correlations of the columns of ``a`` with those of ``b``."""
    a_centred = a - a.mean(axis=0)
    b_centred = b - b.mean(axis=0)
    norm_a = np.sqrt((a_centred**2).sum(axis=0))
    norm_b = np.sqrt((b_centred**2).sum(axis=0))
    # A column is constant when its spread is at rounding level of its size.
    norm_a[norm_a <= 1e-12 * np.sqrt((a**2).sum(axis=0))] = 0.0
    norm_b[norm_b <= 1e-12 * np.sqrt((b**2).sum(axis=0))] = 0.0
    denominator = np.outer(norm_a, norm_b)
    correlation = np.zeros_like(denominator)
    np.divide(a_centred.T @ b_centred, denominator, out=correlation, where=denominator > 0)
    return np.clip(correlation, -1.0, 1.0)


def _detector_coordinates(detector_shape, scale):
    rows = (np.arange(detector_shape[0]) - (detector_shape[0] - 1) / 2.0) * scale
    cols = (np.arange(detector_shape[1]) - (detector_shape[1] - 1) / 2.0) * scale
    return rows[:, None], cols[None, :]


def _render_spots(detector_shape, scale, row, col, sigma, weight):
    """Sum of pixel-integrated 2D Gaussians at ``(row, col)`` (1/nm from the centre)."""
    row = np.atleast_1d(row) / scale + (detector_shape[0] - 1) / 2.0
    col = np.atleast_1d(col) / scale + (detector_shape[1] - 1) / 2.0
    sigma_px = sigma / scale
    row_edges = np.arange(detector_shape[0] + 1) - 0.5
    col_edges = np.arange(detector_shape[1] + 1) - 0.5
    row_mass = np.diff(special.ndtr((row_edges - row[:, None]) / sigma_px), axis=1)
    col_mass = np.diff(special.ndtr((col_edges - col[:, None]) / sigma_px), axis=1)
    return (np.atleast_1d(weight)[:, None] * row_mass).T @ col_mass


def _halo_pattern(detector_shape, scale, g_rows, g_cols):
    radius = np.hypot(g_rows, g_cols)
    parts = [np.exp(-0.5 * ((radius - r0) / width) ** 2) for r0, width in _HALO_RINGS]
    parts.append(np.exp(-radius / _HALO_DIFFUSE_DECAY))
    shares = _HALO_RING_SHARES + (_HALO_DIFFUSE_SHARE,)
    pattern = sum(share * part / part.sum() for share, part in zip(shares, parts))
    pattern += _HALO_BEAM_SHARE * _render_spots(detector_shape, scale, 0.0, 0.0,
                                                _BEAM_SIGMA, 1.0)
    return pattern / pattern.sum()


def _lattice_spots(a_star, b_star, gamma_deg, g_limit, rng):
    """Reciprocal-lattice points within ``g_limit`` and Friedel-symmetric intensities.

    Returns the points as ``(x, y)`` in 1/nm (y pointing up) and their
    intensities: a random structure factor times a Debye-Waller-like decay.
    """
    gamma = math.radians(gamma_deg)
    n = int(math.ceil(g_limit / (min(a_star, b_star) * math.sin(gamma)))) + 1
    h, k = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    structure = rng.uniform(0.3, 1.0, size=h.shape)
    structure = 0.5 * (structure + structure[::-1, ::-1])
    x = h * a_star + k * b_star * math.cos(gamma)
    y = k * b_star * math.sin(gamma)
    g = np.hypot(x, y)
    keep = (g > 0) & (g <= g_limit)
    intensity = structure[keep] * np.exp(-((g[keep] / _SPOT_DECAY) ** 2))
    return np.stack([x[keep], y[keep]]), intensity


def _crystal_pattern(detector_shape, scale, spots, intensity, angle_deg):
    """Direct beam plus the spots rotated counter-clockwise (as displayed) by ``angle_deg``."""
    angle = math.radians(angle_deg)
    x = spots[0] * math.cos(angle) - spots[1] * math.sin(angle)
    y = spots[0] * math.sin(angle) + spots[1] * math.cos(angle)
    bragg = _render_spots(detector_shape, scale, -y, x, _SPOT_SIGMA, intensity)
    beam = _render_spots(detector_shape, scale, 0.0, 0.0, _BEAM_SIGMA, 1.0)
    pattern = (1.0 - _CRYSTAL_BEAM_SHARE) * bragg / bragg.sum() + _CRYSTAL_BEAM_SHARE * beam
    return pattern / pattern.sum()


def _particle_maps(rng, scan_shape, n_maps, n_particles, radius):
    """Occupancy (0 to 1) of roughly round particles, shape ``(n_maps, ny, nx)``.

    The first particle of every map after the first overlaps a particle already
    placed; the others are placed uniformly. Where particles of several maps
    overlap, the occupancies are scaled so their total stays at most 1.
    """
    rows, cols = np.mgrid[0:scan_shape[0], 0:scan_shape[1]].astype(float)
    maps = np.zeros((n_maps,) + scan_shape)
    placed = []
    for m in range(n_maps):
        for i in range(n_particles):
            r = radius * rng.uniform(0.75, 1.25)
            if m > 0 and i == 0:
                cy, cx, r_other = placed[rng.integers(len(placed))]
                direction = rng.uniform(0.0, 2.0 * math.pi)
                distance = rng.uniform(0.5, 0.9) * (r + r_other)
                cy = min(max(cy + distance * math.sin(direction), 0.0), scan_shape[0] - 1.0)
                cx = min(max(cx + distance * math.cos(direction), 0.0), scan_shape[1] - 1.0)
            else:
                cy = rng.uniform(0.0, scan_shape[0] - 1.0)
                cx = rng.uniform(0.0, scan_shape[1] - 1.0)
            placed.append((cy, cx, r))
            a2, a3 = rng.uniform(0.0, 0.15, size=2)
            p2, p3 = rng.uniform(0.0, 2.0 * math.pi, size=2)
            theta = np.arctan2(rows - cy, cols - cx)
            boundary = r * (1.0 + a2 * np.cos(2.0 * theta - p2) + a3 * np.cos(3.0 * theta - p3))
            inside = np.hypot(rows - cy, cols - cx) <= boundary
            maps[m] += rng.uniform(0.6, 1.0) * inside
    total = maps.sum(axis=0)
    maps /= np.maximum(total, 1.0)
    return maps


def _domain_fractions(rng, scan_shape, n_domains, period):
    """Fractions (summing to 1) of ``n_domains`` domains in stripes of ``period`` pixels.

    Returns an array of shape ``(n_domains, ny, nx)``: along a random
    direction the domains take turns smoothly (Gaussian bumps on a periodic
    phase), so every particle wider than about half a period holds several.
    """
    rows, cols = np.mgrid[0:scan_shape[0], 0:scan_shape[1]].astype(float)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    phase = (math.cos(angle) * cols + math.sin(angle) * rows) / period
    phase = phase + rng.uniform(0.0, 1.0)
    centres = np.arange(n_domains) / n_domains
    distance = (phase[None] - centres[:, None, None] + 0.5) % 1.0 - 0.5
    bumps = np.exp(-0.5 * (distance * n_domains / 0.5) ** 2)
    return bumps / bumps.sum(axis=0)


def _thickness(rng, scan_shape):
    """Smooth random film thickness between 0.7 and 1."""
    field = ndimage.gaussian_filter(rng.standard_normal(scan_shape), min(scan_shape) / 6.0,
                                    mode="wrap")
    spread = np.ptp(field)
    if spread == 0:
        return np.ones(scan_shape)
    return 0.7 + 0.3 * (field - field.min()) / spread


def _blur_and_scale(maps, probe_fwhm, dose):
    """Blur maps by the probe, flatten to (n_nav, k), scale the mean total to ``dose``."""
    if probe_fwhm > 0:
        sigma = probe_fwhm * _FWHM_TO_SIGMA
        maps = [ndimage.gaussian_filter(m, sigma, mode="nearest") for m in maps]
    loadings = np.stack([np.clip(m, 0.0, None).ravel() for m in maps], axis=1)
    return loadings * (dose / loadings.sum(axis=1).mean())


def _sample(loadings, factors, shape, dtype, noise, rng):
    """``loadings @ factors.T`` (Poisson-sampled if ``noise``) in chunks, as ``dtype``."""
    n_nav, n_sig = loadings.shape[0], factors.shape[0]
    work = np.float64 if dtype == np.float64 else np.float32
    left = np.ascontiguousarray(loadings, dtype=work)
    right = np.ascontiguousarray(factors.T, dtype=work)
    out = np.empty((n_nav, n_sig), dtype=dtype)
    step = max(1, _CHUNK_VALUES // n_sig)
    for start in range(0, n_nav, step):
        expected = left[start:start + step] @ right
        if noise:
            counts = rng.poisson(expected)
            if dtype.kind in "iu" and counts.max() > np.iinfo(dtype).max:
                raise ValueError(
                    f"counts up to {counts.max()} overflow dtype {dtype.name}; use "
                    "a wider dtype or a lower dose"
                )
            out[start:start + step] = counts
        else:
            out[start:start + step] = expected
    return out.reshape(shape)


#: Float32 bytes per chunk of a lazy synthetic signal.
_LAZY_CHUNK_BYTES = 64 * 2**20


def _sample_rows(loadings, factors_t, n_sig, dtype, noise, seed):
    """Counts (or expectations) of a block of rows, drawn with the block's own seed."""
    expected = loadings @ factors_t
    if not noise:
        return expected.astype(dtype)
    counts = np.random.default_rng(seed).poisson(expected)
    if dtype.kind in "iu" and counts.size and counts.max() > np.iinfo(dtype).max:
        raise ValueError(f"counts up to {counts.max()} overflow dtype {dtype.name}; use a "
                         "wider dtype or a lower dose")
    return counts.astype(dtype)


def _lazy_sample(loadings, factors, shape, dtype, noise, rng):
    """Like :func:`_sample`, as a dask array drawn chunk by chunk (rows of the scan)."""
    import dask
    import dask.array as da

    scan_shape, signal_shape = shape[:2], shape[2:]
    n_sig = factors.shape[0]
    work = np.float64 if dtype == np.float64 else np.float32
    factors_t = dask.delayed(np.ascontiguousarray(factors.T, dtype=work), pure=True)
    per_row = scan_shape[1] * n_sig * 4
    scan_rows = max(1, min(scan_shape[0], _LAZY_CHUNK_BYTES // per_row))
    seeds = rng.integers(0, 2**63, size=-(-scan_shape[0] // scan_rows))
    blocks = []
    for index, start in enumerate(range(0, scan_shape[0], scan_rows)):
        stop = min(start + scan_rows, scan_shape[0])
        rows = slice(start * scan_shape[1], stop * scan_shape[1])
        block = dask.delayed(_sample_rows, pure=True)(
            np.ascontiguousarray(loadings[rows], dtype=work), factors_t, n_sig, dtype, noise,
            int(seeds[index]))
        blocks.append(da.from_delayed(block, ((stop - start) * scan_shape[1], n_sig), dtype))
    flat = da.concatenate(blocks, axis=0)
    return flat.reshape(scan_shape + signal_shape, merge_chunks=False)


def _axis(name, units, scale, offset, size, navigate):
    return dict(name=name, units=units, scale=scale, offset=offset, size=size,
                navigate=navigate)


def _seed_for_metadata(random_state):
    """The integer seed, or None when the state cannot be stored (None, Generator)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return None


def _finish_signal(signal, title, noise, factors, loadings, names, phase, rotation, dose,
                   parameters, extra):
    n_nav_dims = signal.axes_manager.navigation_dimension
    signal.metadata.General.title = title
    signal.metadata.set_item("Signal.quantity",
                             "Counts" if noise else "Expected counts")
    if noise:
        signal.metadata.set_item(
            "Signal.Noise_properties.Variance_linear_model",
            {"gain_factor": 1.0, "gain_offset": 0.0, "correlation_factor": 1.0},
        )
    truth = {
        "factors": factors,
        "loadings": loadings,
        "component_names": list(names),
        "phase": np.asarray(phase, dtype=int),
        "rotation_deg": np.asarray(rotation, dtype=float),
        "dose": dose,
        "navigation_shape": np.asarray(signal.data.shape[:n_nav_dims]),
        "signal_shape": np.asarray(signal.data.shape[n_nav_dims:]),
        "Parameters": {key: (list(value) if isinstance(value, tuple) else value)
                       for key, value in parameters.items()},
    }
    truth.update(extra)
    signal.metadata.add_dictionary({"Ground_truth": truth})


def synthetic_joint(scan_shape=(32, 32), detector_shape=(32, 32), n_channels=256, dose=200.0,
                    eds_dose=300.0, random_state=0, noise=True, lazy=False):
    """A 4D-STEM scan and an EDS spectrum image of the same probe positions.

    Five components share their maps: an amorphous matrix (halo, bremsstrahlung
    background) and four precipitate phases. ``alpha`` and ``beta`` have the
    same crystal structure (identical diffraction patterns) and different
    chemistry; ``gamma`` and ``delta`` have the same chemistry (identical
    spectra) and different structures. So diffraction alone cannot tell
    ``alpha`` from ``beta``, EDS alone cannot tell ``gamma`` from ``delta``,
    and a joint decomposition with shared maps can separate all five.

    Parameters
    ----------
    scan_shape, detector_shape : tuple of int
        As in :func:`synthetic_4dstem`.
    n_channels : int
        Energy channels of the spectra (as in :func:`synthetic_spectrum_image`).
    dose, eds_dose : float
        Mean electrons per diffraction pattern and X-ray counts per spectrum.
    random_state : int
    noise : bool
        Poisson counts (float32 values) or the expectations.
    lazy : bool
        Return lazy signals (the same data, chunked along the scan).

    Returns
    -------
    diffraction : hyperspy.signals.Signal2D
    spectra : hyperspy.signals.Signal1D
        Each with its ``metadata.Ground_truth`` (same maps, in its own counts;
        its own patterns or spectra) and component names ``matrix``,
        ``alpha``, ``beta``, ``gamma``, ``delta``.

    Examples
    --------
    >>> from hyperspy_hnmf.data import synthetic_joint, get_ground_truth
    >>> dp, eds = synthetic_joint(scan_shape=(16, 16), detector_shape=(16, 16), n_channels=128)
    >>> dp.data.shape, eds.data.shape
    ((16, 16, 16, 16), (16, 16, 128))
    >>> truth = get_ground_truth(dp)
    >>> truth.names
    ['matrix', 'alpha', 'beta', 'gamma', 'delta']
    >>> bool(np.allclose(truth.factors[:, 1], truth.factors[:, 2]))
    True
    >>> bool(np.allclose(get_ground_truth(eds).factors[:, 3], get_ground_truth(eds).factors[:, 4]))
    True
    """
    base = synthetic_4dstem(scan_shape=scan_shape, detector_shape=detector_shape, n_phases=3,
                            n_rotations=1, dose=dose, random_state=random_state, noise=False,
                            particles_per_component=3)
    truth = get_ground_truth(base)
    patterns = truth.factors[:, [0, 1, 1, 2, 3]]
    rng = np.random.default_rng([int(random_state or 0), 1])
    radius = max(2.0, min(scan_shape) / 16.0)
    extra = _particle_maps(rng, tuple(scan_shape), 1, 3, radius)[0]
    maps = [truth.loadings[:, j].reshape(scan_shape) for j in range(4)]
    extra = ndimage.gaussian_filter(extra, 2.0 * _FWHM_TO_SIGMA, mode="nearest")
    maps.insert(2, extra * (maps[1].max() / max(extra.max(), 1e-12)))
    loadings = _blur_and_scale([np.clip(m, 0, None) for m in maps], 0.0, dose)
    spectra_signal = synthetic_spectrum_image(scan_shape=(4, 4), n_channels=n_channels,
                                              n_components=4, noise=False)
    spectra = get_ground_truth(spectra_signal).factors[:, [0, 1, 2, 3, 3]]
    names = ["matrix", "alpha", "beta", "gamma", "delta"]
    signals = []
    seeds = np.random.default_rng([int(random_state or 0), 2]).integers(0, 2**32, size=2)
    for factors, total, template, seed in ((patterns, dose, base, seeds[0]),
                                           (spectra, eds_dose, spectra_signal, seeds[1])):
        scaled = loadings * (total / dose)
        signal_shape = template.data.shape[2:]
        data = _sample(scaled, factors, tuple(scan_shape) + signal_shape, np.dtype("float32"),
                       noise, np.random.default_rng(seed))
        axes_dict = template.axes_manager.as_dictionary()
        axes = [dict(axes_dict[f"axis-{i}"]) for i in range(len(axes_dict))]
        for axis, size in zip(axes[:2], scan_shape):
            axis.update(size=size, scale=_SCAN_STEP_NM, units="nm")
        signal = template.__class__(data, axes=axes)
        if lazy:
            signal = signal.as_lazy()
            signal.data = signal.data.rechunk((max(1, scan_shape[0] // 4), -1) +
                                              (-1,) * len(signal_shape))
        kind = "diffraction" if template is base else "EDS"
        _finish_signal(signal, f"Synthetic joint data ({kind}): matrix + 4 phases", noise,
                       factors, scaled, names, [-1, 0, 1, 2, 3], [np.nan] * 5, total,
                       dict(generator="synthetic_joint", scan_shape=tuple(scan_shape),
                            detector_shape=tuple(detector_shape), n_channels=n_channels,
                            dose=dose, eds_dose=eds_dose,
                            random_state=_seed_for_metadata(random_state), noise=noise),
                       {})
        signals.append(signal)
    return tuple(signals)
