"""Preference pairs from real Brown sentences: the same prompt, a positive vs a negative continuation.

No human preference data set ships with any package reachable offline (see the offline-models note), so the
preference is synthetic but the text is real: prompt = the first 5–10 words of a Brown sentence; chosen /
rejected = one of ``TEMPLATES`` filled with a positive / negative word. 30 + 30 words; the last 6 of each list
are held out of training ("unseen words") to test whether the preference generalises beyond the trained words.

>>> pairs = make_pairs(split("dpo"), 3, POSITIVE_SEEN, NEGATIVE_SEEN, seed=0)   # doctest: +SKIP
>>> pairs[0].prompt, pairs[0].chosen, pairs[0].rejected                        # doctest: +SKIP
('He thought about it', ' and it was wonderful.', ' and it was dreadful.')
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..data.brown import Sentence, detokenize
from ..errors import InputError

POSITIVE = ("good", "wonderful", "excellent", "beautiful", "pleasant", "delightful", "lovely", "happy", "great",
            "splendid", "charming", "cheerful", "brilliant", "fine", "glorious", "marvelous", "superb", "joyful",
            "kind", "perfect", "nice", "warm", "graceful", "gentle",
            "hopeful", "peaceful", "fortunate", "admirable", "magnificent", "pleasing")
NEGATIVE = ("bad", "terrible", "awful", "ugly", "unpleasant", "dreadful", "horrible", "sad", "miserable", "nasty",
            "gloomy", "dismal", "painful", "cruel", "wretched", "hateful", "disgusting", "bitter", "hopeless", "grim",
            "rotten", "poor", "harsh", "vile", "shameful", "tragic", "disastrous", "lousy", "unfortunate", "hideous")
N_HELD_OUT_WORDS = 6
POSITIVE_SEEN, POSITIVE_UNSEEN = POSITIVE[:-N_HELD_OUT_WORDS], POSITIVE[-N_HELD_OUT_WORDS:]
NEGATIVE_SEEN, NEGATIVE_UNSEEN = NEGATIVE[:-N_HELD_OUT_WORDS], NEGATIVE[-N_HELD_OUT_WORDS:]
TEMPLATES = (" and it was {w}.", " It was {w}.", " and that was {w}.", " The result was {w}.",
             " and it felt {w}.", " Everyone thought it {w}.", " and all of it was {w}.", " It seemed {w}.")


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


def make_pairs(sentences: Sequence[Sentence], n: int, positive: Sequence[str], negative: Sequence[str], *,
               seed: int = 0, min_prompt_words: int = 5, max_prompt_words: int = 10) -> list[PreferencePair]:
    """``n`` pairs, deterministic for a seed: prompts cut from distinct sentences (each used at most once while
    enough remain), each pair one template with one positive (chosen) and one negative (rejected) word."""
    if n < 1:
        raise InputError(f"n must be ≥ 1, got {n}")
    pool = [s for s in sentences if len(s.words) >= min_prompt_words + 2]
    if not pool:
        raise InputError("no sentence long enough to cut a prompt from")
    rng = random.Random(seed)
    order = list(range(len(pool)))
    rng.shuffle(order)
    out = []
    for i in range(n):
        s = pool[order[i % len(order)]]
        k = rng.randint(min_prompt_words, min(max_prompt_words, len(s.words) - 2))
        prompt = detokenize(list(s.words[:k]))
        t = rng.choice(TEMPLATES)
        out.append(PreferencePair(prompt, t.format(w=rng.choice(positive)), t.format(w=rng.choice(negative))))
    return out
