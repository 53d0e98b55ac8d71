"""Loading: from what the user passes as `model` (a Hub id or folder, a loaded transformers model, an nnsight model)
to (nnsight model, plain module, tokenizer, name, revision, architecture); tokenizing the prompts; the few facts
of a model the tracer needs (device, context length, forward options, a cheap fingerprint for resume), and the
checks that a run on NDIF can start.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import platform
import socket
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

from .._version import __version__
from ..errors import InputError, ModelLoadError, RemoteError
from .architectures import Architecture, resolve_architecture, unwrap

HUB_PROBE_TIMEOUT_S = 3.0


def looks_like_path(name: str) -> bool:
    """A name a Hub id cannot be (./x, ../x, /x, ~/x, a/b/c, x/, C:\\x): the user meant a folder."""
    return (name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")
            or os.path.isabs(name))


def hub_reachable(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One TCP connection to the Hub's host, `timeout` seconds at most (transformers' own retries take ~30 s)."""
    url = urlsplit(endpoint)
    try:
        with socket.create_connection((url.hostname or "", url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def model_source_options(name: str, revision: str | None) -> dict[str, Any]:
    """Check where a model named by a string comes from, before transformers tries: a missing folder, or a Hub id
    while the Hub cannot be reached and the model is not in the cache, fails here at once with one line. Returns
    extra from_pretrained options ({"local_files_only": True} for a cached Hub model while offline)."""
    if Path(name).expanduser().exists():
        return {}
    if looks_like_path(name):
        raise ModelLoadError(f"no model folder {name}: pass the folder a model was saved to (save_pretrained), or a "
                             "Hub id such as HuggingFaceTB/SmolLM2-135M-Instruct.")
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str)
    except Exception:  # noqa: BLE001 - an id the Hub would refuse is not in the cache either
        cached = False
    if constants.HF_HUB_OFFLINE:
        if cached:
            return {}
        raise ModelLoadError(f"'{name}' is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                             "is set, so it cannot be downloaded: unset HF_HUB_OFFLINE, or pass a local folder.")
    if hub_reachable(constants.ENDPOINT):
        return {}
    if cached:
        return {"local_files_only": True}
    raise ModelLoadError(f"cannot reach the Hugging Face Hub ({constants.ENDPOINT}) to download '{name}', and it is "
                         f"not in the cache ({constants.HF_HUB_CACHE}): connect to the network, or pass a local "
                         "folder (save_pretrained).")


def context_length(raw: torch.nn.Module) -> int | None:
    cfg = raw.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def tokenize(tokenizer: Any, texts: Sequence[str], limit: int | None) -> tuple[list[list[int]], int]:
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


def pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, int):
            return v
    return 0  # masked and never selected: any id in range will do


def as_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        name = dtype.replace("torch.", "")
        aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
        d = getattr(torch, aliases.get(name, name), None)
        if isinstance(d, torch.dtype) and d.is_floating_point:
            return d
    raise InputError(f"dtype must be a torch floating dtype or its name ('bfloat16', 'float32', ...), got {dtype!r}.")


def is_nnsight(model: Any) -> bool:
    from nnsight.intervention.envoy import Envoy  # base of NNsight and TransformersModel
    return isinstance(model, Envoy) and isinstance(getattr(model, "_module", None), torch.nn.Module)


def is_transformers_model(model: Any) -> bool:
    import nnsight
    return isinstance(model, nnsight.TransformersModel)


def remote_wanted(remote: Any) -> bool:
    return bool(remote) and remote != "local"


def load_model(model: Any, tokenizer: Any, *, device: Any, dtype: torch.dtype | None, remote: Any, revision: str | None,
          trust_remote_code: bool, load_kwargs: dict[str, Any], architecture: Architecture | None
          ) -> tuple[Any, torch.nn.Module, Any, str, str | None, Architecture]:
    """(nnsight model, plain module, tokenizer, model name, revision, architecture) for any accepted `model`.

    The architecture is resolved before anything is wrapped, so an unsupported model fails fast and cleanly.
    """
    import nnsight
    import transformers

    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        if remote_wanted(remote):
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
        source = model_source_options(name, revision)
        kw = dict(revision=revision, trust_remote_code=trust_remote_code, **source, **load_kwargs)
        if dtype is not None:
            kw["dtype"] = dtype
        try:
            raw = transformers.AutoModelForCausalLM.from_pretrained(name, **kw)
            tok = tokenizer or transformers.AutoTokenizer.from_pretrained(
                name, revision=revision, trust_remote_code=trust_remote_code, **source,
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

    if is_nnsight(model):
        raw = unwrap(model)
        tok = tokenizer or getattr(model, "tokenizer", None)
        nn_model = model
    elif isinstance(model, torch.nn.Module):
        raw, tok, nn_model = model, tokenizer, None
    else:
        raise InputError(f"model must be a Hugging Face id or local path, a transformers model or an nnsight model; "
                         f"got {type(model).__name__}.")
    arch = resolve_architecture(raw, architecture)
    if remote_wanted(remote) and not (is_transformers_model(model) and getattr(model, "repo_id", "")):
        raise RemoteError("remote=True needs a Hugging Face Hub id that NDIF hosts (e.g. trace('meta-llama/"
                          "Llama-3.1-8B', prompts, remote=True)) or an nnsight.TransformersModel built from one; "
                          f"this {type(model).__name__} is a local model. Run it with remote=False.")
    if getattr(raw, "hf_device_map", None) and (device is not None or dtype is not None):
        raise InputError("This model was loaded with a device_map (accelerate): it is already placed. Drop device= "
                         "and dtype= here, and give dtype to from_pretrained instead.")
    emb = raw.get_input_embeddings() if hasattr(raw, "get_input_embeddings") else None
    if getattr(getattr(emb, "_hf_hook", None), "offload", False):  # nnsight 0.8 runs it with its meta weight
        raise InputError("This model's input embeddings are offloaded (device_map 'disk'/'cpu' offload), which the "
                         "nnsight trace cannot run: keep the embeddings on the execution device in the device_map.")
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
    elif remote == "local" and not is_transformers_model(nn_model):
        nn_model = nnsight.TransformersModel(raw, tokenizer=tok)  # plain NNsight would pass remote= to forward()
    name = getattr(model, "repo_id", "") or getattr(raw, "name_or_path", "") or type(raw).__name__
    rev = revision or getattr(getattr(raw, "config", None), "_commit_hash", None)
    return nn_model, raw, tok, str(name), rev, arch


def model_device(raw: torch.nn.Module) -> torch.device:
    """Where the inputs go and the accumulators live. A model dispatched by accelerate (`device_map=...`): the device
    of its first placed module (the embeddings), skipping offloaded entries ("disk", "meta"); else the first weight
    that is not on the meta device."""
    dmap = getattr(raw, "hf_device_map", None)
    if isinstance(dmap, dict):
        for v in dmap.values():
            if v not in ("disk", "meta"):
                return torch.device(f"cuda:{v}" if isinstance(v, int) else v)
    for p in raw.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


def forward_kwargs(raw: torch.nn.Module) -> dict[str, Any]:
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


def model_fingerprint(raw: torch.nn.Module) -> str:
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


def require_ndif_key() -> None:
    from nnsight import CONFIG

    if not CONFIG.API.APIKEY:
        raise RemoteError("No NDIF API key: set the NDIF_API_KEY environment variable (or nnsight.CONFIG.API."
                          "APIKEY = '...'); get a key at https://login.ndif.us. Or trace locally (remote=False).")


def versions() -> dict[str, str]:
    import nnsight
    import transformers
    return {"spinal_nb": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "nnsight": getattr(nnsight, "__version__", "?"), "python": platform.python_version()}
