"""Proposed fix for the biggest item of the trace profile (BENCHMARKS.md "Profile"): a fused lens reduction.

The shipped `capture.tracer._reduce_batch` calls `scores.lens_entropy(z_l)` and `scores.lens_step(z_{l-1}, z_l)` per
layer, so every layer's [rows x vocab] logits go through log_softmax three times, exp three times, an isfinite scan
three times (`_check_finite`), and the sqrt-probability difference is copied to float64 before its norm. Per layer,
once is enough: lp = log_softmax(z/T); s = exp(lp/2) (= sqrt p, kept for the next layer); entropy = -sum(s*s*lp);
step = 4 asin(||s_prev - s||_2 / 2) with the norm accumulated in float64. A NaN/Inf anywhere in a row of logits makes
that row's entropy NaN (inf - inf in log_softmax, or 0 * -inf), so checking the [rows] entropies for finiteness is
the same test as scanning the logits, at no cost.

This module only *demonstrates* the fix (it monkeypatches the tracer in the benchmark process): the code belongs in
spinal_nb/scores/transport.py (a `lens_sqrt_probs`/`lens_point` helper) and capture/tracer.py (owned by others).
The top-k path is left as it is (its mask depends on both layers).
"""
from __future__ import annotations

import contextlib

import torch

from spinal_nb.capture import tracer as _tracer
from spinal_nb.capture.architectures import lens_logits
from spinal_nb.errors import NumericsError

_ORIGINAL = _tracer._reduce_batch


def _point(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    z = z if z.dtype in (torch.float32, torch.float64) else z.float()
    if temperature != 1.0:
        z = z / temperature
    lp = torch.log_softmax(z, dim=-1)
    s = torch.exp(0.5 * lp)  # sqrt p, no underflow trouble
    ent = -(s * s * lp).sum(-1).to(torch.float64)
    return s, ent


def fused_reduce_batch(raw, arch, rows, groups, gram, transport, params) -> None:
    if params.top_k is not None:
        return _ORIGINAL(raw, arch, rows, groups, gram, transport, params)
    _tracer._check_rows(rows, arch)
    for layer, h in enumerate(rows):
        gram.update(layer, h, groups.to(gram.device))
    n = rows[0].shape[0]
    if n == 0:
        return None
    vocab = raw.config.vocab_size if isinstance(getattr(raw.config, "vocab_size", None), int) else 50_000
    chunk = max(1, _tracer._LENS_ROWS_BUDGET // max(vocab, 1))
    for start in range(0, n, chunk):
        g = groups[start:start + chunk]
        prev = None
        for layer, h in enumerate(rows):
            s, ent = _point(lens_logits(raw, arch, h[start:start + chunk]), params.temperature)
            if not bool(torch.isfinite(ent).all()):
                raise NumericsError(f"NaN or Inf in the logit-lens logits of {_tracer._layer_name(arch, layer)}; "
                                    "the model may overflow in float16 — try float32 or bfloat16.")
            transport.update_entropy(layer, ent, g)
            if prev is not None:
                hell = torch.linalg.vector_norm(prev - s, dim=-1, dtype=torch.float64)
                transport.update(layer - 1, 4.0 * torch.asin((hell / 2.0).clamp(max=1.0)), g)
            prev = s
    return None


@contextlib.contextmanager
def fused():
    """Run spinal_nb.trace with the fused lens reduction inside this block."""
    _tracer._reduce_batch = fused_reduce_batch
    try:
        yield
    finally:
        _tracer._reduce_batch = _ORIGINAL
