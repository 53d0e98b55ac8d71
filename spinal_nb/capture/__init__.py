"""Capture: the nnsight tracer and THE one table of architecture knowledge (architectures.py).

`trace()` (tracer.py) reads like its steps: loading (load.py), one batch captured and reduced (batch.py), the lens
(lens.py) and the lens table of a few prompts (lens_table.py), spilled groups (spill.py), resume state (resume.py); the tuned lens (tuned_lens.py) and its fit (tuned_fit.py).
"""
from .architectures import ARCHITECTURES, Architecture, lens_logits, resolve_architecture
from .tracer import trace
from .tuned_fit import fit_tuned_lens
from .tuned_lens import TunedLens

__all__ = ["ARCHITECTURES", "Architecture", "lens_logits", "resolve_architecture", "trace", "fit_tuned_lens", "TunedLens"]
