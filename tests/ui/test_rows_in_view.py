"""A scrub step fills only the layer table's rows in view (static export of a 20-checkpoint dashboard, whose table box
shows about 8 rows): after a step every row in view shows the new layer's values (checked against the frame), the
rows out of view are marked stale (tr[data-stale], with the layer they show in tr[data-layer]) and hidden, and a row
that scrolls into view is filled before the frame that shows it is painted. Timings are in
benchmarks/widget_redraw.py, not here."""
from __future__ import annotations

import math

import polars as pl
import pytest

from tests.widgets.conftest import make_frame

pytestmark = pytest.mark.ui

NAMES = [f"ckpt{i:02d}" for i in range(20)]

# per body row: checkpoint, the layer it shows, stale or not, in the box's view or not, and its α and 𝓛 cells' values
ROWS = """() => { const wrap = document.querySelector('.spn-table-wrap');
  const box = wrap.getBoundingClientRect(), head = wrap.querySelector('.spn-table thead th').getBoundingClientRect();
  const ths = [...wrap.querySelectorAll('.spn-table thead th')].map((th) => th.textContent);
  const col = (name) => ths.indexOf(name);
  return [...wrap.querySelectorAll('.spn-table tbody tr')].map((tr) => { const r = tr.getBoundingClientRect();
    const value = (name) => { const td = tr.children[col(name)]; return td ? td.firstChild.nodeValue : null; };
    return { c: +tr.dataset.checkpoint, name: tr.querySelector('.spn-name-text').textContent, layer: tr.dataset.layer ?? null, stale: tr.hasAttribute('data-stale'),
             on: tr.classList.contains('spn-on'), inView: r.bottom > head.bottom + 1 && r.top < box.bottom - 1,
             hidden: getComputedStyle(tr.children[col('α contraction')]).visibility === 'hidden',
             alpha: value('α contraction'), transport: value('𝓛 transport') }; }); }"""

# the state right before the next frame is painted: scroll events of a scroll set in this task have run by then,
# IntersectionObserver reports not yet (they come in a task after the frame)
BEFORE_PAINT = """(top) => new Promise((resolve) => { const wrap = document.querySelector('.spn-table-wrap');
  wrap.scrollTop = top < 0 ? wrap.scrollHeight : top;
  requestAnimationFrame(() => resolve((ROWS)())); })"""

FILLED = """(layer) => { const rows = (ROWS)();
  return rows.every((r) => !r.inView || (r.layer === layer && !r.stale)); }"""


@pytest.fixture
def scrub20(open_export):
    frame = make_frame(20, 30, lens=True, seed=3, names=NAMES)
    return open_export(frame, "rows-in-view-20"), frame


def close(text: str, value: float | None) -> bool:
    """A cell's text (3 significant digits, scales.js fmt) shows the frame's value."""
    if value is None or not math.isfinite(value):
        return text == "—"
    v = float(text.replace("−", "-"))
    return abs(v - value) <= 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 2) * 1.001


def check_values(frame, rows, layer: int) -> int:
    """Every row in view (and the selected row) shows `layer`'s α and 𝓛 from the frame; returns how many were checked."""
    data = frame.data.filter(pl.col("layer") == layer)
    want = {name: (a, t) for name, a, t in data.select("checkpoint", "contraction", "transport").iter_rows()}
    n = 0
    for r in rows:
        if r["inView"] or r["on"]:
            a, t = want[r["name"]]
            assert r["layer"] == str(layer) and not r["stale"] and not r["hidden"], r
            assert close(r["alpha"], a) and close(r["transport"], t), (r, a, t)
            n += 1
    return n


