"""TrainingView: a training trace (one checkpoint per evaluated step) as a layer × step heatmap, linked to the depth path.

Usage (needs a training trace on disk and a notebook: an illustration, not a doctest)::

    from spinal_nb.widgets import TrainingView
    view = TrainingView(read_training_trace("run/spinal-trace"))
    view
    view.step, view.layer = 600, 24        # Python moves the browser; clicks and drags move Python
    # live, in the notebook that trains:
    cb = SpinalCallback(probes, every_n_steps=50, on_evaluation=view.update)
    # or, for a run writing to a folder from anywhere (another process, another machine's mount):
    watcher = view.watch("run/spinal-trace", interval=2.0)    # ... watcher.stop()
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import traitlets

from ..errors import InputError
from ..frame import paired
from ..monitor.live import TraceWatcher
from ..monitor.storage import read_training_trace
from ..scores import jackknife_interval
from ._base import STATIC, TraceWidget, as_traceframe
from ._payload import compare_payload, frame_payload, intervals, lens_detail, pack, unpack

HEATS = ("contraction", "transport", "entropy", "effective_rank", "kl_to_final", "top1_agreement")
PAIRED_HERE = HEATS[2:]  # Δ computed here (α and 𝓛 come from compare_payload)


def _steps_by_checkpoint(frame) -> dict[str, int]:
    """{checkpoint: step}; InputError when a checkpoint has no step or more than one."""
    per = frame.data.group_by("checkpoint", maintain_order=True).agg(
        pl.col("step").drop_nulls().unique().alias("steps"), pl.col("step").null_count().alias("nulls"))
    out, bad = {}, []
    for name, steps, nulls in per.iter_rows():
        if nulls or len(steps) != 1:
            bad.append(name)
        else:
            out[name] = int(steps[0])
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5]) + (" …" if len(bad) > 5 else "")
        raise InputError(f"TrainingView needs a training trace: every checkpoint must carry one training `step` "
                         f"(SpinalCallback / read_training_trace set it); {shown} do(es) not. For other traces use "
                         "spinal_nb.widgets.show(frame).")
    if len(set(out.values())) != len(out):
        raise InputError("TrainingView: two checkpoints share one training step; give each evaluation its own step.")
    return out


def _alerts_of(frame) -> dict[str, list]:
    """Alert steps and messages recorded by the monitor (meta["monitor"]): the event log's messages when present."""
    mon = frame.meta.get("monitor") or {}
    found: dict[int, str] = {}
    for e in mon.get("events") or []:
        if e.get("event") == "alert" and e.get("step") is not None:
            found[int(e["step"])] = str(e.get("message") or f"alert at step {e['step']}")
    for a in mon.get("alerts") or []:
        if a.get("step") is not None:
            found.setdefault(int(a["step"]), str(a.get("message") or f"SPINAL alert at step {a['step']}"))
    steps = sorted(found)
    return {"steps": steps, "messages": [found[s] for s in steps]}


def score_deltas(frame, reference: str, score: str) -> dict[str, np.ndarray]:
    """d_<score> (+ _lo, _hi) of every row against the reference checkpoint at the same layer (entropy, companions).

    Paired delete-a-group jackknife on the replicate differences (as `TraceFrame.compare` does for α and 𝓛) when
    both checkpoints pair (spinal_nb.frame.paired: same prompts, same number of groups); the value alone otherwise.
    """
    df = frame.data
    n = df.height
    out = {f"d_{score}{k}": np.full(n, np.nan) for k in ("", "_lo", "_hi")}
    conf = (frame.params.confidence if frame.params is not None else 0.95)
    ref = df.filter(df.get_column("checkpoint") == reference)
    ref_at = {int(layer): (v, jk) for layer, v, jk in zip(ref.get_column("layer").to_list(),
                                                          ref.get_column(score).to_list(),
                                                          ref.get_column(f"{score}_jk").to_list(), strict=True)}
    info = frame.meta.get("checkpoints", {})
    ref_info = info.get(reference, {})

    def params_of(name: str) -> dict[str, Any] | None:
        return info.get(name, {}).get("params", frame.meta.get("params"))
    for i, (c, layer, v, jk) in enumerate(zip(df.get_column("checkpoint").to_list(), df.get_column("layer").to_list(),
                                              df.get_column(score).to_list(),
                                              df.get_column(f"{score}_jk").to_list(), strict=True)):
        if c == reference or layer not in ref_at or v is None or ref_at[layer][0] is None:
            continue
        rv, rjk = ref_at[layer]
        d = float(v) - float(rv)
        out[f"d_{score}"][i] = d
        if paired(ref_info, info.get(c, {}), params_of(reference), params_of(c)) and jk and rjk and len(jk) == len(rjk) and None not in jk and None not in rjk:
            lo, hi = jackknife_interval(d, [a - b for a, b in zip(jk, rjk, strict=True)], conf)
            if lo is not None:
                out[f"d_{score}_lo"][i], out[f"d_{score}_hi"][i] = lo, hi
    return out


