"""An independent SPINAL computation for tests: plain torch hooks, one prompt at a time, one-shot SVD, float64.

Nothing here uses spinal_nb.capture or spinal_nb.scores. The logit lens of a state h is obtained from the model itself:
run the forward again with the LAST block's output replaced by h, and read the model's own logits. That applies the
model's final norm, output projection, unembedding and soft-capping by construction, whatever the family.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _blocks(model):
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        try:
            for p in path.split("."):
                obj = getattr(obj, p)
            return obj
        except AttributeError:
            continue
    raise AssertionError("no block list found")


def hidden_states(model, ids: list[int]) -> list[torch.Tensor]:
    """[T, d] states of layers 0..L for one unpadded prompt: input of block 1, then each block's output."""
    blocks = _blocks(model)
    got: dict[int, torch.Tensor] = {}

    def pre(mod, args, kwargs):
        got[0] = (args[0] if args else kwargs["hidden_states"]).detach()[0]

    def post(i):
        def f(mod, args, out):
            got[i + 1] = (out[0] if isinstance(out, tuple) else out).detach()[0]
        return f

    hooks = [blocks[0].register_forward_pre_hook(pre, with_kwargs=True)]
    hooks += [b.register_forward_hook(post(i)) for i, b in enumerate(blocks)]
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        for h in hooks:
            h.remove()
    return [got[i] for i in range(len(blocks) + 1)]


def lens_by_replacement(model, ids: list[int], h: torch.Tensor) -> torch.Tensor:
    """The model's own logits [T, V] when its last block outputs `h` [T, d]."""
    last = _blocks(model)[-1]

    def swap(mod, args, out):
        return (h[None].to(out[0].dtype),) + tuple(out[1:]) if isinstance(out, tuple) else h[None].to(out.dtype)

    hook = last.register_forward_hook(swap)
    try:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0]
    finally:
        hook.remove()


def tail_alpha(sigma: np.ndarray, tail_window=(0.1, 0.9), floor=1e-7, min_points=8):
    r = sigma.size
    k_lo, k_hi = max(1, math.ceil(tail_window[0] * r)), min(r, math.floor(tail_window[1] * r))
    k = np.arange(k_lo, k_hi + 1)
    s = sigma[k - 1]
    keep = s > floor * sigma[0]
    k, s = k[keep], s[keep]
    if k.size < min_points:
        return None
    slope = np.polyfit(np.log(k), np.log(s), 1, w=np.sqrt(1.0 / k))[0]  # polyfit squares w: weights 1/k
    return -slope


def reference_scores(model, token_ids: list[list[int]], skip_first=1, stride=1, n_groups=10, temperature=1.0):
    """Per-layer contraction (with jackknife replicates), transport and entropy, computed the direct way."""
    states, lens, groups = None, None, []
    for i, ids in enumerate(token_ids):
        sel = list(range(skip_first, len(ids), stride))
        if not sel:
            continue
        hs = hidden_states(model, ids)
        if states is None:
            states, lens = [[] for _ in hs], [[] for _ in hs]
        for layer, h in enumerate(hs):
            states[layer].append(h[sel].double().numpy())
            z = lens_by_replacement(model, ids, h)[sel].double() / temperature
            lens[layer].append(torch.softmax(z, -1).numpy())
        groups += [i % n_groups] * len(sel)
    groups = np.asarray(groups)
    out = {"contraction": [], "contraction_jk": [], "transport": [], "entropy": [], "n_tokens": []}
    for layer in range(len(states)):
        H = np.concatenate(states[layer])

        def alpha(rows, H=H):
            X = H[rows] - H[rows].mean(0)
            s = np.linalg.svd(X, compute_uv=False)[: min(X.shape[0] - 1, X.shape[1])]
            return tail_alpha(s)

        everything = np.ones(len(H), bool)
        out["contraction"].append(alpha(everything))
        out["contraction_jk"].append([alpha(groups != g) for g in sorted(set(groups.tolist()))])
        P = np.concatenate(lens[layer])
        out["entropy"].append(float(-(P * np.log(np.where(P > 0, P, 1))).sum(-1).mean()))
        out["n_tokens"].append(len(H))
        if layer + 1 < len(states):
            Q = np.concatenate(lens[layer + 1])
            bc = np.sqrt(P * Q).sum(-1).clip(max=1.0)
            out["transport"].append(float((2 * np.arccos(bc)).mean()))
        else:
            out["transport"].append(None)
    return out
