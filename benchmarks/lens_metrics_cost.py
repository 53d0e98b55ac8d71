"""What the companion lens metrics (kl_to_final, top1_agreement: SpinalParams.lens_metrics) add to a trace.

Two measurements, each a ratio taken in one run with the two settings interleaved (the order alternates per round):
- the whole trace: `trace(..., lens_metrics=True)` vs `lens_metrics=False` on the same real prompts;
- the lens alone: `LensEngine.reduce_all` vs `LensEngine.reduce` on the same captured rows (no forward pass, no
  eigen-solves: the part of the trace the metrics touch, where their share is largest).
effective_rank is not measured: it is computed from spectra finalize already has (a few microseconds per layer).

    OMP_NUM_THREADS=1 python benchmarks/lens_metrics_cost.py --model smollm2 --prompts 16 --repeats 4 --lens-repeats 10

Each call is timed twice: wall clock, and this process's CPU time (time.process_time), which other processes on a
shared machine inflate far less (they take cores away, which only adds wall time). The minimum over rounds is the
number to read (load only ever adds time); the median is shown.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _bench import machine, spinal, start_real


def timed(fn, *a, **kw) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn(*a, **kw)
    return time.perf_counter() - w, time.process_time() - c


def captured_rows(model, tok, prompts):
    import nnsight

    from spinal_nb.capture.architectures import resolve_architecture
    from spinal_nb.capture.batch import capture_local
    from spinal_nb.capture.load import forward_kwargs
    from spinal_nb.capture.positions import make_batch

    arch = resolve_architecture(model)
    ids = [tok(t)["input_ids"] for t in prompts]
    batch = make_batch(ids, list(range(len(ids))), pad_id=tok.pad_token_id or 0, skip_first=1, stride=1, n_groups=10)
    with torch.no_grad():
        rows = capture_local(nnsight.NNsight(model), arch, batch, forward_kwargs(model), torch.device("cpu"))
    return arch, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=4, help="rounds of the whole trace (each: off and on)")
    ap.add_argument("--lens-repeats", type=int, default=10, help="rounds of the lens alone")
    args = ap.parse_args()
    from spinal_nb.capture.lens import LensEngine

    model, tok, prompts = start_real(args.model, args.prompts)
    arch, rows = captured_rows(model, tok, prompts[:8])
    engine = LensEngine(model, arch)
    keys = [f"{what} {clock}" for what in ("trace off", "trace on", "lens reduce", "lens reduce_all")
            for clock in ("wall", "cpu")]
    times: dict[str, list[float]] = {k: [] for k in keys}

    def keep(what, dt):
        times[f"{what} wall"].append(dt[0])
        times[f"{what} cpu"].append(dt[1])
    with torch.no_grad():
        for r in range(args.lens_repeats):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                keep("lens reduce_all" if on else "lens reduce", timed(engine.reduce_all if on else engine.reduce, rows))
        for r in range(args.repeats):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                keep("trace on" if on else "trace off", timed(spinal, model, tok, prompts, lens_metrics=on))
            print(json.dumps({"round": r, **{k: round(v[-1], 3) for k, v in times.items()},
                              "load_avg": machine()["load_avg"]}), flush=True)
    n_rows = rows[0].shape[0]
    print(f"\nmodel {args.model}: trace of {args.prompts} prompts; lens alone on {n_rows} positions x {len(rows)} "
          f"layers; {args.repeats} trace rounds, {args.lens_repeats} lens rounds; load avg at end "
          f"{machine()['load_avg']}\n")
    print("| what | clock | off: min / median s | on: min / median s | on / off (min) | on / off (median) |\n"
          "|---|---|---|---|---|---|")
    for what, off, on in (("whole trace", "trace off", "trace on"), ("lens alone", "lens reduce", "lens reduce_all")):
        for clock in ("cpu", "wall"):
            a, b = times[f"{off} {clock}"], times[f"{on} {clock}"]
            print(f"| {what} | {clock} | {min(a):.3f} / {statistics.median(a):.3f} | {min(b):.3f} / "
                  f"{statistics.median(b):.3f} | {min(b) / min(a):.3f} | {statistics.median(b) / statistics.median(a):.3f} |")


if __name__ == "__main__":
    main()
