"""spinal-nb's own destabilization alert (the SPINAL paper publishes no rule, threshold or numbers for it).

At every evaluation the terminal-window mean (depth ≥ `terminal_depth`) of contraction α and of transport 𝓛 is compared with a
reference evaluation — the start of training (`reference="start"`) or the evaluation `n` evaluations earlier
(`reference=n`) — with the paired delete-a-group jackknife interval of `TraceFrame.compare` (the probe prompts are the
same at every evaluation, so prompt-to-prompt variation cancels). A score is **out of band** when that 95 % interval of
the change lies entirely beyond a tolerance band of ±`tolerance`·|reference window mean| in a watched direction
(`"rise"`, `"fall"` or `"either"`). The alert **fires** when `patience` consecutive evaluations have at least one score
out of band; it re-arms once an evaluation is back in band. NaN/Inf in the traced states fires at once.

Why a band and not just "the interval excludes 0": the intervals only measure prompt sampling, so any real change,
including the intended effect of a healthy DPO run, becomes "significant" after enough steps. Why `"either"` by default:
on the runs measured for docs/monitor.md a collapsing model (absurd learning rate) *raises* the terminal α (its states
fall into a few directions), while the paper's before/after description of healthy alignment is also α up, 𝓛 down;
a one-directional rule would miss the collapse. Use `contraction="fall", transport="rise"` for the paper-inspired
direction only.

>>> rule = AlertRule(tolerance=0.25, patience=2)
>>> rule.to_dict()["patience"]
2
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..errors import InputError
from ..frame import TraceFrame

SCORES = ("contraction", "transport")
DIRECTIONS = ("either", "rise", "fall")


class SpinalAlertWarning(UserWarning):
    """Raised (with `warnings.warn`) when the training monitor's destabilization alert fires."""


