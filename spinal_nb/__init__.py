"""spinal-nb: the SPINAL diagnostic (contraction and transport depth traces) for language-model checkpoints.

The public API is ``__all__`` (also what ``dir(spinal_nb)`` lists): :func:`trace` a checkpoint into a
:class:`TraceFrame`, :func:`compare` two checkpoints, :func:`show` the dashboard, :func:`chart` a static chart.
"""
import importlib as _importlib

from ._version import __version__
from .errors import (
    ArchitectureError,
    ExtraMissingError,
    FrameError,
    InputError,
    ModelLoadError,
    NumericsError,
    RemoteError,
    SpinalError,
)
from .frame import Comparison, TraceFrame, compare, read_parquet
from .params import SpinalParams

# heavy parts (torch/nnsight for the tracer, anywidget/altair for views) load on first use, so that
# `import spinal_nb` stays fast for reading and comparing saved traces; __dir__ lists them all the same
_LAZY = {"trace": ("spinal_nb.capture", "trace"), "show": ("spinal_nb.widgets", "show"),
         "chart": ("spinal_nb.widgets", "chart"), "SpinalCallback": ("spinal_nb.monitor", "SpinalCallback"),
         "fit_tuned_lens": ("spinal_nb.capture", "fit_tuned_lens"), "TunedLens": ("spinal_nb.capture", "TunedLens")}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(_importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spinal_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (lazy ones included, so completion and help() find `trace` and `show`)."""
    return sorted(__all__)


def load_ipython_extension(ipython) -> None:
    """`%load_ext spinal_nb`: the %spinal / %%spinal magics and the TraceFrame dashboard display."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """`%unload_ext spinal_nb`: removes what load_ipython_extension added."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "__version__", "SpinalParams", "TraceFrame", "Comparison", "compare", "read_parquet",
    "trace", "show", "chart", "SpinalCallback", "fit_tuned_lens", "TunedLens", "load_ipython_extension", "unload_ipython_extension",
    "SpinalError", "InputError", "NumericsError", "ArchitectureError", "FrameError", "RemoteError", "ModelLoadError",
    "ExtraMissingError",
]
