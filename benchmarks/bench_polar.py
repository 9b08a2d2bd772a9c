"""Polar transform, φ cross-correlation and rotation-invariant clustering: timings.

In one run, on the built-in synthetic 4D-STEM (float32):

- polar-transform throughput of ``Signal2D.polar_transform`` (bilinear
  interpolation precomputed once, numba gather; geometry set-up included)
  against pyxem's ``get_azimuthal_integral2d`` on the same data and output
  size, as a ratio (goal: >= 4x): 16,384 patterns of 64 x 64 to 32 r x 180 φ,
  and 1,024 patterns of 128 x 128 to 64 r x 360 φ. pyxem is optional: without
  it the peer columns read "-". Both get a warm-up call first (numba compiles);
- the same transform on the lazy signal (dask chunks of 1,024 patterns);
- similarity of all pairs of 200 polar patterns of 64 r x 360 φ with the best
  angle (goal: <= 0.5 s), against a loop of one FFT cross-correlation per pair
  (timed on 500 pairs, scaled to all 19,900);
- pixel-level clustering (``Signal2D.polar_cluster_analysis``) of 128 x 128
  probe positions x 64 x 64 patterns, 3 phases x 3 rotations plus the amorphous
  film, one rotation per particle and the planted mixed-rotation data (goal:
  <= 30 s, >= 95 % of pure-phase pixels right), against k-means on the raw
  patterns (scikit-learn, optional), which is not rotation-invariant.

Usage::

    python benchmarks/bench_polar.py            # about 2 minutes
    python benchmarks/bench_polar.py --quick    # smaller scan, no pyxem at 128 x 128
"""

import argparse
import time
import warnings

import numpy as np
from scipy import fft
from scipy.optimize import linear_sum_assignment

import hyperspy_hnmf  # noqa: F401  (registers the signal methods)
from hyperspy_hnmf.data import get_ground_truth, synthetic_4dstem
from hyperspy_hnmf.polar import PolarTransform, phi_xcorr


def best_of(repeats, function, *args, **kwargs):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return result, min(times)


def pyxem_transform(data, n_r, n_phi):
    """pyxem's polar transform of ``data`` (n, rows, cols), or None without pyxem."""
    try:
        import pyxem
    except ImportError:
        return None
    signal = pyxem.signals.Diffraction2D(data)
    signal.calibration.center = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return signal.get_azimuthal_integral2d(npt=n_r, npt_azim=n_phi, show_progressbar=False)


