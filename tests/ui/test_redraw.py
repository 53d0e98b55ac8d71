"""What a scrub step redraws, in a real browser (the static export of a 20-checkpoint dashboard).

The static page runs the same render() as the notebook against an in-page model, so the live widget's protocol can
be played by hand: a new `layer` first, then the kernel's reply (the new layer's `_spectra_header` / `_lens_header`).
Checks that while a reply is pending the spectrum and lens keep their previous drawing (dimmed, with a "loading"
note) instead of collapsing, that the reply redraws only those two panels, and that the table keeps the selected
row in view without reading the layout on every step. Timings are in benchmarks/widget_redraw.py, not here.
"""
from __future__ import annotations

import pytest

from tests.widgets.conftest import make_frame

from .conftest import AFTER_FRAME

pytestmark = pytest.mark.ui

PANELS = """() => Object.fromEntries(['.spn-spectrum', '.spn-lens'].map((sel) => {
  const box = document.querySelector(sel);
  const h4 = box.querySelector('h4');
  const note = box.querySelector('.spn-pending-note');
  return [sel, { height: box.getBoundingClientRect().height, stale: box.classList.contains('spn-stale'),
                 title: h4 ? h4.textContent : null, note: note ? note.textContent : null,
                 svg: !!box.querySelector('svg'), cols: box.querySelectorAll('.spn-lens-col').length }];
}))"""


def set_then_read(page, body: str) -> dict:
    """Run `body` (statements on `m`, the page's model) in the page, then read the panels once the next frame is
    drawn: every view redraws in an animation frame (store.inFrame), so a read right after a change could see either
    drawing, depending on whether the browser produced a frame in between."""
    return page.evaluate(f"async () => {{ const m = window.spinalModel; {body}\n await {AFTER_FRAME}; return ({PANELS})(); }}")


TABLE_TEXT = "() => document.querySelector('.spn-table tbody').textContent"
# how many times each box has drawn new content (the scrubber counts its draws; a step redraws in place, so
# counting replaced elements would not tell)
DRAWS = """() => ({ spectrum: +document.querySelector('.spn-spectrum').dataset.draws,
                  lens: +document.querySelector('.spn-lens').dataset.draws })"""

ROW_IN_VIEW = """() => { const wrap = document.querySelector('.spn-table-wrap').getBoundingClientRect();
  const row = document.querySelector('.spn-table tr.spn-on').getBoundingClientRect();
  return row.top >= wrap.top - 1 && row.bottom <= wrap.bottom + 1; }"""


@pytest.fixture
def page20(open_export):
    frame = make_frame(20, 30, lens=True, seed=3, names=[f"ckpt{i:02d}" for i in range(20)])
    return open_export(frame, "redraw-20")


def test_a_pending_layer_keeps_the_previous_drawing_until_the_reply(page20, artifacts):
    page = page20
    before = page.evaluate(PANELS)
    assert before[".spn-spectrum"]["title"] == "Spectrum at layer 29" and before[".spn-lens"]["cols"] >= 1
    table = page.evaluate(TABLE_TEXT)
    # the live widget: the browser sets `layer`, the detail buffers still hold layer 29's rows
    pending = set_then_read(page, """
        m.set('_spectra_header', { ...m.get('_spectra_header'), layer: 29 });
        m.set('_lens_header', { ...m.get('_lens_header'), layer: 29 });
        m.set('layer', 28);""")
    page.locator(".spn-scrubber").screenshot(path=str(artifacts / "redraw-pending.png"))
    for sel in (".spn-spectrum", ".spn-lens"):
        assert pending[sel]["stale"], sel
        assert pending[sel]["note"] == "loading layer 28…", sel
        assert pending[sel]["height"] == pytest.approx(before[sel]["height"], abs=0.5), sel  # no layout shift
    assert pending[".spn-spectrum"]["title"] == "Spectrum at layer 29" and pending[".spn-spectrum"]["svg"]
    assert page.evaluate("() => document.querySelector('.spn-scrubber').dataset.layer") == "28"
    assert page.evaluate("() => document.querySelector('.spn-table').dataset.layer") == "28"  # the table follows at once
    assert page.evaluate(TABLE_TEXT) != table
    table = page.evaluate(TABLE_TEXT)

    # the kernel's reply: detail of layer 28; only the spectrum and the lens are redrawn
    after = set_then_read(page, """
        m.set('_spectra_header', { ...m.get('_spectra_header'), layer: 28 });
        m.set('_lens_header', { ...m.get('_lens_header'), layer: 28 });""")
    for sel in (".spn-spectrum", ".spn-lens"):
        assert not after[sel]["stale"] and after[sel]["note"] is None, sel
    assert after[".spn-spectrum"]["title"] == "Spectrum at layer 28" and after[".spn-spectrum"]["svg"]
    assert after[".spn-lens"]["title"].startswith("Logit lens at layer 28") and after[".spn-lens"]["cols"] >= 1
    assert page.evaluate(TABLE_TEXT) == table  # the reply leaves the table alone


