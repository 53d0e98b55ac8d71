"""What a newcomer sees on the first page, in a real browser (static HTML export, the same render() as in a notebook):
nothing clipped or overlapping, and no panel left empty without a word.

Geometry is read from the DOM (bounding boxes of the table, cells, tick labels and panels) at several viewport widths.
"""
from __future__ import annotations

import pytest

from tests.widgets.conftest import make_frame

pytestmark = pytest.mark.ui


def open_static(browser, widget, path, width: int = 1300, height: int = 1300):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(widget.to_html(path).as_uri())
    page.wait_for_selector(".spinal-nb .spn-series", timeout=30_000)
    return page, errors


def test_a_trace_without_lens_says_how_to_get_it(browser, artifacts):
    from spinal_nb.widgets import show

    page, errors = open_static(browser, show(make_frame(2, 12, lens=False)), artifacts / "no-lens.html")
    try:
        hint = page.locator(".spn-lens .spn-lens-hint")
        assert hint.is_visible()
        text = hint.inner_text()
        assert "lens_prompts=" in text and "trace(" in text
        box = hint.bounding_box()
        assert box["height"] > 0 and box["width"] > 100
        # it stays there while scrubbing
        start = int(page.locator(".spn-scrubber").get_attribute("data-layer"))
        page.locator(".spinal-nb").first.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("(k) => document.querySelector('.spn-scrubber').dataset.layer === k", arg=str(start - 1))
        assert page.locator(".spn-lens .spn-lens-hint").is_visible()
        page.locator(".spn-scrubber").screenshot(path=str(artifacts / "no-lens-hint.png"))
        assert not errors, errors
    finally:
        page.close()


# the layer table's box and the table itself: the table must fit its box (no horizontal scroll, last column shown)
TABLE_FITS = """() => { const wrap = document.querySelector('.spn-table-wrap');
  const table = wrap.querySelector('.spn-table'), last = table.querySelector('thead th:last-child');
  const w = wrap.getBoundingClientRect(), l = last.getBoundingClientRect();
  return { box: Math.round(w.width), table: Math.round(table.getBoundingClientRect().width),
           scroll: wrap.scrollWidth - wrap.clientWidth, lastRight: Math.round(l.right - w.right),
           last: last.textContent }; }"""

WIDTHS = [800, 1024, 1280, 1440, 1920]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_layer_table_shows_every_column_without_scrolling(browser, artifacts, width):
    from spinal_nb.demo import SMOLLM2
    from spinal_nb.widgets import show

    # the demo's pair and names (the longest names a newcomer meets first), in a page as wide as the viewport
    frame = make_frame(2, 12, lens=True, names=[SMOLLM2.reference, SMOLLM2.candidate])
    page, errors = open_static(browser, show(frame, title=SMOLLM2.title), artifacts / f"table-{width}.html", width=width)
    try:
        got = page.evaluate(TABLE_FITS)
        if got["scroll"] > 0 or got["lastRight"] > 0:
            page.locator(".spn-scrubber").screenshot(path=str(artifacts / f"table-clipped-{width}.png"))
        assert got["scroll"] <= 0 and got["lastRight"] <= 0, got
        assert got["last"].startswith("Δ𝓛")
        assert not errors, errors
    finally:
        page.close()


def demo_page(tmp_path, frame) -> str:
    """The demo's offline page (spinal_nb.demo_report._write_html) for a small synthetic lab pair: one embedded dashboard."""
    from spinal_nb import demo, demo_report

    described = {demo.LAB.key: {"title": demo.LAB.title, "verdict": {"status": "the paper's signature", "key": "signature", "text": "synthetic"},
                                "_comparison": "synthetic comparison", "evidence": {}}}
    summary = {"created": "now", "prompts": {"n": 30}, "notes": [], "timings_s": {}}
    return demo_report._write_html(frame, summary, described, [], tmp_path, "printed",
                                   {demo.LAB.key: demo.LAB}).as_uri()


# the embedded dashboard's frame: its document fits (no nested scroll), and its spectrum is inside the frame's box
FRAME_FITS = """() => { const f = document.querySelector('iframe'), d = f.contentDocument, s = d.scrollingElement;
  const spec = d.querySelector('.spn-spectrum').getBoundingClientRect();
  return { frame: Math.round(f.getBoundingClientRect().height), content: s.scrollHeight,
           vscroll: s.scrollHeight - s.clientHeight, hscroll: s.scrollWidth - s.clientWidth,
           specBottom: Math.round(spec.bottom), inner: s.clientHeight }; }"""


