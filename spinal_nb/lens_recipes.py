"""The tuned lens of the offline SmolLM2 pair: one recipe (texts and fit settings) shared by `spinal demo --smollm2`,
benchmarks/tuned_lens_fit.py and notebook 03, so each finds the same cached lens.

Texts: Brown text of the ``train`` role (never the ``trace`` role SPINAL traces with), as ~60-word paragraphs of
consecutive sentences, shuffled with seed 0, the first 2,000. The fit: `spinal_nb.capture.tuned_fit.fit_tuned_lens`
with the settings below (least-squares start, then 8 KL steps; ~6 min on 2 busy CPU cores, once, then cached).
"""
from __future__ import annotations

import os
import random
from typing import Any

from .capture.tuned_fit import cached_tuned_lens
from .data import brown

SMOLLM2_LENS_FIT = {"max_tokens": 8192, "heldout_tokens": 384, "epochs": 1, "batch_tokens": 128, "max_steps": 8,
                    "min_tokens": 512}
# a quick lens for the tutorial: the least-squares start on fewer tokens (seconds), no KL steps
QUICK_LENS_FIT = {"max_tokens": 2048, "heldout_tokens": 256, "epochs": 1, "batch_tokens": 128, "max_steps": 0,
                  "min_tokens": 512}


def paragraphs(sentences: Any, words: int = 60) -> list[str]:
    """Consecutive sentences of one document joined up to ~`words` words: fewer, longer forwards to capture."""
    out, cur, n, doc = [], [], 0, None
    for s in sentences:
        if cur and (s.doc != doc or n + len(s.words) > words):
            out.append(" ".join(cur))
            cur, n = [], 0
        cur.append(s.text)
        n += len(s.words)
        doc = s.doc
    if cur:
        out.append(" ".join(cur))
    return out


def lens_texts(sentences: Any = None, n: int = 2000) -> list[str]:
    """The tuned lens's training and held-out text (module docstring)."""
    texts = paragraphs(brown.split("train", sentences))
    random.Random(0).shuffle(texts)
    return texts[:n]


def smollm2_tuned_lens(model: Any, tokenizer: Any, *, quick: bool = False, sentences: Any = None,
                       cache_dir: str | os.PathLike | None = None, progress: bool = True, refit: bool = False):
    """(lens, its file, whether it came from the cache) for SmolLM2-135M-Instruct — the same lens for the base and
    its DPO seeds, as a comparison needs (traces under different lenses never combine). ``quick``: the tutorial's
    least-squares lens (``QUICK_LENS_FIT``)."""
    fit = QUICK_LENS_FIT if quick else SMOLLM2_LENS_FIT
    return cached_tuned_lens(model, lens_texts(sentences), tokenizer, name="smollm2-instruct" + ("-quick" * quick),
                             cache_dir=cache_dir, refit=refit, progress=progress, **fit)
