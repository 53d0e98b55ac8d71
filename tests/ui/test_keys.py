"""Keys inside the widget stay in the widget, in JupyterLab 4 and Notebook 7.

The notebook of a newcomer: a markdown section heading, then the dashboard's cell. A click on the layer slider, then
←/→: the slider moves one layer per key, the focus stays on it, and JupyterLab's command-mode shortcuts get none of
it (in command mode ← on a cell moves to the heading above and a second ← collapses that section: the dashboard
disappears). The same for a button inside the widget. Each key's effect is awaited as a state: the layer changed, or the focus or the active cell moved.
"""
from __future__ import annotations

import pytest

from .conftest import ROOT, Markdown, after_frame, notebook_page, wait_drawn
from .lab_server import run_cell
from .test_dashboard import py_state_when

pytestmark = pytest.mark.ui

SETUP = f"""import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.widgets.conftest import make_frame
from spinal_nb.widgets import show
dash = show(make_frame(3, 30, lens=True), title="keys")
dash"""
CELLS = [Markdown("## 5. The candidate, and the dashboard\nClick the slider and use the arrow keys."), SETUP,
         'print("PY", dash.layer)']

# what a key press did: the scrubber's layer, where the focus is, which cell is active, which cells are hidden
STATE = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  const a = document.activeElement;
  return { layer: document.querySelector('.spn-scrubber').dataset.layer,
           focus: a ? (a.getAttribute('aria-label') || a.className || a.tagName) : null,
           active: cells.findIndex((c) => c.classList.contains('jp-mod-active')),
           hidden: cells.filter((c) => c.classList.contains('lm-mod-hidden') || c.offsetParent === null).length,
           collapsed: document.querySelectorAll('.jp-collapseHeadingButton.jp-mod-collapsed, '
                                                + '.jp-MarkdownCell.jp-mod-collapsed').length,
           dashboard: !!document.querySelector('.spinal-nb.spn-dashboard')
                      && document.querySelector('.spinal-nb.spn-dashboard').offsetParent !== null };
}"""
# something happened since `before`: the layer, the focus or the active cell changed
CHANGED = f"""(before) => {{ const now = ({STATE})();
  return now.layer !== before.layer || now.focus !== before.focus || now.active !== before.active; }}"""


def press(page, key: str) -> dict:
    after_frame(page)  # a redraw an earlier event scheduled has happened: `before` is not that redraw's old state
    before = page.evaluate(STATE)
    page.keyboard.press(key)
    page.wait_for_function(CHANGED, arg=before, timeout=30_000)
    return page.evaluate(STATE)


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_arrow_keys_on_the_slider_stay_in_the_widget(browser, jupyter_server, artifacts, app):
    with notebook_page(browser, jupyter_server, f"keys_{app}.ipynb", CELLS, app) as (page, errors):
        try:
            run_cell(page, 1)
            page.wait_for_selector(".spinal-nb.spn-dashboard .spn-series", timeout=60_000)
            wait_drawn(page)
            slider = page.locator(".spn-slider")
            slider.click()  # a click on the track: the slider takes the focus (and the layer under the pointer)
            page.wait_for_function("() => document.activeElement === document.querySelector('.spn-slider')")
            after_frame(page)  # the click's layer is drawn
            start = page.evaluate(STATE)
            layer = int(start["layer"])
            assert start["active"] == 1 and start["dashboard"]
            for key, want in (("ArrowLeft", layer - 1), ("ArrowLeft", layer - 2), ("ArrowRight", layer - 1)):
                now = press(page, key)
                assert now["layer"] == str(want), (key, now)
                assert now["focus"] == "layer", (key, now)  # still the slider
                assert now["active"] == 1 and now["collapsed"] == 0 and now["dashboard"], (key, now)
            assert slider.input_value() == str(layer - 1)
            # the same on a button inside the widget (a legend entry): the widget's own ←/→ step the layer
            page.locator('.spn-legend-item[data-checkpoint="2"]').click()
            page.wait_for_function("() => document.activeElement.matches('.spn-legend-item')")
            now = press(page, "ArrowLeft")
            assert now["layer"] == str(layer - 2) and now["focus"].startswith("spn-legend-item"), now
            assert now["active"] == 1 and now["collapsed"] == 0 and now["dashboard"], now
            now = press(page, "ArrowRight")
            assert now["layer"] == str(layer - 1) and now["active"] == 1, now
            got = py_state_when(page, 2, r"PY (\d+)", lambda g: (int(g[0]),), (layer - 1,))
            assert got == (layer - 1,)
            assert not errors, errors
        except Exception:
            page.screenshot(path=str(artifacts / f"{app}-keys-failure.png"), full_page=True)
            raise


# the kernel's record of every `layer` change it receives
SEEN = f"""{SETUP.rsplit(chr(10), 1)[0]}
seen = []
dash.observe(lambda ch: seen.append(ch["new"]), "layer")
dash"""
# two steps in one task (one frame); the scrubber's layer once that frame's redraw (store.inFrame) has run: an animation
# frame callback asked for after the keys runs after the widget's, in the same frame
TWO_STEPS = """async () => {
  const root = document.querySelector('.spinal-nb');
  const start = +document.querySelector('.spn-scrubber').dataset.layer;
  for (let i = 0; i < 2; i++) root.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowLeft', bubbles: true }));
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  return [start, +document.querySelector('.spn-scrubber').dataset.layer];
}"""


def test_the_changes_of_one_frame_reach_the_kernel_in_one_message(browser, jupyter_server, artifacts):
    """The widget sends its changes after the frame that shows them, all of that frame's in one message: two steps in
    one task reach the kernel as one change, to the last layer (sent from the key handler, the kernel saw both)."""
    cells = [SEEN, 'print("PY", dash.layer, "SEEN", *seen)']
    with notebook_page(browser, jupyter_server, "keys_one_message.ipynb", cells) as (page, errors):
        try:
            run_cell(page, 0)
            page.wait_for_selector(".spinal-nb.spn-dashboard .spn-series", timeout=60_000)
            wait_drawn(page)
            start, shown = page.evaluate(TWO_STEPS)
            assert shown == start - 2  # drawn in the next frame
            got = py_state_when(page, 1, r"PY (\d+) SEEN([\d ]*)$", lambda g: (int(g[0]), g[1].split()),
                                (start - 2,))
            assert got == (start - 2, [str(start - 2)]), got
            # a step in a later frame is a message of its own
            page.locator(".spinal-nb").first.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("(l) => document.querySelector('.spn-scrubber').dataset.layer === l",
                                   arg=str(start - 1))
            got = py_state_when(page, 1, r"PY (\d+) SEEN([\d ]*)$", lambda g: (int(g[0]), g[1].split()),
                                (start - 1,))
            assert got == (start - 1, [str(start - 2), str(start - 1)]), got
            assert not errors, errors
        except Exception:
            page.screenshot(path=str(artifacts / "lab-keys-one-message-failure.png"), full_page=True)
            raise
