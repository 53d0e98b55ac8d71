"""`trace()`: one call from a model and prompts to a TraceFrame (docs/method.md), local or on NDIF.

Per batch of prompts, one nnsight trace reads the input of block 1 and every block's raw output at the selected
positions (positions.py); the rows go straight into the streaming accumulators (spinal_nb.scores) and are dropped,
so memory stays flat in the number of prompts. Prompts run jackknife group by group (`_group_major`), and a
finished group's accumulators are spilled to disk (GramAccumulator.spill), so what stays in memory is about one
group's worth whatever the number of prompts. The logit lens (lens.LensEngine) is evaluated on the selected rows only,
a cache-sized chunk of positions at a time, in buffers reused for the whole trace: nothing of size
tokens × vocab × layers ever exists, and the lens memory does not grow with the batch.

Remote (`remote=True`, NDIF): the same trace runs on the server, which also evaluates the lens there and sends back,
per layer, only the selected rows and one Fisher–Rao step and one entropy per position — never the vocabulary-sized
lens. (Per-group Gram sums would be d² per group per layer, larger than the rows whenever a batch holds fewer than
d·groups positions, which is always the case for the large models NDIF serves, so the Gram is summed here.)
`remote="local"` runs that exact code path through nnsight's local simulation (serialize → deserialize → run).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import math
import os
import platform
import shutil
import socket
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..data.cache import user_cache_dir
from ..data.prompts import as_texts
from ..errors import InputError, ModelLoadError, NumericsError, RemoteError, SpinalError
from ..frame import TraceFrame
from ..io import atomic_file, file_sha256
from ..params import SpinalParams
from ..scores import (
    GramAccumulator,
    TransportAccumulator,
    assign_groups,
    check_entropy_finite,
    finalize,
    lens_point,
    lens_step,
)
from .architectures import (
    Architecture,
    block_state,
    get_path,
    hidden_size,
    lens_logits,
    model_dtype,
    n_blocks,
    resolve_architecture,
    unwrap,
)
from .lens import LensEngine
from .positions import Batch, make_batch

CHECKPOINT_FORMAT = 3  # 3: prompts run group by group, finished groups spilled; 2 (hybrid, prompt order) not read
_SPILL_MIN_BYTES = 16 << 20  # a finished group holding at least this much goes to disk (smaller ones stay: no IO)
_LENS_ROWS_BUDGET = 1 << 24  # positions x vocab per top-k lens chunk (16M floats = 64 MB in float32)


# ---------------------------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------------------------
def _context_length(raw: torch.nn.Module) -> int | None:
    cfg = raw.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def _tokenize(tokenizer: Any, texts: Sequence[str], limit: int | None) -> tuple[list[list[int]], int]:
    """Token ids per prompt (with the tokenizer's special tokens, e.g. BOS), truncated to `limit`."""
    if tokenizer is None or not callable(tokenizer):
        raise InputError("A tokenizer is needed to turn prompts into tokens: pass tokenizer=...")
    out, n_cut = [], 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*sequence length is longer than.*")
        for i, text in enumerate(texts):
            ids = tokenizer(text)["input_ids"]
            if len(ids) and isinstance(ids[0], list):
                ids = ids[0]
            if len(ids) == 0:
                raise InputError(f"Prompt {i} tokenizes to no tokens: {text[:60]!r}.")
            if limit is not None and len(ids) > limit:
                ids, n_cut = ids[:limit], n_cut + 1
            out.append([int(t) for t in ids])
    if n_cut:
        warnings.warn(f"{n_cut} prompt(s) were longer than {limit} tokens (the model's context or max_length) and "
                      f"were truncated to their first {limit} tokens.", stacklevel=3)
    return out, n_cut


def _pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, int):
            return v
    return 0  # masked and never selected: any id in range will do


# ---------------------------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------------------------
def _dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        name = dtype.replace("torch.", "")
        aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
        d = getattr(torch, aliases.get(name, name), None)
        if isinstance(d, torch.dtype) and d.is_floating_point:
            return d
    raise InputError(f"dtype must be a torch floating dtype or its name ('bfloat16', 'float32', ...), got {dtype!r}.")


def _is_nnsight(model: Any) -> bool:
    from nnsight.intervention.envoy import Envoy  # base of NNsight and TransformersModel
    return isinstance(model, Envoy) and isinstance(getattr(model, "_module", None), torch.nn.Module)


def _is_transformers_model(model: Any) -> bool:
    import nnsight
    return isinstance(model, nnsight.TransformersModel)


def _remote_wanted(remote: Any) -> bool:
    return bool(remote) and remote != "local"


