"""The spectrum's curves painted ahead (static export of a 20-checkpoint dashboard): after a step, the next layer's
curves are painted between frames on a canvas off the page, and the step to that layer copies them onto the shown
canvas instead of stroking every curve in its frame. The copy must be the picture a direct paint of that layer gives,
pixel for pixel (the same drawing operations onto a canvas of the same size; the copy is a bitmap blit at the
identity transform). Timings are in benchmarks/widget_redraw.py, not here."""
from __future__ import annotations

import pytest

from tests.widgets.conftest import make_frame

from .conftest import AFTER_FRAME

pytestmark = pytest.mark.ui

LAYER = "() => document.querySelector('.spn-scrubber').dataset.layer"
CANVAS = "() => document.querySelector('.spn-spectrum canvas.spn-spec-canvas').toDataURL()"
STATE = """() => { const box = document.querySelector('.spn-spectrum');
  return { title: box.querySelector('h4').textContent, copies: +(box.dataset.copies || 0),
           ahead: box.dataset.ahead ?? null }; }"""
# the slider moved to `layer` as a drag does (an input event): a jump, not a step in the direction of travel
JUMP = """(layer) => { const s = document.querySelector('.spn-slider'); s.value = layer;
  s.dispatchEvent(new Event('input', { bubbles: true })); }"""


def drawn(page, layer: int) -> None:
    page.wait_for_function(f"() => document.querySelector('.spn-spectrum h4').textContent === 'Spectrum at layer {layer}'")
    # the canvas is painted in the same animation callback as the title: one more frame and it is on the page
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => r()))")


@pytest.fixture
def page20(open_export):
    frame = make_frame(20, 30, lens=True, seed=5, names=[f"ckpt{i:02d}" for i in range(20)])
    return open_export(frame, "spectrum-ahead", title="spectrum ahead")


def test_a_step_copies_the_curves_painted_ahead_and_they_are_the_direct_paint(page20):
    page = page20
    page.locator(".spinal-nb").first.focus()
    start = int(page.evaluate(LAYER))
    assert start >= 4
    page.keyboard.press("ArrowLeft")  # travel downwards: the curves painted ahead are for start - 2
    page.wait_for_function(f"() => document.querySelector('.spn-spectrum').dataset.ahead === '{start - 2}'")
    before = page.evaluate(STATE)
    page.keyboard.press("ArrowLeft")
    drawn(page, start - 2)
    assert page.evaluate(STATE)["copies"] == before["copies"] + 1  # the step copied, it did not paint
    copied = page.evaluate(CANVAS)

    # a jump to layer 0 and back to start - 2: no curves are ahead for it, so it is painted directly
    page.evaluate(JUMP, 0)
    drawn(page, 0)
    at0 = page.evaluate(CANVAS)
    page.wait_for_function("() => document.querySelector('.spn-spectrum').dataset.ahead === '1'")
    copies = page.evaluate(STATE)["copies"]
    page.evaluate(JUMP, start - 2)
    drawn(page, start - 2)
    assert page.evaluate(STATE)["copies"] == copies  # painted, not copied
    painted = page.evaluate(CANVAS)
    assert at0 != painted  # the layers' pictures differ, so the equality below says something
    assert copied == painted


def test_in_a_live_widget_the_reply_with_the_neighbours_is_what_lets_the_next_layer_be_painted_ahead(page20):
    """The live widget's spectra buffers hold the selected layer and its neighbours (played here by hand on the
    static page, as tests/ui/test_redraw.py does): a step to 28 from buffers centred on 29 cannot paint 27 ahead; the
    kernel's reply centred on 28 brings 27, and the step to 27 then copies."""
    page = page20
    page.evaluate(f"""async () => {{ const m = window.spinalModel;
        m.set('_spectra_header', {{ ...m.get('_spectra_header'), layer: 29, span: [28, 30] }});
        m.set('_lens_header', {{ ...m.get('_lens_header'), layer: 29, span: [28, 30] }});
        m.set('layer', 29); await {AFTER_FRAME};
        m.set('layer', 28); await {AFTER_FRAME}; await {AFTER_FRAME}; }}""")
    drawn(page, 28)
    assert page.evaluate(STATE)["ahead"] != "27"  # (the preparation after the step's frame has run by now)
    page.evaluate("""() => { const m = window.spinalModel;
        m.set('_spectra_header', { ...m.get('_spectra_header'), layer: 28, span: [27, 29] });
        m.set('_spectra', m.get('_spectra').slice()); }""")
    page.wait_for_function("() => document.querySelector('.spn-spectrum').dataset.ahead === '27'")
    copies = page.evaluate(STATE)["copies"]
    page.evaluate("() => window.spinalModel.set('layer', 27)")
    drawn(page, 27)
    assert page.evaluate(STATE)["copies"] == copies + 1
