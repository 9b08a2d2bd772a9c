"""Out-of-core NMF of lazy signals, against HyperSpy's lazy NMF and ORNMF and against dask's read time.

Two parts, each on synthetic 4D-STEM data written to .zspy and loaded lazily:

1. **256 MB** (128 x 128 scan x 64 x 64 detector, float32, 10^5 electrons
   per pattern so that the fit, not the Poisson noise, dominates the loss): our exact
   streaming HALS and our randomized solver against HyperSpy 2.5's lazy
   ``algorithm="NMF"`` (one pass of scikit-learn's MiniBatchNMF.partial_fit)
   and ``"ORNMF"`` (online robust NMF, one probe position at a time); each
   result's relative Frobenius loss ``||X - W H||^2 / ||X||^2`` is evaluated
   in one extra pass.
2. **Large** (by default 256 x 512 scan x 128 x 128 detector: 8 GiB as
   float32, stored as uint16 counts): the time dask takes to read the data
   once (``data.sum().compute()``), the time of one exact pass, the peak
   resident memory of each fit (separate processes), and the randomized
   solver's loss and number of passes against the exact solver's.

Usage::

    python benchmarks/bench_lazy.py                      # both parts (about an hour)
    python benchmarks/bench_lazy.py --skip-large         # the 256 MB part only
    python benchmarks/bench_lazy.py --skip-small --large-scan 128 256   # 2 GiB
    python benchmarks/bench_lazy.py --kl-pass            # one KL pass vs dask's read
    python benchmarks/bench_lazy.py --kl-fit             # lazy KL fits, chunks kept or not
    python benchmarks/bench_lazy.py --huge               # 64 GiB scan end to end
    python benchmarks/bench_lazy.py --huge-kl            # its KL pass vs dask's read
    python benchmarks/bench_lazy.py --huge-peer          # HyperSpy's NMF on a slice of it
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

K = 8


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def relative_loss(signal, W, H):
    """``||X - W H||² / ||X||²`` in one pass over the lazy data."""
    from hyperspy_hnmf.streaming import StreamedMatrix, as_row_chunks

    X = StreamedMatrix(as_row_chunks(signal.data, signal.axes_manager.signal_dimension))
    per_chunk = [(np.ascontiguousarray(W[X.rows(i)], dtype=np.float32),) for i in range(X.n_chunks)]
    residual, total = X.map_chunks(_residual, per_chunk=per_chunk,
                                   shared=(np.ascontiguousarray(H, dtype=np.float32),),
                                   reduce=True)
    return residual / total


def _residual(block, start, W_rows, H):
    difference = block - W_rows @ H
    return (float(np.sum(difference.astype(np.float64) ** 2)),
            float(np.sum(block.astype(np.float64) ** 2)))


def write(path, scan, detector, dtype, dose):
    from hyperspy_hnmf.data import synthetic_4dstem

    if Path(path).exists():
        return None
    s = synthetic_4dstem(scan_shape=tuple(scan), detector_shape=(detector, detector),
                         random_state=0, dtype=dtype, dose=dose, lazy=True)
    start = time.perf_counter()
    s.save(path, overwrite=True, show_progressbar=False)
    return time.perf_counter() - start


def load(path):
    import hyperspy.api as hs

    return hs.load(path, lazy=True)


def fit(path, solver, max_iter, tol, options=None, loss="frobenius", keep=True):
    """One fit in this process: time, passes, per-pass time, loss, peak memory.

    ``keep``: chunks are kept in memory after their first read (the default
    of StreamedMatrix); False: every pass reads the file.
    """
    import hyperspy_hnmf  # noqa: F401
    from hyperspy_hnmf.matrix import StreamedMatrix

    StreamedMatrix.compact_cache_bytes = None if keep else 0
    s = load(path)
    stamps = []
    start = time.perf_counter()
    from hyperspy_hnmf import HNMF

    model = HNMF(K, loss=loss, solver=solver, max_iter=max_iter, tol=tol, random_state=0,
                 **(options or {}))
    # Time stamps of the passes: the estimator's progress callback, without a bar.
    model._progress = lambda total: (None, lambda iteration, objective: stamps.append(
        time.perf_counter()))
    s.decomposition(algorithm=model, output_dimension=K, print_info=False)
    elapsed = time.perf_counter() - start
    lr = s.learning_results
    passes = int(lr.hnmf["passes"])
    per_pass = float(np.median(np.diff(stamps))) if len(stamps) > 2 else float("nan")
    loss_value = relative_loss(s, lr.loadings, lr.factors.T)
    return dict(solver=solver, seconds=elapsed, passes=passes, per_pass=per_pass,
                loss=loss_value, iterations=int(lr.hnmf["n_iter"]), peak_gib=peak_rss_gib())


def read_time(path):
    s = load(path)
    start = time.perf_counter()
    s.data.sum().compute()
    return dict(seconds=time.perf_counter() - start, peak_gib=peak_rss_gib(),
                gib_float32=s.data.size * 4 / 2**30)


def hyperspy_peer(path, algorithm):
    s = load(path)
    start = time.perf_counter()
    s.decomposition(algorithm=algorithm, output_dimension=K, print_info=False)
    elapsed = time.perf_counter() - start
    lr = s.learning_results
    loadings = np.asarray(lr.loadings)
    factors = np.asarray(lr.factors)
    return dict(solver=f"HyperSpy lazy {algorithm}", seconds=elapsed, passes=1,
                loss=relative_loss(s, loadings, factors.T), peak_gib=peak_rss_gib())


def write_counts(path, scan, detector, dtype, dose):
    """Counts as a memory-mapped .npy (no compression: the read is the cheapest possible)."""
    from numpy.lib.format import open_memmap

    if Path(path).exists():
        return
    n, m = scan[0] * scan[1], detector * detector
    out = open_memmap(path, mode="w+", dtype=dtype, shape=(n, m))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:detector, :detector] - detector / 2
    pattern = np.exp(-(yy**2 + xx**2) / (2 * (detector / 6) ** 2)).ravel()
    pattern /= pattern.sum()
    for start in range(0, n, 4096):
        rows = min(4096, n - start)
        lam = dose * pattern[None, :] * (0.5 + rng.random((rows, 1)))
        out[start:start + rows] = np.minimum(rng.poisson(lam), np.iinfo(dtype).max)
    out.flush()


def zspy_copy(npy_path, chunk_rows):
    """The counts of ``npy_path`` as a compressed .zspy (HyperSpy's defaults), row chunks kept."""
    import hyperspy.api as hs

    path = str(npy_path).replace(".npy", ".zspy")
    if not Path(path).exists():
        counts = np.load(npy_path)
        side, detector = int(np.sqrt(counts.shape[0])), int(np.sqrt(counts.shape[1]))
        s = hs.signals.Signal2D(counts.reshape(side, side, detector, detector))
        s.save(path, overwrite=True, chunks=(chunk_rows // side, side, detector, detector))
    return path


def open_counts(path, chunk_rows):
    """The counts as a 2D dask array of row chunks: a memory-mapped .npy or a lazy .zspy."""
    import dask.array as da

    if str(path).endswith(".npy"):
        return da.from_array(np.load(path, mmap_mode="r"), chunks=(chunk_rows, -1))
    from hyperspy_hnmf.matrix import as_row_chunks

    s = load(path)
    return as_row_chunks(s.data, s.axes_manager.signal_dimension)


def kl_pass(path, chunk_rows, k=K, reads=3, iterations=4, keep=True):
    """Seconds of dask's sum and of one exact KL pass over the same array, and RSS growth.

    ``keep``: mostly-zero chunks are kept in memory after their first read
    (the default of StreamedMatrix); False: every pass reads the file.
    """
    from hyperspy_hnmf.matrix import StreamedMatrix
    from hyperspy_hnmf.solvers import streaming_nmf

    StreamedMatrix.compact_cache_bytes = None if keep else 0
    data = open_counts(path, chunk_rows)
    n, m = data.shape
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        data.sum().compute()
        times.append(time.perf_counter() - start)
    rng = np.random.default_rng(0)
    W = rng.random((n, k)).astype(np.float32) + 0.1
    H = rng.random((k, m)).astype(np.float32) + 0.1
    before = peak_rss_gib()
    stamps = []
    matrix = StreamedMatrix(data)
    start = time.perf_counter()
    streaming_nmf(matrix, k, loss="kl", init=(W, H), max_iter=iterations, tol=0,
                  callback=lambda iteration, objective: stamps.append(time.perf_counter()))
    growth = peak_rss_gib() - before
    passes = np.diff(stamps)
    nonzero = float((data[:2048].compute() > 0).mean())
    return dict(read=min(times), kl_pass=float(np.median(passes)), rss_growth_gib=growth,
                first_two=stamps[0] - start, kept_gib=matrix.compact_bytes / 2**30,
                float32_gib=n * m * 4 / 2**30, maps_gib=n * k * 4 / 2**30, density=nonzero)


def hyperspy_nmf_pass(path, chunk_rows):
    """HyperSpy 2.5's lazy NMF (one pass of MiniBatchNMF.partial_fit) on the same array."""
    import dask.array as da
    import hyperspy.api as hs

    data = da.from_array(np.load(path, mmap_mode="r"), chunks=(chunk_rows, -1))
    side = int(np.sqrt(data.shape[1]))
    # HyperSpy refuses integer data: it converts chunk by chunk (part of its time).
    s = hs.signals.Signal2D(data.reshape(data.shape[0], side, side).astype(np.float32)).as_lazy()
    start = time.perf_counter()
    s.decomposition(algorithm="NMF", output_dimension=K, print_info=False)
    return dict(seconds=time.perf_counter() - start)


def kl_pass_part(folder, scan, detector):
    print(f"KL pass vs read: {scan[0]}x{scan[1]} scan x {detector}x{detector} detector, "
          f"k = {K}, 4096-row chunks, files in the page cache; load average "
          f"{os.getloadavg()[0]:.2f}")
    print("'from file': every pass reads the file (compact_cache_bytes = 0); 'kept': the "
          "default, chunks kept in memory after their first read (mostly-zero ones as CSR, "
          "dense counts in at most a byte per entry; not from a memory-mapped .npy)")
    print(f"{'data':22s} {'file':>5s} {'nonzero':>8s} {'read s':>7s} {'pass, from file s':>17s} "
          f"{'ratio':>6s} {'pass, kept s':>12s} {'ratio':>6s} {'kept GiB':>8s} "
          f"{'RSS growth / (f32 data + maps): from file, kept':>48s} {'HyperSpy NMF s':>15s}")
    for dtype, dose in (("uint16", 200.0), ("uint16", 4e4), ("uint8", 200.0), ("uint8", 4e3),
                        ("uint16", 2e5)):  # (the last: counts over a byte)
        path = str(folder / f"counts_{scan[0]}x{scan[1]}x{detector}_{dtype}_{dose:g}.npy")
        write_counts(path, scan, detector, np.dtype(dtype), dose)
        for kind, source in (("npy", path), ("zspy", zspy_copy(path, 4096))):
            plain = in_subprocess("kl_pass", source, 4096, K, 3, 4, False)
            row = in_subprocess("kl_pass", source, 4096, K, 3, 4, True)
            peer = in_subprocess("hyperspy_nmf_pass", path, 4096) if kind == "npy" else None
            budget = row["float32_gib"] + row["maps_gib"]
            print(f"{dtype + ', ' + format(dose, 'g') + ' e/pattern':22s} {kind:>5s} "
                  f"{row['density']:8.3f} {row['read']:7.3f} {plain['kl_pass']:17.3f} "
                  f"{plain['kl_pass'] / plain['read']:6.2f} {row['kl_pass']:12.3f} "
                  f"{row['kl_pass'] / row['read']:6.2f} {row['kept_gib']:8.3f} "
                  f"{plain['rss_growth_gib'] / budget:41.3f} "
                  f"{row['rss_growth_gib'] / budget:6.3f} "
                  f"{peer['seconds'] if peer else float('nan'):15.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f} (goals: ratio <= 1.5, RSS <= 0.25)")


def kl_fit_part(folder, scan, detector, iterations=60):
    """Lazy KL decompositions of the --kl-pass files, chunks kept or read at every pass."""
    print(f"Lazy KL decomposition, {iterations} iterations (tol 0), k = {K}: {scan[0]}x{scan[1]} "
          f"scan x {detector}x{detector} detector .zspy; load average {os.getloadavg()[0]:.2f}")
    print(f"{'data':24s} {'from file s':>11s} {'peak GiB':>8s} {'kept s':>7s} {'peak GiB':>8s} "
          f"{'speed-up':>8s} {'passes':>6s} {'same loss':>9s}")
    for dtype, dose in (("uint16", 4e4), ("uint8", 4e3), ("uint16", 200.0), ("uint8", 200.0),
                        ("uint16", 2e5)):
        path = str(folder / f"counts_{scan[0]}x{scan[1]}x{detector}_{dtype}_{dose:g}.npy")
        write_counts(path, scan, detector, np.dtype(dtype), dose)
        source = zspy_copy(path, 4096)
        plain, kept = (in_subprocess("fit", source, "mu", iterations, 0.0, None, "kl", keep)
                       for keep in (False, True))
        print(f"{dtype + ', ' + format(dose, 'g') + ' e/pattern':24s} {plain['seconds']:11.1f} "
              f"{plain['peak_gib']:8.2f} {kept['seconds']:7.1f} {kept['peak_gib']:8.2f} "
              f"{plain['seconds'] / kept['seconds']:8.2f} {kept['passes']:6d} "
              f"{str(kept['loss'] == plain['loss']):>9s}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def hyperspy_nmf_slice(path, rows):
    """HyperSpy 2.5's lazy NMF on the first ``rows`` scan rows of the huge scan (seconds)."""
    s = load(path).inav[:, :rows]
    s.change_dtype("float32")  # HyperSpy's NMF refuses integer data
    start = time.perf_counter()
    s.decomposition(algorithm="NMF", output_dimension=K, print_info=False)
    return dict(seconds=time.perf_counter() - start)


def huge_peer_part(folder, scan, detector, rows=64):
    """The peer on the huge scan: HyperSpy's lazy NMF on a slice, scaled to the whole scan."""
    path = str(folder / f"huge_{scan[0]}x{scan[1]}x{detector}.zspy")
    print(f"HyperSpy 2.5 lazy NMF (k = {K}) on the first {rows} of {scan[1]} scan rows of "
          f"{path}; load average {os.getloadavg()[0]:.2f}")
    row = in_subprocess("hyperspy_nmf_slice", path, rows)
    whole = row["seconds"] * scan[1] / rows
    print(f"{row['seconds']:.0f} s for 1/{scan[1] // rows} of the scan: about {whole:.0f} s "
          f"({whole / 60:.0f} min) for the whole scan (one pass, time proportional to the "
          f"data); load average after {os.getloadavg()[0]:.2f}")


def huge_kl_part(folder, scan, detector):
    """One exact KL pass against dask's read on the huge .zspy scan (no fit)."""
    path = str(folder / f"huge_{scan[0]}x{scan[1]}x{detector}.zspy")
    seconds = write(path, scan, detector, "uint16", 200.0)
    if seconds is not None:
        print(f"wrote {path} in {seconds:.0f} s (not counted)")
    print(f"KL pass vs read, huge scan {scan[0]}x{scan[1]} x {detector}x{detector} uint16 "
          f".zspy; load average {os.getloadavg()[0]:.2f}")
    for keep in (False, True):
        row = in_subprocess("kl_pass", path, 0, K, 2, 3, keep)
        budget = row["float32_gib"] + row["maps_gib"]
        print(f"{'kept' if keep else 'from file'}: nonzero {row['density']:.3f}; read "
              f"{row['read']:.1f} s; KL pass {row['kl_pass']:.1f} s; ratio "
              f"{row['kl_pass'] / row['read']:.2f} (goal <= 1.5); first two passes "
              f"{row['first_two']:.1f} s; kept {row['kept_gib']:.2f} GiB; RSS growth "
              f"{row['rss_growth_gib'] / budget:.3f} of f32 data + maps (goal <= 0.25); "
              f"load average after {os.getloadavg()[0]:.2f}")


def fit_huge(path, k=K):
    """The whole-scan job: Poisson-weighted randomized NMF through ``decomposition``.

    Returns its time, passes, peak memory and map recovery, then the time of
    one exact KL pass (from the randomized result) and of dask's read.
    """
    import hyperspy_hnmf  # noqa: F401
    from hyperspy_hnmf.data import score_signal
    from hyperspy_hnmf.matrix import StreamedMatrix, as_row_chunks
    from hyperspy_hnmf.solvers import streaming_nmf

    s = load(path)
    start = time.perf_counter()
    s.decomposition(algorithm="hnmf", output_dimension=k, solver="randomized",
                    normalize_poissonian_noise=True, random_state=0, print_info=False)
    elapsed = time.perf_counter() - start
    peak = peak_rss_gib()
    lr = s.learning_results
    score = score_signal(s)
    row = dict(seconds=elapsed, passes=int(lr.hnmf["passes"]), peak_gib=peak,
               map_r=float(score.mean_map_correlation),
               pattern_r=float(score.mean_pattern_correlation))
    matrix = StreamedMatrix(as_row_chunks(s.data, 2))
    stamps = []
    start = time.perf_counter()
    streaming_nmf(matrix, k, loss="kl", init=(lr.loadings, lr.factors.T), max_iter=1, tol=0,
                  callback=lambda iteration, objective: stamps.append(time.perf_counter()))
    row["kl_two_passes"] = time.perf_counter() - start
    start = time.perf_counter()
    s.data.sum().compute()
    row["read"] = time.perf_counter() - start
    row["peak_after_kl_gib"] = peak_rss_gib()
    return row


def huge_part(folder, scan, detector):
    path = str(folder / f"huge_{scan[0]}x{scan[1]}x{detector}.zspy")
    seconds = write(path, scan, detector, "uint16", 200.0)
    if seconds is not None:
        print(f"wrote {path} in {seconds:.0f} s (not counted)")
    gib = scan[0] * scan[1] * detector * detector * 4 / 2**30
    print(f"huge scan: {scan[0]}x{scan[1]} x {detector}x{detector} uint16 counts, 200 per "
          f"pattern, {gib:.0f} GiB as float32; k = {K}; load average {os.getloadavg()[0]:.2f}")
    row = in_subprocess("fit_huge", path)
    print(f"decomposition(solver='randomized', normalize_poissonian_noise=True): "
          f"{row['seconds']:.0f} s ({row['seconds'] / 60:.1f} min, goal <= 10), "
          f"{row['passes']} passes, peak RSS {row['peak_gib']:.2f} GiB (goal <= 2), "
          f"mean map r {row['map_r']:.3f} (goal >= 0.9), pattern r {row['pattern_r']:.3f}")
    print(f"dask read: {row['read']:.0f} s; exact KL: evaluation + one iteration "
          f"(two passes) {row['kl_two_passes']:.0f} s; peak RSS then "
          f"{row['peak_after_kl_gib']:.2f} GiB; load average {os.getloadavg()[0]:.2f}")


def in_subprocess(function, *args):
    """Run ``function(*args)`` of this module in a fresh process (clean peak memory)."""
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_lazy as b; print(json.dumps(b.{function}(*{args!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows, reference=None):
    print(f"{'fit':34s} {'time s':>8s} {'passes':>6s} {'s/pass':>7s} {'rel. loss':>10s} "
          f"{'peak GiB':>8s}")
    for row in rows:
        print(f"{row['solver']:34s} {row['seconds']:8.1f} {row.get('passes', 0):6d} "
              f"{row.get('per_pass', float('nan')):7.2f} {row['loss']:10.5f} "
              f"{row['peak_gib']:8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="/tmp/hnmf_bench_lazy")
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-ornmf", action="store_true")
    parser.add_argument("--large-scan", type=int, nargs=2, default=[256, 512])
    parser.add_argument("--large-detector", type=int, default=128)
    parser.add_argument("--exact-passes", type=int, default=40)
    parser.add_argument("--kl-pass", action="store_true",
                        help="only the KL-pass-versus-read table (item 5 of the one-path issue)")
    parser.add_argument("--kl-fit", action="store_true",
                        help="only lazy KL decompositions of the --kl-pass files, chunks kept "
                             "in memory or read at every pass")
    parser.add_argument("--kl-scan", type=int, nargs=2, default=[256, 256])
    parser.add_argument("--huge", action="store_true",
                        help="only the 64 GiB scan (1024 x 1024 x 128 x 128) end to end")
    parser.add_argument("--huge-kl", action="store_true",
                        help="only one exact KL pass against dask's read on the huge scan")
    parser.add_argument("--huge-peer", action="store_true",
                        help="only HyperSpy's lazy NMF on a slice of the huge scan (the peer)")
    parser.add_argument("--huge-scan", type=int, nargs=2, default=[1024, 1024])
    parser.add_argument("--write-only", action="store_true",
                        help="with --huge: write the data and stop")
    parser.add_argument("--dose", type=float, default=1e5,
                        help="electrons per pattern of the 256 MB data")
    args = parser.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if args.kl_pass:
        kl_pass_part(folder, args.kl_scan, 64)
        return
    if args.kl_fit:
        kl_fit_part(folder, args.kl_scan, 64)
        return
    if args.huge_kl:
        huge_kl_part(folder, args.huge_scan, 128)
        return
    if args.huge_peer:
        huge_peer_part(folder, args.huge_scan, 128)
        return
    if args.huge:
        if args.write_only:
            path = str(folder / f"huge_{args.huge_scan[0]}x{args.huge_scan[1]}x128.zspy")
            print(f"wrote in {write(path, args.huge_scan, 128, 'uint16', 200.0)} s")
            return
        huge_part(folder, args.huge_scan, 128)
        return

    if not args.skip_small:
        path = str(folder / f"small_dose{args.dose:g}.zspy")
        write(path, (128, 128), 64, "float32", args.dose)
        print(f"256 MB part: {path}, {args.dose:g} electrons per pattern, k = {K}")
        rows = [in_subprocess("hyperspy_peer", path, "NMF")]
        rows.append(in_subprocess("fit", path, "hals", 200, 1e-4))
        rows.append(in_subprocess("fit", path, "randomized", 200, 1e-4))
        rows.append(in_subprocess("fit", path, "hals", 6, 0.0))
        rows.append(in_subprocess("fit", path, "randomized", 200, 1e-4,
                                  {"power_iterations": 1, "refine_passes": 2}))
        names = ["hnmf exact HALS (tol 1e-4)", "hnmf randomized (q=2, 5 refine)",
                 "hnmf exact HALS, 6 iterations", "hnmf randomized (q=1, 2 refine)"]
        for row, name in zip(rows[1:], names):
            row["solver"] = name
        peer_time = rows[0]["seconds"]
        if not args.skip_ornmf:
            rows.append(in_subprocess("hyperspy_peer", path, "ORNMF"))
        table(rows)
        ours = [r for r in rows if not r["solver"].startswith("HyperSpy")]
        within = [r for r in ours if r["seconds"] <= peer_time]
        for row in within:
            print(f"{row['solver']}: {row['seconds']:.1f} s <= HyperSpy NMF {peer_time:.1f} s; "
                  f"loss {1 - row['loss'] / rows[0]['loss']:.1%} lower (goal >= 30 %)")
        if not within:
            print("none of our fits finished within HyperSpy NMF's time")

    if not args.skip_large:
        scan, detector = args.large_scan, args.large_detector
        path = str(folder / f"large_{scan[0]}x{scan[1]}x{detector}.zspy")
        seconds = write(path, scan, detector, "uint16", 200.0)
        if seconds is not None:
            print(f"wrote {path} in {seconds:.0f} s")
        read = in_subprocess("read_time", path)
        print(f"large part: {path}: {read['gib_float32']:.1f} GiB as float32; dask reads it "
              f"once in {read['seconds']:.1f} s (peak {read['peak_gib']:.2f} GiB)")
        rows = [in_subprocess("fit", path, "hals", args.exact_passes, 0.0),
                in_subprocess("fit", path, "randomized", 200, 1e-4)]
        for row in rows:
            row["solver"] = ("exact streaming HALS" if row["solver"] == "hals"
                             else "randomized + 5 exact passes")
        table(rows)
        exact, fast = rows
        print(f"one exact pass: {exact['per_pass']:.1f} s = {exact['per_pass'] / read['seconds']:.2f}"
              " x dask's read (goal <= 1.5)")
        print(f"peak memory: {max(r['peak_gib'] for r in rows):.2f} GiB (goal <= 1.5)")
        print(f"randomized: {fast['passes']} passes, loss {fast['loss']:.6f} vs exact "
              f"{exact['loss']:.6f} after {exact['passes']} passes: "
              f"{fast['loss'] / exact['loss'] - 1:+.2%} (goal within 1 % in <= 15 passes)")


if __name__ == "__main__":
    main()
