"""What a comparison of two checkpoints may claim: family-wise bands, onset, localization, verdict, N policy.

Pure math on numpy arrays (no torch, no I/O, no frames). Inputs are per-layer estimates [L] and delete-a-group
jackknife replicates [L, G] as stored in the TraceFrame (`contraction_jk`, `transport_jk`; NaN where missing).

Replicates of a difference. A *paired* comparison (same prompts, same groups) has one replicate set, the difference of
the two checkpoints' replicates. An *unpaired* one has two independent sets whose variances add; every function here
takes either one [L, G] array or a tuple of such arrays, and `difference_replicates` builds the right one. For a
statistic f of the difference, each set k gives a jackknife se_k of f, and se^2 = sum_k se_k^2 (df = min_k G_k - 1,
as in compare).

Error control (measured in benchmarks/stat_calibration.py, table in benchmarks/results/stat_calibration.md):
- `simultaneous_band`: max-|t| critical value over layers, from the replicates' correlation across layers;
- `onset`: the deepest run of layers separated from 0, all of one sign, by the band or as a fixed sequence (both:
  family-wise error <= 1 - confidence);
- `localization`: share of sum |delta| in the terminal window with an interval, read against the share of layers;
- `verdict`: one vocabulary; an effect counts only when its interval excludes 0 (and, with seeds, the seed interval);
- `comparable_n` / `subsample_positions`: alpha-hat depends on the number of scored positions N, so contraction
  deltas are only read between traces of equal N (and equal width d).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..errors import InputError

# ---------------------------------------------------------------------------------------------------------------
# replicate sets

Replicates = np.ndarray | tuple[np.ndarray, ...]


def difference_replicates(ref_estimates, ref_replicates, cand_estimates, cand_replicates,
                          paired: bool) -> tuple[np.ndarray, ...]:
    """Replicate sets of delta = candidate - reference, per layer.

    Paired (same prompts and groups): one set, candidate replicates minus reference replicates. Unpaired: two
    independent sets, each side's replicates with the other side held at its full-sample estimate (their jackknife
    variances add, the rule compare uses for means, here valid for any statistic of the difference).

    >>> ra, rb = np.array([[1.0, 1.1, 0.9]]), np.array([[2.0, 2.2, 1.9]])
    >>> difference_replicates([1.0], ra, [2.0], rb, paired=True)[0].round(2).tolist()
    [[1.0, 1.1, 1.0]]
    >>> [s.round(2).tolist() for s in difference_replicates([1.0], ra, [2.0], rb, paired=False)]
    [[[1.0, 1.2, 0.9]], [[1.0, 0.9, 1.1]]]
    """
    ea, eb = _vector(ref_estimates), _vector(cand_estimates)
    ra, rb = _matrix(ref_replicates, ea.size), _matrix(cand_replicates, eb.size)
    if ea.size != eb.size:
        raise InputError(f"Reference has {ea.size} layers and candidate {eb.size}; interpolate onto common depths first.")
    if paired:
        if ra.shape != rb.shape:
            raise InputError(f"Paired replicates need the same groups; got shapes {ra.shape} and {rb.shape}.")
        return (rb - ra,)
    return (rb - ea[:, None], eb[:, None] - ra)


def _vector(x) -> np.ndarray:
    """1-D float64 array; None (a null from a frame) becomes NaN."""
    return np.asarray(x, dtype=np.float64).ravel()


def _matrix(r, n_layers: int) -> np.ndarray:
    a = np.asarray(r, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != n_layers:
        raise InputError(f"Replicates must have shape [{n_layers} layers, G groups], got {a.shape}.")
    return a


def _sets(replicates: Replicates, n_layers: int) -> list[np.ndarray]:
    sets = list(replicates) if isinstance(replicates, tuple) else [replicates]
    if not sets:
        raise InputError("No replicate sets given.")
    return [_matrix(s, n_layers) for s in sets]


def _usable(est: np.ndarray, sets: list[np.ndarray]) -> np.ndarray:
    """Layers with a finite estimate and every replicate finite in every set (as jackknife_se requires)."""
    ok = np.isfinite(est)
    for s in sets:
        ok &= s.shape[1] >= 2
        ok &= np.all(np.isfinite(s), axis=1) if s.shape[1] else False
    return ok


def _se_of(values: np.ndarray) -> float:
    """Jackknife se of one statistic's replicates [G]: sqrt((G-1)/G * sum (r - mean)^2)."""
    g = values.size
    return float(math.sqrt((g - 1) / g * ((values - values.mean()) ** 2).sum()))


