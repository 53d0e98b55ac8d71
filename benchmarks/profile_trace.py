"""Where spinal_nb.trace() spends its time: torch profiler (operators) and cProfile (Python functions).

    python benchmarks/profile_trace.py --model smollm2 --prompts 24
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats

import torch
from _bench import load_model, machine, pin_threads, real_prompts, spinal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--top", type=int, default=18)
    args = ap.parse_args()
    pin_threads(1)
    model, tok = load_model(args.model)
    prompts = real_prompts(args.prompts)
    spinal(model, tok, prompts[:2], batch_size=args.batch_size)  # warm-up (imports, first-call costs)
    print(json.dumps(machine()))

    prof = cProfile.Profile()
    prof.enable()
    spinal(model, tok, prompts, batch_size=args.batch_size)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(40)
    lines = [ln for ln in s.getvalue().splitlines() if "spinal_nb" in ln or "cumtime" in ln or "function calls" in ln]
    print("\n## cProfile (cumulative, spinal_nb functions)\n" + "\n".join(lines[:40]))

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        spinal(model, tok, prompts, batch_size=args.batch_size)
    print("\n## torch profiler (self CPU time by operator)\n")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
