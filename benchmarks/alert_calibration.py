"""False-alarm rate per training run of the monitor's alert, on paired nulls from a real pretrained checkpoint.

The checkpoint is the demo lab base (`spinal_nb.lab.build_lab_base("demo")`: a Llama, 8 blocks, d = 128, pre-trained
on Brown; shipped with the package). Every run is the lab's hand-written DPO (`spinal_nb.lab.dpo`: the recipe's
pairs, batch, β and warm-up) from that base, re-written here as a local loop so that the live policy can be traced
every `--every` steps on fixed held-out Brown probe sentences (`brown.trace_prompts`, as the monitor demo does); each
evaluation is a real trace, compared with the start (the base) by the paired jackknife interval of the alert.

Runs (each with its own DPO seed = torch seed and data order):
  null, lr → 0      lr 1e-9: the training loop runs, the weights (almost) do not move: any alarm is false;
  null, healthy lr  the recipe's lr (5e-6): healthy alignment that the alert must not call destabilization;
  seed pairs        evaluation i of healthy seed a vs evaluation i of healthy seed a + 1 (same recipe, two seeds):
                    replayed as a run whose reference moves with i (an alarm = seed noise beyond the band);
  power             lr 1e-4 and 1e-3 (20x and 200x the recipe): does the alert fire, and at which step.
A run counts as alarmed when the rule fires at least once. Rules other than the default are replayed from the raw
per-evaluation rows (change, interval, reference mean per score), checked against `alert_history` for the default.

    PYTHONPATH=. python benchmarks/alert_calibration.py               # full: 29 min on the shared 2-core machine
    PYTHONPATH=. python benchmarks/alert_calibration.py --quick       # ~4 min, development only
    PYTHONPATH=. python benchmarks/alert_calibration.py --table-only  # rebuild the table from the raw logs

Raw rows: benchmarks/results/alert_calibration/*.jsonl (one line per evaluation); table:
benchmarks/results/alert_calibration.md.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RAW = HERE / "results" / "alert_calibration"
TABLE = HERE / "results" / "alert_calibration.md"
START = "step-000000"

# (label, rule keywords): the default first; every rule watches both scores unless it says otherwise
RULES: list[tuple[str, dict[str, Any]]] = [
    ("**default** (either, tol 0.25, k 2)", {}),
    ("either, tol 0.25, k 1", {"patience": 1}),
    ("either, tol 0.10, k 2", {"tolerance": 0.10}),
    ("either, tol 0.05, k 2", {"tolerance": 0.05}),
    ("either, tol 0.02, k 2", {"tolerance": 0.02}),
    ("interval excludes 0 (tol 0), k 2", {"tolerance": 0.0}),
    ("interval excludes 0 (tol 0), k 1", {"tolerance": 0.0, "patience": 1}),
    ("paper direction (α fall / 𝓛 rise), tol 0.25, k 2", {"contraction": "fall", "transport": "rise"}),
]
SCORES = ("contraction", "transport")


# -- the runs ------------------------------------------------------------------------------------------------------
def trace_policy(model, tok, probes: list[str], name: str):
    """One evaluation, as SpinalCallback does it: eval mode, no grad, training RNG untouched."""
    import torch

    from spinal_nb import capture

    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            return capture.trace(model, probes, tokenizer=tok, checkpoint=name, progress=False)
    finally:
        model.train(was)


def with_step(frame, step: int):
    import polars as pl

    from spinal_nb.frame import TraceFrame
    return TraceFrame(frame.data.with_columns(pl.lit(step, dtype=pl.Int64).alias("step")), frame.meta, frame.lens)


def dpo_run(base, tok, data, probes, start_frame, *, lr: float, seed: int, steps: int, every: int, dpo) -> dict:
    """spinal_nb.lab.dpo.dpo_train step for step (same seeding, order, optimizer, schedule, loss), traced every
    `every` steps. Returns {"frames": [...], "log": [per-step stats], "numerics": message or None}."""
    import torch
    import torch.nn.functional as F

    from spinal_nb.errors import NumericsError

    torch.manual_seed(seed)
    rng = random.Random(seed)
    policy = copy.deepcopy(base)
    for p in policy.parameters():
        p.requires_grad_(True)
    policy.train()
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (dpo.warmup + 1)))
    order: list[int] = []
    frames, log, numerics = [start_frame], [], None
    t_train = t_trace = 0.0
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        if len(order) < dpo.batch_size:
            fresh = list(range(len(data)))
            rng.shuffle(fresh)
            order.extend(fresh)
        idx, order = order[:dpo.batch_size], order[dpo.batch_size:]
        with torch.no_grad():
            rc, rr = data.logps(base, idx)
        pc, pr = data.logps(policy, idx)
        z = dpo.beta * ((pc - rc) - (pr - rr))
        loss = -F.logsigmoid(z).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        t_train += time.perf_counter() - t0
        log.append({"step": step, "loss": loss.item(), "reward_acc": (z > 0).float().mean().item()})
        if not math.isfinite(log[-1]["loss"]):
            numerics = f"DPO loss became {log[-1]['loss']} at step {step}"
            break
        if step % every == 0:
            t0 = time.perf_counter()
            try:
                frames.append(with_step(trace_policy(policy, tok, probes, f"step-{step:06d}"), step))
            except NumericsError as e:
                numerics = f"trace at step {step}: {e}"
                break
            finally:
                t_trace += time.perf_counter() - t0
    return {"frames": frames, "log": log, "numerics": numerics, "train_s": t_train, "trace_s": t_trace}


def evaluation_rows(run: dict, meta: dict) -> list[dict]:
    """One raw row per evaluation after the start: change vs the start, its interval and the start's window mean per
    score (any band rule can be replayed from these), plus the default rule's decisions from `alert_history`."""
    from spinal_nb.frame import TraceFrame
    from spinal_nb.monitor import AlertRule, alert_history, assess

    frames = run["frames"]
    start = frames[0]
    hist = alert_history(TraceFrame.concat(frames), AlertRule()).to_dicts() if len(frames) > 1 else []
    by_step = {h["step"]: h for h in hist}
    loss_at = {r["step"]: r for r in run["log"]}
    rows = []
    for i, f in enumerate(frames[1:], start=1):
        name = f.checkpoints[0]
        step = int(f.data.get_column("step")[0])
        a = assess(TraceFrame.concat([start, f]), START, name, AlertRule(tolerance=0.0))
        h = by_step[step]
        rows.append({**meta, "eval": i, "step": step, "reference": START,
                     "loss": loss_at[step]["loss"], "reward_acc": loss_at[step]["reward_acc"],
                     **{f"{s}_{k}": a[s][k] for s in SCORES for k in ("reference_mean", "delta", "lo", "hi")},
                     "default_out": h["out"], "default_fired": h["fired"]})
    if run["numerics"] is not None:
        last = run["log"][-1]
        rows.append({**meta, "eval": len(frames), "step": last["step"], "reference": START, "loss": last["loss"],
                     "reward_acc": last["reward_acc"], "numerics": run["numerics"]})
    return rows


