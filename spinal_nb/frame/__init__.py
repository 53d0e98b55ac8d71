"""TraceFrame (Polars), Parquet I/O with provenance, and checkpoint comparison."""
from .compare import Comparison, compare_checkpoints
from .schema import LENS_SCHEMA, SCHEMA
from .traceframe import TraceFrame, read_parquet

__all__ = ["Comparison", "compare_checkpoints", "LENS_SCHEMA", "SCHEMA", "TraceFrame", "read_parquet"]
