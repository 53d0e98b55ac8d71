"""Static altair charts of a TraceFrame: the same data and words as the widgets, for papers and reports.

Export offline with vl-convert-python (`pip install vl-convert-python`): `chart(frame).save("path.svg")` or ".png".

    >>> from spinal_nb.widgets import chart
    >>> c = chart(frame, kind="contraction")            # doctest: +SKIP
    >>> c.save("contraction.png", scale_factor=2)       # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import polars as pl

from ..errors import FrameError, InputError
from ..frame import in_terminal_window
from ..params import SpinalParams
from ._base import as_traceframe
from ._payload import fit_line, log_spaced
from .pairs import INTERPOLATED, compare_pair

LABELS = {
    "contraction": "contraction α (spectral tail exponent)",
    "transport": "transport 𝓛 (Fisher–Rao step)",
    "entropy": "lens entropy (nats)",
    "depth": "depth (layer ℓ / L)",
}
KINDS = ("path", "contraction", "transport", "entropy", "delta", "spectrum")
CATEGORICAL = ["#3b6fb6", "#e8772e", "#3a9a5b", "#c8414b", "#8a62b3", "#a0702b", "#d36aa6", "#6f7378"]
MAX_CATEGORICAL = 8
WINDOW_FILL = "#808080"


def _color(frame, title: str = "checkpoint") -> alt.Color:
    """Categorical colours for a few checkpoints; a sequential (viridis) scale over training steps or order for many."""
    names = frame.checkpoints
    if len(names) <= MAX_CATEGORICAL:
        return alt.Color("checkpoint:N", sort=names, title=title,
                         scale=alt.Scale(domain=names, range=CATEGORICAL[:len(names)]))
    steps = frame.data.get_column("step")
    if steps.null_count() == 0:
        return alt.Color("step:Q", title="training step", scale=alt.Scale(scheme="viridis"))
    return alt.Color("checkpoint:O", sort=names, title=title, scale=alt.Scale(scheme="viridis"))


def _tooltip() -> list[alt.Tooltip]:
    return [alt.Tooltip("checkpoint:N"), alt.Tooltip("layer:Q"), alt.Tooltip("depth:Q", format=".2f"),
            alt.Tooltip("contraction:Q", title="α", format=".4f"),
            alt.Tooltip("contraction_lo:Q", title="α lo", format=".4f"),
            alt.Tooltip("contraction_hi:Q", title="α hi", format=".4f"),
            alt.Tooltip("transport:Q", title="𝓛", format=".4f"),
            alt.Tooltip("transport_lo:Q", title="𝓛 lo", format=".4f"),
            alt.Tooltip("transport_hi:Q", title="𝓛 hi", format=".4f"),
            alt.Tooltip("entropy:Q", title="entropy", format=".3f")]


def _window_band(terminal_depth: float) -> alt.Chart:
    band = pl.DataFrame({"start": [terminal_depth], "end": [1.0],
                         "label": [f"terminal window (depth ≥ {terminal_depth})"]})
    rect = alt.Chart(band).mark_rect(color=WINDOW_FILL, opacity=0.1).encode(x="start:Q", x2="end:Q")
    text = alt.Chart(band).mark_text(align="right", baseline="top", dx=-4, dy=4, color="#8c959f", fontSize=10).encode(
        x="end:Q", y=alt.value(0), text="label:N")
    return rect + text


def _style(c: alt.TopLevelMixin, width: int | None, height: int | None, title: str | None,
           subtitle: str | list[str] | None = None) -> alt.TopLevelMixin:
    if width is not None:
        c = c.properties(width=width, height=height)
    if title:
        c = c.properties(title=alt.Title(title, anchor="start", fontSize=13, fontWeight=600,
                                         **({"subtitle": subtitle, "subtitleFontSize": 11.5,
                                             "subtitleColor": "#57606a"} if subtitle else {})))
    return (c.configure_view(stroke=None)
            .configure_axis(gridColor="#eef0f3", domainColor="#8c959f", tickColor="#8c959f", labelColor="#57606a",
                            titleColor="#1d2329", titleFontWeight="normal", labelFontSize=10.5, titleFontSize=11.5)
            .configure_legend(labelFontSize=11, titleFontSize=11, titleFontWeight="normal", symbolStrokeWidth=3,
                              symbolOpacity=1)
            .configure(font="system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"))


def chart(traceframe: Any, kind: str = "path", *, terminal_depth: float = 0.7, reference: str | None = None,
          candidate: str | None = None, layer: int | None = None, width: int = 520, height: int = 320,
          title: str | None = None) -> alt.TopLevelMixin:
    """An altair chart of a TraceFrame.

    kind: "path" (α × 𝓛, one path per checkpoint, ordered by layer), "contraction" / "transport" / "entropy"
    (against depth, intervals as whiskers, terminal window shaded), "delta" (candidate − reference per depth with
    interval bands; `reference`/`candidate` default to the first/last checkpoint) or "spectrum" (log–log singular
    values at `layer`, default the last, with each checkpoint's fitted tail line).
    """
    frame = as_traceframe(traceframe)
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}.")
    if not 0.0 <= terminal_depth <= 1.0:
        raise InputError(f"terminal_depth is a depth in [0, 1], got {terminal_depth}.")
    if kind == "delta":
        return _delta(frame, terminal_depth, reference, candidate, width, height, title)
    if kind == "spectrum":
        return _spectrum(frame, layer, width, height, title)
    df = frame.data.drop("contraction_jk", "transport_jk", "entropy_jk", "spectrum").with_columns(
        in_terminal_window(pl.col("depth"), terminal_depth).alias("terminal"))
    color = _color(frame)
    base = alt.Chart(df)
    if kind == "path":
        x, y = "contraction", "transport"
        order = alt.Order("layer:Q")
        line = base.mark_line(strokeWidth=1.3, opacity=0.85).encode(
            x=alt.X(f"{x}:Q", title=LABELS[x], scale=alt.Scale(zero=False)),
            y=alt.Y(f"{y}:Q", title=LABELS[y], scale=alt.Scale(zero=False)),
            color=color, detail="checkpoint:N", order=order)
        late = base.transform_filter("datum.terminal").mark_line(strokeWidth=3.2).encode(
            x=f"{x}:Q", y=f"{y}:Q", color=color, detail="checkpoint:N", order=order)
        xw = base.mark_rule(opacity=0.35).encode(x="contraction_lo:Q", x2="contraction_hi:Q", y=f"{y}:Q", color=color)
        yw = base.mark_rule(opacity=0.35).encode(y="transport_lo:Q", y2="transport_hi:Q", x=f"{x}:Q", color=color)
        pts = base.mark_circle(size=16, opacity=1).encode(x=f"{x}:Q", y=f"{y}:Q", color=color, tooltip=_tooltip())
        layers = xw + yw + line + late + pts
        default_title = "Depth paths through (contraction, transport) space; thick: terminal window"
    else:
        y = kind
        enc_x = alt.X("depth:Q", title=LABELS["depth"], scale=alt.Scale(domain=[0, 1]))
        line = base.mark_line(strokeWidth=1.6).encode(
            x=enc_x, y=alt.Y(f"{y}:Q", title=LABELS[y], scale=alt.Scale(zero=False)), color=color,
            detail="checkpoint:N")
        whisk = base.mark_rule(opacity=0.4).encode(x="depth:Q", y=f"{y}_lo:Q", y2=f"{y}_hi:Q", color=color)
        pts = base.mark_circle(size=14, opacity=1).encode(x="depth:Q", y=f"{y}:Q", color=color, tooltip=_tooltip())
        layers = _window_band(terminal_depth) + whisk + line + pts
        default_title = f"{LABELS[y].split(' (')[0].capitalize()} by depth"
    return _style(layers, width, height, title if title is not None else default_title)


def _delta(frame, terminal_depth, reference, candidate, width, height, title) -> alt.LayerChart:
    names = frame.checkpoints
    reference = reference or names[0]
    candidate = candidate or names[-1]
    pair = compare_pair(frame, reference, candidate, terminal_depth)  # the views' one rule
    if pair.comparison is None:
        raise FrameError(pair.error)
    comp = pair.comparison
    rows = []
    for score, sym in (("contraction", "Δα"), ("transport", "Δ𝓛")):
        d = comp.layers.select("layer", "depth", pl.col(f"d_{score}").alias("delta"),
                               pl.col(f"d_{score}_lo").alias("lo"), pl.col(f"d_{score}_hi").alias("hi"))
        rows.append(d.with_columns(pl.lit(f"{sym} {score}").alias("score")))
    panels = []
    for d in rows:
        base = alt.Chart(d)
        label = d.get_column("score")[0]
        band = base.mark_area(opacity=0.18, color=CATEGORICAL[0]).encode(
            x=alt.X("depth:Q", title=LABELS["depth"], scale=alt.Scale(domain=[0, 1])), y="lo:Q", y2="hi:Q")
        # a short axis title: the pair is in the chart's title (a long one ran past the panel into the title)
        line = base.mark_line(strokeWidth=1.8, color=CATEGORICAL[0], point=alt.OverlayMarkDef(size=12)).encode(
            x="depth:Q", y=alt.Y("delta:Q", title=label, axis=alt.Axis(titlePadding=12)),
            tooltip=["layer:Q", alt.Tooltip("depth:Q", format=".2f"), alt.Tooltip("delta:Q", format="+.4f"),
                     alt.Tooltip("lo:Q", format="+.4f"), alt.Tooltip("hi:Q", format="+.4f")])
        zero = alt.Chart(pl.DataFrame({"z": [0.0]})).mark_rule(color="#8c959f").encode(y="z:Q")
        panels.append(alt.layer(_window_band(terminal_depth), zero, band, line).properties(width=width, height=height // 2))
    facet = alt.vconcat(*panels, spacing=18)
    s = comp.summary
    onset = "none" if s["onset_layer"] is None else f"layer {s['onset_layer']}"
    # the pair as the title, the key as a subtitle: one long line overflowed the exported width in browser fonts
    key = f"onset {onset} · shaded: terminal window · band: {int(s['confidence'] * 100)}% interval"
    if pair.aligned == "depth":  # a line of its own: the subtitle is already as wide as the panels
        key = [f"{INTERPOLATED}: L = {frame.n_layers(candidate)} onto the reference's L = {frame.n_layers(reference)}",
               key]
    if title is not None:
        return _style(facet, None, None, title, subtitle=key if pair.aligned == "depth" else None)
    who = candidate if not pair.seeds else f"mean of {len(pair.seeds)} seeds of {candidate}"
    return _style(facet, None, None, f"{who} − {reference}", subtitle=key)


def _spectrum(frame, layer, width, height, title) -> alt.LayerChart:
    params = frame.params or SpinalParams()
    layer = frame.n_layers() if layer is None else int(layer)
    rows, fits = [], []
    for name in frame.checkpoints:
        df = frame.checkpoint(name).filter(pl.col("layer") == layer)
        if df.height == 0 or not df.get_column("spectrum")[0].len():
            continue
        s = np.asarray(df.get_column("spectrum")[0].to_list(), dtype=float)
        s = s[s > 0]
        idx = log_spaced(s.size, 200)
        rows.append(pl.DataFrame({"checkpoint": name, "rank": idx + 1, "sigma": s[idx]}))
        line = fit_line(s, params)
        alpha = df.get_column("contraction")[0]
        if line is not None and alpha is not None:
            b, k_lo, k_hi = line
            fits.append(pl.DataFrame({"checkpoint": name, "rank": [k_lo, k_hi],
                                      "sigma": [float(np.exp(b - alpha * np.log(k))) for k in (k_lo, k_hi)],
                                      "alpha": alpha}))
    if not rows:
        raise InputError(f"No spectra at layer {layer}: this trace did not keep spectra (trace with spectra kept).")
    data = pl.concat(rows)
    color = _color(frame.select([c for c in frame.checkpoints if c in set(data.get_column("checkpoint"))]))
    lines = alt.Chart(data).mark_line(strokeWidth=1.5).encode(
        x=alt.X("rank:Q", title="rank k", scale=alt.Scale(type="log")),
        y=alt.Y("sigma:Q", title="singular value σₖ", scale=alt.Scale(type="log")), color=color,
        tooltip=["checkpoint:N", "rank:Q", alt.Tooltip("sigma:Q", format=".4g")])
    layers = lines
    if fits:
        layers = lines + alt.Chart(pl.concat(fits)).mark_line(strokeDash=[5, 3], strokeWidth=1.4, color="#1d2329").encode(
            x="rank:Q", y="sigma:Q", detail="checkpoint:N", tooltip=["checkpoint:N", alt.Tooltip("alpha:Q", format=".4f")])
    default = f"Spectrum at layer {layer} (log–log); dashed: weighted tail fit, slope −α"
    return _style(layers, width, height, title if title is not None else default)
