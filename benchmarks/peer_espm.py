"""espm's SmoothNMF as a peer in the constraints benchmark, run from espm's own environment.

espm pins an older HyperSpy, so it cannot share this package's environment, and
``hyperspy_hnmf`` is not importable there. The data travel as an ``.npz``
written by ``bench_constraints.py``; this script needs only numpy, scipy and
espm, and reimplements the ground-truth scoring of
``hyperspy_hnmf.data.score_decomposition`` (Hungarian matching on the sum of
the Pearson correlation matrices of patterns and of maps).

Usage (two environments)::

    # 1. write the data with this package's environment
    .venv/bin/python benchmarks/bench_constraints.py --save-data /tmp/espm_data.npz
    # 2. fit it with espm's environment
    /path/to/espm-venv/bin/python benchmarks/peer_espm.py --data /tmp/espm_data.npz

Add ``--scan 64`` to step 1 for a quicker run. The ``.npz`` holds ``X``
(float32, n patterns x m detector pixels), ``clean`` (the noise-free data,
same shape), ``truth_factors`` (m x k), ``truth_loadings`` (n x k) and
``scan_shape``.

SmoothNMF settings: generalized KL loss (espm's only data term besides an
unrecommended Frobenius option), Laplacian smoothing of the maps
(``shape_2d`` = the scan shape) with ``lambda_L`` = 2 on data normalised by
espm (``normalize=True``, so lambda does not depend on the dose), no log
sparsity (``mu=0``), patterns on the simplex (espm's default
``simplex_W=True``), ``G=None`` (espm then uses a dense identity), k = the
true number of components, all 200 iterations (``no_stop_criterion=True``,
as the reference measurement in issue 4; ``--espm-stop`` uses espm's own rule,
``tol=1e-4``, instead), ``random_state=0``. ``hspy_comp=True`` makes espm take X as
(patterns, pixels), as HyperSpy passes it, and return the maps (n x k) with the
patterns in ``components_`` (k x m).
"""

import argparse
import time

import numpy as np
from scipy import optimize


def correlation_matrix(a, b):
    """Pearson correlations of the columns of ``a`` with those of ``b`` (as in hyperspy_hnmf)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a_centred = a - a.mean(axis=0)
    b_centred = b - b.mean(axis=0)
    norm_a = np.sqrt((a_centred**2).sum(axis=0))
    norm_b = np.sqrt((b_centred**2).sum(axis=0))
    norm_a[norm_a <= 1e-12 * np.sqrt((a**2).sum(axis=0))] = 0.0
    norm_b[norm_b <= 1e-12 * np.sqrt((b**2).sum(axis=0))] = 0.0
    denominator = np.outer(norm_a, norm_b)
    correlation = np.zeros_like(denominator)
    np.divide(a_centred.T @ b_centred, denominator, out=correlation, where=denominator > 0)
    return np.clip(correlation, -1.0, 1.0)


def score(learned_factors, learned_loadings, truth_factors, truth_loadings):
    """Mean map and pattern correlation after Hungarian matching (unmatched truth scores 0)."""
    k_true = truth_factors.shape[1]
    patterns = correlation_matrix(truth_factors, learned_factors)
    maps = correlation_matrix(truth_loadings, learned_loadings)
    rows, cols = optimize.linear_sum_assignment(patterns + maps, maximize=True)
    pattern_r = np.zeros(k_true)
    map_r = np.zeros(k_true)
    pattern_r[rows] = patterns[rows, cols]
    map_r[rows] = maps[rows, cols]
    return float(map_r.mean()), float(pattern_r.mean()), map_r, pattern_r


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz written by bench_constraints.py")
    parser.add_argument("--lambda-L", type=float, default=2.0,
                        help="weight of espm's Laplacian map penalty (default 2)")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--espm-stop", action="store_true",
                        help="use espm's stopping rule (tol) instead of running all max_iter "
                             "iterations")
    args = parser.parse_args()

    from espm.estimators import SmoothNMF
    import espm
    import hyperspy

    data = np.load(args.data)
    X, clean = data["X"], data["clean"]
    truth_factors, truth_loadings = data["truth_factors"], data["truth_loadings"]
    scan_shape = tuple(int(n) for n in data["scan_shape"])
    k = truth_factors.shape[1]
    print(f"espm {getattr(espm, '__version__', '?')}, hyperspy {hyperspy.__version__}; "
          f"data: {X.shape[0]} patterns x {X.shape[1]} pixels, {X.dtype}, k = {k}, "
          f"scan {scan_shape}")

    model = SmoothNMF(n_components=k, lambda_L=args.lambda_L, mu=0, G=None,
                      shape_2d=scan_shape, normalize=True, hspy_comp=True,
                      max_iter=args.max_iter, tol=args.tol, random_state=0, verbose=1,
                      no_stop_criterion=not args.espm_stop)
    start = time.perf_counter()
    # espm catches KeyboardInterrupt (SIGINT) and returns what it has: scored below.
    maps = model.fit_transform(X)  # (n, k)
    seconds = time.perf_counter() - start
    patterns = model.components_  # (k, m)

    map_r, pattern_r, per_map, per_pattern = score(patterns.T, maps, truth_factors,
                                                   truth_loadings)
    reconstruction = maps @ patterns
    error = float(np.linalg.norm(reconstruction - clean) / np.linalg.norm(clean))

    print(f"per-component map r:     {np.array2string(per_map, precision=3)}")
    print(f"per-component pattern r: {np.array2string(per_pattern, precision=3)}")
    header = (f"{'fit':34s} {'err vs clean':>13s} {'map r':>6s} {'pattern r':>9s} "
              f"{'time s':>7s} {'iter':>5s}")
    print(header)
    print("-" * len(header))
    name = f"espm SmoothNMF (lambda_L={args.lambda_L:g})"
    print(f"{name:34s} {error:13.4f} {map_r:6.3f} {pattern_r:9.3f} {seconds:7.1f} "
          f"{model.n_iter_:5d}")


if __name__ == "__main__":
    main()
