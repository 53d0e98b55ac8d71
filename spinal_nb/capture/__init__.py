"""Capture: the nnsight tracer and THE one table of architecture knowledge (architectures.py)."""
from .architectures import ARCHITECTURES, Architecture, lens_logits, resolve_architecture
from .tracer import trace

__all__ = ["ARCHITECTURES", "Architecture", "lens_logits", "resolve_architecture", "trace"]
