"""Comparing checkpoints (spinal_nb.frame.comparison): nulls with independent noise per checkpoint keep window calls,
onsets and localization claims at the nominal rate; planted changes are found; different designs (N, d, prompts)
are not comparable; different depths; the verdict's vocabulary.

The null frames are built at the level the jackknife sees: G prompt groups per checkpoint, each group's value of a
score per layer = shared prompt effect (same prompts: common to both checkpoints when paired) + the checkpoint's own
noise, both correlated across layers; the estimate is the mean over groups and the replicates the leave-one-group-out
means, as the tracer stores them. A compare that ignored pairing, multiplicity or sign would exceed the bounds.
"""
import math

import numpy as np
import polars as pl
import pytest
import support
from scipy import stats

from spinal_nb import FrameError, InputError, TraceFrame, compare, trace
from spinal_nb.frame import verdict
from spinal_nb.params import SpinalParams
from spinal_nb.scores.verdict import MIXED, NO_CHANGE, NOT_COMPARABLE, REVERSED, SIGNATURE
from spinal_nb.synthetic import synthetic_trace

CONF = 0.95
N_NULL = 150  # seeds per null design
BOUND = (1 - CONF) + 3 * math.sqrt(CONF * (1 - CONF) / N_NULL)  # nominal + 3 binomial sd


def _ar1(rng, n_layers: int, g: int) -> np.ndarray:
    return support.ar1_noise(rng, n_layers, g)


def _frame(name: str, groups_a: np.ndarray, groups_t: np.ndarray, prompts: str, *, n_tokens: int = 2000,
           d: int = 64, n_prompts: int = 40) -> TraceFrame:
    """One checkpoint's frame from per-group values [L + 1, G] (contraction) and [L, G] (transport)."""
    n_layers, g = groups_t.shape[0], groups_a.shape[1]
    params = SpinalParams(n_groups=g)

    def est_reps(x):
        return x.mean(1), (x.sum(1, keepdims=True) - x) / (g - 1)  # mean over groups, leave-one-group-out means
    ea, ra = est_reps(groups_a)
    et, rt = est_reps(groups_t)
    rows = {"layer": list(range(n_layers + 1)), "depth": [i / n_layers for i in range(n_layers + 1)],
            "contraction": ea.tolist(), "contraction_lo": [None] * (n_layers + 1),
            "contraction_hi": [None] * (n_layers + 1), "contraction_r2": [0.99] * (n_layers + 1),
            "transport": et.tolist() + [None], "transport_lo": [None] * (n_layers + 1),
            "transport_hi": [None] * (n_layers + 1), "entropy": [1.0] * (n_layers + 1),
            "n_tokens": [n_tokens] * (n_layers + 1), "contraction_jk": ra.tolist(),
            "transport_jk": rt.tolist() + [[]]}
    info = {"model": "null", "prompts_sha256": prompts, "n_prompts": n_prompts, "d_model": d}
    return TraceFrame.from_columns(rows, name, params, info)


def _pair(seed: int, *, paired: bool, n_layers: int = 12, g: int = 10, effect_a: float = 0.0,
          effect_t: float = 0.0, first_changed: int | None = None, **design_b):
    """(reference, candidate) frames; the candidate's layers from `first_changed` on shifted by the effects."""
    rng = np.random.default_rng(seed)
    shared_a, shared_t = 0.05 * _ar1(rng, n_layers + 1, g), 0.01 * _ar1(rng, n_layers, g)
    frames = []
    for k in range(2):
        pa = shared_a if paired or k == 0 else 0.05 * _ar1(rng, n_layers + 1, g)
        pt = shared_t if paired or k == 0 else 0.01 * _ar1(rng, n_layers, g)
        ga = 0.6 + pa + 0.01 * _ar1(rng, n_layers + 1, g)
        gt = 0.3 + pt + 0.002 * _ar1(rng, n_layers, g)
        if k == 1 and first_changed is not None:
            ga[first_changed:] += effect_a
            gt[first_changed:] += effect_t
        frames.append(_frame(("base", "cand")[k], ga, gt, "p0" if paired or k == 0 else "p1",
                             **(design_b if k == 1 else {})))
    return frames


