"""Event-based detector data: KL decomposition of electron event lists without densifying.

A planted low-rank model on a 512 x 512 scan x 256 x 256 detector
(1.7·10^10 voxels: 64 GiB as dense float32) is sampled as an electron event list:
each event picks a component (by its share of the dose), a probe position from
that component's map and a detector pixel from its pattern, so the binned counts
are Poisson draws of ``N · maps @ patterns``. The events are binned with
:func:`hyperspy_hnmf.events.events_to_array` into a dask array of CSR chunks and
decomposed with the KL loss by the streaming solver (one pass over the nonzeros
per iteration, :func:`hyperspy_hnmf.streaming.streaming_nmf`).

For each event count (10^6, 10^7, 10^8 by default; each in its own process so
that peak memory is its own) the script reports: the time to sample and to
bin, the number of nonzeros, the time per KL iteration (median over the
iterations) and per 10^6 nonzeros, the resident memory (baseline after imports,
peak while fitting sampled every 20 ms, and the process's peak from
``getrusage``), and the recovery of the planted maps and patterns (Pearson r
after matching components).

Usage::

    python benchmarks/bench_events.py                       # 1e6, 1e7, 1e8 events
    python benchmarks/bench_events.py --events 1e6 1e7 --iterations 10
    python benchmarks/bench_events.py --figure docs/_static/events_maps.png
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np

# Import the package of this checkout (not an installed copy) when run as a script.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCAN = (512, 512)
DETECTOR = (256, 256)
K = 4


def planted_model(seed=0):
    """Maps (positions × K, rows sum to 1) and patterns (K × pixels, rows sum to 1)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: SCAN[0], : SCAN[1]] / SCAN[0]
    fields = []
    for _ in range(K):
        field = np.zeros(SCAN)
        for _ in range(4):
            fy, fx = rng.uniform(0.5, 3.0, 2)
            field += np.cos(2 * np.pi * (fy * y + rng.random())) * np.cos(
                2 * np.pi * (fx * x + rng.random()))
        fields.append(field)
    fields = np.stack(fields)
    maps = np.exp(4.0 * (fields - fields.max(axis=0)))
    maps /= maps.sum(axis=0)
    v, u = np.mgrid[: DETECTOR[0], : DETECTOR[1]] - np.array(DETECTOR)[:, None, None] / 2
    radius = np.hypot(v, u)
    beam = np.exp(-(radius / 6.0) ** 2)
    patterns = [beam + 0.6 * np.exp(-((radius - 70.0) / 10.0) ** 2)]  # amorphous ring
    for c in range(1, K):
        pattern = beam.copy()
        angle = rng.uniform(0, np.pi / 2)
        a = 38.0 + 8 * c
        for i in range(-3, 4):
            for j in range(-3, 4):
                if i == j == 0:
                    continue
                gv = a * (i * np.cos(angle) - j * np.sin(angle))
                gu = a * (i * np.sin(angle) + j * np.cos(angle))
                if np.hypot(gv, gu) < 115:
                    pattern += 0.5 * np.exp(-((v - gv) ** 2 + (u - gu) ** 2) / (2 * 2.5 ** 2))
        patterns.append(pattern)
    patterns = np.stack([p.ravel() / p.sum() for p in patterns])
    return maps.reshape(K, -1).T, patterns


def sample_events(maps, patterns, n_events, seed=1, batch=10_000_000):
    """An event list (dict of uint16 columns) drawn from the planted model."""
    rng = np.random.default_rng(seed)
    shares = maps.mean(axis=0)
    per_component = rng.multinomial(n_events, shares / shares.sum())
    columns = {name: np.empty(n_events, dtype=np.uint16)
               for name in ("scan_y", "scan_x", "detector_y", "detector_x")}
    start = 0
    for c, count in enumerate(per_component):
        position_cdf = np.cumsum(maps[:, c])
        pixel_cdf = np.cumsum(patterns[c])
        for first in range(0, count, batch):
            n = min(batch, count - first)
            where = slice(start, start + n)
            position = np.searchsorted(position_cdf, rng.random(n) * position_cdf[-1])
            pixel = np.searchsorted(pixel_cdf, rng.random(n) * pixel_cdf[-1])
            np.minimum(position, maps.shape[0] - 1, out=position)
            np.minimum(pixel, patterns.shape[1] - 1, out=pixel)
            columns["scan_y"][where], columns["scan_x"][where] = np.divmod(position, SCAN[1])
            columns["detector_y"][where], columns["detector_x"][where] = np.divmod(
                pixel, DETECTOR[1])
            start += n
            del position, pixel
    return columns, per_component


