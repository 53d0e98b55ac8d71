"""The training monitor on the offline lab pair: DPO of the Brown-pretrained lab base under SpinalCallback (CPU).

Builds (or reuses from the cache) the lab pair of `spinal_nb.lab.build_lab_pair(budget)`, then re-runs its DPO stage
with TRL's DPOTrainer on the same preference pairs (real Brown prompts, sentiment completions) while the callback
traces held-out Brown sentences (`brown.trace_prompts`) every `--every` steps. Prints the terminal-window α and 𝓛 per
evaluated step with their paired change from the start, the alerts, and the measured tracing overhead; the training
trace stays in `--out` (read it with `spinal_nb.monitor.read_training_trace`).

    OMP_NUM_THREADS=1 python benchmarks/monitor_demo.py                      # sane DPO (the lab recipe's lr)
    OMP_NUM_THREADS=1 python benchmarks/monitor_demo.py --lr 1e-2 --out spinal-monitor-demo-unstable
    OMP_NUM_THREADS=1 python benchmarks/monitor_demo.py --budget tiny --steps 20 --every 5   # seconds, smoke test
"""
from __future__ import annotations

import argparse
import copy
import logging
import shutil
import time
import warnings
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", default="demo", help="lab recipe: demo (minutes to build once) or tiny (seconds)")
    ap.add_argument("--base", default=None, help="use this saved base checkpoint folder instead of building one")
    ap.add_argument("--lr", type=float, default=None, help="DPO learning rate (default: the lab recipe's)")
    ap.add_argument("--steps", type=int, default=None, help="DPO steps (default: the lab recipe's)")
    ap.add_argument("--every", type=int, default=20, help="evaluate every N steps")
    ap.add_argument("--probes", type=int, default=64, help="held-out Brown sentences traced at every evaluation")
    ap.add_argument("--max-overhead", type=float, default=0.25)
    ap.add_argument("--stop-on-alert", action="store_true")
    ap.add_argument("--out", default="spinal-monitor-demo", help="output folder (replaced)")
    a = ap.parse_args()

    torch.set_num_threads(1)
    import datasets
    import transformers
    from trl import DPOConfig, DPOTrainer

    from spinal_nb.data import brown
    from spinal_nb.lab import RECIPES, build_lab_pair, load_checkpoint
    from spinal_nb.lab.build import preference_sets
    from spinal_nb.monitor import AlertRule, SpinalCallback, alert_history, read_training_trace

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("spinal_nb.monitor").setLevel(logging.INFO)
    warnings.filterwarnings("ignore", message=".*tokenized prompt is not a prefix.*")

    recipe = RECIPES[a.budget]
    t0 = time.perf_counter()
    if a.base is None:
        pair = build_lab_pair(a.budget, progress=True)
        base_dir = pair.base_dir
        print(f"lab pair {a.budget!r} ready in {time.perf_counter() - t0:.0f} s "
              f"({'cached' if pair.from_cache else 'built'}): {base_dir}")
    else:
        base_dir = Path(a.base)
    base, tok = load_checkpoint(base_dir)
    print(f"base: {base_dir}")
    sentences = brown.read_brown()
    train = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
             for p in preference_sets(sentences, recipe.pairs)["train"]]
    probes = brown.trace_prompts(a.probes)
    lr = a.lr if a.lr is not None else recipe.dpo.lr
    steps = a.steps if a.steps is not None else recipe.dpo.steps

    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    cb = SpinalCallback(probes, every_n_steps=a.every, path=out / "trace", alert=AlertRule(),
                        stop_on_alert=a.stop_on_alert, max_overhead=a.max_overhead)
    args = DPOConfig(output_dir=str(out / "trainer"), per_device_train_batch_size=recipe.dpo.batch_size,
                     max_steps=steps, learning_rate=lr, lr_scheduler_type="constant_with_warmup",
                     warmup_steps=recipe.dpo.warmup, beta=recipe.dpo.beta, seed=recipe.dpo.seed, report_to="none",
                     use_cpu=True, save_strategy="no", logging_steps=max(1, steps // 10), disable_tqdm=True)
    trainer = DPOTrainer(base, ref_model=copy.deepcopy(base), args=args,
                         train_dataset=datasets.Dataset.from_list(train), processing_class=tok, callbacks=[cb])
    t1 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    wall = time.perf_counter() - t1
    alerts = [str(w.message) for w in caught if w.category.__name__ == "SpinalAlertWarning"]

    # behavioural drift of the trained policy on neutral Brown text (the lab's own evidence function)
    from spinal_nb.lab.build import neutral_texts
    from spinal_nb.lab.dpo import neutral_evidence
    base.eval()
    drift = neutral_evidence(trainer.ref_model, base, tok, neutral_texts(sentences, recipe.pairs.n_neutral))

    frame = read_training_trace(out / "trace")
    hist = alert_history(frame, cb.alert)
    print(f"\nDPO on the lab base: {trainer.state.global_step} steps × {recipe.dpo.batch_size} pairs, lr {lr:g}, "
          f"{len(probes)} probe prompts, {wall:.0f} s wall")
    last = [h for h in trainer.state.log_history if "rewards/accuracies" in h][-1:]
    if last:
        print(f"last logged: loss {last[0]['loss']:.3f}, reward accuracy {last[0]['rewards/accuracies']:.2f}, "
              f"margin {last[0]['rewards/margins']:.2f}")
    print(f"neutral Brown text: KL(policy‖base) {drift['kl_per_token']:.3f} nats/token, top-1 agreement "
          f"{drift['top1_agreement']:.2f}, LM loss {drift['loss_before']:.2f} → {drift['loss_after']:.2f}")
    print("\n| step | window α (mean) | Δα vs start [95 %] | window 𝓛 (mean) | Δ𝓛 vs start [95 %] | out | alert |")
    print("|---|---|---|---|---|---|---|")
    for row in hist.iter_rows(named=True):
        df = frame.checkpoint(row["checkpoint"])
        late = df.filter(df["depth"] >= cb.alert.terminal_depth)

        def ci(s, row=row):
            d = row[f"d_{s}"]
            return "—" if d is None else f"{d:+.4f} [{row[f'd_{s}_lo']:+.4f}, {row[f'd_{s}_hi']:+.4f}]"

        def mean(col, late=late):
            v = late[col].drop_nulls().mean()
            return "—" if v is None else f"{v:.4f}"
        print(f"| {row['step']} | {mean('contraction')} | {ci('contraction')} | "
              f"{mean('transport')} | {ci('transport')} | {'yes' if row['out'] else ''} | "
              f"{'FIRED' if row['fired'] else ''} |")
    s = cb.summary()
    print(f"\ntracing {s['trace_seconds']:.1f} s / training {s['train_seconds']:.1f} s = overhead "
          f"{100 * s['overhead']:.1f} % (max_overhead {100 * a.max_overhead:.0f} %); "
          f"{s['evaluations']} evaluations, skipped steps {s['skipped']}")
    print(f"alerts: {len(alerts)}" + "".join(f"\n  {m}" for m in alerts))
    print(f"training trace: {out / 'trace'}")


if __name__ == "__main__":
    main()
