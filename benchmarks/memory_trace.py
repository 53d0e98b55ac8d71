"""Peak memory of spinal_nb.trace() as the number of prompts grows: it must stay flat (streaming accumulators).

Each run happens in a fresh subprocess, so ru_maxrss is that run's own peak. The model is a small Llama built from
a config (offline, seeded), fed random-word prompts of 8-40 tokens.

    python benchmarks/memory_trace.py                      # 20 vs 1000 prompts
    python benchmarks/memory_trace.py --prompts 20 200 1000 --hidden 256 --layers 6
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, random, resource, sys, time
import torch
torch.set_num_threads(1)
import transformers as T
from tokenizers import Tokenizer, models, pre_tokenizers
from spinal_nb.capture import trace
n, hidden, layers, vocab, bs = map(int, sys.argv[1:6])
words = [f"w{i}" for i in range(vocab - 4)]
tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(["[UNK]", "[PAD]", "[BOS]", "[EOS]"] + words)},
                                 unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok = T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
torch.manual_seed(0)
model = T.LlamaForCausalLM(T.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden,
    num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)).eval()
rng = random.Random(0)
prompts = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) for _ in range(n)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
frame = trace(model, prompts, tokenizer=tok, batch_size=bs, progress=False)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"prompts": n, "tokens": int(frame.data["n_tokens"][0]), "seconds": round(dt, 2),
                  "rss_before_mb": round(before / 1024, 1), "peak_rss_mb": round(peak / 1024, 1)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, nargs="+", default=[20, 1000])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    for n in args.prompts:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.hidden), str(args.layers), str(args.vocab),
                              str(args.batch_size)], env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| prompts | tokens | seconds | RSS before trace (MB) | peak RSS (MB) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['prompts']} | {r['tokens']} | {r['seconds']} | {r['rss_before_mb']} | {r['peak_rss_mb']} |")
    growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    print(f"\npeak RSS growth from {rows[0]['prompts']} to {rows[-1]['prompts']} prompts: {growth:+.1f} MB")


if __name__ == "__main__":
    main()
