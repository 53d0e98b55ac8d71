"""Synthetic depth traces with a known answer, built through the real score accumulators.

Used by tests (planted late-layer changes, interval coverage), by the teaching notebook (change a spectrum, watch α)
and by the demo before a model is at hand. Nothing here pretends to be a model: states are Gaussian with a chosen
power-law covariance spectrum per layer, and lens logits drift by a chosen step size per layer.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .frame import TraceFrame
from .params import SpinalParams
from .scores import GramAccumulator, TransportAccumulator, assign_groups, finalize, lens_entropy, lens_step, to_final


def power_law_states(rng: np.random.Generator, n: int, d: int, alpha: float, basis: np.ndarray | None = None,
                     offset: np.ndarray | None = None) -> np.ndarray:
    """n rows in R^d whose population covariance has singular-value decay sigma_k ∝ k^-alpha."""
    scale = np.arange(1, d + 1, dtype=float) ** -alpha
    x = rng.standard_normal((n, d)) * scale
    if basis is not None:
        x = x @ basis.T
    return x if offset is None else x + offset


def synthetic_trace(checkpoint: str = "synthetic", *, n_layers: int = 12, d: int = 48, vocab: int = 256,
                    n_prompts: int = 40, tokens_per_prompt: int = 24,
                    alpha: Callable[[float], float] = lambda depth: 0.6 + 0.2 * depth,
                    step: Callable[[float], float] = lambda depth: 0.3,
                    prompt_effect: float = 0.3, seed: int = 0, params: SpinalParams | None = None) -> TraceFrame:
    """A TraceFrame whose true contraction at depth δ is `alpha(δ)` and whose lens drifts by about `step(δ)`.

    The random draws depend only on `seed`, so two calls that differ only in `alpha`/`step` are the same "prompts"
    seen by two checkpoints (their comparison is paired).

    >>> tf = synthetic_trace(n_layers=4, n_prompts=12)
    >>> tf.n_layers()
    4
    """
    params = params or SpinalParams()
    rng = np.random.default_rng(seed)
    bases = [np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(n_layers + 1)]
    unembed = rng.standard_normal((d, vocab)) / np.sqrt(d)
    gram = GramAccumulator(n_layers + 1, d, params.n_groups, row_normalize=params.row_normalize)
    trans = TransportAccumulator(n_layers + 1, params.n_groups)
    for i in range(n_prompts):
        g = assign_groups(np.full(tokens_per_prompt, i), params.n_groups)
        offset = prompt_effect * rng.standard_normal(d)  # prompt-level variation: what resampling prompts sees
        base_logits = 2.0 * rng.standard_normal((tokens_per_prompt, vocab))
        prev, lens = None, []
        for layer in range(n_layers + 1):
            depth = layer / n_layers
            h = power_law_states(rng, tokens_per_prompt, d, alpha(depth), bases[layer], offset)
            gram.update(layer, h, g)
            z = base_logits + (h @ unembed)
            drift = rng.standard_normal((tokens_per_prompt, vocab))
            if prev is None:
                logits = torch.as_tensor(z)
            else:
                logits = prev + step(depth) * torch.as_tensor(drift)
            trans.update_entropy(layer, lens_entropy(logits, params.temperature), g)
            if prev is not None:
                trans.update(layer - 1, lens_step(prev, logits, params.temperature, params.top_k), g)
            prev = logits
            lens.append(torch.log_softmax(logits / params.temperature, -1))
        if params.lens_metrics:  # the companions: every layer's lens against the last one's
            finals = [to_final(lens[-1], lp) for lp in lens]
            trans.update_final(torch.stack([f[0] for f in finals]), torch.stack([f[1] for f in finals]), g)
    cols = finalize(gram, trans, params)
    info = {"model": "synthetic", "prompts_sha256": f"synthetic-seed-{seed}-{n_prompts}x{tokens_per_prompt}",
            "n_prompts": n_prompts, "n_layers": n_layers, "d_model": d}
    return TraceFrame.from_columns(cols, checkpoint, params, info)
