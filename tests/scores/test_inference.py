"""What compare may claim: simultaneous band, onset, localization, verdict, seed spread, N policy.

Analytic checks against independent computations, then small null calibrations: false-claim rates over many seeds
must stay within nominal + 3 binomial sd (benchmarks/stat_calibration.py runs the large version).
"""
import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from spinal_nb.errors import InputError
from spinal_nb.scores import GramAccumulator, fit_tail
from spinal_nb.scores import inference as inf
from spinal_nb.scores import verdict as vd
from spinal_nb.scores.inference import (
    Interval,
    difference_replicates,
    localization,
    localization_baseline,
    onset,
    simultaneous_band,
    statistic_interval,
    window_mean,
)
from spinal_nb.scores.intervals import jackknife_interval, jackknife_se
from spinal_nb.scores.verdict import (
    MIXED,
    NO_CHANGE,
    NOT_COMPARABLE,
    REVERSED,
    SIGNATURE,
    comparable_n,
    jackknife_debiased,
    seed_spread,
    subsample_positions,
    verdict,
)

G = 10


def limit(n: int, p: float = 0.05) -> float:
    """Nominal false-claim rate + 3 binomial sd over n trials."""
    return p + 3 * math.sqrt(p * (1 - p) / n)


def ar_groups(rng, n_layers: int, rho: float, g: int = G) -> np.ndarray:
    """g group contributions [g, n_layers], standard normal, AR(1) over layers."""
    z = rng.standard_normal((g, n_layers))
    x = np.empty_like(z)
    x[:, 0] = z[:, 0]
    for j in range(1, n_layers):
        x[:, j] = rho * x[:, j - 1] + math.sqrt(1 - rho**2) * z[:, j]
    return x


