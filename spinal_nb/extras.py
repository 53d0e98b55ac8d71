"""The optional extras of pyproject.toml, checked before any work: what each adds, how to install it.

A command or function that needs an extra calls :func:`require` at its start: without the extra it raises
:class:`spinal_nb.errors.ExtraMissingError` with ONE line naming the extra and the exact ``pip install`` command, before
any file or folder is created. Where the extra only adds a part (the demo's PNG charts), :func:`missing` tells the
caller, which goes on without that part and says so in one line (:func:`skipped_note`).

>>> sorted(EXTRAS)
['export', 'real', 'train', 'ui']
>>> install_command("export")
"pip install 'spinal-nb[export]'"
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .errors import ExtraMissingError


@dataclass(frozen=True)
class Extra:
    """One optional extra: the modules it provides (import names), what it adds, and what happens without it."""
    name: str
    modules: tuple[str, ...]
    adds: str
    without: str


# the import names of pyproject.toml's [project.optional-dependencies] (the `test` extra is the developers' own)
EXTRAS: dict[str, Extra] = {e.name: e for e in (
    Extra("export", ("vl_convert",), "PNG/SVG files of the static charts (vl-convert); the demo's PNG charts",
          "`spinal demo` writes its HTML page, Parquet and summary without the PNGs (one line says so); "
          "chart(...).save('x.png') fails with altair's message"),
    Extra("real", ("gguf", "accelerate"), "GGUF checkpoints (SmolLM2-135M-Instruct in `spinal demo --smollm2`, "
          "`spinal trace --gguf-file`)",
          "`spinal demo --smollm2` refuses at once (rc 2); `spinal demo` runs the lab pair only"),
    Extra("train", ("trl", "datasets"), "TRL trainers and datasets for the training monitor (SpinalCallback) "
          "examples and dataset prompts",
          "SpinalCallback still works with transformers' Trainer; prompts are lists of strings"),
    Extra("ui", ("jupyterlab", "notebook"), "JupyterLab / Notebook 7 for `spinal demo --notebook` and the tutorials",
          "`spinal demo --notebook` refuses at once (rc 2), nothing created; the widgets work in any Jupyter"),
)}


def install_command(*extras: str) -> str:
    return f"pip install 'spinal-nb[{','.join(extras)}]'"


def missing(extra: str) -> list[str]:
    """The import names of `extra` that are not installed ([] = the extra is present)."""
    return [m for m in EXTRAS[extra].modules if importlib.util.find_spec(m) is None]


def present(extra: str) -> bool:
    return not missing(extra)


def require(extra: str, what: str) -> None:
    """Raise ExtraMissingError (one line: the extra and its install command) unless `extra` is installed."""
    absent = missing(extra)
    if absent:
        raise ExtraMissingError(f"{what} needs the '{extra}' extra ({', '.join(absent)} not installed): "
                                f"{install_command(extra)}")


def skipped_note(extra: str, part: str) -> str | None:
    """One line saying that `part` is left out because `extra` is missing; None when the extra is present."""
    absent = missing(extra)
    if not absent:
        return None
    return f"{part} skipped: the '{extra}' extra is not installed ({', '.join(absent)}); {install_command(extra)}"
