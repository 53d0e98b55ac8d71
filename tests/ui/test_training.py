"""End to end in JupyterLab: the TrainingView of a synthetic training run, refreshed live, clicked and keyed.

Renders the layer × step heatmap of a monitored run's first half, then `view.update(full_run)` from another cell (what
SpinalCallback(on_evaluation=view.update) does after each evaluation) and checks the same widget redraws with the new
steps; clicks a heatmap cell and checks the Python-side (step, layer) and the linked depth path (selected trace and
layer ring); moves with the arrow keys; switches to Δ𝓛; checks an alert message with HTML in it shows as text.
Screenshots go to tests/ui/artifacts/.
"""
from __future__ import annotations

import pytest

from tests.widgets.conftest import XSS

from .conftest import ROOT, notebook_page, wait_drawn, wait_tooltip
from .lab_server import run_cell
from .test_dashboard import py_state_when

pytestmark = pytest.mark.ui

SETUP = f"""import sys
sys.path.insert(0, {str(ROOT)!r})
import polars as pl
from tests.widgets.conftest import XSS, make_training_frame
from spinal_nb.frame import TraceFrame
from spinal_nb.widgets import TrainingView
run = make_training_frame(14, 24, alert_steps=(550, 600, 650), message=XSS)
first = TraceFrame(run.data.filter(pl.col("step") <= 300), run.meta | {{"monitor": {{}}}})
view = TrainingView(first, title="DPO run (synthetic): SPINAL over training")
view"""
CELLS = [SETUP, "view.update(run); None", 'print("PY", view.step, view.layer, view.checkpoint, view.heat, view.delta)']


def py_state(page, want: tuple):
    """(step, layer, checkpoint, heat, delta) in Python, once they start with `want` (see test_dashboard.py_state_when)."""
    return py_state_when(page, 2, r"PY (\d+) (\d+) (\S+) (\S+) (\S+)",
                         lambda g: (int(g[0]), int(g[1]), g[2], g[3], g[4]), want)


def heat_state(page):
    return page.evaluate("""() => { const p = document.querySelector('.spn-heat');
                                    return [p.dataset.step, p.dataset.layer]; }""")


# the score `heat` and the value/Δ choice `delta` ("true"/"false") are on in the heatmap's buttons
HEAT_ON = """([heat, delta]) => { const on = [...document.querySelectorAll('.spn-heat .spn-seg.spn-on')];
  return on.some((b) => b.dataset.heat === heat) && on.some((b) => b.dataset.delta === delta); }"""


def test_training_view_in_jupyterlab(browser, jupyter_server, artifacts):
    with notebook_page(browser, jupyter_server, "training_lab.ipynb", CELLS) as (page, errors):
        try:
            _training_steps(page, errors, artifacts)
        except Exception:
            page.screenshot(path=str(artifacts / "lab-training-failure.png"), full_page=True)
            raise


