"""The lens table: the top-k logit-lens tokens per layer and position for a few chosen prompts (`trace(lens_prompts=...)`),
the detail the widgets show next to the scores (`TraceFrame.lens`, columns frame.schema.LENS_SCHEMA).
"""
from __future__ import annotations

import functools
from typing import Any

import polars as pl
import torch

from ..errors import InputError
from ..frame import LENS_SCHEMA
from .architectures import Architecture, get_path, n_blocks, unwrap
from .batch import trace_inputs
from .positions import Batch, make_batch


def lens_indices(lens_prompts: Any, n_prompts: int) -> list[int]:
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


def lens_topk(nn_model: Any, arch: Architecture, batch: Batch, fwd: dict[str, Any], k: int,
               temperature: float, remote: Any, device: torch.device, tuned: Any = None) -> tuple[list, list]:
    """Top-k lens probabilities and token ids [N_real, k] per layer for every real position of the batch (through
    the translators of `tuned`, a TunedLens, when given; the tracer refuses a tuned lens with remote runs)."""
    import nnsight

    raw = unwrap(nn_model)
    args, kwargs = trace_inputs(nn_model, batch, device)
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
            if tuned is not None:
                x = tuned.translate(i, x)
            # the lens chain written out as in capture.batch.capture_remote, whose body must stay self-contained
            # (it runs on NDIF, where there is no spinal-nb to call); tests/capture check both against one reference
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


def lens_table(nn_model: Any, arch: Architecture, tokenizer: Any, texts: list[str], token_ids: list[list[int]],
                indices: list[int], checkpoint: str, fwd: dict[str, Any], k: int, temperature: float,
                remote: Any, device: torch.device, n_groups: int, pad_id: int, tuned: Any = None):
    cols: dict[str, list[Any]] = {c: [] for c in LENS_SCHEMA}
    labels = TokenLabels(tokenizer)
    prompt_labels = {pi: labels.sequence(token_ids[pi]) for pi in indices}

    for start in range(0, len(indices), 8):
        chosen = indices[start:start + 8]
        batch = make_batch([token_ids[i] for i in chosen], chosen, pad_id=pad_id, skip_first=0, stride=1,
                           n_groups=n_groups)
        with torch.no_grad():
            probs, ids = lens_topk(nn_model, arch, batch, fwd, k, temperature, remote, device, tuned)
        owners = [(pi, pos) for pi in chosen for pos in range(len(token_ids[pi]))]
        for layer, (pv, iv) in enumerate(zip(probs, ids, strict=True)):
            pv, iv = pv.float().cpu().numpy(), iv.cpu().numpy()
            for row, (pi, pos) in enumerate(owners):
                for rank in range(pv.shape[1]):
                    cols["checkpoint"].append(checkpoint)
                    cols["prompt_index"].append(pi)
                    cols["prompt"].append(texts[pi])
                    cols["position"].append(pos)
                    cols["token"].append(prompt_labels[pi][pos])
                    cols["layer"].append(layer)
                    cols["rank"].append(rank + 1)
                    cols["token_id"].append(int(iv[row, rank]))
                    cols["lens_token"].append(labels.single(int(iv[row, rank])))
                    cols["prob"].append(float(pv[row, rank]))
    return pl.DataFrame(cols, schema=LENS_SCHEMA)


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's byte-level alphabet (bytes → printable characters), which byte-level BPE tokenizers
    (GPT-2, Llama 3, SmolLM2, Qwen, ...) use to spell their tokens."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


class TokenLabels:
    """What the lens table shows for a token id. Decoding one id alone turns a piece of a multi-byte character (an
    emoji, most CJK) into U+FFFD "�"; instead such a token shows the character it completes, or its raw bytes
    (\\xf0\\x9f) when it completes none."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._single: dict[int, str] = {}

    def _decode(self, ids: list[int]) -> str:
        if not hasattr(self.tokenizer, "decode"):
            return " ".join(map(str, ids))
        return self.tokenizer.decode(ids)

    def raw(self, i: int) -> str:
        """The token's bytes, undecodable ones escaped (byte-level BPE), else its vocabulary spelling (SentencePiece
        byte-fallback tokens are already "<0xF0>"), else its lone decoding."""
        piece = self.tokenizer.convert_ids_to_tokens(i) if hasattr(self.tokenizer, "convert_ids_to_tokens") else None
        table = _byte_decoder()
        if isinstance(piece, str) and piece and all(c in table for c in piece):
            return bytes(table[c] for c in piece).decode("utf-8", errors="backslashreplace")
        return piece if isinstance(piece, str) and piece else self._decode([i])

    def single(self, i: int) -> str:
        """A token on its own (the lens's predictions)."""
        if i not in self._single:
            text = self._decode([i])
            self._single[i] = self.raw(i) if "\ufffd" in text else text
        return self._single[i]

    def sequence(self, ids: list[int]) -> list[str]:
        """The tokens of one prompt, position by position: a token that completes a multi-byte character shows the
        whole character (decoded with the incomplete tokens before it), the incomplete ones their bytes."""
        out: list[str] = []
        pending: list[int] = []
        for i in ids:
            text = self.single(i)
            if "\ufffd" not in self._decode([i]):
                pending = []
                out.append(text)
                continue
            pending.append(i)
            joined = self._decode(pending)
            if "\ufffd" in joined:
                out.append(self.raw(i))
            else:
                out.append(joined)
                pending = []
        return out