@pytest.mark.parametrize("paired", [True, False])
def test_null_calls_stay_at_the_nominal_rate(paired):
    """Nothing changed; each checkpoint has its own noise: window calls, onsets, localization claims, verdicts other
    than 'no detectable change' and the simultaneous band missing 0 anywhere stay within nominal + 3 binomial sd
    (family-wise for the onset and the band)."""
    calls = {"window α": 0, "window 𝓛": 0, "onset α": 0, "onset 𝓛": 0, "localized α": 0, "claim": 0, "band α": 0}
    pointwise = 0
    for seed in range(N_NULL):
        c = compare(*_pair(seed, paired=paired))
        s = c.summary
        # the simultaneous band holds for all layers at once; pointwise intervals are no family-wise claim
        d = c.layers.drop_nulls("d_contraction_lo")
        lo, hi = d.get_column("d_contraction_lo").to_numpy(), d.get_column("d_contraction_hi").to_numpy()
        blo, bhi = d.get_column("d_contraction_band_lo").to_numpy(), d.get_column("d_contraction_band_hi").to_numpy()
        assert np.all(blo <= lo) and np.all(bhi >= hi)
        pointwise += bool(np.any((lo > 0) | (hi < 0)))
        calls["band α"] += bool(np.any((blo > 0) | (bhi < 0)))
        assert s["paired"] is paired and s["comparable"] is True
        for key, score in (("α", "contraction"), ("𝓛", "transport")):
            w = s[f"window_{score}"]
            calls[f"window {key}"] += w["lo"] > 0 or w["hi"] < 0
            calls[f"onset {key}"] += s["onset"][score]["layer"] is not None
        calls["localized α"] += s["localization_interval"]["contraction"]["localized"]
        calls["claim"] += s["verdict"]["status"] in (SIGNATURE, REVERSED)
    rates = {k: v / N_NULL for k, v in calls.items()}
    assert all(r <= BOUND for r in rates.values()), (rates, BOUND)
    assert pointwise / N_NULL > 2 * BOUND  # 13 correlated layers: some pointwise interval misses 0 far more often


def test_planted_late_change_is_found():
    """Power: α up and 𝓛 down from layer 9 of 12 (≈ 8 and 5 se of a window mean) — found in ≥ 90 % of seeds, and
    the onset's run never reaches into unchanged layers more often than the nominal rate."""
    found = deep = too_early = 0
    n = 40
    for seed in range(n):
        s = compare(*_pair(2000 + seed, paired=True, effect_a=0.04, effect_t=-0.006, first_changed=9)).summary
        found += s["verdict"]["status"] == SIGNATURE and s["localization_interval"]["contraction"]["localized"]
        onset = s["onset_layer"]
        deep += onset is not None and s["onset_sign"] == 1
        too_early += onset is not None and onset < 9
    assert found / n >= 0.9 and deep / n >= 0.9
    assert too_early / n <= (1 - CONF) + 3 * math.sqrt(CONF * (1 - CONF) / n)


def test_reversed_needs_both_intervals_to_exclude_zero():
    s = compare(*_pair(7, paired=True, effect_a=-0.03, effect_t=0.004, first_changed=9)).summary
    assert s["verdict"]["status"] == REVERSED and s["onset_sign"] == -1
    w = s["window_contraction"]
    assert w["hi"] < 0 and s["window_transport"]["lo"] > 0


def test_a_different_design_is_not_comparable():
    """Different N, d or prompt count: Δα keeps its estimate but has no interval, band, onset or localization, and
    the verdict is 'not comparable' with the reason — even for a large Δα."""
    for design, words in (({"n_tokens": 8000}, "Scored positions differ"), ({"d": 128}, "Widths differ"),
                          ({"n_prompts": 160}, "prompts")):
        c = compare(*_pair(3, paired=False, effect_a=0.5, effect_t=-0.1, first_changed=9, **design))
        s = c.summary
        assert s["comparable"] is False and words in s["comparable_reason"]
        assert s["verdict"]["status"] == NOT_COMPARABLE and words in c.verdict()["text"]
        assert s["window_contraction"]["mean"] == pytest.approx(0.5, abs=0.1)
        assert s["window_contraction"]["lo"] is None and s["onset_layer"] is None
        assert s["localization"]["contraction"] is None
        assert c.layers.get_column("d_contraction_lo").null_count() == c.layers.height
        assert c.layers.get_column("d_contraction_band_hi").null_count() == c.layers.height
        assert s["window_transport"]["hi"] < 0  # transport is still read
        assert "NOT comparable" in repr(c) and c.verdict()["status"] == NOT_COMPARABLE


