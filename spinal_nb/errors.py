"""Errors are part of the interface: one type per family of failure, each message says what to do."""


class SpinalError(Exception):
    """Base class of every error spinal-nb raises on purpose."""


class InputError(SpinalError, ValueError):
    """Bad input from the caller: empty prompts, bad parameters, wrong shapes or types."""


class NumericsError(SpinalError, FloatingPointError):
    """NaN/Inf in states or logits; the message names the layer."""


class ArchitectureError(SpinalError):
    """The model's architecture is unsupported (or not a causal decoder); the message says what is missing."""


class FrameError(SpinalError, ValueError):
    """A TraceFrame is malformed, a Parquet file is corrupt or foreign, or frames cannot be combined."""


class RemoteError(SpinalError, ConnectionError):
    """Running on NDIF failed: no network, refused connection, no API key, or the model is not hosted."""


class ModelLoadError(SpinalError, OSError):
    """A model, its weights or a data file could not be found; the message says how to get it."""


class ExtraMissingError(SpinalError, ImportError):
    """An optional extra (pyproject's optional-dependencies) is not installed; the message gives the pip command."""
