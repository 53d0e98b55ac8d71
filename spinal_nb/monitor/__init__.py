"""Training monitor: SPINAL traces of the live policy during (DPO) training, stored safely, with an alert.

- :class:`SpinalCallback` — a `transformers.TrainerCallback` (works with TRL's `DPOTrainer`) that traces fixed probe
  prompts at train begin, every N steps and at train end, writes one atomic Parquet file per evaluation and applies
  the alert rule; its tracing cost is measured and bounded (`max_overhead`).
- :func:`read_training_trace` — the folder as one ordinary TraceFrame (checkpoint "step-000120", `step` column set).
- :class:`AlertRule`, :class:`SpinalAlertWarning`, :func:`alert_history` — spinal-nb's own destabilization alert
  (the SPINAL paper publishes none) and its replay over any training TraceFrame. See docs/monitor.md.
- :func:`watch` / :class:`TraceWatcher` — poll a training-trace folder on a background thread and hand each new version
  to a callback (e.g. `spinal_nb.widgets.TrainingView.update`, which redraws the widget in place).

>>> from spinal_nb.monitor import SpinalCallback, AlertRule
>>> cb = SpinalCallback(["The jury said", "It was a cold morning"], every_n_steps=25, alert=AlertRule(patience=3))
>>> cb.every_n_steps
25
"""
import importlib

from .alert import AlertRule, AlertTracker, SpinalAlertWarning, alert_history, assess
from .live import TraceWatcher, watch
from .storage import TrainingTraceWriter, checkpoint_name, ordered_by_step, read_events, read_training_trace


def __getattr__(name: str):
    # SpinalCallback subclasses transformers' TrainerCallback: transformers loads when it is first used, so that the
    # training trace's readers and watcher (which the widgets use) stay light
    if name == "SpinalCallback":
        value = importlib.import_module("spinal_nb.monitor.callback").SpinalCallback
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spinal_nb.monitor' has no attribute {name!r}")

__all__ = ["SpinalCallback", "AlertRule", "AlertTracker", "SpinalAlertWarning", "alert_history", "assess",
           "read_training_trace", "read_events", "TrainingTraceWriter", "checkpoint_name", "ordered_by_step",
           "TraceWatcher", "watch"]
