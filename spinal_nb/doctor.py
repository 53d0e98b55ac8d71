"""`spinal doctor`: the one block a user pastes into a bug report (as `transformers env` and `jupyter --version` do).

Versions are read from the installed distributions' metadata (nothing heavy is imported for them); torch is imported
once to list the devices and threads. Every line is ``key: value``; a missing package reads ``not installed``.
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from ._version import __version__
from .data.cache import user_cache_dir
from .extras import EXTRAS, install_command, missing

PACKAGES = ("torch", "transformers", "nnsight", "polars", "numpy", "anywidget", "ipywidgets", "altair", "tokenizers",
            "huggingface-hub", "vl-convert-python", "gguf", "accelerate", "trl", "datasets", "jupyterlab", "notebook")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def hf_cache_dir() -> Path:
    """Where transformers keeps downloaded models (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _devices() -> list[tuple[str, str]]:
    try:
        import torch
    except ImportError as e:  # a broken torch is exactly what a bug report needs to show
        return [("devices", f"torch does not import ({type(e).__name__}: {e})")]
    cuda = "no"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        cuda = f"yes, {len(names)}: " + "; ".join(names) + f" (CUDA {torch.version.cuda})"
    mps_backend = getattr(torch.backends, "mps", None)
    mps = "yes" if mps_backend is not None and mps_backend.is_available() else "no"
    return [("torch threads", str(torch.get_num_threads())), ("cuda", cuda), ("mps", mps)]


def report() -> str:
    """The doctor's block as text."""
    rows: list[tuple[str, str]] = [
        ("spinal-nb", f"{__version__} ({Path(__file__).resolve().parent})"),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
    ]
    rows += [(p, _version(p)) for p in PACKAGES]
    for name in EXTRAS:
        absent = missing(name)
        rows.append((f"extra [{name}]", "present" if not absent else
                     f"missing ({', '.join(absent)}): {install_command(name)}"))
    rows += [("spinal cache", str(user_cache_dir())), ("hugging face cache", str(hf_cache_dir())),
             ("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "unset")),
             ("cpus", str(os.cpu_count()))]
    rows += _devices()
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows)
