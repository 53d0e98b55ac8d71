"""A held arrow key on the Dashboard: layer steps at the key-repeat rate, static export and live JupyterLab.

widget_redraw.py times one step at a time, each waiting for the last to be drawn and answered. A held key does not
wait: the next step comes 33 ms later (a common key-repeat rate, 30 Hz) whether the last one is done or not, and in
JupyterLab each step's message to the kernel also brings the kernel's busy and idle status messages and a reply. This
holds ←/→ for `--steps` keydowns `--interval-ms` apart (Playwright `keyboard.down` on a held key: auto-repeat
keydowns, trusted input through Chromium's input path; each returns once the page has handled it, so the rate a
page sustains shows as `keys_per_s`) on the 20-checkpoint x 64-layer frame of widget_redraw.py, and reports, from a Chrome trace of the burst
(the renderer's main thread, devtools.timeline):

  - keys_per_s:      the key rate achieved (below 1000 / interval when the page could not keep up)
  - busy:            the share of the burst's wall time the main thread ran tasks (near 1: saturated)
  - frames_per_s:    Commits (frames produced) per second during the burst
  - key_to_frame_ms: from a keydown's dispatch to the end of the first Commit after it (median, p95, max)
  - messages:        websocket frames the page sent to the kernel carrying a comm message (live), and per step
  - lost_steps:      how far the layer shown at the end is from the layer the keys lead to (0: no key lost)
  - settle_ms:       from the last key press to the widget showing the last layer with its spectrum and lens, and
                     (live) the kernel's reply for it taken in (the scrubber's data-detail)

    OMP_NUM_THREADS=1 python benchmarks/widget_held_key.py --frame-cache /tmp/frame.parquet

`--baseline REV` runs the same with spinal-nb as it was at REV too (its Python and bundles, as widget_redraw.py),
alternating in `--rounds` rounds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import widget_redraw as wr
from _bench import machine, pin_threads

ROOT = Path(__file__).resolve().parents[1]

# the widget at rest on the layer it shows, drawn with its detail (spectrum title and lens, nothing pending) and, live,
# the kernel's reply for it; read after a frame, so that the last key's redraw has run. Not the planned layer: a lost
# step (the page's layer put back by an update from the kernel, as before 3 Dec) would wait forever; it is counted.
SETTLED = """(live) => { const root = document.querySelector('.spinal-nb');
  const sc = root.querySelector('.spn-scrubber'); const h4 = root.querySelector('.spn-spectrum h4');
  const k = sc.dataset.layer;
  return !!h4 && h4.textContent === 'Spectrum at layer ' + k
    && !root.querySelector('.spn-pending') && (!live || sc.dataset.detail === k); }"""


def burst(page, browser, tmp: Path, live: bool, steps: int, interval: float, sent: list, label: str) -> dict:
    """`steps` presses `interval` s apart from the widget's current layer (leftwards, turning at 0), traced."""
    start = wr.dom_layer(page)
    plan = list(wr.keys_and_layers(start, 64, steps))
    path = tmp / f"held-{label}-{'live' if live else 'static'}-{time.monotonic_ns()}.json"
    sent_before = len(sent)
    browser.start_tracing(page=page, path=str(path), screenshots=False)
    # the renderer takes a while to start tracing (≈ 1.2 s in the JupyterLab page): keys pressed meanwhile waited
    # behind it, then came at once (live "keys_per_s" over 60, one key-to-frame of 1.2 s); press once it draws again
    page.evaluate("() => window.__rbAfterPaint()")
    t0 = time.perf_counter()
    held = None
    for i, (key, _) in enumerate(plan):
        if held and key != held:  # turned round at an end: release the one key, hold the other
            page.keyboard.up(held)
        page.keyboard.down(key)  # again while held: an auto-repeat keydown, as a held key sends
        held = key
        wait = t0 + (i + 1) * interval - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    t_last = time.perf_counter()
    page.keyboard.up(held)
    page.evaluate("() => window.__rbAfterPaint()")
    page.wait_for_function(SETTLED, arg=live, timeout=120_000)
    lost = abs(wr.dom_layer(page) - plan[-1][1])
    settle = (time.perf_counter() - t_last) * 1000 + interval * 1000  # from the last press (its wait included)
    browser.stop_tracing()
    _, on_main = wr.read_trace(path)
    keys = sorted(e["ts"] for e in on_main if e["name"] == "EventDispatch"
                  and (e.get("args", {}).get("data") or {}).get("type") == "keydown")
    if len(keys) < steps:
        raise SystemExit(f"{len(keys)} keydowns in the trace, {steps} pressed")
    lo, hi = keys[0], keys[-1] + interval * 1e6
    tasks = [e for e in on_main if e["name"] == "RunTask" and lo <= e["ts"] < hi]
    busy = sum(min(e["ts"] + e.get("dur", 0), hi) - e["ts"] for e in tasks) / (hi - lo)
    commits = sorted(e["ts"] + e.get("dur", 0) for e in on_main if e["name"] == "Commit")
    in_burst = [c for c in commits if lo <= c < hi]
    lat = []
    for k in keys:
        end = next((c for c in commits if c > k), None)
        if end is not None:
            lat.append((end - k) / 1000)
    return {"keys_per_s": round(len(keys) / ((keys[-1] - keys[0]) / 1e6) if len(keys) > 1 else 0, 1),
            "busy": round(busy, 3), "frames_per_s": round(len(in_burst) / ((hi - lo) / 1e6), 1),
            "key_to_frame_ms": wr.stats(lat), "settle_ms": round(settle, 1), "lost_steps": lost,
            "messages": len(sent) - sent_before,
            "messages_per_step": round((len(sent) - sent_before) / steps, 2)}


