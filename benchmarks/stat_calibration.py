"""Calibration of what spinal-nb concludes from a comparison, by Monte Carlo on populations with a known answer.

Populations look like residual streams: per layer a power-law spectrum (sigma_k ∝ k^-alpha, alpha 0.6-1.0 over depth)
in a random orthogonal basis, a large shared mean (50x the states' rms spread), prompt-level offsets (30 % of the
variance: tokens of one prompt are alike) and states correlated across depth (AR(1), rho = 0.9 between adjacent
layers). Transport steps are token values (layer mean + prompt effect + token noise, also AR(1) over depth). Every
alpha goes through the shipped path: GramAccumulator (shift, per-group rows/Grams, leave-one-group-out spectra),
fit_tail, the jackknife replicates; transport through TransportAccumulator; decisions through
spinal_nb.scores.inference.

Experiments (raw per-trial rows in benchmarks/results/stat_calibration/*.jsonl):
  bias      E[alpha-hat] vs N/d (one layer; d = 64, 128, and 576 in full mode), jackknife se, interval coverage
            of E[alpha-hat_N] and of the population alpha, the jackknife bias-corrected estimate;
  band      family-wise error of the max-|t| band on Gaussian replicate arrays (raw vs shrunk correlation);
  nulls     equal-N nulls, L = 8 and 30: window calls, onsets (old pointwise rule and the family-wise one),
            localization claims, verdicts; paired (same prompts, checkpoint = 90 % shared states) and unpaired;
  diffn     different-N nulls (20 vs 80 prompts of 13 tokens): the naive rule, equal-N refusal, a position budget,
            jackknife bias correction;
  power     planted late effects (+2 %, +5 % alpha and -2 %, -5 % transport in depth >= 0.7) and a uniform +5 %.

    PYTHONPATH=. python benchmarks/stat_calibration.py --quick      # ~2 min, d = 64 only, few trials
    PYTHONPATH=. python benchmarks/stat_calibration.py              # full, ~15 min on 2 cores
    PYTHONPATH=. python benchmarks/stat_calibration.py --table-only # rebuild the table from the raw logs
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread

import numpy as np  # noqa: E402

# -- the shipped machinery (stable public names, one place) ---------------------------------------------------------
from spinal_nb.scores import GramAccumulator, TransportAccumulator, fit_tail  # noqa: E402
from spinal_nb.scores.inference import (  # noqa: E402
    Interval,
    difference_replicates,
    localization,
    onset,
    simultaneous_band,
    statistic_interval,
    terminal_window,
    window_mean,
)
from spinal_nb.scores.intervals import jackknife_interval, jackknife_se  # noqa: E402
from spinal_nb.scores.verdict import (  # noqa: E402
    comparable_n,
    jackknife_debiased,
    subsample_positions,
    verdict,
)

ROOT = Path(__file__).resolve().parent
RAW = ROOT / "results" / "stat_calibration"
TABLE = ROOT / "results" / "stat_calibration.md"
G = 10  # jackknife groups, the default n_groups
CONF = 0.95
WINDOW = 0.7


# ================================================================================================================
# populations and traces


@dataclass
class Population:
    """Per layer: sigma_k = k^-alpha_l in a shared random basis, a large mean; transport means per step."""

    alphas: np.ndarray  # [n_layers]
    basis: np.ndarray  # [d, d]
    means: np.ndarray  # [n_layers, d]
    steps: np.ndarray  # [n_layers - 1] population mean transport step
    prompt_share: float = 0.3
    depth_rho: float = 0.9

    @property
    def d(self) -> int:
        return self.basis.shape[0]

    @property
    def n_layers(self) -> int:
        return self.alphas.size

    def planted(self, alphas: np.ndarray, steps: np.ndarray) -> Population:
        """The same population (basis, means, noise) with other exponents and transport means."""
        return Population(alphas, self.basis, self.means, steps, self.prompt_share, self.depth_rho)


def population(rng: np.random.Generator, d: int, alphas, mean_scale: float = 50.0) -> Population:
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    means = rng.standard_normal((alphas.size, d))
    rms = np.sqrt([(np.arange(1, d + 1.0) ** (-2 * a)).sum() for a in alphas])
    means *= (mean_scale * rms / np.linalg.norm(means, axis=1))[:, None]
    steps = np.linspace(0.9, 0.4, max(alphas.size - 1, 1))
    return Population(alphas, basis, means, steps)


@dataclass
class Latent:
    """Standard-normal draws behind one trace: per layer prompt offsets [P, d] and token noise [P*T, d], AR(1) over
    depth; plus transport noise (prompt effect [P], token noise [P*T]) per step."""

    prompts: list[np.ndarray]
    tokens: list[np.ndarray]
    t_prompts: np.ndarray  # [n_layers, P]
    t_tokens: np.ndarray  # [n_layers, P*T]
    n_prompts: int
    per_prompt: int

    def mix(self, rng: np.random.Generator, tau: float) -> Latent:
        """A second checkpoint on the same prompts: sqrt(1-tau) * these draws + sqrt(tau) * fresh ones (same law)."""
        fresh = latent(rng, len(self.prompts), self.n_prompts, self.per_prompt, self.prompts[0].shape[1])
        a, b = math.sqrt(1 - tau), math.sqrt(tau)
        return Latent([a * x + b * y for x, y in zip(self.prompts, fresh.prompts, strict=True)],
                      [a * x + b * y for x, y in zip(self.tokens, fresh.tokens, strict=True)],
                      a * self.t_prompts + b * fresh.t_prompts, a * self.t_tokens + b * fresh.t_tokens,
                      self.n_prompts, self.per_prompt)


def latent(rng: np.random.Generator, n_layers: int, n_prompts: int, per_prompt: int, d: int,
           rho: float = 0.9) -> Latent:
    def ar(shape):
        out, prev = [], None
        for _ in range(n_layers):
            z = rng.standard_normal(shape)
            prev = z if prev is None else rho * prev + math.sqrt(1 - rho**2) * z
            out.append(prev)
        return out
    n = n_prompts * per_prompt
    tp = np.stack(ar((n_prompts,)))
    tt = np.stack(ar((n,)))
    return Latent(ar((n_prompts, d)), ar((n, d)), tp, tt, n_prompts, per_prompt)


@dataclass
class Trace:
    alpha: np.ndarray  # [n_layers]
    alpha_jk: np.ndarray  # [n_layers, G]
    transport: np.ndarray  # [n_layers] (nan at the last layer)
    transport_jk: np.ndarray
    n: int  # scored positions


def trace(pop: Population, lat: Latent, positions: np.ndarray | None = None) -> Trace:
    """Score one checkpoint with the shipped accumulators. `positions`: indices of the scored rows to keep."""
    P, T, d = lat.n_prompts, lat.per_prompt, pop.d
    prompt_of = np.repeat(np.arange(P), T)
    keep = np.arange(P * T) if positions is None else np.asarray(positions)
    groups = prompt_of[keep] % G  # round-robin prompt groups (spinal_nb.scores.assign_groups)
    c = pop.prompt_share
    k = np.arange(1, d + 1.0)
    alpha = np.full(pop.n_layers, np.nan)
    alpha_jk = np.full((pop.n_layers, G), np.nan)
    transport = TransportAccumulator(pop.n_layers, G) if pop.n_layers > 1 else None
    for layer in range(pop.n_layers):
        z = math.sqrt(c) * lat.prompts[layer][prompt_of[keep]] + math.sqrt(1 - c) * lat.tokens[layer][keep]
        x = pop.means[layer] + (z * k ** -pop.alphas[layer]) @ pop.basis.T
        acc = GramAccumulator(1, d, G)
        acc.update(0, x, groups)
        present = acc.nonempty_groups(0)
        whole, parts = acc.spectra(0, present)
        fit = fit_tail(whole)
        alpha[layer] = np.nan if fit.alpha is None else fit.alpha
        if len(present) == G and fit.alpha is not None:
            alpha_jk[layer] = [np.nan if (a := fit_tail(s).alpha) is None else a for s in parts]
        if transport is not None and layer < pop.n_layers - 1:
            steps = pop.steps[layer] + 0.1 * lat.t_prompts[layer][prompt_of[keep]] + 0.2 * lat.t_tokens[layer][keep]
            transport.update(layer, steps, groups)
    tr = np.full(pop.n_layers, np.nan)
    tr_jk = np.full((pop.n_layers, G), np.nan)
    for layer in range(pop.n_layers - 1):
        tr[layer] = transport.transport(layer)
        tr_jk[layer] = [transport.transport(layer, g) for g in range(G)]
    return Trace(alpha, alpha_jk, tr, tr_jk, int(keep.size))


# ================================================================================================================
# decisions of one comparison


def old_onset(delta: np.ndarray, sets) -> int | None:
    """compare()'s rule on main: the deepest run of layers whose pointwise interval excludes 0 (no sign rule)."""
    out = None
    for i in range(delta.size - 1, -1, -1):
        iv = statistic_interval(lambda d, i=i: float(d[i]), delta, sets, CONF)
        if iv.lo is None:
            if out is None:
                continue  # trailing layers without a score
            break
        if iv.lo <= 0 <= iv.hi:
            break
        out = i
    return out


