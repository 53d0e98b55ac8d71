"""The companion metrics read next to α and 𝓛 (docs/method.md, "Companion metrics"), from what a trace already has.

- `effective_rank(sigma)`: exp of the Shannon entropy of the normalized eigenvalues λ_k = σ_k² of the centered Gram
  (Roy & Vetterli 2007, applied to the covariance), in [1, d]: d for an isotropic cloud, 1 for a line.
- `to_final(log_p_final, log_p)`: per position, KL(p_L ‖ p_ℓ) of a lens's distributions and whether the final
  layer's top-1 token is a top-1 token at ℓ; from log-probabilities, whatever lens produced them.
- `to_final_`: the same from what `lens_point_` leaves in the tracer's reused buffers (no [rows x vocab] allocation).
"""
from __future__ import annotations

import numpy as np
import torch


def effective_rank(sigma) -> float | None:
    """exp(H(p)) with p_k = σ_k² / Σ σ², the singular values σ of the centered states (None for an empty spectrum).

    >>> effective_rank(np.ones(4)), effective_rank(np.array([2.0, 0.0, 0.0]))
    (4.0, 1.0)
    """
    lam = np.asarray(sigma, dtype=np.float64) ** 2
    lam = lam[lam > 0]
    if lam.size == 0:
        return None
    p = lam / lam.sum()
    return float(min(lam.size, max(1.0, np.exp(-(p * np.log(p)).sum()))))  # exact range despite rounding


def to_final(log_p_final: torch.Tensor, log_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL(p_L ‖ p_ℓ) float64 [N], top-1 agreement bool [N]) from log-probabilities [N, V] of the final layer and ℓ.

    Agreement: the final layer's top-1 token (its first argmax) has the largest probability at ℓ (ties count).
    """
    lf = log_p_final.to(torch.float64)
    kl = (lf.exp() * (lf - log_p.to(torch.float64))).sum(-1).clamp_(min=0.0)
    top = log_p_final.argmax(-1, keepdim=True)
    agree = log_p.gather(-1, top).squeeze(-1) >= log_p.amax(-1)
    return kl, agree


def to_final_(y: torch.Tensor, log_z: torch.Tensor, p_final: torch.Tensor, ent_final: torch.Tensor,
              scratch: torch.Tensor) -> torch.Tensor:
    """KL(p_L ‖ p_ℓ) [N] (float64) from `lens_point_`'s leftovers at ℓ: y (log p_ℓ = 2y − log Z) and log Z.

    KL = −H_L − 2 Σ p_L y + log Z_ℓ: one pass over [N, V] (the product into `scratch`, then its sum). The three terms
    are ≥ 0 and cancel near ℓ = L, so the result carries an absolute rounding error of a few ulps of the lens
    precision times log Z (~1e-6 nats in float32); it is clamped at 0.
    """
    cross = torch.mul(p_final, y, out=scratch).sum(-1).to(torch.float64)
    return (log_z - ent_final - 2.0 * cross).clamp_(min=0.0)
