"""Robust KL fit (``outliers="auto"``) against the plain KL fit on corrupted 4D-STEM counts.

Synthetic scan (hyperspy_hnmf.data.synthetic_4dstem) with
- 0.1 % hot pixels at 100 × the mean count and one dead detector column;
- a saturated direct beam: counts clipped at 30 % of the brightest entry
  (alone, and with the hot pixels);
- 60 cosmic-ray streaks (3 to 6 neighbouring pixels of one pattern, +300 counts);
- one detector pixel hot (100 × the mean count) in 30 % of the patterns.
Map r: Pearson correlation of the learned maps with the planted ones after
Hungarian matching (score_decomposition), per component and mean.

Usage: python benchmarks/bench_robust.py [--figure docs/images/robust.png]
"""

import argparse
import os
import time

import numpy as np

import hyperspy_hnmf  # noqa: F401
from hyperspy_hnmf import HNMF
from hyperspy_hnmf.data import get_ground_truth, score_decomposition, synthetic_4dstem

SCAN, DETECTOR, DEAD_COLUMN = (48, 48), (32, 32), 21


def corrupt(X, rng, hot=True, dead_column=True, saturate=False):
    """Corrupted copy of ``X``; the planted hot entries, dead channels and saturated count."""
    X = X.copy()
    m = X.shape[1]
    dead = np.zeros(0, dtype=int)
    if dead_column:
        dead = np.flatnonzero(np.arange(m) % DETECTOR[1] == DEAD_COLUMN)
        X[:, dead] = 0
    planted = np.zeros(0, dtype=int)
    if hot:
        live = np.setdiff1d(np.arange(X.size),
                            (np.arange(X.shape[0])[:, None] * m + dead).ravel())
        planted = np.sort(rng.choice(live, int(round(0.001 * X.size)), replace=False))
        X.flat[planted] = np.round(100 * X.mean())
    saturated = 0
    if saturate:
        level = np.round(0.3 * X.max())  # the direct beam is the brightest
        beam = X.max(axis=0) > level
        beam &= np.isin(np.arange(m), np.flatnonzero(X.sum(axis=0) > 0.05 * X.sum(axis=0).max()))
        saturated = int(np.count_nonzero(X[:, beam] > level))
        X[:, beam] = np.minimum(X[:, beam], level)
    return X, planted, dead, saturated


def streaks(X, rng, n=60, counts=300.0):
    X, planted = X.copy(), []
    for _ in range(n):
        i, (y, x), length = rng.integers(X.shape[0]), rng.integers(3, 24, 2), rng.integers(3, 7)
        for d in range(length):
            X[i, y * DETECTOR[1] + x + d] += counts
            planted.append(i * X.shape[1] + y * DETECTOR[1] + x + d)
    return X, np.unique(planted), np.zeros(0, dtype=int), 0


def intermittent(X, rng, channel=9 * DETECTOR[1] + 12, share=0.3):
    X = X.copy()
    rows = np.flatnonzero(rng.random(X.shape[0]) < share)
    X[rows, channel] = np.round(100 * X.mean())
    return X, rows * X.shape[1] + channel, np.zeros(0, dtype=int), 0


def fit(X, k, truth, **options):
    start = time.perf_counter()
    model = HNMF(k, loss="kl", random_state=0, max_iter=300, signal_grid=DETECTOR, **options)
    W = model.fit_transform(X)
    seconds = time.perf_counter() - start
    score = score_decomposition(model.components_.T, W, truth.factors, truth.loadings,
                                names=truth.names)
    return model, W, score, seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--figure", default=None)
    args = parser.parse_args()
    s = synthetic_4dstem(scan_shape=SCAN, detector_shape=DETECTOR, n_phases=2, n_rotations=1,
                         dose=500, random_state=0)
    truth = get_ground_truth(s)
    k = truth.factors.shape[1]
    X = np.ascontiguousarray(s.data.reshape(-1, np.prod(DETECTOR)), dtype=np.float32)
    rng = np.random.default_rng(1)
    cases = {"hot + dead column": corrupt(X, rng),
             "saturated beam": corrupt(X, rng, hot=False, dead_column=False, saturate=True),
             "hot + saturated beam": corrupt(X, rng, dead_column=False, saturate=True),
             "cosmic-ray streaks": streaks(X, rng),
             "pixel hot in 30 % of patterns": intermittent(X, rng)}
    load = open("/proc/loadavg").read().split()[:3]
    print(f"data: {SCAN[0]}×{SCAN[1]} scan, {DETECTOR[0]}×{DETECTOR[1]} detector, k={k}, "
          f"mean count {X.mean():.3g}/entry; load average {' '.join(load)}\n")
    runs = {"clean, plain": fit(X, k, truth), "clean, robust": fit(X, k, truth, outliers="auto")}
    for name, (Xc, *_ ) in cases.items():
        runs[f"{name}, plain"] = fit(Xc, k, truth)
        runs[f"{name}, robust"] = fit(Xc, k, truth, outliers="auto")
    names = truth.names
    header = "| data, fit | " + " | ".join(f"map r {n}" for n in names) + \
        " | mean map r | Δ vs clean | flagged entries | bad channels | time (s) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    reference = runs["clean, plain"][2].mean_map_correlation
    for name, (model, W, score, seconds) in runs.items():
        per = score.map_correlation
        found = model.outliers_
        flagged = "–" if found is None else str(found.n_entries)
        channels = "–" if found is None else f"{found.dead_channels.size} dead, " \
                                              f"{found.hot_channels.size} hot"
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in per)
              + f" | {score.mean_map_correlation:.3f} | "
              f"{score.mean_map_correlation - reference:+.3f} | {flagged} | {channels} | "
              f"{seconds:.1f} |")
    print()
    print("| case | planted outlying entries | flagged | precision | recall | dead channels planted / found "
          "| false-alarm rate on clean data |")
    print("|---|---|---|---|---|---|---|")
    clean_found = runs["clean, robust"][0].outliers_
    false_rate = (clean_found.n_entries + clean_found.bad_channels.size * X.shape[0]) / X.size
    for name, (Xc, hot, dead, saturated) in cases.items():
        found = runs[f"{name}, robust"][0].outliers_
        flat = found.rows * X.shape[1] + found.cols
        hits = np.intersect1d(flat, hot).size
        precision = f"{hits / flat.size:.3f}" if flat.size and hot.size else "–"
        recall = f"{hits / hot.size:.3f}" if hot.size else "–"
        extra = f" (+{saturated} saturated entries)" if saturated else ""
        print(f"| {name} | {hot.size}{extra} | {flat.size} | {precision} | "
              f"{recall} | {dead.size} / {found.dead_channels.size} "
              f"(exact: {np.array_equal(dead, found.dead_channels)}) | {false_rate:.2e} |")
    print(f"\n{runs['hot + dead column, robust'][0].outliers_.summary()}")
    if args.figure:
        _figure(args.figure, s, cases["hot + dead column"], runs, truth)