def test_a_step_fills_the_rows_in_view_and_marks_the_others_stale(scrub20):
    page, frame = scrub20
    rows_js = ROWS
    page.locator(".spinal-nb").first.focus()
    # the table scrolled to the bottom, then to its top (the selected row, ckpt19, is the last row), then a step
    page.evaluate(BEFORE_PAINT.replace("ROWS", rows_js), -1)
    page.evaluate(BEFORE_PAINT.replace("ROWS", rows_js), 0)
    start = int(page.locator(".spn-scrubber").get_attribute("data-layer"))
    one, two = str(start - 1), str(start - 2)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('.spn-scrubber').dataset.layer === '{one}'")
    page.wait_for_function(f"() => ({FILLED.replace('ROWS', rows_js)})('{one}')")
    rows = page.evaluate(rows_js)
    assert check_values(frame, rows, start - 1) >= 5
    # every row shows this layer, or is out of view and stale: another layer's text, marked and hidden, never taken for
    # the new layer's (which rows are stale depends on whether the step found a sheet filled ahead for its layer)
    assert all((r["layer"] == one and not r["stale"] and not r["hidden"])
               or (r["stale"] and r["hidden"] and not r["inView"] and not r["on"] and r["layer"] != one)
               for r in rows), rows
    assert page.evaluate("() => document.querySelector('.spn-table tr.spn-on').dataset.layer") == one

    # scrolled to the bottom: the rows that come into view are filled before that frame is painted
    rows = page.evaluate(BEFORE_PAINT.replace("ROWS", rows_js), -1)
    assert check_values(frame, rows, start - 1) >= 5
    assert not any(r["stale"] for r in rows)  # a scroll fills every stale row at once

    # a step with the table at the bottom: the rows now in view take the new layer, the top ones go stale
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('.spn-scrubber').dataset.layer === '{two}'")
    page.wait_for_function(f"() => ({FILLED.replace('ROWS', rows_js)})('{two}')")
    rows = page.evaluate(rows_js)
    assert check_values(frame, rows, start - 2) >= 5
    assert all(r["c"] < 10 for r in rows if r["stale"])


def test_a_small_table_fills_every_row(browser, artifacts):
    from spinal_nb.widgets import show

    frame = make_frame(3, 30, lens=True)
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    try:
        page.goto(show(frame).to_html(artifacts / "rows-in-view-3.html").as_uri())
        page.wait_for_selector(".spinal-nb .spn-spectrum svg", timeout=30_000)
        page.locator(".spinal-nb").first.focus()
        start = int(page.locator(".spn-scrubber").get_attribute("data-layer"))
        for layer in (str(start - 1), str(start - 2)):
            page.keyboard.press("ArrowLeft")
            page.wait_for_function(f"() => document.querySelector('.spn-scrubber').dataset.layer === '{layer}'")
            rows = page.evaluate(ROWS)
            assert len(rows) == 3 and all(r["inView"] for r in rows)
            assert check_values(frame, rows, int(layer)) == 3
    finally:
        page.close()


# the sheet filled ahead for `layer` (not the one shown), or null
AHEAD = """(layer) => !!document.querySelector(`.spn-table-wrap table.spn-sheet:not(.spn-table)[data-layer="${layer}"]`)"""

# text changes in the shown table's cells between a key press and the frame that shows it
WATCH = """() => { window.__texts = 0; const box = document.querySelector('.spn-table-wrap');
  new MutationObserver((ms) => { for (const m of ms) if (m.type === 'characterData' || m.type === 'childList')
    if (m.target.closest ? m.target.closest('table.spn-table') : m.target.parentElement?.closest('table.spn-table')) window.__texts++; })
    .observe(box, { subtree: true, characterData: true, childList: true }); }"""


