"""Speed knobs of spinal_nb.trace(): top-k lens and position stride, their speed-up and their error vs exact scores.

Each setting is traced on the same real prompts, interleaved with the exact trace (the order rotates per round).
Error is reported per score as the largest |difference| over layers and as that difference in units of the exact
trace's own 95% interval half-width (below 1: smaller than the sampling uncertainty the trace already reports).

    python benchmarks/knobs.py --model smollm2 --prompts 40
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from _bench import frame_scores, machine, spinal, start_real, timed

SETTINGS = {"exact": {}, "top_k=1000": {"top_k": 1000}, "top_k=100": {"top_k": 100},
            "stride=2": {"position_stride": 2}, "stride=4": {"position_stride": 4}}


def errors(exact, other) -> dict[str, float]:
    e, o = frame_scores(exact), frame_scores(other)
    out = {}
    for k in ("contraction", "transport", "entropy"):
        ok = np.isfinite(e[k]) & np.isfinite(o[k])
        diff = np.abs(e[k][ok] - o[k][ok])
        half = ((exact.data[f"{k}_hi"] - exact.data[f"{k}_lo"]) / 2).fill_null(np.nan).to_numpy()[ok]
        out[f"{k}_maxabs"] = float(diff.max())
        out[f"{k}_max_rel"] = float((diff / np.abs(e[k][ok])).max())
        out[f"{k}_max_in_halfwidths"] = float(np.nanmax(diff / half))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    args = ap.parse_args()
    model, tok, prompts = start_real(args.model, args.prompts)
    times: dict[str, list[float]] = {s: [] for s in args.settings}
    frames = {}
    for r in range(args.repeats):
        order = args.settings[r % len(args.settings):] + args.settings[: r % len(args.settings)]
        for s in order:
            dt, frames[s] = timed(spinal, model, tok, prompts, **SETTINGS[s])
            times[s].append(dt)
            print(json.dumps({"setting": s, "round": r, "seconds": round(dt, 2), "load_avg": machine()["load_avg"]}),
                  flush=True)
    t0 = min(times["exact"])
    print(f"\nmodel {args.model}, {args.prompts} prompts, {args.repeats} round(s), load avg at end "
          f"{machine()['load_avg']}\n")
    print("| setting | min s | speed-up vs exact | max abs Δα (in CI half-widths) | max rel Δ𝓛 (in CI half-widths) | "
          "max rel Δ entropy |\n|---|---|---|---|---|---|")
    for s in args.settings:
        e = errors(frames["exact"], frames[s])
        print(f"| {s} | {min(times[s]):.1f} | {t0 / min(times[s]):.2f}× | {e['contraction_maxabs']:.2g} "
              f"({e['contraction_max_in_halfwidths']:.2f}) | {e['transport_max_rel']:.2g} "
              f"({e['transport_max_in_halfwidths']:.2f}) | {e['entropy_max_rel']:.2g} |")


if __name__ == "__main__":
    main()
