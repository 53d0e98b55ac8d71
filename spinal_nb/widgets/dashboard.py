"""Dashboard: depth path + compare summary + layer scrubber, linked through one shared model."""
from __future__ import annotations

import os
import pathlib
from typing import Any

import ipywidgets
from ipywidgets.widgets.widget_link import Link

from ..errors import FrameError, InputError
from ._base import STATIC, TraceWidget, as_traceframe
from .html import report_preface, widget_page, write_html


class Dashboard(TraceWidget):
    """The linked SPINAL dashboard. All three panels read and write the same synced traits, so the selected
    `layer` and `checkpoint` are one state: `dash.layer = 24` moves the browser, and the slider, the arrow keys or a
    click on a trace update `dash.layer` / `dash.checkpoint` in Python. The summary compares `checkpoint` with
    `reference` (window means, localization, onset and the verdict; see `TraceFrame.compare`). A checkpoint of another
    depth than the reference is compared on depth, labelled "interpolated on depth", never layer by layer
    (widgets/pairs.py); each checkpoint's N and N/d stand under its name in the table.

    >>> import spinal_nb
    >>> dash = spinal_nb.widgets.show(frame, reference="base")   # doctest: +SKIP
    >>> dash.layer = 24                                          # doctest: +SKIP
    """

    _esm = STATIC / "dashboard.js"


def show(traceframe: Any, **kwargs: Any) -> Dashboard:
    """The linked dashboard of a TraceFrame (keyword arguments: layer, checkpoint, reference, mode, terminal_depth, title)."""
    return Dashboard(traceframe, **kwargs)


def report(traceframe: Any, path: str | os.PathLike | None = None, *, reference: str | None = None,
           terminal_depth: float = 0.7) -> pathlib.Path | str:
    """The trace's report (`spinal report`): a heading, the verdict of every checkpoint against `reference` (default:
    the first; checkpoints of another depth compared on depth, labelled "interpolated on depth"), the provenance (models,
    N, N/d, prompts hash, spinal-nb version) and the dashboard, as one self-contained HTML file at `path`; without a
    path, the page as a string."""
    frame = as_traceframe(traceframe)
    ref = reference or frame.checkpoints[0]
    if ref not in frame.checkpoints:
        raise FrameError(f"No checkpoint {ref!r} in the trace; it holds {frame.checkpoints}.")
    dash = show(frame, reference=ref, terminal_depth=terminal_depth)
    preface = report_preface(frame, ref, dash._summaries)  # the panel's own summaries: the page says the same
    if path is None:
        return widget_page(dash, preface=preface)
    out = pathlib.Path(path)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; pass a file name such as {out / 'report.html'}.")
    return pathlib.Path(write_html(dash, out, preface=preface))


def link(*views: ipywidgets.Widget, names: tuple[str, ...] = ("layer", "checkpoint")) -> list[Link]:
    """Link separate views in the browser (ipywidgets.jslink), e.g. a DepthPathView and a LayerScrubber of the
    same frame: moving one moves the others, and each one's traits stay synced with Python.
    """
    links = []
    for other in views[1:]:
        for name in names:
            links.append(ipywidgets.jslink((views[0], name), (other, name)))
    return links
