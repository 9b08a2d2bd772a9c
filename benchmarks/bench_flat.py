"""Flat NMF against scikit-learn on the built-in synthetic 4D-STEM data.

Measures, in one run on the same data (128 x 128 scan x 64 x 64 detector,
float32, about 200 electrons per pattern, k = the true number of components):

- Frobenius: HALS against ``sklearn NMF(solver="cd", init="nndsvda")``: the
  time HALS takes to reach scikit-learn's final loss, the time per HALS
  iteration against the two-GEMM floor (``X @ H.T`` and ``W.T @ X``, timed
  here), and the peak memory of each fit (separate processes) relative to the
  data size;
- KL: multiplicative updates against ``sklearn NMF(solver="mu",
  beta_loss="kullback-leibler")``: time to reach scikit-learn's final KL;
- ground-truth recovery (mean pattern and map correlation after Hungarian
  matching) of every solver and peer.

With ``--kl-doses``, KL only, at several doses (from mostly-zero to dense
counts): our fit (fused kernel passes over the array, CSR when mostly zero),
the alternating half-steps it replaced (NumPy row blocks for dense data, a CSR
kernel per half-step otherwise) from the same initialization, and
scikit-learn's ``mu`` KL, all in the same run.

Usage::

    python benchmarks/bench_flat.py                 # full size (about 4 minutes)
    python benchmarks/bench_flat.py --scan 64       # quicker
    python benchmarks/bench_flat.py --kl-doses 200 3000 40000   # KL speed (about 8 minutes)
    python benchmarks/bench_flat.py --kl-maps 200 40000   # KL maps for fixed components
    python benchmarks/bench_flat.py --kl-hierarchies 40000   # KL flat, layers, tree (2 minutes)
    python benchmarks/bench_flat.py --held-counts 200 3000 40000  # uint16 counts in memory (3 min)

``--kl-maps`` times the maps for fixed (true) components under KL, as
``transform`` and a tree's leaves compute them: the row kernel against the
NumPy loop it replaced (every active row at every update), same stop.

``--held-counts 200 3000 40000`` decomposes uint16 counts held in memory
(``s.decomposition(algorithm="hnmf")``, default KL), each run in its own
process: read in place (the counts as they are) against the conversion a
float-only path needs (``s.change_dtype("float32")`` first, included): time,
peak memory over the counts' own size, and recovery; flat fits at every dose,
trees (``hierarchy="tree"``) at the middle one.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from hyperspy_hnmf import solvers
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_4dstem


def make_data(scan, detector, dose):
    s = synthetic_4dstem(scan_shape=(scan, scan), detector_shape=(detector, detector),
                         dose=dose, random_state=0)
    X = s.data.reshape(scan * scan, detector * detector)
    return X, get_ground_truth(s)


def recovery(W, H, truth):
    score = score_decomposition(H.T, W, truth.factors, truth.loadings)
    return score.mean_pattern_correlation, score.mean_map_correlation


def gemm_floor(X, k, repeats=7):
    rng = np.random.default_rng(0)
    W = rng.random((X.shape[0], k)).astype(X.dtype)
    Ht = rng.random((X.shape[1], k)).astype(X.dtype)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        X @ Ht
        W.T @ X
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def run_sklearn(X, k, loss):
    from sklearn.decomposition import NMF

    if loss == "frobenius":
        model = NMF(n_components=k, solver="cd", init="nndsvda", random_state=0)
    else:
        model = NMF(n_components=k, solver="mu", beta_loss="kullback-leibler",
                    init="nndsvda", random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = model.fit_transform(X)
    elapsed = time.perf_counter() - start
    # scikit-learn's own reconstruction_err_ sums float32 products in float32,
    # which underestimates the loss by ~0.1 % here: every method's final loss
    # is evaluated by the same float64 function instead.
    beta = 2.0 if loss == "frobenius" else 1.0
    final_loss = solvers.beta_divergence(X, W, model.components_, beta)
    return dict(W=W, H=model.components_, time=elapsed, loss=final_loss, n_iter=model.n_iter_)


def run_ours(X, k, loss, solver, max_iter=200, tol=1e-4, n_restarts=1):
    stamps, objectives = [], []

    def record(iteration, objective):
        stamps.append(time.perf_counter())
        objectives.append(objective)

    start = time.perf_counter()
    result = solvers.nmf(X, k, loss=loss, solver=solver, max_iter=max_iter, tol=tol,
                         random_state=0, n_restarts=n_restarts, callback=record)
    elapsed = time.perf_counter() - start
    steps = np.diff(stamps) if len(stamps) > 1 else np.array([np.nan])
    beta = 2.0 if loss == "frobenius" else 1.0  # the same float64 function as the peer's
    return dict(W=result.W, H=result.H, time=elapsed,
                loss=solvers.beta_divergence(X, result.W, result.H, beta),
                n_iter=result.n_iter, stamps=np.asarray(stamps) - start,
                objectives=np.asarray(objectives), per_iter=float(np.median(steps)))


def time_to_reach(run, target):
    reached = np.flatnonzero(run["objectives"] <= target)
    return float(run["stamps"][reached[0]]) if reached.size else float("nan")


def peak_memory_child(path, k, method):
    """Run one fit on the data saved at ``path``; print the peak RSS increase."""
    import hyperspy.api as hs

    X = np.load(path)
    side = int(round(np.sqrt(X.shape[0]))), int(round(np.sqrt(X.shape[1])))
    signal = hs.signals.Signal2D(X.reshape(side[0], side[0], side[1], side[1]))  # a view, no copy
    # Reset the high-water mark (loading the file may have peaked above the
    # data size), so that VmHWM below is the peak of the fit alone.
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    baseline = _status_bytes("VmRSS")
    if method.startswith("hyperspy-"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            algorithm = method.split("-", 1)[1]
            options = {"loss": "kl"} if algorithm == "hnmf-kl" else {}
            signal.decomposition(algorithm=algorithm.split("-")[0], output_dimension=k,
                                 print_info=False, **options)
    elif method == "sklearn-cd":
        from sklearn.decomposition import NMF

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            NMF(n_components=k, solver="cd", init="nndsvda", random_state=0).fit_transform(X)
    else:
        solver, loss = method.split("-")
        solvers.nmf(X, k, loss=loss, solver=solver, random_state=0)
    peak = _status_bytes("VmHWM")
    print(json.dumps({"extra": peak - baseline, "data": X.nbytes}))


def _status_bytes(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory(X, k, method):
    """Peak memory of a fit as a multiple of the data size (data included)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "X.npy")
        np.save(path, X)
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", path, str(k), method],
            check=True, capture_output=True, text=True,
        ).stdout
    values = json.loads(output.strip().splitlines()[-1])
    return (values["data"] + values["extra"]) / values["data"]


