"""What each part of a Dashboard scrub step costs in the browser: the frame work of a step with one part switched off.

widget_redraw.py times a whole step; this one splits it. It copies js/src, switches parts of the step off in the copy
(a `window.__spnSkip` flag read by the step's code), bundles it once, and traces scrub steps in one page per part
(static export and live JupyterLab, the same 20 checkpoints x 64 layers) with each variant in turn, alternating in
rounds. The measure is widget_redraw's `frame_cpu_ms`: the renderer main thread's CPU time from the task that handles
the keydown to the end of the first Commit after it (Chrome trace, devtools.timeline). Variants:

    all       everything on (the shipped behaviour, from the patched bundle)
    none      only the slider, readouts and badge (table, spectrum, lens, depth-path rings, compare rules off)
    table     only the slider and the table's rows (what the table alone adds to `none`)
    no-table, no-spectrum, no-lens, no-rings, no-summary: all but that part
    all-flat, none-flat: all / none with spinal.css's paint layers switched off (the drawing's own compositor layer,
              the boxes' isolation), to measure what they save
    all-nointervals, all-nocompanions: all with the table's interval texts, or its three lens-metric columns, hidden
    sheets-stack, sheets-stack-layers, sheets-thead: all with the table's sheets shown another way (see STACK_CSS)
    sheets-opacity: all with the sheets swapped by opacity alone (their stacking order fixed)
    sheets-visibility: all with the hidden sheet also `visibility: hidden` (VISIBILITY_CSS)
    contain-texts: all with the texts a step changes outside the table made relayout boundaries (CONTAIN_CSS)

The page layout and the trace are widget_redraw's (its PAGE_JS, scrub, settle, live_page). The switch is for
measuring only: it exists in the temporary copy, never in the shipped bundles.

    OMP_NUM_THREADS=1 python benchmarks/redraw_parts.py --rounds 3 --frame-cache /tmp/frame.parquet
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import widget_redraw as wr
from _bench import machine, pin_threads

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "js"

# (file, anchor, replacement): each anchor must be found once, or the step's code has changed and the split is stale
PATCHES = [
    ("views/scrubber.js", "    fillTable(layer);\n    drawSpectrum(layer, sel);\n    drawLens(layer);\n  }",
     "    const skip = window.__spnSkip || {};\n    if (!skip.table) fillTable(layer);\n"
     "    if (!skip.spectrum) drawSpectrum(layer, sel);\n    if (!skip.lens) drawLens(layer);\n  }"),
    ("views/scrubber.js", "    setText(readout, `${layer} / ${L}`);",
     "    if ((window.__spnSkip || {}).head) { panel.dataset.layer = layer; fillTable(layer); return; }\n"
     "    setText(readout, `${layer} / ${L}`);"),
    ("views/depth_path.js", "  function restyle() {\n    if (!scales) return;",
     "  function restyle() {\n    if (!scales) return;\n    if ((window.__spnSkip || {}).rings) return;"),
    ("views/summary.js", "function moveRules() {",
     "function moveRules() {\n    if ((window.__spnSkip || {}).summary) return;"),
]
VARIANTS = {
    "all": {},
    "none": {"table": 1, "spectrum": 1, "lens": 1, "rings": 1, "summary": 1},
    "table": {"spectrum": 1, "lens": 1, "rings": 1, "summary": 1, "head": 1},
    "no-table": {"table": 1},
    "no-spectrum": {"spectrum": 1},
    "no-lens": {"lens": 1},
    "no-rings": {"rings": 1},
    "no-summary": {"summary": 1},
}
# the same steps with the paint layers of spinal.css switched off (injected CSS): what they save
FLAT_CSS = (".spinal-nb .spn-plot > .spn-svg { will-change: auto !important }\n"
            ".spinal-nb .spn-scrub-head, .spinal-nb .spn-table-wrap, .spinal-nb .spn-lens, .spinal-nb .spn-spectrum, "
            ".spinal-nb .spn-summary { isolation: auto !important }")
# the table without its interval texts, or without the three lens-metric columns (hidden by injected CSS): what a
# table that changed fewer texts per step would save (a measurement, not a design)
NO_INTERVALS_CSS = ".spinal-nb .spn-table td.spn-num small { display: none !important }"
NO_COMPANIONS_CSS = ", ".join(f".spinal-nb .spn-table tr > :nth-child({i})" for i in (6, 7, 8)) + " { display: none }"
# the table's sheets (scrubber.js) shown by stacking order and opacity instead of a transform each: as a paint layer
# each (stack), or a compositor layer each (stack-layers); and the shipped sheets with one sticky header row per sheet
# instead of a sticky header cell per column (thead)
STACK_CSS = (".spinal-nb .spn-sheet { transform: none !important; will-change: auto; position: relative; z-index: 0; "
             "opacity: 0 }\n.spinal-nb .spn-sheet.spn-table { z-index: 1; opacity: 1 }")
STACK_LAYERS_CSS = STACK_CSS + "\n.spinal-nb .spn-sheet { will-change: opacity !important }"
THEAD_CSS = (".spinal-nb .spn-sheet th { position: static !important }\n"
             ".spinal-nb .spn-sheet thead { position: sticky; top: 0; z-index: 1 }")
UP_CSS = (".spinal-nb .spn-sheet { transform: translateY(-150%) !important }\n"
          ".spinal-nb .spn-sheet.spn-table { transform: none !important }")
# the sheets swapped by opacity alone, their stacking order fixed (the later on top, transparent when hidden; hit testing
# would then need the shown one raised under a pointer): does keeping the stacking order save the page's re-layerization?
OPACITY_CSS = ".spinal-nb .spn-sheet, .spinal-nb .spn-sheet.spn-table { z-index: 0 !important }"
# the hidden sheet `visibility: hidden` (its texts then not found by the page's find, Ctrl+F, which finds text of
# opacity 0): visibility changes paint, not layout, so the sheet is still laid out ahead
VISIBILITY_CSS = (".spinal-nb .spn-sheet { visibility: hidden }\n"
                  ".spinal-nb .spn-sheet.spn-table { visibility: visible }")
# the texts a step changes outside the table, each made a relayout boundary (size and layout containment, a fixed
# height): does their layout stay local instead of walking up to the page's root? (a probe, not a design: the fixed
# sizes would clip a longer text)
CONTAIN_CSS = (".spinal-nb .spn-readout, .spinal-nb .spn-depth-out { display: inline-block; contain: strict; "
               "height: 1.45em }\n.spinal-nb .spn-subtitle { contain: strict; height: 1.4em }\n"
               ".spinal-nb .spn-lens-row > * { contain: strict; height: 1.4em }")
CSS_VARIANTS = {"all-flat": ("all", FLAT_CSS), "none-flat": ("none", FLAT_CSS),
                "all-nointervals": ("all", NO_INTERVALS_CSS), "all-nocompanions": ("all", NO_COMPANIONS_CSS),
                "sheets-visibility": ("all", VISIBILITY_CSS),
                "sheets-stack": ("all", STACK_CSS), "sheets-stack-layers": ("all", STACK_LAYERS_CSS),
                "sheets-thead": ("all", THEAD_CSS), "sheets-up": ("all", UP_CSS),
                "sheets-stack-layers-thead": ("all", STACK_LAYERS_CSS + "\n" + THEAD_CSS),
                "sheets-opacity": ("all", OPACITY_CSS), "contain-texts": ("all", CONTAIN_CSS)}
SET_CSS = """(css) => { let el = document.getElementById('spn-parts-css');
  if (!el) { el = document.createElement('style'); el.id = 'spn-parts-css'; document.head.append(el); }
  el.textContent = css; }"""


def patched_bundle(out: Path) -> Path:
    """js/src with the switches, bundled (minified, as shipped) into out/esm: dashboard.js and spinal.css."""
    src = out / "src"
    shutil.copytree(JS / "src", src)
    for rel, anchor, repl in PATCHES:
        path = src / rel
        text = path.read_text(encoding="utf-8")
        if text.count(anchor) != 1:
            raise SystemExit(f"{rel}: the anchor {anchor[:60]!r}… is not there once: update PATCHES")
        path.write_text(text.replace(anchor, repl), encoding="utf-8")
    esm = out / "esm"
    subprocess.run([str(JS / "node_modules/.bin/esbuild"), str(src / "widgets/dashboard.js"), str(src / "spinal.css"),
                    "--bundle", "--format=esm", f"--outbase={src}", f"--outdir={esm}", "--entry-names=[name]",
                    "--minify", "--log-level=warning"], check=True)
    return esm


def frame_cpu(browser, page, live: bool, n: int, tmp: Path) -> tuple[list[float], dict[str, float]]:
    """n traced steps: the frame CPU of each (widget_redraw.trace_steps' measure), and its split by kind of work."""
    res = wr.trace_steps(page, browser, tmp, "dashboard", wr.dom_layer(page), 64, ("ArrowLeft", "ArrowRight"), n, live)
    return res["_frame_cpu"], res["frame_cpu_by_kind_ms_per_step"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12, help="traced steps per variant, part and round")
    ap.add_argument("--parts", nargs="+", default=["static", "live"], choices=["static", "live"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=[*VARIANTS, *CSS_VARIANTS],
                    help="all-flat / none-flat: all / none with the paint layers off; all-nointervals / "
                         "all-nocompanions: all with the table's interval texts / lens-metric columns hidden")
    ap.add_argument("--frame-cache", help="Parquet file for the synthetic frame (as widget_redraw.py)")
    args = ap.parse_args()
    pin_threads(1)
    from playwright.sync_api import sync_playwright

    from spinal_nb.widgets import show

    print(json.dumps({"start": machine(), "rounds": args.rounds, "steps": args.steps}), flush=True)
    frame = wr.load_frame(Path(args.frame_cache) if args.frame_cache else None)
    with tempfile.TemporaryDirectory(prefix="spinal-parts-") as tmp, sync_playwright() as p:
        tmp = Path(tmp)
        esm = patched_bundle(tmp)
        parquet = tmp / "frame.parquet"
        frame.to_parquet(parquet)
        browser = p.chromium.launch(executable_path=wr.CHROMIUM, headless=True, args=wr.ARGS)
        lab = None
        pages = {}
        try:
            if "static" in args.parts:
                widget = show(frame)
                wr.use_bundle(widget, "dashboard", str(esm))
                widget.to_html(tmp / "dashboard.html")
                page = browser.new_page(viewport=wr.VIEWPORT)
                page.goto((tmp / "dashboard.html").as_uri())
                page.wait_for_selector(".spinal-nb .spn-series", timeout=60_000)
                page.evaluate(wr.PAGE_JS)
                wr.settle(page)
                pages["static"] = page
            if "live" in args.parts:
                lab = wr.start_lab(tmp / "lab")
                src = (f"import spinal_nb\nfrom spinal_nb.widgets import show\n"
                       f"dash = show(spinal_nb.read_parquet({str(parquet)!r}), title='redraw parts')\n"
                       f"dash._esm = open({str(esm / 'dashboard.js')!r}).read()\n"
                       f"dash._css = open({str(esm / 'spinal.css')!r}).read()\ndash")
                pages["live"], _, _ = wr.live_page(browser, lab, "parts.ipynb", src, False)
            for part, page in pages.items():
                page.locator(".spinal-nb").first.focus()
                wr.scrub(page, wr.dom_layer(page), 64, 5, 5, part == "live")  # warm-up
            res: dict[tuple[str, str], list[float]] = {}
            kinds: dict[tuple[str, str], list[dict[str, float]]] = {}
            for _ in range(args.rounds):
                for part, page in pages.items():
                    for v in args.variants:
                        base, css = CSS_VARIANTS.get(v, (v, ""))
                        page.evaluate(SET_CSS, css)
                        page.evaluate("(s) => { window.__spnSkip = s; }", VARIANTS[base])
                        page.locator(".spinal-nb").first.focus()
                        # untraced steps first: the first step after a switch catches up on what the previous
                        # variant left undrawn (every table row, the spectrum's axes: up to 300 ms, once)
                        wr.scrub(page, wr.dom_layer(page), 64, 0, 3, part == "live")
                        xs, by_kind = frame_cpu(browser, page, part == "live", args.steps, tmp)
                        res.setdefault((part, v), []).extend(xs)
                        kinds.setdefault((part, v), []).append(by_kind)
            for (part, v), xs in res.items():
                ks = kinds[(part, v)]
                mean_kind = {k: round(sum(d.get(k, 0) for d in ks) / len(ks), 2) for k in ks[0]}
                print(json.dumps({"part": part, "variant": v, "frame_cpu_ms": wr.stats(xs),
                                  "by_kind_ms_per_step": mean_kind,
                                  "per_step": [round(x, 1) for x in xs],
                                  "load_avg": [round(x, 2) for x in os.getloadavg()]}), flush=True)
            for part in pages:
                med = {v: statistics.median(res[(part, v)]) for v in args.variants}
                if "all" in med:
                    print(json.dumps({"part": part, "median_ms": {k: round(x, 2) for k, x in med.items()},
                                      "cost_of_each_part_ms": {v[3:]: round(med["all"] - x, 2) for v, x in med.items()
                                                               if v.startswith("no-")}}), flush=True)
        finally:
            if lab:
                wr.lab_server.stop_lab(lab.proc, lab.log)
            browser.close()
    print(json.dumps({"end": machine()}), flush=True)


if __name__ == "__main__":
    main()