def test_one_redraw_per_batch_of_changes(page20):
    page = page20
    # a reply sets several traits in one go: the scrubber draws once, after all of them (the browser first asks for
    # a layer the buffers do not hold, as the live widget's buffers hold one layer and its neighbours)
    n = page.evaluate("""async () => { const m = window.spinalModel;
        m.set('_spectra_header', { ...m.get('_spectra_header'), layer: 29 });
        m.set('_lens_header', { ...m.get('_lens_header'), layer: 29 });
        m.set('layer', 20);
        await AFTER_FRAME;
        const before = (DRAWS)();
        m.set('_spectra_header', { ...m.get('_spectra_header'), layer: 20 });
        m.set('_spectra', m.get('_spectra').slice());
        m.set('_lens_header', { ...m.get('_lens_header'), layer: 20 });
        m.set('_lens', m.get('_lens').slice());
        await AFTER_FRAME;
        const after = (DRAWS)();
        return { spectrum: after.spectrum - before.spectrum, lens: after.lens - before.lens }; }"""
                  .replace("AFTER_FRAME", AFTER_FRAME).replace("DRAWS", DRAWS))
    assert n == {"spectrum": 1, "lens": 1}
    assert page.evaluate("() => document.querySelector('.spn-spectrum h4').textContent") == "Spectrum at layer 20"


def test_the_selected_row_stays_in_view_while_scrubbing(page20):
    page = page20
    assert page.evaluate("() => { const w = document.querySelector('.spn-table-wrap'); return w.scrollHeight > w.clientHeight; }")
    assert page.evaluate("() => document.querySelector('.spn-table tr.spn-on').dataset.checkpoint") == "19"
    assert page.evaluate(ROW_IN_VIEW)
    page.locator(".spinal-nb").first.focus()
    for _ in range(4):
        page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelector('.spn-scrubber').dataset.layer === '25'")
    assert page.evaluate(ROW_IN_VIEW)
    # selecting a checkpoint whose row is scrolled out of view brings it in
    page.evaluate("() => window.spinalModel.set('checkpoint', 'ckpt00')")
    page.wait_for_function("() => document.querySelector('.spn-table tr.spn-on').dataset.checkpoint === '0'")
    assert page.evaluate(ROW_IN_VIEW)


