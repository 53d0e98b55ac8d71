"""The companion metrics in a real browser (static export of a synthetic frame that has them): the layer table shows
their columns with the frame's values and still fits its box, the depth view switches to each of their modes, and
the training heatmap to each of their choices. Every step waits for the state it produces."""
from __future__ import annotations

import pytest

from tests.support import make_frame, make_training_frame

pytestmark = pytest.mark.ui

# the selected row's text in the column whose header has data-column=<name>
CELL = """(name) => { const ths = [...document.querySelectorAll('.spn-table thead th')];
  const i = ths.findIndex((th) => th.dataset.column === name);
  const row = document.querySelector('.spn-table tbody tr.spn-on');
  return i < 0 || !row ? null : row.children[i].textContent; }"""
MODE_ON = "(m) => { const b = document.querySelector('.spn-depth .spn-seg.spn-on'); return !!b && b.dataset.mode === m; }"
Y_LABEL = "(t) => (document.querySelector('.spn-depth svg.spn-svg').getAttribute('aria-label') || '').startsWith(t)"
HEAT_ON = """(k) => { const b = document.querySelector('.spn-heat .spn-seg.spn-on[data-heat]');
  const svg = document.querySelector('.spn-heat-svg');
  return !!b && b.dataset.heat === k && (svg.getAttribute('aria-label') || '').length > 0; }"""


def open_static(browser, widget, path, width=1300):
    page = browser.new_page(viewport={"width": width, "height": 1300})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(widget.to_html(path).as_uri())
    page.wait_for_selector(".spinal-nb .spn-series", timeout=30_000)
    return page, errors


@pytest.mark.parametrize("width", [800, 1920])
def test_the_table_shows_the_companions_and_the_depth_view_plots_them(browser, artifacts, width):
    from spinal_nb.widgets import show

    frame = make_frame(3, 30, lens=True)
    page, errors = open_static(browser, show(frame), artifacts / f"companions-{width}.html", width=width)
    try:
        layer = int(page.locator(".spn-scrubber").get_attribute("data-layer"))
        selected = page.evaluate("() => window.spinalModel.get('checkpoint')")
        row = frame.data.filter((frame.data["checkpoint"] == selected) & (frame.data["layer"] == layer))
        for name in ("effective_rank", "kl_to_final", "top1_agreement"):
            text = page.evaluate(CELL, name)
            assert text is not None, name
            want = row[name][0]
            assert abs(float(text) - want) <= 0.05 * abs(want) + 1e-9, (name, text, want)
        # the table still fits its box: no sideways scroll, the last column (Δ𝓛) in view
        fit = page.evaluate("""() => { const w = document.querySelector('.spn-table-wrap');
          const last = w.querySelector('thead th:last-child');
          return { scroll: w.scrollWidth - w.clientWidth,
                   right: last.getBoundingClientRect().right - w.getBoundingClientRect().right }; }""")
        assert fit["scroll"] <= 0 and fit["right"] <= 0, fit
        for mode, label in (("kl_to_final", "KL(p_L"), ("effective_rank", "effective rank"),
                            ("top1_agreement", "top-1 agreement")):
            page.locator(f'.spn-depth .spn-seg[data-mode="{mode}"]').click()
            page.wait_for_function(MODE_ON, arg=mode, timeout=30_000)
            page.wait_for_function(Y_LABEL, arg=label, timeout=30_000)
            assert page.locator(".spn-depth .spn-series").count() == 3
        page.screenshot(path=str(artifacts / f"companions-{width}.png"), full_page=True)
        assert not errors, errors
    finally:
        page.close()


def test_a_frame_without_companions_hides_their_modes(browser, artifacts):
    from spinal_nb.widgets import show

    page, errors = open_static(browser, show(make_frame(2, 12, companions=False)), artifacts / "no-companions.html")
    try:
        assert page.locator('.spn-depth .spn-seg[data-mode="kl_to_final"]').is_hidden()
        assert page.locator(".spn-table thead th[data-column]").count() == 0
        assert not errors, errors
    finally:
        page.close()


def test_the_training_heatmap_offers_the_companions(browser, artifacts):
    from spinal_nb.widgets.training import show_training

    page, errors = open_static(browser, show_training(make_training_frame(8, 12)),
                               artifacts / "companions-training.html")
    try:
        for key in ("effective_rank", "kl_to_final", "top1_agreement"):
            page.locator(f'.spn-heat .spn-seg[data-heat="{key}"]').click()
            page.wait_for_function(HEAT_ON, arg=key, timeout=30_000)
        page.locator('.spn-heat .spn-seg[data-delta="true"]').click()
        page.wait_for_function("() => (document.querySelector('.spn-heat-svg').getAttribute('aria-label') || '')"
                               ".includes('minus the reference step')", timeout=30_000)
        assert not errors, errors
    finally:
        page.close()