def _training_steps(page, errors, artifacts):
    run_cell(page, 0)
    page.wait_for_selector(".spinal-nb.spn-training .spn-heat rect.spn-cell", timeout=60_000)
    view = page.locator(".spinal-nb.spn-training")
    # 7 evaluations (steps 0..300) × 25 layers
    assert page.locator(".spn-heat rect.spn-cell").count() == 7 * 25
    assert heat_state(page) == ["300", "23"]

    # live refresh: the same widget redraws with 14 evaluations and follows the newest step
    run_cell(page, 1)
    page.wait_for_function("() => document.querySelectorAll('.spn-heat rect.spn-cell').length === 14 * 25",
                           timeout=30_000)
    assert page.locator(".spinal-nb.spn-training").count() == 1
    assert heat_state(page) == ["650", "23"]
    assert "14 evaluations" in page.locator(".spn-status").inner_text()
    assert page.locator(".spn-alert-mark").count() == 3

    # click the cell (step 200, layer 18): Python follows, the depth path highlights that step and layer
    cell = page.locator('.spn-heat rect.spn-cell[data-col="4"][data-layer="18"]')
    wait_drawn(page)  # at its width in the notebook: the position read now stays valid
    bb = cell.bounding_box()
    page.mouse.click(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
    page.wait_for_function("() => document.querySelector('.spn-heat').dataset.step === '200'", timeout=30_000)
    assert heat_state(page) == ["200", "18"]
    assert py_state(page, (200, 18, "step-000200"))[:3] == (200, 18, "step-000200")
    sel = page.locator(".spn-heat rect.spn-heat-sel")
    assert (sel.get_attribute("data-col"), sel.get_attribute("data-layer")) == ("4", "18")
    idx = page.evaluate("() => [...document.querySelectorAll('.spn-depth .spn-series')]"
                        ".find(g => g.classList.contains('spn-selected')).dataset.checkpoint")
    names = page.evaluate("""() => [...document.querySelectorAll('.spn-ramp-tick')].map(b => b.title)""")
    assert names[int(idx)].startswith("step-000200")
    ring = page.locator(".spn-depth .spn-layer-ring-selected")
    assert ring.get_attribute("data-layer") == "18" and ring.get_attribute("data-checkpoint") == idx
    assert page.locator(".spn-train-scrub .spn-step-out").inner_text() == "200"
    assert page.locator(".spn-over .spn-title").inner_text() == "contraction α at layer 18 over training"

    # keys: → next step, ↑ next layer (focus on the widget, not on a slider)
    page.locator(".spn-train-title").click()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    # the two keys' changes may be drawn in two frames (the views redraw once per animation frame): wait for both,
    # not for the step alone (CI once read step 250 at layer 18, the frame before the ↑ was drawn)
    page.wait_for_function("""() => { const p = document.querySelector('.spn-heat');
                                      return p.dataset.step === '250' && p.dataset.layer === '19'; }""",
                           timeout=30_000)
    assert heat_state(page) == ["250", "19"]

    # Δ𝓛 against the first step; the depth path switches to 𝓛 vs depth with it
    page.get_by_role("button", name="𝓛 transport", exact=True).click()
    page.get_by_role("button", name="Δ vs reference", exact=True).click()
    page.wait_for_function(HEAT_ON, arg=["transport", "true"], timeout=30_000)
    want = (250, 19, "step-000250", "transport", "True")
    assert py_state(page, want) == want
    assert page.locator('.spn-depth .spn-seg.spn-on').get_attribute("data-mode") == "transport"
    assert page.locator(".spn-heat-sig circle").count() > 0  # cells whose paired interval excludes 0
    view.screenshot(path=str(artifacts / "lab-training-delta.png"))

    # back to α, select the last step at the terminal layers and hover an alert marker: text, not markup
    page.get_by_role("button", name="α contraction", exact=True).click()
    page.get_by_role("button", name="value", exact=True).click()
    page.locator(".spn-train-title").click()
    page.keyboard.press("End")
    page.wait_for_function("() => document.querySelector('.spn-heat').dataset.step === '650'", timeout=30_000)
    mark = page.locator(".spn-alert-mark").last
    assert mark.locator("title").text_content() == f"step 650: {XSS} at step 650"
    wait_drawn(page)
    tip_cell = page.locator('.spn-heat rect.spn-cell[data-col="13"][data-layer="22"]').bounding_box()
    page.mouse.move(tip_cell["x"] + tip_cell["width"] / 2, tip_cell["y"] + tip_cell["height"] / 2)
    wait_tooltip(page, ".spn-heat")
    tip = page.locator(".spn-heat .spn-tooltip")
    assert tip.is_visible() and "step 650" in tip.inner_text() and XSS in tip.inner_text()
    assert page.evaluate("() => document.querySelectorAll('.spinal-nb img').length") == 0
    assert page.evaluate("() => window.__spinal_xss === undefined")
    page.mouse.move(5, 5)
    wait_tooltip(page, ".spn-heat", shown=False)  # the screenshot without it
    view.screenshot(path=str(artifacts / "lab-training.png"))
    assert not errors, errors