@dataclass(frozen=True)
class AlertRule:
    """When the training monitor raises `SpinalAlertWarning` (see the module docstring for the rule).

    terminal_depth: the terminal window is depths ≥ this (default 0.7, the paper's window: docs/method.md).
    contraction / transport: watched direction of the change, "either", "rise", "fall", or None (not watched).
    tolerance: half-width of the band, as a fraction of |reference window mean| of each score.
    patience: consecutive out-of-band evaluations before the alert fires (k).
    reference: "start" (the first evaluation of the run) or n ≥ 1 (the evaluation n evaluations earlier).
    """

    terminal_depth: float = 0.7
    contraction: str | None = "either"
    transport: str | None = "either"
    tolerance: float = 0.25
    patience: int = 2
    reference: str | int = "start"

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.terminal_depth, (int, float)) and 0.0 <= self.terminal_depth <= 1.0,
             "terminal_depth is a depth in [0, 1]"),
            (self.contraction in (*DIRECTIONS, None), f"contraction must be one of {DIRECTIONS} or None"),
            (self.transport in (*DIRECTIONS, None), f"transport must be one of {DIRECTIONS} or None"),
            (self.contraction is not None or self.transport is not None, "watch at least one score"),
            (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance) and self.tolerance >= 0,
             "tolerance must be a number ≥ 0"),
            (isinstance(self.patience, int) and not isinstance(self.patience, bool) and self.patience >= 1,
             "patience must be an int ≥ 1"),
            (self.reference == "start" or (isinstance(self.reference, int) and not isinstance(self.reference, bool)
                                           and self.reference >= 1), "reference must be 'start' or an int ≥ 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(f"Bad AlertRule: {msg}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertRule:
        return cls(**{("terminal_depth" if k == "window" else k): v for k, v in d.items()})  # 0.1.0 said `window`


def _out_of_band(direction: str, lo: float, hi: float, band: float) -> bool:
    rise, fall = lo > band, hi < -band
    return {"rise": rise, "fall": fall, "either": rise or fall}[direction]


def assess(frame: TraceFrame, reference: str, candidate: str, rule: AlertRule) -> dict[str, Any]:
    """Change of the terminal-window means of `candidate` vs `reference` (both checkpoints of `frame`), per score.

    Returns {score: {"direction", "reference_mean", "delta", "lo", "hi", "band", "out", "reason"}} for the watched
    scores; "out" is False with a "reason" when the change or its interval cannot be computed.
    """
    comp = frame.compare(reference, candidate, terminal_depth=rule.terminal_depth)
    means = frame.window_means(reference, rule.terminal_depth)
    out: dict[str, Any] = {}
    for score in SCORES:
        direction = getattr(rule, score)
        if direction is None:
            continue
        base = means[score]
        w = comp.summary[f"window_{score}"]
        rec = {"direction": direction, "reference_mean": base, "delta": w["mean"], "lo": w["lo"], "hi": w["hi"],
               "band": None, "out": False, "reason": None}
        if base is None:
            rec["reason"] = f"no {score} in the terminal window of the reference"
        elif w["mean"] is None:
            rec["reason"] = f"no {score} in the terminal window of this evaluation"
        elif w["lo"] is None or w["hi"] is None:
            rec["reason"] = "no interval (fewer than 2 prompt groups with data)"
        else:
            rec["band"] = rule.tolerance * abs(base)
            rec["out"] = _out_of_band(direction, w["lo"], w["hi"], rec["band"])
        out[score] = rec
    return out


class AlertTracker:
    """The rule's state over a run: feed evaluations in step order with `update`; each returns its record.

    Keeps only the frames a reference can still point at (the first one, or the last n).
    """

    def __init__(self, rule: AlertRule):
        self.rule = rule
        self._history: list[TraceFrame] = []  # single-checkpoint frames, in order
        self.streak = 0
        self.firing = False

    def _reference(self) -> TraceFrame | None:
        if not self._history:
            return None
        if self.rule.reference == "start":
            return self._history[0]
        return self._history[max(0, len(self._history) - int(self.rule.reference))]

    def _advance(self, out: bool) -> bool:
        """Move the streak; True when the alert fires at this evaluation."""
        if not out:
            self.streak, self.firing = 0, False
            return False
        self.streak += 1
        if self.streak >= self.rule.patience and not self.firing:
            self.firing = True
            return True
        return False

    def update(self, frame: TraceFrame) -> dict[str, Any]:
        """Assess a single-checkpoint frame against the reference; the first one becomes the start reference."""
        name = frame.checkpoints[0]
        ref = self._reference()
        rec: dict[str, Any] = {"checkpoint": name, "reference": None, "scores": {}, "out": False,
                               "streak": self.streak, "fired": False, "kind": "scores"}
        if ref is not None:
            both = TraceFrame.concat([ref, frame])
            rec["reference"] = ref.checkpoints[0]
            rec["scores"] = assess(both, ref.checkpoints[0], name, self.rule)
            rec["out"] = any(s["out"] for s in rec["scores"].values())
            rec["fired"] = self._advance(rec["out"])
            rec["streak"] = self.streak
        self._history.append(frame)
        self._history = self._history[:1] if self.rule.reference == "start" else \
            self._history[-int(self.rule.reference):]
        return rec

    def numerics(self, checkpoint: str, message: str) -> dict[str, Any]:
        """NaN/Inf in the traced model: out of band at once, and the alert fires (unless already firing)."""
        fired = not self.firing
        self.streak = max(self.streak + 1, self.rule.patience)
        self.firing = True
        return {"checkpoint": checkpoint, "reference": None, "scores": {}, "out": True, "streak": self.streak,
                "fired": fired, "kind": "numerics", "message": message}


def describe(rec: dict[str, Any], step: int | None = None) -> str:
    """One line saying why an alert record is out of band (for the warning and the logs)."""
    where = f"step {step}" if step is not None else rec["checkpoint"]
    if rec.get("kind") == "numerics":
        return f"SPINAL alert at {where}: NaN/Inf in the traced model ({rec.get('message', '')})."
    parts = []
    names = {"contraction": "α", "transport": "𝓛"}
    for score, s in rec["scores"].items():
        if s["out"]:
            parts.append(f"terminal-window mean {names[score]} ({score}) changed by {s['delta']:+.4f} "
                         f"[{s['lo']:+.4f}, {s['hi']:+.4f}] vs {rec['reference']}, beyond the band ±{s['band']:.4f}")
    return (f"SPINAL alert at {where}: " + "; ".join(parts)
            + f" — {rec['streak']} consecutive evaluation(s) out of band. The policy may be destabilizing.")


def alert_history(frame: TraceFrame, rule: AlertRule | None = None) -> pl.DataFrame:
    """Replay `rule` over a training TraceFrame (checkpoints in step order, else frame order): one row per evaluation.

    Columns: checkpoint, step, reference, out, streak, fired, and per watched score `d_<score>`, `d_<score>_lo`,
    `d_<score>_hi`, `band_<score>`, `out_<score>`.

    >>> from spinal_nb.synthetic import synthetic_trace
    >>> tf = TraceFrame.concat([synthetic_trace(f"e{i}", n_layers=4, n_prompts=20, seed=i) for i in range(3)])
    >>> alert_history(tf).height
    3
    """
    rule = rule or AlertRule()
    steps = frame.data.group_by("checkpoint", maintain_order=True).agg(pl.col("step").first())
    order = steps.with_row_index("i").sort(pl.col("step"), "i", nulls_last=True).get_column("checkpoint").to_list()
    step_of = dict(steps.iter_rows())
    tracker = AlertTracker(rule)
    rows = []
    for name in order:
        rec = tracker.update(frame.select([name]))
        row: dict[str, Any] = {"checkpoint": name, "step": step_of[name], "reference": rec["reference"],
                               "out": rec["out"], "streak": rec["streak"], "fired": rec["fired"]}
        for score in SCORES:
            if getattr(rule, score) is None:
                continue
            s = rec["scores"].get(score, {})
            row.update({f"d_{score}": s.get("delta"), f"d_{score}_lo": s.get("lo"), f"d_{score}_hi": s.get("hi"),
                        f"band_{score}": s.get("band"), f"out_{score}": s.get("out", False)})
        rows.append(row)
    schema = {"checkpoint": pl.String, "step": pl.Int64, "reference": pl.String, "out": pl.Boolean,
              "streak": pl.Int64, "fired": pl.Boolean}
    for score in SCORES:
        if getattr(rule, score) is not None:
            schema.update({f"d_{score}": pl.Float64, f"d_{score}_lo": pl.Float64, f"d_{score}_hi": pl.Float64,
                           f"band_{score}": pl.Float64, f"out_{score}": pl.Boolean})
    return pl.DataFrame(rows, schema=schema)
