"""TraceFrame (Polars), its Parquet file format with provenance, and the comparison of checkpoints."""
from .comparison import TERMINAL_DEPTH, Comparison, format_interval, in_terminal_window, paired, pick_pair, verdict
from .schema import LENS_SCHEMA, SCHEMA
from .traceframe import TraceFrame, combine, compare, read_parquet

__all__ = ["TERMINAL_DEPTH", "Comparison", "LENS_SCHEMA", "SCHEMA", "TraceFrame", "combine", "compare",
           "format_interval", "in_terminal_window", "paired", "pick_pair", "read_parquet", "verdict"]
