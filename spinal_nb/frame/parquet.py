"""The trace file format: one Parquet file holding a TraceFrame's data, with its metadata and lens table as JSON in the
file's key-value metadata (no pickle), and a digest of both, so that a corrupted file is refused rather than read as
a different trace. `TraceFrame.to_parquet` / `TraceFrame.read_parquet` are the API; this module owns the bytes.

Key-value metadata: `spinal_nb.format` ("1"), `spinal_nb.meta` (TraceFrame.meta), `spinal_nb.lens` (the lens table,
column-wise, when there is one), `spinal_nb.sha256` (of the data's values and the other keys; files written before
it existed have none and load as before). Metadata written by an older spinal-nb is mapped to today's names on read
(SpinalParams.upgrade: `window` -> `tail_window`), so that old and new traces combine and compare.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import FrameError, SpinalError
from ..io import atomic_path
from ..params import SpinalParams
from .schema import LENS_SCHEMA

try:
    from polars.exceptions import PanicException as _PanicException
except ImportError:  # pragma: no cover - older polars
    class _PanicException(Exception):  # noqa: N818
        pass

META_KEY, LENS_KEY, FORMAT_KEY, FILE_FORMAT = "spinal_nb.meta", "spinal_nb.lens", "spinal_nb.format", "1"
DIGEST_KEY = "spinal_nb.sha256"  # of the data's values and the metadata strings: a corrupted file is refused


def _content_digest(data: pl.DataFrame, kv: dict[str, str]) -> str:
    """sha256 of the frame's values (column by column, polars-version independent) and its metadata strings.

    Parquet checks page headers but not values: a flipped byte in a data page or in the metadata JSON otherwise
    loads as a valid-looking, different trace (110 of 600 random corruptions did, before this digest).
    """
    h = hashlib.sha256()
    for key in (FORMAT_KEY, META_KEY, LENS_KEY):
        h.update(f"{key}={kv.get(key)}\0".encode())
    for name in data.columns:
        col = data.get_column(name)
        h.update(f"{name}\0".encode())
        if isinstance(col.dtype, pl.List):
            h.update(col.list.len().fill_null(-1).to_numpy().astype("<i8").tobytes())
            col = col.explode()
        h.update(col.is_null().to_numpy().tobytes())
        if col.dtype.is_numeric() or col.dtype == pl.Boolean:
            h.update(col.cast(pl.Float64).fill_null(0.0).to_numpy().astype("<f8").tobytes())
        else:
            h.update("\0".join(v or "" for v in col.cast(pl.String).to_list()).encode())
    return h.hexdigest()


def write_trace(path: str | os.PathLike, data: pl.DataFrame, meta: dict[str, Any],
                lens: pl.DataFrame | None) -> Path:
    """Write one trace file, atomically (spinal_nb.io.atomic_path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kv = {FORMAT_KEY: FILE_FORMAT, META_KEY: json.dumps(meta, sort_keys=True)}
    if lens is not None:
        kv[LENS_KEY] = json.dumps(lens.to_dict(as_series=False))
    kv[DIGEST_KEY] = _content_digest(data, kv)
    with atomic_path(path) as tmp:  # temp file, fsync, the user's umask, rename, fsync of the folder
        data.write_parquet(tmp, metadata=kv)
    return path


def read_trace(path: str | os.PathLike) -> tuple[pl.DataFrame, dict[str, Any], pl.DataFrame | None]:
    """(data, meta, lens) of a trace file; FrameError for anything that is not a sound spinal-nb trace."""
    path = Path(path)
    if not path.exists():
        raise FrameError(f"No such file: {path}.")
    try:
        # one read of the bytes, parsed twice: opening the path twice (metadata, then data) could pair the
        # footer of one file with the data of the next when a writer replaces it in between (os.replace)
        with open(path, "rb") as f:
            raw = io.BytesIO(f.read())
        kv = pl.read_parquet_metadata(raw)
        raw.seek(0)
        data = pl.read_parquet(raw)
    except (Exception, _PanicException) as e:  # a Rust panic in the reader is not an Exception
        raise FrameError(f"{path} is not a readable Parquet file (corrupt or truncated?): {e}") from e
    if META_KEY not in kv:
        raise FrameError(f"{path} is a Parquet file but not a spinal-nb trace (no '{META_KEY}' metadata).")
    if kv.get(FORMAT_KEY) != FILE_FORMAT:
        raise FrameError(f"{path} uses trace format {kv.get(FORMAT_KEY)!r}; this spinal-nb reads {FILE_FORMAT!r}.")
    # files written before the digest existed have none: they load as before
    if DIGEST_KEY in kv and kv[DIGEST_KEY] != _content_digest(data, kv):
        raise FrameError(f"{path} is corrupt: its values or metadata do not match the checksum written with "
                         "them. Re-create it from the trace (or its source) rather than trusting it.")
    try:
        meta = json.loads(kv[META_KEY])
        lens = pl.DataFrame(json.loads(kv[LENS_KEY]), schema=LENS_SCHEMA) if LENS_KEY in kv else None
    except (ValueError, TypeError, pl.exceptions.PolarsError) as e:
        raise FrameError(f"{path} has corrupt spinal-nb metadata: {e}") from e

    # valid JSON is not yet valid metadata: check its structure (docs/ARCHITECTURE.md, TraceFrame meta) here, so that
    # a hand-edited or foreign file is refused now with a clear message, not a KeyError three calls later
    def bad(where: str, what: str) -> FrameError:
        return FrameError(f"{path} has corrupt spinal-nb metadata: {where} {what}.")

    def check_params(p: Any, where: str) -> None:
        if p is None:
            return
        if not isinstance(p, dict):
            raise bad(where, f"must be a dict of SPINAL parameters, got {type(p).__name__}")
        try:
            SpinalParams.from_dict(p)
        except (SpinalError, TypeError, ValueError) as e:
            raise bad(where, f"are not valid SPINAL parameters ({e})") from e

    if not isinstance(meta, dict):
        raise bad("the metadata", f"must be a JSON object, got {type(meta).__name__}")
    if not isinstance(meta.get("spinal_nb", ""), str):
        raise bad("'spinal_nb' (the version)", f"must be a string, got {type(meta['spinal_nb']).__name__}")
    check_params(meta.get("params"), "'params'")
    if not isinstance(meta.get("mixed_params", False), bool):
        raise bad("'mixed_params'", "must be true or false")
    checkpoints = meta.get("checkpoints", {})
    if not isinstance(checkpoints, dict):
        raise bad("'checkpoints'", f"must map checkpoint names to dicts, got {type(checkpoints).__name__}")
    kinds = {"model": str, "revision": str, "dtype": str, "device": str, "prompts_sha256": str, "created": str,
             "n_prompts": int, "n_layers": int, "d_model": int, "versions": dict, "extra": dict}
    for name, info in checkpoints.items():
        where = f"checkpoints[{name!r}]"
        if not isinstance(info, dict):
            raise bad(where, f"must be a dict, got {type(info).__name__}")
        for key, kind in kinds.items():
            v = info.get(key)
            if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
                raise bad(f"{where}[{key!r}]", f"must be {kind.__name__} or null, got {type(v).__name__}")
        check_params(info.get("params"), f"{where}['params']")
    if meta.get("params") is not None:
        meta["params"] = SpinalParams.upgrade(meta["params"])
    for info in checkpoints.values():
        if info.get("params") is not None:
            info["params"] = SpinalParams.upgrade(info["params"])
    return data, meta, lens
