"""spinal-nb: the SPINAL diagnostic (contraction and transport depth traces) for language-model checkpoints."""
from __future__ import annotations

import importlib

from ._version import __version__
from .errors import ArchitectureError, FrameError, InputError, ModelLoadError, NumericsError, RemoteError, SpinalError
from .frame import Comparison, TraceFrame, compare, read_parquet
from .params import SpinalParams

# heavy parts (torch/nnsight for the tracer, anywidget/altair for views) load on first use, so that
# `import spinal_nb` stays fast for reading and comparing saved traces
_LAZY = {"trace": ("spinal_nb.capture", "trace"), "show": ("spinal_nb.widgets", "show"),
         "chart": ("spinal_nb.widgets", "chart"), "SpinalCallback": ("spinal_nb.monitor", "SpinalCallback")}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spinal_nb' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """`%load_ext spinal_nb`: the %spinal / %%spinal magics and the TraceFrame dashboard display."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "__version__", "SpinalParams", "TraceFrame", "Comparison", "compare", "read_parquet",
    "trace", "show", "chart", "SpinalCallback", "load_ipython_extension",
    "SpinalError", "InputError", "NumericsError", "ArchitectureError", "FrameError", "RemoteError", "ModelLoadError",
]