def matched_r(learned, truth):
    """Mean Pearson r of the columns of ``learned`` and ``truth`` after the best matching."""
    from scipy.optimize import linear_sum_assignment

    a = (learned - learned.mean(0)) / (learned.std(0) + 1e-30)
    b = (truth - truth.mean(0)) / (truth.std(0) + 1e-30)
    r = a.T @ b / a.shape[0]
    rows, cols = linear_sum_assignment(-r)
    return r[rows, cols], cols


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled)."""

    def __enter__(self):
        import psutil

        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def run_one(n_events, iterations, chunk_events):
    import psutil

    from hyperspy_hnmf.events import events_to_array
    from hyperspy_hnmf.streaming import streaming_nmf

    gib = 2.0**30
    warm = events_to_array({"scan_y": [0], "scan_x": [0], "detector_y": [0], "detector_x": [0]},
                           (2, 2), (2, 2), chunks=1)
    streaming_nmf(warm, 1, loss="kl", max_iter=1, init="random", random_state=0)  # compile
    process = psutil.Process()
    baseline = process.memory_info().rss
    maps, patterns = planted_model()
    t0 = time.perf_counter()
    events, per_component = sample_events(maps, patterns, n_events)
    t_sample = time.perf_counter() - t0
    events_bytes = sum(c.nbytes for c in events.values())
    per_line = n_events / SCAN[0]
    lines = max(1, int(chunk_events // per_line))
    with PeakRSS() as binning:
        t0 = time.perf_counter()
        X = events_to_array(events, SCAN, DETECTOR, chunks=lines)
        t_bin = time.perf_counter() - t0
    del events
    blocks = X.to_delayed().ravel()
    nnz = int(sum(b.compute().nnz for b in blocks))
    after_binning = process.memory_info().rss
    stamps = []
    with PeakRSS() as fitting:
        t0 = time.perf_counter()
        result = streaming_nmf(X, K, loss="kl", max_iter=iterations, tol=0, random_state=0,
                               callback=lambda it, obj: stamps.append(time.perf_counter()))
        t_fit = time.perf_counter() - t0
    per_iteration = float(np.median(np.diff(stamps))) if len(stamps) > 1 else t_fit
    true_loadings = maps * (per_component / maps.sum(axis=0))[None, :]
    map_r, _ = matched_r(result.W.astype(np.float64), true_loadings)
    pattern_r, _ = matched_r(result.H.T.astype(np.float64), patterns.T)
    return dict(
        n_events=n_events, nnz=nnz, chunks=len(blocks), t_sample=t_sample, t_bin=t_bin,
        t_fit=t_fit, iterations=result.n_iter, per_iteration=per_iteration,
        per_iteration_per_mnnz=per_iteration / (nnz / 1e6),
        events_gib=events_bytes / gib, baseline_gib=baseline / gib,
        binning_peak_gib=binning.peak / gib, after_binning_gib=after_binning / gib,
        fit_peak_gib=fitting.peak / gib,
        getrusage_peak_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib,
        map_r=[round(float(r), 4) for r in map_r], pattern_r=[round(float(r), 4) for r in pattern_r],
        objective_first=float(result.objective[0]), objective_last=float(result.objective[-1]),
        dense_float32_gib=SCAN[0] * SCAN[1] * DETECTOR[0] * DETECTOR[1] * 4 / gib)


def figure(path, n_events, iterations):
    """Truth and maps/patterns recovered by ``s.decomposition(algorithm="hnmf")`` of an event signal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import hyperspy_hnmf

    scan_step, pixel = 0.5, 0.01  # nm per probe step, 1/nm per detector pixel
    maps, patterns = planted_model()
    events, per_component = sample_events(maps, patterns, n_events)
    s = hyperspy_hnmf.events_to_signal(events, SCAN, DETECTOR, scan_scale=scan_step,
                                       scan_units="nm", detector_scale=pixel,
                                       detector_units="1/nm")
    del events
    t0 = time.perf_counter()
    s.decomposition(algorithm="hnmf", output_dimension=K, loss="kl", max_iter=iterations,
                    tol=0, random_state=0, print_info=False)
    t_fit = time.perf_counter() - t0
    learned = s.learning_results.loadings
    truth = maps * (per_component / maps.sum(axis=0))[None, :]
    r, match = matched_r(learned.astype(np.float64), truth)
    order = np.argsort(match)
    factors = s.learning_results.factors
    fig, axes = plt.subplots(3, K, figsize=(3.8 * K, 10.0), constrained_layout=True)
    top = float(np.percentile(truth, 99.5))  # one colour scale for planted and recovered maps
    scan_extent = [0, SCAN[1] * scan_step, SCAN[0] * scan_step, 0]
    half = DETECTOR[0] // 2 * pixel
    detector_extent = [-half, half, half, -half]
    for c in range(K):
        j = order[c]
        same = matplotlib.colors.Normalize(0, top)
        panels = [(truth[:, c].reshape(SCAN), scan_extent, "viridis",
                   f"planted map {c}", "electrons per probe position", "nm", same),
                  (learned[:, j].reshape(SCAN), scan_extent, "viridis",
                   f"recovered map {c}, r = {r[j]:.3f}", "electrons per probe position",
                   "nm", same),
                  (factors[:, j].reshape(DETECTOR), detector_extent, "inferno",
                   f"recovered pattern {c}", "fraction of the component's electrons",
                   "1/nm", matplotlib.colors.PowerNorm(0.4))]
        for row, (image, extent, cmap, title, label, units, norm) in enumerate(panels):
            ax = axes[row, c]
            shown = ax.imshow(image, extent=extent, cmap=cmap, norm=norm)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(f"x ({units})")
            ax.set_ylabel(f"y ({units})")
            fig.colorbar(shown, ax=ax, shrink=0.75, pad=0.02, label=label)
    fig.suptitle(f"KL decomposition of {n_events:.0e} electron events, {SCAN[0]}×{SCAN[1]} scan × "
                 f"{DETECTOR[0]}×{DETECTOR[1]} detector (≈{n_events / (SCAN[0] * SCAN[1]):.0f} "
                 f"electrons per pattern; never densified)")
    fig.savefig(path, dpi=80)
    print(f"figure: {path}; map r {np.round(r, 3).tolist()}, fit {t_fit:.1f} s for "
          f"{iterations} iterations (lazy signal with sparse.COO chunks)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--chunk-events", type=float, default=2**22,
                        help="target events per dask chunk")
    parser.add_argument("--figure", help="draw truth and recovered maps (HyperSpy path) to "
                        "this PNG instead of benchmarking (10^7 events)")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.figure:
        figure(args.figure, 10_000_000, args.iterations)
        return
    if args.one:
        print(json.dumps(run_one(int(args.one), args.iterations, args.chunk_events)))
        return
    rows = []
    for n in args.events:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--iterations",
                              str(args.iterations), "--chunk-events", str(args.chunk_events)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"# done {int(n):.0e} events", file=sys.stderr)
    print(f"Scan {SCAN[0]}×{SCAN[1]}, detector {DETECTOR[0]}×{DETECTOR[1]} "
          f"({rows[0]['dense_float32_gib']:.0f} GiB as dense float32), k = {K}, KL, "
          f"{args.iterations} iterations; load average {os.getloadavg()[0]:.2f} "
          f"(1 min) at the end, {os.cpu_count()} CPUs.\n")
    print("| events | nonzeros | chunks | sample (s) | bin (s) | fit (s) | s / iteration "
          "| s / iteration / 10⁶ nnz | RSS baseline (GiB) | peak binning (GiB) | peak fit (GiB) "
          "| peak process (GiB) | map r (per component) | pattern r |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['n_events']:.0e} | {r['nnz']:,} | {r['chunks']} | {r['t_sample']:.1f} | "
              f"{r['t_bin']:.1f} | {r['t_fit']:.1f} | {r['per_iteration']:.2f} | "
              f"{r['per_iteration_per_mnnz']:.3f} | {r['baseline_gib']:.2f} | "
              f"{r['binning_peak_gib']:.2f} | {r['fit_peak_gib']:.2f} | "
              f"{r['getrusage_peak_gib']:.2f} | {np.mean(r['map_r']):.3f} "
              f"({', '.join(f'{v:.3f}' for v in r['map_r'])}) | {np.mean(r['pattern_r']):.3f} |")
    print("\n```json\n" + json.dumps(rows) + "\n```")


if __name__ == "__main__":
    main()
