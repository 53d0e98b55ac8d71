"""Shared pieces of the benchmarks: models, real prompts, the hand-written baseline and the floor.

The baseline is what a competent user would write in a notebook cell: a batched Hugging Face forward with
`output_hidden_states=True`, the logit lens per layer in float32 with a full softmax, Fisher–Rao steps and entropies
from the probabilities, and at the end an SVD of each layer's stacked (centered) states. It is written to compute
the same quantities as spinal-nb (raw output of the last block via a hook, because `hidden_states[-1]` is already
final-normed in Llama; the first `skip_first` positions dropped; padding excluded), without intervals.
The floor is the forward pass plus one unembedding matmul per layer on the same rows: no norm, no softmax, no SVD.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

SMOL_WORDS = (8, 16)  # Brown sentences of 8-16 words (~13 SmolLM2 tokens): keeps each run short on 2 shared cores


def pin_threads(n: int = 1) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(n)


def machine() -> dict[str, Any]:
    return {"load_avg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def real_prompts(n: int) -> list[str]:
    """n held-out Brown sentences (spinal_nb.data.brown.trace_prompts, 8-16 words)."""
    from spinal_nb.data.brown import trace_prompts

    return trace_prompts(n, min_words=SMOL_WORDS[0], max_words=SMOL_WORDS[1])


def brown_word_tokenizer(size: int = 4096):
    """A word-level tokenizer over the `size - 4` most frequent Brown words (+ UNK, PAD, BOS, EOS; BOS prepended)."""
    from collections import Counter

    import transformers as T
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from spinal_nb.data.brown import read_brown

    counts = Counter(w for s in read_brown() for w in s.text.split())
    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
    vocab = {w: i for i, w in enumerate(specials + [w for w, _ in counts.most_common(size - len(specials))])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]",
                                     eos_token="[EOS]")


def load_model(name: str) -> tuple[torch.nn.Module, Any]:
    """'smollm2': SmolLM2-135M-Instruct (real, offline, fp32).
    'tiny': a 4-block d=128 Llama from a config with SmolLM2's tokenizer and vocabulary (49,152), seeded weights.
    'shape576': SmolLM2's shape (30 blocks, d=576, FFN 1536, 9/3 heads) from a config, seeded weights, with a
    4,096-word Brown tokenizer (a cheap lens: for memory runs, where the width and depth matter, not the vocab)."""
    import transformers as T

    from spinal_nb.lab.smollm2 import load_smollm2, smollm2_plain_dir

    if name == "smollm2":
        model, tok = load_smollm2(progress=False)
        return model.eval(), tok
    torch.manual_seed(0)
    if name == "tiny":
        tok = T.AutoTokenizer.from_pretrained(smollm2_plain_dir(progress=False))
        cfg = T.LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                            tie_word_embeddings=False)
    elif name == "shape576":
        tok = brown_word_tokenizer()
        cfg = T.LlamaConfig(vocab_size=len(tok), hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                            num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                            tie_word_embeddings=True)
    else:
        raise SystemExit(f"unknown model {name!r}: smollm2, tiny or shape576")
    return T.LlamaForCausalLM(cfg).eval(), tok


def _batches(tok, prompts: Sequence[str], batch_size: int):
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    for i in range(0, len(prompts), batch_size):
        yield tok(list(prompts[i:i + batch_size]), return_tensors="pt", padding=True)


def _hidden_states(model, enc):
    """All L+1 states with the raw (pre-final-norm) output of the last block, as docs/method.md defines layer L."""
    last: dict[str, torch.Tensor] = {}

    def keep(_m, _i, o):
        last["h"] = o[0] if isinstance(o, tuple) else o

    hook = model.model.layers[-1].register_forward_hook(keep)
    try:
        out = model(**enc, output_hidden_states=True, use_cache=False)
    finally:
        hook.remove()
    return list(out.hidden_states[:-1]) + [last["h"]]


def _selected(enc, skip_first: int) -> torch.Tensor:
    sel = enc["attention_mask"].bool().clone()
    sel[:, :skip_first] = False
    return sel


@torch.no_grad()
def baseline(model, tok, prompts: Sequence[str], batch_size: int = 8, skip_first: int = 1) -> dict[str, np.ndarray]:
    """The hand-written notebook version (see the module docstring). Returns per-layer scores."""
    from spinal_nb.scores import fit_tail

    L = model.config.num_hidden_layers
    norm, head = model.model.norm, model.lm_head
    states: list[list[torch.Tensor]] = [[] for _ in range(L + 1)]
    step_sum, ent_sum, n = np.zeros(L), np.zeros(L + 1), 0
    for enc in _batches(tok, prompts, batch_size):
        hs = _hidden_states(model, enc)
        sel = _selected(enc, skip_first)
        prev = None
        for layer, h in enumerate(hs):
            x = h[sel]
            states[layer].append(x)
            p = torch.softmax(head(norm(x)).float(), dim=-1)
            ent_sum[layer] += float(-(p * torch.log(p.clamp_min(1e-30))).sum())
            if prev is not None:
                bc = torch.sqrt(prev * p).sum(-1).clamp(max=1.0)
                step_sum[layer - 1] += float((2 * torch.acos(bc)).sum())
            prev = p
        n += int(sel.sum())
    alpha = []
    for layer in range(L + 1):
        H = torch.cat(states[layer]).double()
        s = torch.linalg.svdvals(H - H.mean(0)).numpy()[: min(H.shape[0] - 1, H.shape[1])]
        alpha.append(fit_tail(s).alpha)
    return {"contraction": np.array(alpha, dtype=float), "transport": np.append(step_sum / n, np.nan), "entropy": ent_sum / n,
            "n_tokens": n}


@torch.no_grad()
def floor(model, tok, prompts: Sequence[str], batch_size: int = 8, skip_first: int = 1) -> int:
    """Forward pass plus one unembedding matmul per layer on the selected rows: the least any lens trace costs."""
    head, n = model.lm_head, 0
    for enc in _batches(tok, prompts, batch_size):
        hs = _hidden_states(model, enc)
        sel = _selected(enc, skip_first)
        for h in hs:
            head(h[sel])
        n += int(sel.sum())
    return n


def spinal(model, tok, prompts: Sequence[str], batch_size: int = 8, **kw):
    from spinal_nb.capture import trace

    return trace(model, list(prompts), tokenizer=tok, batch_size=batch_size, progress=False, **kw)


def frame_scores(frame) -> dict[str, np.ndarray]:
    d = frame.data
    return {k: d[k].fill_null(float("nan")).to_numpy().astype(float) for k in ("contraction", "transport", "entropy")}


def timed(fn, *a, **kw) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, out


def start_real(name: str, n_prompts: int) -> tuple[torch.nn.Module, Any, list[str]]:
    """The common start of a real-model timing: one torch thread, the model and its held-out prompts, one warm-up
    trace (first-call costs out of the measurement), and the machine's state printed as the first JSON line."""
    pin_threads(1)
    model, tok = load_model(name)
    prompts = real_prompts(n_prompts)
    spinal(model, tok, prompts[:2])
    print(json.dumps({"start": machine(), "model": name, "prompts": n_prompts}), flush=True)
    return model, tok, prompts
