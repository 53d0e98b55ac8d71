"""Preference pairs: deterministic, real Brown prompts, chosen/rejected differ only in the sentiment word."""
from __future__ import annotations

import pytest

from spinal_nb.data import brown
from spinal_nb.errors import InputError
from spinal_nb.lab import preferences as prefs


def test_word_lists_split_into_seen_and_unseen():
    for seen, unseen, full in ((prefs.POSITIVE_SEEN, prefs.POSITIVE_UNSEEN, prefs.POSITIVE),
                               (prefs.NEGATIVE_SEEN, prefs.NEGATIVE_UNSEEN, prefs.NEGATIVE)):
        assert len(unseen) == prefs.N_HELD_OUT_WORDS and not set(seen) & set(unseen)
        assert set(seen) | set(unseen) == set(full) and len(set(full)) == 30
    assert not set(prefs.POSITIVE) & set(prefs.NEGATIVE)


def test_pairs_are_deterministic_and_well_formed(brown_tgz):
    sents = brown.split("dpo", brown.read_brown(brown_tgz))
    a = prefs.make_pairs(sents, 300, prefs.POSITIVE_SEEN, prefs.NEGATIVE_SEEN, seed=3)
    assert a == prefs.make_pairs(sents, 300, prefs.POSITIVE_SEEN, prefs.NEGATIVE_SEEN, seed=3)
    assert a != prefs.make_pairs(sents, 300, prefs.POSITIVE_SEEN, prefs.NEGATIVE_SEEN, seed=4)
    cuts = {brown.detokenize(list(s.words[:k])) for s in sents for k in range(5, 11)}
    for p in a:
        assert p.prompt in cuts  # the first 5–10 words of a real sentence of the dpo documents
        matches = [(t, w, v) for t in prefs.TEMPLATES for w in prefs.POSITIVE_SEEN for v in prefs.NEGATIVE_SEEN
                   if p.chosen == t.format(w=w) and p.rejected == t.format(w=v)]
        assert len(matches) == 1
    assert len({p.prompt for p in a}) > 290  # distinct sentences while enough remain


def test_bad_requests():
    with pytest.raises(InputError):
        prefs.make_pairs([], 3, ["good"], ["bad"])
    with pytest.raises(InputError):
        prefs.make_pairs([brown.Sentence("a b", ("a", "b"), "g", "d", 0)], 0, ["good"], ["bad"])
