"""The browser's time to update the widgets on one scrub step, for 20 checkpoints x 64 layers (65 rows each).

The frame is built as benchmarks/widget_payload.py builds it: synthetic traces through the real accumulators
(spinal_nb.synthetic, d = 576, so every row keeps a 575-value spectrum), one checkpoint renamed 20 times, and a lens
table for 2 prompts. Headless Debian Chromium through Playwright, as tests/ui does (viewport 1400 x 1500).

(a) front end only, `static`: the `to_html` export (the same bundled render() against an in-page model; spectra and
    lens of every layer are embedded, so a scrub needs no kernel). One step = one real ArrowLeft/ArrowRight key
    press on the focused widget (Playwright keyboard, so Chromium's input path; ArrowDown/ArrowUp in the
    TrainingView); the page records
      - js:          from the keydown reaching the page to the end of the widget's own keydown handler (the model's
                     change events; until the views redrew once per frame (store.inFrame), also all their redraw
                     work, which now runs in the frame's animation callbacks, inside first_paint),
      - first_paint: from the keydown to the end of the first frame after it (requestAnimationFrame, then a
                     MessageChannel message, which runs once that frame's style, layout and paint are done).
    For the Dashboard and for the TrainingView (the same frame with a training step per checkpoint).
(b) full round trip, `live`: a real JupyterLab 4 server and kernel; the Dashboard (`show(frame)`) in a notebook cell.
    A key press sets `layer` in the browser, which redraws what it can at once (depth path rings, compare summary,
    table; spectrum and lens too when the last reply's buffers hold the new layer, else they keep the previous
    layer's drawing, dimmed, until the reply), sends the change to the kernel once that frame is drawn
    (js/src/lib/store.js; before 6545d63, from the key's handler), whose observer sends the spectra and lens buffers of
    the new layer and its neighbours back; the browser then redraws those two if still needed.
    Recorded per step, from the keydown:
      - js, first_paint: as in (a) (the front-end part of a live scrub, before the reply),
      - reply: the reply's redraw is in the DOM (the spectrum and lens of the new layer, nothing pending),
      - full:  the end of the first frame after that (same closing as first_paint; the closing message can wait
               behind other queued tasks, e.g. the kernel's status messages),
      - kernel: the kernel's reply for the new layer has been taken in (the scrubber's data-detail). The widget
               sends the selected layer's neighbours too (`PREFETCH` = 1 in spinal_nb/widgets/_base.py), so a one-layer
               step usually draws from the previous reply before this one arrives, and the reply redraws nothing;
               the step ends when both happened, so that steps never overlap.
    Then, for scale, the comm round trip alone in the same kernel: a 2-trait anywidget that draws nothing (the
    browser sets one trait, Python's observer sets the other, the browser sees it change).
Elements added/removed per step are counted with a MutationObserver on the widget (SVG elements apart), and the
widget's height change between the first frame and the end of the step (a layout shift) is recorded.

`--trace` adds the work of the frame that shows each step, from a Chrome trace of `--frame-steps` more steps per
part: `frame_cpu_ms` is the renderer main thread's CPU time (the trace's thread durations) from the task that
handles the keydown to the end of the first Commit after it: our handlers, style, layout, paint, layerize and
commit, whatever else runs on the machine; a step fits in one 60 Hz frame when it is under 16.7 ms. Also its wall
time (`frame_wall_ms`), the CPU time per kind of work, and per script run in that window (`frame_scripts_ms_per_step`:
the widget's functions, JupyterLab's, and this benchmark's own listeners, which run inside the window too). Tracing slows the page: compare traced numbers with each
other, not with the untraced ones.

Each part does `--warmup` steps first (not recorded), then `--steps` steps (direction reverses at the ends). A key
is pressed as soon as the last step is drawn (and, live, answered): faster than a held key repeats, so work the
widget leaves for after a frame (the table's next sheet) has the least time. `--pace-ms 33` presses no faster
than a held key's 30 Hz.

    OMP_NUM_THREADS=1 python benchmarks/widget_redraw.py --checkpoints 20 --layers 64 --steps 40 --trace

Before/after in one run: `--baseline REV` (a git revision) takes spinal-nb as it was at REV (`git archive` into a
temporary folder: its Python payload and its bundles, which go together) and runs every part with both, alternating
in `--rounds` rounds (so a change of load on the machine hits both alike); the ratios current / baseline of the
medians and p95s come at the end. The static pages of REV are written by a Python process importing REV's package,
the live notebooks of REV import it in their kernel. `--frame-cache PATH` keeps the synthetic frame between runs.

Where the time goes: `--profile` (CPU profile of 10 steps, top functions), best with an unminified bundle:

    cd js && node_modules/.bin/esbuild src/widgets/dashboard.js src/widgets/training.js src/spinal.css --bundle \\
        --format=esm --outbase=src --outdir=/tmp/unmin --entry-names=[name] && cd .. && \\
        python benchmarks/widget_redraw.py --steps 10 --profile --esm-dir /tmp/unmin
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from _bench import machine, pin_threads
from widget_payload import lens_table

from spinal_nb.frame import TraceFrame
from spinal_nb.synthetic import synthetic_trace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ui"))
import lab_server  # noqa: E402  (tests/ui/lab_server.py: the UI tests' server, session and notebook-page helpers)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 1500}

# In-page helpers: `__rbAfterPaint()` resolves after the next frame has been produced; `__rbArm(k, live)` prepares the
# measurement of one key press that should select layer k, and leaves its promise in window.__rbResult.
PAGE_JS = r"""
window.__rbAfterPaint = () => new Promise((resolve) => requestAnimationFrame(() => {
  const ch = new MessageChannel();
  ch.port1.onmessage = () => resolve(performance.now());
  ch.port2.postMessage(0);
}));
window.__rbArm = (k, live) => {
  const root = document.querySelector('.spinal-nb');
  const records = [];
  const state = {};
  const count = () => {  // element nodes added/removed (with their subtrees), counted once the step is over
    const c = { added: 0, removed: 0, svg_added: 0 };
    for (const r of records) {
      for (const n of r.addedNodes) if (n.nodeType === 1) {
        c.added += 1 + n.getElementsByTagName('*').length;
        c.svg_added += (n instanceof SVGElement ? 1 : 0) + n.getElementsByTagNameNS('http://www.w3.org/2000/svg', '*').length;
      }
      for (const n of r.removedNodes) if (n.nodeType === 1) c.removed += 1 + n.getElementsByTagName('*').length;
    }
    return c;
  };
  window.__rbResult = new Promise((resolve, reject) => {
    const timer = setTimeout(() => { mo.disconnect(); reject(new Error('no redraw of layer ' + k + ' in 30 s')); }, 30000);
    const finish = (t) => {
      performance.mark('rb-end');
      clearTimeout(timer);
      records.push(...mo.takeRecords());
      mo.disconnect();
      const spec = root.querySelector('.spn-spectrum h4');
      resolve({ ...count(), js: state.sync - state.t0, first_paint: state.first - state.t0, full: t - state.t0,
                reply: (state.reply ?? t) - state.t0,
                kernel: (state.kernel ?? t) - state.t0, height_change: root.offsetHeight - state.height_first,
                input_delay: state.t0 - state.stamp,
                layer: Number(root.querySelector('.spn-scrubber, .spn-heat').dataset.layer),
                spectrum_title: spec ? spec.textContent : null,
                lens_cols: root.querySelectorAll('.spn-lens-col').length,
                lens_empty: !!root.querySelector('.spn-lens p.spn-muted:not(.spn-pending)'),
                pending: root.querySelectorAll('.spn-pending').length });
    };
    // live: done once the new layer's spectrum (svg, title of layer k) and lens (nothing "loading…") are in the DOM
    const done = () => {
      const h4 = root.querySelector('.spn-spectrum h4');
      return !!(root.querySelector('.spn-spectrum svg') && h4 && h4.textContent === 'Spectrum at layer ' + k
                && !root.querySelector('.spn-pending'));
    };
    // and the kernel's reply for layer k has been taken in (the scrubber's data-detail names the layer it is centred
    // on; with the neighbours prefetched, the new layer is usually drawn before that reply, which redraws nothing)
    // (bundles from before the prefetch have no data-detail: their redraw of layer k is the reply)
    const kernelDone = () => {
      const d = root.querySelector('.spn-scrubber').dataset.detail;
      return d === undefined || d === String(k);
    };
    const maybeFinish = () => {
      if (state.shown !== undefined && state.kernel !== undefined && !state.finished) {
        state.finished = true;
        finish(state.shown);
      }
    };
    const mo = new MutationObserver((recs) => {
      records.push(...recs);
      if (!live || state.t0 === undefined || state.finished) return;
      const now = performance.now();
      if (state.reply === undefined && done()) {
        state.reply = now;  // the new layer's detail is in the DOM (its frame not yet produced)
        window.__rbAfterPaint().then((t) => { state.shown = t; maybeFinish(); });
      }
      if (state.kernel === undefined && kernelDone()) {
        state.kernel = now;
        maybeFinish();
      }
    });
    mo.observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-detail'] });
    window.addEventListener('keydown', (ev) => {
      performance.mark('rb-start');
      state.t0 = performance.now();
      state.stamp = ev.timeStamp;
      window.__rbAfterPaint().then((t) => {
        state.first = t;
        state.height_first = root.offsetHeight;
        if (!live) finish(t);
      });
    }, { capture: true, once: true });
    // registered after the widget's own listener on the same element: runs right after it
    root.addEventListener('keydown', () => { state.sync = performance.now(); }, { once: true });
  });
};
"""


def load_frame(cache: Path | None, checkpoints: int = 20, layers: int = 64, d: int = 576) -> TraceFrame:
    """The benchmark frame: read from `cache` when it exists (`--frame-cache`), else built (and written there)."""
    if cache and cache.exists():
        import spinal_nb

        return spinal_nb.read_parquet(cache)
    frame = build_frame(checkpoints, layers, d)
    if cache:
        frame.to_parquet(cache)
    return frame


def read_trace(path: Path) -> tuple[list[dict], list[dict]]:
    """A Chrome trace file's events, and those of them that are complete ("X") events of the renderer's main thread
    (CrRendererMain)."""
    events = json.loads(path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    main = {(e["pid"], e["tid"]) for e in events
            if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"}
    return events, [e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in main]


def build_frame(checkpoints: int, layers: int, d: int) -> TraceFrame:
    """As benchmarks/widget_payload.py: one synthetic trace, renamed per checkpoint; lens rows for 2 prompts."""
    base = synthetic_trace("ckpt00", n_layers=layers, d=d, vocab=64, n_prompts=30, tokens_per_prompt=24)
    frames = [base] + [base.rename({"ckpt00": f"ckpt{i:02d}"}) for i in range(1, checkpoints)]
    frame = TraceFrame.concat(frames)
    return TraceFrame(frame.data, frame.meta, lens_table("ckpt00", layers))


def with_steps(frame: TraceFrame) -> TraceFrame:
    """The same frame as a training trace (checkpoint i at step 50·i) for the TrainingView."""
    names = frame.checkpoints
    step = pl.col("checkpoint").replace_strict({n: 50 * i for i, n in enumerate(names)}, return_dtype=pl.Int64)
    return TraceFrame(frame.data.with_columns(step.alias("step")), frame.meta, frame.lens)


def stats(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    p95 = v[min(len(v) - 1, max(0, round(0.95 * len(v)) - 1))]  # nearest-rank
    return {"median": round(statistics.median(v), 2), "p95": round(p95, 2), "max": round(v[-1], 2),
            "min": round(v[0], 2), "n": len(v)}


def keys_and_layers(start: int, max_layer: int, n: int):
    """(key, layer after it) for n steps from `start`, going left and turning round at the ends."""
    layer, step = start, -1
    for _ in range(n):
        if not 0 <= layer + step <= max_layer:
            step = -step
        layer += step
        yield ("ArrowLeft" if step < 0 else "ArrowRight"), layer


def dom_layer(page) -> int:
    return int(page.evaluate("() => document.querySelector('.spinal-nb .spn-scrubber, .spinal-nb .spn-heat').dataset.layer"))


# seconds from one key press to the next at least (--pace-ms); 0: the next as soon as the last step is done
PACE_S = 0.0


def scrub(page, start: int, max_layer: int, warmup: int, steps: int, live: bool,
          keys: tuple[str, str] = ("ArrowLeft", "ArrowRight")) -> list[dict]:
    """warmup + steps key presses (keys = (one layer down, one layer up)); the measured steps' records. Each press
    waits for the last step to be drawn (and, live, answered), and with `PACE_S` > 0 also until that long after the
    last press (a key pressed no faster than a held key repeats)."""
    out = []
    last = None
    for i, (key, layer) in enumerate(keys_and_layers(start, max_layer, warmup + steps)):
        page.evaluate("([k, live]) => window.__rbArm(k, live)", [layer, live])
        if PACE_S and last is not None:
            time.sleep(max(0.0, last + PACE_S - time.monotonic()))
        last = time.monotonic()
        page.keyboard.press(keys[0] if key == "ArrowLeft" else keys[1])
        r = page.evaluate("() => window.__rbResult")
        if r["layer"] != layer:
            raise SystemExit(f"step {i}: the widget shows layer {r['layer']}, expected {layer}")
        if i >= warmup:
            out.append(r)
    return out


def summarize(part: str, view: str, rows: list[dict], extra: dict | None = None) -> dict:
    keys = ("js", "first_paint", "reply", "full", "kernel") if part == "live" else ("js", "first_paint")
    out = {"part": part, "view": view, "load_avg": [round(x, 2) for x in os.getloadavg()]}
    for k in keys:
        out[k + "_ms"] = stats([r[k] for r in rows])
    out["input_delay_ms"] = stats([r["input_delay"] for r in rows])
    for k in ("added", "removed", "svg_added", "height_change"):
        out[k + "_per_step"] = stats([r[k] for r in rows])
    if extra:
        out.update(extra)
    return out


# Write the static page of one view with the spinal-nb at sys.argv[1] (a revision's source tree): the widget state
# comes from that revision's Python, the page runs its bundles. Prints the view's max layer.
EXPORT = """import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[5])
import spinal_nb
from spinal_nb.widgets import TrainingView, show
from widget_redraw import with_steps
frame = spinal_nb.read_parquet(sys.argv[2])
widget = TrainingView(with_steps(frame)) if sys.argv[3] == "training" else show(frame)
widget.to_html(sys.argv[4])
print(widget._header["max_layer"])
"""


def export_page(view: str, widget, bundle: dict, parquet: Path, out: Path) -> int:
    """The static page of `view` for `bundle` at `out`: from `widget` (this checkout's package, with the bundle's
    esm_dir if any), or from the bundle's source tree in a subprocess. The view's max layer."""
    if bundle.get("src"):
        done = subprocess.run([sys.executable, "-c", EXPORT, str(bundle["src"]), str(parquet), view, str(out),
                               str(Path(__file__).resolve().parent)], capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"exporting the {view} of {bundle['label']} failed:\n{done.stderr[-3000:]}")
        return int(done.stdout.split()[-1])
    use_bundle(widget, view, bundle.get("esm_dir"))
    widget.to_html(out)
    return widget._header["max_layer"]


def baseline_tree(rev: str, tmp: Path) -> Path:
    """spinal-nb as it was at git revision `rev` (its source tree, no .git), in a folder under `tmp`."""
    out = tmp / f"baseline-{rev}"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=False)
    if archive.returncode:
        raise SystemExit(f"git archive {rev} failed: {archive.stderr.decode()[-2000:]}")
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def use_bundle(widget, view: str, esm_dir: str | None) -> None:
    """Point a widget at the bundles in `esm_dir` (<view>.js and spinal.css), or leave the shipped ones."""
    if esm_dir:
        widget._esm = (Path(esm_dir) / f"{view}.js").read_text(encoding="utf-8")
        if (Path(esm_dir) / "spinal.css").exists():
            widget._css = (Path(esm_dir) / "spinal.css").read_text(encoding="utf-8")


# every plot of the page is drawn at its element's width (the redraw after a width change has happened)
DRAWN = """() => { const plots = [...document.querySelectorAll('.spinal-nb .spn-plot')];
  return plots.length > 0 && plots.every((p) => { const svg = p.querySelector('svg.spn-svg');
    return svg && Math.abs(+svg.getAttribute('width') - p.getBoundingClientRect().width) <= 1; }); }"""


def settle(page) -> None:
    """Wait until the widget is drawn at its width and two frames have been produced since (no timed wait)."""
    page.wait_for_function(DRAWN, timeout=60_000)
    page.evaluate("() => window.__rbAfterPaint().then(() => window.__rbAfterPaint())")


def static_part(browser, widgets, args, tmp: Path, bundle: dict, steps: int, trace: bool) -> list[dict]:
    """The static export of each view with one bundle ({label, src: a source tree or None for this checkout,
    esm_dir: other bundles for this checkout or None}): `steps` measured key presses per view, then (trace) the
    frame work of `args.frame_steps` more."""
    label = bundle["label"]
    results = []
    for view, widget in widgets.items():
        if view not in args.views:
            continue
        path = tmp / f"{view}-{label}.html"
        max_layer = export_page(view, widget, bundle, tmp / "frame.parquet", path)
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_selector(".spinal-nb .spn-series", timeout=60_000)
        page.evaluate(PAGE_JS)
        settle(page)
        page.locator(".spinal-nb").first.focus()
        nodes = page.evaluate("() => document.querySelectorAll('.spinal-nb *').length")
        svg_nodes = page.evaluate("() => document.querySelectorAll('.spinal-nb svg *').length")
        keys = ("ArrowDown", "ArrowUp") if view == "training" else ("ArrowLeft", "ArrowRight")  # TrainingView: ↑/↓
        rows = scrub(page, dom_layer(page), max_layer, args.warmup, steps, False, keys)
        if errors:
            raise SystemExit(f"page errors in the static {view}: {errors}")
        res = summarize("static", view, rows, {"bundle": label, "dom_nodes": nodes, "svg_nodes": svg_nodes})
        if trace:
            res.update(trace_steps(page, browser, tmp, view, dom_layer(page), max_layer, keys,
                                   max(1, args.frame_steps // args.rounds), label=label))
        res["_rows"] = rows
        results.append(res)
        if args.profile:
            profile_steps(page, view, dom_layer(page), max_layer, keys, False)
        page.close()
    return results


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _overlap(intervals, windows) -> float:
    return sum(max(0.0, min(b, y) - max(a, x)) for a, b in intervals for x, y in windows)


def trace_steps(page, browser, tmp: Path, view: str, start: int, max_layer: int, keys: tuple[str, str], n: int,
                live: bool = False, label: str = "") -> dict:
    """A Chrome trace (devtools.timeline) of `n` scrub steps; per step, the work of the frame that shows it, on the
    renderer's main thread: from the task that handles the keydown (the one holding the page's performance mark) to
    the end of the first Commit after it — our handlers, style, layout, paint, layerize, commit. Recorded as CPU time
    of the thread (`frame_cpu_ms`, the trace's thread durations: what a step costs, whatever else runs on the
    machine) and as wall time (`frame_wall_ms`: keydown task to commit, including time the thread was not running).
    Also the CPU time per kind of work, per step (kinds nest: EventDispatch holds FunctionCall). Tracing makes the
    page slower: compare these between bundles, not with the untraced timings."""
    path = tmp / f"{view}-{'live' if live else 'static'}-{label}-trace.json"
    browser.start_tracing(page=page, path=str(path), screenshots=False)
    rows = scrub(page, start, max_layer, 0, n, live, keys)
    browser.stop_tracing()
    events, on_main = read_trace(path)
    tasks = sorted((e for e in on_main if e["name"] == "RunTask"), key=lambda e: e["ts"])
    commits = sorted(e["ts"] + e.get("dur", 0) for e in on_main if e["name"] == "Commit")
    windows = []
    marks = sorted(e["ts"] for e in events if e.get("name") == "rb-start")
    no_commit = 0
    for i, a in enumerate(marks):
        end = next((c for c in commits if c > a), None)
        task = next((t for t in tasks if t["ts"] <= a < t["ts"] + t.get("dur", 0)), None)
        # a step's frame is committed before the next key is pressed (the next press waits for that frame); a window
        # whose first Commit comes after the next step's mark lost its Commit in the trace, and would count the next
        # steps' work as its own (seen: runs of equal ≈ 200 ms steps)
        if end is None or (i + 1 < len(marks) and end > marks[i + 1]):
            no_commit += 1
            continue
        windows.append((task["ts"] if task else a, end))

    def cpu(evs, w) -> float:  # thread time of the events inside window w (outermost ones of a kind only)
        total, reach = 0.0, -1.0
        for e in sorted(evs, key=lambda e: e["ts"]):
            if w[0] <= e["ts"] < w[1] and e["ts"] >= reach:
                total += e.get("tdur", e.get("dur", 0))
                reach = e["ts"] + e.get("dur", 0)
        return total / 1000

    kinds = ("FunctionCall", "EventDispatch", "UpdateLayoutTree", "Layout", "PrePaint", "Paint", "Layerize",
             "Commit", "MajorGC", "MinorGC")
    by_kind = {k: [e for e in on_main if e["name"] == k] for k in kinds}
    per_step = [cpu(tasks, w) for w in windows]
    wall = [(b - a) / 1000 for a, b in windows]
    ms = {k: sum(cpu(v, w) for w in windows) / max(1, len(windows)) for k, v in by_kind.items()}
    # whose script runs in the frame: each FunctionCall by its function and script (the widget's bundle is a blob:
    # URL, this benchmark's page script has none; JupyterLab's are its chunks), each EventDispatch by event type
    src: dict[str, float] = {}
    for e in by_kind["FunctionCall"] + by_kind["EventDispatch"]:
        if any(a <= e["ts"] < b for a, b in windows):
            d = e.get("args", {}).get("data", {})
            url = d.get("url") or ""
            where = ("widget" if url.startswith("blob:") else "benchmark page script" if not url
                     else Path(url.split("?")[0]).name)
            key = (f"{e['name']} {d.get('type')}" if e["name"] == "EventDispatch"
                   else f"{d.get('functionName') or '(anonymous)'} ({where}:{d.get('lineNumber', '?')})")
            src[key] = src.get(key, 0) + e.get("tdur", e.get("dur", 0)) / 1000 / max(1, len(windows))
    return {"frame_cpu_ms": stats(per_step), "frame_wall_ms": stats(wall),
            "frame_cpu_by_kind_ms_per_step": {k: round(v, 2) for k, v in sorted(ms.items(), key=lambda kv: -kv[1])
                                              if v >= 0.05},
            "frame_scripts_ms_per_step": {k: round(v, 2) for k, v in sorted(src.items(), key=lambda kv: -kv[1])[:8]},
            "traced_steps": len(rows), "steps_without_commit_in_trace": no_commit,
            "_frame_cpu": per_step, "_frame_wall": wall}


def profile_steps(page, view: str, start: int, max_layer: int, keys: tuple[str, str], live: bool) -> None:
    """CPU profile (CDP Profiler, 100 µs sampling) of 10 scrub steps: top functions by self time and by total
    time. Readable names need an unminified bundle (--esm-dir)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 100})
    cdp.send("Profiler.start")
    scrub(page, start, max_layer, 0, 10, live, keys)
    prof = cdp.send("Profiler.stop")["profile"]
    nodes = {n["id"]: n for n in prof["nodes"]}
    parent = {c: n["id"] for n in prof["nodes"] for c in n.get("children", [])}

    def name(n):
        f = n["callFrame"]
        return f"{f['functionName'] or '(anonymous)'} {Path(f['url']).name[:30]}:{f['lineNumber'] + 1}"

    self_ms: dict[str, float] = {}
    total_ms: dict[str, float] = {}
    deltas = prof["timeDeltas"][1:] + [0]
    for sid, dt in zip(prof["samples"], deltas, strict=True):
        n = nodes[sid]
        self_ms[name(n)] = self_ms.get(name(n), 0) + dt / 1000
        seen, cur = set(), sid
        while cur is not None:
            nm = name(nodes[cur])
            if nm not in seen:
                seen.add(nm)
                total_ms[nm] = total_ms.get(nm, 0) + dt / 1000
            cur = parent.get(cur)
    top = lambda d, k: {a: round(b, 1) for a, b in sorted(d.items(), key=lambda kv: -kv[1])[:k]}  # noqa: E731
    skip = ("(idle)", "(root)", "(program)")
    print(json.dumps({"profile": view, "part": "live" if live else "static", "steps": 10,
                      "self_ms": top(self_ms, 25),
                      "total_ms": top({k: v for k, v in total_ms.items() if not k.startswith(skip)}, 40)}), flush=True)