def test_design_is_reported():
    s = compare(*_pair(4, paired=True)).summary
    assert s["design"]["reference"] == {"n": 2000, "d": 64, "prompts": 40, "n_per_d": pytest.approx(2000 / 64)}
    assert "N = 2,000 scored positions, N/d = 31.25" in repr(compare(*_pair(4, paired=True)))


def test_unpaired_compare_is_wider_than_paired():
    base, cand = _pair(5, paired=True, effect_a=0.02, first_changed=9)
    other = TraceFrame(cand.data, {**cand.meta, "checkpoints": {"cand": {**cand.meta["checkpoints"]["cand"],
                                                                         "prompts_sha256": "other"}}})
    p = compare(base, cand).summary["window_contraction"]
    u = compare(base, other).summary
    assert u["paired"] is False
    uw = u["window_contraction"]
    assert uw["mean"] == pytest.approx(p["mean"])
    assert (uw["hi"] - uw["lo"]) > 2 * (p["hi"] - p["lo"])  # the shared prompt effect no longer cancels


def test_window_mean_interval_is_the_jackknife_of_the_mean():
    """Independent computation: paired window-mean interval = mean of Δ over window layers ± t·se from the
    replicate differences."""
    base, cand = _pair(6, paired=True, effect_a=0.02, first_changed=9)
    s = compare(base, cand).summary["window_contraction"]
    win = [9, 10, 11, 12]
    ra = np.array(base.data.get_column("contraction_jk").to_list())[win]
    rb = np.array(cand.data.get_column("contraction_jk").to_list())[win]
    reps = (rb - ra).mean(0)
    g = reps.size
    se = math.sqrt((g - 1) / g * ((reps - reps.mean()) ** 2).sum())
    t = stats.t.ppf(0.975, g - 1)
    est = (cand.data.get_column("contraction").to_numpy() - base.data.get_column("contraction").to_numpy())[win].mean()
    assert s["mean"] == pytest.approx(est) and s["lo"] == pytest.approx(est - t * se)
    assert s["hi"] == pytest.approx(est + t * se)


def test_compare_mismatched_depths():
    base = synthetic_trace("base", n_layers=8, n_prompts=20, seed=1, alpha=lambda d: 0.6, vocab=64)
    shallow = synthetic_trace("shallow", n_layers=4, n_prompts=20, seed=1, alpha=lambda d: 0.6, vocab=64)
    both = base + shallow
    with pytest.raises(FrameError, match="on='depth'"):
        both.compare("base", "shallow")
    c = both.compare("base", "shallow", on="depth")
    assert c.layers.height == 9 and c.summary["paired"] is False
    assert "interpolated" in c.summary["warnings"][0]
    # at depths both share (every other base layer) the delta is the plain difference of values
    b = base.data.filter(pl.col("layer") == 4).get_column("contraction").item()
    s = shallow.data.filter(pl.col("layer") == 2).get_column("contraction").item()
    assert c.layers.filter(pl.col("layer") == 4).get_column("d_contraction").item() == pytest.approx(s - b)


