"""Fit a tuned lens on SmolLM2-135M-Instruct from held-out Brown text, offline, and trace under both lenses.

Text: Brown text of the ``train`` role (never the ``trace`` role SPINAL traces with) as ~60-word paragraphs of
consecutive sentences, shuffled; the fit holds out whole paragraphs for its table (held-out mean KL(p_L ‖ p_ℓ) per layer, logit lens vs tuned lens). The lens is
cached under the spinal cache (``tuned-lens/smollm2-instruct-<recipe hash>.safetensors``), so a second run (and the
demo) reuses it; ``--refit`` ignores the cache. Then `--prompts` (40) held-out Brown ``trace`` prompts are traced under the logit
lens and under the tuned lens, and 𝓛 and entropy per layer are written next to the fit table.

    python benchmarks/tuned_lens_fit.py                 # the full run (≤ 10 min on 2 cores; see the printed timings)
    python benchmarks/tuned_lens_fit.py --quick         # 1,536 tokens, 2 KL steps, 10 prompts: a smoke run

Writes benchmarks/results/tuned_lens_fit[_quick].txt (tables), .json (everything, with the machine's load) and .md
(the table of docs/method.md, "The tuned lens").
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _bench import machine, peak_rss_mb, pin_threads

RESULTS = Path(__file__).resolve().parent / "results"


def method_table(result: dict) -> str:
    """The table of docs/method.md ("The tuned lens") from this script's JSON result (a test checks the doc holds it)."""
    fit, tr = result["fit"], result["traces"]

    def step(lens: str, i: int) -> str:
        c = tr[lens]
        if c["transport"][i] is None:
            return "–"
        return f"{c['transport'][i]:.2f} [{c['transport_lo'][i]:.2f}, {c['transport_hi'][i]:.2f}]"

    rows = ["| ℓ | KL, logit lens | KL, least-squares start | KL, tuned lens | 𝓛 ℓ→ℓ+1, logit [95 %] | "
            "𝓛, tuned [95 %] | entropy logit / tuned |", "|---|---|---|---|---|---|---|"]
    for r in fit:
        i = r["layer"]
        init = f"{r['kl_init']:.2f}" if "kl_init" in r else "–"
        rows.append(f"| {i} | {r['kl_logit']:.2f} | {init} | {r['kl_tuned']:.2f} | {step('logit', i)} | "
                    f"{step('tuned', i)} | {tr['logit']['entropy'][i]:.2f} / {tr['tuned']['entropy'][i]:.2f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=8192)
    ap.add_argument("--heldout-tokens", type=int, default=384)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-tokens", type=int, default=128)
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--refit", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.max_tokens, args.heldout_tokens, args.max_steps, args.prompts = 1536, 256, 2, 10
    pin_threads(args.threads)
    import spinal_nb
    from spinal_nb.capture.tuned_fit import cached_tuned_lens
    from spinal_nb.data import brown
    from spinal_nb.lab.smollm2 import load_smollm2
    from spinal_nb.lens_recipes import lens_texts

    start = machine()
    t0 = time.perf_counter()
    model, tok = load_smollm2(progress=False)
    t_load = time.perf_counter() - t0
    texts = lens_texts()  # the texts spinal demo --smollm2 and notebook 03 fit on (spinal_nb.lens_recipes)
    fit_kw = dict(max_tokens=args.max_tokens, heldout_tokens=args.heldout_tokens, epochs=args.epochs,
                  batch_tokens=args.batch_tokens, max_steps=args.max_steps, min_tokens=min(512, args.max_tokens))
    t1 = time.perf_counter()
    lens, path, cached = cached_tuned_lens(model, texts, tok, name="smollm2-instruct", refit=args.refit,
                                           **fit_kw)
    t_fit = time.perf_counter() - t1
    print(json.dumps({"lens": str(path), "cached": cached, "fit_seconds": round(t_fit, 1),
                      "recipe": lens.recipe, "load_avg": machine()["load_avg"]}), flush=True)

    prompts = brown.trace_prompts(args.prompts)
    frames = {}
    for name, kw in (("logit", {}), ("tuned", {"lens": lens})):
        t = time.perf_counter()
        frames[name] = spinal_nb.trace(model, prompts, tokenizer=tok, checkpoint=name, progress=False, **kw)
        print(json.dumps({"trace": name, "seconds": round(time.perf_counter() - t, 1)}), flush=True)
    cols = {n: {c: f.data.get_column(c).to_list() for c in ("transport", "transport_lo", "transport_hi", "entropy")}
            for n, f in frames.items()}
    fit = lens.fit
    lines = [f"SmolLM2-135M-Instruct tuned lens: {lens.recipe.get('n_train_tokens')} training tokens x "
             f"{lens.recipe['epochs']} epoch(s), least-squares start then {lens.recipe.get('steps')} KL steps (batch "
             f"{lens.recipe['batch_tokens']}, {lens.recipe['optimizer']} lr {lens.recipe['lr']}), "
             f"{lens.recipe.get('n_heldout_tokens')} held-out tokens; fit {lens.recipe.get('seconds_total')} s "
             f"(capture {lens.recipe.get('seconds_capture')} s, train {lens.recipe.get('seconds_train')} s) on "
             f"{lens.recipe.get('torch_threads')} torch threads{' (from the cache)' if cached else ''}; model load "
             f"{t_load:.1f} s; load average at start {start['load_avg']}, at end {machine()['load_avg']} "
             f"({start['cpus']} CPUs); peak RSS {peak_rss_mb():.0f} MB; lens {lens.tag}",
             "", "| ℓ | held-out KL(p_L ‖ p_ℓ), logit lens | least-squares start | tuned lens | "
             "𝓛 ℓ→ℓ+1, logit lens [95% CI] | tuned lens [95% CI] | entropy, logit | entropy, tuned |",
             "|---|---|---|---|---|---|---|---|"]

    def ci(n: str, i: int) -> str:
        c = cols[n]
        if c["transport"][i] is None:
            return "–"
        return f"{c['transport'][i]:.3f} [{c['transport_lo'][i]:.3f}, {c['transport_hi'][i]:.3f}]"

    for row in fit:
        i = row["layer"]
        init = f"{row['kl_init']:.3f}" if "kl_init" in row else "–"
        lines.append(f"| {i} | {row['kl_logit']:.3f} | {init} | {row['kl_tuned']:.3f} | {ci('logit', i)} | {ci('tuned', i)} "
                     f"| {cols['logit']['entropy'][i]:.3f} | {cols['tuned']['entropy'][i]:.3f} |")
    text = "\n".join(lines)
    print(text)
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"tuned_lens_fit{suffix}.txt").write_text(text + "\n")
    result = {"machine_start": start, "machine_end": machine(), "model_load_s": t_load, "fit_wall_s": t_fit,
              "cached": cached, "lens_file": path.name, "tag": lens.tag, "recipe": lens.recipe, "fit": fit,
              "traces": cols, "prompts": len(prompts)}
    (RESULTS / f"tuned_lens_fit{suffix}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"tuned_lens_fit{suffix}.md").write_text(method_table(result) + "\n")  # docs/method.md's table


if __name__ == "__main__":
    main()
