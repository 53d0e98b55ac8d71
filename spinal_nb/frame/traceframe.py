"""TraceFrame: a Polars table of per-layer SPINAL scores plus the provenance that makes it comparable."""
from __future__ import annotations

import difflib
import html
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from .._version import __version__
from ..errors import FrameError, InputError
from ..params import SpinalParams
from .comparison import SCORES, TERMINAL_DEPTH, Comparison, compute_comparison, in_terminal_window
from .parquet import read_trace, write_trace
from .schema import LENS_SCHEMA, REQUIRED, SCHEMA

# Below this many scored positions per hidden dimension α̂'s bias is large and depends on the unknown spectrum
# (docs/method.md, "α depends on N"): the frame's repr and the dashboard flag such checkpoints.
N_PER_D_CAUTION = 4.0
# the metadata key (in a checkpoint's "extra") that marks it as a training seed of a group (TraceFrame.mark_seeds)
SEED_OF = "seed_of"
N_PER_D_NOTE = (f"N/d < {N_PER_D_CAUTION:g}: α̂ is biased at few scored positions per hidden dimension, by an amount "
                "that depends on the spectrum (docs/method.md, \"α depends on N\"); compare only traces of equal N")


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

    def sample_size(self, checkpoint: str) -> dict[str, Any]:
        """N (scored positions; the fewest over the layers, all layers normally score the same positions), d (hidden
        size, from the metadata; None when not recorded) and N/d of one checkpoint, with `caution` set when
        N/d < N_PER_D_CAUTION."""
        n = self.checkpoint(checkpoint).get_column("n_tokens").drop_nulls()
        n_min = int(n.min()) if len(n) else None
        d = self.meta.get("checkpoints", {}).get(checkpoint, {}).get("d_model")
        d = int(d) if d else None
        ratio = None if n_min is None or d is None else n_min / d
        return {"n": n_min, "n_max": int(n.max()) if len(n) else None, "d": d, "n_per_d": ratio,
                "caution": ratio is not None and ratio < N_PER_D_CAUTION}

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
        infos = {mapping.get(k, k): v for k, v in self.meta["checkpoints"].items()}
        for k, v in infos.items():  # a seed group names its first member: renamed with it
            extra = v.get("extra") or {}
            if extra.get(SEED_OF) in mapping:
                infos[k] = {**v, "extra": {**extra, SEED_OF: mapping[extra[SEED_OF]]}}
        meta = {**self.meta, "checkpoints": infos}
        lens = None if self.lens is None else self.lens.with_columns(pl.col("checkpoint").replace(mapping))
        return TraceFrame(data, meta, lens)

    # -- training seeds -----------------------------------------------------------------------------------------
    def mark_seeds(self, names: Sequence[str]) -> TraceFrame:
        """A copy in which checkpoints `names` (≥ 2) are training seeds of one model (the same recipe, other seeds).
        The views (dashboard, `show`, `to_html`, `spinal report`, the delta chart) then compare a reference with
        their mean and show the seed spread, exactly as `compare(reference, names)` does; each seed's own row keeps
        its own Δ. Kept with the checkpoints' metadata (``extra["seed_of"]`` = the first name), so it survives
        Parquet."""
        names = list(names)
        missing = [n for n in names if n not in self.checkpoints]
        if len(names) < 2 or len(set(names)) != len(names) or missing:
            raise FrameError(f"mark_seeds takes ≥ 2 distinct checkpoints of this frame, got {names}"
                             + (f" ({missing} not in it: {self.checkpoints})" if missing else "") + ".")
        infos = dict(self.meta["checkpoints"])
        for n in names:
            info = infos.get(n) or {}
            infos[n] = {**info, "extra": {**(info.get("extra") or {}), SEED_OF: names[0]}}
        return TraceFrame(self.data, {**self.meta, "checkpoints": infos}, self.lens)

    def seed_groups(self) -> dict[str, list[str]]:
        """{first name: its training seeds in frame order} for every group of ≥ 2 seeds (see `mark_seeds`)."""
        groups: dict[str, list[str]] = {}
        for n in self.checkpoints:
            head = ((self.meta["checkpoints"].get(n) or {}).get("extra") or {}).get(SEED_OF)
            if head is not None:
                groups.setdefault(head, []).append(n)
        return {h: g for h, g in groups.items() if len(g) >= 2}

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
            keys = sorted({k for p in params for k in (p or {})})  # a key only some record (lens) counts too
            diff = {k: [(p or {}).get(k, "logit" if k == "lens" else None) for p in params] for k in keys
                    if len({json.dumps((p or {}).get(k, "logit" if k == "lens" else None)) for p in params}) > 1}
            lens = (" They read the layers through different lenses (the logit lens, or tuned lenses named by a hash "
                    "of their weights): trace them all with the same lens=.") if "lens" in diff else ""
            raise FrameError(f"These traces were made with different parameters {diff}; their scores are not "
                             f"comparable.{lens} Pass force=True to combine them anyway (the frame is then marked "
                             "mixed).")
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
        """Write data, metadata and lens detail to one Parquet file, atomically (frame/parquet.py; no pickle)."""
        return write_trace(path, self.data, self.meta, self.lens)

    @classmethod
    def read_parquet(cls, path: str | os.PathLike) -> TraceFrame:
        """A TraceFrame from a file written by `to_parquet` (by this or an older spinal-nb)."""
        return cls(*read_trace(path))

    # -- comparison -----------------------------------------------------------------------------------------------
    def compare(self, reference: str | Sequence[str], candidate: str | Sequence[str],
                terminal_depth: float = TERMINAL_DEPTH, on: str = "layer") -> Comparison:
        """Per-layer differences candidate − reference with intervals, and the audit summary (docs/method.md).

        The one way to compare (frame/comparison.py); `spinal_nb.compare(a, b)` is the same for two frames. A list
        of names is training-seed replicates of one checkpoint (≥ 2, same prompts): the summary then carries the
        seed-to-seed spread next to the prompt interval (`summary["seeds"]`).
        """
        return compute_comparison(self, reference, candidate, terminal_depth=terminal_depth, on=on)

    def window_means(self, checkpoint: str, terminal_depth: float = TERMINAL_DEPTH) -> dict[str, float | None]:
        """Mean contraction and transport of one checkpoint over its terminal window (finite values; None if none)."""
        df = self.checkpoint(checkpoint).filter(in_terminal_window(pl.col("depth"), terminal_depth))
        out = {}
        for s in SCORES:
            v = df.get_column(s).drop_nulls()
            v = v.filter(v.is_finite())
            out[s] = float(v.mean()) if len(v) else None
        return out

    # -- display ------------------------------------------------------------------------------------------------
    def _summary_rows(self) -> list[tuple[str, int, str, str, str, str]]:
        """(checkpoint, L, N, N/d, mean α, mean 𝓛) per checkpoint, as shown; N/d ends in ' !' below the caution
        threshold."""
        rows = []
        for c in self.checkpoints:
            means = self.window_means(c)
            shown = ["—" if means[s] is None else f"{means[s]:.3f}" for s in SCORES]
            size = self.sample_size(c)
            n = "—" if size["n"] is None else f"{size['n']:,}"
            ratio = "—" if size["n_per_d"] is None else f"{size['n_per_d']:.2f}" + (" !" if size["caution"] else "")
            rows.append((c, self.n_layers(c), n, ratio, *shown))
        return rows

    def _cautioned(self) -> list[str]:
        return [c for c in self.checkpoints if self.sample_size(c)["caution"]]

    def __repr__(self) -> str:
        lines = [f"TraceFrame: {len(self.checkpoints)} checkpoint(s), {self.data.height} rows "
                 f"(spinal-nb {self.meta.get('spinal_nb')})"]
        lines.append(f"  {'checkpoint':<28} {'L':>4} {'N':>9} {'N/d':>7} {'α̅ (depth≥0.7)':>15} {'𝓛̅ (depth≥0.7)':>15}")
        for c, L, n, r, a, t in self._summary_rows():
            lines.append(f"  {c[:28]:<28} {L:>4} {n:>9} {r:>7} {a:>15} {t:>15}")
        low = self._cautioned()
        if low:
            lines.append(f"  caution ({', '.join(low)}): {N_PER_D_NOTE}")
        if self.meta.get("mixed_params"):
            lines.append("  warning: checkpoints traced with different parameters (forced)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{L}</td><td>{n}</td><td>{html.escape(r)}</td><td>{a}</td>"
                       f"<td>{t}</td></tr>" for c, L, n, r, a, t in self._summary_rows())
        low = self._cautioned()
        note = (f"<p class='spinal-caution'>caution ({html.escape(', '.join(low))}): {html.escape(N_PER_D_NOTE)}</p>"
                if low else "")
        return ("<div class='spinal-traceframe'><b>TraceFrame</b> "
                f"({len(self.checkpoints)} checkpoint(s), {self.data.height} rows)"
                "<table><thead><tr><th>checkpoint</th><th>L</th><th>N scored positions</th><th>N/d</th>"
                "<th>mean α, depth ≥ 0.7</th>"
                f"<th>mean 𝓛, depth ≥ 0.7</th></tr></thead><tbody>{rows}</tbody></table>{note}</div>")


