"""`fit_tuned_lens`: train a tuned lens (capture/tuned_lens.py) on text, offline, on a few CPU cores.

The recipe is that of Belrose et al. 2023 ("Eliciting Latent Predictions from Transformers with the Tuned Lens",
arXiv:2303.08112; the `tuned-lens` package's `train` command): one affine translator per layer ℓ < L in residual form
h ↦ h + A_ℓ h + b_ℓ, initialised to the identity (A = 0, b = 0), trained so that the lens of the translated state
matches the model's final distribution: loss Σ_ℓ mean_t KL(p_L,t ‖ p̂_ℓ,t), over the token positions a trace scores
(the first `skip_first` of each text dropped), with the model frozen and weight decay 1e-3 (towards the identity).

What changes for a laptop (2 CPU cores) — the paper's run is 250 steps × 2^18 tokens (65 M tokens), SGD with
Nesterov momentum 0.9, in bfloat16 on GPUs, streaming fresh text at every step:
- far fewer tokens: `max_tokens` (default 8,192) training positions, seen for `epochs` passes;
- the hidden states of every layer are **captured once** (one forward per batch of texts, the tracer's own capture)
  and kept in memory as float32 ((L + 1) · tokens · d · 4 bytes: 0.6 GB for SmolLM2 at 8,192 tokens), then reused
  by every epoch; the final distribution is recomputed per minibatch from the cached last layer (one unembedding
  matmul, shared by all L translators) instead of being stored (it would be tokens × vocabulary);
- the translators start from the least-squares map of layer ℓ's states onto the last layer's (ridge 1e-3 relative
  to the Gram's mean diagonal; Din et al. 2023, "Jump to Conclusions: Short-Cutting Transformers with Linear
  Transformations", arXiv:2303.09435) instead of the identity (`init="identity"` is the paper's): one d × d solve
  per layer on the cached states, which leaves the KL steps a refinement rather than the whole fit — on a 49k
  vocabulary one KL step over all layers costs ~5 GFLOP per token, so 2 shared cores afford a few thousand tokens;
- Adam (lr 1e-4, linear decay to 0 after a 10 % warm-up) by default; optimizer="sgd" is the paper's SGD with
  Nesterov momentum 0.9 (lr 0.1 · (1 − 0.9));
- float32 throughout (no autocast on CPU);
- the layers' losses are backpropagated one layer at a time, so only one [batch × vocabulary] graph lives at once.
A held-out part of the text (`heldout_tokens` positions, whole texts, never trained on) gives the fit table: mean
KL(p_L ‖ p_ℓ) per layer under the logit lens (`kl_logit`), the least-squares start (`kl_init`, with that init) and
the tuned lens (`kl_tuned`).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from ..data.cache import recipe_hash, user_cache_dir
from ..data.prompts import as_texts
from ..errors import InputError, ModelLoadError
from ..progress import bar as progress_bar
from ..progress import line_based, quiet_transformers
from .architectures import Architecture, lens_logits, n_blocks, resolve_architecture
from .batch import capture_local
from .load import context_length, forward_kwargs, load_model, model_device, pad_id, tokenize
from .positions import make_batch
from .tuned_lens import LENS_FORMAT, TunedLens, model_facts, unembed_fingerprint

CAPTURE_BATCH = 16  # texts per forward while capturing


def fit_tuned_lens(model: Any, texts: Any, tokenizer: Any = None, *, max_tokens: int = 8192,
                   heldout_tokens: int = 1024, min_tokens: int = 512, epochs: int = 1, batch_tokens: int = 128,
                   max_steps: int | None = None, init: str = "lstsq", ridge: float = 1e-3, optimizer: str = "adam",
                   lr: float | None = None, weight_decay: float = 1e-3,
                   max_length: int = 128, skip_first: int = 1, seed: int = 0, progress: bool = True,
                   device: Any = None, load_kwargs: dict[str, Any] | None = None,
                   architecture: Architecture | None = None, text_column: str = "text") -> TunedLens:
    """Fit a tuned lens for `model` on `texts` (see the module docstring for the recipe) and return it.

    model / tokenizer: as for `trace` (a loaded `...ForCausalLM`, a local folder or Hub id). texts: list of str (or
    dicts / a Dataset with `text_column`). Texts are shuffled with `seed` and split whole: the first ones until
    `heldout_tokens` scored positions are held out for the fit table, the rest train (at most `max_tokens`
    positions). At least `min_tokens` training positions are needed. The returned lens carries the model facts
    (refused on another model), the recipe and the fit table (`lens.fit_table()`).

    >>> # lens = spinal_nb.fit_tuned_lens(model, brown_sentences, tokenizer=tok); lens.save("model.lens.safetensors")
    """
    for name, v, lo in (("max_tokens", max_tokens, 1), ("heldout_tokens", heldout_tokens, 1),
                        ("min_tokens", min_tokens, 1), ("epochs", epochs, 0), ("batch_tokens", batch_tokens, 1),
                        ("max_length", max_length, 2), ("skip_first", skip_first, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise InputError(f"{name} must be an int >= {lo}, got {v!r}.")
    if max_steps is not None and (not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 0):
        raise InputError(f"max_steps must be None or an int >= 0, got {max_steps!r}.")
    if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
        raise InputError(f"ridge must be a number >= 0, got {ridge!r}.")
    if init not in ("lstsq", "identity"):
        raise InputError(f"init must be 'lstsq' or 'identity', got {init!r}.")
    if optimizer not in ("adam", "sgd"):
        raise InputError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}.")
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be a positive number or None, got {lr!r}.")
    texts = as_texts(texts, text_column)
    with quiet_transformers(not progress or line_based()):
        nn_model, raw, tok, name, _rev, arch = load_model(
            model, tokenizer, device=device, dtype=None, remote=False, revision=None, trust_remote_code=False,
            load_kwargs=dict(load_kwargs or {}), architecture=architecture)
    limit = min(x for x in (context_length(raw), max_length) if x is not None)
    token_ids, _ = tokenize(tok, texts, limit)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    scored = [max(0, len(token_ids[i]) - skip_first) for i in order]
    held, train, n_held, n_train = [], [], 0, 0
    for i, n in zip(order, scored, strict=True):
        if n == 0:
            continue
        if n_held < heldout_tokens:
            held.append(i)
            n_held += n
        elif n_train < max_tokens:
            train.append(i)
            n_train += n
    if n_train < min_tokens or n_held < heldout_tokens:
        raise InputError(f"fit_tuned_lens needs at least {heldout_tokens + min_tokens:,} scored token positions "
                         f"({heldout_tokens:,} held out + {min_tokens:,} to train on; the first {skip_first} token(s) "
                         f"of each text are not scored, texts are cut at {limit} tokens), but these {len(texts):,} "
                         f"texts give {sum(scored):,}. Pass more text (e.g. more Brown sentences).")
    dev = model_device(raw)
    recipe = {"method": "tuned lens (Belrose et al. 2023): residual affine translators h + A h + b",
              "loss": "sum over layers of mean KL(p_L || p_l)", "optimizer": optimizer,
              "init": init, "ridge": ridge if init == "lstsq" else None,
              "lr": lr if lr is not None else (1e-4 if optimizer == "adam" else 0.1),
              "weight_decay": weight_decay, "epochs": epochs, "max_steps": max_steps, "batch_tokens": batch_tokens, "max_tokens": max_tokens,
              "heldout_tokens": heldout_tokens, "max_length": limit, "skip_first": skip_first, "seed": seed,
              "n_texts": len(texts)}
    was_training = raw.training
    grads = [p.requires_grad for p in raw.parameters()]
    raw.eval()
    t0 = time.perf_counter()
    try:
        for p in raw.parameters():
            p.requires_grad_(False)
        states = _capture(nn_model, raw, arch, tok, token_ids, train + held, skip_first, dev, progress, name)
        ntr = sum(max(0, len(token_ids[i]) - skip_first) for i in train)
        tr_states = [s[:ntr] for s in states]
        ho_states = [s[ntr:] for s in states]
        recipe.update(n_train_tokens=ntr, n_heldout_tokens=int(ho_states[0].shape[0]))
        t_capture = time.perf_counter() - t0
        facts = {**model_facts(raw, arch), "model": name}
        start = _lstsq(tr_states, ridge) if init == "lstsq" else None
        weight, bias = _train(raw, arch, tr_states, recipe, progress, name, start)
        t_train = time.perf_counter() - t0 - t_capture
        lens = TunedLens(weight, bias, facts, recipe)
        first = TunedLens(*start, facts) if start is not None and epochs > 0 else None
        lens.fit = _fit_table(raw, arch, ho_states, lens, batch_tokens, first)
        lens.recipe.update(seconds_capture=round(t_capture, 1), seconds_train=round(t_train, 1),
                           seconds_total=round(time.perf_counter() - t0, 1), torch_threads=torch.get_num_threads())
        return lens
    finally:
        for p, g in zip(raw.parameters(), grads, strict=True):
            p.requires_grad_(g)
        raw.train(was_training)


def _capture(nn_model: Any, raw: torch.nn.Module, arch: Architecture, tok: Any, token_ids: list[list[int]],
             idx: list[int], skip_first: int, dev: torch.device, progress: bool, name: str) -> list[torch.Tensor]:
    """Scored rows [N, d] of layers 0..L (float32, on the model's device), texts in the order of `idx`."""
    per_layer: list[list[torch.Tensor]] = [[] for _ in range(n_blocks(raw, arch) + 1)]
    fwd, pad = forward_kwargs(raw), pad_id(tok)
    with torch.no_grad(), progress_bar(total=len(idx), disable=not progress, unit="text",
                                       desc=f"tuned lens {Path(name).name or name}: hidden states") as bar:
        for start in range(0, len(idx), CAPTURE_BATCH):
            chunk = idx[start:start + CAPTURE_BATCH]
            batch = make_batch([token_ids[i] for i in chunk], chunk, pad_id=pad, skip_first=skip_first, stride=1,
                               n_groups=2)
            for layer, rows in enumerate(capture_local(nn_model, arch, batch, fwd, dev)):
                per_layer[layer].append(rows.detach().float())
            bar.update(len(chunk))
    return [torch.cat(x) for x in per_layer]


def _kl(target_logp: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p ‖ q) from log p (fixed) and the logits of q."""
    return (target_logp.exp() * (target_logp - torch.log_softmax(logits.float(), dim=-1))).sum(-1)


def _lstsq(states: list[torch.Tensor], ridge: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual-form translators (A, b) of the ridge least-squares maps h_ℓ ↦ h_L (centered, in float64): the
    translated state h + A h + b = h M + (mean_L − mean_ℓ M)."""
    L = len(states) - 1
    n, d = states[0].shape
    y = states[L].double()
    my = y.mean(0)
    yc = y - my
    eye = torch.eye(d, dtype=torch.float64, device=y.device)
    weight = torch.zeros(L, d, d, dtype=torch.float64)
    bias = torch.zeros(L, d, dtype=torch.float64)
    for layer in range(L):
        x = states[layer].double()
        mx = x.mean(0)
        xc = x - mx
        g = xc.T @ xc
        g += (ridge * float(g.diagonal().mean()) + 1e-12) * eye
        m = torch.linalg.solve(g, xc.T @ yc)
        weight[layer] = (m - eye).T.cpu()
        bias[layer] = (my - mx @ m).cpu()
    return weight.float(), bias.float()


def _train(raw: torch.nn.Module, arch: Architecture, states: list[torch.Tensor], recipe: dict[str, Any],
           progress: bool, name: str, start: tuple[torch.Tensor, torch.Tensor] | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    L = len(states) - 1
    n, d = states[0].shape
    dev = states[0].device
    gen = torch.Generator().manual_seed(int(recipe["seed"]))
    weight = (start[0].clone() if start else torch.zeros(L, d, d)).to(dev).requires_grad_(True)
    bias = (start[1].clone() if start else torch.zeros(L, d)).to(dev).requires_grad_(True)
    bt = int(recipe["batch_tokens"])
    per_epoch = -(-n // bt)
    total = per_epoch * int(recipe["epochs"])
    if recipe.get("max_steps") is not None:
        total = min(total, int(recipe["max_steps"]))
    recipe["steps"] = total
    if total == 0:
        return weight.detach(), bias.detach()
    if recipe["optimizer"] == "adam":
        opt: torch.optim.Optimizer = torch.optim.AdamW([weight, bias], lr=recipe["lr"],
                                                       weight_decay=recipe["weight_decay"])
        warm = max(1, total // 10)
    else:
        opt = torch.optim.SGD([weight, bias], lr=recipe["lr"], momentum=0.9, nesterov=True,
                              weight_decay=recipe["weight_decay"])
        warm = 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    losses: list[float] = []
    desc = f"tuned lens {Path(name).name or name}: training"
    with progress_bar(total=total, disable=not progress, unit="step", desc=desc) as bar:
        for _epoch in range(int(recipe["epochs"])):
            perm = torch.randperm(n, generator=gen).to(dev)
            for start in range(0, n, bt):
                if len(losses) == total:
                    break
                rows = perm[start:start + bt]
                with torch.no_grad():
                    target = torch.log_softmax(lens_logits(raw, arch, states[L][rows]).float(), dim=-1)
                opt.zero_grad(set_to_none=True)
                step_loss = 0.0
                for layer in range(L):  # one layer's [batch x vocab] graph at a time
                    h = states[layer][rows]
                    x = torch.addmm(bias[layer], h, weight[layer].t()) + h
                    loss = _kl(target, lens_logits(raw, arch, x)).mean()
                    loss.backward()
                    step_loss += float(loss.detach())
                if not math.isfinite(step_loss):
                    raise InputError("The tuned-lens loss became NaN/Inf: lower lr (or use optimizer='adam').")
                opt.step()
                sched.step()
                losses.append(step_loss / L)
                bar.update(1)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(kl=f"{losses[-1]:.3f}")
    last = losses[-min(per_epoch, len(losses)):]
    recipe["train_kl_first_last"] = [round(losses[0], 4), round(sum(last) / len(last), 4)]
    return weight.detach(), bias.detach()


@torch.no_grad()
def _fit_table(raw: torch.nn.Module, arch: Architecture, states: list[torch.Tensor], lens: TunedLens,
               batch_tokens: int, first: TunedLens | None = None) -> list[dict[str, Any]]:
    """Held-out mean KL(p_L ‖ p_ℓ) per layer under the logit lens, the least-squares start (when given) and the
    tuned lens (layer L: 0 under all of them, not recomputed)."""
    L = len(states) - 1
    n = states[0].shape[0]
    readers = {"kl_logit": None, **({"kl_init": first} if first is not None else {}), "kl_tuned": lens}
    sums = torch.zeros(L, len(readers), dtype=torch.float64)
    for start in range(0, n, batch_tokens):
        sl = slice(start, start + batch_tokens)
        target = torch.log_softmax(lens_logits(raw, arch, states[L][sl]).float(), dim=-1)
        for layer in range(L):
            h = states[layer][sl]
            for j, r in enumerate(readers.values()):
                x = h if r is None else r.translate(layer, h)
                sums[layer, j] += _kl(target, lens_logits(raw, arch, x)).double().sum().cpu()
    return [{"layer": layer, **{k: float(sums[layer, j] / n) if layer < L else 0.0 for j, k in enumerate(readers)}}
            for layer in range(L + 1)]


def cached_tuned_lens(model: Any, texts: Any, tokenizer: Any = None, *, name: str = "model",
                      cache_dir: str | os.PathLike | None = None, refit: bool = False, **fit: Any) -> tuple[TunedLens, Path, bool]:
    """(lens, its file, whether it came from the cache): the lens fitted with `fit_tuned_lens(model, texts,
    tokenizer, **fit)`, kept in ``<spinal cache>/tuned-lens/<name>-<recipe hash>.safetensors``. The recipe hash covers
    the lens format, the model's final norm + unembedding fingerprint and depth, the texts and the fit keywords, so
    any change is a cache miss; a cached file that fails its checks (or `refit=True`) is fitted again. `model` must
    be a loaded model."""
    arch = resolve_architecture(model, fit.get("architecture"))
    texts = as_texts(texts, fit.get("text_column", "text"))
    key = {"format": LENS_FORMAT, "unembed": unembed_fingerprint(model, arch), "n_layers": n_blocks(model, arch),
           "texts": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
           "fit": {k: v for k, v in _resolved(fit).items() if k not in ("progress", "device", "architecture")}}
    path = user_cache_dir(cache_dir) / "tuned-lens" / f"{name}-{recipe_hash(key)}.safetensors"
    if path.is_file() and not refit:
        try:
            lens = TunedLens.load(path)
            lens.check_model(model, arch)
            return lens, path, True
        except (ModelLoadError, InputError):
            pass  # damaged or stale: fit again below and replace it
    lens = fit_tuned_lens(model, texts, tokenizer, **fit)
    lens.recipe["cache_key"] = recipe_hash(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    return lens, lens.save(path), False


def _resolved(fit: dict[str, Any]) -> dict[str, Any]:
    """The fit keywords with fit_tuned_lens's defaults filled in: a changed default is a changed recipe."""
    sig = inspect.signature(fit_tuned_lens)
    return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY} | fit
