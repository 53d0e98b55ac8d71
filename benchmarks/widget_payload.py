"""Size of what the widgets send to the browser for 20 checkpoints x 64 layers, and the Python side of a scrub.

Frames are synthetic (spinal_nb.synthetic, real accumulators) with d = 576 (SmolLM2's width, so each row keeps a
575-value spectrum) and a lens table for 2 prompts. Sizes come from the widget's own `payload_bytes`; a scrub is
one `widget.layer = k` assignment (the observer rebuilds the selected layer's spectra and lens buffers).
The browser's redraw time per scrub: benchmarks/widget_redraw.py (Playwright, headless Chromium).

    python benchmarks/widget_payload.py --checkpoints 20 --layers 64
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import polars as pl
from _bench import machine, pin_threads

from spinal_nb.frame import LENS_SCHEMA, TraceFrame
from spinal_nb.synthetic import synthetic_trace


def lens_table(name: str, layers: int, prompts: int = 2, positions: int = 12, k: int = 5) -> pl.DataFrame:
    rows = [(name, p, f"prompt {p}", pos, f"tok{pos}", layer, r + 1, 100 + r, f"lens{(pos + layer + r) % 97}",
             1.0 / (r + 2)) for p in range(prompts) for pos in range(positions) for layer in range(layers + 1)
            for r in range(k)]
    return pl.DataFrame(rows, schema=LENS_SCHEMA, orient="row")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=20)
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--d", type=int, default=576)
    args = ap.parse_args()
    pin_threads(1)
    from spinal_nb.widgets import show

    t = time.perf_counter()
    base = synthetic_trace("ckpt00", n_layers=args.layers, d=args.d, vocab=64, n_prompts=30, tokens_per_prompt=24)
    frames = [base]
    for i in range(1, args.checkpoints):  # the same spectra under other names: sizes do not depend on values
        frames.append(base.rename({"ckpt00": f"ckpt{i:02d}"}))
    frame = TraceFrame.concat(frames)
    frame = TraceFrame(frame.data, frame.meta, lens_table("ckpt00", args.layers))
    build = time.perf_counter() - t
    parquet_bytes = len(frame.to_parquet("/tmp/_spinal_payload.parquet").read_bytes())

    t = time.perf_counter()
    w = show(frame)
    init = time.perf_counter() - t
    sizes = w.payload_bytes
    scrub = []
    for k in list(range(args.layers + 1)) * 2:
        t = time.perf_counter()
        w.layer = k
        scrub.append(time.perf_counter() - t)
    step_bytes = {n: len(getattr(w, n)) for n in ("_spectra", "_lens")}
    step_json = {n: len(json.dumps(getattr(w, n), separators=(",", ":"))) for n in ("_spectra_header", "_lens_header")}
    html_bytes = len(w.to_html("/tmp/_spinal_payload.html").read_bytes())
    out = {"machine": machine(), "rows": frame.data.height, "frame_build_s": round(build, 1),
           "parquet_bytes": parquet_bytes, "static_html_bytes": html_bytes, "widget_init_s": round(init, 3), "payload_bytes": sizes,
           "payload_total_kB": round(sum(sizes.values()) / 1024, 1),
           "scrub_python_ms": {"median": round(1e3 * statistics.median(scrub), 2), "max": round(1e3 * max(scrub), 2)},
           "scrub_message_bytes": {**step_bytes, **step_json}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
