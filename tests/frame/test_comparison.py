"""Comparing checkpoints (spinal_nb.frame.comparison): planted changes found, paired vs unpaired intervals, the
N caveat, different depths, and the verdict."""

import polars as pl
import pytest

from spinal_nb import FrameError, TraceFrame, compare
from spinal_nb.frame import verdict
from spinal_nb.synthetic import synthetic_trace


def test_compare_finds_planted_late_change(pair):
    base, dpo = pair
    c = compare(base, dpo)
    s = c.summary
    assert s["paired"] is True
    assert s["window_layers"] == list(range(14, 21))
    assert s["onset_layer"] == 15 and s["onset_depth"] == pytest.approx(0.75)
    assert s["localization"]["contraction"] == pytest.approx(1.0)
    assert s["localization"]["transport"] > 0.95
    wa, wt = s["window_contraction"], s["window_transport"]
    assert wa["lo"] > 0 and wt["hi"] < 0  # α rises, 𝓛 falls, both beyond their intervals
    d = c.layers
    early = d.filter(pl.col("layer") < 15)
    assert early.get_column("d_contraction").abs().max() < 1e-12  # same prompts, same draws: nothing changed
    assert "onset" in repr(c) and "layer 15" in repr(c)
    # reversed roles flip the sign
    r = compare(dpo, base).summary
    assert r["window_contraction"]["mean"] == pytest.approx(-wa["mean"])

def test_unpaired_compare_is_wider_than_paired(pair):
    base, dpo = pair
    unpaired_dpo = TraceFrame(dpo.data, {**dpo.meta, "checkpoints": {"dpo": {**dpo.meta["checkpoints"]["dpo"],
                                                                               "prompts_sha256": "other"}}})
    p = compare(base, dpo).summary["window_contraction"]
    u = compare(base, unpaired_dpo).summary
    assert u["paired"] is False
    uw = u["window_contraction"]
    assert uw["mean"] == pytest.approx(p["mean"])
    assert (uw["hi"] - uw["lo"]) > (p["hi"] - p["lo"])

def test_compare_warns_when_token_counts_differ(pair):
    base, dpo = pair
    assert compare(base, dpo).summary["warnings"] == []  # same prompts: no caveat
    fewer = synthetic_trace("fewer", n_layers=20, n_prompts=30, tokens_per_prompt=1, seed=1, alpha=lambda d: 0.6)
    c = (base + fewer).compare("base", "fewer")
    n_base, n_fewer = (int(f.data.get_column("n_tokens")[0]) for f in (base, fewer))
    assert n_fewer < 48 < n_base  # d = 48: the short trace's rank is its N - 1
    (w,) = c.summary["warnings"]
    assert f"N = {n_base:,}" in w and f"N = {n_fewer:,}" in w and "rank is N − 1" in w
    assert "warning: α depends on the number of scored positions" in repr(c)

def test_compare_mismatched_depths(pair):
    base, _ = pair
    shallow = synthetic_trace("shallow", n_layers=10, n_prompts=30, seed=1, alpha=lambda d: 0.6)
    both = base + shallow
    with pytest.raises(FrameError, match="on='depth'"):
        both.compare("base", "shallow")
    c = both.compare("base", "shallow", on="depth")
    assert c.layers.height == 21 and c.summary["paired"] is False
    # at depths both share (every other base layer) the delta is the plain difference of values
    b = base.data.filter(pl.col("layer") == 10).get_column("contraction").item()
    s = shallow.data.filter(pl.col("layer") == 5).get_column("contraction").item()
    assert c.layers.filter(pl.col("layer") == 10).get_column("d_contraction").item() == pytest.approx(s - b)


def test_verdict_reads_the_intervals():
    def s(a, t):
        return {"terminal_depth": 0.7, "confidence": 0.95, "window_contraction": dict(zip(("mean", "lo", "hi"), a, strict=True)),
                "window_transport": dict(zip(("mean", "lo", "hi"), t, strict=True))}
    base = {"contraction": 0.5, "transport": 0.2}
    v = verdict(s((0.05, 0.02, 0.08), (-0.01, -0.02, -0.005)), base)
    assert v["status"] == "present" and v["relative_change"]["contraction"] == pytest.approx(0.1)
    assert v["relative_change"]["transport"] == pytest.approx(-0.05)
    assert verdict(s((0.05, 0.02, 0.08), (-0.01, -0.02, 0.005)), base)["status"] == "partial"
    assert verdict(s((0.05, -0.02, 0.08), (0.01, -0.02, 0.05)), base)["status"] == "absent"
    assert verdict(s((-0.05, -0.08, -0.02), (0.01, 0.005, 0.02)), base)["status"] == "reversed"
    none = verdict(s((None, None, None), (None, None, None)), base)
    assert none["status"] == "absent" and none["contraction"] == "undetermined"
