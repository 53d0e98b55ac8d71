"""Static export: one HTML file holding the widget's bundled ESM, its CSS and its state. No CDN, no network.

The page runs the same render() as the notebook, against a small in-page stand-in for the anywidget model
(get / set / on / off / save_changes), so what you see offline is what you saw in the notebook.
"""
from __future__ import annotations

import base64
import html
import json
import pathlib

from .._version import __version__
from ..io import atomic_text

# Traits that make up a view's state (everything render() reads).
STATE = ("layer", "checkpoint", "reference", "mode", "window", "height", "title", "_header", "_data",
         "_spectra_header", "_spectra", "_lens_header", "_lens", "_deltas_header", "_deltas", "_summaries")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="spinal-nb {version}">
<title>{title}</title>
<style>{css}</style>
<style>body {{ margin: 24px; background: #fff; }} .spinal-page-note {{ font: 12px system-ui, sans-serif; color: #8c959f; margin-top: 14px; }}</style>
</head>
<body>
<div id="spinal-root"></div>
<p class="spinal-page-note">{note}</p>
<script type="application/json" id="spinal-state">{state}</script>
<script type="application/json" id="spinal-esm">{esm}</script>
<script type="module">
const state = JSON.parse(document.getElementById("spinal-state").textContent);
for (const k of state.__bytes__) state[k] = Uint8Array.from(atob(state[k]), (c) => c.charCodeAt(0));
const listeners = new Map();
const model = {{
  get: (k) => state[k],
  set(k, v) {{
    if (state[k] === v) return;
    state[k] = v;
    for (const cb of [...(listeners.get("change:" + k) || [])]) cb();
  }},
  on(e, cb) {{ if (!listeners.has(e)) listeners.set(e, []); listeners.get(e).push(cb); }},
  off(e, cb) {{ if (listeners.has(e)) listeners.set(e, listeners.get(e).filter((x) => x !== cb)); }},
  save_changes() {{}},
  send() {{}},
}};
const source = JSON.parse(document.getElementById("spinal-esm").textContent);
const url = URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
const mod = await import(url);
mod.default.render({{ model, el: document.getElementById("spinal-root") }});
window.spinalModel = model;
</script>
</body>
</html>
"""


def _json_in_html(obj) -> str:
    # inside <script type="application/json">: no "<" may appear raw (no </script>, no <!--)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def state_of(widget) -> dict:
    state, binary = {}, []
    every_layer = widget.detail_payload(None)  # the page cannot ask Python for another layer's detail
    for name in (*STATE, *getattr(widget, "_extra_state", ())):
        value = every_layer[name] if name in every_layer else getattr(widget, name)
        if isinstance(value, bytes | bytearray | memoryview):
            state[name] = base64.b64encode(bytes(value)).decode("ascii")
            binary.append(name)
        else:
            state[name] = value
    state["_static"] = True
    state["__bytes__"] = binary
    return state


def write_html(widget, path, title: str | None = None) -> pathlib.Path:
    path = pathlib.Path(path)
    source, css_text = str(widget._esm), str(widget._css)  # anywidget holds the files' contents as traits
    names = widget._header.get("checkpoints", [])
    title = title or widget.title or f"SPINAL depth traces: {', '.join(names[:4])}{' …' if len(names) > 4 else ''}"
    page = _PAGE.format(
        version=__version__, title=html.escape(title),
        css=css_text.replace("</", "<\\/"),
        state=_json_in_html(state_of(widget)), esm=_json_in_html(source),
        note=html.escape(f"spinal-nb {__version__} static export: hover, slider and ←/→ work offline; the reference "
                         f"checkpoint ({widget.reference}) is fixed."),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_text(path, page)
    return path