def test_a_step_to_a_prefetched_neighbour_draws_at_once_and_the_reply_redraws_nothing(page20):
    page = page20
    # the live widget's buffers hold layer 29 and its neighbours (span [28, 30]); the browser steps to 28
    now = set_then_read(page, """
        m.set('_spectra_header', { ...m.get('_spectra_header'), layer: 29, span: [28, 30] });
        m.set('_lens_header', { ...m.get('_lens_header'), layer: 29, span: [28, 30] });
        m.set('layer', 28);""")
    for sel in (".spn-spectrum", ".spn-lens"):
        assert not now[sel]["stale"] and now[sel]["note"] is None, sel  # drawn, not waiting for the kernel
    assert now[".spn-spectrum"]["title"] == "Spectrum at layer 28" and now[".spn-spectrum"]["svg"]
    assert now[".spn-lens"]["title"].startswith("Logit lens at layer 28") and now[".spn-lens"]["cols"] >= 1
    # the kernel's reply (centred on 28) changes no drawing: nothing is rebuilt under the pointer
    swaps = page.evaluate("""async () => { const m = window.spinalModel;
        const before = (DRAWS)();
        let swaps = 0;
        const mo = new MutationObserver((recs) => { swaps += recs.length; });
        for (const sel of ['.spn-spectrum', '.spn-lens']) {
          mo.observe(document.querySelector(sel), { childList: true, subtree: true, characterData: true });
        }
        m.set('_spectra_header', { ...m.get('_spectra_header'), layer: 28, span: [27, 29] });
        m.set('_spectra', m.get('_spectra').slice());
        m.set('_lens_header', { ...m.get('_lens_header'), layer: 28, span: [27, 29] });
        m.set('_lens', m.get('_lens').slice());
        await AFTER_FRAME;
        swaps += mo.takeRecords().length;
        mo.disconnect();
        const after = (DRAWS)();
        return swaps + after.spectrum - before.spectrum + after.lens - before.lens; }"""
                    .replace("AFTER_FRAME", AFTER_FRAME).replace("DRAWS", DRAWS))
    assert swaps == 0
    assert page.evaluate("() => document.querySelector('.spn-scrubber').dataset.detail") == "28"
    # two steps away is outside the span: the previous drawing stays, dimmed, until the reply
    far = set_then_read(page, "m.set('layer', 26);")
    assert far[".spn-spectrum"]["stale"] and far[".spn-spectrum"]["note"] == "loading layer 26…"
    assert far[".spn-spectrum"]["title"] == "Spectrum at layer 28"


# Six keydowns without waiting for frames, in the page, with the spectrum's draw count read at every animation frame
# meanwhile: three in one task, a microtask checkpoint after each (keys handled before a frame: a redraw per key, as
# the handler's batch did, draws three steps in that frame), then three each in a task of its own (as a held key's
# repeats arrive).
HELD_KEY = """async () => {
  const root = document.querySelector('.spinal-nb');
  const spec = document.querySelector('.spn-spectrum');
  const start = +document.querySelector('.spn-scrubber').dataset.layer;
  const before = +spec.dataset.draws;
  const perFrame = [];
  let last = before;
  let running = true;
  const tick = () => {
    const d = +spec.dataset.draws;
    perFrame.push(d - last);
    last = d;
    if (running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const key = () => root.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowLeft', bubbles: true }));
  for (let i = 0; i < 3; i++) {
    key();
    await Promise.resolve();
  }
  const nextTask = () => new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => resolve();
    ch.port2.postMessage(0);
  });
  for (let i = 0; i < 3; i++) {
    key();
    await nextTask();
  }
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
  running = false;
  const d = +spec.dataset.draws;
  perFrame.push(d - last);
  return { start, layer: +document.querySelector('.spn-scrubber').dataset.layer,
           title: spec.querySelector('h4').textContent, perFrame, draws: d - before };
}"""


def test_keys_faster_than_frames_draw_once_a_frame(page20):
    """Keys can come faster than a step is drawn (a held key's repeats): the views redraw once per animation frame
    (store.inFrame), for the last step before it, never once per key for a frame that shows only the last."""
    page = page20
    got = page.evaluate(HELD_KEY)
    assert got["layer"] == got["start"] - 6, got
    assert got["title"] == f"Spectrum at layer {got['start'] - 6}", got
    assert max(got["perFrame"]) <= 1, got  # a redraw per key drew the three keys of one task in one frame
    assert 1 <= got["draws"] <= 4, got  # the first task's three keys: one draw
    # and the table shows the last layer's values (each row filled for it)
    assert page.evaluate("() => document.querySelector('.spn-table').dataset.layer") == str(got["start"] - 6)