def seed_pair_rows(run_a: dict, run_b: dict, meta: dict) -> list[dict]:
    """Evaluation i of seed a (the reference) vs evaluation i of seed b, for every i after the start."""
    from spinal_nb.frame import TraceFrame
    from spinal_nb.monitor import AlertRule, assess

    rows = []
    for i, (fa, fb) in enumerate(zip(run_a["frames"][1:], run_b["frames"][1:], strict=False), start=1):
        both = TraceFrame.concat([fa.rename({fa.checkpoints[0]: "seed-a"}), fb.rename({fb.checkpoints[0]: "seed-b"})])
        a = assess(both, "seed-a", "seed-b", AlertRule(tolerance=0.0))
        rows.append({**meta, "eval": i, "step": int(fa.data.get_column("step")[0]), "reference": "seed a, same step",
                     **{f"{s}_{k}": a[s][k] for s in SCORES for k in ("reference_mean", "delta", "lo", "hi")}})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    from spinal_nb.io import atomic_path
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


_W: dict[str, Any] = {}  # per worker process: the base, tokenizer, pairs, probes and the start trace


def _init_worker(n_probes: int) -> None:
    sys.path.insert(0, str(HERE))
    from _bench import pin_threads
    pin_threads(1)

    from spinal_nb.data import brown
    from spinal_nb.lab import RECIPES, build_lab_base, load_checkpoint
    from spinal_nb.lab.build import preference_sets
    from spinal_nb.lab.dpo import EncodedPairs

    recipe = RECIPES["demo"]
    base_dir = build_lab_base("demo", progress=False)
    base, tok = load_checkpoint(base_dir)
    base.eval()
    for p in base.parameters():
        p.requires_grad_(False)
    probes = brown.trace_prompts(n_probes)
    _W.update(recipe=recipe, base_dir=base_dir, base=base, tok=tok, probes=probes,
              data=EncodedPairs(tok, preference_sets(brown.read_brown(), recipe.pairs)["train"]),
              start=with_step(trace_policy(base, tok, probes, START), 0))


