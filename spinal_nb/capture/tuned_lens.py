"""A tuned lens: one affine translator per layer, applied to the residual state before the final norm and unembedding.

The translator of layer ℓ < L maps h to h + A_ℓ·h + b_ℓ (Belrose et al. 2023, "Eliciting Latent Predictions from
Transformers with the Tuned Lens": the residual form, so A = 0, b = 0 is the identity and weight decay pulls towards
the logit lens). Layer L keeps the identity: its lens is the model's own output distribution. The translators are
fitted by `spinal_nb.capture.tuned_fit.fit_tuned_lens`; `trace(..., lens=...)` hands them to `LensEngine`, which
applies `TunedLens.translate` to a layer's rows before the lens (so every lens-derived column inherits it).

A lens is stored as one safetensors file (never pickle): tensors ``weight`` [L, d, d] (the A_ℓ) and ``bias`` [L, d]
in float32, and string metadata: ``format``, ``sha256`` (of the two tensors' bytes, checked on load), ``facts`` (the
model it was fitted for: d, vocabulary, depth, a fingerprint of its final norm + unembedding), ``recipe`` and ``fit``
(the held-out KL table).

>>> # lens = spinal_nb.fit_tuned_lens(model, texts); lens.save("smollm2.lens.safetensors")
>>> # frame = spinal_nb.trace(model, prompts, lens=TunedLens.load("smollm2.lens.safetensors"))
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..errors import InputError, ModelLoadError
from ..io import atomic_path
from .architectures import Architecture, get_path, hidden_size, n_blocks, resolve_architecture, unwrap

LENS_FORMAT = "spinal-nb tuned lens 2"  # 2: facts carry the unembedding sketch
LOGIT = "logit"  # SpinalParams.lens of the logit lens (the default)


def unembed_fingerprint(model: Any, arch: Architecture) -> str:
    """SHA-256 of everything between a layer's state and its lens logits: the final norm, output projection and
    unembedding parameters (as float32, in name order) and the logit post-processing constants."""
    raw = unwrap(model)
    h = hashlib.sha256()
    for label, path in (("norm", arch.final_norm), ("proj", arch.output_proj), ("unembed", arch.unembed)):
        module = get_path(raw, path)
        if module is None:
            continue
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            h.update(f"{label}.{name}{tuple(p.shape)}".encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    for attr in (arch.logit_scale_attr,):
        if attr:
            h.update(repr(float(getattr(raw, attr))).encode())
    for attr in (arch.logit_divisor_attr, arch.softcap_attr):
        if attr:
            h.update(f"{attr}={getattr(raw.config, attr, None)!r}".encode())
    return h.hexdigest()


# a lens fitted on one model may read a fine-tuned copy of it (DPO moves SmolLM2's unembedding by ~4e-4 relative):
# up to this relative change of the final norm / unembedding the lens is applied, beyond it refused
VARIANT_TOLERANCE = 0.05
SKETCH_K = 32


def unembed_sketch(model: Any, arch: Architecture) -> list[float]:
    """A few random projections of each parameter between a layer's state and its lens logits (fixed seed): the
    relative change of this sketch estimates the relative change of the weights (Johnson–Lindenstrauss), so a lens
    can tell a fine-tuned copy of its model from another model of the same shape without storing the weights."""
    raw = unwrap(model)
    g = torch.Generator().manual_seed(0)
    out: list[float] = []
    for path in (arch.final_norm, arch.output_proj, arch.unembed):
        module = get_path(raw, path)
        if module is None:
            continue
        for _, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            w = p.detach().to("cpu", torch.float32)
            w = w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(-1, 1)
            right = torch.randn(w.shape[1], 1, generator=g) / w.shape[1] ** 0.5
            left = torch.randn(SKETCH_K, w.shape[0], generator=g) / w.shape[0] ** 0.5
            out.extend((left @ (w @ right)).ravel().tolist())
    return out


def _relative_change(a: list[float], b: list[float]) -> float:
    """max over parameters of ‖a − b‖ / ‖a‖ of two sketches (inf when their shapes differ)."""
    if len(a) != len(b) or not a:
        return float("inf")
    worst = 0.0
    for i in range(0, len(a), SKETCH_K):
        x, y = torch.tensor(a[i:i + SKETCH_K]), torch.tensor(b[i:i + SKETCH_K])
        worst = max(worst, float((x - y).norm() / x.norm().clamp_min(1e-30)))
    return worst


def vocab_width(model: Any, arch: Architecture) -> int:
    """Width of the lens distribution: the unembedding's output rows (its weight), else the config's vocab_size."""
    w = getattr(get_path(unwrap(model), arch.unembed), "weight", None)
    if isinstance(w, torch.Tensor) and w.dim() == 2:
        return int(w.shape[0])
    return int(unwrap(model).config.vocab_size)


def model_facts(model: Any, arch: Architecture) -> dict[str, Any]:
    """What a lens must match to be used on `model`: d, vocabulary, depth and the unembedding fingerprint."""
    return {"d_model": hidden_size(model, arch), "vocab": vocab_width(model, arch), "n_layers": n_blocks(model, arch),
            "unembed_sha256": unembed_fingerprint(model, arch), "unembed_sketch": unembed_sketch(model, arch),
            "family": arch.family}


def weights_sha256(weight: torch.Tensor, bias: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (weight, bias):
        h.update(f"{tuple(t.shape)}".encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class TunedLens:
    """Per-layer affine translators h ↦ h + A_ℓ h + b_ℓ for layers 0..L-1 (identity at L), with the facts of the model
    they were fitted for, the recipe and the held-out fit table (`fit`: one dict per layer)."""

    kind = "tuned"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, facts: dict[str, Any],
                 recipe: dict[str, Any] | None = None, fit: list[dict[str, Any]] | None = None):
        weight = torch.as_tensor(weight).detach().to("cpu", torch.float32).contiguous()
        bias = torch.as_tensor(bias).detach().to("cpu", torch.float32).contiguous()
        if weight.dim() != 3 or weight.shape[1] != weight.shape[2] or bias.shape != weight.shape[:2]:
            raise InputError(f"A tuned lens needs weight [L, d, d] and bias [L, d]; got {tuple(weight.shape)} and "
                             f"{tuple(bias.shape)}.")
        self.weight, self.bias = weight, bias
        self.facts = dict(facts)
        self.recipe = dict(recipe or {})
        self.fit = list(fit or [])
        self.sha256 = weights_sha256(weight, bias)
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def identity(cls, model: Any, arch: Architecture | None = None) -> TunedLens:
        """The translators A = 0, b = 0 for `model`: the logit lens, written as a tuned lens."""
        arch = arch or resolve_architecture(model)
        L, d = n_blocks(model, arch), hidden_size(model, arch)
        return cls(torch.zeros(L, d, d), torch.zeros(L, d), model_facts(model, arch), {"init": "identity"})

    @property
    def n_layers(self) -> int:
        return int(self.weight.shape[0])

    @property
    def tag(self) -> str:
        """What a trace records as its `lens` parameter: the kind and the first 16 hex digits of the weights' hash."""
        return f"{self.kind}-{self.sha256[:16]}"

    def __repr__(self) -> str:
        f = self.facts
        return (f"TunedLens({self.tag}, d={f.get('d_model')}, vocab={f.get('vocab')}, layers={f.get('n_layers')}, "
                f"model={f.get('model', '?')})")

    # -- use ------------------------------------------------------------------------------------------------------
    def translate(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """h + A_layer h + b_layer in h's dtype and device (h itself for layer L: the model's own output)."""
        if layer >= self.n_layers:
            return h
        key = (h.device, h.dtype)
        if key not in self._cache:
            self._cache[key] = (self.weight.to(h.device, h.dtype), self.bias.to(h.device, h.dtype))
        w, b = self._cache[key]
        return torch.addmm(b[layer], h, w[layer].t()).add_(h)

    def check_model(self, model: Any, arch: Architecture) -> float:
        """InputError unless `model` has this lens's d, vocabulary and depth, and its final norm + unembedding are
        the lens's model's or a fine-tuned copy of them (relative change ≤ VARIANT_TOLERANCE, e.g. the base's lens
        reading its DPO checkpoint). Returns that relative change (0.0 for the very model)."""
        mine = self.facts
        theirs = {"d_model": hidden_size(model, arch), "vocab": vocab_width(model, arch),
                  "n_layers": n_blocks(model, arch)}
        bad = [f"{k} {mine.get(k)} (lens) vs {v} (model)" for k, v in theirs.items() if mine.get(k) != v]
        change = 0.0
        if not bad and mine.get("unembed_sha256") != unembed_fingerprint(model, arch):
            change = _relative_change(mine.get("unembed_sketch") or [], unembed_sketch(model, arch))
            if not change <= VARIANT_TOLERANCE:
                bad.append("the final norm / unembedding weights differ" + (
                    f" by {change:.2g} relative (a fine-tuned copy changes them by ≤ {VARIANT_TOLERANCE:g})"
                    if change != float("inf") else ""))
        if bad:
            raise InputError(f"This tuned lens was fitted for another model ({mine.get('model', 'unknown')}): "
                             f"{'; '.join(bad)}. Fit one for this model with spinal_nb.fit_tuned_lens(model, texts).")
        return change

    def fit_table(self) -> Any:
        """The held-out fit as a Polars frame: layer, kl_logit, kl_tuned (mean KL(p_L ‖ p_ℓ), nats)."""
        return pl.DataFrame(self.fit)

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the lens to `path` (safetensors, atomically). Returns the path."""
        meta = {"format": LENS_FORMAT, "sha256": self.sha256, "facts": json.dumps(self.facts, sort_keys=True),
                "recipe": json.dumps(self.recipe, sort_keys=True, default=str), "fit": json.dumps(self.fit)}
        path = Path(path)
        with atomic_path(path) as tmp:
            save_file({"weight": self.weight, "bias": self.bias}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TunedLens:
        """Read a lens written by `save`; ModelLoadError when the file is missing, unreadable, of another format or
        fails its checksum."""
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"No tuned lens file at {path}. Fit one with spinal_nb.fit_tuned_lens and .save() it.")
        again = "Delete it and fit the lens again (spinal_nb.fit_tuned_lens)."
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelLoadError(f"{path} is not a readable safetensors file ({e}). {again}") from e
        if meta.get("format") != LENS_FORMAT or set(tensors) != {"weight", "bias"}:
            raise ModelLoadError(f"{path} is not a spinal-nb tuned lens (format {meta.get('format')!r}, tensors "
                                 f"{sorted(tensors)}). {again}")
        try:
            facts, recipe, fit = (json.loads(meta[k]) for k in ("facts", "recipe", "fit"))
        except (KeyError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"{path} has damaged metadata ({e}). {again}") from e
        lens = cls(tensors["weight"], tensors["bias"], facts, recipe, fit)
        if lens.sha256 != meta.get("sha256"):
            raise ModelLoadError(f"{path} fails its checksum: its weights hash to {lens.sha256[:16]}…, the file "
                                 f"records {str(meta.get('sha256'))[:16]}…. {again}")
        return lens


def lens_tag(lens: Any) -> str:
    """The `lens` parameter a trace records for a `lens=` argument: 'logit' for None / 'logit', else the tag."""
    if lens is None or lens == LOGIT:
        return LOGIT
    if isinstance(lens, TunedLens):
        return lens.tag
    raise InputError(f"lens must be None (the logit lens), 'logit' or a TunedLens (spinal_nb.fit_tuned_lens / "
                     f"TunedLens.load), got {type(lens).__name__}.")
