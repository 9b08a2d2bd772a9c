"""Multislice 4D-STEM of nanocrystals in a metallic glass: the validation data.

Simulates two scenes with abTEM (Madsen & Susi, Open Research Europe 1 (2021)
24) and writes the noise-free diffraction intensities, quantised, with the
ground truth to ``hyperspy_hnmf/_validation_files/multislice_<scene>.npz``.
Counts are drawn at load time by :func:`hyperspy_hnmf.validation_data.load_multislice`
(Poisson, fixed seed), so the files stay small.

Scene A: a ZrCuAl-like glass (Zr50Cu40Al10, random dense packing relaxed by
pair repulsion), 6 nm thick, with five lens-shaped nanocrystals that fill at
most a third of the thickness: fcc Cu on [001] in two in-plane rotations plus
one tilted 3° off the zone axis, and B2 CuZr on [111] in two rotations.

Scene B: a thicker film (8 nm) of the same glass with precipitates at its
lower surface (an interface-like geometry): hcp Zr on [0001] in three in-plane
rotations and fcc Cu on [011] in two.

Both: 200 kV, 2.5 mrad probe semi-angle, 30 x 30 scan over the 12 x 12 nm cell
(0.4 nm steps), potential sampled at 0.3 Å in 2 Å slices (Lobato
parametrisation, infinite projection, no frozen phonons), diffraction patterns
binned 4 x 4 to 64 x 64 pixels of 0.836 mrad. Requires the optional extra
``pip install hyperspy_hnmf[validation]`` (abTEM); run as::

    python validation/simulate_multislice.py            # both scenes
    python validation/simulate_multislice.py --scene A
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

OUT = Path(__file__).resolve().parents[1] / "hyperspy_hnmf" / "_validation_files"

COMMON = dict(
    energy_eV=200e3,
    semiangle_mrad=2.5,
    extent_A=120.0,
    scan_gpts=30,
    sampling_A=0.3,
    slice_thickness_A=2.0,
    parametrization="lobato",
    projection="infinite",
    frozen_phonons=0,
    bin_factor=4,
    detector_pixels=64,
    glass_composition={"Zr": 0.5, "Cu": 0.4, "Al": 0.1},
    glass_density_per_A3=0.060,
    reference_dose=40000.0,
    quantisation=0.25,
)

# Metallic radii (Å) for the repulsion that turns random positions into a dense glass.
RADII = {"Zr": 1.60, "Cu": 1.28, "Al": 1.43}

SCENES = {
    "A": dict(
        description=("ZrCuAl glass, 6 nm, with fcc Cu [001] (rotations 0 and 30 deg, one "
                     "more at 15 deg tilted 3 deg off zone) and B2 CuZr [111] (rotations "
                     "10 and 40 deg) lens-shaped nanocrystals"),
        thickness_A=60.0,
        glass_seed=1,
        classes=["matrix", "fcc Cu [001]", "B2 CuZr [111]"],
        symmetry_deg={"fcc Cu [001]": 90.0, "B2 CuZr [111]": 60.0},
        crystals=[
            dict(phase="fcc Cu [001]", center=(26.0, 28.0), z=30.0, radius=17.0, half=10.0,
                 rotation=0.0, tilt=0.0),
            dict(phase="fcc Cu [001]", center=(88.0, 24.0), z=15.0, radius=17.0, half=10.0,
                 rotation=30.0, tilt=0.0),
            dict(phase="fcc Cu [001]", center=(28.0, 90.0), z=44.0, radius=17.0, half=10.0,
                 rotation=15.0, tilt=3.0),
            dict(phase="B2 CuZr [111]", center=(92.0, 90.0), z=30.0, radius=18.0, half=10.0,
                 rotation=10.0, tilt=0.0),
            dict(phase="B2 CuZr [111]", center=(60.0, 60.0), z=20.0, radius=15.0, half=10.0,
                 rotation=40.0, tilt=0.0),
        ],
    ),
    "B": dict(
        description=("ZrCuAl glass, 8 nm, with precipitates at the lower surface: hcp Zr "
                     "[0001] (rotations 5, 25 and 45 deg) and fcc Cu [011] (rotations 20 and "
                     "110 deg)"),
        thickness_A=80.0,
        glass_seed=2,
        classes=["matrix", "hcp Zr [0001]", "fcc Cu [011]"],
        symmetry_deg={"hcp Zr [0001]": 60.0, "fcc Cu [011]": 180.0},
        crystals=[
            dict(phase="hcp Zr [0001]", center=(25.0, 25.0), z=66.0, radius=18.0, half=13.0,
                 rotation=5.0, tilt=0.0),
            dict(phase="hcp Zr [0001]", center=(95.0, 60.0), z=66.0, radius=16.0, half=13.0,
                 rotation=25.0, tilt=0.0),
            dict(phase="hcp Zr [0001]", center=(30.0, 92.0), z=66.0, radius=15.0, half=13.0,
                 rotation=45.0, tilt=0.0),
            dict(phase="fcc Cu [011]", center=(62.0, 28.0), z=66.0, radius=16.0, half=13.0,
                 rotation=20.0, tilt=0.0),
            dict(phase="fcc Cu [011]", center=(75.0, 98.0), z=66.0, radius=18.0, half=13.0,
                 rotation=110.0, tilt=0.0),
        ],
    ),
}


def rotation_matrix(axis, angle_deg):
    """Rotation about ``axis`` (unit vector) by ``angle_deg``, counter-clockwise."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.deg2rad(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def zone_to_z(zone):
    """Rotation taking the direction ``zone`` onto +z."""
    zone = np.asarray(zone, float) / np.linalg.norm(zone)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(zone, z)
    if np.linalg.norm(axis) < 1e-12:
        return np.eye(3)
    return rotation_matrix(axis, np.degrees(np.arccos(np.clip(zone @ z, -1, 1))))


