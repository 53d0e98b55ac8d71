"""A different-depth pair in a real browser (the static `spinal report` page, the same render() as in a notebook): the
compare panel says "interpolated on depth" and shows the verdict, the table never shows a per-index Δ for it, and N
and N/d (with the caution) stand under each checkpoint's name — without widening the table past its box."""
from __future__ import annotations

import pytest

from spinal_nb.frame import TraceFrame
from tests.widgets.conftest import make_frame

pytestmark = pytest.mark.ui


def test_a_different_depth_pair_in_the_report_page(browser, artifacts):
    from spinal_nb.widgets import show
    from spinal_nb.widgets.dashboard import report

    frame = TraceFrame.concat([make_frame(1, 30, names=["deep"]),
                               make_frame(1, 4, names=["shallow"], seed=5, effects=[0.0])])
    frame.meta["checkpoints"]["deep"]["d_model"] = 512
    frame.meta["checkpoints"]["shallow"]["d_model"] = 2048  # N/d = 2
    verdict = show(frame, reference="deep")._summaries["shallow"]["verdict"]["text"]
    path = report(frame, artifacts / "depth-pair.html", reference="deep")
    page = browser.new_page(viewport={"width": 800, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.as_uri())
        # the candidate selected by default is the last checkpoint: the shallow one
        page.wait_for_function("() => document.querySelector('.spn-summary .spn-verdict') !== null", timeout=30_000)
        assert page.locator(".spn-summary .spn-verdict").inner_text() == verdict
        assert "interpolated on depth" in page.locator(".spn-summary .spn-interp").inner_text()
        caution = page.locator(".spn-summary .spn-caution").inner_text()
        assert "shallow: N 4,096 · N/d 2.0" in caution and "docs/method.md" in caution
        # the Δ curve is drawn on the reference's 31 depths (the interpolated comparison), not on 5 shallow layers
        d = page.locator(".spn-summary .spn-delta-line").first.get_attribute("d")
        assert d.count("L") + d.count("M") == 31
        # at a layer both have: the shallow row shows its own values, and no Δ against the deep model's layer 3
        page.evaluate("() => window.spinalModel.set('layer', 3)")
        page.wait_for_function("() => document.querySelector('.spn-scrubber').dataset.layer === '3'")
        row = page.locator(".spn-table tr", has=page.locator(".spn-name-text", has_text="shallow"))
        assert row.locator("td.spn-muted").all_inner_texts() == ["on depth", "on depth"]
        assert row.locator(".spn-sample.spn-caution").inner_text() == "⚠ N 4,096 · N/d 2.0"
        ref_row = page.locator(".spn-table tr", has=page.locator(".spn-name-text", has_text="deep"))
        assert ref_row.locator(".spn-sample").inner_text() == "N 4,096 · N/d 8.0"
        # a layer step moves the Δ charts' layer rule to the shallow candidate's layer depth (k / 4 on the [0, 1]
        # axis from x = 52 to width - 10), in place: the on-depth curve is not drawn again
        rule_x = ("() => [...document.querySelectorAll('.spn-summary svg.spn-delta')].map((svg) => {"
                  " const w = +svg.getAttribute('width'); const r = svg.querySelector('.spn-layer-rule');"
                  " return [w, r.getAttribute('visibility'), +r.getAttribute('x1'), +r.getAttribute('x2')]; })")
        for w, vis, x1, x2 in page.evaluate(rule_x):
            assert vis is None and x1 == x2 == pytest.approx(52 + 0.75 * (w - 62))
        page.evaluate("() => { document.querySelector('.spn-summary .spn-delta-line').dataset.kept = 'yes'; }")
        page.evaluate("() => window.spinalModel.set('layer', 1)")
        page.wait_for_function("() => document.querySelector('.spn-scrubber').dataset.layer === '1'")
        for w, vis, x1, x2 in page.evaluate(rule_x):
            assert vis is None and x1 == x2 == pytest.approx(52 + 0.25 * (w - 62))
        assert page.locator(".spn-summary .spn-delta-line[data-kept='yes']").count() == 1
        page.evaluate("() => window.spinalModel.set('layer', 3)")
        page.wait_for_function("() => document.querySelector('.spn-scrubber').dataset.layer === '3'")
        wrap = page.evaluate("() => { const w = document.querySelector('.spn-table-wrap');"
                             " return w.scrollWidth - w.clientWidth; }")
        assert wrap <= 0, f"the table scrolls sideways by {wrap} px at 800 px"
        assert not errors, errors
    finally:
        page.close()
