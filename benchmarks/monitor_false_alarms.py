"""Detection rates of the monitor's alert rules on DPO runs of a tiny random-init model (docs/monitor.md quotes them).

Real DPO runs (TRL DPOTrainer, the tiny Llama of tests/support.py, fresh init and data per seed), traced by
SpinalCallback with no rule; the rules are then replayed over the recorded traces with `alert_history`.
"Sane" learning rates are the usual DPO range; "absurd" ones destabilize the model (the DPO loss's log-probs explode).
A run counts as alarmed when the rule fires at least once.

The false-alarm rate of the alert is measured by benchmarks/alert_calibration.py, on paired nulls from a real
pretrained checkpoint. This script's former "synthetic null" (independent synthetic traces of one model, unpaired)
was retired: its noise half-widths were about 10x below the ±25 % band and its intervals unpaired while the monitor
pairs them, so it could not alarm by construction and measured nothing.

    OMP_NUM_THREADS=1 python benchmarks/monitor_false_alarms.py            # ~5 min on one core
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import polars as pl
import torch
import transformers

from spinal_nb.frame import TraceFrame
from spinal_nb.monitor import AlertRule, SpinalCallback, alert_history

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import dpo_trainer, make_policy, make_tokenizer, probe_prompts  # noqa: E402

RULES = {
    "default: either, tol 0.25, k 2": AlertRule(),
    "either, tol 0.25, k 1": AlertRule(patience=1),
    "either, tol 0.10, k 2": AlertRule(tolerance=0.10),
    "interval excludes 0 (tol 0), k 1": AlertRule(tolerance=0.0, patience=1),
    "interval excludes 0 (tol 0), k 2": AlertRule(tolerance=0.0, patience=2),
    "paper direction (α fall / 𝓛 rise), tol 0.25, k 2": AlertRule(contraction="fall", transport="rise"),
    "rolling (previous evaluation), tol 0.25, k 2": AlertRule(reference=1),
}


def dpo_runs(lr: float, n_runs: int, steps: int, every: int) -> tuple[list[TraceFrame], list[float]]:
    probes, out, overheads = probe_prompts(40), [], []
    for seed in range(n_runs):
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cb = SpinalCallback(probes, every_n_steps=every, path=Path(tmp) / "trace", alert=None, max_overhead=None)
            trainer = dpo_trainer(make_policy(seed=seed), make_tokenizer(), lr=lr, steps=steps,
                                  output_dir=Path(tmp) / "out", callbacks=[cb], seed=seed)
            trainer.remove_callback(transformers.PrinterCallback)
            trainer.train()
            out.append(cb.frame)
            overheads.append(cb.overhead)
    return out, overheads


def rates(runs: list[TraceFrame]) -> dict[str, tuple[float, float | None]]:
    """Per rule: (share of runs with ≥ 1 alert, mean step of the first alert among those)."""
    res = {}
    for name, rule in RULES.items():
        first = []
        for f in runs:
            h = alert_history(f, rule).filter(pl.col("fired"))
            if h.height:
                first.append(h.get_column("step")[0])
        res[name] = (len(first) / len(runs), sum(first) / len(first) if first else None)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="DPO runs per learning rate")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--sane", type=float, nargs="*", default=[1e-5, 1e-4])
    ap.add_argument("--absurd", type=float, nargs="*", default=[1e-1, 1.0])
    a = ap.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()

    t0 = time.perf_counter()
    n_evals = a.steps // a.every + 1
    columns: dict[str, dict[str, tuple[float, float | None]]] = {}
    counts: dict[str, int] = {}
    for lr in [*a.sane, *a.absurd]:
        runs, overheads = dpo_runs(lr, a.runs, a.steps, a.every)
        label = f"DPO lr {lr:g} ({'sane' if lr in a.sane else 'absurd'})"
        columns[label] = rates(runs)
        counts[label] = a.runs
        print(f"{label}: {a.runs} runs, tracing/training time {sum(overheads) / len(overheads):.2f}", flush=True)
    print(f"\n{n_evals} evaluations per run (start + every {a.every} of {a.steps} steps); "
          f"{time.perf_counter() - t0:.0f} s in all\n")
    heads = list(columns)
    print("| rule | " + " | ".join(f"{h} (n={counts[h]})" for h in heads) + " |")
    print("|---|" + "---|" * len(heads))
    for name in RULES:
        cells = []
        for h in heads:
            share, first = columns[h][name]
            cells.append(f"{100 * share:.0f} %" + (f" (step {first:.0f})" if first is not None else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
