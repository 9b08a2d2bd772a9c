"""What the domain constraints buy and cost, against unconstrained fits and scikit-learn.

Data: the built-in synthetic 4D-STEM (128 x 128 scan x 64 x 64 detector,
Poisson, about 200 electrons per pattern) with a probe of 4 scan pixels
(2 nm) FWHM; its amorphous halo lies under the Bragg spots of the crystals.
k = the true number of components (7).

Measured in one run, on the same data:

- unconstrained KL (``loss="kl"``) and constrained KL
  (``MapResolution(2 nm)`` + ``ContinuousIntensity(1.25 1/nm)``, i.e. 4 and
  5 pixels), and the same with the Gaussian and Laplacian map methods;
- scikit-learn ``NMF`` with the Frobenius (cd) and KL (mu) losses as peers;
- for each: the dip score of the halo component (width 5 px), the mean
  fraction of map energy beyond the resolution (4 px), the relative error
  against the noise-free data, the mean map and pattern correlation with the
  ground truth, time and iterations;
- overhead of the constraints per iteration: both fits run 40 iterations
  (``tol=0``); the median time between iterations, median of three fits.

espm's SmoothNMF is an optional peer: it pins an older HyperSpy, so run it
from its own environment; this script reports it only when importable.

Usage::

    python benchmarks/bench_constraints.py            # full size (a few minutes)
    python benchmarks/bench_constraints.py --scan 64  # quicker
"""

import argparse
import time
import warnings

import numpy as np

from hyperspy_hnmf import HNMF
from hyperspy_hnmf.constraints import (
    ContinuousIntensity,
    Grid,
    MapResolution,
    dip_score,
    out_of_band_fraction,
)
from hyperspy_hnmf.data import (
    get_ground_truth,
    get_ground_truth_model,
    score_decomposition,
    synthetic_4dstem,
)

RESOLUTION_NM = 2.0  # the probe's FWHM: 4 scan pixels of 0.5 nm
DIP_WIDTH = 1.25  # 1/nm: 5 detector pixels of 0.25 1/nm


def make_data(scan):
    s = synthetic_4dstem(scan_shape=(scan, scan), probe_fwhm=4.0, random_state=0)
    truth = get_ground_truth(s)
    clean = get_ground_truth_model(s).data.reshape(scan * scan, -1)
    X = s.data.reshape(scan * scan, -1)
    nav = Grid((scan, scan), scale=0.5, units="nm")
    sig = Grid((64, 64), scale=s.axes_manager.signal_axes[0].scale, units="1/nm")
    return X, clean, truth, nav, sig


def constraints(method="fourier"):
    return [MapResolution(RESOLUTION_NM, method=method), ContinuousIntensity(DIP_WIDTH)]


def evaluate(name, W, H, seconds, n_iter, X, clean, truth, nav, sig):
    k = H.shape[0]
    score = score_decomposition(H.T, W, truth.factors, truth.loadings)
    halo = int(score.matched[0])
    dips = dip_score(H.reshape((k,) + sig.shape), sig.to_pixels(DIP_WIDTH))
    maps = np.ascontiguousarray(W.T).reshape((k,) + nav.shape)
    oob = out_of_band_fraction(maps, nav.to_pixels(RESOLUTION_NM))
    model = W @ H
    error = float(np.linalg.norm(model - clean) / np.linalg.norm(clean))
    return dict(name=name, halo_dip=float(dips[halo]), oob=float(oob.mean()), error=error,
                map_r=score.mean_map_correlation, pattern_r=score.mean_pattern_correlation,
                seconds=seconds, n_iter=n_iter)


def fit_ours(X, k, nav, sig, cons, **options):
    model = HNMF(k, loss="kl", random_state=0, constraints=cons,
                 navigation_grid=nav, signal_grid=sig, **options)
    start = time.perf_counter()
    W = model.fit_transform(X)
    return W, model.components_, time.perf_counter() - start, model.n_iter_


def fit_sklearn(X, k, beta):
    from sklearn.decomposition import NMF

    options = dict(solver="cd") if beta == "frobenius" else dict(
        solver="mu", beta_loss="kullback-leibler")
    model = NMF(k, init="nndsvda", max_iter=200, tol=1e-4, random_state=0, **options)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = model.fit_transform(X)
    return W, model.components_, time.perf_counter() - start, model.n_iter_


