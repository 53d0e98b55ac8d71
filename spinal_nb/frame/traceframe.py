"""TraceFrame: a Polars table of per-layer SPINAL scores plus the provenance that makes it comparable."""
from __future__ import annotations

import difflib
import html
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from .._version import __version__
from ..errors import FrameError
from ..io import atomic_path
from ..params import SpinalParams
from .schema import LENS_SCHEMA, REQUIRED, SCHEMA

try:
    from polars.exceptions import PanicException as _PanicException
except ImportError:  # pragma: no cover - older polars
    class _PanicException(Exception):  # noqa: N818
        pass

META_KEY, LENS_KEY, FORMAT_KEY, FORMAT = "spinal_nb.meta", "spinal_nb.lens", "spinal_nb.format", "1"
DIGEST_KEY = "spinal_nb.sha256"  # of the data's values and the metadata strings: a corrupted file is refused


def _content_digest(data: pl.DataFrame, kv: dict[str, str]) -> str:
    """sha256 of the frame's values (column by column, polars-version independent) and its metadata strings.

    Parquet checks page headers but not values: a flipped byte in a data page or in the metadata JSON otherwise
    loads as a valid-looking, different trace (110 of 600 random corruptions did, before this digest).
    """
    import hashlib


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


def _unknown(names: Iterable[str], known: Sequence[str]) -> str:
    out = []
    for n in names:
        close = difflib.get_close_matches(n, known, n=1)
        out.append(f"'{n}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return ", ".join(out)


def _conform(df: pl.DataFrame, schema: dict[str, pl.DataType], required: Sequence[str], what: str) -> pl.DataFrame:
    if not isinstance(df, pl.DataFrame):
        raise FrameError(f"{what} must be a polars DataFrame, got {type(df).__name__}.")
    unknown = [c for c in df.columns if c not in schema]
    if unknown:
        raise FrameError(f"Unknown column(s) in {what}: {_unknown(unknown, list(schema))}.")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise FrameError(f"{what} is missing required column(s): {missing}.")
    exprs = []
    for name, dtype in schema.items():
        if name in df.columns:
            try:
                exprs.append(pl.col(name).cast(dtype, strict=True))
            except Exception as e:  # pragma: no cover - polars raises lazily below
                raise FrameError(f"Column '{name}' cannot be read as {dtype}: {e}") from e
        else:
            exprs.append(pl.lit([] if isinstance(dtype, pl.List) else None, dtype=dtype).alias(name))
    try:
        return df.select(exprs)
    except pl.exceptions.PolarsError as e:
        raise FrameError(f"{what} has a column of the wrong type: {e}") from e


class TraceFrame:
    """Per-layer SPINAL scores of one or more checkpoints, with metadata; Parquet in and out.

    >>> import spinal_nb, polars as pl
    >>> tf = TraceFrame.from_columns({"layer": [0, 1], "depth": [0.0, 1.0], "contraction": [0.5, 0.7],
    ...     "contraction_lo": [None, None], "contraction_hi": [None, None], "contraction_r2": [0.9, 0.9],
    ...     "transport": [0.3, None], "transport_lo": [None, None], "transport_hi": [None, None],
    ...     "entropy": [5.0, 4.0], "n_tokens": [100, 100]}, checkpoint="toy")
    >>> tf.checkpoints
    ['toy']
    """

    def __init__(self, data: pl.DataFrame, meta: dict[str, Any] | None = None, lens: pl.DataFrame | None = None):
        self.data = _conform(data, SCHEMA, REQUIRED, "TraceFrame data")
        if self.data.height == 0:
            raise FrameError("A TraceFrame needs at least one row.")
        if self.data.select(pl.col("checkpoint").is_null().any()).item():
            raise FrameError("Every row needs a checkpoint name.")
        dup = self.data.group_by("checkpoint", "layer").len().filter(pl.col("len") > 1)
        if dup.height:
            raise FrameError(f"Duplicate (checkpoint, layer) rows: {dup.head(3).rows()}.")
        self.data = self.data.sort(pl.col("checkpoint").cast(pl.Enum(self._order(data))), "layer")
        self.meta = dict(meta or {})
        self.meta.setdefault("spinal_nb", __version__)
        self.meta.setdefault("checkpoints", {})
        self.lens = None if lens is None or lens.height == 0 else _conform(lens, LENS_SCHEMA, tuple(LENS_SCHEMA),
                                                                             "lens table")

    @staticmethod
    def _order(df: pl.DataFrame) -> list[str]:
        return list(dict.fromkeys(df.get_column("checkpoint").to_list()))  # first-seen order

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], checkpoint: str, params: SpinalParams | None = None,
                     info: dict[str, Any] | None = None, lens: pl.DataFrame | None = None,
                     step: int | None = None) -> TraceFrame:
        """One checkpoint's frame from the columns made by `spinal_nb.scores.finalize`."""
        n = len(columns["layer"])
        data = pl.DataFrame({**columns, "checkpoint": [checkpoint] * n, "step": [step] * n},
                            schema_overrides={k: v for k, v in SCHEMA.items() if k in columns or k in ("checkpoint", "step")})
        p = (params or SpinalParams()).to_dict()
        meta = {"spinal_nb": __version__, "params": p, "checkpoints": {checkpoint: {**(info or {}), "params": p}}}
        return cls(data, meta, lens)

    # -- accessors ----------------------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> list[str]:
        return self._order(self.data)

    @property
    def params(self) -> SpinalParams | None:
        p = self.meta.get("params")
        return SpinalParams.from_dict(p) if p else None

    def checkpoint(self, name: str) -> pl.DataFrame:
        if name not in self.checkpoints:
            raise FrameError(f"No checkpoint {_unknown([name], self.checkpoints)} in this frame; "
                             f"it holds {self.checkpoints}.")
        return self.data.filter(pl.col("checkpoint") == name)

    def n_layers(self, checkpoint: str | None = None) -> int:
        """L, the number of blocks (rows are layers 0..L)."""
        name = checkpoint or self.checkpoints[0]
        return int(self.checkpoint(name).get_column("layer").max())

    def column(self, name: str, checkpoint: str | None = None) -> pl.Series:
        if name not in self.data.columns:
            raise FrameError(f"Unknown column {_unknown([name], self.data.columns)}.")
        df = self.checkpoint(checkpoint) if checkpoint else self.data
        return df.get_column(name)

    def select(self, checkpoints: Sequence[str]) -> TraceFrame:
        for c in checkpoints:
            self.checkpoint(c)
        data = self.data.filter(pl.col("checkpoint").is_in(list(checkpoints)))
        meta = {**self.meta, "checkpoints": {c: self.meta["checkpoints"].get(c, {}) for c in checkpoints}}
        lens = None if self.lens is None else self.lens.filter(pl.col("checkpoint").is_in(list(checkpoints)))
        return TraceFrame(data, meta, lens)

    def rename(self, mapping: dict[str, str]) -> TraceFrame:
        data = self.data.with_columns(pl.col("checkpoint").replace(mapping))
        meta = {**self.meta, "checkpoints": {mapping.get(k, k): v for k, v in self.meta["checkpoints"].items()}}
        lens = None if self.lens is None else self.lens.with_columns(pl.col("checkpoint").replace(mapping))
        return TraceFrame(data, meta, lens)

    def __len__(self) -> int:
        return self.data.height

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceFrame):
            return NotImplemented
        lens_eq = (self.lens is None and other.lens is None) or (
            self.lens is not None and other.lens is not None and self.lens.equals(other.lens))
        return self.data.equals(other.data, null_equal=True) and self.meta == other.meta and lens_eq

    # -- combining ----------------------------------------------------------------------------------------------
    @staticmethod
    def concat(frames: Sequence[TraceFrame], force: bool = False) -> TraceFrame:
        """Stack checkpoints. Frames traced with different parameters are refused unless `force=True`."""
        frames = list(frames)
        if not frames:
            raise FrameError("Nothing to concatenate: pass at least one TraceFrame.")
        for f in frames:
            if not isinstance(f, TraceFrame):
                raise FrameError(f"concat takes TraceFrames, got {type(f).__name__}.")
        names = [c for f in frames for c in f.checkpoints]
        dups = sorted({c for c in names if names.count(c) > 1})
        if dups:
            raise FrameError(f"Checkpoint name(s) {dups} appear in more than one frame; rename them first "
                             "(TraceFrame.rename).")
        params = [f.meta.get("params") for f in frames]
        mixed = any(p != params[0] for p in params)
        if mixed and not force:
            diff = {k: [p.get(k) if p else None for p in params] for k in (params[0] or {})
                    if len({json.dumps(p.get(k) if p else None) for p in params}) > 1}
            raise FrameError(f"These traces were made with different parameters {diff}; their scores are not "
                             "comparable. Pass force=True to combine them anyway (the frame is then marked mixed).")
        meta = {"spinal_nb": __version__, "params": None if mixed else params[0],
                "checkpoints": {k: v for f in frames for k, v in f.meta["checkpoints"].items()}}
        if mixed:
            meta["mixed_params"] = True
        lenses = [f.lens for f in frames if f.lens is not None]
        return TraceFrame(pl.concat([f.data for f in frames]), meta, pl.concat(lenses) if lenses else None)

    def __add__(self, other: TraceFrame) -> TraceFrame:
        return TraceFrame.concat([self, other])

    # -- Parquet ------------------------------------------------------------------------------------------------
    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Write data, metadata and lens detail to one Parquet file, atomically (spinal_nb.io.atomic_path).

        Metadata travels as JSON in the file's key-value metadata; nothing is pickled.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        kv = {FORMAT_KEY: FORMAT, META_KEY: json.dumps(self.meta, sort_keys=True)}
        if self.lens is not None:
            kv[LENS_KEY] = json.dumps(self.lens.to_dict(as_series=False))
        kv[DIGEST_KEY] = _content_digest(self.data, kv)
        with atomic_path(path) as tmp:  # temp file, fsync, the user's umask, rename, fsync of the folder
            self.data.write_parquet(tmp, metadata=kv)
        return path

    @classmethod
    def read_parquet(cls, path: str | os.PathLike) -> TraceFrame:
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
        if kv.get(FORMAT_KEY) != FORMAT:
            raise FrameError(f"{path} uses trace format {kv.get(FORMAT_KEY)!r}; this spinal-nb reads {FORMAT!r}.")
        # files written before the digest existed have none: they load as before
        if DIGEST_KEY in kv and kv[DIGEST_KEY] != _content_digest(data, kv):
            raise FrameError(f"{path} is corrupt: its values or metadata do not match the checksum written with "
                             "them. Re-create it from the trace (or its source) rather than trusting it.")
        try:
            meta = json.loads(kv[META_KEY])
            lens = pl.DataFrame(json.loads(kv[LENS_KEY]), schema=LENS_SCHEMA) if LENS_KEY in kv else None
        except (ValueError, TypeError, pl.exceptions.PolarsError) as e:
            raise FrameError(f"{path} has corrupt spinal-nb metadata: {e}") from e

        from ..errors import SpinalError

        # valid JSON is not yet valid metadata: check its structure (ARCHITECTURE.md, TraceFrame meta) here, so that
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
        return cls(data, meta, lens)

    # -- comparison and views -----------------------------------------------------------------------------------
    def compare(self, reference: str, candidate: str, window: float = 0.7, on: str = "layer"):
        """Per-layer differences candidate - reference with intervals, and the audit summary (docs/method.md)."""
        from .compare import compare_checkpoints

        return compare_checkpoints(self, reference, candidate, window=window, on=on)

    def chart(self, kind: str = "path", **kwargs):
        """An altair chart of this trace (kinds: path, contraction, transport, entropy, delta, spectrum); see
        `spinal_nb.widgets.chart`. Save offline with `.save("x.png")` / `.save("x.svg")` (vl-convert)."""
        from ..widgets.charts import chart

        return chart(self, kind, **kwargs)

    def show(self, **kwargs):
        """The linked interactive dashboard (depth path + layer scrubber + compare summary); see `spinal_nb.show`."""
        from ..widgets.dashboard import show

        return show(self, **kwargs)

    # -- display ------------------------------------------------------------------------------------------------
    def _summary_rows(self) -> list[tuple[str, int, str, str]]:
        rows = []
        for c in self.checkpoints:
            df = self.checkpoint(c)
            late = df.filter(pl.col("depth") >= 0.7)

            def mean(col, d=late):
                v = d.get_column(col).drop_nulls()
                return f"{v.mean():.3f}" if len(v) else "—"
            rows.append((c, int(df.get_column("layer").max()), mean("contraction"), mean("transport")))
        return rows

    def __repr__(self) -> str:
        lines = [f"TraceFrame: {len(self.checkpoints)} checkpoint(s), {self.data.height} rows "
                 f"(spinal-nb {self.meta.get('spinal_nb')})"]
        lines.append(f"  {'checkpoint':<28} {'L':>4} {'α̅ (depth≥0.7)':>15} {'𝓛̅ (depth≥0.7)':>15}")
        for c, L, a, t in self._summary_rows():
            lines.append(f"  {c[:28]:<28} {L:>4} {a:>15} {t:>15}")
        if self.meta.get("mixed_params"):
            lines.append("  warning: checkpoints traced with different parameters (forced)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{L}</td><td>{a}</td><td>{t}</td></tr>"
                       for c, L, a, t in self._summary_rows())
        return ("<div class='spinal-traceframe'><b>TraceFrame</b> "
                f"({len(self.checkpoints)} checkpoint(s), {self.data.height} rows)"
                "<table><thead><tr><th>checkpoint</th><th>L</th><th>mean α, depth ≥ 0.7</th>"
                f"<th>mean 𝓛, depth ≥ 0.7</th></tr></thead><tbody>{rows}</tbody></table></div>")


def read_parquet(path: str | os.PathLike) -> TraceFrame:
    """Read a TraceFrame written by `TraceFrame.to_parquet`."""
    return TraceFrame.read_parquet(path)