def lattice(phase):
    """Cell vectors (rows, Å), fractional basis, species and the zone axis of a phase."""
    if phase.startswith("fcc Cu"):
        a = 3.615
        zone = [0, 0, 1] if "[001]" in phase else [0, 1, 1]
        return (a * np.eye(3), np.array([[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]]),
                ["Cu"] * 4, zone)
    if phase.startswith("B2 CuZr"):
        a = 3.26
        return a * np.eye(3), np.array([[0, 0, 0], [.5, .5, .5]]), ["Cu", "Zr"], [1, 1, 1]
    if phase.startswith("hcp Zr"):
        a, c = 3.232, 5.147
        cell = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
        return cell, np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]), ["Zr"] * 2, None
    raise ValueError(phase)


def crystal_atoms(crystal, extent, thickness):
    """Positions and species of a lens-shaped (ellipsoidal) crystal, wrapped in x and y."""
    cell, basis, species, zone = lattice(crystal["phase"])
    orient = np.eye(3) if zone is None else zone_to_z(np.asarray(zone, float) @ cell)
    orient = (rotation_matrix([0, 0, 1], crystal["rotation"])
              @ rotation_matrix([1, 0, 0], crystal["tilt"]) @ orient)
    reach = crystal["radius"] + 8.0
    n = int(np.ceil(2 * reach / np.min(np.linalg.norm(cell, axis=1)))) + 2
    grid = np.stack(np.meshgrid(*[np.arange(-n, n + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    positions, names = [], []
    for frac, name in zip(basis, species):
        points = (grid + frac) @ cell
        points = points @ orient.T
        points += np.array([*crystal["center"], crystal["z"]])
        positions.append(points)
        names += [name] * len(points)
    positions = np.concatenate(positions)
    names = np.array(names)
    inside = ellipsoid_inside(positions, crystal, extent)
    positions, names = positions[inside], names[inside]
    positions[:, :2] %= extent
    keep = (positions[:, 2] > 0) & (positions[:, 2] < thickness)
    return positions[keep], names[keep]


def ellipsoid_inside(positions, crystal, extent):
    d = positions[:, :2] - np.asarray(crystal["center"])
    d -= extent * np.round(d / extent)
    rho2 = (d**2).sum(axis=1) / crystal["radius"] ** 2
    dz2 = ((positions[:, 2] - crystal["z"]) / crystal["half"]) ** 2
    return rho2 + dz2 <= 1.0


def glass(extent, thickness, seed, params):
    """Random dense packing: random positions pushed apart until no pair overlaps much."""
    rng = np.random.default_rng(seed)
    volume = extent * extent * thickness
    n = int(round(params["glass_density_per_A3"] * volume))
    species = rng.choice(list(params["glass_composition"]), size=n,
                         p=list(params["glass_composition"].values()))
    radius = np.array([RADII[s] for s in species])
    box = np.array([extent, extent, thickness])
    pos = rng.random((n, 3)) * box
    for _ in range(150):
        tree = cKDTree(pos, boxsize=box * [1, 1, 10])
        pairs = tree.query_pairs(2 * max(RADII.values()) * 0.95, output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        d = pos[j] - pos[i]
        d[:, :2] -= box[:2] * np.round(d[:, :2] / box[:2])
        dist = np.linalg.norm(d, axis=1)
        target = 0.95 * (radius[i] + radius[j])
        overlap = np.clip(target - dist, 0, None)
        if overlap.max() < 0.05:
            break
        push = (0.5 * overlap / np.maximum(dist, 1e-6))[:, None] * d
        step = np.zeros_like(pos)
        np.add.at(step, i, -push)
        np.add.at(step, j, push)
        pos += step
        pos[:, :2] %= box[:2]
        pos[:, 2] = np.clip(pos[:, 2], 0.5, thickness - 0.5)
    return pos, species


def build_atoms(scene, params):
    import ase

    extent, thickness = params["extent_A"], scene["thickness_A"]
    pos, species = glass(extent, thickness, scene["glass_seed"], params)
    keep = np.ones(len(pos), bool)
    for crystal in scene["crystals"]:
        keep &= ~ellipsoid_inside(pos, crystal, extent)
    grown = [crystal_atoms(crystal, extent, thickness) for crystal in scene["crystals"]]
    crystal_pos = np.concatenate([p for p, _ in grown])
    # No glass atom closer than 2 Å to a crystal atom at the interfaces.
    near, _ = cKDTree(crystal_pos, boxsize=[extent, extent, 10 * thickness]).query(
        pos, distance_upper_bound=2.0)
    keep &= ~np.isfinite(near)
    positions = np.concatenate([pos[keep], crystal_pos])
    names = np.concatenate([species[keep]] + [s for _, s in grown])
    return ase.Atoms(symbols=list(names), positions=positions,
                     cell=[extent, extent, thickness], pbc=True)


def ground_truth(scene, params):
    """Thickness fraction of every class at every probe position, maps (rows = y)."""
    extent, n = params["extent_A"], params["scan_gpts"]
    step = extent / n
    y, x = np.mgrid[0:n, 0:n] * step
    fractions = np.zeros((len(scene["classes"]), n, n))
    crystal_maps = np.zeros((len(scene["crystals"]), n, n))
    for c, crystal in enumerate(scene["crystals"]):
        dx = x - crystal["center"][0]
        dy = y - crystal["center"][1]
        dx -= extent * np.round(dx / extent)
        dy -= extent * np.round(dy / extent)
        rho2 = (dx**2 + dy**2) / crystal["radius"] ** 2
        path = 2 * crystal["half"] * np.sqrt(np.clip(1 - rho2, 0, None))
        crystal_maps[c] = path / scene["thickness_A"]
        fractions[scene["classes"].index(crystal["phase"])] += crystal_maps[c]
    fractions[0] = 1.0 - fractions[1:].sum(axis=0)
    return fractions, crystal_maps


def simulate(scene_name, params=COMMON):
    import abtem

    scene = SCENES[scene_name]
    start = time.perf_counter()
    atoms = build_atoms(scene, params)
    potential = abtem.Potential(atoms, sampling=params["sampling_A"],
                                slice_thickness=params["slice_thickness_A"],
                                projection=params["projection"],
                                parametrization=params["parametrization"])
    probe = abtem.Probe(energy=params["energy_eV"], semiangle_cutoff=params["semiangle_mrad"])
    probe.grid.match(potential)
    extent = params["extent_A"]
    scan = abtem.GridScan(start=(0, 0), end=(extent, extent), gpts=params["scan_gpts"],
                          endpoint=False)
    detector = abtem.PixelatedDetector(max_angle="cutoff")
    measurement = probe.scan(potential, scan=scan, detectors=detector)
    result = measurement.compute(scheduler="threads", progress_bar=False)
    elapsed = time.perf_counter() - start
    data = np.asarray(result.array)  # (x, y, kx, ky), zero frequency at index n // 2
    b, m = params["bin_factor"], params["detector_pixels"]
    centre = np.array(data.shape[-2:]) // 2
    half = b * m // 2
    crop = data[..., centre[0] - half:centre[0] + half, centre[1] - half:centre[1] + half]
    binned = crop.reshape(crop.shape[:2] + (m, b, m, b)).sum(axis=(3, 5))
    # Scan (x, y) -> rows = y, columns = x; detector (kx, ky) -> rows = -ky, columns = kx,
    # so that a rotation counter-clockwise in the specimen is one as displayed.
    patterns = binned.transpose(1, 0, 3, 2)[:, :, ::-1, :]
    patterns /= patterns.sum(axis=(2, 3), keepdims=True)
    quantum = params["quantisation"]
    expected = np.round(patterns * params["reference_dose"] / quantum).astype(np.uint16)
    fractions, crystal_maps = ground_truth(scene, params)
    angular = float(result.angular_sampling[0]) * b
    record = dict(scene=scene_name, description=scene["description"], params=params,
                  crystals=scene["crystals"], classes=scene["classes"],
                  symmetry_deg=scene["symmetry_deg"], n_atoms=len(atoms),
                  thickness_A=scene["thickness_A"], mrad_per_pixel=angular,
                  inverse_A_per_pixel=angular / 1e3 / float(probe.wavelength),
                  scan_step_A=extent / params["scan_gpts"], simulation_seconds=elapsed,
                  abtem_version=abtem.__version__, cpu_count=os.cpu_count(),
                  platform=platform.platform(), loadavg=open("/proc/loadavg").read().strip())
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT / f"multislice_{scene_name}.npz", expected=expected,
        fractions=fractions.astype(np.float32), crystal_maps=crystal_maps.astype(np.float32),
        crystal_class=np.array([scene["classes"].index(c["phase"]) for c in scene["crystals"]]),
        crystal_rotation_deg=np.array([c["rotation"] for c in scene["crystals"]]),
        crystal_tilt_deg=np.array([c["tilt"] for c in scene["crystals"]]),
        parameters=np.array(json.dumps(record)))
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", choices=sorted(SCENES), action="append")
    args = parser.parse_args()
    for name in args.scene or sorted(SCENES):
        record = simulate(name)
        print(f"scene {name}: {record['n_atoms']} atoms, {record['simulation_seconds']:.0f} s "
              f"(load average {record['loadavg']})")


if __name__ == "__main__":
    main()
