"""finalize on every core: time of the serial path (workers=1: the operations main ran, numpy's BLAS left at its
default threads), of the serial path with BLAS capped to 1 thread, and of the thread pool (workers=None: every core,
BLAS capped to cores // workers each), vs d and N, in one run, interleaved; and the largest difference.

Synthetic states (a power-law spectrum plus a large shared mean, N rows in G = 10 groups) go through the real
GramAccumulator; one layer per (d, N) in quick mode (finalize does (L + 1) x (1 + G) solves, so a model's time is
about L + 1 times the per-layer figure). The full run takes every (d, N) pair and 3 rounds:

    python benchmarks/finalize_scale.py --quick     # ~5 min on 2 cores: d 576/2048 x N 2k/20k, d 4096 x N 20k, 1 round
    python benchmarks/finalize_scale.py             # d in (576, 2048, 4096) x N in (2k, 5k, 20k), 3 rounds
    python benchmarks/finalize_scale.py --cases 4096:20000 --no-old   # one case, without the uncapped serial path
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _bench import machine

from spinal_nb.params import SpinalParams
from spinal_nb.scores import GramAccumulator, TransportAccumulator, finalize
from spinal_nb.scores.eigen import ThreadSolver, blas_threads, cpu_count


def accumulators(d: int, n: int, groups: int = 10, layers: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    gram = GramAccumulator(layers + 1, d, groups)  # + 1 empty layer: a TransportAccumulator needs 2 (free here)
    scale = np.arange(1, d + 1) ** -0.7
    for layer in range(layers):
        for part in np.array_split(np.arange(n), max(1, n // 2000)):  # batches of ~2,000 rows
            x = rng.standard_normal((part.size, d)) * scale + 3.0
            gram.update(layer, x, part % groups)
    return gram, TransportAccumulator(layers + 1, groups)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--cases", default=None, help="d:N pairs, comma separated, e.g. 4096:20000")
    ap.add_argument("--no-old", action="store_true", help="skip the uncapped serial path (minutes at d = 4096 on a "
                    "loaded machine, where its BLAS threads fight the other jobs)")
    a = ap.parse_args()
    if a.cases:
        cases = [tuple(int(v) for v in c.split(":")) for c in a.cases.split(",")]
    elif a.quick:
        cases = [(576, 2000), (576, 20000), (2048, 2000), (2048, 20000), (4096, 20000)]
    else:
        cases = [(d, n) for d in (576, 2048, 4096) for n in (2000, 5000, 20000)]
    rounds = a.rounds or (1 if a.quick else 3)
    params = SpinalParams(n_groups=a.groups)
    rows = []
    for d, n in cases:
        gram, tr = accumulators(d, n, groups=a.groups)
        names = ["serial_blas1", "threads"] if a.no_old else ["serial", "serial_blas1", "threads"]
        t = {k: [] for k in names}
        res = {}
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                t0 = time.perf_counter()
                if name == "serial_blas1":
                    with blas_threads(1):
                        res[name] = finalize(gram, tr, params, workers=1)
                else:
                    res[name] = finalize(gram, tr, params, workers=1 if name == "serial" else None)
                t[name].append(time.perf_counter() - t0)
        ref = res[names[0]]
        ds = [abs(x ** 2 - y ** 2) / ref["spectrum"][0][0] ** 2
              for x, y in zip(ref["spectrum"][0], res["threads"]["spectrum"][0], strict=True)]
        a_s, a_t = ref["contraction"][0], res["threads"]["contraction"][0]
        old = min(t["serial"]) if t.get("serial") else float("nan")
        row = {"d": d, "N": n, "serial_s": old, "serial_blas1_s": min(t["serial_blas1"]),
               "threads_s": min(t["threads"]), "ratio_new_over_old": min(t["threads"]) / old,
               "ratio_new_over_serial_blas1": min(t["threads"]) / min(t["serial_blas1"]),
               "max_eig_diff_rel_lambda_max": max(ds), "alpha_rel_diff": abs(a_t - a_s) / abs(a_s),
               "alpha": a_s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = {"machine": machine(), "cores": cpu_count(), "workers": ThreadSolver(None).workers, "rounds": rounds,
            "layers_per_case": 1, "groups": a.groups, "rows": rows}
    print("| d | N | old: serial s | serial, BLAS 1 thread s | new: all cores s | new/old | new/serial-1 "
          "| max Δλ/λ_max | Δα rel |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['d']} | {r['N']:,} | {r['serial_s']:.2f} | {r['serial_blas1_s']:.2f} | {r['threads_s']:.2f} "
              f"| {r['ratio_new_over_old']:.2f} | {r['ratio_new_over_serial_blas1']:.2f} "
              f"| {r['max_eig_diff_rel_lambda_max']:.1e} | {r['alpha_rel_diff']:.1e} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