def _figure(path, s, case, runs, truth):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, PowerNorm

    Xc, hot, dead, _ = case
    found = runs["hot + dead column, robust"][0].outliers_
    am = s.axes_manager
    kx, ky = am.signal_axes
    nx, ny = am.navigation_axes
    k_extent = [kx.offset - kx.scale / 2, kx.offset + kx.scale * (kx.size - 0.5),
                ky.offset + ky.scale * (ky.size - 0.5), ky.offset - ky.scale / 2]
    r_extent = [0, nx.scale * nx.size, ny.scale * ny.size, 0]
    k = truth.loadings.shape[1]
    fig, axes = plt.subplots(4, k, figsize=(4.6 * k, 16))

    def show(ax, image, extent, title, label, units, **kwargs):
        shown = ax.imshow(image, extent=extent, **kwargs)
        fig.colorbar(shown, ax=ax, label=label, shrink=0.85)
        ax.set_title(title, fontsize=10)
        axis = "k" if units == "1/nm" else ""
        ax.set_xlabel(f"{axis}x ({units})")
        ax.set_ylabel(f"{axis}y ({units})")

    per_position = np.bincount(found.rows, minlength=Xc.shape[0]).reshape(SCAN)
    row = int(np.argmax(per_position))
    where = tuple(int(v) for v in np.unravel_index(row, SCAN))
    show(axes[0, 0], Xc[row].reshape(DETECTOR), k_extent,
         f"Corrupted pattern at probe position {where}", "counts", "1/nm",
         cmap="magma", norm=PowerNorm(0.4))
    hot_here = found.cols[found.rows == row]
    axes[0, 0].scatter(kx.offset + kx.scale * (hot_here % DETECTOR[1]),
                       ky.offset + ky.scale * (hot_here // DETECTOR[1]), s=120,
                       facecolors="none", edgecolors="cyan", label="outliers found")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    show(axes[0, 1], per_position, r_extent, "Outlying entries per probe position",
         "entries (count)", "nm", cmap="viridis")
    per_channel = np.bincount(found.cols, minlength=Xc.shape[1])
    per_channel[found.bad_channels] = Xc.shape[0]
    show(axes[0, 2], per_channel.reshape(DETECTOR), k_extent,
         "Probe positions left out per detector pixel", "positions (count)", "1/nm",
         cmap="viridis", norm=LogNorm(vmin=1))
    for j in range(3, k):
        axes[0, j].axis("off")
    truth_maps = truth.loadings.T.reshape((-1,) + SCAN)
    names = truth.names
    for j in range(k):
        show(axes[1, j], truth_maps[j], r_extent, f"Planted map: {names[j]}",
             "counts in component", "nm", cmap="gray")
    for line, (label, key) in enumerate((("plain KL", "plain"), ("outliers='auto'", "robust")),
                                        start=2):
        model, W, score, _ = runs[f"hot + dead column, {key}"]
        matched = score.matched
        for j in range(k):
            learned = W[:, matched[j]].reshape(SCAN)
            r = np.corrcoef(learned.ravel(), truth_maps[j].ravel())[0, 1]
            show(axes[line, j], learned, r_extent, f"{label}: map of {names[j]} (r = {r:.2f})",
                 "counts in component", "nm", cmap="gray")
    fig.suptitle("0.1 % hot pixels at 100× the mean count and a dead detector column "
                 f"(kx = {kx.offset + kx.scale * DEAD_COLUMN:.1f} 1/nm): plain KL fit vs "
                 "outliers='auto'", fontsize=12)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=70)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
