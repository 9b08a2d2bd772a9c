"""Dead and hot detector channels: false alarms on clean scans, and what is found.

For every generator setting (detector shape, dose in counts per pattern, number
of phases, seed) of ``hyperspy_hnmf.data.synthetic_4dstem`` (16 × 16 scan):

- the channel rule (``solvers._channels.bad_channels``, at the false-alarm rate
  of ``outliers="auto"``) runs on the channel totals of the clean scan: every
  channel it flags is a false alarm;
- then three dead pixels, one dead column (whole, or its upper half, chosen at
  random) and two hot pixels (+ Poisson(20 × the mean count) in every pattern)
  are planted, and the rule runs again: recall of the dead pixels and dead
  line pixels that held at least 100 counts before (fewer cannot be told from
  a dim pixel), recall of the hot pixels, and false alarms.

``--multislice``: the channels flagged on the clean first-principles scenes
(``load_multislice``, scenes A and B, 64 × 64 detector) at four doses and
three noise seeds each.

Usage: python benchmarks/bench_channels.py [--multislice]
"""

import argparse
import itertools

import numpy as np

from hyperspy_hnmf.data import synthetic_4dstem
from hyperspy_hnmf.solvers._channels import bad_channels
from hyperspy_hnmf.validation_data import load_multislice

DETECTORS = [(16, 16), (24, 24), (32, 32), (16, 24), (48, 48)]
DOSES = [200, 2000, 20000]
PHASES = [2, 4]
SEEDS = [0, 1, 2]
SCAN = (16, 16)


def plant(X, detector, rng):
    """Corrupted copy of ``X``; the planted dead points, dead line and hot pixels."""
    m = X.shape[1]
    Xc = X.copy()
    points = set(rng.choice(m, 3, replace=False).tolist())
    column = rng.integers(detector[1])
    rows = np.arange(detector[0] // 2) if rng.random() < 0.5 else np.arange(detector[0])
    line = set((rows * detector[1] + column).tolist())
    Xc[:, sorted(points | line)] = 0
    hot = set(rng.choice(sorted(set(range(m)) - points - line), 2, replace=False).tolist())
    for j in hot:
        Xc[:, j] += rng.poisson(max(20 * X.mean(), 1.0), X.shape[0])
    return Xc, points - line, line, hot


def run_setting(detector, dose, n_phases, seed):
    s = synthetic_4dstem(scan_shape=SCAN, detector_shape=detector, dose=dose,
                         n_phases=n_phases, random_state=seed)
    X = s.data.reshape(int(np.prod(SCAN)), -1).astype(np.float64)
    alpha = 1.0 / X.size
    totals = X.sum(axis=0)
    dead, hot = bad_channels(totals, detector, alpha, True)
    row = dict(clean=dead.size + hot.size)
    Xc, points, line, hot_planted = plant(X, detector, np.random.default_rng(7 * seed + dose))
    dead, hot = (set(a.tolist()) for a in bad_channels(Xc.sum(axis=0), detector, alpha, True))
    telling = {j for j in points | line if totals[j] >= 100}
    row.update(points=len(dead & points & telling), points_n=len(points & telling),
               line=len(dead & line & telling), line_n=len(line & telling),
               hot=len(hot & hot_planted), hot_n=len(hot_planted),
               false=len(dead - points - line) + len(hot - hot_planted))
    return row


def multislice():
    print("| scene | dose (e⁻/pattern) | seeds | dead flagged | hot flagged |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for scene, dose in itertools.product("AB", (200, 2000, 20000, 29999)):
        flagged = np.zeros(2, dtype=int)
        for seed in SEEDS:
            data = load_multislice(scene, dose=dose, seed=seed)["data"]
            X = data.reshape(-1, data.shape[2] * data.shape[3]).astype(np.float64)
            dead, hot = bad_channels(X.sum(axis=0), data.shape[2:], 1.0 / X.size, True)
            flagged += (dead.size, hot.size)
        print(f"| {scene} | {dose} | {len(SEEDS)} | {flagged[0]} | {flagged[1]} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multislice", action="store_true")
    if parser.parse_args().multislice:
        multislice()
        return
    print("| detector | settings | clean: flagged | dead pixels found | dead line pixels found "
          "| hot pixels found | corrupted: false alarms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = {}
    for detector in DETECTORS:
        rows = [run_setting(detector, dose, n_phases, seed)
                for dose, n_phases, seed in itertools.product(DOSES, PHASES, SEEDS)]
        sums = {key: sum(r[key] for r in rows) for key in rows[0]}
        for key, value in sums.items():
            total[key] = total.get(key, 0) + value
        print(_line(f"{detector[0]}×{detector[1]}", len(rows), sums))
    print(_line("all", len(DETECTORS) * len(DOSES) * len(PHASES) * len(SEEDS), total))


def _line(name, n, s):
    return (f"| {name} | {n} | {s['clean']} | {s['points']}/{s['points_n']} | "
            f"{s['line']}/{s['line_n']} | {s['hot']}/{s['hot_n']} | {s['false']} |")


if __name__ == "__main__":
    main()