def _one_run(task: tuple[str, float, int, int, int]) -> dict:
    group, lr, seed, steps, every = task
    run = dpo_run(_W["base"], _W["tok"], _W["data"], _W["probes"], _W["start"], lr=lr, seed=seed, steps=steps,
                  every=every, dpo=_W["recipe"].dpo)
    meta = {"group": group, "lr": lr, "seed": seed, "run": f"{group}-lr{lr:g}-s{seed}"}
    write_jsonl(RAW / f"{meta['run']}.jsonl", evaluation_rows(run, meta))
    timing = {"run": meta["run"], "train_s": round(run["train_s"], 1), "trace_s": round(run["trace_s"], 1),
              "evaluations": len(run["frames"]) - 1}
    print(f"{meta['run']}: {timing}, loss {run['log'][-1]['loss']:.4f}"
          + (f", {run['numerics']}" if run["numerics"] else ""), flush=True)
    return {"group": group, "seed": seed, "timing": timing,
            "frames": run["frames"] if group == "null-healthy" else None}


def run_all(a: argparse.Namespace) -> dict:
    import multiprocessing as mp

    t_all = time.perf_counter()
    _init_worker(a.probes)
    recipe, start = _W["recipe"], _W["start"]
    for old in RAW.glob("*.jsonl"):
        old.unlink()
    tasks = [(g, lr, seed, a.steps, a.every)
             for g, lr, seeds in [("null-lr0", a.null_lr, a.null_seeds), ("null-healthy", recipe.dpo.lr, a.null_seeds),
                                  *[("power", lr, a.power_seeds) for lr in a.power_lr]]
             for seed in range(seeds)]
    if a.jobs > 1:
        with mp.get_context("spawn").Pool(a.jobs, initializer=_init_worker, initargs=(a.probes,)) as pool:
            done = pool.map(_one_run, tasks, chunksize=1)
    else:
        done = [_one_run(t) for t in tasks]
    healthy = {d["seed"]: d for d in done if d["group"] == "null-healthy"}
    n = len(healthy)  # pairs (0, 1), (1, 2), ..., (n - 1, 0): every seed once as the reference
    for s, b in [(s, s + 1) for s in range(n - 1)] + ([(n - 1, 0)] if n > 2 else []):
        meta = {"group": "seed-pair", "lr": recipe.dpo.lr, "seed": s, "seed_b": b, "run": f"seed-pair-{s}-{b}"}
        write_jsonl(RAW / f"{meta['run']}.jsonl", seed_pair_rows(healthy[s], healthy[b], meta))
    cmd = "PYTHONPATH=. python benchmarks/alert_calibration.py" + (" --quick" if a.quick else "") + (
        f" --jobs {a.jobs}" if a.jobs != 2 else "")
    from _bench import machine
    return {"command": cmd, "date": dt.date.today().isoformat(), "jobs": a.jobs,
            "wall_min": round((time.perf_counter() - t_all) / 60, 1), "machine": machine(),
            "base": _W["base_dir"].name, "probes": len(_W["probes"]),
            "probe_tokens": int(start.data.get_column("n_tokens")[0]),
            "start_window_means": start.window_means(START, 0.7), "steps": a.steps, "every": a.every,
            "recipe_dpo": {k: getattr(recipe.dpo, k) for k in ("lr", "batch_size", "beta", "warmup")},
            "runs": [d["timing"] for d in done], "platform": platform.platform()}


# -- replaying rules and the table ---------------------------------------------------------------------------------
def out_of_band(row: dict, rule) -> bool:
    """The rule's decision for one raw row (alert.py's band test, reproduced on the stored numbers)."""
    if row.get("numerics"):
        return True
    for s in SCORES:
        direction = getattr(rule, s)
        lo, hi, ref = row.get(f"{s}_lo"), row.get(f"{s}_hi"), row.get(f"{s}_reference_mean")
        if direction is None or lo is None or hi is None or ref is None:
            continue
        band = rule.tolerance * abs(ref)
        rise, fall = lo > band, hi < -band
        if {"rise": rise, "fall": fall, "either": rise or fall}[direction]:
            return True
    return False


