"""What the training monitor costs: one trace of the probe prompts vs one DPO step, and the measured share of a run.

For a model (the tiny test Llama, or the Brown-pretrained lab base with `--lab demo`), measures with TRL's DPOTrainer
on CPU: the time of one DPO step (median over the run's steps) and of one SpinalCallback evaluation (median), then the
tracing share `cb.overhead` of real monitored runs at several `every_n_steps` with no bound (`max_overhead=None`), next
to the prediction (start + periodic + end traces) × t_trace / (steps × t_step); and one run bounded by
`--max-overhead`. docs/monitor.md quotes the output.

    OMP_NUM_THREADS=1 python benchmarks/monitor_overhead.py                 # tiny Llama (L=4, d=64), ~1 min
    OMP_NUM_THREADS=1 python benchmarks/monitor_overhead.py --lab demo      # lab base (L=8, d=128), several min
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


class StepTimer(transformers.TrainerCallback):
    def __init__(self):
        self.times, self._t = [], None

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):  # runs before SpinalCallback's trace (added first)
        self.times.append(time.perf_counter() - self._t)


def setup(lab: str | None):
    """(fresh policy factory, tokenizer, preference pairs, probe prompts, batch size, description)."""
    if lab is None:
        from support import make_policy, make_tokenizer, preference_pairs, probe_prompts
        return (make_policy, make_tokenizer(), preference_pairs(512), probe_prompts(40), 8,
                "tiny Llama L=4 d=64 (random init), 40 probe prompts of 8–14 words, batch 8 pairs")
    from spinal_nb.data import brown
    from spinal_nb.lab import RECIPES, build_lab_pair, load_checkpoint
    from spinal_nb.lab.build import preference_sets
    pair = build_lab_pair(lab, progress=False)
    base, tok = load_checkpoint(pair.base_dir)
    r = RECIPES[lab]
    pairs = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
             for p in preference_sets(brown.read_brown(), r.pairs)["train"]]
    cfg = base.config
    return (lambda seed=0: copy.deepcopy(base), tok, pairs, brown.trace_prompts(64), r.dpo.batch_size,
            f"lab base '{lab}' L={cfg.num_hidden_layers} d={cfg.hidden_size}, 64 Brown probe sentences, "
            f"batch {r.dpo.batch_size} pairs")


def run(make, tok, pairs, probes, batch, steps, every, max_overhead):
    import datasets
    from trl import DPOConfig, DPOTrainer

    from spinal_nb.monitor import SpinalCallback

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make()
        timer = StepTimer()
        cb = SpinalCallback(probes, every_n_steps=every, path=Path(tmp) / "t", alert=None, max_overhead=max_overhead)
        args = DPOConfig(output_dir=tmp, per_device_train_batch_size=batch, max_steps=steps, learning_rate=1e-5,
                         report_to="none", use_cpu=True, save_strategy="no", logging_steps=10_000,
                         disable_tqdm=True, beta=0.1)
        tr = DPOTrainer(model, ref_model=copy.deepcopy(model), args=args, processing_class=tok,
                        train_dataset=datasets.Dataset.from_list(pairs), callbacks=[timer, cb])
        tr.remove_callback(transformers.PrinterCallback)
        tr.train()
        traces = [e["trace_seconds"] for e in cb.frame.meta["monitor"]["evaluations"]]
        return cb.summary(), statistics.median(timer.times), statistics.median(traces), len(traces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", default=None, help="use the lab base of this budget (demo/tiny) instead of the tiny Llama")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, nargs="*", default=[5, 10, 25, 50])
    ap.add_argument("--max-overhead", type=float, default=0.1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    import datasets
    datasets.disable_progress_bars()

    make, tok, pairs, probes, batch, what = setup(a.lab)
    print(f"{what}; {a.steps} DPO steps per run (TRL DPOTrainer, CPU, 1 thread)\n")
    print("| every_n_steps | max_overhead | evaluations | t_step (median) | t_trace (median) | predicted share | "
          "measured share (cb.overhead) |")
    print("|---|---|---|---|---|---|---|")
    for every, bound in [*((e, None) for e in a.every), (min(a.every), a.max_overhead)]:
        s, t_step, t_trace, n = run(make, tok, pairs, probes, batch, a.steps, every, bound)
        predicted = n * t_trace / (a.steps * t_step)
        print(f"| {every} | {bound if bound is not None else 'none'} | {n} (skipped {len(s['skipped'])}) | "
              f"{t_step:.3f} s | {t_trace:.3f} s | {100 * predicted:.1f} % | {100 * s['overhead']:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
