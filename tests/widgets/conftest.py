"""Realistic TraceFrames for the view tests, built directly (fast) rather than through a model.

Spectra follow σ_k = c·k^(−α(depth)) with multiplicative noise, and `contraction` is the real tail fit of that
spectrum (spinal_nb.scores.fit_tail), so the fitted line the widget draws can be checked against it. Replicates
and intervals come from spinal_nb.scores' jackknife; all checkpoints share a prompt hash, so compare() pairs them.
An optional lens table carries an XSS-looking token to prove tokens are rendered as text.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from spinal_nb.frame import TraceFrame
from spinal_nb.params import SpinalParams
from spinal_nb.scores import fit_tail, jackknife_interval

XSS = '<img src=x onerror="window.__spinal_xss=1">'


def make_frame(n_checkpoints: int = 3, n_layers: int = 30, n_groups: int = 10, rank: int = 160,
               steps: bool = False, spectra: bool = True, lens: bool = False, seed: int = 0,
               names: list[str] | None = None, effects: list[float] | None = None,
               step_values: list[int] | None = None) -> TraceFrame:
    rng = np.random.default_rng(seed)
    params = SpinalParams(n_groups=n_groups)
    names = names or (["base", "sft", "dpo"][:n_checkpoints] if n_checkpoints <= 3 and not steps
                      else [f"step-{1000 * i}" for i in range(n_checkpoints)])
    rows = []
    k = np.arange(1, rank + 1, dtype=float)
    for c, name in enumerate(names):
        effect = effects[c] if effects is not None else c / max(1, n_checkpoints - 1)  # 0: the reference
        for layer in range(n_layers + 1):
            depth = layer / n_layers
            late = max(0.0, depth - 0.7) / 0.3
            alpha_true = 0.55 + 0.35 * depth + 0.25 * effect * late
            sigma = np.sort(12.0 * k ** -alpha_true * np.exp(0.03 * rng.standard_normal(rank)))[::-1]
            fit = fit_tail(sigma, params.tail_window, params.floor, params.min_points)
            a_jk = list(fit.alpha + 0.01 * (1 + late) * rng.standard_normal(n_groups))
            transport = None if layer == n_layers else float(
                0.22 + 0.12 * np.sin(3 * depth) + 0.05 * depth ** 2 - 0.08 * effect * late)
            t_jk = [] if transport is None else list(transport + 0.006 * rng.standard_normal(n_groups))
            entropy = float(6.5 - 3.5 * depth ** 1.5 - 0.6 * effect * late)
            e_jk = list(entropy + 0.02 * rng.standard_normal(n_groups))
            a_lo, a_hi = jackknife_interval(fit.alpha, a_jk, params.confidence)
            t_lo, t_hi = jackknife_interval(transport, t_jk, params.confidence) if t_jk else (None, None)
            e_lo, e_hi = jackknife_interval(entropy, e_jk, params.confidence)
            rows.append({
                "checkpoint": name,
                "step": (step_values[c] if step_values is not None else 1000 * c) if steps else None, "layer": layer, "depth": depth,
                "contraction": fit.alpha, "contraction_lo": a_lo, "contraction_hi": a_hi, "contraction_r2": fit.r2,
                "contraction_points": fit.n_points, "contraction_reason": fit.reason,
                "transport": transport, "transport_lo": t_lo, "transport_hi": t_hi,
                "entropy": entropy, "entropy_lo": e_lo, "entropy_hi": e_hi, "n_tokens": 4096,
                "contraction_jk": a_jk, "transport_jk": t_jk, "entropy_jk": e_jk,
                "spectrum": [float(x) for x in sigma] if spectra else [],
            })
    data = pl.DataFrame(rows, schema_overrides={"step": pl.Int64, "contraction_reason": pl.String})
    info = {"model": "synthetic", "prompts_sha256": "same-prompts", "n_prompts": 10 * n_groups, "params": params.to_dict()}
    meta = {"params": params.to_dict(), "checkpoints": {n: dict(info) for n in names}}
    lens_df = make_lens(names, n_layers, rng) if lens else None
    return TraceFrame(data, meta, lens_df)


def make_training_frame(n_steps: int = 12, n_layers: int = 24, every: int = 50, seed: int = 2,
                        alert_steps: tuple[int, ...] = (), message: str = "SPINAL alert") -> TraceFrame:
    """A monitored training run as SpinalCallback writes it: checkpoints 'step-000000', 'step-000050', … with
    `step` set, terminal layers drifting slowly and then faster (a run starting to destabilize), and alerts
    recorded in meta["monitor"] as the callback's event log has them (their messages are untrusted text)."""
    from spinal_nb.monitor.storage import checkpoint_name

    steps = [every * i for i in range(n_steps)]
    effects = [0.6 * (i / max(1, n_steps - 1)) + 2.4 * max(0.0, i / max(1, n_steps - 1) - 0.6) ** 1.5
               for i in range(n_steps)]
    frame = make_frame(n_steps, n_layers, steps=True, seed=seed, names=[checkpoint_name(s) for s in steps],
                       effects=effects, step_values=steps)
    events = [{"event": "alert", "step": s, "message": f"{message} at step {s}"} for s in alert_steps]
    frame.meta["monitor"] = {"evaluations": [], "events": events,
                             "alerts": [{"step": s, "fired": True} for s in alert_steps]}
    return frame


def make_lens(names: list[str], n_layers: int, rng: np.random.Generator, top_k: int = 5) -> pl.DataFrame:
    prompts = [("The capital of France is", ["The", " capital", " of", " France", " is"]),
               (f"a token {XSS} inside", ["a", " token", " " + XSS, " inside"])]
    vocab = [" Paris", " the", " a", " London", " city", "\n", " France", XSS, " is", " of"]
    rows = []
    for c, name in enumerate(names):
        for pi, (text, toks) in enumerate(prompts):
            for pos, tok in enumerate(toks):
                for layer in range(n_layers + 1):
                    p = np.sort(rng.dirichlet(np.full(len(vocab), 0.3 + 0.1 * c)))[::-1][:top_k]
                    order = rng.permutation(len(vocab))[:top_k]
                    if pi == 1 and layer == n_layers:
                        order[0] = vocab.index(XSS)  # the untrusted token is a top lens prediction
                    for r in range(top_k):
                        rows.append({"checkpoint": name, "prompt_index": pi, "prompt": text, "position": pos,
                                     "token": tok, "layer": layer, "rank": r + 1, "token_id": int(order[r]),
                                     "lens_token": vocab[order[r]], "prob": float(p[r])})
    return pl.DataFrame(rows)


@pytest.fixture(scope="session")
def frame3() -> TraceFrame:
    """base / sft / dpo, 30 layers, spectra and lens detail (with an XSS token)."""
    return make_frame(3, 30, lens=True)


@pytest.fixture(scope="session")
def frame_steps() -> TraceFrame:
    """A training run: 20 checkpoints with steps, 64 layers (the payload-size case)."""
    return make_frame(20, 64, steps=True, seed=1)
