"""spinal_nb.trace() against the hand-written baseline and the floor, side by side in one process, as ratios.

Implementations (see _bench.py): `floor` (forward + one unembedding matmul per layer), `baseline` (what a competent
user writes: HF forward with output_hidden_states, float32 full-softmax lens per layer, SVD per layer at the end),
and `spinal` (spinal_nb.trace, exact, with jackknife intervals). Rounds are interleaved (the order rotates each round)
with 1 torch thread; we report the min and the median over rounds, and ratios of mins. Scores of spinal are checked
against the baseline.

    python benchmarks/speed.py --model smollm2 --prompts 80 --repeats 3
    python benchmarks/speed.py --model tiny --prompts 80 400 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
from _bench import baseline, floor, frame_scores, load_model, machine, pin_threads, real_prompts, spinal, timed


def run_impl(name, model, tok, prompts, bs):
    if name == "floor":
        return floor(model, tok, prompts, bs)
    if name == "baseline":
        return baseline(model, tok, prompts, bs)
    if name == "spinal":
        return spinal(model, tok, prompts, bs)
    raise SystemExit(f"unknown implementation {name}")


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    assert (np.isfinite(a) == np.isfinite(b)).all(), (a, b)
    return float(np.abs(a[ok] - b[ok]).max()) if ok.any() else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--prompts", type=int, nargs="+", default=[80])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--impls", nargs="+", default=["floor", "baseline", "spinal"])
    args = ap.parse_args()
    pin_threads(1)
    model, tok = load_model(args.model)
    print(json.dumps({"start": machine(), "model": args.model, "n_layers": model.config.num_hidden_layers,
                      "d": model.config.hidden_size, "vocab": model.config.vocab_size}), flush=True)
    warm = real_prompts(2)
    for impl in args.impls:
        run_impl(impl, model, tok, warm, args.batch_size)
    results = []
    for n in args.prompts:
        prompts = real_prompts(n)
        times: dict[str, list[float]] = {k: [] for k in args.impls}
        outs = {}
        for r in range(args.repeats):
            order = args.impls[r % len(args.impls):] + args.impls[: r % len(args.impls)]
            for impl in order:
                dt, out = timed(run_impl, impl, model, tok, prompts, args.batch_size)
                times[impl].append(dt)
                outs[impl] = out
                print(json.dumps({"prompts": n, "round": r, "impl": impl, "seconds": round(dt, 3),
                                  "load_avg": machine()["load_avg"]}), flush=True)
        row = {"prompts": n, "min": {k: min(v) for k, v in times.items()},
               "median": {k: statistics.median(v) for k, v in times.items()}, "load_avg_end": machine()["load_avg"]}
        base_min = row["min"].get("baseline")
        floor_min = row["min"].get("floor")
        row["vs_floor"] = {k: v / floor_min for k, v in row["min"].items()} if floor_min else {}
        row["vs_baseline"] = {k: v / base_min for k, v in row["min"].items()} if base_min else {}
        if "spinal" in outs:
            s = frame_scores(outs["spinal"])
            row["n_tokens"] = int(outs["spinal"].data["n_tokens"][0])
            if "baseline" in outs:
                b = outs["baseline"]
                row["spinal_vs_baseline_maxdiff"] = {k: max_diff(s[k], b[k]) for k in ("contraction", "transport",
                                                                                     "entropy")}
                assert row["n_tokens"] == b["n_tokens"]
        results.append(row)
        print(json.dumps(row), flush=True)

    print(f"\nmodel {args.model}, {args.repeats} interleaved rounds, 1 thread, load avg at end {machine()['load_avg']}")
    vs_floor = [k for k in args.impls if k != "floor"] if "floor" in args.impls else []
    vs_base = [k for k in args.impls if k not in ("baseline", "floor")] if "baseline" in args.impls else []
    head = ["prompts", "tokens"] + [f"{k} min s (median)" for k in args.impls] + [f"{k}/floor" for k in vs_floor] \
        + [f"{k}/baseline" for k in vs_base]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in results:
        cells = [str(row["prompts"]), str(row.get("n_tokens", "?"))]
        cells += [f"{row['min'][k]:.2f} ({row['median'][k]:.2f})" for k in args.impls]
        cells += [f"{row['vs_floor'][k]:.2f}×" for k in vs_floor]
        cells += [f"{row['vs_baseline'][k]:.2f}×" for k in vs_base]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