# --- live JupyterLab -----------------------------------------------------------------------------------------------
def start_lab(home: Path) -> lab_server.Lab:
    """A JupyterLab server with all its state under `home` (notebooks in home/work), started as the UI tests start
    theirs."""
    try:
        return lab_server.start_lab(home, home / "work", home / "server.log")
    except RuntimeError as e:
        raise SystemExit(str(e)) from None


PING = '''import anywidget, traitlets

class Ping(anywidget.AnyWidget):  # a comm round trip with nothing to draw: the browser sets v, Python answers echo
    _esm = """export default { render({ model, el }) {
      el.textContent = "ping";
      window.__rbPing = () => new Promise((resolve) => {
        const want = model.get("v") + 1;
        const t0 = performance.now();
        const cb = () => { if (model.get("echo") === want) { model.off("change:echo", cb); resolve(performance.now() - t0); } };
        model.on("change:echo", cb);
        model.set("v", want);
        model.save_changes();
      });
    } }"""
    v = traitlets.Int(0).tag(sync=True)
    echo = traitlets.Int(0).tag(sync=True)

    @traitlets.observe("v")
    def _echo(self, change):
        self.echo = change["new"]

Ping()'''


def live_page(browser, lab: lab_server.Lab, name: str, src: str, ping: bool):
    """A notebook `name` whose first cell shows the dashboard (and, with `ping`, a second cell the Ping widget),
    its kernel started and idle, opened and the dashboard drawn: (page, session, errors)."""
    cells = (src, PING) if ping else (src,)
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                     "source": code} for i, code in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (lab.work / name).write_text(json.dumps(nb))
    # the kernel is started and idle before the page opens the notebook, which attaches to it (lab_server)
    session = lab_server.start_session(lab, name)
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}") if "blob:" in (e.stack or "") else None)
    lab_server.open_notebook(page, lab, name)
    lab_server.run_cell(page, 0)
    try:
        page.wait_for_selector(".spinal-nb .spn-spectrum svg", state="attached", timeout=120_000)
    except Exception:
        shot = Path(tempfile.gettempdir()) / "spinal-redraw-failure.png"
        page.screenshot(path=str(shot), full_page=True)
        out = page.locator(".jp-Notebook .jp-Cell .jp-OutputArea").first.inner_text()
        raise SystemExit(f"the dashboard did not render; cell output: {out[-2000:]!r}; screenshot {shot}; "
                         f"server log: {lab.home.joinpath('server.log').read_text()[-2000:]}") from None
    page.evaluate(PAGE_JS)
    settle(page)
    return page, session, errors