def decisions(a: Trace, b: Trace, paired: bool, depth: np.ndarray, d: int, debias: bool = False) -> dict:
    """Everything compare would claim about b - a, as a flat row."""
    da = b.alpha - a.alpha
    sa = difference_replicates(a.alpha, a.alpha_jk, b.alpha, b.alpha_jk, paired)
    dt_ = b.transport - a.transport
    st = difference_replicates(a.transport, a.transport_jk, b.transport, b.transport_jk, paired)
    win = window_mean(da, sa, depth, WINDOW, CONF)
    win_t = window_mean(dt_, st, depth, WINDOW, CONF)
    on = onset(da, sa, CONF)
    seq = onset(da, sa, CONF, band=on.band, procedure="sequence")
    loc = localization(da, sa, depth, WINDOW, CONF)
    v = verdict(win, win_t, comparable=comparable_n(a.n, b.n, d))
    row = {"window": win.estimate, "window_lo": win.lo, "window_hi": win.hi, "window_call": win.sign,
           "window_t": win_t.estimate, "window_t_call": win_t.sign,
           "onset_old": old_onset(da, sa), "onset": on.layer, "onset_sign": on.sign, "onset_seq": seq.layer, "band_crit": on.band.crit,
           "pointwise_crit": on.band.pointwise_crit, "bonferroni_crit": on.band.bonferroni_crit,
           "share": loc.share, "share_lo": loc.lo, "share_hi": loc.hi, "baseline": loc.baseline,
           "localized": loc.localized, "verdict": v.label, "n_a": a.n, "n_b": b.n}
    if debias:  # jackknife bias-corrected window mean, same se as the raw one
        deb = np.array([(jackknife_debiased(b.alpha[i], b.alpha_jk[i]) or np.nan)
                        - (jackknife_debiased(a.alpha[i], a.alpha_jk[i]) or np.nan) for i in range(da.size)])
        inside = terminal_window(depth, WINDOW) & np.isfinite(deb)
        m = float(deb[inside].mean())
        half = (win.hi - win.estimate) if win.hi is not None else float("nan")
        row.update(window_debiased=m, window_debiased_call=Interval(m, m - half, m + half).sign)
    return row