def _df(sets: list[np.ndarray]) -> int:
    return max(min(s.shape[1] for s in sets) - 1, 1)


def _t(confidence: float, df: int) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df=df))


def _check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1.0:
        raise InputError(f"confidence must be in [0.5, 1), got {confidence}.")


# ---------------------------------------------------------------------------------------------------------------
# intervals of one number


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval; `lo`/`hi` None when there is no interval."""

    estimate: float | None
    lo: float | None
    hi: float | None

    @property
    def sign(self) -> int:
        """+1 when the interval lies above 0, -1 below, 0 when it contains or touches 0 (or is missing)."""
        if self.lo is None or self.hi is None:
            return 0
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0


def statistic_interval(f, estimates, replicates: Replicates, confidence: float = 0.95) -> Interval:
    """Jackknife t-interval of any statistic f([L] delta) -> float, from one or several replicate sets.

    >>> reps = np.array([[0.9, 1.1, 1.0, 1.05, 0.95]])
    >>> iv = statistic_interval(lambda d: float(d[0]), [1.0], reps)
    >>> iv.lo < 1.0 < iv.hi
    True
    """
    _check_confidence(confidence)
    est = _vector(estimates)
    sets = _sets(replicates, est.size)
    value = f(est)
    if value is None or not math.isfinite(value):
        return Interval(None, None, None)
    var = 0.0
    for s in sets:
        if s.shape[1] < 2:
            return Interval(float(value), None, None)
        r = np.array([f(s[:, j]) for j in range(s.shape[1])], dtype=np.float64)
        if not np.all(np.isfinite(r)):
            return Interval(float(value), None, None)
        var += _se_of(r) ** 2
    half = _t(confidence, _df(sets)) * math.sqrt(var)
    return Interval(float(value), float(value - half), float(value + half))


def terminal_window(depth, window: float = 0.7) -> np.ndarray:
    """Boolean mask of the layers with depth >= window (the terminal window).

    >>> terminal_window(np.arange(9) / 8).nonzero()[0].tolist()
    [6, 7, 8]
    """
    return _vector(depth) >= window - 1e-12


def _inside(depth, window: float, n_layers: int) -> np.ndarray:
    inside = terminal_window(depth, window)
    if inside.size != n_layers:
        raise InputError(f"depth has {inside.size} entries for {n_layers} estimates.")
    return inside


def window_mean(estimates, replicates: Replicates, depth, window: float = 0.7,
                confidence: float = 0.95) -> Interval:
    """Mean delta over the terminal window's usable layers (finite estimate and replicates), with its interval.

    >>> rng = np.random.default_rng(0)
    >>> reps = 0.1 + 0.01 * rng.standard_normal((9, 10))
    >>> window_mean(reps.mean(1), reps, np.arange(9) / 8).sign
    1
    """
    est = _vector(estimates)
    sets = _sets(replicates, est.size)
    keep = _inside(depth, window, est.size) & _usable(est, sets)
    if not keep.any():
        return Interval(None, None, None)
    return statistic_interval(lambda d: float(d[keep].mean()), est, tuple(sets), confidence)


# ---------------------------------------------------------------------------------------------------------------
# the simultaneous band


@dataclass(frozen=True)
class Band:
    """Per-layer intervals that hold for all layers at once with probability `confidence`.

    Layers outside the family (missing estimate or replicates) have NaN bounds; a layer whose se is exactly 0 has
    lo = hi = estimate. `crit` is the family-wise critical value, between `pointwise_crit` (the per-layer t) and
    `bonferroni_crit`.
    """

    estimate: np.ndarray
    se: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    crit: float
    pointwise_crit: float
    bonferroni_crit: float
    confidence: float
    df: int
    n_family: int
    shrinkage: tuple[float, ...] = field(default=())

    @property
    def sign(self) -> np.ndarray:
        """Per layer: +1 band above 0, -1 below, 0 when it contains or touches 0 or is missing."""
        with np.errstate(invalid="ignore"):
            return np.where(self.lo > 0, 1, np.where(self.hi < 0, -1, 0)).astype(int)


def _shrinkage(cs: np.ndarray) -> float:
    """Shrinkage intensity of the replicates' correlation matrix toward the identity (Schafer & Strimmer 2005,
    with the Gaussian large-sample variance (1 - r^2)^2 / (G - 1) of a sample correlation): lambda =
    sum_{i != j} (1 - r_ij^2)^2 / (G - 1) / sum_{i != j} r_ij^2, clipped to [0, 1]. With G ~ 10 replicates and more
    layers than that, the raw correlation has rank G - 1 and overstates how alike layers are, which makes the
    max-|t| critical value too small (family-wise error 0.06 instead of 0.05 at L = 30); shrunk, it is within
    Monte Carlo error of the critical value under the true correlation (benchmark)."""
    m, g = cs.shape
    if m < 2:
        return 0.0
    r = cs @ cs.T
    off = ~np.eye(m, dtype=bool)
    den = float((r[off] ** 2).sum())
    if den <= 0:
        return 1.0
    return float(np.clip(((1 - r[off] ** 2) ** 2).sum() / (g - 1) / den, 0.0, 1.0))


def _max_t_quantile(sets: list[np.ndarray], confidence: float, n_sim: int, seed: int,
                    shrink: bool = True) -> tuple[float, tuple]:
    """The `confidence` quantile of max_l |e_l| / s_l under a Gaussian model of the jackknife: per replicate set k
    (nu_k = G_k - 1 degrees of freedom), nu_k + 1 independent N(0, Sigma_k) vectors w_0..w_nu; e = sum_k w_0,
    s^2 = sum_k mean_j w_j^2 (the law of a mean's error and of its variance estimate from G_k groups). Sigma_k =
    D_k R_k D_k with D_k the set's jackknife se and R_k its replicates' correlation, shrunk (`_shrinkage`)."""
    rng = np.random.default_rng(seed)
    m = sets[0].shape[0]
    parts = []
    for s in sets:
        c = s - s.mean(axis=1, keepdims=True)
        norm = np.sqrt((c ** 2).sum(axis=1))
        live = norm > 0
        cs = np.zeros_like(c)
        cs[live] = c[live] / norm[live, None]  # rows: unit vectors, cs @ cs.T = correlation
        se = np.sqrt((s.shape[1] - 1) / s.shape[1]) * norm
        lam = _shrinkage(cs[live]) if shrink and live.sum() >= 2 else 0.0
        parts.append((cs, se, lam, s.shape[1] - 1))
    out, chunk = [], max(1, min(n_sim, 200_000 // max(m, 1)))
    for start in range(0, n_sim, chunk):
        k = min(chunk, n_sim - start)
        e = np.zeros((k, m))
        v = np.zeros((k, m))
        for cs, se, lam, nu in parts:  # float32 draws: Monte Carlo error dwarfs rounding
            w = rng.standard_normal((k * (nu + 1), cs.shape[1]), dtype=np.float32) @ (
                math.sqrt(1 - lam) * cs.T).astype(np.float32)
            if lam > 0:
                w += math.sqrt(lam) * rng.standard_normal(w.shape, dtype=np.float32)
            w = w.reshape(k, nu + 1, m) * se.astype(np.float32)
            e += w[:, 0]
            v += (w[:, 1:] ** 2).mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(e) / np.sqrt(v)
        out.append(np.nanmax(t, axis=1))
    return float(np.quantile(np.concatenate(out), confidence)), tuple(p[2] for p in parts)


def simultaneous_band(estimates, replicates: Replicates, confidence: float = 0.95, *, n_sim: int = 10_000,
                      seed: int = 0, shrinkage: bool = True) -> Band:
    """Family-wise (max-|t|) band over layers: estimate +- crit * se, one crit for all layers.

    se is the per-layer jackknife se (the pointwise interval's), crit the `confidence` quantile of
    max_l |t_l| under a Gaussian model with the replicates' (shrunk) correlation across layers and G - 1 degrees of
    freedom (Monte Carlo with `n_sim` draws, fixed `seed`: the same input gives the same band). crit is clipped to
    [per-layer t, Bonferroni t], both valid bounds of the exact value. Layers with a missing estimate or replicate
    are left out of the family (NaN bounds). `shrinkage=False` uses the raw correlation (for calibration studies
    only: it is anti-conservative with more layers than groups).

    >>> rng = np.random.default_rng(1)
    >>> reps = rng.standard_normal((6, 10)) * 0.01
    >>> b = simultaneous_band(reps.mean(1), reps)
    >>> b.pointwise_crit <= b.crit <= b.bonferroni_crit
    True
    """
    _check_confidence(confidence)
    est = _vector(estimates)
    sets = _sets(replicates, est.size)
    usable = _usable(est, sets)
    se = np.full(est.size, np.nan)
    if usable.any():  # then every set has >= 2 replicates
        per_set = []
        for s in sets:
            c = s[usable] - s[usable].mean(axis=1, keepdims=True)
            per_set.append((s.shape[1] - 1) / s.shape[1] * (c ** 2).sum(axis=1))
        se[usable] = np.sqrt(np.sum(per_set, axis=0))
    family = usable & (se > 0)
    m, df = int(family.sum()), _df(sets)
    pointwise = _t(confidence, df)
    bonferroni = float(stats.t.ppf(1 - (1 - confidence) / (2 * max(m, 1)), df=df))
    crit, lam = pointwise, ()
    if m >= 2:
        crit, lam = _max_t_quantile([s[family] for s in sets], confidence, n_sim, seed, shrinkage)
        crit = float(np.clip(crit, pointwise, bonferroni))
    lo, hi = np.full(est.size, np.nan), np.full(est.size, np.nan)
    lo[family], hi[family] = est[family] - crit * se[family], est[family] + crit * se[family]
    flat = usable & (se == 0)
    lo[flat], hi[flat] = est[flat], est[flat]
    return Band(est, se, lo, hi, crit, pointwise, bonferroni, confidence, df, m, lam)


# ---------------------------------------------------------------------------------------------------------------
# onset


@dataclass(frozen=True)
class Onset:
    """First layer of the deepest sign-consistent run of layers separated from 0 (see `onset`)."""

    layer: int | None
    sign: int
    run: tuple[int, ...]
    band: Band
    procedure: str = "band"


ONSET_PROCEDURES = ("band", "sequence")


def onset(estimates, replicates: Replicates, confidence: float = 0.95, *, layers: Sequence[int] | None = None,
          band: Band | None = None, procedure: str = "band", n_sim: int = 10_000, seed: int = 0) -> Onset:
    """Onset of a change: walking from the deepest layer that has an interval (trailing layers without one, like
    transport at layer L, are skipped) toward layer 0, the run of layers whose interval excludes 0 with the deepest
    one's sign; onset is its first layer. None (sign 0) when the deepest layer's interval touches 0. A layer without
    an interval or of the other sign ends the run.

    `procedure="band"`: the intervals are the simultaneous band's. `procedure="sequence"`: the pointwise intervals
    (estimate +- t_{G-1} se), read as a fixed-sequence test from the deepest layer down, stopping at the first
    layer that is not separated. Both bound by 1 - confidence the chance of any onset claim when nothing changed and
    of a run reaching into unchanged layers (for the sequence: a false step needs the first unchanged layer in the
    order to be rejected, a single level-(1 - confidence) test). The sequence's run always contains the band's, so
    it is the more powerful of the two for this claim; the band also gives intervals valid for all layers at once.

    >>> rng = np.random.default_rng(2)
    >>> reps = 0.001 * rng.standard_normal((9, 10)) + np.r_[np.zeros(6), 0.1, 0.1, 0.1][:, None]
    >>> o = onset(reps.mean(1), reps)
    >>> o.layer, o.sign, onset(reps.mean(1), reps, procedure="sequence").layer
    (6, 1, 6)
    """
    if procedure not in ONSET_PROCEDURES:
        raise InputError(f"procedure must be one of {ONSET_PROCEDURES}, got {procedure!r}.")
    b = band if band is not None else simultaneous_band(estimates, replicates, confidence, n_sim=n_sim, seed=seed)
    idx = list(range(b.estimate.size)) if layers is None else [int(x) for x in layers]
    if len(idx) != b.estimate.size:
        raise InputError(f"layers has {len(idx)} entries for {b.estimate.size} estimates.")
    lo, hi = b.lo, b.hi
    if procedure == "sequence":
        family = np.isfinite(b.lo) & (b.se > 0)
        lo, hi = lo.copy(), hi.copy()
        lo[family] = b.estimate[family] - b.pointwise_crit * b.se[family]
        hi[family] = b.estimate[family] + b.pointwise_crit * b.se[family]
    has = np.isfinite(lo) & np.isfinite(hi)
    with np.errstate(invalid="ignore"):
        signs = np.where(lo > 0, 1, np.where(hi < 0, -1, 0))
    if not has.any():
        return Onset(None, 0, (), b, procedure)
    last = int(np.flatnonzero(has)[-1])
    sign = int(signs[last])
    if sign == 0:
        return Onset(None, 0, (), b, procedure)
    i = last
    while i - 1 >= 0 and has[i - 1] and signs[i - 1] == sign:
        i -= 1
    run = tuple(idx[i:last + 1])
    return Onset(run[0], sign, run, b, procedure)


# ---------------------------------------------------------------------------------------------------------------
# localization


@dataclass(frozen=True)
class Localization:
    """Share of sum |delta| inside the terminal window, its interval, and the no-localization baseline."""

    share: float | None
    lo: float | None
    hi: float | None
    baseline: float | None
    localized: bool
    n_window: int
    n_layers: int


def localization_baseline(depth, window: float = 0.7) -> float:
    """Share of layers inside the terminal window: the share of sum |delta| when every layer changes alike.

    >>> round(localization_baseline(np.arange(9) / 8), 4), round(localization_baseline(np.arange(31) / 30), 4)
    (0.3333, 0.3226)
    """
    inside = terminal_window(depth, window)
    return float(inside.sum() / inside.size) if inside.size else float("nan")


def localization(estimates, replicates: Replicates, depth, window: float = 0.7,
                 confidence: float = 0.95) -> Localization:
    """Share of sum_l |delta_l| inside the window (usable layers only) with a jackknife t-interval (the share
    recomputed from each replicate), read against the baseline `localization_baseline` over the same layers:
    `localized` only when the interval's lower end is above the baseline.

    >>> rng = np.random.default_rng(3)
    >>> reps = 0.002 * rng.standard_normal((9, 10)) + np.r_[np.zeros(6), 0.1, 0.1, 0.1][:, None]
    >>> loc = localization(reps.mean(1), reps, np.arange(9) / 8)
    >>> loc.localized, round(loc.baseline, 4)
    (True, 0.3333)
    """
    est = _vector(estimates)
    sets = _sets(replicates, est.size)
    keep = _usable(est, sets)
    inside = _inside(depth, window, est.size)
    n, n_in = int(keep.sum()), int((keep & inside).sum())
    if n == 0:
        return Localization(None, None, None, None, False, 0, 0)
    baseline = n_in / n

    def share(d: np.ndarray) -> float | None:
        a = np.abs(d[keep])
        tot = a.sum()
        return None if tot <= 0 else float(a[inside[keep]].sum() / tot)

    iv = statistic_interval(share, est, tuple(sets), confidence)
    localized = iv.lo is not None and iv.lo > baseline
    return Localization(iv.estimate, iv.lo, iv.hi, baseline, bool(localized), n_in, n)
