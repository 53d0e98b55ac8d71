"""How every view compares two checkpoints: ONE rule, shared by the dashboard, `show`, `to_html`, `spinal report` and
the static delta chart, so they show exactly what `spinal_nb.frame.comparison.compute_comparison` computes.

Checkpoints of equal depth L compare layer by layer. Checkpoints of different depth are never compared by layer
index: they compare on depth (the candidate interpolated onto the reference's depths, as `compare(..., on="depth")`
does), and everything shown from such a comparison carries the label "interpolated on depth". Whatever compare refuses,
the views refuse with its message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpinalError
from ..frame.comparison import Comparison, compute_comparison

INTERPOLATED = "interpolated on depth"


@dataclass
class Pair:
    """One view comparison: `comparison` (None when compare refused, `error` then holds its message), how it is
    `aligned` ("layer" or "depth"), the `label` every view shows with it ("" on equal depth) and the `verdict`.
    `seeds`: the training seeds compared as one (their mean), when the candidate is one of a seed group."""

    reference: str
    candidate: str
    aligned: str
    label: str
    comparison: Comparison | None = None
    verdict: dict[str, Any] | None = None
    error: str | None = None
    seeds: list[str] | None = None


def seed_group(frame, reference: str, candidate: str) -> list[str] | None:
    """The training seeds `candidate` belongs to (TraceFrame.mark_seeds), unless the reference is one of them."""
    for group in frame.seed_groups().values():
        if candidate in group and reference not in group:
            return group
    return None


def compare_pair(frame, reference: str, candidate: str, terminal_depth: float, seeds: bool = True) -> Pair:
    """THE views' comparison of `candidate` against `reference` in `frame` (see the module docstring). A candidate
    that is one of a group of training seeds compares as the seeds' mean, with their spread, like
    `compare(reference, [seeds])` (`seeds=False`: the candidate alone)."""
    la, lb = frame.n_layers(reference), frame.n_layers(candidate)
    aligned = "layer" if la == lb else "depth"
    label = "" if aligned == "layer" else (f"{INTERPOLATED}: {candidate} (L = {lb}) onto the depths of "
                                           f"{reference} (L = {la})")
    group = seed_group(frame, reference, candidate) if seeds and aligned == "layer" else None
    if group is not None:
        label = f"mean of {len(group)} training seeds ({', '.join(group)}), with their seed-to-seed spread"
    try:
        comp = compute_comparison(frame, reference, group or candidate, terminal_depth=terminal_depth, on=aligned)
    except SpinalError as e:
        return Pair(reference, candidate, aligned, label, error=str(e), seeds=group)
    v = comp.verdict(frame.window_means(reference, terminal_depth))
    text = v["text"] if aligned == "layer" else \
        f"{INTERPOLATED[0].upper()}{INTERPOLATED[1:]} (L = {lb} onto L = {la}): {v['text']}"
    return Pair(reference, candidate, aligned, label, comp, {"status": v["status"], "key": v["key"], "text": text},
                seeds=group)


def clean(x: Any) -> Any:
    """JSON-safe copy of a compare summary (numpy scalars -> Python, NaN -> None)."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _short(x: Any) -> Any:
    """Floats to 7 significant digits (relative error ≤ 5e-7; the panel shows 3-4, and rounding never changes a sign):
    the summaries are a sixth of the first payload."""
    if isinstance(x, dict):
        return {k: _short(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_short(v) for v in x]
    return float(f"{x:.7g}") if isinstance(x, float) else x


CURVE = ("depth", "d_contraction", "d_contraction_lo", "d_contraction_hi", "d_transport", "d_transport_lo",
         "d_transport_hi")


# the summary keys the browser reads (the compare panel, the table); the rest stays in Python (`TraceFrame.compare`),
# so the payload does not grow with every statistic the comparison keeps
SHOWN = ("terminal_depth", "window_layers", "paired", "confidence", "comparable", "window_contraction",
         "window_transport", "localization", "onset_layer", "onset_depth")


def summary_of(pair: Pair) -> dict[str, Any]:
    """What the compare panel shows of one pair (a synced trait: JSON only). On depth, the Δ curve travels here, on
    the reference's depths (it belongs to no row of the candidate's own layers)."""
    if pair.comparison is None:
        return {"error": pair.error, "aligned": pair.aligned, "label": pair.label}
    out = clean({k: v for k, v in pair.comparison.summary.items() if k in SHOWN})
    out = _short(out)
    # the terminal window is a run of consecutive layers (depth ≥ terminal_depth): its first and last say it all
    if out.get("window_layers"):
        out["window_layers"] = [out["window_layers"][0], out["window_layers"][-1]]
    # the verdict's CSS key and sentence are what the panel shows (its label stays in Python: Pair.verdict)
    out.update({"aligned": pair.aligned, "verdict": {k: pair.verdict[k] for k in ("key", "text")}})
    if pair.label:
        out["label"] = pair.label
    if pair.aligned == "depth" or pair.seeds:  # a curve of its own: no row of the candidate holds it
        layers = pair.comparison.layers
        out["curve"] = {c: clean([None if v is None else float(v) for v in layers.get_column(c).to_list()])
                        for c in CURVE}
    return out