def main(scan, detector, dose, with_sklearn_kl=True):
    X, truth = make_data(scan, detector, dose)
    k = truth.n_components
    density = np.count_nonzero(X) / X.size
    print(f"data: {X.shape[0]} patterns x {X.shape[1]} pixels, float32, "
          f"{X.nbytes / 2**20:.0f} MiB, {X.sum(axis=1).mean():.0f} counts/pattern, "
          f"{100 * density:.1f} % nonzero, k = {k}\n")
    solvers.nmf(X[:200], k, max_iter=2)  # compile the numba kernels outside the timings
    solvers.nmf(X[:200], k, loss="kl", max_iter=2)
    floor = gemm_floor(X, k)

    rows = []
    sk_frob = run_sklearn(X, k, "frobenius")
    hals = run_ours(X, k, "frobenius", "hals")
    hals_trace = run_ours(X, k, "frobenius", "hals", max_iter=400, tol=0)
    als = run_ours(X, k, "frobenius", "als", n_restarts=5)
    mu_kl = run_ours(X, k, "kl", "mu")
    mu_kl_trace = run_ours(X, k, "kl", "mu", max_iter=400, tol=0)
    sk_kl = run_sklearn(X, k, "kl") if with_sklearn_kl else None

    def add(name, run, loss_name):
        pattern, maps = recovery(run["W"], run["H"], truth)
        rows.append((name, run["time"], run["n_iter"], loss_name, run["loss"], pattern, maps))

    add("sklearn NMF cd (nndsvda)", sk_frob, "Frobenius")
    add("hnmf HALS (nndsvda)", hals, "Frobenius")
    add("hnmf ALS, 5 restarts", als, "Frobenius")
    if sk_kl is not None:
        add("sklearn NMF mu KL (nndsvda)", sk_kl, "KL")
    add("hnmf MU KL (nndsvda)", mu_kl, "KL")

    print("| method | time (s) | iterations | loss | final loss | pattern r | map r |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for name, seconds, iterations, loss_name, value, pattern, maps in rows:
        print(f"| {name} | {seconds:.1f} | {iterations} | {loss_name} | {value:.6g} | "
              f"{pattern:.3f} | {maps:.3f} |")

    reach_frob = time_to_reach(hals_trace, sk_frob["loss"])
    print("\n| target | peer time (s) | hnmf time to peer's loss (s) | ratio | goal |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(f"| Frobenius: sklearn cd final loss | {sk_frob['time']:.1f} | {reach_frob:.2f} | "
          f"{reach_frob / sk_frob['time']:.3f} | ≤ 0.333 |")
    if sk_kl is not None:
        reach_kl = time_to_reach(mu_kl_trace, sk_kl["loss"])
        print(f"| KL: sklearn mu final KL | {sk_kl['time']:.1f} | {reach_kl:.2f} | "
              f"{reach_kl / sk_kl['time']:.3f} | ≤ 0.100 |")

    per_iter = hals_trace["per_iter"]
    print(f"\nHALS time per iteration: {1e3 * per_iter:.1f} ms; two-GEMM floor "
          f"{1e3 * floor:.1f} ms; ratio {per_iter / floor:.2f} (goal ≤ 1.3)")
    print(f"MU-KL time per iteration: {1e3 * mu_kl_trace['per_iter']:.1f} ms")

    print("\n| peak memory / data size (data included; hyperspy-* through s.decomposition) | value | goal |")
    print("| --- | ---: | --- |")
    for method, goal in (("hals-frobenius", "≤ 1.5"), ("sklearn-cd", "(peer)"),
                         ("mu-kl", ""), ("hyperspy-hnmf", "≤ 1.5"),
                         ("hyperspy-hnmf-kl", ""), ("hyperspy-NMF", "(peer)")):
        print(f"| {method} | {peak_memory(X, k, method):.3f} | {goal} |")


def kl_doses(scan, detector, doses, iterations=30):
    """KL at several doses: fused passes, the former half-steps, scikit-learn's mu."""
    from hyperspy_hnmf.solvers._init import initialize
    from hyperspy_hnmf.solvers._linalg import as_generator, density, to_csr
    from hyperspy_hnmf.solvers._loop import alternate
    from hyperspy_hnmf.solvers._updates import MUUpdate

    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{scan} x {scan} scan x {detector} x {detector} detector, float32; "
          f"{iterations} iterations (tol = 0) for the per-iteration times\n")
    print("| counts / pattern | nonzero | held as | hnmf s / iter | half-steps s / iter | "
          "speed-up | hnmf fit s (iter) | sklearn mu s (iter) | hnmf time to sklearn's loss s "
          "| ratio | map r hnmf / sklearn |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for dose in doses:
        X, truth = make_data(scan, detector, dose)
        k = truth.n_components
        solvers.nmf(X[:300], k, loss="kl", max_iter=2)  # compile
        fraction = density(X)
        fused = run_ours(X, k, "kl", "mu", max_iter=iterations, tol=0)
        data = to_csr(X) if fraction <= solvers.DENSE_KL_DENSITY else X
        W, H = initialize(data, k, "nndsvda", as_generator(0), poisson_weighted=True)
        stamps = []
        alternate(data, W, H, MUUpdate(1.0), max_iter=iterations, tol=0,
                  callback=lambda it, obj: stamps.append(time.perf_counter()))
        half_steps = float(np.median(np.diff(stamps)))
        fit = run_ours(X, k, "kl", "mu", max_iter=400, tol=0)
        default = run_ours(X, k, "kl", "mu")
        peer = run_sklearn(X, k, "kl")
        reach = time_to_reach(fit, peer["loss"])
        ours_r, peer_r = recovery(default["W"], default["H"], truth)[1], \
            recovery(peer["W"], peer["H"], truth)[1]
        print(f"| {X.sum(axis=1).mean():.0f} | {fraction:.3f} | "
              f"{'CSR' if data is not X else 'dense'} | {fused['per_iter']:.4f} | "
              f"{half_steps:.4f} | {half_steps / fused['per_iter']:.1f}× | "
              f"{default['time']:.1f} ({default['n_iter']}) | {peer['time']:.1f} "
              f"({peer['n_iter']}) | {reach:.2f} | {reach / peer['time']:.3f} | "
              f"{ours_r:.3f} / {peer_r:.3f} |", flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def kl_maps(scan, detector, doses, max_iter=1000, tol=1e-6):
    """KL maps for fixed components (transform, tree leaves): the row kernel against NumPy.

    The components are the true ones; both solve the same per-row
    multiplicative updates to the same stop (``max_iter``, ``tol``: those of
    a tree's leaf maps), the NumPy loop updating every active row at every
    step (the implementation this kernel replaced).
    """
    from hyperspy_hnmf.solvers._init import initialize
    from hyperspy_hnmf.solvers._linalg import density
    from hyperspy_hnmf.solvers._ratio import KLData

    def numpy_maps(X, H, W):
        data = KLData(X)
        Ht = np.ascontiguousarray(H.T, dtype=np.float64)
        denominator = Ht.sum(axis=0)[None, :]
        A = np.maximum(W.astype(np.float64), max(float(np.mean(W)), 1e-6) * 1e-3)
        active = np.ones(A.shape[0], dtype=bool)
        for _ in range(max_iter):
            numerator, _ = data.right(A, Ht, Ht)
            new = np.maximum(A * numerator / denominator, 1e-16)
            change = np.abs(new - A).sum(axis=1) / A.sum(axis=1)
            A[active] = new[active]
            active &= change > tol
            if not active.any():
                break
        return A

    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"KL maps for the true components, max_iter = {max_iter}, tol = {tol:g}\n")
    print("| counts / pattern | nonzero | kernel s | NumPy s | speed-up | max relative L1 "
          "difference of a row |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for dose in doses:
        X, truth = make_data(scan, detector, dose)
        H = np.ascontiguousarray(truth.factors.T, dtype=X.dtype)
        solvers.solve_loadings(X[:64], H, loss="kl", max_iter=2)  # compile
        start = time.perf_counter()
        maps = solvers.solve_loadings(X, H, loss="kl", max_iter=max_iter, tol=tol)
        kernel = time.perf_counter() - start
        W = initialize(X, H.shape[0], (None, H), None, user_init=False)[0]
        start = time.perf_counter()
        reference = numpy_maps(X, H, W)
        numpy_time = time.perf_counter() - start
        difference = np.abs(maps - reference).sum(axis=1) / np.maximum(
            reference.sum(axis=1), np.finfo(float).tiny)
        print(f"| {X.sum(axis=1).mean():.0f} | {density(X):.3f} | {kernel:.1f} | "
              f"{numpy_time:.1f} | {numpy_time / kernel:.1f}× | {difference.max():.1e} |",
              flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def kl_hierarchies(scan, detector, dose):
    """``s.decomposition(loss="kl")`` in memory: flat, multi-layer with fine-tuning, tree."""
    import hyperspy.api as hs  # (importing hyperspy_hnmf above registered algorithm="hnmf")

    X, truth = make_data(scan, detector, dose)
    k = truth.n_components
    signal = hs.signals.Signal2D(X.reshape(scan, scan, detector, detector))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{scan} x {scan} scan x {detector} x {detector} detector, float32, "
          f"{X.sum(axis=1).mean():.0f} counts / pattern, {np.count_nonzero(X) / X.size:.3f} "
          f"nonzero, k = {k}\n")
    print("| fit | time s | pattern r | map r |")
    print("| --- | ---: | ---: | ---: |")
    solvers.nmf(X[:300], k, loss="kl", max_iter=2)  # compile
    for name, options in (("flat", dict(output_dimension=k)),
                          ("layers [k, 3], fine-tuned", dict(output_dimension=[k, 3])),
                          ("tree", dict(output_dimension=k, hierarchy="tree"))):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signal.decomposition(algorithm="hnmf", loss="kl", print_info=False,
                                 random_state=0, show_progressbar=False, **options)
        elapsed = time.perf_counter() - start
        results = signal.learning_results
        pattern, maps = recovery(np.asarray(results.loadings), np.asarray(results.factors).T,
                                 truth)
        print(f"| {name} | {elapsed:.1f} | {pattern:.3f} | {maps:.3f} |", flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def held_counts_child(path, k, method, out):
    """Decompose the uint16 counts at ``path`` (``method``: "in place" or "float32")."""
    import hyperspy.api as hs

    X = np.load(path)
    side = int(round(np.sqrt(X.shape[0]))), int(round(np.sqrt(X.shape[1])))
    signal = hs.signals.Signal2D(X.reshape(side[0], side[0], side[1], side[1]))
    del X
    solvers.nmf(signal.data.reshape(-1, side[1] ** 2)[:300], k, max_iter=2)  # compile
    solvers.nmf(signal.data.reshape(-1, side[1] ** 2)[:300].astype(np.float32), k,
                max_iter=2)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    baseline = _status_bytes("VmRSS")
    start = time.perf_counter()
    if method.startswith("float32"):
        signal.change_dtype("float32")
    options = dict(hierarchy="tree") if method.endswith("tree") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signal.decomposition(algorithm="hnmf", output_dimension=k, random_state=0,
                             print_info=False, show_progressbar=False, **options)
    elapsed = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    results = signal.learning_results
    np.savez(out, W=np.asarray(results.loadings), H=np.asarray(results.factors).T)
    print(json.dumps({"extra": peak - baseline, "seconds": elapsed,
                      "loss": results.hnmf["loss"], "iterations": int(results.hnmf["n_iter"])}))


def held_counts(scan, detector, doses):
    """uint16 counts in memory: read in place against a float32 copy first."""
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{scan} x {scan} scan x {detector} x {detector} detector, uint16 counts held in "
          "memory, s.decomposition(algorithm='hnmf') with the default loss (KL), each run in "
          "its own process\n")
    print("| e⁻ / pattern | nonzero | run | time s | iterations | peak RSS over the counts "
          "(× their size) | pattern r | map r |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for dose in doses:
        X, truth = make_data(scan, detector, dose)
        counts = X.astype(np.uint16)
        k = truth.n_components
        methods = ["in place", "float32"]
        if dose == doses[len(doses) // 2]:
            methods += ["in place tree", "float32 tree"]  # (trees at one dose)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "X.npy")
            np.save(path, counts)
            for method in methods:
                out = os.path.join(folder, "result.npz")
                output = subprocess.run(
                    [sys.executable, __file__, "--held-child", path, str(k), method, out],
                    check=True, capture_output=True, text=True).stdout
                values = json.loads(output.strip().splitlines()[-1])
                result = np.load(out)
                pattern, maps = recovery(result["W"], result["H"], truth)
                label = ("counts read in place" if method.startswith("in place")
                         else "change_dtype('float32') first")
                if method.endswith("tree"):
                    label += ", tree"
                print(f"| {dose:.0f} | {np.count_nonzero(counts) / counts.size:.3f} | {label} | "
                      f"{values['seconds']:.1f} | {values['iterations']} | "
                      f"{values['extra'] / counts.nbytes:.2f} | {pattern:.3f} | {maps:.3f} |",
                      flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--held-child":
        held_counts_child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        peak_memory_child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", type=int, default=128)
    parser.add_argument("--detector", type=int, default=64)
    parser.add_argument("--dose", type=float, default=200.0)
    parser.add_argument("--no-sklearn-kl", action="store_true",
                        help="skip scikit-learn's slow KL fit")
    parser.add_argument("--kl-doses", type=float, nargs="+",
                        help="KL only, at these doses (electrons per pattern)")
    parser.add_argument("--kl-maps", type=float, nargs="+",
                        help="KL maps for fixed components, at these doses")
    parser.add_argument("--kl-hierarchies", type=float,
                        help="s.decomposition(loss='kl') flat, layers and tree at this dose")
    parser.add_argument("--held-counts", type=float, nargs="+",
                        help="uint16 counts in memory: read in place vs a float32 copy first")
    arguments = parser.parse_args()
    for doses, run in ((arguments.held_counts, held_counts),
                       (arguments.kl_hierarchies, kl_hierarchies),
                       (arguments.kl_maps, kl_maps), (arguments.kl_doses, kl_doses)):
        if doses:
            run(arguments.scan, arguments.detector, doses)
            sys.exit(0)
    main(arguments.scan, arguments.detector, arguments.dose, not arguments.no_sklearn_kl)
