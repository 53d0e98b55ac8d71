"""HTML, one module: every page spinal-nb writes — a view's static export (`to_html`, hence `spinal report`) and the
demo's audit report, which embeds those exports. No CDN, no network: everything is inlined.

A view's page holds the widget's bundled ESM, its CSS and its state, and runs the same render() as the notebook
against a small in-page stand-in for the anywidget model (get / set / on / off / save_changes), so what you see
offline is what you saw in the notebook.
"""
from __future__ import annotations

import base64
import html
import json
import pathlib
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..frame.traceframe import N_PER_D_NOTE
from ..io import atomic_text

# Traits that make up a view's state (everything render() reads).
STATE = ("layer", "checkpoint", "reference", "mode", "terminal_depth", "height", "title", "_header", "_data",
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
{preface}<div id="spinal-root"></div>
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


def widget_page(widget, title: str | None = None, preface: str = "") -> str:
    """The self-contained page of a view (what `to_html` writes); `preface`: trusted HTML above the view (the
    report's heading, verdicts and provenance, `report_preface`)."""
    source, css_text = str(widget._esm), str(widget._css)  # anywidget holds the files' contents as traits
    names = widget._header.get("checkpoints", [])
    title = title or widget.title or f"SPINAL depth traces: {', '.join(names[:4])}{' …' if len(names) > 4 else ''}"
    return _PAGE.format(
        version=__version__, title=html.escape(title), preface=preface,
        css=css_text.replace("</", "<\\/"),
        state=_json_in_html(state_of(widget)), esm=_json_in_html(source),
        note=html.escape(f"spinal-nb {__version__} static export: hover, slider and ←/→ work offline; the reference "
                         f"checkpoint ({widget.reference}) is fixed."),
    )


def write_html(widget, path, title: str | None = None, preface: str = "") -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_text(path, widget_page(widget, title, preface))


# ---------------------------------------------------------------------------------------------------------------
# the report's preface (`spinal report`): heading, one verdict per compared pair, provenance
# ---------------------------------------------------------------------------------------------------------------
_REPORT_STYLE = """<style>
.spinal-report { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif;
  color: #1d2329; max-width: 1120px; margin: 0 0 18px; }
.spinal-report h1 { font-size: 21px; margin: 0 0 4px; } .spinal-report h2 { font-size: 15px; margin: 16px 0 6px; }
.spinal-report .lede { color: #57606a; margin: 2px 0; }
.spinal-report .verdict { font-weight: 600; padding: 6px 10px; border-left: 4px solid #8c959f; background: #f6f8fa;
  margin: 6px 0; }
.spinal-report .verdict.refused { font-weight: normal; }
.spinal-report .verdict.signature { border-color: #1a7f37; } .spinal-report .verdict.mixed { border-color: #bf8700; }
.spinal-report .verdict.reversed { border-color: #cf222e; }
.spinal-report .verdict.not-comparable { border-left-style: dashed; }
.spinal-report .label { display: block; font-weight: normal; color: #57606a; font-size: 12.5px; }
.spinal-report table { border-collapse: collapse; font-size: 12.5px; }
.spinal-report td, .spinal-report th { padding: 2px 9px; border-bottom: 1px solid #eaeef2; text-align: left; }
.spinal-report .caution { color: #9a6700; }
</style>"""


def report_preface(frame, reference: str, summaries: dict[str, Any]) -> str:
    """The heading, the verdict of every checkpoint against `reference` (the dashboard's own summaries, so the
    page and the panel say the same) and the provenance of each checkpoint: model, revision, prompts, N, N/d."""
    esc = html.escape
    names = frame.checkpoints
    parts = [_REPORT_STYLE, "<section class='spinal-report'>",
             f"<h1>SPINAL report: {esc(', '.join(names))}</h1>",
             f"<p class='lede'>Written by spinal-nb {esc(__version__)}; traced with spinal-nb "
             f"{esc(str(frame.meta.get('spinal_nb', 'unknown')))}. Every checkpoint is compared with the reference "
             f"<b>{esc(reference)}</b> (candidate − reference).</p>", "<h2>Verdicts</h2>"]
    for name in names:
        if name == reference:
            continue
        s = summaries.get(name, {})
        label = f"<span class='label'>{esc(s['label'])}</span>" if s.get("label") else ""
        if s.get("error"):
            parts.append(f"<p class='verdict refused'>{esc(name)} − {esc(reference)}: not compared. "
                         f"{esc(s['error'])}{label}</p>")
        else:
            v = s.get("verdict") or {}
            parts.append(f"<p class='verdict {esc(str(v.get('key', '')))}'>{esc(name)} − {esc(reference)}: "
                         f"{esc(v.get('text', ''))}{label}</p>")
    rows, cautioned = [], []
    for name in names:
        info = frame.meta.get("checkpoints", {}).get(name, {})
        size = frame.sample_size(name)
        ratio = "—" if size["n_per_d"] is None else f"{size['n_per_d']:.2f}"
        if size["caution"]:
            cautioned.append(name)
            ratio = f"<span class='caution'>{ratio} (caution)</span>"
        cells = [esc(name), esc(str(info.get("model", "—"))), esc(str(info.get("revision") or "—")),
                 str(frame.n_layers(name)), "—" if size["d"] is None else str(size["d"]),
                 "—" if size["n"] is None else f"{size['n']:,}", ratio, esc(str(info.get("n_prompts", "—"))),
                 esc(str(info.get("prompts_sha256") or "—")[:12])]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("checkpoint", "model", "revision", "L", "d", "N scored positions",
                                             "N/d", "prompts", "prompts sha256"))
    parts.append(f"<h2>Provenance</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    if cautioned:
        parts.append(f"<p class='lede caution'>Caution ({esc(', '.join(cautioned))}): {esc(N_PER_D_NOTE)}.</p>")
    parts.append("</section>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# the audit report: verdicts, numbers, charts and each pair's dashboard on one page (`spinal demo`)
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PairSection:
    """One compared pair of the audit report."""
    key: str
    title: str
    verdict: dict[str, Any]  # frame.verdict(...): "status", "text"
    comparison: str  # repr(Comparison)
    evidence: dict[str, float]
    pngs: list[pathlib.Path]
    dashboard: str  # widget_page(...) of the pair's dashboard


REPORT_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif; color: #1d2329;
       max-width: 1120px; margin: 28px auto; padding: 0 20px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 34px; border-top: 1px solid #d0d7de;
padding-top: 18px; }
.lede { color: #57606a; } pre { background: #f6f8fa; padding: 10px 12px; border-radius: 6px; overflow-x: auto;
font-size: 12.5px; }
.verdict { font-weight: 600; padding: 8px 12px; border-left: 4px solid #8c959f; background: #f6f8fa; }
.verdict.signature { border-color: #1a7f37; } .verdict.mixed { border-color: #bf8700; }
.verdict.reversed { border-color: #cf222e; } .verdict.not-comparable { border-left-style: dashed; }
.charts { display: flex; flex-wrap: wrap; gap: 14px; } .charts img { max-width: 100%; height: auto; width: 540px; }
iframe { width: 100%; height: 1060px; border: 1px solid #d0d7de; border-radius: 6px; display: block; }
table { border-collapse: collapse; font-size: 13px; } td, th { padding: 3px 10px; border-bottom: 1px solid #eaeef2;
text-align: left; }
"""

# Each dashboard frame takes its document's height (the layout stacks its panels on a narrow page: a fixed height
# gave a nested scroll at 800 px and a blank band on wide pages). A srcdoc frame is same-origin, so the page can
# watch its document; without scripts it keeps the CSS height above.
_FIT_FRAMES = """
for (const f of document.querySelectorAll("iframe[srcdoc]")) {
  const fit = () => {
    const root = f.contentDocument && f.contentDocument.documentElement;
    if (root) f.style.height = Math.ceil(root.getBoundingClientRect().height) + 2 + "px";
  };
  const watch = () => { fit(); new f.contentWindow.ResizeObserver(fit).observe(f.contentDocument.documentElement); };
  f.addEventListener("load", watch);  // the srcdoc document, not the about:blank one a frame starts with
  const d = f.contentDocument;
  if (d && d.URL === "about:srcdoc" && d.readyState === "complete") watch();
}
"""


# the demo's evidence keys (spinal_nb.demo._evidence_digest: "<set>.<measure>") in words
_EVIDENCE_SETS = {"seen_words": "held-out pairs, training words", "unseen_words": "held-out pairs, unseen words",
                  "neutral": "neutral text"}
_EVIDENCE_MEASURES = {
    "n_pairs": "pairs", "pref_acc_before": "preference accuracy, base", "pref_acc_after": "preference accuracy, DPO",
    "margin_before": "log-prob margin chosen − rejected, base", "margin_after": "log-prob margin chosen − rejected, DPO",
    "reward_acc": "implicit-reward accuracy", "kl_per_token": "KL(DPO ‖ base), nats per token",
    "top1_agreement": "top-1 next-token agreement", "loss_before": "LM loss, base", "loss_after": "LM loss, DPO"}


def evidence_label(key: str) -> str:
    """'unseen_words.pref_acc_after' → 'held-out pairs, unseen words: preference accuracy, DPO' (unknown parts stay)."""
    where, _, what = key.partition(".")
    if not what:
        return _EVIDENCE_MEASURES.get(key, key)
    return f"{_EVIDENCE_SETS.get(where, where)}: {_EVIDENCE_MEASURES.get(what, what)}"


def audit_page(*, created: str, n_prompts: int, prompts: str, notes: list[str], pairs: list[PairSection],
               printed: str, timings: dict[str, float]) -> str:
    """One self-contained page: verdicts, printed summary, evidence, charts (inline PNG) and each pair's interactive
    dashboard (its static export, embedded as an iframe ``srcdoc``)."""
    parts = [f"<h1>SPINAL demo: base vs DPO, layer by layer</h1><p class='lede'>spinal-nb {__version__}, "
             f"{html.escape(created)}. Contraction α<sub>ℓ</sub> (spectral tail exponent of the states) "
             "and transport 𝓛<sub>ℓ</sub> (Fisher–Rao step of the logit lens to the next layer), traced on "
             f"{n_prompts} {prompts}. Intervals: delete-a-group jackknife over "
             "prompts (paired between the two checkpoints of a pair).</p>"]
    for note in notes:
        parts.append(f"<p class='lede'>{html.escape(note)}</p>")
    for d in pairs:
        parts.append(f"<h2>{html.escape(d.title)}</h2>")
        parts.append(f"<p class='verdict {html.escape(d.verdict.get('key', ''))}'>{html.escape(d.verdict['text'])}</p>")
        parts.append(f"<pre>{html.escape(d.comparison)}</pre>")
        if d.evidence:
            rows = "".join(f"<tr><td>{html.escape(evidence_label(k))}</td><td>{v:.4g}</td></tr>"
                           for k, v in d.evidence.items())
            parts.append("<p>Behavioural evidence that DPO did something (held-out pairs, neutral text):</p>"
                         f"<table>{rows}</table>")
        parts.append("<div class='charts'>" + "".join(
            f"<img alt='{p.stem}' src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'>"
            for p in d.pngs) + "</div>")
        parts.append("<p>Interactive dashboard (hover, slider, ←/→; works offline):</p>"
                     f"<iframe title='dashboard {d.key}' srcdoc=\"{html.escape(d.dashboard, quote=True)}\"></iframe>")
    parts.append(f"<h2>Printed summary</h2><pre>{html.escape(printed)}</pre>")
    parts.append(f"<h2>Stage timings (s)</h2><pre>{html.escape(json.dumps(timings, indent=1))}</pre>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='generator' content='spinal-nb {__version__}'><title>SPINAL demo</title>"
            f"<style>{REPORT_CSS}</style></head><body>{''.join(parts)}<script>{_FIT_FRAMES}</script></body></html>")
