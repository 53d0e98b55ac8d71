"""End to end in a real browser: the dashboard in JupyterLab 4 and Notebook 7, and the static HTML export.

Drags the scrubber, presses arrow keys, hovers a trace, switches modes; checks the highlighted layer in the DOM and the
Python-side traits (a cell prints them), Python -> browser (`dash.layer = 5`), and that a token like
`<img src=x onerror=...>` shows literally and runs nothing. Screenshots go to tests/ui/artifacts/.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.widgets.conftest import XSS, make_frame

from .conftest import ROOT, notebook_page, wait_drawn, wait_tooltip
from .lab_server import run_cell

pytestmark = pytest.mark.ui

SETUP = f"""import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.widgets.conftest import make_frame
from spinal_nb.widgets import show
frame = make_frame(3, 30, lens=True)
dash = show(frame, title="SPINAL audit (synthetic trace): base → sft → dpo")
dash"""
CELLS = [SETUP, 'print("PY", dash.layer, dash.checkpoint, dash.mode)', 'dash.layer = 5\ndash.checkpoint = "sft"']


def cells(page):
    return page.locator(".jp-Notebook .jp-Cell")


def output_text(page, i: int) -> str:
    return cells(page).nth(i).locator(".jp-OutputArea").inner_text()


def print_state(page, cell: int, pattern: str) -> tuple[str, ...]:
    """Run the cell that prints the widget's Python-side traits ("PY ..."); the groups of `pattern` in its output."""
    run_cell(page, cell)
    page.wait_for_function("""(i) => /PY \\d+/.test(document.querySelectorAll('.jp-Notebook .jp-Cell')[i]
                              .querySelector('.jp-OutputArea').textContent)""", arg=cell, timeout=60_000)
    return re.search(pattern, output_text(page, cell)).groups()


def py_state_when(page, cell: int, pattern: str, parse, want: tuple, timeout: float = 120) -> tuple:
    """The Python-side traits (parse(groups)) once they start with `want`, or the last ones read when `timeout`
    seconds have passed (the caller asserts). The browser's change reaches the kernel as a comm message, which the
    widget library may hold back until the kernel has answered its previous one, so a read can come before it: read
    again. Each read is a run of the printing cell, started once the kernel is idle."""
    deadline = time.monotonic() + timeout
    while True:
        state = parse(print_state(page, cell, pattern))
        if state[:len(want)] == want or time.monotonic() > deadline:
            return state


def py_state(page, want: tuple) -> tuple[int, str, str]:
    """(layer, checkpoint, mode) in Python, once they start with `want` (see py_state_when)."""
    return py_state_when(page, 1, r"PY (\d+) (\S+) (\S+)", lambda g: (int(g[0]), g[1], g[2]), want)


def dom_layer(page) -> int:
    return int(page.locator(".spn-scrubber").get_attribute("data-layer"))


def drag_slider_to(page, layer: int, max_layer: int = 30) -> None:
    box = page.locator(".spn-slider").bounding_box()
    thumb = 16
    y = box["y"] + box["height"] / 2
    x_now = box["x"] + thumb / 2 + (box["width"] - thumb) * dom_layer(page) / max_layer
    x_to = box["x"] + thumb / 2 + (box["width"] - thumb) * layer / max_layer
    page.mouse.move(x_now, y)
    page.mouse.down()
    page.mouse.move((x_now + x_to) / 2, y, steps=4)
    page.mouse.move(x_to, y, steps=4)
    page.mouse.up()


# the scrubber shows layer `layer` (a string)
AT_LAYER = "(layer) => document.querySelector('.spn-scrubber').dataset.layer === layer"
# the slider has moved the scrubber away from layer `start`, and the scrubber shows the slider's layer
DRAGGED = """(start) => { const p = document.querySelector('.spn-scrubber');
  return p.dataset.layer !== start && p.dataset.layer === p.querySelector('.spn-slider').value; }"""
# mode `mode` is on, and checkpoint `c` (an index, as a string) and layer `layer` are selected in the DOM
SELECTED = """([mode, c, layer]) => {
  const on = document.querySelector('.spn-depth .spn-seg.spn-on'), row = document.querySelector('.spn-table tr.spn-on');
  return !!on && on.dataset.mode === mode && !!row && row.dataset.checkpoint === c
    && document.querySelector('.spn-scrubber').dataset.layer === layer; }"""
# the lens shows a token containing `text`
LENS_SHOWS = "(text) => [...document.querySelectorAll('.spn-lens-tok')].some((e) => e.textContent.includes(text))"


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_dashboard_in_a_real_notebook(browser, jupyter_server, artifacts, app):
    with notebook_page(browser, jupyter_server, f"dashboard_{app}.ipynb", CELLS, app) as (page, errors):
        try:
            _dashboard_steps(page, errors, artifacts, app)
        except Exception:
            page.screenshot(path=str(artifacts / f"{app}-failure.png"), full_page=True)
            raise