@pytest.mark.parametrize("width", [800, 1280, 1920])
def test_the_demo_page_shows_the_whole_dashboard_without_a_nested_scroll(browser, artifacts, tmp_path, width):
    from spinal_nb.demo import LAB

    frame = make_frame(2, 12, lens=True, names=[LAB.reference, LAB.candidate])
    page = browser.new_page(viewport={"width": width, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(demo_page(tmp_path, frame))
        page.frame_locator("iframe").locator(".spinal-nb .spn-spectrum svg").wait_for(timeout=30_000)
        # the frame follows its document's height (a state, not a time: the sizes agree)
        page.wait_for_function("""() => { const f = document.querySelector('iframe'), s = f.contentDocument.scrollingElement;
            return s.scrollHeight <= s.clientHeight; }""", timeout=10_000)
        got = page.evaluate(FRAME_FITS)
        assert got["vscroll"] <= 0 and got["hscroll"] <= 0 and got["specBottom"] <= got["inner"], got
        assert got["frame"] - got["content"] <= 4, got  # no blank band below it either (frame borders: 2 px)
        assert not errors, errors
    except Exception:
        page.screenshot(path=str(artifacts / f"demo-{width}-failure.png"), full_page=True)
        raise
    finally:
        page.close()


# text elements of an svg whose boxes overlap (pairs of their texts), and those that stick out of the svg's box
TEXT_CLASHES = """(sel) => { const svg = document.querySelector(sel), outer = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim())
    .map((t) => ({ text: t.textContent, r: t.getBoundingClientRect() }));
  const clash = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const overlaps = [];
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
    if (clash(texts[i].r, texts[j].r)) overlaps.push([texts[i].text, texts[j].text]);
  }
  const outside = texts.filter(({ r }) => r.left < outer.left - 0.5 || r.right > outer.right + 0.5
    || r.top < outer.top - 0.5 || r.bottom > outer.bottom + 0.5).map((t) => t.text);
  return { overlaps, outside }; }"""


def test_the_compare_charts_onset_label_clears_the_ticks(browser, artifacts):
    from spinal_nb.widgets import show

    frame = make_frame(2, 12, lens=False, names=["base", "aligned"])
    page, errors = open_static(browser, show(frame, reference="base", checkpoint="aligned"), artifacts / "onset.html")
    try:
        # an onset at the first layer (the label at the y axis, where it met the tick labels), then at the last
        for layer, depth in ((0, 0.0), (6, 0.5), (12, 1.0)):
            page.evaluate("""([layer, depth]) => { const m = window.spinalModel, s = m.get('_summaries');
                m.set('_summaries', Object.fromEntries(Object.entries(s).map(([k, v]) =>
                    [k, { ...v, onset_layer: layer, onset_depth: depth }]))); }""", [layer, depth])
            page.wait_for_function("(l) => [...document.querySelectorAll('.spn-onset-label')]"
                                   ".some((t) => t.textContent === 'onset ℓ' + l)", arg=layer)
            got = page.evaluate(TEXT_CLASHES, ".spn-summary svg.spn-delta")
            if got["overlaps"] or got["outside"]:
                page.locator(".spn-summary").screenshot(path=str(artifacts / f"onset-{layer}-clash.png"))
            assert got == {"overlaps": [], "outside": []}, (layer, got)
        assert not errors, errors
    finally:
        page.close()


@pytest.mark.parametrize("names", [("base", "aligned"), ("smollm2-instruct", "smollm2-instruct-dpo"),
                                   ("lab-base", "smollm2-instruct-dpo", "different depth")])
def test_the_static_delta_chart_has_no_clipped_or_overlapping_text(browser, artifacts, names):
    import vl_convert

    from spinal_nb.frame import TraceFrame
    from spinal_nb.widgets import chart

    if len(names) == 3:  # 8 vs 30 layers: the subtitle also says "interpolated on depth"
        frame = TraceFrame.concat([make_frame(1, 8, names=[names[0]]), make_frame(1, 30, names=[names[1]], seed=4)])
    else:
        frame = make_frame(2, 30, names=list(names))
    svg = vl_convert.vegalite_to_svg(chart(frame, kind="delta", reference=names[0], candidate=names[1]).to_json())
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    try:
        # as the notebook's "svg" renderer shows it: the exported svg in the page, drawn with the browser's fonts
        page.set_content(f"<!doctype html><html><body style='margin:0'>{svg}</body></html>")
        got = page.evaluate(TEXT_CLASHES, "svg")
        if got["overlaps"] or got["outside"]:
            page.screenshot(path=str(artifacts / f"delta-chart-{names[0]}-clash.png"))
        assert got == {"overlaps": [], "outside": []}, got
    finally:
        page.close()