# ================================================================================================================
# experiments


def run_bias(rng, quick: bool, log) -> None:
    grid = [0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    cells = [(64, 150)] if not quick else [(64, 25)]
    if not quick:
        cells += [(128, 80), (576, 3)]
    for d, trials in cells:
        for alpha in (0.6, 1.0):
            for r in grid:
                if d == 576 and r > 16:
                    continue  # ~2 s a trial at N/d = 16 already
                n = int(round(r * d))
                per = int(np.clip(n // 40, 1, 16))
                prompts = n // per
                for trial in range(trials):
                    pop = population(rng, d, [alpha])
                    tr = trace(pop, latent(rng, 1, prompts, per, d))
                    a, jk = tr.alpha[0], tr.alpha_jk[0]
                    lo, hi = jackknife_interval(float(a), jk.tolist(), CONF)
                    log({"exp": "bias", "d": d, "alpha": alpha, "ratio": r, "n": tr.n, "prompts": prompts,
                         "trial": trial, "alpha_hat": float(a), "se": jackknife_se(jk.tolist()), "lo": lo, "hi": hi,
                         "debiased": jackknife_debiased(float(a), jk.tolist())})


def run_band(rng, quick: bool, log) -> None:
    """Gaussian replicate arrays: G group contributions per layer, AR(1) over layers; estimate = mean."""
    trials = 50 if quick else 300
    for n_layers in (9, 31):
        for rho in (0.0, 0.5, 0.9, 0.99):
            for trial in range(trials):
                z = rng.standard_normal((G, n_layers))
                x = np.empty_like(z)
                x[:, 0] = z[:, 0]
                for j in range(1, n_layers):
                    x[:, j] = rho * x[:, j - 1] + math.sqrt(1 - rho**2) * z[:, j]
                est, reps = x.mean(0), ((x.sum(0) - x) / (G - 1)).T
                row = {"exp": "band", "layers": n_layers, "rho": rho, "trial": trial}
                for name, shrink in (("shrunk", True), ("raw", False)):
                    b = simultaneous_band(est, reps, CONF, n_sim=4000, seed=trial, shrinkage=shrink)
                    row[name] = bool((b.sign != 0).any())
                    row[f"{name}_crit"] = b.crit
                row["bonferroni"] = bool((np.abs(est) / b.se > b.bonferroni_crit).any())
                row["pointwise"] = bool((np.abs(est) / b.se > b.pointwise_crit).any())
                log(row)


def run_nulls(rng, quick: bool, log) -> None:
    d, prompts, per = 64, 32, 8  # N = 256 = 4d
    configs = [(8, 200), (30, 100)] if not quick else [(8, 20), (30, 10)]
    for L, trials in configs:
        depth = np.arange(L + 1) / L
        for paired in (True, False):
            for trial in range(trials):
                pop = population(rng, d, np.linspace(0.6, 1.0, L + 1))
                lat = latent(rng, L + 1, prompts, per, d)
                a = trace(pop, lat)
                b = trace(pop, lat.mix(rng, 0.1) if paired else latent(rng, L + 1, prompts, per, d))
                log({"exp": "nulls", "L": L, "paired": paired, "d": d, "trial": trial,
                     **decisions(a, b, paired, depth, d)})


def run_diffn(rng, quick: bool, log) -> None:
    """Scenario "prompts": the same model traced on 20 and on 80 prompts (independent, unpaired). Scenario
    "tokenizer": the same 20 prompts (shared prompt offsets, paired groups) cut into 13 and 16 tokens each."""
    per, pa, pb, L = 13, 20, 80, 8
    depth = np.arange(L + 1) / L
    cells = [(64, 25)] if quick else [(64, 150), (128, 60), (576, 4)]
    for d, trials in cells:
        for trial in range(trials):
            pop = population(rng, d, np.linspace(0.6, 1.0, L + 1))
            lat_a = latent(rng, L + 1, pa, per, d)
            a = trace(pop, lat_a)
            lat_b = latent(rng, L + 1, pb, per, d)
            b = trace(pop, lat_b)
            budget = trace(pop, lat_b, subsample_positions(pb * per, a.n, seed=trial))
            naive = decisions(a, b, False, depth, d, debias=True)
            equal = decisions(a, budget, False, depth, d)
            log({"exp": "diffn", "scenario": "prompts", "d": d, "trial": trial, "n_a": a.n, "n_b": b.n,
                 "naive_call": naive["window_call"], "naive_window": naive["window"],
                 "naive_onset": naive["onset"], "naive_verdict": naive["verdict"],
                 "debiased_call": naive["window_debiased_call"], "debiased_window": naive["window_debiased"],
                 "refused": not comparable_n(a.n, b.n, d, prompts_a=pa, prompts_b=pb).ok,
                 "budget_call": equal["window_call"], "budget_window": equal["window"], "budget_onset": equal["onset"],
                 "budget_refused": not comparable_n(a.n, budget.n, d, prompts_a=pa, prompts_b=pb).ok})
            # same prompts, another tokenizer: 16 tokens a prompt, its own token states
            other = latent(rng, L + 1, pa, 16, d)
            lat_c = Latent(lat_a.prompts, other.tokens, lat_a.t_prompts, other.t_tokens, pa, 16)
            c = trace(pop, lat_c)
            c_budget = trace(pop, lat_c, subsample_positions(pa * 16, a.n, seed=trial))
            naive = decisions(a, c, True, depth, d, debias=True)
            equal = decisions(a, c_budget, True, depth, d)
            log({"exp": "diffn", "scenario": "tokenizer", "d": d, "trial": trial, "n_a": a.n, "n_b": c.n,
                 "naive_call": naive["window_call"], "naive_window": naive["window"],
                 "naive_onset": naive["onset"], "naive_verdict": naive["verdict"],
                 "debiased_call": naive["window_debiased_call"], "debiased_window": naive["window_debiased"],
                 "refused": not comparable_n(a.n, c.n, d, prompts_a=pa, prompts_b=pa).ok,
                 "budget_call": equal["window_call"], "budget_window": equal["window"], "budget_onset": equal["onset"],
                 "budget_refused": not comparable_n(a.n, c_budget.n, d, prompts_a=pa, prompts_b=pa).ok})


def run_power(rng, quick: bool, log) -> None:
    d, prompts, per, L = 64, 32, 8, 30
    depth = np.arange(L + 1) / L
    inside = terminal_window(depth, WINDOW)
    trials = 8 if quick else 60
    everywhere = np.ones(L + 1, bool)
    # (name, relative change in the window or everywhere, absolute change of alpha everywhere)
    effects = [("late ×1.02", 0.02, inside, 0.0), ("late ×1.05", 0.05, inside, 0.0),
               ("uniform +0.04", 0.0, everywhere, 0.04), ("uniform ×1.05", 0.05, everywhere, 0.0)]
    for name, size, where, shift in effects:
        for trial in range(trials):
            pop = population(rng, d, np.linspace(0.6, 1.0, L + 1))
            rel = 1 + size * where
            cand = pop.planted(pop.alphas * rel + shift, pop.steps * (2 - rel[:-1]) - shift / 2)
            lat = latent(rng, L + 1, prompts, per, d)
            a, b = trace(pop, lat), trace(cand, lat.mix(rng, 0.1))
            log({"exp": "power", "effect": name, "size": size, "first": int(np.flatnonzero(where)[0]),
                 "trial": trial, **decisions(a, b, True, depth, d)})


EXPERIMENTS: dict[str, Callable] = {"bias": run_bias, "band": run_band, "nulls": run_nulls, "diffn": run_diffn,
                                    "power": run_power}


# ================================================================================================================
# the table


READING = """
## Reading

1. **α̂ is a biased estimator whose bias depends on the sampling design (sections 1-2).** E[α̂_N] sits above the
   population α, non-monotone in N/d with a peak at N = d (+0.33 to +0.46), +0.08 to +0.14 at N = 4d, +0.03 to
   +0.04 at 16d, ≤ 0.01 at 64d; at equal N/d it also depends on d (up to N ≈ 4d, d = 576 reads higher than d = 64).
   The jackknife interval covers E[α̂_N] at or above the nominal rate within binomial error (it is conservative near
   N = d: se up to 2.4× the sd at d = 128, because leaving a group out moves N along the steep part of the curve), but covers
   the population α rarely, even at 64d (6-79 %): the bias shrinks more slowly than the se. An α interval says where
   E[α̂_N] is, not the population exponent; only deltas between equal designs are interpretable. (d = 576: 3-4
   trials a cell, indicative only; its means are precise, its rates are not.)
2. **Band (section 3).** All three family-wise rules stay within Monte Carlo error of 5 %; the raw jackknife
   correlation (rank G − 1 once layers outnumber groups) gives a systematically lower critical value than the shrunk
   one (3.97 vs 4.26 at 31 layers, ρ = 0.9) and the highest error rates (5.0-7.0 % at 31 layers); shrinking toward
   the identity (Schäfer-Strimmer intensity with the Gaussian variance of a sample correlation) fixes that at little
   cost, and stays well below Bonferroni's critical value for strongly correlated layers (2.65 vs 3.62 at ρ = 0.99).
3. **Equal-N nulls (section 4):** window calls, onsets (band and fixed sequence) and localization claims all stay at
   or below nominal.
4. **Different-N nulls (section 5):** the naive rule calls Δα significant in 97-100 % of 20-vs-80-prompt trials at
   d = 64 and 128. Subsampling the larger trace to the same N does not cure it when the positions come from a
   different number of prompts (18-48 % false calls: tokens of one prompt are alike, so 80 prompts × 3 tokens is not
   20 × 13); on the *same prompts* under two tokenizations it does (1.7-4.7 %). The jackknife bias correction is
   nominal at N ≥ 4d for d = 64 but fails at 2d (12-18 %) and, at d = 576, leaves biases of many se until ≈ 8d
   (section 1). `comparable_n` (same d, same N at every layer, same prompt count) refused every different-N pair and
   every budget-matched pair from different prompt counts: the policy never let a design difference through.
5. **Power (section 6):** a +5 % late change is found (window call 100 %, band onset 78 %, "the paper's signature"
   97 %); +2 % is seen in the window mean (82 %) but rarely as a band onset (10 %: every window layer must clear the
   family-wise band). No onset ever reached into unchanged layers. Localization is about |Δ|: a change uniform in
   relative terms reads as localized when α itself grows with depth (25 %); a uniform absolute change does not (3 %).
6. **Onset: band or fixed sequence.** Walking down from the deepest layer with *pointwise* intervals and stopping at
   the first layer not separated from 0 is a fixed-sequence test: a false step needs the first unchanged layer in the
   order to be rejected, one level-5 % test, so it controls the same family-wise error (section 4: ≤ 2.5 %) and its
   run always contains the band's. It finds the +2 % onset in 50 % of trials (band 10 %) and the +5 % one in 100 %
   (band 78 %), never shallower than the change. The old rule was already this procedure minus the sign
   requirement; its one real defect in these runs is running into unchanged layers of the other sign (3.3 % at
   +5 %). compare uses `procedure="sequence"` for the onset (sign-consistent) and shows the band per layer.

## N policy (compare follows the first point; the position budget is not yet a trace parameter)

- **compare** reads contraction deltas (window mean, onset, localization, verdict) only when
  `comparable_n(N_a, N_b, d_a, d_b, prompts_a=..., prompts_b=...)` is ok: same width, the same N (exactly), the same
  number of prompts. Otherwise the verdict is "not comparable" with the reason, and no Δα claim is made (transport
  deltas stay: a mean over tokens has no N bias). Traces of the same prompts and tokenizer pass automatically.
- **trace** gets an optional position budget (a recorded parameter): after tokenization, keep
  `subsample_positions(n_scored, budget, seed)` of the scored positions (prompt groups unchanged). With the same
  prompts and the same budget, models with different tokenizers become comparable (section 5, *tokenizer*).
- **Not** a bias-corrected estimator for comparisons: the correction depends on the unknown spectrum and fails below
  N ≈ 4-8d. `jackknife_debiased` may label an absolute α level when N ≥ 8d.
- Aim for N ≥ 4d where possible: the curve flattens and the intervals narrow.
"""


def _load(name: str) -> list[dict]:
    path = RAW / f"{name}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _rate(xs: Iterable[bool]) -> tuple[float, int]:
    xs = list(xs)
    return (float(np.mean(xs)) if xs else float("nan")), len(xs)


def _pct(x: Iterable[bool]) -> str:
    r, n = _rate(x)
    return "—" if n == 0 else f"{100 * r:.1f} % ({n})"


def _limit(n: int, p: float = 1 - CONF) -> str:
    return f"{100 * (p + 3 * math.sqrt(p * (1 - p) / n)):.1f} %" if n else "—"


def table(meta: dict) -> str:
    out = [
        "# Statistical calibration of compare's claims (Monte Carlo)",
        "",
        f"Command: `{meta['command']}` — {meta['date']}, {meta['machine']}, {meta['wall_min']:.1f} min. "
        "Raw per-trial rows: `benchmarks/results/stat_calibration/*.jsonl`; this table is rebuilt from them by "
        "`PYTHONPATH=. python benchmarks/stat_calibration.py --table-only`.",
        "",
        "Populations: σ_k ∝ k^−α in a random basis, a shared mean 50× the spread, prompt offsets (30 % of the "
        "variance), states AR(1) over depth (ρ = 0.9), α from 0.6 (layer 0) to 1.0 (layer L). G = 10 groups, 95 %. "
        "Every α comes from GramAccumulator → fit_tail → jackknife replicates; decisions from "
        "`spinal_nb.scores.inference`. Rates are `percent (trials)`; a null rate is acceptable up to nominal + 3 "
        "binomial sd (given).",
        "",
    ]
    # -- bias + coverage ----------------------------------------------------------------------------------------
    rows = _load("bias")
    cells = defaultdict(list)
    for r in rows:
        cells[(r["d"], r["alpha"], r["ratio"])].append(r)
    out += ["## 1. Bias curve: E[α̂] against N/d (one layer)", "",
            "mean α̂ (jackknife bias-corrected mean) [mean jackknife se / sd of α̂ over trials]; trials per cell in "
            "the header.", ""]
    cols = sorted({(d, a) for d, a, _ in cells})
    ratios = sorted({r for _, _, r in cells})
    out.append("| N/d | " + " | ".join(f"d = {d}, α = {a} ({len(cells[(d, a, ratios[0])])})" for d, a in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for ratio in ratios:
        line = [f"{ratio:g}"]
        for d, a in cols:
            c = cells.get((d, a, ratio))
            if not c:
                line.append("—")
                continue
            ah = np.array([x["alpha_hat"] for x in c])
            deb = np.array([x["debiased"] for x in c if x["debiased"] is not None])
            se = np.array([x["se"] for x in c if x["se"] is not None])
            sd = ah.std(ddof=1) if ah.size > 1 else float("nan")
            line.append(f"{ah.mean():.3f} ({deb.mean():.3f}) [{se.mean():.4f} / {sd:.4f}]")
        out.append("| " + " | ".join(line) + " |")
    out += ["", "## 2. Interval coverage (nominal 95 %)", "",
            "Share of trials whose jackknife interval covers E[α̂_N] (the Monte Carlo mean at that N: what the "
            "estimator targets) and the population α.", "",
            "| d | α | N/d | trials | covers E[α̂_N] | covers population α |", "|---|---|---|---|---|---|"]
    for (d, a, ratio), c in sorted(cells.items()):
        if ratio not in (1.0, 4.0, 64.0) and not (d == 576 and ratio == 16.0):
            continue
        m = np.mean([x["alpha_hat"] for x in c])
        ok = [x for x in c if x["lo"] is not None]
        out.append(f"| {d} | {a} | {ratio:g} | {len(ok)} | {_pct(x['lo'] <= m <= x['hi'] for x in ok)} | "
                   f"{_pct(x['lo'] <= a <= x['hi'] for x in ok)} |")
    # -- band ------------------------------------------------------------------------------------------------------
    rows = _load("band")
    cells = defaultdict(list)
    for r in rows:
        cells[(r["layers"], r["rho"])].append(r)
    out += ["", "## 3. Family-wise error of the simultaneous band (Gaussian replicate arrays)", "",
            "Any layer's band excluding 0 when nothing changed; G = 10 group contributions, AR(1) over layers.",
            "", "| layers | ρ | trials | shrunk (shipped) | raw correlation | Bonferroni | pointwise | mean crit "
            "shrunk / raw | limit |", "|---|---|---|---|---|---|---|---|---|"]
    for (n_layers, rho), c in sorted(cells.items()):
        out.append(f"| {n_layers} | {rho} | {len(c)} | {_pct(x['shrunk'] for x in c)} | {_pct(x['raw'] for x in c)}"
                   f" | {_pct(x['bonferroni'] for x in c)} | {_pct(x['pointwise'] for x in c)} | "
                   f"{np.mean([x['shrunk_crit'] for x in c]):.2f} / {np.mean([x['raw_crit'] for x in c]):.2f} | "
                   f"{_limit(len(c))} |")
    # -- nulls ---------------------------------------------------------------------------------------------------
    rows = _load("nulls")
    cells = defaultdict(list)
    for r in rows:
        cells[(r["L"], r["paired"])].append(r)
    out += ["", "## 4. Equal-N nulls (same population, N = 4d, d = 64)", "",
            "Paired: same prompts, the second checkpoint's states share 90 % of their variance with the first's. "
            "Unpaired: independent prompts.", "",
            "| L | pairing | trials | window Δα call | window Δ𝓛 call | onset, old rule (pointwise, no sign) | "
            "onset, band (default) | onset, fixed sequence | localized | mean share / baseline | signature or "
            "reversed | limit |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (L, paired), c in sorted(cells.items()):
        share = np.mean([x["share"] for x in c if x["share"] is not None])
        out.append(
            f"| {L} | {'paired' if paired else 'unpaired'} | {len(c)} | {_pct(x['window_call'] != 0 for x in c)} | "
            f"{_pct(x['window_t_call'] != 0 for x in c)} | {_pct(x['onset_old'] is not None for x in c)} | "
            f"{_pct(x['onset'] is not None for x in c)} | {_pct(x['onset_seq'] is not None for x in c)} | "
            f"{_pct(x['localized'] for x in c)} | "
            f"{share:.3f} / {c[0]['baseline']:.3f} | "
            f"{_pct(x['verdict'] in ('the paper' + chr(39) + 's signature', 'reversed') for x in c)} | "
            f"{_limit(len(c))} |")
    # -- different N ---------------------------------------------------------------------------------------------
    rows = _load("diffn")
    cells = defaultdict(list)
    for r in rows:
        cells[(r.get("scenario", "prompts"), r["d"])].append(r)
    out += ["", "## 5. Different-N nulls (same population, L = 8)", "",
            "*prompts*: 20 vs 80 independent prompts of 13 tokens (unpaired). *tokenizer*: the same 20 prompts cut "
            "into 13 vs 16 tokens (paired). Budget: the larger trace subsampled (`subsample_positions`) to the "
            "smaller one's N. Debiased: jackknife bias-corrected window means, same se. Refused: `comparable_n` "
            "(with the prompt counts) says not comparable.", "",
            "| scenario | d | N/d | trials | naive: window Δα call | mean Δα naive | refused | budget: call | "
            "mean Δα budget | budget refused | debiased: call | mean Δα debiased | limit |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (scenario, d), c in sorted(cells.items()):
        out.append(
            f"| {scenario} | {d} | {c[0]['n_a'] / d:.2f} / {c[0]['n_b'] / d:.2f} | {len(c)} | "
            f"{_pct(x['naive_call'] != 0 for x in c)} | {np.mean([x['naive_window'] for x in c]):+.4f} | "
            f"{_pct(x['refused'] for x in c)} | {_pct(x['budget_call'] != 0 for x in c)} | "
            f"{np.mean([x['budget_window'] for x in c]):+.4f} | {_pct(x['budget_refused'] for x in c)} | "
            f"{_pct(x['debiased_call'] != 0 for x in c)} | {np.mean([x['debiased_window'] for x in c]):+.4f} | "
            f"{_limit(len(c))} |")
    # -- power ---------------------------------------------------------------------------------------------------
    rows = _load("power")
    cells = defaultdict(list)
    for r in rows:
        cells[r["effect"]].append(r)
    out += ["", "## 6. Power on planted effects (L = 30, d = 64, N = 4d, paired)", "",
            "Late ×(1 + δ): α × (1 + δ) and transport × (1 − δ) in depth ≥ 0.7 (layers 21–30). Uniform +0.04: α + "
            "0.04 and transport − 0.02 at every layer (equal |Δ| everywhere: not localized). Uniform ×1.05: α × 1.05 "
            "and transport × 0.95 everywhere (|Δ| grows with depth because α does).", "",
            "| effect | trials | mean window Δα | window Δα call | onset (band) found | … at the first changed layer "
            "or deeper | … shallower (into unchanged layers) | fixed sequence: found / shallower | old rule: found / "
            "shallower | localized | signature | verdicts |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in sorted(cells.items()):
        labels = defaultdict(int)
        for x in c:
            labels[x["verdict"]] += 1
        out.append(
            f"| {name} | {len(c)} | {np.mean([x['window'] for x in c]):+.4f} | "
            f"{_pct(x['window_call'] == 1 for x in c)} | {_pct(x['onset'] is not None for x in c)} | "
            f"{_pct(x['onset'] is not None and x['onset'] >= x['first'] for x in c)} | "
            f"{_pct(x['onset'] is not None and x['onset'] < x['first'] for x in c)} | "
            f"{_pct(x['onset_seq'] is not None for x in c)} / "
            f"{_pct(x['onset_seq'] is not None and x['onset_seq'] < x['first'] for x in c)} | "
            f"{_pct(x['onset_old'] is not None for x in c)} / "
            f"{_pct(x['onset_old'] is not None and x['onset_old'] < x['first'] for x in c)} | "
            f"{_pct(x['localized'] for x in c)} | "
            f"{_pct(x['verdict'] == 'the paper' + chr(39) + 's signature' for x in c)} | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) + " |")
    return "\n".join(out) + "\n" + READING


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="d = 64 only, few trials (~2 min)")
    ap.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated experiments")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--table-only", action="store_true", help="rebuild the table from the raw logs")
    args = ap.parse_args()
    RAW.mkdir(parents=True, exist_ok=True)
    meta_path = RAW / "meta.json"
    if not args.table_only:
        t0 = time.time()
        timings = {}
        for i, name in enumerate(args.only.split(",")):
            rng = np.random.default_rng([args.seed, i])
            path = RAW / f"{name}.jsonl"
            t = time.time()
            with path.open("w") as f:
                EXPERIMENTS[name](rng, args.quick, lambda row, f=f: f.write(json.dumps(row) + "\n"))
            timings[name] = round(time.time() - t, 1)
            print(f"{name}: {timings[name]} s", flush=True)
        cmd = "PYTHONPATH=. python benchmarks/stat_calibration.py" + (" --quick" if args.quick else "") + (
            f" --seed {args.seed}" if args.seed != 2026 else "")
        if args.only != ",".join(EXPERIMENTS):
            cmd += f" --only {args.only}"
        meta = {"command": cmd, "date": dt.date.today().isoformat(), "wall_min": (time.time() - t0) / 60,
                "timings_s": timings, "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"numpy {np.__version__}, load {os.getloadavg()[0]:.1f}"}
        meta_path.write_text(json.dumps(meta, indent=1))
    meta = json.loads(meta_path.read_text())
    TABLE.write_text(table(meta))
    print(TABLE.read_text())


if __name__ == "__main__":
    main()