def mean_and_replicates(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimate (mean over groups) and its leave-one-group-out replicates [n_layers, g]."""
    return x.mean(0), ((x.sum(0) - x) / (x.shape[0] - 1)).T


def test_docstring_examples_run():
    for module in (inf, vd):
        result = doctest.testmod(module, raise_on_error=False)
        assert result.failed == 0 and result.attempted > 0, module.__name__


# -- the band ------------------------------------------------------------------------------------------------------


def test_band_lies_between_pointwise_and_bonferroni_intervals():
    rng = np.random.default_rng(0)
    for trial in range(5):
        est, reps = mean_and_replicates(ar_groups(rng, 12, 0.2 * trial))
        b = simultaneous_band(est, reps, n_sim=3000)
        m = 12
        t1 = stats.t.ppf(0.975, G - 1)
        tb = stats.t.ppf(1 - 0.05 / (2 * m), G - 1)
        assert b.pointwise_crit == pytest.approx(t1) and b.bonferroni_crit == pytest.approx(tb)
        assert t1 <= b.crit <= tb and b.n_family == m
        for i in range(m):
            lo, hi = jackknife_interval(est[i], reps[i].tolist())  # the shipped pointwise interval
            se = jackknife_se(reps[i].tolist())
            assert b.se[i] == pytest.approx(se, rel=1e-12)
            assert b.lo[i] <= lo and b.hi[i] >= hi
            assert b.lo[i] >= est[i] - tb * se - 1e-12 and b.hi[i] <= est[i] + tb * se + 1e-12


def test_band_critical_value_for_uncorrelated_layers_is_the_sidak_t():
    # Replicates whose centered rows are orthonormal: sample correlation exactly I, shrinkage 1. Then the t statistics
    # of the Gaussian model are independent t_{G-1}, and max |t| has the Sidak quantile exactly.
    m = 6
    rng = np.random.default_rng(1)
    q = np.linalg.qr(np.c_[np.ones(G), rng.standard_normal((G, m))])[0][:, 1:]  # orthonormal, orthogonal to 1
    reps = (0.01 * q).T + 1.0
    assert np.allclose(np.corrcoef(reps), np.eye(m), atol=1e-12)
    b = simultaneous_band(reps.mean(1), reps, n_sim=40_000)
    sidak = stats.t.ppf((1 + 0.95 ** (1 / m)) / 2, G - 1)
    assert b.shrinkage[0] == pytest.approx(1.0)
    assert b.crit == pytest.approx(sidak, rel=0.02)


def test_band_critical_value_for_identical_layers_is_the_pointwise_t():
    rng = np.random.default_rng(2)
    row = rng.standard_normal(G)
    reps = np.stack([row * s + c for s, c in [(1, 0), (2, 5), (0.5, -1), (3, 2)]])  # correlation 1 between layers
    b = simultaneous_band(reps.mean(1), reps, n_sim=20_000)
    assert b.shrinkage[0] == pytest.approx(0.0, abs=1e-9)
    assert b.crit == pytest.approx(b.pointwise_crit, rel=0.02)


def test_band_leaves_out_layers_without_replicates_and_keeps_zero_variance_layers():
    rng = np.random.default_rng(3)
    est, reps = mean_and_replicates(ar_groups(rng, 6, 0.5))
    reps[2, 4] = np.nan  # a missing replicate
    est[4] = np.nan  # a missing estimate (e.g. transport at layer L)
    reps[5] = 0.25  # all replicates equal: se 0
    est[5] = 0.25
    b = simultaneous_band(est, reps, n_sim=2000)
    assert np.isnan(b.lo[[2, 4]]).all() and np.isnan(b.hi[[2, 4]]).all()
    assert b.lo[5] == b.hi[5] == 0.25 and b.se[5] == 0
    assert b.n_family == 3  # layers 0, 1, 3
    assert b.bonferroni_crit == pytest.approx(stats.t.ppf(1 - 0.05 / 6, G - 1))
    assert b.sign[5] == 1 and b.sign[2] == 0 and b.sign[4] == 0
    same = simultaneous_band(est, reps, n_sim=2000)
    assert same.crit == b.crit  # fixed seed: deterministic


def test_unpaired_sets_add_variances_like_compare():
    rng = np.random.default_rng(4)
    ea, ra = mean_and_replicates(ar_groups(rng, 5, 0.5) + 1.0)
    eb, rb = mean_and_replicates(ar_groups(rng, 5, 0.5) + 1.2)
    sets = difference_replicates(ea, ra, eb, rb, paired=False)
    iv = statistic_interval(lambda d: float(d[3]), eb - ea, sets)
    se = math.hypot(jackknife_se(ra[3].tolist()), jackknife_se(rb[3].tolist()))
    assert iv.hi - iv.estimate == pytest.approx(stats.t.ppf(0.975, G - 1) * se, rel=1e-12)
    paired = difference_replicates(ea, ra, eb, rb, paired=True)
    assert len(paired) == 1 and np.allclose(paired[0], rb - ra)
    b = simultaneous_band(eb - ea, sets, n_sim=2000)
    assert b.se[3] == pytest.approx(se, rel=1e-12)
    with pytest.raises(InputError):
        difference_replicates(ea, ra, eb, rb[:, :5], paired=True)


def test_window_mean_matches_the_jackknife_of_the_window_mean():
    rng = np.random.default_rng(5)
    est, reps = mean_and_replicates(ar_groups(rng, 9, 0.8))
    depth = np.arange(9) / 8
    iv = window_mean(est, reps, depth)
    lo, hi = jackknife_interval(float(est[6:].mean()), reps[6:].mean(0).tolist())
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), rel=1e-12)


# -- onset ---------------------------------------------------------------------------------------------------------


def planted(effect, noise=0.002, seed=0):
    rng = np.random.default_rng(seed)
    effect = np.asarray(effect, dtype=float)
    reps = effect[:, None] + noise * rng.standard_normal((effect.size, G))
    return reps.mean(1), reps


def test_onset_finds_the_first_layer_of_a_planted_late_effect():
    est, reps = planted([0, 0, 0, 0, 0, 0, 0.1, 0.1, 0.1])
    o = onset(est, reps)
    assert (o.layer, o.sign, o.run) == (6, 1, (6, 7, 8))
    est, reps = planted([0, 0, 0, 0, 0, -0.2, -0.1, -0.1, -0.1])
    assert (onset(est, reps).layer, onset(est, reps).sign) == (5, -1)
    o = onset(est, reps, layers=range(10, 19))  # reported in the caller's layer numbers
    assert o.layer == 15 and o.run[-1] == 18


def test_onset_needs_one_sign_the_deepest_layer_and_no_gap():
    est, reps = planted([0.1, 0.1, -0.1, 0.1, 0.1])  # a sign change ends the run
    assert onset(est, reps).layer == 3
    est, reps = planted([0.1, 0.1, 0.1, 0.1, 0.0])  # deepest layer unchanged: no onset
    assert onset(est, reps).layer is None and onset(est, reps).sign == 0
    est, reps = planted([0.1, 0.1, 0.1, 0.1, 0.1])
    est[-1], reps[-1] = np.nan, np.nan  # trailing layer without a score (transport at L): skipped
    assert onset(est, reps).layer == 0 and onset(est, reps).run == (0, 1, 2, 3)
    est, reps = planted([0.1, 0.1, 0.1, 0.1, 0.1])
    reps[2, 0] = np.nan  # a hole inside: the run stops there
    assert onset(est, reps).layer == 3


def test_fixed_sequence_onset_contains_the_band_onset_and_keeps_out_of_unchanged_layers():
    # 21 unchanged layers then 10 changed by 8 se: a run reaching below layer 21 is a family-wise error.
    rng = np.random.default_rng(8)
    n, early = 150, {"band": 0, "sequence": 0}
    for trial in range(n):
        x = ar_groups(rng, 31, 0.9) + np.r_[np.zeros(21), np.full(10, 8 / math.sqrt(G))]
        est, reps = mean_and_replicates(x)
        band = onset(est, reps, n_sim=1000, seed=trial)
        seq = onset(est, reps, band=band.band, procedure="sequence")
        assert band.layer is None or (seq.layer is not None and seq.layer <= band.layer)
        assert set(band.run) <= set(seq.run) and seq.procedure == "sequence"
        for name, o in (("band", band), ("sequence", seq)):
            early[name] += o.layer is not None and o.layer < 21
    assert max(early.values()) / n <= limit(n), early
    with pytest.raises(InputError):
        onset(est, reps, procedure="pointwise")


def test_a_small_uniform_effect_is_no_onset_at_layer_zero_without_family_wise_evidence():
    # Every layer 3 se away from 0, independent across 31 layers: each pointwise interval excludes 0, so the old
    # rule read "onset layer 0"; the family-wise band (critical value ~4.4 here) makes no claim.
    rng = np.random.default_rng(7)
    z = rng.standard_normal((31, G))
    z -= z.mean(1, keepdims=True)
    z *= (0.005 / 3) / np.sqrt((G - 1) / G * (z**2).sum(1, keepdims=True))  # jackknife se exactly 0.005 / 3
    est = np.full(31, 0.005)
    reps = est[:, None] + z
    assert all(jackknife_interval(est[i], reps[i].tolist())[0] > 0 for i in range(31))
    o = onset(est, reps)
    assert o.band.crit > 3.5 and o.layer is None


# -- localization ----------------------------------------------------------------------------------------------------


def test_localization_baselines_for_8_and_30_blocks():
    assert localization_baseline(np.arange(9) / 8) == pytest.approx(3 / 9)
    assert localization_baseline(np.arange(31) / 30) == pytest.approx(10 / 31)
    assert localization_baseline(np.arange(31) / 30, window=0.5) == pytest.approx(16 / 31)


def test_localization_interval_and_claim():
    depth = np.arange(9) / 8
    est, reps = planted([0, 0, 0, 0, 0, 0, 0.1, 0.1, 0.1], noise=0.002)
    loc = localization(est, reps, depth)
    share = np.abs(est[6:]).sum() / np.abs(est).sum()
    assert loc.share == pytest.approx(share) and loc.lo < loc.share < loc.hi
    assert loc.localized and loc.baseline == pytest.approx(1 / 3) and (loc.n_window, loc.n_layers) == (3, 9)
    est, reps = planted(np.full(9, 0.1), noise=0.002)  # the same change everywhere: share ~ baseline
    loc = localization(est, reps, depth)
    assert loc.lo < 1 / 3 < loc.hi and not loc.localized
    est, reps = planted(np.full(9, 0.1), noise=0.002)
    est[0], reps[0] = np.nan, np.nan  # baseline over the usable layers only
    assert localization(est, reps, depth).baseline == pytest.approx(3 / 8)
    with pytest.raises(InputError):
        localization(est, reps, depth[:-1])
    assert window_mean([None, 0.1], [[np.nan] * G, [0.1] * G], [0.0, 1.0]).estimate == pytest.approx(0.1)


# -- verdict and seeds -----------------------------------------------------------------------------------------------


def test_verdict_vocabulary():
    up, down, zero = Interval(0.05, 0.01, 0.09), Interval(-0.02, -0.03, -0.01), Interval(0.0, -0.01, 0.01)
    assert verdict(up, down).label == SIGNATURE
    assert verdict(Interval(-0.05, -0.09, -0.01), Interval(0.02, 0.01, 0.03)).label == REVERSED
    assert verdict(zero, zero).label == NO_CHANGE
    assert verdict(up, zero).label == MIXED
    assert verdict(up, Interval(0.02, 0.01, 0.03)).label == MIXED  # both up
    assert verdict(up, Interval(-0.02, None, None)).label == MIXED
    touching = Interval(0.05, 0.0, 0.1)
    assert verdict(touching, down).label == MIXED
    assert verdict(up, Interval(-0.02, -0.04, 0.0)).label == MIXED
    v = verdict(up, down)
    assert v.numbers["d_contraction_lo"] == 0.01 and "Δα" in v.reason
    nope = comparable_n(100, 400, 64)
    assert verdict(up, down, comparable=nope).label == NOT_COMPARABLE
    assert verdict(up, down, comparable=nope).reason == nope.reason


def test_verdict_with_seeds_counts_an_effect_only_beyond_the_seed_spread():
    up, down = Interval(0.05, 0.01, 0.09), Interval(-0.02, -0.03, -0.01)
    tight_up, tight_down = seed_spread([0.05, 0.06, 0.04]), seed_spread([-0.02, -0.025, -0.015])
    wide = seed_spread([0.08, -0.01, 0.05])  # interval contains 0
    assert verdict(up, down, seeds_contraction=tight_up, seeds_transport=tight_down).label == SIGNATURE
    assert verdict(up, down, seeds_contraction=wide, seeds_transport=tight_down).label == MIXED
    v = verdict(up, down, seeds_contraction=wide, seeds_transport=seed_spread([0.01, -0.02, 0.0]))
    assert v.label == NO_CHANGE and v.numbers["seeds_contraction_n"] == 3


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([-0.2, -0.1, 0.0, 0.1, 0.2]), min_size=4, max_size=4))
def test_verdict_never_claims_a_direction_when_an_interval_touches_zero(b):
    a_lo, a_hi, t_lo, t_hi = sorted(b[:2]) + sorted(b[2:])
    v = verdict(Interval((a_lo + a_hi) / 2, a_lo, a_hi), Interval((t_lo + t_hi) / 2, t_lo, t_hi))
    if v.label == SIGNATURE:
        assert a_lo > 0 and t_hi < 0
    if v.label == REVERSED:
        assert a_hi < 0 and t_lo > 0
    if v.label == NO_CHANGE:
        assert a_lo <= 0 <= a_hi and t_lo <= 0 <= t_hi


def test_seed_spread_is_the_t_interval_and_refuses_one_seed():
    x = [0.12, 0.08, 0.11, 0.07]
    s = seed_spread(x)
    half = stats.t.ppf(0.975, 3) * np.std(x, ddof=1) / 2
    assert (s.mean, s.sd, s.lo, s.hi, s.n) == pytest.approx((np.mean(x), np.std(x, ddof=1), np.mean(x) - half,
                                                             np.mean(x) + half, 4))
    for bad in ([], [0.1], [0.1, float("nan")]):
        with pytest.raises(InputError):
            seed_spread(bad)


# -- N policy --------------------------------------------------------------------------------------------------------


def test_comparable_n():
    assert comparable_n(1000, 1000, 576).ok
    assert comparable_n([900, 900], [900, 900], 576).ok
    no = comparable_n(260, 1040, 576)
    assert not no.ok and "N = 260" in no.reason and "1,040" in no.reason
    assert not comparable_n(1000, 1000, 576, 768).ok
    assert not comparable_n(1000, 1000, 576, prompts_a=20, prompts_b=80).ok
    assert not comparable_n([900, 900], [900, 901], 576).ok  # exact by default
    assert comparable_n([900, 900], [900, 901], 576, rel_tol=0.01).ok


def test_subsample_positions_is_deterministic_nested_and_bounded():
    a = subsample_positions(1000, 300, seed=4)
    assert a.size == 300 and np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 1000
    assert np.array_equal(a, subsample_positions(1000, 300, seed=4))
    assert not np.array_equal(a, subsample_positions(1000, 300, seed=5))
    assert set(subsample_positions(1000, 100, seed=4)) <= set(a)
    assert np.array_equal(subsample_positions(5, 5), np.arange(5))
    with pytest.raises(InputError):
        subsample_positions(10, 11)


def test_jackknife_debiased_removes_a_one_over_n_bias_and_gives_the_unbiased_variance():
    n, m = 120, 12  # 10 groups of 12
    assert jackknife_debiased(3.0 / n, [3.0 / (n - m)] * 10) == pytest.approx(0.0, abs=1e-15)
    x = np.random.default_rng(6).normal(size=15)  # delete-one: plug-in variance -> sample variance (ddof 1)
    reps = [np.var(np.delete(x, i)) for i in range(x.size)]
    assert jackknife_debiased(float(np.var(x)), reps) == pytest.approx(np.var(x, ddof=1), rel=1e-12)
    assert jackknife_debiased(1.0, [1.0]) is None and jackknife_debiased(1.0, [1.0, np.nan]) is None


# -- small null calibrations -----------------------------------------------------------------------------------------


def test_family_wise_error_of_band_onset_and_window_calls_on_synthetic_nulls():
    # Gaussian replicate arrays, 31 layers (more than the 10 groups), uncorrelated or residual-stream-like (rho 0.9).
    rng = np.random.default_rng(10)
    n, depth = 200, np.arange(31) / 30
    for rho in (0.0, 0.9):
        bands = onsets = sequences = pointwise_any = windows = 0
        for trial in range(n):
            est, reps = mean_and_replicates(ar_groups(rng, 31, rho))
            o = onset(est, reps, n_sim=1000, seed=trial)
            bands += bool((o.band.sign != 0).any())
            onsets += o.layer is not None
            sequences += onset(est, reps, band=o.band, procedure="sequence").layer is not None
            pointwise_any += bool((np.abs(est) / o.band.se > o.band.pointwise_crit).any())
            windows += window_mean(est, reps, depth).sign != 0
        assert onsets <= bands and bands / n <= limit(n), (rho, bands / n)
        assert sequences / n <= limit(n), (rho, sequences / n)
        assert windows / n <= limit(n), (rho, windows / n)
        assert pointwise_any / n > 2 * limit(n)  # what pointwise intervals risk over 31 layers: the check can fail


def gram_trace(rng, alphas, basis, lat, prompts, per):
    """alpha and replicates per layer through GramAccumulator + fit_tail; `lat`: per layer (prompt, token) draws."""
    d = basis.shape[0]
    k = np.arange(1, d + 1.0)
    groups = np.repeat(np.arange(prompts) % G, per)
    est, reps = np.empty(len(alphas)), np.empty((len(alphas), G))
    for i, a in enumerate(alphas):
        u, z = lat[i]
        x = 40.0 + ((np.sqrt(0.3) * np.repeat(u, per, 0) + np.sqrt(0.7) * z) * k ** -a) @ basis.T
        acc = GramAccumulator(1, d, G)
        acc.update(0, x, groups)
        whole, parts = acc.spectra(0, list(range(G)))
        est[i] = fit_tail(whole).alpha
        reps[i] = [fit_tail(s).alpha for s in parts]
    return est, reps


def draws(rng, n_layers, prompts, per, d, rho=0.9):
    out, prev = [], None
    for _ in range(n_layers):
        new = (rng.standard_normal((prompts, d)), rng.standard_normal((prompts * per, d)))
        prev = new if prev is None else tuple(rho * p + math.sqrt(1 - rho**2) * q for p, q in zip(prev, new, strict=True))
        out.append(prev)
    return out


def test_gram_based_paired_null_keeps_onset_and_window_calls_nominal():
    # The shipped alpha path on a small paired null: 5 layers, d = 16, N = 4d; the second checkpoint shares 90 % of
    # its states' variance with the first (same prompts), and has the same population spectra.
    rng = np.random.default_rng(12)
    d, prompts, per, n = 16, 16, 4, 80
    alphas = np.linspace(0.6, 1.0, 5)
    depth = np.arange(5) / 4
    onsets = sequences = windows = 0
    for trial in range(n):
        basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
        lat = draws(rng, 5, prompts, per, d)
        fresh = draws(rng, 5, prompts, per, d)
        lat_b = [tuple(math.sqrt(0.9) * p + math.sqrt(0.1) * q for p, q in zip(a, b, strict=True))
                 for a, b in zip(lat, fresh, strict=True)]
        ea, ra = gram_trace(rng, alphas, basis, lat, prompts, per)
        eb, rb = gram_trace(rng, alphas, basis, lat_b, prompts, per)
        sets = difference_replicates(ea, ra, eb, rb, paired=True)
        o = onset(eb - ea, sets, n_sim=2000, seed=trial)
        onsets += o.layer is not None
        sequences += onset(eb - ea, sets, band=o.band, procedure="sequence").layer is not None
        windows += window_mean(eb - ea, sets, depth).sign != 0
    assert onsets / n <= limit(n), onsets / n
    assert sequences / n <= limit(n), sequences / n
    assert windows / n <= limit(n), windows / n


def test_alpha_interval_covers_its_finite_n_target_at_4d():
    # At N = 4d alpha-hat is biased above the population alpha; the interval should cover E[alpha-hat_N], what the
    # estimator targets at that N (estimated from an independent set of draws).
    rng = np.random.default_rng(13)
    d, prompts, per = 16, 16, 4
    a = 0.8

    def one():
        basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
        est, reps = gram_trace(rng, [a], basis, draws(rng, 1, prompts, per, d), prompts, per)
        return est[0], reps[0]

    target = np.mean([one()[0] for _ in range(300)])
    n, hits = 200, 0
    for _ in range(n):
        est, reps = one()
        lo, hi = jackknife_interval(est, reps.tolist())
        hits += lo <= target <= hi
    assert target > a + 0.02  # the finite-N bias this is about
    assert hits / n >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / n), hits / n
