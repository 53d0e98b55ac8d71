"""Peak RSS of spinal_nb.trace() vs the hand-written baseline as the number of real prompts grows.

Each (implementation, prompts) pair runs in a fresh subprocess; `ru_maxrss` is that process's own peak. We report
the RSS after loading the model and a 2-prompt warm-up ("before"), the peak, and the peak relative to the smallest
run. The baseline keeps every layer's states (float32) for its SVD at the end, so it grows with the prompts.
spinal-nb streams them into per layer and jackknife group accumulators that hold the group's float64 rows while it
has fewer than d of them and its d x d Gram from then on: min(N_g, d) * d * 8 bytes per group and layer, so it grows
like the baseline (x2, float64) for small N and stops growing once every group has d rows. "acc" is what the Gram
accumulator held in memory at most (measured: its tensors' bytes, just before each spill and at the end),
"spilled" what went to disk (finished groups, read back layer by layer at finalize), "old acc" the layout before
hybrid storage ((L + 1) * n_groups * d^2 * 8 bytes, computed).

    python benchmarks/memory_vs_baseline.py --model shape576 --prompts 20 200 1000
    python benchmarks/memory_vs_baseline.py --model tiny --prompts 20 200 1000
    python benchmarks/memory_vs_baseline.py --model wide2048 --prompts 20 200 1000

wide2048 (defined here): a 2-block Llama with d = 2048 (FFN 4096, 16/8 heads) from a config, seeded weights, with the
4,096-word Brown tokenizer: a width where the old d^2 accumulators (1.0 GB) dwarf the model (0.34 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[4])
from _bench import baseline, brown_word_tokenizer, load_model, peak_rss_mb, pin_threads, real_prompts, spinal
import psutil, torch
import spinal_nb.capture.tracer as tracer
pin_threads(1)
impl, model_name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if model_name == "wide2048":
    import transformers as T
    torch.manual_seed(0)
    tok = brown_word_tokenizer()
    model = T.LlamaForCausalLM(T.LlamaConfig(
        vocab_size=len(tok), hidden_size=2048, intermediate_size=4096, num_hidden_layers=2, num_attention_heads=16,
        num_key_value_heads=8, max_position_embeddings=2048, tie_word_embeddings=True)).eval()
else:
    model, tok = load_model(model_name)
made = []
class Recorded(tracer.GramAccumulator):  # the accumulators trace() builds, to read their size
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        made.append(self)
        self.held_max, self.spilled = 0, 0
    def spill(self, group):  # the most held in memory is just before a spill (or at the end)
        self.held_max = max(self.held_max, self.storage_bytes())
        done = super().spill(group)
        if done:
            self.spilled += self.store.nbytes(group)
        return done
tracer.GramAccumulator = Recorded
prompts = real_prompts(n)
run = {"spinal": spinal, "baseline": baseline}[impl]
run(model, tok, prompts[:2])  # warm-up: first-call allocations are not the prompts' doing
made.clear()  # (the warm-up's accumulator is not kept alive by this recording)
before = psutil.Process().memory_info().rss / 2**20
t = time.perf_counter()
out = run(model, tok, prompts)
dt = time.perf_counter() - t
ntok = int(out.data["n_tokens"][0]) if impl == "spinal" else int(out["n_tokens"])
acc = {}
if impl == "spinal":
    g = made[-1]
    held = g.storage_bytes() if hasattr(g, "storage_bytes") else g.gram.numel() * 8  # (the pre-hybrid layout)
    acc = {"acc_mb": round(max(held, getattr(g, "held_max", 0)) / 2**20, 1),
           "spilled_mb": round(getattr(g, "spilled", 0) / 2**20, 1),
           "old_acc_mb": round(g.n_layers * g.n_groups * g.d**2 * 8 / 2**20, 1)}
print(json.dumps({"impl": impl, "prompts": n, "tokens": ntok, "seconds": round(dt, 1),
                  "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1), **acc}))
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
          f"{args.prompts[0]} prompts | peak − before (MB) | acc in memory, max (MiB) | spilled to disk (MiB) | "
          "old acc (MiB) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        first = next(x for x in rows if x["impl"] == r["impl"])
        print(f"| {r['impl']} | {r['prompts']} | {r['tokens']} | {r['seconds']} | {r['rss_before_mb']} | "
              f"{r['peak_rss_mb']} | {r['peak_rss_mb'] / first['peak_rss_mb']:.3f}× | "
              f"{r['peak_rss_mb'] - r['rss_before_mb']:.0f} | {r.get('acc_mb', '')} | {r.get('spilled_mb', '')} | "
              f"{r.get('old_acc_mb', '')} |")


if __name__ == "__main__":
    main()
