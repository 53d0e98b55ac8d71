"""The TraceFrame schema (docs/ARCHITECTURE.md, "TraceFrame"): one row per (checkpoint, layer)."""
from __future__ import annotations

import polars as pl

F64, I64 = pl.Float64, pl.Int64
LIST_F64 = pl.List(pl.Float64)

SCHEMA: dict[str, pl.DataType] = {
    "checkpoint": pl.String,
    "step": I64,  # training step (monitor); null outside training
    "layer": I64,
    "depth": F64,
    "contraction": F64,
    "contraction_lo": F64,
    "contraction_hi": F64,
    "contraction_r2": F64,
    "contraction_points": I64,
    "contraction_reason": pl.String,
    "transport": F64,
    "transport_lo": F64,
    "transport_hi": F64,
    "entropy": F64,
    "entropy_lo": F64,
    "entropy_hi": F64,
    "n_tokens": I64,
    "contraction_jk": LIST_F64,
    "transport_jk": LIST_F64,
    "entropy_jk": LIST_F64,
    "spectrum": LIST_F64,
    # companion metrics (docs/method.md): absent from older trace files, read as nulls / empty replicates
    "effective_rank": F64,
    "effective_rank_lo": F64,
    "effective_rank_hi": F64,
    "kl_to_final": F64,
    "kl_to_final_lo": F64,
    "kl_to_final_hi": F64,
    "top1_agreement": F64,
    "top1_agreement_lo": F64,
    "top1_agreement_hi": F64,
    "effective_rank_jk": LIST_F64,
    "kl_to_final_jk": LIST_F64,
    "top1_agreement_jk": LIST_F64,
}

# Columns a frame must have (the rest are filled with nulls / empty lists when absent).
REQUIRED = ("checkpoint", "layer", "depth", "contraction", "contraction_lo", "contraction_hi", "contraction_r2",
            "transport", "transport_lo", "transport_hi", "entropy", "n_tokens")

LENS_SCHEMA: dict[str, pl.DataType] = {
    "checkpoint": pl.String,
    "prompt_index": I64,
    "prompt": pl.String,
    "position": I64,
    "token": pl.String,
    "layer": I64,
    "rank": I64,
    "token_id": I64,
    "lens_token": pl.String,
    "prob": F64,
}
