"""Prompts as the tracer takes them: normalised and checked once (`as_texts`), for the Python API, the CLI and the
magics alike; and read from a file or standard input (`read_prompts`, `prompts_from_text`)."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

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


def read_prompts(source: str, text_column: str = "text") -> list[str]:
    """Prompts from a file (text: one per line; .jsonl; .json; .parquet: its `text_column`) or '-' (standard input,
    one per line). A folder, a binary file or a file that is not UTF-8 text is refused in one line."""
    if source == "-":
        return prompts_from_text(sys.stdin.read())
    path = Path(source)
    if path.is_dir():
        raise InputError(f"--prompts {source} is a folder; pass a file: a text file with one prompt per line, a "
                         ".jsonl/.json/.parquet file, or - for standard input.")
    if not path.is_file():
        raise InputError(f"Prompts file not found: {source}. Pass a text file with one prompt per line, "
                         "a .jsonl/.json/.parquet file, or - for standard input.")
    if path.suffix.lower() == ".parquet":
        return _parquet_prompts(path, source, text_column)
    data = path.read_bytes()
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\0"), data.index(b"\0") + 1, "NUL byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{source} is not a UTF-8 text file (byte {e.start}: {e.reason}); pass a text file with one "
                         "prompt per line, a .jsonl/.json/.parquet file, or - for standard input.") from None
    if path.suffix.lower() in (".jsonl", ".json"):
        try:
            items = ([json.loads(line) for line in text.splitlines() if line.strip()]
                     if path.suffix.lower() == ".jsonl" else json.loads(text))
        except json.JSONDecodeError as e:
            raise InputError(f"{source} is not valid JSON ({e}).") from e
        if not isinstance(items, list):
            raise InputError(f"{source} must hold a list of prompts (strings or objects with '{text_column}').")
        return as_texts(items, text_column, where=f"{source}: ")
    return prompts_from_text(text)


def _parquet_prompts(path: Path, source: str, text_column: str) -> list[str]:
    """The `text_column` of a Parquet table (a dataset saved with to_parquet)."""
    try:
        columns = pl.read_parquet_schema(path)
        if text_column not in columns:
            raise InputError(f"{source} has no column {text_column!r} (columns: {list(columns)[:12]}); name the column "
                             "holding the prompts with --text-column (a trace file holds scores, not prompts).")
        items = pl.read_parquet(path, columns=[text_column]).get_column(text_column).to_list()
    except (OSError, pl.exceptions.PolarsError) as e:
        raise InputError(f"{source} is not a readable Parquet file ({type(e).__name__}).") from None
    return as_texts(items, text_column, where=f"{source}: ")


def prompts_from_text(text: str) -> list[str]:
    """One prompt per line; blank lines are skipped."""
    return [line.rstrip("\r") for line in text.splitlines() if line.strip()]
