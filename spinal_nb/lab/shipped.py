"""The demo's pre-trained lab base, shipped inside the package so a first picture needs no pre-training.

Pre-training the demo base (RECIPES["demo"].pretrain) costs minutes on 2 cores; its DPO step about one. The package
therefore carries that base, built by this project's own recipe (`python -m spinal_nb.lab ship-base` rebuilds it
from scratch and rewrites the files), stored in float16 (4.5 MB instead of 9): `spinal_nb/lab/shipped/demo-base/`.
Installing it writes a plain float32 HF folder into the cache (the float16 values, exactly; so the shipped base *is*
the demo's base — its cache key says so — and a from-scratch float32 build keeps its own key). Its
``spinal_lab.json`` keeps the recipe, the corpus hash, the pre-training evidence and the float32 build's sha256.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import ModelLoadError
from ..io import atomic_dir, clean_stale, file_sha256
from .checkpoint import LAB_JSON, read_lab_json
from .recipes import LAB_VERSION, LabRecipe

SHIPPED_DIR = Path(__file__).parent / "shipped"
WEIGHTS = "model.safetensors"
# the HF files copied as they are (the tokenizer and the model's configuration)
_COPIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")
STORED_DTYPE = "float16"


def shipped_folder(recipe: LabRecipe) -> Path:
    return SHIPPED_DIR / f"{recipe.name}-base"


def shipped_info(recipe: LabRecipe) -> dict[str, Any] | None:
    """The shipped base's ``spinal_lab.json`` when the package carries a base for exactly this recipe's pre-training
    (same recipe fields and lab version), else None (then the base is pre-trained from scratch)."""
    info = read_lab_json(shipped_folder(recipe))
    if not info or not (shipped_folder(recipe) / WEIGHTS).is_file():
        return None
    if info.get("lab_version") != LAB_VERSION or info.get("recipe", {}).get("pretrain") != asdict(recipe.pretrain):
        return None
    return info


def ship_base(built: str | Path, dest: str | Path) -> Path:
    """Write the shipped copy of a base built by `build_lab_pair` (`built`, a float32 folder) into `dest`: float16
    weights, the same config and tokenizer, and its ``spinal_lab.json`` extended with what was done."""
    built, dest = Path(built), Path(dest)
    info = read_lab_json(built)
    if info.get("role") != "base":
        raise ModelLoadError(f"{built} is not a lab base folder (its {LAB_JSON} does not say role 'base').")
    tensors = load_file(str(built / WEIGHTS))
    if any(t.dtype != torch.float32 for t in tensors.values()):
        raise ModelLoadError(f"{built} is not a float32 build; ship from the from-scratch build.")
    clean_stale(dest)
    if dest.exists():
        shutil.rmtree(dest)
    with atomic_dir(dest) as tmp:
        save_file({k: t.to(torch.float16).contiguous() for k, t in tensors.items()}, str(tmp / WEIGHTS),
                  metadata={"format": "pt"})
        for name in _COPIED:
            if (built / name).is_file():
                shutil.copyfile(built / name, tmp / name)
        info = {**info, "lab_version": LAB_VERSION,
                "shipped": {"dtype": STORED_DTYPE, "float32_sha256": file_sha256(built / WEIGHTS),
                            "built_as": built.name}}
        (tmp / LAB_JSON).write_text(json.dumps(info, indent=1, default=str))
    return dest


def install_shipped_base(recipe: LabRecipe, base_dir: str | Path) -> Path:
    """Write the shipped base of `recipe` as a float32 HF folder at `base_dir` (atomic; the values are the float16
    ones, exactly representable in float32)."""
    src, base_dir = shipped_folder(recipe), Path(base_dir)
    info = shipped_info(recipe)
    if info is None:
        raise ModelLoadError(f"The package carries no shipped base for the lab recipe {recipe.name!r}.")
    clean_stale(base_dir)
    with atomic_dir(base_dir) as tmp:
        tensors = load_file(str(src / WEIGHTS))
        save_file({k: t.to(torch.float32) for k, t in tensors.items()}, str(tmp / WEIGHTS), metadata={"format": "pt"})
        for name in _COPIED:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        info = {**info, "recipe_hash": base_dir.name, "installed_from": str(src)}
        (tmp / LAB_JSON).write_text(json.dumps(info, indent=1, default=str))
    return base_dir