def test_verdict_reads_the_intervals():
    def s(a, t, comparable=True):
        return {"terminal_depth": 0.7, "confidence": 0.95, "comparable": comparable,
                "comparable_reason": "Scored positions differ (N = 1 and 2).",
                "window_contraction": dict(zip(("mean", "lo", "hi"), a, strict=True)),
                "window_transport": dict(zip(("mean", "lo", "hi"), t, strict=True))}
    base = {"contraction": 0.5, "transport": 0.2}
    v = verdict(s((0.05, 0.02, 0.08), (-0.01, -0.02, -0.005)), base)
    assert v["status"] == SIGNATURE and v["relative_change"]["contraction"] == pytest.approx(0.1)
    assert v["relative_change"]["transport"] == pytest.approx(-0.05)
    assert "+0.0500 [+0.0200, +0.0800]" in v["text"] and "+10.0%" in v["text"]
    assert verdict(s((0.05, 0.02, 0.08), (-0.01, -0.02, 0.005)), base)["status"] == MIXED
    assert verdict(s((0.05, 0.0, 0.08), (-0.01, -0.02, -0.005)), base)["status"] == MIXED  # touches 0
    assert verdict(s((0.05, -0.02, 0.08), (0.01, -0.02, 0.05)), base)["status"] == NO_CHANGE
    assert verdict(s((-0.05, -0.08, -0.02), (0.01, 0.005, 0.02)), base)["status"] == REVERSED
    assert verdict(s((None, None, None), (None, None, None)), base)["status"] == MIXED
    nc = verdict(s((0.5, 0.4, 0.6), (-0.01, -0.02, -0.005), comparable=False), base)
    assert nc["status"] == NOT_COMPARABLE and "Scored positions differ" in nc["text"] and nc["contraction"] == 0


def test_same_model_on_20_and_80_prompts_is_never_a_significant_delta_alpha():
    """The real null of issue 13: one tiny model traced on 20 and on 80 random prompts. α̂ depends on N/d, so the
    comparison is 'not comparable' and Δα carries no interval, band, onset or localization claim."""
    tok, model = support.make_tokenizer(), support.make_model("llama")
    for trial in range(3):
        small = trace(model, support.make_prompts(20, seed=100 + trial), tokenizer=tok, checkpoint="n20",
                      progress=False)
        big = trace(model, support.make_prompts(80, seed=200 + trial), tokenizer=tok, checkpoint="n80",
                    progress=False)
        c = compare(small, big)
        s = c.summary
        assert s["design"]["reference"]["prompts"] == 20 and s["design"]["candidate"]["prompts"] == 80
        assert s["design"]["candidate"]["n"] > 2 * s["design"]["reference"]["n"]
        assert s["comparable"] is False and "Scored positions differ" in s["comparable_reason"]
        assert s["verdict"]["status"] == NOT_COMPARABLE and c.verdict()["status"] == NOT_COMPARABLE
        w = s["window_contraction"]
        assert w["mean"] is not None and w["lo"] is None and w["hi"] is None
        assert s["onset_layer"] is None and not s["localization_interval"]["contraction"]["localized"]
        assert c.layers.get_column("d_contraction_lo").null_count() == c.layers.height


def _seeds(seed: int, shifts: list[float], first_changed: int = 9, prompts: list[str] | None = None) -> TraceFrame:
    """A base and one DPO checkpoint per training seed (its own noise and late shift of α and −𝓛), same prompts."""
    rng = np.random.default_rng(seed)
    n_layers, g = 12, 10
    shared_a, shared_t = 0.05 * _ar1(rng, n_layers + 1, g), 0.01 * _ar1(rng, n_layers, g)
    frames = [_frame("base", 0.6 + shared_a + 0.01 * _ar1(rng, n_layers + 1, g),
                     0.3 + shared_t + 0.002 * _ar1(rng, n_layers, g), "p0")]
    for i, shift in enumerate(shifts):
        ga = 0.6 + shared_a + 0.01 * _ar1(rng, n_layers + 1, g)
        gt = 0.3 + shared_t + 0.002 * _ar1(rng, n_layers, g)
        ga[first_changed:] += shift
        gt[first_changed:] -= shift / 5
        frames.append(_frame(f"dpo-s{i}", ga, gt, (prompts or ["p0"] * len(shifts))[i]))
    return TraceFrame.concat(frames)


def test_seed_replicates_report_their_spread():
    """Three training seeds: the comparison is of their mean; the seed spread is the t-interval of the per-seed
    window means (computed here independently)."""
    frame = _seeds(8, [0.03, 0.04, 0.05])
    names = ["dpo-s0", "dpo-s1", "dpo-s2"]
    c = frame.compare("base", names)
    s = c.summary
    assert c.candidate == "mean of dpo-s0, dpo-s1, dpo-s2" and s["paired"] is True
    base = frame.checkpoint("base").get_column("contraction").to_numpy()
    per = [float((frame.checkpoint(n).get_column("contraction").to_numpy() - base)[9:].mean()) for n in names]
    assert s["seeds"]["per_seed_contraction"] == pytest.approx(per)
    sp = s["seeds"]["contraction"]
    half = stats.t.ppf(0.975, 2) * np.std(per, ddof=1) / math.sqrt(3)
    assert sp["mean"] == pytest.approx(np.mean(per)) and sp["lo"] == pytest.approx(np.mean(per) - half)
    assert s["window_contraction"]["mean"] == pytest.approx(np.mean(per))  # the mean of the seeds
    assert s["verdict"]["status"] == SIGNATURE and "seed spread" in repr(c)