def _dashboard_steps(page, errors, artifacts, app):
    run_cell(page, 0)
    page.wait_for_selector(".spinal-nb.spn-dashboard .spn-series", timeout=60_000)
    wait_drawn(page)  # at its width in the notebook: positions read from now on stay valid
    dash = page.locator(".spinal-nb.spn-dashboard")
    assert page.locator(".spn-depth .spn-series").count() == 3
    assert dom_layer(page) == 29
    dash.screenshot(path=str(artifacts / f"{app}-dashboard.png"))

    # drag the scrubber: the DOM highlights that layer, and Python's trait follows
    drag_slider_to(page, 10)
    page.wait_for_function(DRAGGED, arg="29", timeout=30_000)
    dragged = dom_layer(page)
    assert abs(dragged - 10) <= 1
    ring = page.locator(".spn-layer-ring-selected")
    assert ring.get_attribute("data-layer") == str(dragged)
    assert page.locator(".spn-readout").inner_text() == f"{dragged} / 30"
    # arrow keys on the focused widget (not the slider): two steps right
    page.locator(".spn-dash-title").click()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(AT_LAYER, arg=str(dragged + 2), timeout=30_000)
    assert dom_layer(page) == dragged + 2
    assert py_state(page, (dragged + 2, "dpo"))[:2] == (dragged + 2, "dpo")

    # hover a trace: tooltip with layer and values, other traces fade
    svg = page.locator(".spn-depth svg.spn-svg")
    pt = page.locator('.spn-series[data-checkpoint="0"] .spn-dots circle[data-layer="20"]')
    wait_drawn(page)
    # running a cell scrolls the notebook to the next one: a dashboard taller than the viewport (the compare panel
    # with its verdict) can leave the depth path above it, where the mouse cannot reach
    pt.scroll_into_view_if_needed()
    wait_drawn(page)
    bb = pt.bounding_box()
    page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
    wait_tooltip(page, ".spn-depth")
    tip = page.locator(".spn-tooltip")
    assert tip.is_visible()
    text = tip.inner_text()
    assert "base" in text and "layer 20 of 30" in text and "α contraction" in text
    assert "spn-has-hover" in (svg.get_attribute("class") or "")
    dash.screenshot(path=str(artifacts / f"{app}-hover.png"))
    # click it: selects that checkpoint and layer, in Python too
    page.mouse.click(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
    page.mouse.move(5, 5)
    page.get_by_role("button", name="α vs depth").click()
    page.wait_for_function(SELECTED, arg=["contraction", "0", "20"], timeout=30_000)
    assert py_state(page, (20, "base", "contraction")) == (20, "base", "contraction")
    dash.screenshot(path=str(artifacts / f"{app}-contraction-vs-depth.png"))

    # Python moves the browser
    run_cell(page, 2)
    page.wait_for_function("""() => document.querySelector('.spn-scrubber').dataset.layer === '5'
        && document.querySelector('.spn-table tr.spn-on .spn-name-text').textContent.trim() === 'sft'""", timeout=30_000)
    assert page.locator(".spn-table tr.spn-on .spn-name-text").inner_text().strip() == "sft"

    # the untrusted token: literal text, no element, nothing executed
    page.locator(".spn-dash-title").click()
    page.keyboard.press("End")
    page.wait_for_function(AT_LAYER, arg="30", timeout=30_000)
    page.locator('select[aria-label="prompt"]').select_option("1")
    page.wait_for_function(LENS_SHOWS, arg="<img src=x onerror=", timeout=30_000)
    literal = page.locator(".spn-lens-tok", has_text="<img src=x onerror=")
    assert literal.count() >= 1
    assert literal.first.evaluate("e => e.textContent") == XSS
    assert page.locator(".spn-token", has_text="<img").first.evaluate("e => e.textContent") == " " + XSS
    assert page.evaluate("() => document.querySelectorAll('.spinal-nb img').length") == 0
    assert page.evaluate("() => window.__spinal_xss === undefined")
    page.locator(".spn-scrubber").screenshot(path=str(artifacts / f"{app}-scrubber-lens.png"))
    assert not errors, errors


def test_static_html_works_offline(browser, artifacts, tmp_path):
    from spinal_nb.widgets import show

    frame = make_frame(3, 30, lens=True)
    path = show(frame, title="SPINAL audit (static export)").to_html(artifacts / "dashboard.html")
    page = browser.new_page(viewport={"width": 1300, "height": 1300})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(".spinal-nb .spn-series", timeout=30_000)
        assert page.locator(".spn-depth .spn-series").count() == 3
        page.locator(".spn-dash-title").click()
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(AT_LAYER, arg="28", timeout=30_000)
        assert dom_layer(page) == 28
        assert page.evaluate("() => window.spinalModel.get('layer')") == 28
        page.keyboard.press("End")
        page.locator('select[aria-label="prompt"]').select_option("1")
        assert page.locator(".spn-lens-tok", has_text="<img src=x onerror=").count() >= 1
        assert page.evaluate("() => document.querySelectorAll('.spinal-nb img').length") == 0
        assert page.evaluate("() => window.__spinal_xss === undefined")
        assert page.locator('select[aria-label="reference checkpoint"]').is_disabled()
        page.screenshot(path=str(artifacts / "static-html.png"), full_page=True)
        foreign = [u for u in requests if not u.startswith(("file:", "blob:", "data:"))]
        assert not foreign, foreign
        assert not errors, errors
    finally:
        page.close()


def test_training_run_with_many_checkpoints(browser, artifacts):
    from spinal_nb.widgets import show

    frame = make_frame(20, 64, steps=True, seed=1)
    path = show(frame, mode="contraction").to_html(artifacts / "training-run.html")
    page = browser.new_page(viewport={"width": 1300, "height": 1300})
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(".spinal-nb .spn-series", timeout=30_000)
        assert page.locator(".spn-ramp-tick").count() == 20  # a sequential ramp, not 20 swatches
        colors = page.evaluate("""() => [...document.querySelectorAll('.spn-series')]
                                  .map(g => g.style.getPropertyValue('--c'))""")
        assert len(set(colors)) == 20
        page.locator('.spn-ramp-tick[data-checkpoint="4"]').hover()
        page.wait_for_selector(".spn-series.spn-hovered", timeout=30_000)
        assert page.locator('.spn-series.spn-hovered').get_attribute("data-checkpoint") == "4"
        page.screenshot(path=str(artifacts / "training-run.png"), full_page=True)
    finally:
        page.close()
