"""Robust KL fit (``outliers="auto"``) against the plain KL fit on corrupted 4D-STEM counts.

Synthetic scan (hyperspy_hnmf.data.synthetic_4dstem) with
- 0.1 % hot pixels at 100 × the mean count, one dead detector column, and
- (second case) a saturated direct beam: counts clipped at 60 % of the
  brightest direct-beam entry, plus the hot pixels.
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


def corrupt(X, rng, saturate=False):
    X = X.copy()
    m = X.shape[1]
    dead = np.flatnonzero(np.arange(m) % DETECTOR[1] == DEAD_COLUMN)
    if not saturate:
        X[:, dead] = 0
    else:
        dead = np.zeros(0, dtype=int)
    live = np.setdiff1d(np.arange(X.size), (np.arange(X.shape[0])[:, None] * m + dead).ravel())
    hot = np.sort(rng.choice(live, int(round(0.001 * X.size)), replace=False))
    X.flat[hot] = np.round(100 * X.mean())
    saturated = None
    if saturate:
        centre = (DETECTOR[0] // 2 - 1, DETECTOR[0] // 2 + 1)
        beam = np.zeros(DETECTOR, bool)
        beam[centre[0]:centre[1], centre[0]:centre[1]] = True
        beam = np.flatnonzero(beam.ravel())
        level = np.round(0.6 * X[:, beam].max())
        saturated = int(np.count_nonzero(X[:, beam] > level))
        X[:, beam] = np.minimum(X[:, beam], level)
    return X, hot, dead, saturated


def fit(X, k, truth, **options):
    start = time.perf_counter()
    model = HNMF(k, loss="kl", random_state=0, max_iter=300, signal_grid=DETECTOR, **options)
    W = model.fit_transform(X)
    seconds = time.perf_counter() - start
    score = score_decomposition(model.components_.T, W, truth.factors, truth.loadings)
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
    cases = {"hot + dead column": corrupt(X, rng), "hot + saturated beam": corrupt(X, rng, True)}
    load = open("/proc/loadavg").read().split()[:3]
    print(f"data: {SCAN[0]}×{SCAN[1]} scan, {DETECTOR[0]}×{DETECTOR[1]} detector, k={k}, "
          f"mean count {X.mean():.3g}/entry; load average {' '.join(load)}\n")
    runs = {"clean, plain": fit(X, k, truth), "clean, robust": fit(X, k, truth, outliers="auto")}
    for name, (Xc, *_ ) in cases.items():
        runs[f"{name}, plain"] = fit(Xc, k, truth)
        runs[f"{name}, robust"] = fit(Xc, k, truth, outliers="auto")
    names = [f"c{i}" for i in range(k)]
    header = "| data, fit | " + " | ".join(f"map r {n}" for n in names) + \
        " | mean map r | Δ vs clean | flagged entries | bad channels | time (s) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    reference = runs["clean, plain"][2].mean_map_correlation
    for name, (model, W, score, seconds) in runs.items():
        per = _per_component(score, k)
        found = model.outliers_
        flagged = "–" if found is None else str(found.n_entries)
        channels = "–" if found is None else f"{found.dead_channels.size} dead, " \
                                              f"{found.hot_channels.size} hot"
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in per)
              + f" | {score.mean_map_correlation:.3f} | "
              f"{score.mean_map_correlation - reference:+.3f} | {flagged} | {channels} | "
              f"{seconds:.1f} |")
    print()
    print("| case | planted hot pixels | flagged | precision | recall | dead channels planted / found "
          "| false-alarm rate on clean data |")
    print("|---|---|---|---|---|---|---|")
    clean_found = runs["clean, robust"][0].outliers_
    false_rate = (clean_found.n_entries + clean_found.bad_channels.size * X.shape[0]) / X.size
    for name, (Xc, hot, dead, saturated) in cases.items():
        found = runs[f"{name}, robust"][0].outliers_
        flat = found.rows * X.shape[1] + found.cols
        hits = np.intersect1d(flat, hot).size
        precision = hits / max(flat.size, 1)
        extra = f" (+{saturated} saturated entries)" if saturated else ""
        print(f"| {name} | {hot.size}{extra} | {flat.size} | {precision:.3f} | "
              f"{hits / hot.size:.3f} | {dead.size} / {found.dead_channels.size} "
              f"(exact: {np.array_equal(dead, found.dead_channels)}) | {false_rate:.2e} |")
    print(f"\n{runs['hot + dead column, robust'][0].outliers_.summary()}")
    if args.figure:
        _figure(args.figure, s, cases["hot + dead column"], runs, truth)


def _per_component(score, k):
    table = str(score).splitlines()[1:1 + k]
    return [float(line.split()[-1]) for line in table]


def _figure(path, s, case, runs, truth):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Xc, hot, dead, _ = case
    robust = runs["hot + dead column, robust"][0]
    found = robust.outliers_
    am = s.axes_manager
    ky, kx = am.signal_axes[1], am.signal_axes[0]
    ny, nx = am.navigation_axes[1], am.navigation_axes[0]
    k_extent = [kx.offset, kx.offset + kx.scale * kx.size, ky.offset + ky.scale * ky.size,
                ky.offset]
    r_extent = [0, nx.scale * nx.size, ny.scale * ny.size, 0]
    counts = np.bincount(found.rows, minlength=Xc.shape[0]).reshape(SCAN)
    row = int(np.argmax(counts))
    fig, axes = plt.subplots(3, 4, figsize=(15, 11))
    image = axes[0, 0].imshow(Xc[row].reshape(DETECTOR), extent=k_extent, cmap="magma",
                              norm=matplotlib.colors.PowerNorm(0.4))
    fig.colorbar(image, ax=axes[0, 0], label="counts")
    axes[0, 0].set_title(f"Corrupted pattern at probe position {np.unravel_index(row, SCAN)}")
    axes[0, 0].set_xlabel("kx (1/nm)"), axes[0, 0].set_ylabel("ky (1/nm)")
    image = axes[0, 1].imshow(counts, extent=r_extent, cmap="viridis")
    fig.colorbar(image, ax=axes[0, 1], label="outlying entries (count)")
    axes[0, 1].set_title("Outliers found per probe position")
    axes[0, 1].set_xlabel("x (nm)"), axes[0, 1].set_ylabel("y (nm)")
    per_channel = np.bincount(found.cols, minlength=Xc.shape[1])
    per_channel[found.bad_channels] = Xc.shape[0]
    image = axes[0, 2].imshow(per_channel.reshape(DETECTOR), extent=k_extent, cmap="viridis",
                              norm=matplotlib.colors.LogNorm(vmin=1))
    fig.colorbar(image, ax=axes[0, 2], label="positions left out (count)")
    axes[0, 2].set_title("Outliers per detector pixel (dead column: all)")
    axes[0, 2].set_xlabel("kx (1/nm)"), axes[0, 2].set_ylabel("ky (1/nm)")
    axes[0, 3].axis("off")
    rows = (("plain KL fit", runs["hot + dead column, plain"]),
            ("robust KL fit", runs["hot + dead column, robust"]))
    truth_maps = truth.loadings.T.reshape((-1,) + SCAN)
    for j in range(min(4, truth_maps.shape[0])):
        image = axes[1, j].imshow(truth_maps[j], extent=r_extent, cmap="gray")
        fig.colorbar(image, ax=axes[1, j], label="planted intensity (counts)")
        axes[1, j].set_title(f"Planted map {j}")
        axes[1, j].set_xlabel("x (nm)")
    for j, (label, (model, W, score, _)) in enumerate(rows):
        matched = _matching(score, truth_maps.shape[0])
        for c in range(min(2, truth_maps.shape[0])):
            ax = axes[2, 2 * j + c]
            learned = W[:, matched[c]].reshape(SCAN)
            image = ax.imshow(learned, extent=r_extent, cmap="gray")
            fig.colorbar(image, ax=ax, label="counts in component")
            r = np.corrcoef(learned.ravel(), truth_maps[c].ravel())[0, 1]
            ax.set_title(f"{label}: map matched to planted {c} (r = {r:.2f})")
            ax.set_xlabel("x (nm)")
    for j in range(truth_maps.shape[0], 4):
        axes[1, j].axis("off")
    fig.suptitle("0.1 % hot pixels at 100× the mean count and a dead detector column: "
                 "plain KL vs outliers='auto'")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"figure: {path}")


def _matching(score, k):
    table = str(score).splitlines()[1:1 + k]
    return [int(line.split()[1]) for line in table]


if __name__ == "__main__":
    main()
