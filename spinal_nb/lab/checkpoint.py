"""Saving and loading lab checkpoints: a plain Hugging Face folder plus ``spinal_lab.json``.

``spinal_lab.json`` (in every checkpoint folder spinal-nb builds) holds ``role`` ("base" or "dpo"), ``name``,
the ``recipe`` and its hash, ``timings_s``, ``versions`` and ``evidence`` — the behavioural evidence that DPO did
something (see :func:`spinal_nb.lab.dpo.preference_evidence`). The tracer can attach it to the TraceFrame's
``meta["checkpoints"][name]["extra"]`` with :func:`read_lab_json`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ModelLoadError
from ..progress import quiet_transformers

LAB_JSON = "spinal_lab.json"


@dataclass(frozen=True)
class LabPair:
    """A base → DPO checkpoint pair on disk. ``evidence`` is the DPO checkpoint's ``spinal_lab.json`` evidence;
    ``from_cache`` says whether both folders already existed (nothing was trained)."""
    name: str
    base_dir: Path
    dpo_dir: Path
    evidence: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False

    def load(self) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        """((base model, tokenizer), (dpo model, tokenizer))."""
        return load_checkpoint(self.base_dir), load_checkpoint(self.dpo_dir)


def versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"spinal_nb": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


def save_checkpoint(folder: str | os.PathLike, model: Any, tokenizer: Any, info: dict[str, Any]) -> None:
    folder = Path(folder)
    with quiet_transformers():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    (folder / LAB_JSON).write_text(json.dumps({**info, "versions": versions()}, indent=1, default=str))


def read_lab_json(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``spinal_lab.json`` of a checkpoint folder (``{}`` when the folder is not one spinal-nb built)."""
    p = Path(folder) / LAB_JSON
    return json.loads(p.read_text()) if p.is_file() else {}


def load_checkpoint(folder: str | os.PathLike, *, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local checkpoint folder, fp32 by default, in eval mode; never touches a hub."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a checkpoint folder (no config.json). Build it with "
                             "spinal_nb.lab.build_lab_pair() / build_smollm2_pair(), or pass a saved HF folder.")
    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype or torch.float32)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load the checkpoint in {folder}: {e}. Delete the folder to rebuild it.") from e
    model.eval()
    return model, tok