def per_iteration(X, k, nav, sig, cons, repeats=3, n_iter=40):
    """Median time between iterations (callback time stamps), median of ``repeats`` fits.

    Time stamps leave out the initialization and the final evaluation, which
    are the same with and without constraints.
    """
    from hyperspy_hnmf.solvers import nmf

    times = []
    for _ in range(repeats):
        stamps = []
        nmf(X, k, loss="kl", random_state=0, max_iter=n_iter, tol=0, constraints=cons,
            map_grid=nav, component_grid=sig,
            callback=lambda iteration, objective: stamps.append(time.perf_counter()))
        times.append(float(np.median(np.diff(stamps))))
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=int, default=128)
    parser.add_argument("--save-data", metavar="PATH",
                        help="write the data to PATH (.npz) for benchmarks/peer_espm.py and exit")
    args = parser.parse_args()
    X, clean, truth, nav, sig = make_data(args.scan)
    k = truth.n_components
    if args.save_data:
        np.savez(args.save_data, X=X.astype(np.float32), clean=clean.astype(np.float32),
                 truth_factors=truth.factors, truth_loadings=truth.loadings,
                 scan_shape=np.array(nav.shape))
        print(f"wrote {args.save_data}: X {X.shape}, k = {k}")
        return
    print(f"data: {X.shape[0]} patterns x {X.shape[1]} pixels, {X.dtype}, k = {k}, "
          f"probe FWHM {RESOLUTION_NM} nm = {nav.to_pixels(RESOLUTION_NM):g} px")

    rows = []
    runs = [("hnmf KL, unconstrained", None),
            ("hnmf KL, fourier + continuous", constraints("fourier")),
            ("hnmf KL, gaussian + continuous", constraints("gaussian")),
            ("hnmf KL, laplacian + continuous", constraints("laplacian"))]
    for name, cons in runs:
        rows.append(evaluate(name, *fit_ours(X, k, nav, sig, cons), X, clean, truth, nav, sig))
    for name, beta in (("sklearn NMF Frobenius (cd)", "frobenius"), ("sklearn NMF KL (mu)", "kl")):
        rows.append(evaluate(name, *fit_sklearn(X, k, beta), X, clean, truth, nav, sig))
    try:
        import espm  # noqa: F401

        print("espm is importable, but this script does not drive it: see RESULTS.md.")
    except ImportError:
        print("espm: not installed here (it pins an older HyperSpy); peer not measured.")

    header = (f"{'fit':34s} {'halo dip':>9s} {'out-of-band':>12s} {'err vs clean':>13s} "
              f"{'map r':>6s} {'pattern r':>9s} {'time s':>7s} {'iter':>5s}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['name']:34s} {row['halo_dip']:9.3f} {row['oob']:12.2e} {row['error']:13.4f} "
              f"{row['map_r']:6.3f} {row['pattern_r']:9.3f} {row['seconds']:7.1f} "
              f"{row['n_iter']:5d}")

    free, fourier = rows[0], rows[1]
    print()
    print(f"dip score cut:           {1 - fourier['halo_dip'] / max(free['halo_dip'], 1e-12):.1%} "
          "(goal >= 80 %)")
    print(f"out-of-band energy cut:  {1 - fourier['oob'] / max(free['oob'], 1e-12):.1%} "
          "(goal >= 90 %)")
    print(f"error vs noise-free:     {fourier['error']:.4f} constrained vs {free['error']:.4f} "
          "unconstrained (goal: no worse)")
    print(f"mean map correlation:    {fourier['map_r']:.3f} (goal >= 0.90)")

    plain = per_iteration(X, k, nav, sig, None)
    constrained = per_iteration(X, k, nav, sig, constraints("fourier"))
    print(f"time per iteration:      {plain * 1e3:.1f} ms unconstrained, "
          f"{constrained * 1e3:.1f} ms constrained: overhead "
          f"{constrained / plain - 1:+.1%} (goal <= 25 %)")
    extra = added_work(X, k, nav, sig)
    print(f"added work per iteration (the two projections): {extra * 1e3:.1f} ms "
          f"= {extra / plain:.1%} of an unconstrained iteration")


def added_work(X, k, nav, sig, repeats=7):
    """Time of what the constraints add to one KL iteration, measured on its own."""
    from hyperspy_hnmf.constraints import build_plan

    plan = build_plan(constraints("fourier"), k, map_grid=nav, component_grid=sig)
    rng = np.random.default_rng(0)
    W = rng.random((X.shape[0], k)).astype(X.dtype)
    Ht = rng.random((X.shape[1], k)).astype(X.dtype)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        plan.maps.project(W)
        plan.components.project(Ht)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


if __name__ == "__main__":
    main()
