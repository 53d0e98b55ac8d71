"""`SpinalCallback`: SPINAL traces of the live policy during training (HF `Trainer`, TRL `DPOTrainer`) + the alert.

At train begin, every `every_n_steps` optimizer steps and at train end, the fixed probe prompts are traced on the
model being trained (eval mode, no grad, torch RNG state preserved, each module's train/eval flag restored afterwards
even when the trace raises). Each evaluation is written as its own atomic Parquet file (storage.py) and assessed by
the alert rule (alert.py).

Cost: tracing time is measured against the rest of the training loop. With `max_overhead=f`, a periodic evaluation is
skipped (and logged as a "skip" event) whenever the tracing time so far plus the predicted cost of this trace (the
mean of the last three traces) would exceed f × the training time so far; the start and end evaluations always run.
So the tracing share of the run stays ≤ f, plus the one final trace (≈ one trace time / training time).
"""
from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import torch

from .. import capture
from ..errors import InputError, NumericsError
from ..frame import TraceFrame
from .alert import AlertRule, AlertTracker, SpinalAlertWarning, describe
from .storage import TrainingTraceWriter, checkpoint_name, read_events

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - transformers is a dependency of capture; keep the import error readable
    raise ImportError("spinal_nb.monitor needs transformers (pip install transformers).") from None

logger = logging.getLogger(__name__)
DEFAULT_RULE = AlertRule()

# trace() arguments the callback sets itself, or that would move/cast the live model or send it elsewhere
_RESERVED = {"checkpoint", "progress", "save_to", "save_every", "remote", "device", "dtype", "tokenizer"}


def _restore_modes(modes: list[tuple[torch.nn.Module, bool]]) -> None:
    for module, mode in modes:
        module.training = mode  # per module, not module.train(): keeps any submodule the user left in eval mode