def first_alarm(rows: list[dict], rule) -> int | None:
    """Step at which `rule` first fires over one run's rows (in evaluation order), or None."""
    streak = 0
    for r in sorted(rows, key=lambda r: r["eval"]):
        if r.get("numerics"):
            return r["step"]
        streak = streak + 1 if out_of_band(r, rule) else 0
        if streak >= rule.patience:
            return r["step"]
    return None


def upper95(k: int, n: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound of a binomial rate."""
    from scipy.stats import beta
    return 1.0 if k >= n else float(beta.ppf(0.95, k + 1, n - k))


def load_runs() -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for path in sorted(RAW.glob("*.jsonl")):
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if rows:
            runs[rows[0]["run"]] = rows
    return runs


def pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} % ({k}/{n})" if n else "—"


def table(meta: dict) -> str:
    from spinal_nb.monitor import AlertRule

    runs = load_runs()
    cols = [("null, lr → 0", lambda r: r[0]["group"] == "null-lr0"),
            ("null, healthy lr", lambda r: r[0]["group"] == "null-healthy"),
            ("all null runs", lambda r: r[0]["group"] in ("null-lr0", "null-healthy")),
            ("seed pairs", lambda r: r[0]["group"] == "seed-pair")]
    for lr in sorted({r[0]["lr"] for r in runs.values() if r[0]["group"] == "power"}):
        cols.append((f"power, lr {lr:g}", lambda r, lr=lr: r[0]["group"] == "power" and r[0]["lr"] == lr))
    sel = {c: [r for r in runs.values() if f(r)] for c, f in cols}
    # the replay must agree with alert_history for the default rule on every traced run
    mismatch = [name for name, rows in runs.items() if rows[0]["group"] != "seed-pair" and any(
        "default_out" in r and r["default_out"] != out_of_band(r, AlertRule()) for r in rows)]
    if mismatch:
        raise SystemExit(f"replay disagrees with alert_history on {mismatch}")
    n_null_evals = sum(len([x for x in r if "contraction_delta" in x]) for r in sel["all null runs"])
    sd = meta["start_window_means"]
    lines = [
        "# Alert calibration on a real pretrained checkpoint (the demo lab base)", "",
        f"Command: `{meta['command']}` — {meta['date']}, {meta['wall_min']} min wall, load "
        f"{meta['machine']['load_avg']}, torch threads {meta['machine']['torch_threads']}. Raw rows (one per "
        "evaluation): `benchmarks/results/alert_calibration/*.jsonl`; this file is rebuilt from them with "
        "`--table-only`.", "",
        f"Base `{meta['base']}` (Llama, 8 blocks, d = 128, Brown-pretrained). DPO as `spinal_nb.lab.dpo` "
        f"(batch {meta['recipe_dpo']['batch_size']}, β {meta['recipe_dpo']['beta']}, warm-up "
        f"{meta['recipe_dpo']['warmup']}), {meta['steps']} steps, a trace every {meta['every']} steps on "
        f"{meta['probes']} held-out Brown sentences ({meta['probe_tokens']} scored positions per layer); start window "
        f"means α {sd['contraction']:.4f}, 𝓛 {sd['transport']:.4f}. Healthy lr = the recipe's "
        f"{meta['recipe_dpo']['lr']:g}; lr → 0 = 1e-9. {n_null_evals} null evaluations (each compared with the "
        "start) in the null runs.", "",
        "## 1. Runs where the rule fired at least once (step of the first alarm)", "",
        "95 % upper bound (one-sided Clopper–Pearson) in brackets for the null columns.", "",
        "| rule | " + " | ".join(f"{c} (n={len(sel[c])})" for c, _ in cols) + " |",
        "|---|" + "---|" * len(cols)]
    for label, kw in RULES:
        rule = AlertRule(**kw)
        cells = []
        for c, _ in cols:
            firsts = [first_alarm(r, rule) for r in sel[c]]
            k, n = sum(f is not None for f in firsts), len(firsts)
            cell = pct(k, n)
            if n and c in ("null, lr → 0", "null, healthy lr", "all null runs", "seed pairs"):
                cell += f" [≤ {100 * upper95(k, n):.1f} %]"
            if k and c.startswith("power"):
                cell += f", step {min(f for f in firsts if f is not None)}–{max(f for f in firsts if f is not None)}"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## 2. Per-evaluation calls on the nulls: how much of the band the noise uses", "",
              "Excludes 0: the paired 95 % interval of the change excludes 0 (the pointwise call underlying the "
              "rule). Max |Δ| and max reach (the interval's edge farthest from 0) are in units of the default band "
              "(0.25 × |reference window mean|): the default rule needs reach beyond 1 *and* the near edge beyond 1.",
              "", "| evaluations | score | n | excludes 0 | median |Δ| / band | max |Δ| / band | "
              "max reach / band | median half-width / band |", "|---|---|---|---|---|---|---|---|"]
    for c in ("null, lr → 0", "null, healthy lr", "seed pairs"):
        rows = [x for r in sel[c] for x in r if x.get("contraction_delta") is not None or x.get("transport_delta")]
        for s, sym in (("contraction", "α"), ("transport", "𝓛")):
            ok = [x for x in rows if x.get(f"{s}_lo") is not None and x.get(f"{s}_reference_mean")]
            if not ok:
                continue
            band = [0.25 * abs(x[f"{s}_reference_mean"]) for x in ok]
            excl = sum(x[f"{s}_lo"] > 0 or x[f"{s}_hi"] < 0 for x in ok)
            d = sorted(abs(x[f"{s}_delta"]) / b for x, b in zip(ok, band, strict=True))
            reach = max(max(abs(x[f"{s}_lo"]), abs(x[f"{s}_hi"])) / b for x, b in zip(ok, band, strict=True))
            hw = sorted((x[f"{s}_hi"] - x[f"{s}_lo"]) / 2 / b for x, b in zip(ok, band, strict=True))
            lines.append(f"| {c} | {sym} | {len(ok)} | {pct(excl, len(ok))} | {d[len(d) // 2]:.2g} | {d[-1]:.2g} | "
                         f"{reach:.2g} | {hw[len(hw) // 2]:.2g} |")
    lines += ["", "## 3. Power runs: the last evaluation", "",
              "| run | last step | DPO loss | reward acc | Δα vs start [95 %] | Δ𝓛 vs start [95 %] | default rule |",
              "|---|---|---|---|---|---|---|"]
    for name, rows in runs.items():
        if rows[0]["group"] != "power":
            continue
        last = max(rows, key=lambda r: r["eval"])

        def ci(s, last=last):
            return "—" if last.get(f"{s}_delta") is None else \
                f"{last[f'{s}_delta']:+.4f} [{last[f'{s}_lo']:+.4f}, {last[f'{s}_hi']:+.4f}]"
        f = first_alarm(rows, AlertRule())
        lines.append(f"| {name} | {last['step']} | {last['loss']:.4f} | {last['reward_acc']:.2f} | {ci('contraction')}"
                     f" | {ci('transport')} | {'fired at step ' + str(f) if f is not None else 'no alarm'} |")
    t = meta["runs"]
    if t:
        lines += ["", f"Time: DPO {sum(r['train_s'] for r in t) / 60:.1f} min, tracing "
                  f"{sum(r['trace_s'] for r in t) / 60:.1f} min over {len(t)} runs "
                  f"({sum(r['evaluations'] for r in t)} traces)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 null seeds, 1 power seed, 20 steps (~4 min)")
    ap.add_argument("--table-only", action="store_true", help="rebuild the table from the raw logs")
    ap.add_argument("--steps", type=int, default=70)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--probes", type=int, default=64, help="held-out Brown probe sentences (monitor demo: 64)")
    ap.add_argument("--null-seeds", type=int, default=8, help="DPO seeds per null learning rate")
    ap.add_argument("--power-seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (one torch thread each)")
    ap.add_argument("--null-lr", type=float, default=1e-9)
    ap.add_argument("--power-lr", type=float, nargs="*", default=[1e-4, 1e-3])
    a = ap.parse_args()
    if a.quick:
        a.steps, a.every, a.null_seeds, a.power_seeds = 20, 10, 2, 1
    RAW.mkdir(parents=True, exist_ok=True)
    meta_path = RAW / "meta.json"
    if not a.table_only:
        meta = run_all(a)
        from spinal_nb.io import atomic_path
        with atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
    meta = json.loads(meta_path.read_text())
    from spinal_nb.io import atomic_path
    with atomic_path(TABLE) as tmp:
        tmp.write_text(table(meta))
    print(TABLE.read_text())


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