def live_page(browser, lab, name: str, src: str, sent: list):
    """The dashboard in a notebook (as widget_redraw.live_page), its comm messages to the kernel counted in `sent`."""
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c0", "metadata": {}, "outputs": [],
                     "source": src}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (lab.work / name).write_text(json.dumps(nb))
    session = wr.lab_server.start_session(lab, name)
    page = browser.new_page(viewport=wr.VIEWPORT)

    def on_ws(ws):
        def frame(payload):
            data = payload.encode() if isinstance(payload, str) else payload
            if b"comm_msg" in data:
                sent.append(time.perf_counter())
        ws.on("framesent", frame)

    page.on("websocket", on_ws)
    wr.lab_server.open_notebook(page, lab, name)
    wr.lab_server.run_cell(page, 0)
    page.wait_for_selector(".spinal-nb .spn-spectrum svg", state="attached", timeout=120_000)
    page.evaluate(wr.PAGE_JS)
    wr.settle(page)
    return page, session


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--interval-ms", type=float, default=33.3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parts", nargs="+", default=["static", "live"], choices=["static", "live"])
    ap.add_argument("--baseline", help="a git revision to compare with (its Python and bundles)")
    ap.add_argument("--frame-cache", help="Parquet file for the synthetic frame (as widget_redraw.py)")
    args = ap.parse_args()
    pin_threads(1)
    from playwright.sync_api import sync_playwright

    current = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False).stdout.strip()
    print(json.dumps({"start": machine(), "steps": args.steps, "interval_ms": args.interval_ms,
                      "rounds": args.rounds, "current": current, "baseline": args.baseline}), flush=True)
    frame = wr.load_frame(Path(args.frame_cache) if args.frame_cache else None)
    interval = args.interval_ms / 1000
    with tempfile.TemporaryDirectory(prefix="spinal-held-") as tmp, sync_playwright() as p:
        tmp = Path(tmp)
        parquet = tmp / "frame.parquet"
        frame.to_parquet(parquet)
        bundles = ([{"label": "baseline", "src": wr.baseline_tree(args.baseline, tmp)}] if args.baseline else []) \
            + [{"label": "current", "src": None}]
        browser = p.chromium.launch(executable_path=wr.CHROMIUM, headless=True, args=wr.ARGS)
        lab = wr.start_lab(tmp / "lab") if "live" in args.parts else None
        results: dict[tuple[str, str], list[dict]] = {}
        try:
            from spinal_nb.widgets import show
            widget = show(frame)
            for rnd in range(args.rounds):
                for b in bundles:
                    if "static" in args.parts:
                        html = tmp / f"held-{b['label']}.html"
                        if not html.exists():
                            wr.export_page("dashboard", widget, b, parquet, html)
                        page = browser.new_page(viewport=wr.VIEWPORT)
                        page.goto(html.as_uri())
                        page.wait_for_selector(".spinal-nb .spn-series", timeout=60_000)
                        page.evaluate(wr.PAGE_JS)
                        wr.settle(page)
                        page.locator(".spinal-nb").first.focus()
                        r = burst(page, browser, tmp, False, args.steps, interval, [], b["label"])
                        results.setdefault(("static", b["label"]), []).append(r)
                        print(json.dumps({"part": "static", "bundle": b["label"], "round": rnd, **r}), flush=True)
                        page.close()
                    if "live" in args.parts:
                        sent: list = []
                        src = (f"import sys\nsys.path.insert(0, {str(b['src'])!r})\n" if b.get("src") else "") + (
                            "import spinal_nb\nfrom spinal_nb.widgets import show\n"
                            f"show(spinal_nb.read_parquet({str(parquet)!r}), title='held key')")
                        page, session = live_page(browser, lab, f"held-{b['label']}-{rnd}.ipynb", src, sent)
                        page.locator(".spinal-nb").first.focus()
                        wr.scrub(page, wr.dom_layer(page), 64, 3, 0, True)  # warm-up: one step at a time
                        r = burst(page, browser, tmp, True, args.steps, interval, sent, b["label"])
                        results.setdefault(("live", b["label"]), []).append(r)
                        print(json.dumps({"part": "live", "bundle": b["label"], "round": rnd, **r}), flush=True)
                        page.close()
                        wr.lab_server.end_session(lab, session)
        finally:
            if lab:
                wr.lab_server.stop_lab(lab.proc, lab.log)
            browser.close()
    for (part, label), rs in results.items():
        print(json.dumps({"summary": part, "bundle": label, "rounds": len(rs),
                          "median_of_rounds": {k: round(statistics.median(r[k] for r in rs), 3) for k in ("keys_per_s", "busy", "frames_per_s", "settle_ms",
                                                                     "messages_per_step")},
                          "key_to_frame_median_ms": round(statistics.median(r["key_to_frame_ms"]["median"]
                                                                            for r in rs), 2),
                          "key_to_frame_p95_ms": round(statistics.median(r["key_to_frame_ms"]["p95"] for r in rs), 2),
                          "lost_steps": [r["lost_steps"] for r in rs]}),
              flush=True)
    print(json.dumps({"end": machine()}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