def _load(model: Any, tokenizer: Any, *, device: Any, dtype: torch.dtype | None, remote: Any, revision: str | None,
          trust_remote_code: bool, load_kwargs: dict[str, Any], architecture: Architecture | None
          ) -> tuple[Any, torch.nn.Module, Any, str, str | None, Architecture]:
    """(nnsight model, plain module, tokenizer, model name, revision, architecture) for any accepted `model`.

    The architecture is resolved before anything is wrapped, so an unsupported model fails fast and cleanly.
    """
    import nnsight
    import transformers

    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        if _remote_wanted(remote):
            if Path(name).exists():
                raise RemoteError(f"remote=True runs on NDIF, which only serves Hub models; '{name}' is a local path. "
                                  "Trace it locally (remote=False).")
            try:
                nn_model = nnsight.TransformersModel(name, task="text-generation", revision=revision,
                                                     trust_remote_code=trust_remote_code)
            except Exception as e:  # noqa: BLE001 - every failure to reach the Hub is one RemoteError
                raise RemoteError(f"Could not prepare '{name}' for NDIF: reading its config from the Hugging Face Hub "
                                  f"failed ({type(e).__name__}: {e}). Check the network and the model id.") from e
            tok = tokenizer or nn_model.tokenizer
            return nn_model, nn_model._module, tok, name, revision, resolve_architecture(nn_model, architecture)
        kw = dict(revision=revision, trust_remote_code=trust_remote_code, **load_kwargs)
        if dtype is not None:
            kw["dtype"] = dtype
        try:
            raw = transformers.AutoModelForCausalLM.from_pretrained(name, **kw)
            tok = tokenizer or transformers.AutoTokenizer.from_pretrained(
                name, revision=revision, trust_remote_code=trust_remote_code,
                **{k: v for k, v in load_kwargs.items() if k == "gguf_file"})
        except (OSError, ValueError, ImportError, KeyError) as e:
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            raise ModelLoadError(
                f"Could not load the model '{name}' ({type(e).__name__}: {e}). "
                + ("HF_HUB_OFFLINE=1 is set, so only local files are used: " if offline else "")
                + "pass a local folder (save_pretrained / hf download), an already loaded model, or check the id."
            ) from e
        dev = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        arch = resolve_architecture(raw, architecture)
        raw = raw.to(dev)
        return nnsight.NNsight(raw), raw, tok, name, revision, arch

    if _is_nnsight(model):
        raw = unwrap(model)
        tok = tokenizer or getattr(model, "tokenizer", None)
        nn_model = model
    elif isinstance(model, torch.nn.Module):
        raw, tok, nn_model = model, tokenizer, None
    else:
        raise InputError(f"model must be a Hugging Face id or local path, a transformers model or an nnsight model; "
                         f"got {type(model).__name__}.")
    arch = resolve_architecture(raw, architecture)
    if _remote_wanted(remote) and not (_is_transformers_model(model) and getattr(model, "repo_id", "")):
        raise RemoteError("remote=True needs a Hugging Face Hub id that NDIF hosts (e.g. trace('meta-llama/"
                          "Llama-3.1-8B', prompts, remote=True)) or an nnsight.TransformersModel built from one; "
                          f"this {type(model).__name__} is a local model. Run it with remote=False.")
    if dtype is not None and any(p.dtype != dtype for p in raw.parameters() if p.is_floating_point()):
        raw.to(dtype)
    if device is not None:
        raw.to(torch.device(device))
    if tok is None:
        src = getattr(raw, "name_or_path", "") or getattr(getattr(raw, "config", None), "_name_or_path", "")
        if src and Path(src).is_dir():
            tok = transformers.AutoTokenizer.from_pretrained(src)
        else:
            raise InputError(f"Pass tokenizer=... with this {type(raw).__name__}: spinal-nb cannot guess which "
                             "tokenizer turns the prompts into tokens.")
    if nn_model is None:
        nn_model = nnsight.TransformersModel(raw, tokenizer=tok) if remote == "local" else nnsight.NNsight(raw)
    elif remote == "local" and not _is_transformers_model(nn_model):
        nn_model = nnsight.TransformersModel(raw, tokenizer=tok)  # plain NNsight would pass remote= to forward()
    name = getattr(model, "repo_id", "") or getattr(raw, "name_or_path", "") or type(raw).__name__
    rev = revision or getattr(getattr(raw, "config", None), "_commit_hash", None)
    return nn_model, raw, tok, str(name), rev, arch


def _model_device(raw: torch.nn.Module) -> torch.device:
    for p in raw.parameters():
        return p.device
    return torch.device("cpu")


