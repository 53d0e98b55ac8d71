"""finalize on every core: time of the serial path (workers=1, the operations main ran) vs the thread pool
(workers=None: every core), vs d and N, in one run, interleaved; and the largest difference between the two.

Synthetic states (a power-law spectrum plus a large shared mean, N rows in G = 10 groups) go through the real
GramAccumulator; one layer per (d, N) in quick mode (finalize does (L + 1) x (1 + G) solves, so a model's time is
about L + 1 times the per-layer figure). The full run takes every (d, N) pair and 3 rounds:

    python benchmarks/finalize_scale.py --quick     # ~4 min on 2 cores: d 576/2048 x N 2k/20k, d 4096 x N 20k, 1 round
    python benchmarks/finalize_scale.py             # d in (576, 2048, 4096) x N in (2k, 5k, 20k), 3 rounds
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _bench import machine

from spinal_nb.params import SpinalParams
from spinal_nb.scores import GramAccumulator, TransportAccumulator, finalize
from spinal_nb.scores.eigen import ThreadSolver, cpu_count


def accumulators(d: int, n: int, groups: int = 10, layers: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    gram = GramAccumulator(layers, d, groups)
    scale = np.arange(1, d + 1) ** -0.7
    for layer in range(layers):
        for part in np.array_split(np.arange(n), max(1, n // 2000)):  # batches of ~2,000 rows
            x = rng.standard_normal((part.size, d)) * scale + 3.0
            gram.update(layer, x, part % groups)
    return gram, TransportAccumulator(layers, groups)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick:
        cases = [(576, 2000), (576, 20000), (2048, 2000), (2048, 20000), (4096, 20000)]
    else:
        cases = [(d, n) for d in (576, 2048, 4096) for n in (2000, 5000, 20000)]
    rounds = a.rounds or (1 if a.quick else 3)
    params = SpinalParams(n_groups=10)
    rows = []
    for d, n in cases:
        gram, tr = accumulators(d, n)
        t = {"serial": [], "threads": []}
        res = {}
        for r in range(rounds):
            for name in (["serial", "threads"] if r % 2 == 0 else ["threads", "serial"]):
                t0 = time.perf_counter()
                res[name] = finalize(gram, tr, params, workers=1 if name == "serial" else None)
                t[name].append(time.perf_counter() - t0)
        ds = [abs(x ** 2 - y ** 2) / res["serial"]["spectrum"][0][0] ** 2
              for x, y in zip(res["serial"]["spectrum"][0], res["threads"]["spectrum"][0], strict=True)]
        a_s, a_t = res["serial"]["contraction"][0], res["threads"]["contraction"][0]
        row = {"d": d, "N": n, "serial_s": min(t["serial"]), "threads_s": min(t["threads"]),
               "ratio_new_over_old": min(t["threads"]) / min(t["serial"]),
               "max_eig_diff_rel_lambda_max": max(ds), "alpha_rel_diff": abs(a_t - a_s) / abs(a_s),
               "alpha": a_s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = {"machine": machine(), "cores": cpu_count(), "workers": ThreadSolver(None).workers, "rounds": rounds,
            "layers_per_case": 1, "groups": 10, "rows": rows}
    print("| d | N | serial s | all cores s | new/old | max Δλ/λ_max | Δα rel |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['d']} | {r['N']:,} | {r['serial_s']:.2f} | {r['threads_s']:.2f} | {r['ratio_new_over_old']:.2f} "
              f"| {r['max_eig_diff_rel_lambda_max']:.1e} | {r['alpha_rel_diff']:.1e} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
