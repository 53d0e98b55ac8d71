"""Peak RSS of spinal_nb.trace() vs the hand-written baseline as the number of real prompts grows.

Each (implementation, prompts) pair runs in a fresh subprocess; `ru_maxrss` is that process's own peak. We report
the RSS after loading the model and a 2-prompt warm-up ("before"), the peak, and the peak relative to the smallest
run. The baseline keeps every layer's states for its SVD at the end, so it grows with the prompts; spinal-nb
streams them into fixed-size accumulators (per layer and jackknife group: a d x d float64 Gram), so it stays flat.

    python benchmarks/memory_vs_baseline.py --model shape576 --prompts 20 200 1000
    python benchmarks/memory_vs_baseline.py --model tiny --prompts 20 200 1000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
from _bench import baseline, load_model, peak_rss_mb, pin_threads, real_prompts, spinal
import psutil
pin_threads(1)
impl, model_name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, tok = load_model(model_name)
prompts = real_prompts(n)
run = {"spinal": spinal, "baseline": baseline}[impl]
run(model, tok, prompts[:2])  # warm-up: first-call allocations are not the prompts' doing
before = psutil.Process().memory_info().rss / 2**20
t = time.perf_counter()
out = run(model, tok, prompts)
dt = time.perf_counter() - t
ntok = int(out.data["n_tokens"][0]) if impl == "spinal" else int(out["n_tokens"])
print(json.dumps({"impl": impl, "prompts": n, "tokens": ntok, "seconds": round(dt, 1),
                  "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shape576")
    ap.add_argument("--prompts", type=int, nargs="+", default=[20, 200, 1000])
    ap.add_argument("--impls", nargs="+", default=["spinal", "baseline"])
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.path.dirname(here) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows = []
    for impl in args.impls:
        for n in args.prompts:
            out = subprocess.run([sys.executable, "-c", CHILD, impl, args.model, str(n), here], env=env,
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps({**rows[-1], "load_avg": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    print(f"\nmodel {args.model}; fresh process per row; 1 thread\n")
    print("| implementation | prompts | tokens | seconds | RSS before (MB) | peak RSS (MB) | peak / peak at "
          f"{args.prompts[0]} prompts | peak − before (MB) |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        first = next(x for x in rows if x["impl"] == r["impl"])
        print(f"| {r['impl']} | {r['prompts']} | {r['tokens']} | {r['seconds']} | {r['rss_before_mb']} | "
              f"{r['peak_rss_mb']} | {r['peak_rss_mb'] / first['peak_rss_mb']:.3f}× | "
              f"{r['peak_rss_mb'] - r['rss_before_mb']:.0f} |")


if __name__ == "__main__":
    main()
