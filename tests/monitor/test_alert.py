"""The alert rule on synthetic training traces with planted terminal-window changes (known answers), and on noisy
paired nulls: every evaluation of a run has the run's prompt effect plus its own independent noise, so nothing
changed but no two evaluations are equal."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import support

from spinal_nb.errors import InputError
from spinal_nb.frame import TraceFrame
from spinal_nb.monitor import AlertRule, AlertTracker, alert_history, assess
from spinal_nb.params import SpinalParams
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


# -- noisy paired nulls -------------------------------------------------------------------------------------------
# One null run = E evaluations of an unchanged model on the same G prompt groups. Each evaluation's value of a score
# per layer and group = level + the run's prompt effect (shared by every evaluation: pairing cancels it) + the
# evaluation's own noise (independent draws; the prompt effect is twice as large, as prompt-to-prompt variation
# dominates real traces), both AR(1) across layers; the frame stores the mean over groups and the
# leave-one-group-out means, as the tracer does. NOISE sets the own noise so that the sd of a window-mean change is
# about 2/3 of the default band (0.25 × level): the point estimate alone leaves the band often (checked below), so
# only the interval keeps the rule quiet.
G, L = 10, 8
LEVEL = {"contraction": 0.6, "transport": 0.3}
NOISE = {"contraction": 0.24, "transport": 0.12}
NOMINAL_RUN = 0.01  # the alert's target: ≤ 1 % of null runs alarm


def _ar1(rng, rows: int) -> np.ndarray:
    return support.ar1_noise(rng, rows, G)


def _evaluation(name: str, step: int, groups: dict[str, np.ndarray]) -> TraceFrame:
    def est_reps(x):
        return x.mean(1).tolist(), ((x.sum(1, keepdims=True) - x) / (G - 1)).tolist()
    ea, ra = est_reps(groups["contraction"])
    et, rt = est_reps(groups["transport"])
    none = [None] * (L + 1)
    rows = {"layer": list(range(L + 1)), "depth": [i / L for i in range(L + 1)], "contraction": ea,
            "contraction_lo": none, "contraction_hi": none, "contraction_r2": [0.99] * (L + 1),
            "transport": et + [None], "transport_lo": none, "transport_hi": none, "entropy": [1.0] * (L + 1),
            "n_tokens": [2000] * (L + 1), "contraction_jk": ra, "transport_jk": rt + [[]]}
    info = {"model": "null", "prompts_sha256": "probes", "n_prompts": 40, "d_model": 64}
    f = TraceFrame.from_columns(rows, name, SpinalParams(n_groups=G), info)
    return TraceFrame(f.data.with_columns(pl.lit(step, dtype=pl.Int64).alias("step")), f.meta)


def null_run(seed: int, n_evals: int) -> TraceFrame:
    """A training trace of an unchanged model: shared prompt effect, own noise per evaluation."""
    rng = np.random.default_rng(seed)
    rows = {"contraction": L + 1, "transport": L}
    prompt = {s: 2 * NOISE[s] * _ar1(rng, n) for s, n in rows.items()}
    return TraceFrame.concat([
        _evaluation(f"step-{e:06d}", e, {s: LEVEL[s] + prompt[s] + NOISE[s] * _ar1(rng, n) for s, n in rows.items()})
        for e in range(n_evals)])


def _bound(p: float, n: int) -> float:
    return p + 3 * math.sqrt(p * (1 - p) / n)


@pytest.fixture
def cheap_band(monkeypatch):
    """The alert reads only compare's window intervals; the simultaneous band's Monte Carlo size (which they do not
    use) is cut so that hundreds of comparisons stay fast."""
    import spinal_nb.frame.comparison as comparison
    monkeypatch.setattr(comparison, "BAND_SIMULATIONS", 50)


def test_pointwise_rule_alarms_at_the_intervals_nominal_rate(cheap_band):
    """Tolerance 0, patience 1, one score: the rule fires exactly when the paired 95 % interval excludes 0, so on a
    null its rate per (independent) comparison is the interval's 5 % — within ± 3 binomial sd, which fails for a rule
    that ignored the pairing (intervals too wide: ≈ 0 %) or the interval (point estimate ≠ 0: ≈ 100 %)."""
    n = 200
    rule = AlertRule(tolerance=0.0, patience=1, transport=None)
    fired = sum(bool(alert_history(null_run(10_000 + s, 2), rule).get_column("fired")[1]) for s in range(n))
    sd = 3 * math.sqrt(0.05 * 0.95 / n)
    assert 0.05 - sd <= fired / n <= 0.05 + sd, fired / n


def _first_streak(out: np.ndarray, k: int) -> bool:
    """True when `out` (one run's out-of-band flags, in order) has k consecutive True."""
    run = 0
    for o in out:
        run = run + 1 if o else 0
        if run >= k:
            return True
    return False


def test_default_rule_false_alarms_per_run_on_noisy_paired_nulls(cheap_band):
    """80 null runs of 6 evaluations: the default rule alarms in ≤ 1 % + 3 binomial sd of them. On the same runs'
    recorded changes and intervals the same check rejects miscalibrated rules — pointwise (interval excludes 0 at one
    evaluation) and the point estimate alone beyond the band twice in a row — so it can fail."""
    n, evals = 80, 6
    alarms = {"default": 0, "excl0_k1": 0, "point_k2": 0}
    beyond = total = 0
    for s in range(n):
        h = alert_history(null_run(20_000 + s, evals), AlertRule())[1:]
        alarms["default"] += h.get_column("fired").any()
        excl0 = np.zeros(evals - 1, bool)
        point = np.zeros(evals - 1, bool)
        for score in ("contraction", "transport"):
            d, band = h.get_column(f"d_{score}").to_numpy(), h.get_column(f"band_{score}").to_numpy()
            lo, hi = h.get_column(f"d_{score}_lo").to_numpy(), h.get_column(f"d_{score}_hi").to_numpy()
            assert np.all(h.get_column(f"out_{score}").to_numpy() == ((lo > band) | (hi < -band)))
            excl0 |= (lo > 0) | (hi < 0)
            point |= np.abs(d) > band
            beyond += int((np.abs(d) > band).sum())
            total += evals - 1
        alarms["excl0_k1"] += _first_streak(excl0, 1)
        alarms["point_k2"] += _first_streak(point, 2)
    bound = _bound(NOMINAL_RUN, n)
    assert beyond / total >= 0.05, beyond / total  # an informative null: the point estimate leaves the band often
    assert alarms["default"] / n <= bound, alarms
    assert all(alarms[k] / n > bound for k in ("excl0_k1", "point_k2")), (alarms, bound)
