"""Prompts as the tracer takes them: normalised and checked once, for the Python API and the CLI alike."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import InputError


def as_texts(prompts: Any, text_column: str = "text", where: str = "") -> list[str]:
    """A list of prompt strings from a list/iterable of str, of dicts, or a datasets.Dataset.

    Every check the tracer and the CLI make on prompts, in one place; `where` (e.g. a file name) prefixes messages.
    >>> as_texts([{"text": "a b"}, "c"])
    ['a b', 'c']
    """
    if isinstance(prompts, str):
        raise InputError(f"{where}prompts must be a list of strings, not one string: wrap it as [prompt].")
    if prompts is None:
        raise InputError(f"{where}prompts is None: pass a list of strings or a dataset with a text column.")
    column_names = getattr(prompts, "column_names", None)  # datasets.Dataset
    if column_names is not None:
        if text_column not in column_names:
            raise InputError(f"{where}The dataset has no column '{text_column}' (columns: {column_names}); "
                             "pass text_column=<the column with the text>.")
        items: Iterable[Any] = prompts[text_column]
    elif isinstance(prompts, Iterable):
        items = prompts
    else:
        raise InputError(f"{where}prompts must be a list of strings or a dataset, got {type(prompts).__name__}.")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            if text_column not in item:
                raise InputError(f"{where}Prompt {i} is a dict without the key '{text_column}'; pass text_column=...")
            item = item[text_column]
        if not isinstance(item, str):
            raise InputError(f"{where}Prompt {i} is a {type(item).__name__}, not a string.")
        texts.append(item)
    if not texts:
        raise InputError(f"{where}No prompts: pass at least one non-empty string.")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise InputError(f"{where}{len(empty)} prompt(s) are empty or whitespace only (indices {empty[:10]}"
                         f"{' ...' if len(empty) > 10 else ''}); remove them, e.g. [p for p in prompts if p.strip()].")
    return texts
