"""Lens-table token labels: pieces of multi-byte characters never show as U+FFFD (a byte-level BPE tokenizer trained
here, with too few merges to hold an emoji or "ü" as one token)."""
from __future__ import annotations

import re

import pytest
import transformers as T
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from spinal_nb.capture.lens_table import TokenLabels

TEXT = "Grüße aus Köln — 🙂 café, naïve 東京"


@pytest.fixture(scope="module")
def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<unk>"])
    tok.train_from_iterator(["the cat sat on the mat and the dog ran after it"] * 50, trainer)
    return T.PreTrainedTokenizerFast(tokenizer_object=tok)


ESCAPE = re.compile(r"^(\\x[0-9a-f]{2})+$")


def test_prompt_tokens_show_whole_characters_or_bytes(tokenizer):
    ids = tokenizer(TEXT)["input_ids"]
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # the case this is about does occur
    labels = TokenLabels(tokenizer).sequence(ids)
    assert len(labels) == len(ids) and not any("\ufffd" in s for s in labels)
    # the labels of tokens that complete text, in order, spell the prompt; the others are their own bytes, escaped
    complete = [s for s in labels if not ESCAPE.match(s)]
    assert "".join(complete) == tokenizer.decode(ids) == TEXT
    for s, i in zip(labels, ids, strict=True):
        if ESCAPE.match(s):
            raw = bytes(int(h, 16) for h in s.split("\\x")[1:])
            assert tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(i)]) == raw.decode(
                "utf-8", errors="replace")
    assert "🙂" in labels and "東" in "".join(labels)


def test_lone_tokens_show_their_bytes(tokenizer):
    labels = TokenLabels(tokenizer)
    emoji = tokenizer("🙂")["input_ids"]
    assert len(emoji) > 1
    singles = [labels.single(i) for i in emoji]
    assert all(ESCAPE.match(s) for s in singles)
    assert bytes(int(h, 16) for s in singles for h in s.split("\\x")[1:]) == "🙂".encode()
    the = tokenizer("the")["input_ids"]
    assert [labels.single(i) for i in the] == [tokenizer.decode([i]) for i in the]  # clean tokens are unchanged
