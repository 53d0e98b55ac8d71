"""The alert rule on synthetic training traces with planted terminal-window changes (known answers)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from spinal_nb.errors import InputError
from spinal_nb.frame import TraceFrame
from spinal_nb.monitor import AlertRule, AlertTracker, alert_history, assess
from spinal_nb.synthetic import synthetic_trace

KW = dict(n_layers=8, d=32, vocab=64, n_prompts=30, tokens_per_prompt=16)


def _alpha(shift: float):
    return lambda depth: 0.6 + 0.2 * depth + (shift if depth >= 0.7 else 0.0)


def _step(shift: float):
    return lambda depth: 0.3 + (shift if depth >= 0.7 else 0.0)


def point(name: str, step: int, alpha_shift: float = 0.0, step_shift: float = 0.0, seed: int = 0) -> TraceFrame:
    """One evaluation: same seed = same prompts and draws (a paired comparison); shifts planted at depth ≥ 0.7."""
    f = synthetic_trace(name, alpha=_alpha(alpha_shift), step=_step(step_shift), seed=seed, **KW)
    return TraceFrame(f.data.with_columns(pl.lit(step, dtype=pl.Int64).alias("step")), f.meta)


def run(shifts, rule, kind="alpha"):
    """A training trace with one evaluation per shift (shift 0 = unchanged), replayed through the rule."""
    frames = [point(f"step-{i:06d}", i, **({"alpha_shift": s} if kind == "alpha" else {"step_shift": s}))
              for i, s in enumerate(shifts)]
    return alert_history(TraceFrame.concat(frames), rule)


def test_rule_validation():
    for bad in (dict(terminal_depth=1.5), dict(contraction="down"), dict(contraction=None, transport=None),
                dict(tolerance=-0.1), dict(tolerance=float("nan")), dict(patience=0), dict(patience=True),
                dict(reference="previous"), dict(reference=0)):
        with pytest.raises(InputError, match="Bad AlertRule"):
            AlertRule(**bad)
    rule = AlertRule(tolerance=0.1, reference=3)
    assert AlertRule.from_dict(rule.to_dict()) == rule


def test_assess_matches_an_independent_window_mean_and_band():
    a, b = point("a", 0), point("b", 1, alpha_shift=-0.5)
    both = TraceFrame.concat([a, b])
    rule = AlertRule(tolerance=0.25)
    res = assess(both, "a", "b", rule)
    for score in ("contraction", "transport"):
        da, db = a.data.filter(pl.col("depth") >= 0.7), b.data.filter(pl.col("depth") >= 0.7)
        va, vb = da.get_column(score).to_numpy(), db.get_column(score).to_numpy()
        ok = np.isfinite(va.astype(float)) & np.isfinite(vb.astype(float))
        assert res[score]["delta"] == pytest.approx(float(np.mean(vb[ok] - va[ok])), abs=1e-12)
        ref = float(np.mean(va[ok]))
        assert res[score]["reference_mean"] == pytest.approx(ref)
        assert res[score]["band"] == pytest.approx(0.25 * abs(ref))
        assert res[score]["lo"] <= res[score]["delta"] <= res[score]["hi"]
    # the planted fall of α is far beyond the band; the lens steps were not changed
    assert res["contraction"]["hi"] < -res["contraction"]["band"] and res["contraction"]["out"]
    assert not res["transport"]["out"]


def test_no_change_never_fires():
    h = run([0.0] * 6, AlertRule(tolerance=0.0, patience=1))
    assert not h.get_column("out").any() and not h.get_column("fired").any()
    assert h.get_column("d_contraction").drop_nulls().abs().max() == 0.0  # same draws: exactly no change


def test_fires_after_patience_once_per_episode_and_rearms():
    shifts = [0, -0.5, -0.5, -0.5, 0, -0.5, -0.5]
    h = run(shifts, AlertRule(patience=2))
    assert h.get_column("out").to_list() == [False, True, True, True, False, True, True]
    assert h.get_column("streak").to_list() == [0, 1, 2, 3, 0, 1, 2]
    assert h.get_column("fired").to_list() == [False, False, True, False, False, False, True]
    assert h.get_column("out_contraction").to_list()[1:4] == [True] * 3
    assert not h.get_column("out_transport").any()


def test_patience_k():
    for k in (1, 3):
        h = run([0, -0.5, -0.5, -0.5, -0.5], AlertRule(patience=k))
        assert h.get_column("fired").to_list().index(True) == k


@pytest.mark.parametrize("direction, fires_on_fall, fires_on_rise", [
    ("either", True, True), ("fall", True, False), ("rise", False, True)])
def test_directions(direction, fires_on_fall, fires_on_rise):
    rule = AlertRule(contraction=direction, transport=None, patience=1, tolerance=0.1)
    assert run([0, -0.5], rule).get_column("fired")[1] == fires_on_fall
    assert run([0, +0.8], rule).get_column("fired")[1] == fires_on_rise


def test_transport_rise():
    h = run([0, 0.3, 0.3], AlertRule(contraction=None, transport="rise", patience=2), kind="step")
    assert h.get_column("fired").to_list() == [False, False, True]
    assert (h.get_column("d_transport_lo")[1:] > h.get_column("band_transport")[1:]).all()
    h = run([0, 0.3, 0.3], AlertRule(contraction=None, transport="fall", patience=1), kind="step")
    assert not h.get_column("fired").any()


def test_tolerance_separates_significant_from_large():
    """A small real change is 'significant' (interval excludes 0) but inside a 25 % band: only tolerance 0 fires."""
    h0 = run([0, -0.05, -0.05], AlertRule(tolerance=0.0, patience=2, transport=None))
    assert (h0.get_column("d_contraction_hi")[1:] < 0).all()  # significant
    assert h0.get_column("fired").to_list() == [False, False, True]
    h = run([0, -0.05, -0.05], AlertRule(tolerance=0.25, patience=2, transport=None))
    assert not h.get_column("out").any()


def test_rolling_reference_sees_jumps_not_levels():
    shifts = [0, -0.5, -0.5, -0.5]
    start = run(shifts, AlertRule(patience=1, transport=None))
    rolling = run(shifts, AlertRule(patience=1, transport=None, reference=1))
    assert start.get_column("out").to_list() == [False, True, True, True]
    assert rolling.get_column("out").to_list() == [False, True, False, False]
    assert rolling.get_column("reference").to_list() == [None, "step-000000", "step-000001", "step-000002"]


def test_history_follows_steps_not_frame_order():
    frames = [point("late", 20, alpha_shift=-0.5), point("first", 0), point("mid", 10, alpha_shift=-0.5)]
    h = alert_history(TraceFrame.concat(frames), AlertRule(patience=2))
    assert h.get_column("checkpoint").to_list() == ["first", "mid", "late"]
    assert h.get_column("fired").to_list() == [False, False, True]


def test_numerics_fires_at_once():
    tr = AlertTracker(AlertRule(patience=3))
    tr.update(point("s0", 0))
    rec = tr.numerics("s1", "NaN at layer 2")
    assert rec["fired"] and rec["out"] and rec["kind"] == "numerics"
    assert not tr.numerics("s2", "again")["fired"]  # still the same episode
    assert not tr.update(point("s3", 3))["out"]  # healthy again: re-armed
    assert not tr.streak and not tr.firing


def test_null_contraction_is_not_an_alert():
    """Too few tokens for a tail fit: α is null with a reason, and the rule says so instead of guessing."""
    f = synthetic_trace("a", n_layers=4, d=16, n_prompts=4, tokens_per_prompt=2)
    assert f.data.get_column("contraction").null_count() == f.data.height
    g = synthetic_trace("b", n_layers=4, d=16, n_prompts=4, tokens_per_prompt=2, seed=1)
    res = assess(TraceFrame.concat([f, g]), "a", "b", AlertRule())
    assert not res["contraction"]["out"] and "no contraction" in res["contraction"]["reason"]