def _cuda_devices(model: torch.nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


class SpinalCallback(TrainerCallback):
    """Trace fixed probe prompts on the live model during training; write a training TraceFrame; alert on drift.

    probe_prompts: the fixed prompts traced at every evaluation (≥ n_groups of them for intervals; ~40–200).
    tokenizer: defaults to the trainer's `processing_class`.
    every_n_steps: evaluate when `state.global_step` is a multiple of this (plus at train begin and end).
    path: folder of the training trace (default `<args.output_dir>/spinal-trace`); read it back with
      `read_training_trace(path)`, or use `callback.frame` in the same process.
    alert: an `AlertRule`, or None for no alert. stop_on_alert: set `control.should_training_stop` when it fires.
    max_overhead: bound on tracing time / training time (None: no bound; see the module docstring).
    overwrite: replace an earlier run's trace in `path` (a resumed run keeps the points up to its step anyway).
    on_evaluation: called with the training TraceFrame so far after each evaluation (e.g. to refresh a widget).
    trace_kwargs: passed to `spinal_nb.capture.trace` (batch_size, SPINAL parameters, lens_prompts, ...).

    >>> # trainer = DPOTrainer(..., callbacks=[SpinalCallback(probes, every_n_steps=50, path="run/spinal")])
    >>> # trainer.train(); read_training_trace("run/spinal")
    """

    def __init__(self, probe_prompts: Sequence[str], tokenizer: Any = None, *, every_n_steps: int = 50,
                 path: str | Path | None = None, alert: AlertRule | None = DEFAULT_RULE, stop_on_alert: bool = False,
                 max_overhead: float | None = 0.1, overwrite: bool = False,
                 on_evaluation: Callable[[TraceFrame], None] | None = None, **trace_kwargs: Any):
        if isinstance(probe_prompts, str) or not isinstance(probe_prompts, Sequence):
            raise InputError("probe_prompts must be a list of strings (the fixed prompts traced at every evaluation).")
        self.probe_prompts = list(probe_prompts)
        if not self.probe_prompts or not all(isinstance(p, str) and p.strip() for p in self.probe_prompts):
            raise InputError("probe_prompts must be a non-empty list of non-empty strings.")
        if not isinstance(every_n_steps, int) or isinstance(every_n_steps, bool) or every_n_steps < 1:
            raise InputError(f"every_n_steps must be a positive int, got {every_n_steps!r}.")
        if max_overhead is not None and not (isinstance(max_overhead, (int, float)) and 0 < max_overhead):
            raise InputError(f"max_overhead must be a positive fraction (e.g. 0.1) or None, got {max_overhead!r}.")
        if alert is not None and not isinstance(alert, AlertRule):
            raise InputError(f"alert must be an AlertRule or None, got {type(alert).__name__}.")
        bad = sorted(set(trace_kwargs) & _RESERVED)
        if bad:
            raise InputError(f"SpinalCallback sets {bad} itself (or they would move the live model); leave them out.")
        self.tokenizer = tokenizer
        self.every_n_steps = every_n_steps
        self.path = None if path is None else Path(path)
        self.alert = alert
        self.stop_on_alert = bool(stop_on_alert)
        self.max_overhead = None if max_overhead is None else float(max_overhead)
        self.overwrite = bool(overwrite)
        self.on_evaluation = on_evaluation
        self.trace_kwargs = trace_kwargs
        self.clock: Callable[[], float] = time.perf_counter  # replaceable in tests
        self._reset()

    # -- state --------------------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._frames: list[TraceFrame] = []
        self._records: list[dict[str, Any]] = []
        self._tracker = AlertTracker(self.alert) if self.alert is not None else None
        self._writer: TrainingTraceWriter | None = None
        self._trace_times: list[float] = []
        self._trace_total = 0.0  # all tracing of this run, start evaluation included
        self._trace_after_start = 0.0  # tracing done after the training clock started
        self._t_start: float | None = None
        self._last_step: int | None = None
        self.alerts: list[dict[str, Any]] = []
        self.skipped: list[int] = []

    @property
    def frame(self) -> TraceFrame | None:
        """The training TraceFrame of this run so far (one checkpoint per evaluated step, in step order)."""
        if not self._frames:
            return None
        frame = TraceFrame.concat(self._frames)
        events = read_events(self._writer.folder) if self._writer is not None else []
        frame.meta["monitor"] = {"evaluations": list(self._records), "events": events, "alerts": list(self.alerts)}
        return frame

    def train_seconds(self) -> float:
        """Wall time of training so far, tracing excluded."""
        if self._t_start is None:
            return 0.0
        return max(0.0, self.clock() - self._t_start - self._trace_after_start)

    @property
    def overhead(self) -> float | None:
        """Tracing time / training time (tracing excluded) of this run so far; None before any training time."""
        t = self.train_seconds()
        return self._trace_total / t if t > 0 else None

    def summary(self) -> dict[str, Any]:
        return {"evaluations": len(self._frames), "skipped": list(self.skipped), "alerts": len(self.alerts),
                "trace_seconds": self._trace_total, "train_seconds": self.train_seconds(), "overhead": self.overhead,
                "max_overhead": self.max_overhead}

    # -- Trainer events -----------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._reset()
        tok = self.tokenizer if self.tokenizer is not None else processing_class
        tok = getattr(tok, "tokenizer", tok)  # a multimodal processor carries its tokenizer
        if tok is None:
            raise InputError("SpinalCallback needs a tokenizer: pass tokenizer=... or give the trainer a "
                             "processing_class.")
        self._tok = tok
        folder = self.path if self.path is not None else Path(args.output_dir) / "spinal-trace"
        self._writer = TrainingTraceWriter(folder)
        kept = self._writer.prepare(state.global_step, self.overwrite)
        for s in kept:  # a resumed run: earlier points stay part of the trace and of the alert's history
            if s < state.global_step:
                f = TraceFrame.read_parquet(self._writer.folder / f"{checkpoint_name(s)}.parquet")
                self._frames.append(f)
                self._records.append(f.meta["checkpoints"][f.checkpoints[0]].get("extra", {}).get("monitor", {}))
                if self._tracker is not None:
                    self._tracker.update(f)
        self._writer.event({"event": "start", "step": state.global_step, "kept_steps": kept,
                            "every_n_steps": self.every_n_steps, "max_overhead": self.max_overhead,
                            "alert": None if self.alert is None else self.alert.to_dict(),
                            "n_probe_prompts": len(self.probe_prompts), "time": time.time()})
        self._evaluate(model, state, control, "start")
        self._t_start = self.clock()
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step % self.every_n_steps or step == self._last_step:
            return control
        if self.max_overhead is not None and self._trace_times:
            predicted = sum(self._trace_times[-3:]) / len(self._trace_times[-3:])
            budget = self.max_overhead * self.train_seconds()
            if self._trace_total + predicted > budget:
                self.skipped.append(step)
                self._writer.event({"event": "skip", "step": step, "trace_seconds": self._trace_total,
                                    "predicted": predicted, "budget": budget, "time": time.time()})
                logger.info("spinal: skipped the evaluation at step %d: tracing would take %.1f%% of training "
                            "(max_overhead %.1f%%)", step,
                            100 * (self._trace_total + predicted) / max(self.train_seconds(), 1e-9),
                            100 * self.max_overhead)
                return control
        self._evaluate(model, state, control, "periodic")
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if state.global_step != self._last_step:
            self._evaluate(model, state, control, "end")
        summary = self.summary()
        self._writer.event({"event": "end", "step": state.global_step, **summary, "time": time.time()})
        logger.info("spinal: %d evaluation(s), %d skipped, %d alert(s); tracing %.1f s = %.1f%% of %.1f s training",
                    summary["evaluations"], len(self.skipped), summary["alerts"], summary["trace_seconds"],
                    100 * (summary["overhead"] or 0.0), summary["train_seconds"])
        return control

    # -- one evaluation -----------------------------------------------------------------------------------------
    def _trace(self, model: torch.nn.Module, name: str) -> TraceFrame:
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            with torch.random.fork_rng(devices=_cuda_devices(model)), torch.no_grad():
                return capture.trace(model, self.probe_prompts, tokenizer=self._tok, checkpoint=name, progress=False,
                             **self.trace_kwargs)
        finally:
            _restore_modes(modes)

    def _evaluate(self, model: torch.nn.Module, state, control, reason: str) -> None:
        if model is None:
            raise InputError("The trainer passed no model to SpinalCallback.")
        step = int(state.global_step)
        name = checkpoint_name(step)
        t0 = self.clock()
        frame, numerics = None, None
        try:
            frame = self._trace(model, name)
        except NumericsError as e:
            numerics = str(e)
        dt = self.clock() - t0
        self._trace_times.append(dt)
        self._trace_total += dt
        if self._t_start is not None:
            self._trace_after_start += dt
        self._last_step = step
        train_s = self.train_seconds()  # one clock reading, so that overhead == total / train exactly
        record: dict[str, Any] = {"step": step, "epoch": state.epoch, "reason": reason, "trace_seconds": dt,
                                  "trace_seconds_total": self._trace_total, "train_seconds": train_s,
                                  "overhead": self._trace_total / train_s if train_s > 0 else None}
        rec = None
        if self._tracker is not None:
            rec = self._tracker.numerics(name, numerics) if numerics is not None else \
                self._tracker.update(frame)
            record["alert"] = rec
        if frame is not None:
            frame = TraceFrame(frame.data.with_columns(pl.lit(step, dtype=pl.Int64).alias("step")),
                               frame.meta, frame.lens)
            info = frame.meta["checkpoints"][name]
            info["extra"] = {**info.get("extra", {}), "monitor": record}
            self._writer.write(frame, step)
            self._frames.append(frame)
            self._records.append(record)
        else:
            self._writer.event({"event": "numerics", "step": step, "message": numerics, "time": time.time()})
            if rec is None or not rec["fired"]:
                warnings.warn(f"SPINAL trace at step {step} failed: {numerics}", SpinalAlertWarning, stacklevel=2)
        logger.info("spinal: traced step %d (%s) in %.2f s; tracing so far %.1f s%s", step, reason, dt,
                    self._trace_total, "" if record["overhead"] is None else
                    f" = {100 * record['overhead']:.1f}% of {train_s:.1f} s training")
        if rec is not None and rec["fired"]:
            message = describe(rec, step)
            self.alerts.append({"step": step, **rec})
            self._writer.event({"event": "alert", "step": step, "message": message, "record": rec,
                                "time": time.time()})
            warnings.warn(message, SpinalAlertWarning, stacklevel=2)
            if self.stop_on_alert and reason != "end":
                control.should_training_stop = True
                logger.warning("spinal: stopping training at step %d (stop_on_alert=True).", step)
        if self.on_evaluation is not None and self._frames:
            self.on_evaluation(self.frame)
