"""The demo's report: its pairs (base → DPO, with training seeds), what each comparison says, and the files it writes
(``spinal-demo.parquet``, ``spinal-demo.html``, ``summary.json``, PNG charts). ``spinal_nb.demo`` runs the stages."""
from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from .frame import TERMINAL_DEPTH, TraceFrame
from .io import atomic_file, atomic_text
from .widgets import chart, show
from .widgets.html import PairSection, audit_page

PARQUET, HTML, SUMMARY = "spinal-demo.parquet", "spinal-demo.html", "summary.json"
TUNED_PARQUET = "spinal-demo-tuned-lens.parquet"  # the SmolLM2 pair under its tuned lens (with --smollm2)


@dataclass(frozen=True)
class PairSpec:
    """One base → DPO pair of the demo: its key, the checkpoint names in the frame, and a description.
    ``seeds``: the names of further DPO training seeds of the candidate (seed 0 is ``candidate``)."""
    key: str
    reference: str
    candidate: str
    title: str
    seeds: tuple[str, ...] = ()

    def with_seeds(self, n: int) -> PairSpec:
        """This pair with ``n`` training seeds in all (seed k ≥ 1 is named ``<candidate>-s<k>``)."""
        return replace(self, seeds=tuple(f"{self.candidate}-s{k}" for k in range(1, n)))

    @property
    def candidates(self) -> list[str]:
        return [self.candidate, *self.seeds]


LAB = PairSpec("lab", "lab-base", "lab-dpo", "Lab pair: Llama-style model pre-trained on Brown → + DPO")
SMOLLM2 = PairSpec("smollm2", "smollm2-instruct", "smollm2-instruct-dpo",
                   "SmolLM2-135M-Instruct → + 60 DPO steps (30 layers)")
SMOLLM2_TUNED = PairSpec("smollm2_tuned_lens", "smollm2-instruct", "smollm2-instruct-dpo",
                         "SmolLM2-135M-Instruct → + 60 DPO steps, under a tuned lens")


@dataclass
class DemoResult:
    """What :func:`run_demo` wrote: the files and the summary (also in ``summary.json``)."""
    out: Path
    parquet: Path
    html: Path
    summary_json: Path
    pngs: list[Path]
    summary: dict[str, Any] = field(default_factory=dict)
    printed: str = ""


def _evidence_digest(evidence: dict[str, Any]) -> dict[str, Any]:
    """The numbers that say DPO did something (held-out preference accuracy, margins, KL), flat."""
    out: dict[str, Any] = {}
    for k in ("seen_words", "unseen_words"):
        e = evidence.get(k) or {}
        for m in ("n_pairs", "pref_acc_before", "pref_acc_after", "margin_before", "margin_after", "reward_acc"):
            if m in e:
                out[f"{k}.{m}"] = e[m]
    n = evidence.get("neutral") or {}
    for m in ("kl_per_token", "top1_agreement", "loss_before", "loss_after"):
        if m in n:
            out[f"neutral.{m}"] = n[m]
    return out


def describe_pair(frame, spec: PairSpec, terminal_depth: float = TERMINAL_DEPTH) -> dict[str, Any]:
    """Comparison summary, verdict and evidence of one pair in a frame (what summary.json holds per pair)."""
    present = [c for c in spec.candidates if c in frame.checkpoints]
    # with ≥ 2 training seeds the comparison is of their mean, judged against both the prompt-resampling interval
    # and the seed-to-seed spread (docs/method.md#seeds); one seed: the plain pair
    cmp = frame.compare(spec.reference, present if len(present) > 1 else spec.candidate,
                        terminal_depth=terminal_depth)
    base_w = frame.window_means(spec.reference, terminal_depth)
    ev = frame.meta["checkpoints"][spec.candidate].get("extra", {}).get("lab", {}).get("evidence", {})
    return {"title": spec.title, "reference": spec.reference, "candidate": spec.candidate,
            "seeds": present if len(present) > 1 else [spec.candidate], "n_layers": frame.n_layers(spec.reference), "comparison": cmp.summary,
            "reference_window_means": base_w, "verdict": cmp.verdict(base_w),
            "evidence": _evidence_digest(ev), "_comparison": cmp}


def _print_pair(d: dict[str, Any], file=None) -> None:
    file = file or sys.stdout
    print(f"\n== {d['title']} ==", file=file)
    print(repr(d["_comparison"]), file=file)
    ev = d["evidence"]
    if ev:
        keys = [("unseen_words", "unseen words"), ("seen_words", "seen words")]
        bits = [f"{label}: pref acc {ev[f'{k}.pref_acc_before']:.2f} → {ev[f'{k}.pref_acc_after']:.2f}, "
                f"margin {ev[f'{k}.margin_before']:+.2f} → {ev[f'{k}.margin_after']:+.2f}"
                for k, label in keys if f"{k}.pref_acc_before" in ev]
        if "neutral.kl_per_token" in ev:
            bits.append(f"KL(dpo‖base) on neutral text {ev['neutral.kl_per_token']:.3f} nats/token")
        print("  DPO evidence (held-out prompts): " + "; ".join(bits), file=file)
    print(f"  VERDICT: {d['verdict']['text']}", file=file)


