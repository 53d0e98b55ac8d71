"""What a comparison concludes: seed spread, the one verdict vocabulary, and the N policy.

Pure math (no torch, no I/O). The per-score intervals come from spinal_nb.scores.inference; calibrated in
benchmarks/stat_calibration.py (table: benchmarks/results/stat_calibration.md).
- `seed_spread`: the t-interval over training seeds (replicate checkpoints), next to the prompt interval;
- `verdict`: "the paper's signature", "reversed", "no detectable change", "mixed / inconclusive", "not comparable";
  a direction is claimed only when its interval excludes 0 (and, with seeds, the seed interval too);
- `comparable_n` / `subsample_positions`: alpha-hat depends on the number of scored positions N (and on d and the
  number of prompts), so contraction deltas are only read between traces of the same design;
- `jackknife_debiased`: an absolute alpha level at N >= 8d, for display only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .inference import Interval, _check_confidence, _t


@dataclass(frozen=True)
class SeedSpread:
    """Mean, sd and t-interval of one number over training seeds (mean +- t_{S-1} * sd / sqrt(S))."""

    mean: float
    sd: float
    lo: float
    hi: float
    n: int

    @property
    def sign(self) -> int:
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0


def seed_spread(per_seed_estimates: Sequence[float], confidence: float = 0.95) -> SeedSpread:
    """Spread over training seeds of a number (e.g. each seed's window-mean delta): mean, sd (ddof 1) and the
    Student t-interval mean +- t_{S-1, (1+c)/2} * sd / sqrt(S). Needs at least 2 finite values.

    >>> s = seed_spread([0.10, 0.12, 0.08])
    >>> round(s.mean, 3), round(s.sd, 3), s.n, s.lo > 0
    (0.1, 0.02, 3, True)
    """
    _check_confidence(confidence)
    x = np.asarray(per_seed_estimates, dtype=np.float64).ravel()
    if x.size < 2:
        raise InputError(f"A seed spread needs estimates from at least 2 training seeds, got {x.size}.")
    if not np.all(np.isfinite(x)):
        raise InputError("Per-seed estimates must all be finite numbers (one seed has none).")
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = _t(confidence, x.size - 1) * sd / math.sqrt(x.size)
    return SeedSpread(mean, sd, mean - half, mean + half, int(x.size))


SIGNATURE = "the paper's signature"
REVERSED = "reversed"
NO_CHANGE = "no detectable change"
MIXED = "mixed / inconclusive"
NOT_COMPARABLE = "not comparable"
VERDICTS = (SIGNATURE, REVERSED, NO_CHANGE, MIXED, NOT_COMPARABLE)
# a name per verdict safe in a CSS class or a file name (the labels hold spaces, "/" and an apostrophe)
VERDICT_KEYS = {SIGNATURE: "signature", REVERSED: "reversed", NO_CHANGE: "no-change", MIXED: "mixed",
                NOT_COMPARABLE: "not-comparable"}


@dataclass(frozen=True)
class Verdict:
    """One of VERDICTS, a one-sentence reason, and the numbers it was read from."""

    label: str
    reason: str
    numbers: dict[str, float | int | None]


def _effect(iv: Interval, seeds: SeedSpread | None) -> int:
    """+1/-1 when the prompt interval excludes 0 and (if seeds are given) the seed interval does too, same side."""
    s = iv.sign
    if seeds is not None and seeds.sign != s:
        return 0
    return s


def _fmt(iv: Interval) -> str:
    if iv.estimate is None:
        return "none"
    if iv.lo is None:
        return f"{iv.estimate:+.4f} (no interval)"
    return f"{iv.estimate:+.4f} [{iv.lo:+.4f}, {iv.hi:+.4f}]"


def _seed_fmt(sp: SeedSpread | None) -> str:
    return "" if sp is None else f" (over {sp.n} seeds [{sp.lo:+.4f}, {sp.hi:+.4f}])"


def verdict(contraction: Interval, transport: Interval, *, seeds_contraction: SeedSpread | None = None,
            seeds_transport: SeedSpread | None = None, comparable: NCheck | None = None) -> Verdict:
    """The comparison's label from the window-mean deltas of contraction (alpha) and transport (L):

    - "the paper's signature": delta-alpha > 0 and delta-L < 0, both intervals excluding 0;
    - "reversed": delta-alpha < 0 and delta-L > 0, both excluding 0;
    - "no detectable change": both intervals contain (or touch) 0;
    - "mixed / inconclusive": anything else, including a missing interval;
    - "not comparable": `comparable` (from `comparable_n`) says the contraction deltas are not comparable.
    With seed spreads (`seed_spread` over training seeds of the same window-mean delta), an effect counts only when
    the seed t-interval also excludes 0 on the same side; otherwise that score counts as "no detectable change".

    >>> verdict(Interval(0.05, 0.01, 0.09), Interval(-0.02, -0.03, -0.01)).label
    "the paper's signature"
    >>> verdict(Interval(0.05, 0.0, 0.09), Interval(-0.02, -0.03, -0.01)).label
    'mixed / inconclusive'
    """
    nums: dict[str, float | int | None] = {
        "d_contraction": contraction.estimate, "d_contraction_lo": contraction.lo, "d_contraction_hi": contraction.hi,
        "d_transport": transport.estimate, "d_transport_lo": transport.lo, "d_transport_hi": transport.hi}
    for name, sp in (("contraction", seeds_contraction), ("transport", seeds_transport)):
        if sp is not None:
            nums.update({f"seeds_{name}_mean": sp.mean, f"seeds_{name}_sd": sp.sd, f"seeds_{name}_lo": sp.lo,
                         f"seeds_{name}_hi": sp.hi, f"seeds_{name}_n": sp.n})
    if comparable is not None and not comparable.ok:
        return Verdict(NOT_COMPARABLE, comparable.reason, nums)
    a, t = _effect(contraction, seeds_contraction), _effect(transport, seeds_transport)
    seeds = " and its seed interval" if seeds_contraction or seeds_transport else ""
    what = f"window Δα {_fmt(contraction)}{_seed_fmt(seeds_contraction)}, Δ𝓛 {_fmt(transport)}" \
           f"{_seed_fmt(seeds_transport)}"
    if contraction.lo is None or transport.lo is None:
        return Verdict(MIXED, f"A window mean has no interval ({what}).", nums)
    if a == 1 and t == -1:
        return Verdict(SIGNATURE, f"Δα > 0 and Δ𝓛 < 0, each interval{seeds} excluding 0 ({what}).", nums)
    if a == -1 and t == 1:
        return Verdict(REVERSED, f"Δα < 0 and Δ𝓛 > 0, each interval{seeds} excluding 0 ({what}).", nums)
    if a == 0 and t == 0:
        return Verdict(NO_CHANGE, f"Both intervals{seeds} contain 0 ({what}).", nums)
    return Verdict(MIXED, f"Only one score changed, or both in the same direction ({what}).", nums)


# ---------------------------------------------------------------------------------------------------------------
# the N policy


@dataclass(frozen=True)
class NCheck:
    """Whether two traces' contraction scores may be compared; `reason` says why not (or what was checked)."""

    ok: bool
    reason: str


def comparable_n(n_a, n_b, d_a: int, d_b: int | None = None, *, prompts_a: int | None = None,
                 prompts_b: int | None = None, rel_tol: float = 0.0) -> NCheck:
    """Whether contraction deltas between two traces may be read: same width d, same number of scored positions N
    at every layer (within `rel_tol`, default 0: exactly equal) and, when given, the same number of prompts.

    alpha-hat is biased, and its bias depends on the sampling design, not only on the model: on N/d (at d = 64 and
    population alpha 0.6 its mean is ~0.98 at N = d, ~0.70 at N = 4d, ~0.61 at N = 64d, against a jackknife se of
    0.005-0.03), on d itself at equal N/d, and on how many prompts the N positions come from (prompt-level
    correlation: 80 prompts subsampled to the N of 20 prompts still read lower). The bias also depends on the
    unknown spectrum, so it cannot be subtracted reliably below N ~ 4d (benchmarks/results/stat_calibration.md).
    Traces of the same prompts and tokenizer have equal N and prompts; traces of the same prompts under different
    tokenizers can be made equal with one position budget (`subsample_positions`).

    >>> comparable_n(1000, 1000, 576).ok, comparable_n(1000, 4000, 576).ok
    (True, False)
    >>> comparable_n(1000, 1000, 576, prompts_a=20, prompts_b=80).ok
    False
    """
    na, nb = np.atleast_1d(np.asarray(n_a, dtype=np.int64)), np.atleast_1d(np.asarray(n_b, dtype=np.int64))
    d_b = d_a if d_b is None else d_b
    if d_a != d_b:
        return NCheck(False, f"Widths differ (d = {d_a} and {d_b}): α̂'s bias depends on N/d and d, so contraction "
                             "deltas between them are not comparable.")
    if na.shape != nb.shape:
        return NCheck(False, f"The traces have {na.size} and {nb.size} layers; compare N layer by layer on equal depths.")
    rel = np.abs(na - nb) / np.maximum(np.minimum(na, nb), 1)
    worst = int(np.argmax(rel))
    if rel[worst] > rel_tol:
        return NCheck(False, f"Scored positions differ (N = {int(na[worst]):,} and {int(nb[worst]):,} at layer index "
                             f"{worst}, N/d = {na[worst] / d_a:.2f} and {nb[worst] / d_a:.2f}): α̂ depends on N/d, so "
                             "Δα would partly be that difference. Trace both on the same prompts, or with the same "
                             "position budget.")
    if prompts_a is not None and prompts_b is not None and prompts_a != prompts_b:
        return NCheck(False, f"Equal N but {prompts_a:,} and {prompts_b:,} prompts: α̂ depends on how many prompts the "
                             "positions come from (tokens of a prompt are alike). Trace both on the same prompts.")
    return NCheck(True, f"Equal N ({int(na.max()):,} scored positions, N/d = {na.max() / d_a:.2f}) and width d = {d_a}.")


def subsample_positions(n_total: int, budget: int, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of `budget` of `n_total` scored positions, uniformly without replacement, deterministic in
    (n_total, seed) and nested: a smaller budget keeps a subset of a larger one's positions.

    >>> subsample_positions(10, 4, seed=0).size, bool((subsample_positions(10, 4) == subsample_positions(10, 4)).all())
    (4, True)
    >>> set(subsample_positions(10, 4).tolist()) <= set(subsample_positions(10, 6).tolist())
    True
    """
    if n_total < 0 or budget < 0:
        raise InputError(f"n_total and budget must be >= 0, got {n_total} and {budget}.")
    if budget > n_total:
        raise InputError(f"A position budget of {budget:,} needs at least that many scored positions; the trace has "
                         f"{n_total:,}. Lower the budget or add prompts.")
    order = np.random.default_rng(seed).permutation(n_total)
    return np.sort(order[:budget])


def jackknife_debiased(estimate: float, replicates: Sequence[float]) -> float | None:
    """Delete-a-group jackknife bias-corrected estimate G * theta - (G - 1) * mean(theta_(g)).

    Removes a bias of the form c / N exactly. For alpha-hat (benchmark, d = 64-576) it recovers the population
    exponent to within 1 % once N >= 8d, 1-5 % at 4d, and is far off below 2d; it is not used for comparisons
    (equal designs make the bias common to both traces), only offered for absolute levels at N >= 8d.

    >>> round(jackknife_debiased(1 / 100, [1 / 90] * 10), 12)  # theta = 1/N with N = 100 in 10 groups of 10
    0.0
    """
    r = np.asarray(replicates, dtype=np.float64)
    if estimate is None or not math.isfinite(estimate) or r.size < 2 or not np.all(np.isfinite(r)):
        return None
    g = r.size
    return float(g * estimate - (g - 1) * r.mean())