def live_part(browser, frame, args, tmp: Path, bundles: list[dict]) -> list[dict]:
    """The Dashboard in a live JupyterLab, once per bundle and round (a notebook each, the same server), then the
    comm round trip alone in the last notebook's kernel."""
    home = tmp / "lab"
    parquet = tmp / "frame.parquet"
    frame.to_parquet(parquet)
    lab = start_lab(home)
    rows: dict[str, list[dict]] = {b["label"]: [] for b in bundles}
    traces: dict[str, list[dict]] = {b["label"]: [] for b in bundles}
    nodes = {}
    keys = ("ArrowLeft", "ArrowRight")
    try:
        for rnd in range(args.rounds):
            for k, bundle in enumerate(bundles):
                label, esm_dir = bundle["label"], bundle.get("esm_dir")
                last = rnd == args.rounds - 1 and k == len(bundles) - 1
                src = (f"import sys\nsys.path.insert(0, {str(bundle['src'])!r})\n" if bundle.get("src") else "") + (
                    f"import spinal_nb\nfrom spinal_nb.widgets import show\n"
                    f"frame = spinal_nb.read_parquet({str(parquet)!r})\ndash = show(frame, title='redraw benchmark')\n")
                if esm_dir:
                    src += f"dash._esm = open({str(Path(esm_dir) / 'dashboard.js')!r}).read()\n"
                    if (Path(esm_dir) / "spinal.css").exists():
                        src += f"dash._css = open({str(Path(esm_dir) / 'spinal.css')!r}).read()\n"
                page, session, errors = live_page(browser, lab, f"redraw-{label}-{rnd}.ipynb", src + "dash", last)
                page.locator(".spinal-nb").first.focus()
                nodes[label] = page.evaluate("() => document.querySelectorAll('.spinal-nb *').length")
                rows[label] += scrub(page, dom_layer(page), args.layers, args.warmup, args.steps // args.rounds, True)
                if args.trace:
                    traces[label].append(trace_steps(page, browser, tmp, "dashboard", dom_layer(page), args.layers, keys,
                                                     args.frame_steps // args.rounds, True, label))
                if args.profile and last:
                    profile_steps(page, "dashboard", dom_layer(page), args.layers, keys, True)
                if errors:
                    raise SystemExit(f"page errors in JupyterLab ({label}): {errors}")
                if last:  # the same kernel, nothing to draw: the comm round trip alone (browser -> kernel -> browser)
                    lab_server.run_cell(page, 1)
                    page.wait_for_function("() => typeof window.__rbPing === 'function'", timeout=60_000)
                    pings = [page.evaluate("() => window.__rbPing()")
                             for _ in range(args.warmup + args.steps)][args.warmup:]
                page.close()
                lab_server.end_session(lab, session)
        out = []
        for label in rows:
            stale = [r for r in rows[label] if r["lens_empty"] or r["lens_cols"] == 0]
            res = summarize("live", "dashboard", rows[label], {
                "bundle": label, "dom_nodes": nodes[label], "app": "jupyterlab",
                "steps_where_lens_shows_no_rows": len(stale),
                "lens_columns_per_step": stats([r["lens_cols"] for r in rows[label]])})
            if traces[label]:
                res.update(merge_traces(traces[label]))
            print(json.dumps(res), flush=True)
            out.append(res)
        ping = {"part": "live", "view": "comm round trip, no redraw (a 2-trait anywidget)",
                "load_avg": [round(x, 2) for x in os.getloadavg()], "round_trip_ms": stats(pings)}
        print(json.dumps(ping), flush=True)
        return out
    finally:
        lab_server.stop_lab(lab.proc, lab.log)


def merge_traces(parts: list[dict]) -> dict:
    """trace_steps' results of several rounds as one (per-step values pooled: medians of the rounds' medians would
    not be medians)."""
    work = [v for p in parts for v in p["_frame_cpu"]]
    wall = [v for p in parts for v in p["_frame_wall"]]
    kinds: dict[str, float] = {}
    scripts: dict[str, float] = {}
    for p in parts:
        for k, v in p["frame_cpu_by_kind_ms_per_step"].items():
            kinds[k] = kinds.get(k, 0) + v / len(parts)
        for k, v in p.get("frame_scripts_ms_per_step", {}).items():
            scripts[k] = scripts.get(k, 0) + v / len(parts)
    return {"frame_cpu_ms": stats(work), "frame_wall_ms": stats(wall),
            "frame_cpu_by_kind_ms_per_step": {k: round(v, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "frame_scripts_ms_per_step": {k: round(v, 2) for k, v in sorted(scripts.items(), key=lambda kv: -kv[1])[:8]},
            "traced_steps": len(work), "steps_without_commit_in_trace": sum(p.get("steps_without_commit_in_trace", 0)
                                                                            for p in parts)}


RATIO_KEYS = ("js_ms", "first_paint_ms", "frame_cpu_ms", "frame_wall_ms", "full_ms", "kernel_ms")


def ratios(results: list[dict], baseline: str, current: str) -> list[dict]:
    """current / baseline of each timing's median and p95, per part and view (the same run, interleaved rounds)."""
    out = []
    for part, view in dict.fromkeys((r["part"], r["view"]) for r in results if "bundle" in r):
        by = {r["bundle"]: r for r in results if (r.get("part"), r.get("view")) == (part, view) and "bundle" in r}
        if baseline not in by or current not in by:
            continue
        row = {"ratio": f"{current} / {baseline}", "part": part, "view": view}
        for k in RATIO_KEYS:
            if k in by[current] and k in by[baseline]:
                row[k] = {q: round(by[current][k][q] / by[baseline][k][q], 2) if by[baseline][k][q] else None
                          for q in ("median", "p95")}
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=20)
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--steps", type=int, default=40, help="measured scrub steps per part and bundle (after the "
                                                          "warm-up), split over the rounds")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--parts", nargs="+", default=["static", "live"], choices=["static", "live"])
    ap.add_argument("--views", nargs="+", default=["dashboard", "training"], choices=["dashboard", "training"],
                    help="the static part's views (the live part is the Dashboard)")
    ap.add_argument("--trace", action="store_true", help="also record Chrome traces: the frame work per step "
                                                         "(--frame-steps steps per part, view and bundle)")
    ap.add_argument("--frame-steps", type=int, default=20)
    ap.add_argument("--pace-ms", type=float, default=0, help="press the keys no faster than this (33: a held key's "
                    "30 Hz repeat), which leaves the page the idle time a user's key presses leave it; default 0: "
                    "each key as soon as the last step is drawn (and, live, answered)")
    ap.add_argument("--profile", action="store_true", help="also record a CPU profile of 10 steps per view and part")
    ap.add_argument("--esm-dir", help="a folder with dashboard.js and training.js (and spinal.css, if there) to use "
                                      "instead of the shipped bundles (e.g. an unminified build, for readable "
                                      "profiles: see the docstring)")
    ap.add_argument("--baseline", help="a git revision to compare with in the same run (its Python and bundles); "
                                       "the parts alternate between the two in --rounds rounds, and the ratios are "
                                       "printed at the end")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of alternation with --baseline")
    ap.add_argument("--frame-cache", help="a Parquet file for the synthetic frame: written by the first run, read by "
                                          "the next ones (building it takes 20 s to minutes)")
    args = ap.parse_args()
    if not args.baseline:
        args.rounds = 1
    global PACE_S
    PACE_S = args.pace_ms / 1000
    pin_threads(1)
    from playwright.sync_api import sync_playwright

    current = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "spinal_nb", "js/src"],
                           capture_output=True, text=True, check=False).stdout.strip()
    print(json.dumps({"start": machine(), "checkpoints": args.checkpoints, "layers": args.layers, "d": args.d,
                      "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "chromium": CHROMIUM,
                      "current": current + (" + uncommitted changes" if dirty else "")
                      + (f", bundles from {args.esm_dir}" if args.esm_dir else ""),
                      "baseline": args.baseline, "pace_ms": args.pace_ms}), flush=True)
    t = time.perf_counter()
    frame = load_frame(Path(args.frame_cache) if args.frame_cache else None, args.checkpoints, args.layers, args.d)
    tframe = with_steps(frame)
    print(json.dumps({"rows": frame.data.height, "frame_build_s": round(time.perf_counter() - t, 1)}), flush=True)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="spinal-redraw-") as tmp, sync_playwright() as p:
        from spinal_nb.widgets import TrainingView, show

        bundles = ([{"label": "baseline", "src": baseline_tree(args.baseline, Path(tmp))}] if args.baseline else []) \
            + [{"label": "current", "src": None, "esm_dir": args.esm_dir}]
        frame.to_parquet(Path(tmp) / "frame.parquet")
        widgets = {"dashboard": show(frame), "training": TrainingView(tframe)}
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        print(json.dumps({"browser": browser.version}), flush=True)
        try:
            if "static" in args.parts:
                pooled: dict[tuple[str, str], list[dict]] = {}
                for _ in range(args.rounds):
                    for bundle in bundles:
                        for r in static_part(browser, widgets, args, Path(tmp), bundle, args.steps // args.rounds,
                                             args.trace):
                            pooled.setdefault((r["bundle"], r["view"]), []).append(r)
                results += [pool_static(rs) for rs in pooled.values()]
            if "live" in args.parts:
                results += live_part(browser, frame, args, Path(tmp), bundles)
        finally:
            browser.close()
    if args.baseline:
        for r in ratios(results, "baseline", "current"):
            print(json.dumps(r), flush=True)
    print(json.dumps({"end": machine()}), flush=True)


def pool_static(rounds: list[dict]) -> dict:
    """One static result per bundle and view from its rounds (each round's steps are in `_rows`)."""
    first = rounds[0]
    rows = [row for r in rounds for row in r["_rows"]]
    res = summarize("static", first["view"], rows, {"bundle": first["bundle"], "dom_nodes": first["dom_nodes"],
                                                    "svg_nodes": first["svg_nodes"], "pooled_rounds": len(rounds)})
    traced = [r for r in rounds if "_frame_cpu" in r]
    if traced:
        res.update(merge_traces(traced))
    print(json.dumps(res), flush=True)
    return res


if __name__ == "__main__":
    main()