# ---------------------------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------------------------
def _write_pngs(frame, pairs: list[PairSpec], out: Path) -> list[Path]:
    pngs = []
    for spec in pairs:
        # every seed: the path chart draws each, the delta chart the seeds' mean (the frame marks them as seeds)
        sub = frame.select([spec.reference, *[c for c in spec.candidates if c in frame.checkpoints]])
        for kind in ("path", "delta"):
            p = out / f"{kind}-{spec.key}.png"
            c = chart(sub, kind, reference=spec.reference, candidate=spec.candidate, terminal_depth=TERMINAL_DEPTH)
            atomic_file(p, lambda f, c=c: c.save(f, format="png", scale_factor=2))
            pngs.append(p)
    return pngs


def _dashboard_page(frame, spec: PairSpec) -> str:
    dash = show(frame.select([spec.reference, *[c for c in spec.candidates if c in frame.checkpoints]]),
                reference=spec.reference,
                checkpoint=spec.candidate, terminal_depth=TERMINAL_DEPTH,
                title=spec.title)
    return dash.html_page()


def _write_html(frame, summary: dict[str, Any], described: dict[str, dict[str, Any]], pngs: list[Path],
                out: Path, printed: str, specs: dict[str, PairSpec]) -> Path:
    """The report page (spinal_nb.widgets.html.audit_page) of the described pairs (a pair described from another
    frame — the tuned lens's — carries it as ``_frame``)."""
    pairs = [PairSection(key, d["title"], d["verdict"], repr(d["_comparison"]), d["evidence"],
                         [p for p in pngs if p.stem.endswith(f"-{key}")],
                         _dashboard_page(d.get("_frame", frame), specs[key]))
             for key, d in described.items()]
    return atomic_text(out / HTML, audit_page(
        created=summary["created"], n_prompts=summary["prompts"]["n"], prompts="held-out Brown sentences",
        notes=summary.get("notes", []), pairs=pairs, printed=printed, timings=summary["timings_s"]))


def write_summary(summary: dict[str, Any], path: Path) -> Path:
    return atomic_text(path, json.dumps(summary, indent=1, ensure_ascii=False, default=str))


def seeded_frame(frames: list[TraceFrame], pairs: list[PairSpec]) -> TraceFrame:
    """The traces as one frame, each pair's DPO training seeds marked as seeds of one model (TraceFrame.mark_seeds),
    so the dashboard, the report and the charts compare the base with their mean, as the printed verdict does."""
    frame = TraceFrame.concat(frames)
    for spec in pairs:
        present = [c for c in spec.candidates if c in frame.checkpoints]
        if len(present) > 1:
            frame = frame.mark_seeds(present)
    return frame


def lens_step(frame, checkpoint: str, layer: int = 0) -> dict[str, Any]:
    """𝓛 of the step ℓ → ℓ+1 of one checkpoint with its interval (the first step: where the logit lens is least
    trustworthy)."""
    row = frame.checkpoint(checkpoint).filter(pl.col("layer") == layer)
    return {k: row.get_column(c)[0] for k, c in (("value", "transport"), ("lo", "transport_lo"),
                                                    ("hi", "transport_hi"))}


def write_outputs(frame, pairs: list[PairSpec], out: Path, summary: dict[str, Any], pngs: bool = True,
                  tuned: tuple[TraceFrame, PairSpec] | None = None) -> DemoResult:
    """Every output file. ``tuned``: (frame, pair) of the same pair traced under a tuned lens — described next to
    the logit lens's pair, with the first step's 𝓛 under each lens; its traces go to their own Parquet file (traces
    under different lenses never combine)."""
    described = {s.key: describe_pair(frame, s) for s in pairs}
    if tuned is not None:
        tframe, tspec = tuned
        described[tspec.key] = {**describe_pair(tframe, tspec), "_frame": tframe, "lens": tframe.params.lens,
                                "first_step": {"logit": lens_step(frame, tspec.reference),
                                               "tuned": lens_step(tframe, tspec.reference)}}
    summary["pairs"] = {k: {kk: vv for kk, vv in d.items() if not kk.startswith("_")} for k, d in described.items()}
    buf = io.StringIO()
    for d in described.values():
        _print_pair(d, buf)
        if "first_step" in d:
            lo, tu = d["first_step"]["logit"], d["first_step"]["tuned"]
            print(f"  first step 𝓛(0→1) of {d['reference']}: logit lens {lo['value']:.3f} [{lo['lo']:.3f}, "
                  f"{lo['hi']:.3f}], tuned lens {tu['value']:.3f} [{tu['lo']:.3f}, {tu['hi']:.3f}]", file=buf)
    printed = buf.getvalue()
    if tuned is not None:
        tuned[0].to_parquet(out / TUNED_PARQUET)
    parquet = frame.to_parquet(out / PARQUET)
    pngs = _write_pngs(frame, pairs, out) if pngs else []  # without the 'export' extra: the page inlines Vega-Lite
    summary["files"] = {"parquet": str(parquet), "html": str(out / HTML), "summary": str(out / SUMMARY),
                        "pngs": [str(p) for p in pngs]}
    specs = {s.key: s for s in pairs + ([tuned[1]] if tuned is not None else [])}
    html_path = _write_html(frame, summary, described, pngs, out, printed, specs)
    spath = write_summary(summary, out / SUMMARY)
    return DemoResult(out, parquet, html_path, spath, pngs, summary, printed)
