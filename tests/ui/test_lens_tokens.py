"""Lens chips when the checkpoints of one dashboard tokenize a prompt differently (different tokenizers), in a real
browser (static export): each tokenization keeps its own row of chips, and a position picked in one row shows, for
the other tokenizer's checkpoints, the position that ends the same text prefix (or says there is none).

Before, the chips of all checkpoints were merged by position (the first checkpoint's token at each position), and
each checkpoint's lens column was taken at the same position number, i.e. after a different prefix.
"""
from __future__ import annotations

import polars as pl
import pytest

from spinal_nb.frame import TraceFrame
from tests.widgets.conftest import make_frame

pytestmark = pytest.mark.ui

TEXT = "The capital of France is"
TOKENS = {"gpt-style": ["The", " capital", " of", " France", " is"],
          "llama-style": ["<s>", "The", " cap", "ital", " of", " Fr", "ance", " is"]}


def lens_frame() -> TraceFrame:
    frame = make_frame(2, 6, names=list(TOKENS))
    rows = []
    for name, toks in TOKENS.items():
        for pos, tok in enumerate(toks):
            for layer in range(7):
                for rank in (1, 2):
                    # the predicted token names its checkpoint and position: what a column shows tells where it was taken
                    rows.append({"checkpoint": name, "prompt_index": 0, "prompt": TEXT, "position": pos, "token": tok,
                                 "layer": layer, "rank": rank, "token_id": rank,
                                 "lens_token": f"{name[0]}{pos}-{rank}", "prob": 0.5 / rank})
    return TraceFrame(frame.data, frame.meta, pl.DataFrame(rows))


ROWS = """() => [...document.querySelectorAll('.spn-lens .spn-tokens')].map((row) =>
  [...row.querySelectorAll('.spn-token')].map((b) => b.textContent))"""
COLUMNS = """() => Object.fromEntries([...document.querySelectorAll('.spn-lens-col')].map((c) =>
  [c.querySelector('.spn-lens-head').textContent.trim(),
   [...c.querySelectorAll('.spn-lens-tok')].map((t) => t.textContent).concat(
     [...c.querySelectorAll('.spn-lens-none')].map((t) => 'none'))]))"""


def test_each_tokenization_keeps_its_chips_and_positions_align_by_text(browser, artifacts):
    from spinal_nb.widgets import show

    path = show(lens_frame()).to_html(artifacts / "lens-tokenizers.html")
    page = browser.new_page(viewport={"width": 1300, "height": 1300})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(".spn-lens .spn-token", timeout=30_000)
        assert page.evaluate(ROWS) == [TOKENS["gpt-style"], TOKENS["llama-style"]]
        # the last token of the first row: " is" ends the prompt in both tokenizations
        assert page.evaluate(COLUMNS) == {"gpt-style": ["g4-1", "g4-2"], "llama-style": ["l7-1", "l7-2"]}
        row0 = page.locator(".spn-lens .spn-tokens").nth(0)
        row1 = page.locator(".spn-lens .spn-tokens").nth(1)
        row0.locator(".spn-token", has_text="France").click()  # "The capital of France": " Fr"+"ance" in the other
        page.wait_for_function("() => document.querySelector('.spn-lens-col .spn-lens-tok').textContent === 'g3-1'")
        assert page.evaluate(COLUMNS) == {"gpt-style": ["g3-1", "g3-2"], "llama-style": ["l6-1", "l6-2"]}
        assert row1.locator(".spn-token.spn-aligned").inner_text() == "ance"
        row1.locator(".spn-token", has_text="cap").click()  # "The cap": no token of the other ends there
        page.wait_for_function("() => document.querySelector('.spn-lens-col .spn-lens-none') !== null")
        assert page.evaluate(COLUMNS) == {"gpt-style": ["none"], "llama-style": ["l2-1", "l2-2"]}
        page.locator(".spn-lens").screenshot(path=str(artifacts / "lens-tokenizers.png"))
        assert not errors, errors
    finally:
        page.close()


def test_non_ascii_tokens_reach_the_page_intact(browser, artifacts):
    """The front end shows token strings as Python sent them (JSON strings, never decoded from bytes in the
    browser): "—", "ü", an emoji and a combining accent arrive as themselves. A "\ufffd" chip therefore comes from
    the tracer's decoding of single token ids, not from the widget."""
    from spinal_nb.widgets import show

    frame = make_frame(1, 3, names=["base"])
    toks = ["Gr", "üße", " —", " 🙂", " cafe\u0301", " \ufffd"]
    rows = [{"checkpoint": "base", "prompt_index": 0, "prompt": "Grüße — 🙂 café", "position": pos, "token": tok,
             "layer": layer, "rank": 1, "token_id": 1, "lens_token": tok[::-1], "prob": 0.5}
            for pos, tok in enumerate(toks) for layer in range(4)]
    path = show(TraceFrame(frame.data, frame.meta, pl.DataFrame(rows))).to_html(artifacts / "lens-unicode.html")
    page = browser.new_page(viewport={"width": 1300, "height": 1300})
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(".spn-lens .spn-token", timeout=30_000)
        assert page.evaluate(ROWS) == [toks]
        for pos, tok in enumerate(toks):
            page.locator(f'.spn-token[data-position="{pos}"]').click()
            page.wait_for_function("(t) => document.querySelector('.spn-lens-tok').textContent === t", arg=tok[::-1])
    finally:
        page.close()
