"""to_html: one self-contained file (bundle inlined, data embedded, nothing fetched) whose state is the widget's."""
import base64
import json
import re

import numpy as np
from support import XSS

from spinal_nb.widgets import Dashboard, DepthPathView
from spinal_nb.widgets._base import STATIC
from spinal_nb.widgets._payload import unpack


def _script(page: str, ident: str):
    m = re.search(rf'<script type="application/json" id="{ident}">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_html_is_self_contained_and_carries_the_state(frame3, tmp_path):
    view = Dashboard(frame3, layer=12, title="audit")
    path = view.to_html(tmp_path / "out" / "audit.html")
    page = path.read_text(encoding="utf-8")
    assert "<script src" not in page and "<link" not in page
    urls = set(re.findall(r"https?://[^\s\"'`)<\\]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert _script(page, "spinal-esm") == (STATIC / "dashboard.js").read_text(encoding="utf-8")
    state = _script(page, "spinal-state")
    assert state["_static"] is True and state["layer"] == 12 and state["title"] == "audit"
    t = unpack(state["_header"], base64.b64decode(state["_data"]))
    np.testing.assert_array_equal(t["contraction"], unpack(view._header, view._data)["contraction"])
    # every layer's detail is embedded (the page cannot ask Python for it)
    sp = unpack(state["_spectra_header"], base64.b64decode(state["_spectra"]))
    assert state["_spectra_header"]["layer"] is None and (sp["count"] > 0).all()
    assert state["_lens_header"]["n"] == frame3.lens.height


def test_untrusted_tokens_cannot_break_out_of_the_page(frame3, tmp_path):
    page = DepthPathView(frame3).to_html(tmp_path / "x.html").read_text(encoding="utf-8")
    assert XSS not in page and "<img" not in page  # every "<" inside the embedded JSON is \u003c
    assert page.count("</script>") == 3
    state = _script(page, "spinal-state")
    assert XSS in state["_lens_header"]["strings"]  # ...and decodes back to the literal token


def test_the_demo_page_names_its_evidence_in_words(tmp_path):
    from spinal_nb.widgets.html import PairSection, audit_page, evidence_label

    evidence = {"unseen_words.pref_acc_before": 0.47, "unseen_words.pref_acc_after": 0.97,
                "neutral.kl_per_token": 0.249, "seen_words.mystery": 1.0}
    section = PairSection("lab", "Lab pair", {"status": "reversed", "key": "reversed", "text": "t"}, "repr", evidence,
                          [], "<p>dashboard</p>")
    page = audit_page(created="now", n_prompts=3, prompts="prompts", notes=[], pairs=[section], printed="",
                      timings={})
    assert "unseen_words.pref_acc_before" not in page and "neutral.kl_per_token" not in page
    assert "held-out pairs, unseen words: preference accuracy, base</td><td>0.47" in page
    assert "neutral text: KL(DPO ‖ base), nats per token</td><td>0.249" in page
    assert evidence_label("seen_words.mystery") == "held-out pairs, training words: mystery"  # unknown: kept
