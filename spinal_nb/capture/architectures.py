"""THE one table of architecture knowledge: where each decoder family keeps its blocks, final norm and unembedding.

Everything spinal-nb knows about a model family lives in `ARCHITECTURES` below; no other module branches on the
family. A row says, for the `...ForCausalLM` class of a family (paths are relative to that class):

- `blocks`: the decoder block list. Layer ℓ = 0 is captured as the *input* of `blocks[0]`: that is the embedding
  output after everything the model does before its first block (GPT-2/OPT position embeddings, OPT `project_in`,
  Gemma's √d scaling — done inside `Gemma*TextScaledWordEmbedding` in transformers 5 —, Granite's
  `embedding_multiplier`, embedding dropout). Reading it there needs no per-family code and is right for all of them.
  Layers ℓ ≥ 1 are the raw outputs of `blocks[ℓ-1]` (before the final norm, also for ℓ = L).
- `final_norm`: the norm the model applies after its last block. `None` in the table means the family has none;
  `final_norm_optional` means the module may be absent in some checkpoints (OPT-350m: post-LN, no final norm).
- `output_proj`: a projection between the final norm and the unembedding (OPT `project_out` when
  `word_embed_proj_dim != hidden_size`); applied when the module exists.
- `unembed`: the unembedding (its bias, if any, comes with the module: Phi's `lm_head` has one).
- logit post-processing, in the order the model applies it: `logit_scale_attr` (multiply by a model attribute, Cohere),
  `logit_divisor_attr` (divide by a config value, Granite), `softcap_attr` (config value c: c·tanh(z/c), Gemma 2/3).
- `embedding`: the token embedding module (documentation and error messages; not used for capture).
- `block_output`: what a block returns in transformers 5.23 ("tensor"; older versions returned tuples). Capture
  takes element 0 of a tuple either way, so other transformers versions still work.

`lens_logits(model, arch, hidden)` applies final norm (exactly once) → output projection → unembedding →
post-processing. For every family, `lens_logits` of the last block's raw output equals the model's own logits
(tested per family in tests/capture/test_architectures.py).

>>> ARCHITECTURES["llama"].blocks
'model.layers'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ArchitectureError


@dataclass(frozen=True)
class Architecture:
    """How to find the residual stream and the logit lens of one decoder family (see the module docstring)."""

    family: str
    model_types: tuple[str, ...]
    blocks: str
    final_norm: str | None
    unembed: str
    embedding: str
    final_norm_optional: bool = False
    output_proj: str | None = None
    logit_scale_attr: str | None = None
    logit_divisor_attr: str | None = None
    softcap_attr: str | None = None
    block_output: str = "tensor"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("family", "blocks", "final_norm", "unembed", "output_proj",
                                               "logit_scale_attr", "logit_divisor_attr", "softcap_attr")}


def _llama_like(family: str, *model_types: str, **kw: Any) -> Architecture:
    base = dict(blocks="model.layers", final_norm="model.norm", unembed="lm_head", embedding="model.embed_tokens")
    base.update(kw)
    return Architecture(family=family, model_types=model_types or (family,), **base)


_ROWS: tuple[Architecture, ...] = (
    Architecture("gpt2", ("gpt2",), blocks="transformer.h", final_norm="transformer.ln_f", unembed="lm_head",
                 embedding="transformer.wte", notes="learned positions (wpe) are added before block 1"),
    _llama_like("llama", "llama"),
    _llama_like("mistral"),
    _llama_like("qwen2"),
    _llama_like("qwen3"),
    _llama_like("gemma", notes="embedding scaled by sqrt(d) inside GemmaTextScaledWordEmbedding; RMSNorm uses (1 + w)"),
    _llama_like("gemma2", softcap_attr="final_logit_softcapping", notes="tanh soft-capping of the final logits"),
    _llama_like("gemma3", "gemma3_text", softcap_attr="final_logit_softcapping",
                notes="text-only Gemma3ForCausalLM; soft-capping when configured"),
    Architecture("gpt_neox", ("gpt_neox",), blocks="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
                 unembed="lm_head", embedding="gpt_neox.embed_in",
                 notes="Pythia; the unembedding is `lm_head` in transformers 5 (`embed_out` before)"),
    Architecture("opt", ("opt",), blocks="model.decoder.layers", final_norm="model.decoder.final_layer_norm",
                 final_norm_optional=True, output_proj="model.decoder.project_out", unembed="lm_head",
                 embedding="model.decoder.embed_tokens",
                 notes="project_in before block 1 and project_out after the final norm when "
                       "word_embed_proj_dim != hidden_size; OPT-350m (post-LN) has no final norm"),
    _llama_like("phi", final_norm="model.final_layernorm", notes="lm_head has a bias"),
    _llama_like("phi3"),
    _llama_like("mixtral", notes="mixture of experts; block output is the residual stream as usual"),
    _llama_like("qwen2_moe", notes="mixture of experts with a shared expert"),
    _llama_like("qwen3_moe", notes="mixture of experts"),
    _llama_like("granite", logit_divisor_attr="logits_scaling",
                notes="embedding_multiplier applied before block 1; logits divided by logits_scaling"),
    _llama_like("cohere", logit_scale_attr="logit_scale", notes="logits multiplied by logit_scale"),
    _llama_like("olmo2"),
    _llama_like("starcoder2"),
)

#: model_type -> Architecture. THE table.
ARCHITECTURES: dict[str, Architecture] = {t: row for row in _ROWS for t in row.model_types}


def get_path(root: Any, path: str | None) -> Any:
    """Follow a dotted path of attributes (and integer indices) from `root`; None when any step is missing."""
    if path is None:
        return None
    obj = root
    for part in path.split("."):
        if part.isdigit():
            try:
                obj = obj[int(part)]
            except (IndexError, TypeError, KeyError):
                return None
            continue
        # nnsight Envoys answer getattr for every child; plain modules raise AttributeError when it is absent.
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def unwrap(model: Any) -> torch.nn.Module:
    """The plain torch module behind an nnsight wrapper (NNsight / TransformersModel), or `model` itself."""
    inner = getattr(model, "_module", None) if not isinstance(model, torch.nn.Module) else None
    return inner if isinstance(inner, torch.nn.Module) else model


def _supported() -> str:
    return ", ".join(sorted(ARCHITECTURES))


def resolve_architecture(model: Any, override: Architecture | None = None) -> Architecture:
    """The table row for `model` (a `...ForCausalLM`, possibly nnsight-wrapped); ArchitectureError if unsupported.

    `override` lets a caller describe a family that is not in the table; it is checked the same way.
    """
    raw = unwrap(model)
    config = getattr(raw, "config", None)
    cls = type(raw).__name__
    if config is None:
        raise ArchitectureError(f"{cls} has no Hugging Face `config`; spinal-nb traces transformers "
                                "`...ForCausalLM` models (or nnsight wrappers of them).")
    model_type = getattr(config, "model_type", None)
    if getattr(config, "is_encoder_decoder", False):
        raise ArchitectureError(f"{cls} (model_type '{model_type}') is an encoder-decoder model; SPINAL traces the "
                                "residual stream of a causal decoder-only language model. Missing: a decoder-only "
                                f"causal LM. Supported families: {_supported()}.")
    arch = override or ARCHITECTURES.get(model_type)
    if arch is None:
        if "ForCausalLM" not in cls and "LMHeadModel" not in cls and not getattr(config, "is_decoder", False):
            raise ArchitectureError(
                f"{cls} (model_type '{model_type}') is not a causal decoder (encoder-only or a bare backbone): it "
                "has no causal language-model head to read a logit lens from and no causal block stack. "
                f"Load a decoder-only `...ForCausalLM` model instead. Supported families: {_supported()}.")
        raise ArchitectureError(
            f"model_type '{model_type}' ({cls}) is not in spinal-nb's architecture table, so its decoder block "
            "list, final norm, unembedding and logit post-processing are unknown. Supported families: "
            f"{_supported()}. To trace it anyway, describe it: trace(..., architecture=Architecture("
            "family=..., model_types=(...,), blocks='model.layers', final_norm='model.norm', unembed='lm_head', "
            "embedding='model.embed_tokens')) — from spinal_nb.capture.architectures.")
    missing = []
    blocks = get_path(raw, arch.blocks)
    if not isinstance(blocks, torch.nn.ModuleList) or len(blocks) == 0:
        missing.append(f"decoder block list '{arch.blocks}'")
    if arch.final_norm is not None and not arch.final_norm_optional and get_path(raw, arch.final_norm) is None:
        missing.append(f"final norm '{arch.final_norm}'")
    if not isinstance(get_path(raw, arch.unembed), torch.nn.Module):
        missing.append(f"unembedding '{arch.unembed}'")
    if missing:
        raise ArchitectureError(
            f"{cls} (family '{arch.family}') lacks {', '.join(missing)}. spinal-nb needs the full causal LM: load "
            "it with transformers.AutoModelForCausalLM (the `...ForCausalLM` class), not the bare backbone.")
    return arch


def n_blocks(model: Any, arch: Architecture) -> int:
    return len(get_path(unwrap(model), arch.blocks))


def hidden_size(model: Any, arch: Architecture) -> int:
    """d of the residual stream (the width the blocks read and write)."""
    config = unwrap(model).config
    for name in ("hidden_size", "n_embd", "d_model"):
        v = getattr(config, name, None)
        if isinstance(v, int):
            return v
    raise ArchitectureError(f"Cannot read the residual width of {type(unwrap(model)).__name__} from its config.")


def model_dtype(model: Any) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 when it has none)."""
    for p in unwrap(model).parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def block_state(out: Any) -> torch.Tensor:
    """The residual-stream tensor of a block output (transformers 5 returns a tensor, older versions a tuple)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def postprocess_logits(model: Any, arch: Architecture, logits: torch.Tensor) -> torch.Tensor:
    """Apply the family's logit post-processing, in the model's own order: scale, divide, soft-cap."""
    raw = unwrap(model)
    if arch.logit_scale_attr is not None:
        logits = logits * getattr(raw, arch.logit_scale_attr)
    if arch.logit_divisor_attr is not None:
        logits = logits / getattr(raw.config, arch.logit_divisor_attr)
    if arch.softcap_attr is not None:
        cap = getattr(raw.config, arch.softcap_attr, None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
    return logits


def lens_logits(model: Any, arch: Architecture, hidden: torch.Tensor) -> torch.Tensor:
    """Logit lens of raw residual states `hidden` [..., d]: final norm (once) → output projection → unembedding →
    post-processing, with the model's own modules (and dtype). At the last layer this is the model's own logits.

    >>> # lens_logits(model, resolve_architecture(model), hidden_states_of_block_L)  -> [..., vocab]
    """
    raw = unwrap(model)
    h = hidden
    norm = get_path(raw, arch.final_norm)
    if norm is not None:
        h = norm(h)
    proj = get_path(raw, arch.output_proj)
    if proj is not None:
        h = proj(h)
    return postprocess_logits(raw, arch, get_path(raw, arch.unembed)(h))