def test_a_step_to_a_layer_filled_ahead_changes_no_text(scrub20):
    """After a step, idle time fills a sheet for the next layer in the direction of travel; the step to it brings that
    sheet on top with its values (no text changed in the frame), and the values are the frame's."""
    page, frame = scrub20
    page.locator(".spinal-nb").first.focus()
    start = int(page.locator(".spn-scrubber").get_attribute("data-layer"))
    page.keyboard.press("ArrowLeft")  # travel downwards: the sheet made ready first is for start - 2
    page.wait_for_function(f"() => document.querySelector('.spn-scrubber').dataset.layer === '{start - 1}'")
    page.wait_for_function(AHEAD, arg=str(start - 2))
    page.evaluate(WATCH)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('.spn-table').dataset.layer === '{start - 2}'")
    # MutationObserver reports come as a microtask after the changes: by now every change of this step is counted
    texts = page.evaluate("() => new Promise((r) => requestAnimationFrame(() => r(window.__texts)))")
    assert texts == 0
    rows = page.evaluate(ROWS)
    assert check_values(frame, rows, start - 2) >= 5
    # exactly one sheet is shown and exposed to screen readers
    assert page.evaluate("""() => [...document.querySelectorAll('.spn-table-wrap table')].map((t) =>
      [t.classList.contains('spn-table'), t.getAttribute('aria-hidden')])""").count([True, None]) == 1
    # and a jump to a layer no sheet holds fills the shown sheet in place, with that layer's values
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelector('.spn-table').dataset.layer === '0'")
    page.wait_for_function(f"() => ({FILLED.replace('ROWS', ROWS)})('0')")
    assert check_values(frame, page.evaluate(ROWS), 0) >= 5


# what the pointer at (x, y) reaches: the sheet (its index among the box's tables), whether that sheet is the shown
# one, the row's checkpoint, and whether the row is hovered
UNDER = """([x, y]) => { const el = document.elementFromPoint(x, y), t = el && el.closest('table');
  const tables = [...document.querySelectorAll('.spn-table-wrap table')], tr = el && el.closest('tbody tr');
  return { sheet: tables.indexOf(t), shown: !!t && t.classList.contains('spn-table'),
           c: tr ? +tr.dataset.checkpoint : null, hovered: !!tr && tr.matches(':hover') }; }"""

# a row of the shown sheet well inside the box's view (below the sticky header), not the selected one: its checkpoint
# and its centre
IN_VIEW = """() => { const wrap = document.querySelector('.spn-table-wrap'), box = wrap.getBoundingClientRect();
  const head = wrap.querySelector('.spn-table thead th').getBoundingClientRect();  // sticky: the box's top edge
  const tr = [...wrap.querySelectorAll('.spn-table tbody tr:not(.spn-on)')].find((tr) => {
    const r = tr.getBoundingClientRect(); return r.top > Math.max(box.top, head.bottom) + 2 && r.bottom < box.bottom - 2; });
  const r = tr.getBoundingClientRect();
  return [+tr.dataset.checkpoint, r.left + r.width / 2, r.top + r.height / 2]; }"""


def test_the_pointer_reaches_the_shown_sheet(scrub20):
    """The sheets are stacked in one place, the hidden one transparent: hover, tooltips and clicks must reach the shown
    sheet's rows (not a transparent sheet over it) — on either sheet, and after steps taken with the pointer there."""
    page, frame = scrub20
    page.locator(".spinal-nb").first.focus()
    start = int(page.locator(".spn-scrubber").get_attribute("data-layer"))
    page.locator(".spn-table-wrap").scroll_into_view_if_needed()  # in the viewport: the pointer can reach it
    page.keyboard.press("ArrowLeft")  # travel downwards: after this step a sheet is filled for the next layer down
    seen = set()
    for i in range(2, 5):  # three steps to sheets filled ahead: each sheet is shown at least once
        page.wait_for_function(AHEAD, arg=str(start - i))
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(f"() => document.querySelector('.spn-table').dataset.layer === '{start - i}'")
        c, x, y = page.evaluate(IN_VIEW)
        page.mouse.move(x, y)
        under = page.evaluate(UNDER, [x, y])
        assert under["shown"] and under["hovered"] and under["c"] == c, (under, c)
        seen.add(under["sheet"])
        page.mouse.move(5, 5)
    assert seen == {0, 1}, seen
    # steps taken with the pointer resting over a row: the row under it stays the shown sheet's
    page.mouse.move(x, y)
    for i in range(5, 7):
        page.wait_for_function(AHEAD, arg=str(start - i))
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(f"() => document.querySelector('.spn-table').dataset.layer === '{start - i}'")
        assert page.evaluate(UNDER, [x, y])["shown"]
    # a click selects that row's checkpoint
    page.mouse.click(x, y)
    page.wait_for_function(f"() => document.querySelector('.spn-table tr.spn-on')?.dataset.checkpoint === '{c}'")