def _forward_kwargs(raw: torch.nn.Module) -> dict[str, Any]:
    """No KV cache, and only the last position's logits (the lens computes its own): less memory, same states."""
    try:
        names = inspect.signature(raw.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return {}
    kw: dict[str, Any] = {}
    if "use_cache" in names:
        kw["use_cache"] = False
    if "logits_to_keep" in names:
        kw["logits_to_keep"] = 1
    return kw


def _model_fingerprint(raw: torch.nn.Module) -> str:
    """Cheap identity of a model: class, config and the first values of every weight (not all of them)."""
    h = hashlib.sha256()
    h.update(type(raw).__name__.encode())
    cfg = getattr(raw, "config", None)
    if cfg is not None:
        h.update(cfg.to_json_string(use_diff=False).encode())
    for name, p in raw.named_parameters():
        h.update(name.encode())
        if p.device.type != "meta":
            h.update(p.detach().reshape(-1)[:16].float().cpu().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# capture: one nnsight trace per batch
# ---------------------------------------------------------------------------------------------------------------
def _trace_inputs(nn_model: Any, batch: Batch, device: torch.device) -> tuple[tuple, dict[str, Any]]:
    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
    if _is_transformers_model(nn_model):
        return ({"input_ids": ids, "attention_mask": mask},), {}
    return (ids,), {"attention_mask": mask}


def _capture_local(nn_model: Any, arch: Architecture, batch: Batch, fwd: dict[str, Any],
                   device: torch.device) -> list[torch.Tensor]:
    """Selected rows [N, d] of layers 0..L (input of block 1, then each block's raw output), in one trace."""
    import nnsight

    args, kwargs = _trace_inputs(nn_model, batch, device)
    select = batch.select.to(device)
    blocks = get_path(nn_model, arch.blocks)
    with nn_model.trace(*args, **kwargs, **fwd) as tracer:
        rows = nnsight.save([])
        rows.append(blocks[0].input[select])
        for block in blocks:
            rows.append(block_state(block.output)[select])
        # the rest of the forward (final norm, the model's own logits over every position) is not needed: the lens
        # of layer L is computed on the selected rows; stopping saves one vocabulary-sized matmul per batch
        tracer.stop()
    return list(rows)


def _capture_remote(nn_model: Any, arch: Architecture, batch: Batch, fwd: dict[str, Any], params: SpinalParams,
                    remote: Any) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Server-side version: the lens, its Fisher–Rao steps and entropies are computed inside the trace.

    Returns (rows per layer, steps per layer pair, entropies per layer), each over the selected positions. The body
    uses torch only (the server has no spinal-nb) and mirrors scores.lens_point / fisher_rao_sqrt (and lens_step
    for top-k) operation by operation.
    """
    import nnsight

    raw = unwrap(nn_model)
    args, kwargs = _trace_inputs(nn_model, batch, torch.device("cpu"))
    select = batch.select
    n_layers = n_blocks(raw, arch) + 1
    blocks = get_path(nn_model, arch.blocks)
    norm = get_path(nn_model, arch.final_norm) if get_path(raw, arch.final_norm) is not None else None
    proj = get_path(nn_model, arch.output_proj) if get_path(raw, arch.output_proj) is not None else None
    unembed = get_path(nn_model, arch.unembed)
    scale = float(getattr(raw, arch.logit_scale_attr)) if arch.logit_scale_attr else None
    divisor = float(getattr(raw.config, arch.logit_divisor_attr)) if arch.logit_divisor_attr else None
    cap = getattr(raw.config, arch.softcap_attr, None) if arch.softcap_attr else None
    temperature, top_k = float(params.temperature), params.top_k
    pi = math.pi
    with nn_model.trace(*args, remote=remote, **kwargs, **fwd):
        rows = nnsight.save([])
        steps = nnsight.save([])
        ents = nnsight.save([])
        prev = prev_sq = None
        for i in range(n_layers):
            if i == 0:
                h = blocks[0].input
            else:
                h = blocks[i - 1].output
            if isinstance(h, (tuple, list)):
                h = h[0]
            h = h[select.to(h.device)]
            rows.append(h)
            x = h
            if norm is not None:
                x = norm(x)
            if proj is not None:
                x = proj(x)
            z = unembed(x)
            if scale is not None:
                z = z * scale
            if divisor is not None:
                z = z / divisor
            if cap is not None:
                z = torch.tanh(z / cap) * cap
            if z.dtype not in (torch.float32, torch.float64):
                z = z.float()
            lp = torch.log_softmax(z / temperature if temperature != 1.0 else z, dim=-1)
            sq = lp.mul(0.5).exp_()  # sqrt p, shared by the steps to both neighbours (scores.lens_point)
            ents.append(-(sq * sq).mul_(lp).sum(-1).to(torch.float64))
            if prev is not None:
                if top_k is not None:
                    za, zb = prev, z
                    k = min(top_k, z.shape[-1])
                    keep = torch.zeros_like(za, dtype=torch.bool)
                    keep.scatter_(-1, za.topk(k, dim=-1).indices, True)
                    keep.scatter_(-1, zb.topk(k, dim=-1).indices, True)
                    neg = torch.finfo(za.dtype).min
                    za = za.masked_fill(~keep, neg)
                    zb = zb.masked_fill(~keep, neg)
                    la = torch.log_softmax(za / temperature if temperature != 1.0 else za, dim=-1)
                    lb = torch.log_softmax(zb / temperature if temperature != 1.0 else zb, dim=-1)
                    sa, sb = la.mul_(0.5).exp_(), lb.mul_(0.5).exp_()
                else:
                    sa, sb = prev_sq, sq
                hell = (sa - sb).square_().sum(-1).to(torch.float64).sqrt()  # as scores.fisher_rao_sqrt
                steps.append((4.0 * torch.asin((hell / 2.0).clamp(max=1.0))).clamp(0.0, pi))
            prev, prev_sq = z, sq
    return list(rows), list(steps), list(ents)


def _layer_name(arch: Architecture, layer: int) -> str:
    return f"layer {layer} (input of {arch.blocks}.0)" if layer == 0 else \
        f"layer {layer} (output of {arch.blocks}.{layer - 1})"


def _check_finite(x: torch.Tensor, arch: Architecture, layer: int, what: str = "hidden states") -> None:
    if not torch.isfinite(x).all():
        raise NumericsError(f"NaN or Inf in the {what} at {_layer_name(arch, layer)}. In float16 this is usually an "
                            "overflow: trace in bfloat16 or float32 (dtype=...); otherwise check the model's weights.")


def _check_rows(rows: list[torch.Tensor], arch: Architecture) -> None:
    """One device sync for all layers; the message names the first layer with NaN/Inf."""
    ok = torch.stack([torch.isfinite(h).all() for h in rows])
    if not bool(ok.all()):
        _check_finite(rows[int((~ok).nonzero()[0, 0])], arch, int((~ok).nonzero()[0, 0]))


def _reduce_batch(raw: torch.nn.Module, arch: Architecture, rows: list[torch.Tensor], groups: torch.Tensor,
                  gram: GramAccumulator, transport: TransportAccumulator, params: SpinalParams,
                  lens: LensEngine | None = None) -> None:
    """Feed one batch's selected rows into the accumulators: Gram per layer, lens steps and entropies per pair.

    The exact lens goes through `LensEngine` (capture/lens.py: reused buffers, several layers per unembedding
    matmul, one exponential per element); its entropies double as the NaN/Inf check of the logits (a non-finite
    logit makes its row's entropy NaN). The top-k knob needs both layers' logits for its mask and goes through
    scores.lens_step.
    """
    _check_rows(rows, arch)
    for layer, h in enumerate(rows):
        gram.update(layer, h, groups.to(gram.device))
    n = rows[0].shape[0]
    if n == 0:
        return
    if params.top_k is None:
        steps, ent_all = (lens or LensEngine(raw, arch, params.temperature)).reduce(rows)
        _check_entropies(ent_all, arch)
        transport.update_all(steps, ent_all, groups)
        return
    vocab = raw.config.vocab_size if isinstance(getattr(raw.config, "vocab_size", None), int) else 50_000
    chunk = max(1, _LENS_ROWS_BUDGET // max(vocab, 1))
    for start in range(0, n, chunk):
        ents: list[torch.Tensor] = []
        steps_: list[torch.Tensor] = []
        prev_z = None
        for layer, h in enumerate(rows):
            z = lens_logits(raw, arch, h[start:start + chunk])
            _, ent = lens_point(z, params.temperature)
            ents.append(ent)
            check_entropy_finite(ent, _layer_name(arch, layer))  # lens_step needs finite logits: name the layer
            if prev_z is not None:
                steps_.append(lens_step(prev_z, z, params.temperature, params.top_k,
                                        what=f"{_layer_name(arch, layer - 1)} -> {layer}"))
            prev_z = z
        del prev_z, z
        transport.update_all(torch.stack(steps_), torch.stack(ents), groups[start:start + chunk])


def _check_entropies(ent_all: torch.Tensor, arch: Architecture) -> None:
    """One device sync: NumericsError naming the first layer whose lens entropies (hence logits) are not finite."""
    ok = torch.isfinite(ent_all).all(dim=1)
    if not bool(ok.all()):
        bad = int((~ok).nonzero()[0, 0])
        check_entropy_finite(ent_all[bad], _layer_name(arch, bad))


def _reduce_remote(arch: Architecture, rows: list[torch.Tensor], steps: list[torch.Tensor],
                   ents: list[torch.Tensor], groups: torch.Tensor, gram: GramAccumulator,
                   transport: TransportAccumulator) -> None:
    _check_rows(rows, arch)
    for layer, h in enumerate(rows):
        gram.update(layer, h, groups.to(gram.device))
    for layer, e in enumerate(ents):
        _check_finite(e, arch, layer, "logit-lens entropies")
        transport.update_entropy(layer, e, groups)
    for layer, s in enumerate(steps):
        transport.update(layer, s, groups)


# ---------------------------------------------------------------------------------------------------------------
# lens detail: top-k lens tokens per layer for a few prompts
# ---------------------------------------------------------------------------------------------------------------
def _lens_indices(lens_prompts: Any, n_prompts: int) -> list[int]:
    if lens_prompts is None or lens_prompts is False:
        return []
    if isinstance(lens_prompts, bool):
        lens_prompts = 1
    if isinstance(lens_prompts, int):
        if lens_prompts < 0:
            raise InputError("lens_prompts must be >= 0 (the number of leading prompts) or a list of indices.")
        return list(range(min(lens_prompts, n_prompts)))
    idx = [int(i) for i in lens_prompts]
    bad = [i for i in idx if not 0 <= i < n_prompts]
    if bad:
        raise InputError(f"lens_prompts indices {bad} are outside 0..{n_prompts - 1}.")
    return list(dict.fromkeys(idx))


def _lens_topk(nn_model: Any, arch: Architecture, batch: Batch, fwd: dict[str, Any], k: int,
               temperature: float, remote: Any, device: torch.device) -> tuple[list, list]:
    """Top-k lens probabilities and token ids [N_real, k] per layer for every real position of the batch."""
    import nnsight

    raw = unwrap(nn_model)
    args, kwargs = _trace_inputs(nn_model, batch, device)
    real = batch.attention_mask.bool().to(device)
    n_layers = n_blocks(raw, arch) + 1
    blocks = get_path(nn_model, arch.blocks)
    norm = get_path(nn_model, arch.final_norm) if get_path(raw, arch.final_norm) is not None else None
    proj = get_path(nn_model, arch.output_proj) if get_path(raw, arch.output_proj) is not None else None
    unembed = get_path(nn_model, arch.unembed)
    scale = float(getattr(raw, arch.logit_scale_attr)) if arch.logit_scale_attr else None
    divisor = float(getattr(raw.config, arch.logit_divisor_attr)) if arch.logit_divisor_attr else None
    cap = getattr(raw.config, arch.softcap_attr, None) if arch.softcap_attr else None
    extra = {"remote": remote} if remote else {}
    with nn_model.trace(*args, **extra, **kwargs, **fwd):
        probs = nnsight.save([])
        ids = nnsight.save([])
        for i in range(n_layers):
            if i == 0:
                h = blocks[0].input
            else:
                h = blocks[i - 1].output
            if isinstance(h, (tuple, list)):
                h = h[0]
            x = h[real.to(h.device)]
            if norm is not None:
                x = norm(x)
            if proj is not None:
                x = proj(x)
            z = unembed(x)
            if scale is not None:
                z = z * scale
            if divisor is not None:
                z = z / divisor
            if cap is not None:
                z = torch.tanh(z / cap) * cap
            p = torch.softmax(z.float() / temperature, dim=-1)
            top = p.topk(min(k, p.shape[-1]), dim=-1)
            probs.append(top.values)
            ids.append(top.indices)
    return list(probs), list(ids)


def _lens_table(nn_model: Any, arch: Architecture, tokenizer: Any, texts: list[str], token_ids: list[list[int]],
                indices: list[int], checkpoint: str, fwd: dict[str, Any], k: int, temperature: float,
                remote: Any, device: torch.device, n_groups: int, pad_id: int):
    import polars as pl

    from ..frame import LENS_SCHEMA

    cols: dict[str, list[Any]] = {c: [] for c in LENS_SCHEMA}
    decode = (lambda i: tokenizer.decode([i])) if hasattr(tokenizer, "decode") else str
    vocab_cache: dict[int, str] = {}

    def tok(i: int) -> str:
        if i not in vocab_cache:
            vocab_cache[i] = decode(i)
        return vocab_cache[i]

    for start in range(0, len(indices), 8):
        chosen = indices[start:start + 8]
        batch = make_batch([token_ids[i] for i in chosen], chosen, pad_id=pad_id, skip_first=0, stride=1,
                           n_groups=n_groups)
        with torch.no_grad():
            probs, ids = _lens_topk(nn_model, arch, batch, fwd, k, temperature, remote, device)
        owners = [(pi, pos) for pi in chosen for pos in range(len(token_ids[pi]))]
        for layer, (pv, iv) in enumerate(zip(probs, ids, strict=True)):
            pv, iv = pv.float().cpu().numpy(), iv.cpu().numpy()
            for row, (pi, pos) in enumerate(owners):
                for rank in range(pv.shape[1]):
                    cols["checkpoint"].append(checkpoint)
                    cols["prompt_index"].append(pi)
                    cols["prompt"].append(texts[pi])
                    cols["position"].append(pos)
                    cols["token"].append(tok(token_ids[pi][pos]))
                    cols["layer"].append(layer)
                    cols["rank"].append(rank + 1)
                    cols["token_id"].append(int(iv[row, rank]))
                    cols["lens_token"].append(tok(int(iv[row, rank])))
                    cols["prob"].append(float(pv[row, rank]))
    return pl.DataFrame(cols, schema=LENS_SCHEMA)


# ---------------------------------------------------------------------------------------------------------------
# group-by-group order and spilling finished groups
# ---------------------------------------------------------------------------------------------------------------
def _group_major(n_prompts: int, n_groups: int) -> tuple[list[int], dict[int, int]]:
    """The order prompts run in (jackknife group 0's prompts first, each group in prompt order) and, per group, the
    position in that order after which the group is finished. Group membership stays prompt index % n_groups, so
    the order changes no score (beyond float64 summation order); it lets finished groups leave memory."""
    groups = assign_groups(np.arange(n_prompts), n_groups)
    order = np.argsort(groups, kind="stable").tolist()
    last = {int(groups[i]): pos for pos, i in enumerate(order)}
    return order, last


def _spill_root() -> Path:
    """Where a trace without `save_to` spills finished groups: $SPINAL_SPILL_DIR, else the user cache folder
    (on disk; not the system temp folder, which is RAM-backed tmpfs on many Linux systems)."""
    return Path(os.environ["SPINAL_SPILL_DIR"]).expanduser() if os.environ.get("SPINAL_SPILL_DIR") \
        else user_cache_dir() / "spill"


def _private_spill_dir() -> Path:
    """A new run-<host>-<pid>-<random> folder name under the spill root (created only if a group spills); folders
    of this host's dead processes (runs killed outright) are removed first (POSIX only: on Windows os.kill(pid, 0)
    would terminate the process)."""
    root = _spill_root()
    host = socket.gethostname().replace("-", "_")
    for old in root.glob(f"run-{host}-*") if root.is_dir() and os.name == "posix" else []:
        try:
            os.kill(int(old.name.split("-")[2]), 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except OSError:  # alive but not ours (PermissionError) or undecidable: leave it
            continue
    return root / f"run-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _spill_finished(gram: GramAccumulator, last: dict[int, int], end: int) -> None:
    """Spill every group whose prompts all ran (positions < end) and that holds at least _SPILL_MIN_BYTES."""
    for g, pos in last.items():
        if pos < end and g not in gram.spilled_groups() and gram.storage_bytes(group=g) >= _SPILL_MIN_BYTES:
            gram.spill(g)


# ---------------------------------------------------------------------------------------------------------------
# checkpointing (resume)
# ---------------------------------------------------------------------------------------------------------------
class _Checkpointer:
    """Partial accumulators in `save_to/` : state-<prompts>.npz (numpy arrays only) + progress.json, and
    spill/group-<g>.npz for finished groups (written once; the state names them with their sha256).

    The npz is written first under a new name, then progress.json (which names it and holds its sha256) replaces
    the old one, then the old npz is removed: a crash at any moment leaves a consistent pair. No pickle anywhere.
    `prompts_done` counts prompts in the order they run (group by group, `_group_major`).
    """

    def __init__(self, folder: str | os.PathLike, call_sha256: str):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"save_to={str(folder)!r} is a file; pass a folder for the partial results.")
        self.call_sha256 = call_sha256
        self.progress_path = self.folder / "progress.json"
        self.spill_dir = self.folder / "spill"

    def load(self, gram: GramAccumulator, transport: TransportAccumulator) -> dict[str, Any] | None:
        if not self.progress_path.exists():
            return None
        try:
            progress = json.loads(self.progress_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{self.progress_path} is unreadable ({e}); delete the folder to start over.") from e
        found = progress.get("format") if isinstance(progress, dict) else None
        if found != CHECKPOINT_FORMAT:
            raise InputError(f"save_to={str(self.folder)!r} holds partial results in checkpoint format "
                             f"{found!r} of another spinal-nb version (this one writes "
                             f"{CHECKPOINT_FORMAT}); delete the folder to start over.")
        if progress.get("call_sha256") != self.call_sha256:
            raise InputError(f"save_to={str(self.folder)!r} holds a run of a different call (other model, prompts, "
                             "parameters or batch size). Use another folder, or delete it to start over.")
        state_path = self.folder / progress["state_file"]
        if not state_path.exists() or file_sha256(state_path) != progress["state_sha256"]:
            raise InputError(f"The saved state {state_path} is missing or does not match progress.json; "
                             "delete the folder to start over.")
        with np.load(state_path, allow_pickle=False) as z:
            gram.load_state_dict({k[5:]: z[k] for k in z.files if k.startswith("gram.")})
            transport.load_state_dict({k[10:]: z[k] for k in z.files if k.startswith("transport.")})
        return progress

    def save(self, gram: GramAccumulator, transport: TransportAccumulator, prompts_done: int, n_prompts: int,
             extra: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        old = None
        if self.progress_path.exists():
            try:
                old = json.loads(self.progress_path.read_text()).get("state_file")
            except (OSError, json.JSONDecodeError):
                old = None
        arrays = {f"gram.{k}": v for k, v in gram.state_dict().items()}
        arrays.update({f"transport.{k}": v for k, v in transport.state_dict().items()})
        state_path = self.folder / f"state-{prompts_done}.npz"
        atomic_file(state_path, lambda f: np.savez(f, **arrays))
        progress = {"format": CHECKPOINT_FORMAT, "call_sha256": self.call_sha256, "prompts_done": prompts_done,
                    "n_prompts": n_prompts, "complete": prompts_done >= n_prompts, "state_file": state_path.name,
                    "state_sha256": file_sha256(state_path), "extra": extra,
                    "saved": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
        atomic_file(self.progress_path, lambda f: f.write(json.dumps(progress, indent=1).encode()))
        if old and old != state_path.name and (self.folder / old).exists():
            (self.folder / old).unlink()


# ---------------------------------------------------------------------------------------------------------------
# the call
# ---------------------------------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import nnsight
    import transformers
    return {"spinal_nb": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "nnsight": getattr(nnsight, "__version__", "?"), "python": platform.python_version()}


def _params(params: SpinalParams | None, spec_parameters: dict[str, Any]) -> SpinalParams:
    if params is not None and not isinstance(params, SpinalParams):
        raise InputError(f"params must be a SpinalParams, got {type(params).__name__}.")
    base = params or SpinalParams()
    return base.replace(**spec_parameters) if spec_parameters else base


def trace(model: Any, prompts: Any, *, tokenizer: Any = None, checkpoint: str | None = None, batch_size: int = 8,
          device: Any = None, dtype: Any = None, remote: bool | str = False, progress: bool = True,
          save_to: str | os.PathLike | None = None, checkpoint_every: int = 10, trust_remote_code: bool = False,
          revision: str | None = None, text_column: str = "text", max_length: int | None = None,
          lens_prompts: int | Sequence[int] | None = None, lens_top_k: int = 5,
          architecture: Architecture | None = None, params: SpinalParams | None = None, keep_spectra: bool = True,
          load_kwargs: dict[str, Any] | None = None, **spec_parameters: Any) -> TraceFrame:
    """SPINAL depth trace (contraction α_ℓ and transport 𝓛_ℓ per layer, with intervals) of one model on prompts.

    model: a Hugging Face id or local folder (loaded with transformers, `trust_remote_code` off unless you turn it
    on; `load_kwargs` go to `from_pretrained`, e.g. `{"gguf_file": ...}`), a loaded `...ForCausalLM`, or an nnsight
    `NNsight` / `TransformersModel`. A loaded model is moved to `device` / cast to `dtype` *in place* when given.
    prompts: list of str, or a `datasets.Dataset` / iterable of dicts with a `text_column`. Empty or whitespace
    prompts are refused; prompts longer than the model's context (or `max_length`) are truncated with a warning.
    SPINAL parameters (docs/method.md) come as keywords (`skip_first=1`, `n_groups=10`, `top_k=None`, ...) or `params=`.
    `save_to=folder` checkpoints the partial sums every `checkpoint_every` batches; calling again with the same
    arguments resumes there (and returns at once when the run had finished). Prompts run jackknife group by group,
    and each finished group's float64 accumulators (≥ 16 MiB) are spilled to disk — to `save_to/spill/`, else to a
    private folder under `$SPINAL_SPILL_DIR` or the user cache, removed when the call ends — so memory holds about
    one group whatever the number of prompts (the scores are bit-identical either way). `lens_prompts` (an int n: the first n
    prompts, or a list of indices) adds the top-`lens_top_k` lens tokens per layer and position as `frame.lens`.
    `remote=True` runs on NDIF (Hub ids only; needs NDIF_API_KEY); `remote="local"` simulates it offline.

    >>> # frame = spinal_nb.trace("HuggingFaceTB/SmolLM2-135M-Instruct", prompts, checkpoint="instruct")
    """
    params = _params(params, spec_parameters)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}.")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise InputError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}.")
    if remote not in (False, True, "local", None) and not (isinstance(remote, str) and remote.startswith("http")):
        raise InputError(f"remote must be False, True, 'local' or an NDIF host URL, got {remote!r}.")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise InputError(f"max_length must be a positive int or None, got {max_length!r}.")
    if not isinstance(lens_top_k, int) or lens_top_k < 1:
        raise InputError(f"lens_top_k must be a positive int, got {lens_top_k!r}.")
    texts = as_texts(prompts, text_column)
    dt = _dtype(dtype)
    if _remote_wanted(remote):
        from nnsight import CONFIG
        if not CONFIG.API.APIKEY:
            raise RemoteError("No NDIF API key: set the NDIF_API_KEY environment variable (or nnsight.CONFIG.API."
                              "APIKEY = '...'); get a key at https://login.ndif.us. Or trace locally (remote=False).")
    nn_model, raw, tok, name, rev, arch = _load(
        model, tokenizer, device=device, dtype=dt, remote=remote, revision=revision,
        trust_remote_code=trust_remote_code, load_kwargs=dict(load_kwargs or {}), architecture=architecture)
    checkpoint = checkpoint or Path(name).name or name
    L, d = n_blocks(raw, arch), hidden_size(raw, arch)
    limit = min(x for x in (_context_length(raw), max_length) if x is not None) \
        if (_context_length(raw) or max_length) else None
    token_ids, n_truncated = _tokenize(tok, texts, limit)
    lens_idx = _lens_indices(lens_prompts, len(texts))
    pad_id = _pad_id(tok)
    n_prompts = len(texts)
    dev = _model_device(raw) if not _remote_wanted(remote) else torch.device("cpu")
    acc_device = dev if dev.type == "cuda" else torch.device("cpu")  # float64 is slow or absent on MPS and friends
    fwd = _forward_kwargs(raw)
    gram = GramAccumulator(L + 1, d, params.n_groups, row_normalize=params.row_normalize, device=acc_device)
    transport = TransportAccumulator(L + 1, params.n_groups)
    order, last = _group_major(n_prompts, params.n_groups)
    server = bool(remote)
    lens_engine = None if server else LensEngine(raw, arch, params.temperature)  # buffers live for the whole trace

    prompts_sha = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    done = 0
    ckpt = None
    if save_to is not None:
        call = {"model": _model_fingerprint(raw), "tokens": hashlib.sha256(json.dumps(token_ids).encode()).hexdigest(),
                "params": params.to_dict(), "batch_size": batch_size, "arch": arch.to_dict(),
                "dtype": str(model_dtype(raw)), "server": server}
        ckpt = _Checkpointer(save_to, hashlib.sha256(json.dumps(call, sort_keys=True).encode()).hexdigest())
        gram.spill_dir = ckpt.spill_dir  # spilled groups are part of the saved partial results
        state = ckpt.load(gram, transport)
        done = int(state["prompts_done"]) if state else 0
    else:
        gram.spill_dir = _private_spill_dir()  # removed when this call ends, however it ends
        gram.spill_fsync = False

    try:
        from tqdm.auto import tqdm

        was_training = raw.training
        raw.eval()  # dropout off: the states must be the model's deterministic ones
        try:
            with torch.no_grad(), tqdm(total=n_prompts, initial=done, disable=not progress, unit="prompt",
                                       desc=f"spinal trace {checkpoint}") as bar:
                n_batches = 0
                _spill_finished(gram, last, done)  # a resumed run: groups finished before the last checkpoint
                for start in range(done, n_prompts, batch_size):
                    end = min(start + batch_size, n_prompts)
                    idx = order[start:end]
                    batch = make_batch([token_ids[i] for i in idx], idx, pad_id=pad_id, skip_first=params.skip_first,
                                       stride=params.position_stride, n_groups=params.n_groups)
                    if batch.n_selected:
                        _run_batch(nn_model, raw, arch, batch, fwd, params, remote, dev, gram, transport, lens_engine)
                    _spill_finished(gram, last, end)
                    n_batches += 1
                    bar.update(len(idx))
                    if ckpt is not None and (n_batches % checkpoint_every == 0 or end == n_prompts):
                        ckpt.save(gram, transport, end, n_prompts, {"n_truncated": n_truncated})
                lens = None
                if lens_idx:
                    lens = _lens_table(nn_model, arch, tok, texts, token_ids, lens_idx, checkpoint, fwd, lens_top_k,
                                       params.temperature, remote, dev, params.n_groups, pad_id)
        except SpinalError:
            raise
        except Exception as e:
            if _remote_wanted(remote) and isinstance(e, _remote_errors()):
                raise _remote_error(e, name) from e
            raise
        finally:
            raw.train(was_training)

        if gram.n_rows(0) == 0:
            raise InputError(f"No token positions to score: every prompt has at most skip_first={params.skip_first} "
                             "tokens. Use longer prompts or a smaller skip_first.")
        cols = finalize(gram, transport, params, keep_spectra=keep_spectra)
        info = {"model": name, "revision": rev, "dtype": str(model_dtype(raw)).replace("torch.", ""),
                "device": "ndif" if _remote_wanted(remote) else str(dev), "n_prompts": n_prompts,
                "prompts_sha256": prompts_sha, "n_layers": L, "d_model": d,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "versions": _versions(),
                "extra": {"architecture": arch.family, "model_class": type(raw).__name__, "batch_size": batch_size,
                          "n_truncated": n_truncated, "max_length": limit, "remote": remote or False,
                          "n_positions": gram.n_rows(0), "resumed_from": done or None}}
        return TraceFrame.from_columns(cols, checkpoint, params, info, lens=lens)
    finally:
        if ckpt is None:
            shutil.rmtree(gram.spill_dir, ignore_errors=True)


def _run_batch(nn_model: Any, raw: torch.nn.Module, arch: Architecture, batch: Batch, fwd: dict[str, Any],
               params: SpinalParams, remote: Any, dev: torch.device, gram: GramAccumulator,
               transport: TransportAccumulator, lens: LensEngine | None = None) -> None:
    if remote:
        rows, steps, ents = _capture_remote(nn_model, arch, batch, fwd, params, remote)
        _reduce_remote(arch, rows, steps, ents, batch.groups, gram, transport)
    else:
        rows = _capture_local(nn_model, arch, batch, fwd, dev)
        _reduce_batch(raw, arch, rows, batch.groups, gram, transport, params, lens)


def _remote_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [OSError, RuntimeError, ConnectionError, TimeoutError]
    try:
        from nnsight.intervention.backends.remote import RemoteError as NnsightRemoteError
        errs.append(NnsightRemoteError)
    except ImportError:  # pragma: no cover
        pass
    for mod, attr in (("websocket", "WebSocketException"), ("httpx", "HTTPError"),
                      ("huggingface_hub.errors", "HFValidationError")):
        try:
            errs.append(getattr(__import__(mod, fromlist=[attr]), attr))
        except (ImportError, AttributeError):  # pragma: no cover
            pass
    return tuple(errs)


def _remote_error(e: BaseException, name: str) -> RemoteError:
    return RemoteError(f"The NDIF run of '{name}' failed ({type(e).__name__}: {e}). Check the network, NDIF's status "
                       "(nnsight.status()), your API key (NDIF_API_KEY) and that NDIF hosts this exact model id; "
                       "or trace locally with remote=False.")
