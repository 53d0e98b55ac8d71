"""The state every spinal-nb widget shares: the TraceFrame's payload and the linked selection traits."""
from __future__ import annotations

import json
import pathlib
from typing import Any

import anywidget
import polars as pl
import traitlets

from ..errors import InputError
from ..frame import TraceFrame
from ._payload import compare_payload, frame_payload, lens_detail, lens_payload, spectra_payload
from .html import widget_page, write_html

STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"
MODES = ("path", "contraction", "transport", "entropy", "effective_rank", "kl_to_final", "top1_agreement")
PREFETCH = 1  # detail of the selected layer ± this many is sent, so that a ←/→ step draws before the kernel replies


def as_traceframe(frame: Any):
    """A TraceFrame from a TraceFrame or a polars DataFrame with the TraceFrame columns."""
    if isinstance(frame, TraceFrame):
        return frame
    if isinstance(frame, pl.DataFrame):
        return TraceFrame(frame)
    raise InputError(f"The views take a TraceFrame (spinal_nb.trace(...) or spinal_nb.read_parquet(...)), "
                     f"got {type(frame).__name__}.")


class TraceWidget(anywidget.AnyWidget):
    """Base of the views: the frame goes to the browser once as binary columns; the selection is synced both ways.

    Synced selection traits (read and set them from Python; the browser follows, and user input updates them):
    `layer` (int), `checkpoint` (name), `reference` (name the Δ columns and the summary compare against),
    `mode` ("path", "contraction", "transport", "entropy", or a companion metric: "effective_rank",
    "kl_to_final", "top1_agreement"), `terminal_depth` (the terminal window is depth ≥ this, default 0.7).
    """

    _css = STATIC / "spinal.css"

    layer = traitlets.Int(0).tag(sync=True)
    checkpoint = traitlets.Unicode("").tag(sync=True)
    reference = traitlets.Unicode("").tag(sync=True)
    mode = traitlets.Unicode("path").tag(sync=True)
    terminal_depth = traitlets.Float(0.7).tag(sync=True)
    height = traitlets.Int(380).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    _header = traitlets.Dict().tag(sync=True)
    _data = traitlets.Bytes(b"").tag(sync=True)
    _spectra_header = traitlets.Dict().tag(sync=True)
    _spectra = traitlets.Bytes(b"").tag(sync=True)
    _lens_header = traitlets.Dict().tag(sync=True)
    _lens = traitlets.Bytes(b"").tag(sync=True)
    _deltas_header = traitlets.Dict().tag(sync=True)
    _deltas = traitlets.Bytes(b"").tag(sync=True)
    _summaries = traitlets.Dict().tag(sync=True)
    _static = traitlets.Bool(False).tag(sync=True)

    def __init__(self, traceframe: Any, *, layer: int | None = None, checkpoint: str | None = None,
                 reference: str | None = None, mode: str = "path", terminal_depth: float = 0.7,
                 spectrum_points: int = 48,
                 **kwargs: Any) -> None:
        frame = as_traceframe(traceframe)
        if not 0.0 <= float(terminal_depth) <= 1.0:
            raise InputError(f"terminal_depth is a depth in [0, 1], got {terminal_depth}.")
        if spectrum_points < 2:
            raise InputError(f"spectrum_points must be at least 2, got {spectrum_points}.")
        self._frame = frame
        names = frame.checkpoints
        payload, self._points = frame_payload(frame, spectrum_points)
        self._lens_detail = lens_detail(frame)
        self._layers = frame.data.get_column("layer").to_numpy()
        max_layer = payload["_header"]["max_layer"]
        reference = names[0] if reference is None else reference
        checkpoint = (names[-1] if checkpoint is None else checkpoint)
        layer = max(0, max_layer - 1) if layer is None else layer  # the deepest layer with a transport step
        self._computing = False
        super().__init__(**payload, **kwargs)
        # validated assignments (errors name the valid choices)
        self.terminal_depth = float(terminal_depth)
        self.mode = mode
        self.reference = reference
        self.checkpoint = checkpoint
        self.layer = layer
        self._update_compare()
        self._update_detail()
        self.observe(lambda _: self._update_compare(), names=["reference", "terminal_depth"])
        self.observe(lambda _: self._update_detail(), names=["layer"])

    # -- validation --------------------------------------------------------------------------------------------
    @traitlets.validate("layer")
    def _valid_layer(self, proposal):
        v = proposal["value"]
        hi = self._header.get("max_layer", 0)
        if not 0 <= v <= hi:
            raise InputError(f"layer must be in 0..{hi}, got {v}.")
        return v

    @traitlets.validate("checkpoint", "reference")
    def _valid_name(self, proposal):
        v = proposal["value"]
        names = self._header.get("checkpoints", [])
        if v not in names:
            raise InputError(f"No checkpoint {v!r} in this view; it shows {names}.")
        return v

    @traitlets.validate("mode")
    def _valid_mode(self, proposal):
        if proposal["value"] not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {proposal['value']!r}.")
        return proposal["value"]

    @traitlets.validate("terminal_depth")
    def _valid_terminal_depth(self, proposal):
        v = float(proposal["value"])
        if not 0.0 <= v <= 1.0:
            raise InputError(f"terminal_depth is a depth in [0, 1], got {v}.")
        return v

    # -- derived state -----------------------------------------------------------------------------------------
    def _update_compare(self) -> None:
        if not self.reference:
            return
        p = compare_payload(self._frame, self.reference, self.terminal_depth)
        with self.hold_sync():
            self._deltas_header = p["_deltas_header"]
            self._deltas = p["_deltas"]
            self._summaries = p["_summaries"]

    def detail_payload(self, layer: int | None) -> dict[str, Any]:
        """Spectra and lens rows of `layer` and its neighbours ± PREFETCH (None: every layer, as the static export
        embeds). The neighbours let the browser draw the next ←/→ step at once instead of after a kernel round trip
        (≈ 50 ms in a local JupyterLab, far more on Binder)."""
        return {**spectra_payload(self._points, self._layers, layer, PREFETCH),
                **lens_payload(self._lens_detail, layer, PREFETCH)}

    def _update_detail(self) -> None:
        with self.hold_sync():
            for name, value in self.detail_payload(self.layer).items():
                setattr(self, name, value)

    @property
    def traceframe(self):
        """The TraceFrame this view shows."""
        return self._frame

    @property
    def payload_bytes(self) -> dict[str, int]:
        """Bytes of every binary buffer sent to the browser (the JSON headers are small and listed too), JSON counted as
        the kernel sends it (jupyter_client's json_packer: default separators, UTF-8, non-ASCII not escaped)."""
        out = {name: len(getattr(self, name)) for name in ("_data", "_deltas", "_spectra", "_lens")}
        for name in ("_header", "_spectra_header", "_lens_header", "_deltas_header", "_summaries"):
            out[name] = len(json.dumps(getattr(self, name), ensure_ascii=False).encode())
        return out

    def to_html(self, path: str | pathlib.Path, title: str | None = None) -> pathlib.Path:
        """Write this view as one self-contained HTML file (bundled JS and CSS inlined, data embedded, no network).

        Opens offline by double-click. The selection still works in the page (hover, slider, keys); the
        reference checkpoint is fixed to the current one, as recomputing comparisons needs Python.
        """
        return write_html(self, path, title=title)

    def html_page(self, title: str | None = None) -> str:
        """The page `to_html` writes, as a string."""
        return widget_page(self, title=title)
