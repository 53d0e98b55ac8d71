"""Fixtures of the view tests: realistic TraceFrames (built by tests/support.py, the shared helpers)."""
from __future__ import annotations

import pytest

from spinal_nb.frame import TraceFrame

# tests/ui (and its notebook kernels, which have only the repository root on sys.path) still import the frame builders
# from here: re-exported until they import `support` themselves
try:
    from support import XSS, make_frame, make_training_frame  # noqa: F401
except ModuleNotFoundError:
    from tests.support import XSS, make_frame, make_training_frame  # noqa: F401


@pytest.fixture(scope="session")
def frame3() -> TraceFrame:
    """base / sft / dpo, 30 layers, spectra and lens detail (with an XSS token)."""
    return make_frame(3, 30, lens=True)


@pytest.fixture(scope="session")
def frame_steps() -> TraceFrame:
    """A training run: 20 checkpoints with steps, 64 layers (the payload-size case)."""
    return make_frame(20, 64, steps=True, seed=1)