def read_parquet(path: str | os.PathLike) -> TraceFrame:
    """Read a TraceFrame written by `TraceFrame.to_parquet`."""
    return TraceFrame.read_parquet(path)


def compare(reference: TraceFrame, candidate: TraceFrame, *, terminal_depth: float = TERMINAL_DEPTH,
            on: str = "layer") -> Comparison:
    """Compare two single-checkpoint frames: `spinal_nb.compare(base, dpo)` is `(base + dpo).compare("base", "dpo")`.
    Returns per-layer deltas (candidate − reference) with intervals and the summary."""
    if isinstance(reference, TraceFrame) and isinstance(candidate, TraceFrame):
        if len(reference.checkpoints) != 1 or len(candidate.checkpoints) != 1:
            raise InputError("compare(a, b) takes two single-checkpoint frames; for a multi-checkpoint frame use "
                             "frame.compare('reference', 'candidate').")
        both = TraceFrame.concat([reference, candidate])
        return both.compare(reference.checkpoints[0], candidate.checkpoints[0], terminal_depth=terminal_depth,
                            on=on)
    raise InputError("compare(reference, candidate) takes two TraceFrames.")


def combine(frames: Sequence[TraceFrame], force: bool = False) -> TraceFrame:
    """One frame from one or more (a single frame is returned as it is; several are concatenated)."""
    if not frames:
        raise InputError("No trace given.")
    return frames[0] if len(frames) == 1 else TraceFrame.concat(list(frames), force=force)