def test_a_direction_needs_the_seed_interval_too():
    """Seeds that disagree: the prompt interval of their mean may exclude 0, the seed interval does not, so no
    direction is claimed."""
    frame = _seeds(9, [0.08, -0.02, 0.01])
    s = frame.compare("base", ["dpo-s0", "dpo-s1", "dpo-s2"]).summary
    assert s["window_contraction"]["lo"] > 0  # prompt resampling alone would call it
    assert s["seeds"]["contraction"]["lo"] < 0 < s["seeds"]["contraction"]["hi"]
    assert s["verdict"]["status"] not in (SIGNATURE, REVERSED)


def test_seed_replicates_bad_input():
    frame = _seeds(10, [0.03, 0.04], prompts=["p0", "other"])
    with pytest.raises(InputError, match="at least 2 replicate"):
        frame.compare("base", ["dpo-s0"])
    with pytest.raises(InputError, match="different prompts"):
        frame.compare("base", ["dpo-s0", "dpo-s1"])
    with pytest.raises(InputError, match="twice"):
        frame.compare("base", ["dpo-s0", "dpo-s0"])
    with pytest.raises(InputError, match="share checkpoints"):
        frame.compare(["base", "dpo-s0"], ["dpo-s0", "dpo-s1"])


def test_frames_without_replicates_compare_without_intervals():
    """No jackknife replicates (or no α at all: too few tokens): estimates without intervals, no claim, no crash."""
    def toy(name, alpha):
        return TraceFrame.from_columns({
            "layer": [0, 1, 2], "depth": [0.0, 0.5, 1.0], "contraction": alpha, "contraction_lo": [None] * 3,
            "contraction_hi": [None] * 3, "contraction_r2": [0.9] * 3, "transport": [0.3, 0.2, None],
            "transport_lo": [None] * 3, "transport_hi": [None] * 3, "entropy": [5.0, 4.0, 3.0],
            "n_tokens": [100] * 3}, checkpoint=name)
    s = compare(toy("a", [0.5, 0.6, 0.7]), toy("b", [0.5, 0.6, 0.9])).summary
    assert s["window_contraction"] == {"mean": pytest.approx(0.2), "lo": None, "hi": None}
    assert s["onset_layer"] is None and s["verdict"]["status"] == MIXED
    s = compare(toy("a", [None] * 3), toy("b", [None] * 3)).summary
    assert s["window_contraction"]["mean"] is None and s["verdict"]["status"] == MIXED


def test_pick_pair_reads_comma_separated_seed_replicates():
    from spinal_nb.frame import pick_pair

    names = ["base", "dpo-s0", "dpo-s1", "dpo-s2"]
    assert pick_pair(names, None, "dpo-s0,dpo-s1, dpo-s2") == ("base", ["dpo-s0", "dpo-s1", "dpo-s2"])
    assert pick_pair(["base", "dpo"], None, None) == ("base", "dpo")
    assert pick_pair(["a", "b", "c"], "a,b", None) == (["a", "b"], "c")
    with pytest.raises(FrameError, match="No checkpoint 'dpo-s9'"):
        pick_pair(names, None, "dpo-s0,dpo-s9")
    with pytest.raises(InputError, match="both name"):
        pick_pair(names, "base,dpo-s0", "dpo-s0,dpo-s1")
    with pytest.raises(InputError, match="say which two"):
        pick_pair(names, None, None)
    frame = _seeds(11, [0.03, 0.04, 0.05])  # the command line's names go straight to compare
    c = frame.compare(*pick_pair(frame.checkpoints, None, "dpo-s0,dpo-s1,dpo-s2"))
    assert c.summary["seeds"]["n"] == 3