def bench_transform(n_patterns, detector, n_r, n_phi, with_pyxem, rows):
    s = synthetic_4dstem(scan_shape=(n_patterns // 128, 128), detector_shape=(detector,) * 2,
                         random_state=0)
    data = s.data.reshape(-1, detector, detector)
    s.inav[:2, :2].polar_transform(n_r=n_r, n_phi=n_phi)  # numba compile
    r_max = (detector - 1) / 2 * s.axes_manager.signal_axes[0].scale
    center = (0.0, 0.0)
    _, ours = best_of(5, s.polar_transform, center=center, radial_range=(0, r_max),
                      n_r=n_r, n_phi=n_phi)
    transform = PolarTransform((detector, detector), ((detector - 1) / 2,) * 2, n_r=n_r,
                               n_phi=n_phi)
    _, apply_only = best_of(5, transform, data)
    lazy = s.as_lazy()
    lazy.data = lazy.data.rechunk((1024 // 128, 128, detector, detector))
    _, ours_lazy = best_of(
        2, lambda: lazy.polar_transform(center=center, radial_range=(0, r_max), n_r=n_r,
                                        n_phi=n_phi).data.compute())
    peer = None
    if with_pyxem and pyxem_transform(data[:4], n_r, n_phi) is not None:
        _, peer = best_of(1, pyxem_transform, data, n_r, n_phi)
    label = f"{n_patterns:,} x {detector}x{detector} -> {n_r} r x {n_phi} φ"
    rows.append((label, n_patterns / ours, n_patterns / apply_only, n_patterns / ours_lazy,
                 None if peer is None else n_patterns / peer,
                 None if peer is None else peer / ours))


def per_pair_loop(polar, pairs):
    """One FFT cross-correlation per pair: the unbatched way."""
    centred = polar - polar.mean(axis=(1, 2), keepdims=True)
    norms = np.sqrt((centred**2).sum(axis=(1, 2)))
    for i, j in pairs:
        spectrum = np.conj(fft.rfft(centred[i], axis=-1)) * fft.rfft(centred[j], axis=-1)
        correlation = fft.irfft(spectrum.sum(axis=0), n=polar.shape[-1])
        _ = correlation.max() / (norms[i] * norms[j]), np.argmax(correlation)


def bench_similarity():
    s = synthetic_4dstem(scan_shape=(10, 20), detector_shape=(128, 128), n_phases=3,
                         n_rotations=3, random_state=0)
    polar = s.polar_transform(center=(0, 0), radial_range=(0.5, 7.5), n_r=64,
                              n_phi=360).data.reshape(200, 64, 360)
    phi_xcorr(polar[:8])
    _, batched = best_of(5, phi_xcorr, polar)
    pairs = [(i, j) for i in range(200) for j in range(i + 1, 200)]
    _, loop = best_of(1, per_pair_loop, polar, pairs[:500])
    return batched, loop * len(pairs) / 500


def pure_pixel_classes(signal):
    truth = get_ground_truth(signal)
    n_phases = truth.phase.max() + 1
    per_phase = np.stack(
        [truth.loadings[:, truth.phase == p].sum(axis=1) for p in range(n_phases)], axis=1)
    crystal, total = per_phase.sum(axis=1), truth.loadings.sum(axis=1)
    classes = np.full(len(total), -1)
    classes[crystal / total < 0.05] = n_phases
    pure = (per_phase.max(axis=1) >= 0.95 * crystal) & (crystal / total >= 0.5)
    classes[pure] = per_phase.argmax(axis=1)[pure]
    return classes, n_phases


def accuracy(classes, labels, keep):
    n = max(classes.max(), labels.max()) + 1
    counts = np.zeros((n, n))
    np.add.at(counts, (classes[keep], labels[keep]), 1)
    rows, cols = linear_sum_assignment(-counts)
    matched = dict(zip(rows, cols))
    right = sum(counts[c, matched[c]] for c in np.unique(classes[keep]))
    return right / keep.sum()


def bench_pixels(scan, mixed, rows):
    s = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(64, 64), n_phases=3,
                         n_rotations=3, mixed_rotations=mixed, random_state=0)
    classes, n_phases = pure_pixel_classes(s)
    (labels, _, _), seconds = best_of(1, s.polar_cluster_analysis, n_phases + 1,
                                      random_state=0)
    labels = labels.data.ravel()
    crystal = (classes >= 0) & (classes < n_phases)
    ours = (accuracy(classes, labels, crystal), accuracy(classes, labels, classes >= 0))
    peer = peer_seconds = None
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        KMeans = None
    if KMeans is not None:
        X = s.data.reshape(scan * scan, -1)
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        start = time.perf_counter()
        peer_labels = KMeans(n_phases + 1, n_init=1, random_state=0).fit_predict(X)
        peer_seconds = time.perf_counter() - start
        peer = (accuracy(classes, peer_labels, crystal),
                accuracy(classes, peer_labels, classes >= 0))
    label = f"{scan}x{scan} x 64x64, {'mixed rotations' if mixed else 'one rotation per particle'}"
    rows.append((label, seconds, ours, int(crystal.sum()), peer_seconds, peer))


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def main():
    import os

    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 x 64 scan, no 128 x 128 peer")
    args = parser.parse_args()
    scan = 64 if args.quick else 128

    transform_rows = []
    bench_transform(scan * 128, 64, 32, 180, True, transform_rows)
    bench_transform(1024, 128, 64, 360, not args.quick, transform_rows)
    print("\n## Polar transform (patterns/s, best of 5, pyxem one run; geometry set-up "
          "included)\n")
    print("| data | ours (signal) | ours (precomputed, apply only) | ours (lazy, dask) "
          "| pyxem get_azimuthal_integral2d | ours / pyxem |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, ours, apply_only, lazy, peer, ratio in transform_rows:
        print(f"| {label} | {ours:,.0f} | {apply_only:,.0f} | {lazy:,.0f} | "
              f"{fmt(peer, ',.0f')} | {fmt(ratio, '.1f')}{'' if ratio is None else 'x'} |")

    batched, loop = bench_similarity()
    print("\n## All-pairs φ cross-correlation, 200 polar patterns of 64 r x 360 φ "
          "(19,900 pairs)\n")
    print("| method | seconds | goal |")
    print("| --- | ---: | --- |")
    print(f"| phi_xcorr (batched FFT + GEMM per frequency) | {batched:.3f} | <= 0.5 s |")
    print(f"| one FFT cross-correlation per pair (500 pairs, scaled) | {loop:.2f} | |")

    pixel_rows = []
    bench_pixels(scan, False, pixel_rows)
    bench_pixels(scan, True, pixel_rows)
    print("\n## Pixel-level clustering (4 clusters: 3 phases + amorphous)\n")
    print("| data | polar_cluster_analysis s | right: pure-phase pixels | right: "
          "+ amorphous | pure-phase pixels | k-means on raw patterns s | its right: "
          "pure-phase | its right: + amorphous |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, seconds, ours, n_pure, peer_seconds, peer in pixel_rows:
        peer = peer or (None, None)
        print(f"| {label} | {seconds:.1f} | {ours[0]:.1%} | {ours[1]:.1%} | {n_pure} | "
              f"{fmt(peer_seconds, '.1f')} | {fmt(peer[0], '.1%')} | {fmt(peer[1], '.1%')} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