class TrainingView(TraceWidget):
    """A training trace: layer × training-step heatmap of α, 𝓛 or entropy (`heat`), as values or as the paired
    difference from the `reference` step (`delta=True`, dots where the interval excludes 0), with step and layer
    scrubbers, the selected layer's score over training and the depth path of the selected step, all linked.

    The selection is one (step, layer) state, synced with Python: `view.step` / `view.checkpoint` (the same choice:
    the evaluation at that step) and `view.layer`. Clicking or dragging on the heatmap, the sliders, ←/→ (steps) and
    ↑/↓ (layers) set them; setting them in Python moves the browser. The depth path highlights the selected step and
    rings the selected layer. Alerts recorded by the monitor are marked on their steps.

    Live refresh: `view.update(frame)` replaces the data in place (the selection follows the newest step when it was
    on the newest step); pass `on_evaluation=view.update` to `SpinalCallback` when training in the same notebook, or
    `view.watch(folder)` to poll a training-trace folder on a background thread.

    Every checkpoint must have a `step` (frames from `SpinalCallback` / `read_training_trace` do). Checkpoint names
    and alert messages are shown as text. `to_html(path)` writes a self-contained offline copy.
    """

    _esm = STATIC / "training.js"

    heat = traitlets.Unicode("contraction").tag(sync=True)
    delta = traitlets.Bool(False).tag(sync=True)
    step = traitlets.Int(None, allow_none=True).tag(sync=True)
    _alerts = traitlets.Dict().tag(sync=True)
    _status = traitlets.Dict().tag(sync=True)

    _extra_state = ("heat", "delta", "step", "_alerts", "_status")

    def __init__(self, traceframe: Any, *, step: int | None = None, heat: str = "contraction", delta: bool = False,
                 layer: int | None = None, reference: str | None = None, mode: str = "contraction",
                 terminal_depth: float = 0.7, height: int = 380, title: str = "", **kwargs: Any) -> None:
        frame = as_traceframe(traceframe)
        steps = _steps_by_checkpoint(frame)
        by_step = sorted(steps, key=steps.get)
        self._lock = threading.RLock()
        self._watcher = None
        self._source: str | None = None
        if step is not None and step not in steps.values():
            raise InputError(f"No evaluation at step {step}; this trace has steps {sorted(steps.values())}.")
        checkpoint = kwargs.pop("checkpoint", None)
        if step is not None:
            checkpoint = next(c for c, s in steps.items() if s == step)
        super().__init__(frame, layer=layer, checkpoint=checkpoint or by_step[-1],
                         reference=reference or by_step[0], mode=mode, terminal_depth=terminal_depth, height=height, title=title,
                         **kwargs)
        self.heat = heat
        self.delta = bool(delta)
        self._refresh_extras(frame, steps)
        self.step = steps[self.checkpoint]

    # -- validation and the step <-> checkpoint link ------------------------------------------------------------
    @traitlets.validate("heat")
    def _valid_heat(self, proposal):
        if proposal["value"] not in HEATS:
            raise InputError(f"heat must be one of {HEATS}, got {proposal['value']!r}.")
        return proposal["value"]

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        v = proposal["value"]
        steps = [s for s in self._header.get("steps", []) if s is not None]
        if v is None or v not in steps:
            raise InputError(f"No evaluation at step {v}; this trace has steps {sorted(steps)}.")
        return v

    @traitlets.observe("step")
    def _step_changed(self, change):
        names, steps = self._header.get("checkpoints", []), self._header.get("steps", [])
        name = names[steps.index(change["new"])]
        if name != self.checkpoint:
            self.checkpoint = name

    @traitlets.observe("checkpoint")
    def _checkpoint_changed(self, change):
        names, steps = self._header.get("checkpoints", []), self._header.get("steps", [])
        if change["new"] in names:
            s = steps[names.index(change["new"])]
            if s is not None and s != self.step:
                self.step = s

    # -- payload ------------------------------------------------------------------------------------------------
    def detail_payload(self, layer: int | None) -> dict[str, Any]:
        """No spectra or lens rows: this view does not draw them (the Dashboard does), so nothing is sent."""
        return {"_spectra_header": {}, "_spectra": b"", "_lens_header": {}, "_lens": b""}

    def _update_compare(self) -> None:
        if not self.reference:
            return
        p = compare_payload(self._frame, self.reference, self.terminal_depth, hw_code="f32")  # quantized once, below
        cols = unpack(p["_deltas_header"], p["_deltas"])
        for score in PAIRED_HERE:
            cols.update(score_deltas(self._frame, self.reference, score))
        # the reference against itself: 0 where it has a value (the heatmap shows "no change", not "missing")
        df = self._frame.data
        is_ref = (df.get_column("checkpoint") == self.reference).to_numpy()
        for score in HEATS:
            has = is_ref & np.isfinite(df.get_column(score).cast(float).fill_null(float("nan")).to_numpy())
            cols["d_" + score] = np.where(has, 0.0, cols["d_" + score])
        packed: dict[str, tuple[str, Any]] = {}
        for score in HEATS:  # Δ and its interval (a half-width when symmetric); no bytes for null companions
            d = "d_" + score
            if score in ("contraction", "transport", "entropy") or np.isfinite(cols[d]).any():
                packed[d] = ("f32", cols[d])
                intervals(packed, d, cols[d], cols[d + "_lo"], cols[d + "_hi"], "lq16")
        header, blob = pack(packed, self._frame.data.height)
        with self.hold_sync():
            self._deltas_header = header
            self._deltas = blob
            self._summaries = p["_summaries"]

    def _refresh_extras(self, frame, steps: dict[str, int]) -> None:
        alerts = _alerts_of(frame)
        values = sorted(steps.values())
        self._alerts = alerts
        self._status = {"evaluations": len(values), "first_step": values[0], "last_step": values[-1],
                        "alerts": len(alerts["steps"]), "updated": time.strftime("%H:%M:%S"),
                        "live": self._watcher is not None and self._watcher.running, "source": self._source}

    # -- live refresh -------------------------------------------------------------------------------------------
    def update(self, traceframe: Any) -> TrainingView:
        """Show a new version of the training trace (more evaluations), in place: the browser redraws, the widget
        stays where it is in the notebook. The reference and a selected step that still exists are kept; a
        selection on the newest step moves to the new newest step; the layer is kept (clamped to the new depth).

        Thread-safe (a watcher thread and the training loop may both call it). Returns the view.
        """
        frame = as_traceframe(traceframe)
        steps = _steps_by_checkpoint(frame)
        by_step = sorted(steps, key=steps.get)
        with self._lock:
            old = dict(zip(self._header.get("checkpoints", []), self._header.get("steps", []), strict=False))
            newest_old = max(old, key=lambda c: old[c] if old[c] is not None else -math.inf) if old else None
            follow = self.checkpoint == newest_old
            payload, points = frame_payload(frame, 48)
            with self.hold_sync():
                self._frame = frame
                self._points = points
                self._lens_detail = lens_detail(frame)
                self._layers = frame.data.get_column("layer").to_numpy()
                self._header = payload["_header"]
                self._data = payload["_data"]
                max_layer = payload["_header"]["max_layer"]
                if self.layer > max_layer:
                    self.layer = max_layer
                reference = self.reference if self.reference in steps else by_step[0]
                checkpoint = by_step[-1] if (follow or self.checkpoint not in steps) else self.checkpoint
                ref_changed = reference != self.reference
                self.reference = reference  # its observer recomputes the comparison when it changed
                self.checkpoint = checkpoint
                self.step = steps[checkpoint]
                if not ref_changed:
                    self._update_compare()
                self._refresh_extras(frame, steps)
        return self

    def watch(self, folder: str | Path, interval: float = 2.0):
        """Poll a training-trace folder (written by SpinalCallback) on a background thread and `update` this view
        whenever an evaluation is added. Returns the `spinal_nb.monitor.TraceWatcher`; `.stop()` ends it (it also
        stops when the view is closed). One watcher per view: a new call stops the previous one."""
        if self._watcher is not None:
            self._watcher.stop()
        self._source = str(folder)
        self._watcher = TraceWatcher(folder, self.update, interval=interval, on_state=self._watch_state)
        self._watcher.start()
        return self._watcher

    def _watch_state(self, running: bool) -> None:
        with self._lock:
            self._status = {**self._status, "live": bool(running)}

    def close(self) -> None:
        if getattr(self, "_watcher", None) is not None:  # (close also runs on half-built instances)
            self._watcher.stop(wait=False)
        super().close()

    @classmethod
    def from_folder(cls, folder: str | Path, *, watch: bool = False, interval: float = 2.0,
                    **kwargs: Any) -> TrainingView:
        """The view of a training-trace folder (`read_training_trace`); with watch=True it keeps refreshing."""
        view = cls(read_training_trace(folder), **kwargs)
        view._source = str(folder)
        view._status = {**view._status, "source": str(folder)}
        if watch:
            view.watch(folder, interval=interval)
        return view


def show_training(traceframe: Any, **kwargs: Any) -> TrainingView:
    """The training view of a training trace (keyword arguments: step, layer, heat, delta, reference, terminal_depth, title)."""
    return TrainingView(traceframe, **kwargs)
