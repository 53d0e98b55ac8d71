"""The trace file format (spinal_nb.frame.parquet): exact round trips, atomic writes, corrupt and foreign files
refused, files without a checksum, and files written by spinal-nb 0.1.0 (whose parameters say `window` for today's
`tail_window`) that still load, combine with new traces and compare."""
from __future__ import annotations

import json

import polars as pl
import pytest

from spinal_nb import FrameError, SpinalParams, TraceFrame, read_parquet
from spinal_nb.frame.parquet import DIGEST_KEY, META_KEY, _content_digest
from spinal_nb.frame.schema import LENS_SCHEMA
from spinal_nb.synthetic import synthetic_trace


def lens_table():
    return pl.DataFrame({"checkpoint": ["base"] * 2, "prompt_index": [0, 0], "prompt": ["a <b>", "a <b>"],
                         "position": [1, 1], "token": ["<b>", "<b>"], "layer": [3, 3], "rank": [0, 1],
                         "token_id": [5, 9], "lens_token": ["<img src=x onerror=alert(1)>", "é"], "prob": [0.7, 0.1]},
                        schema=LENS_SCHEMA)

def test_parquet_round_trip_is_exact(tmp_path, pair):
    base, dpo = pair
    tf = TraceFrame(TraceFrame.concat([base, dpo]).data, TraceFrame.concat([base, dpo]).meta, lens_table())
    tf.meta["checkpoints"]["base"]["extra"] = {"pref_acc": [0.33, 0.94], "note": "ünïcode"}
    path = tf.to_parquet(tmp_path / "t.parquet")
    back = read_parquet(path)
    assert back == tf
    assert back.data.equals(tf.data, null_equal=True)
    assert back.meta == tf.meta and back.lens.equals(tf.lens)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind

def test_interrupted_write_never_leaves_a_valid_but_wrong_file(tmp_path, pair, monkeypatch):
    base, dpo = pair
    path = base.to_parquet(tmp_path / "t.parquet")

    def broken(self, file, **kw):
        with open(file, "wb") as f:
            f.write(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(KeyboardInterrupt):
        dpo.to_parquet(path)
    monkeypatch.undo()
    assert read_parquet(path) == base  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]

def test_corrupt_foreign_and_malformed_files(tmp_path, pair):
    base, _ = pair
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(FrameError, match="not a readable Parquet"):
        read_parquet(bad)
    foreign = tmp_path / "foreign.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(foreign)
    with pytest.raises(FrameError, match="not a spinal-nb trace"):
        read_parquet(foreign)
    good = base.to_parquet(tmp_path / "good.parquet")
    truncated = tmp_path / "trunc.parquet"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(FrameError):
        read_parquet(truncated)
    with pytest.raises(FrameError, match="No such file"):
        read_parquet(tmp_path / "missing.parquet")
    # a spinal-nb file with a column dropped
    df = base.data.drop("transport")
    df.write_parquet(tmp_path / "dropped.parquet", metadata={"spinal_nb.meta": json.dumps(base.meta),
                                                             "spinal_nb.format": "1"})
    with pytest.raises(FrameError, match="missing required column"):
        read_parquet(tmp_path / "dropped.parquet")

def test_corrupted_bytes_never_load_as_a_different_trace(tmp_path, pair):
    """Random byte flips and truncations: each read is a FrameError or the original frame, never another one and
    never a raw error from the Parquet reader (a Rust panic in polars is a BaseException, not an Exception)."""
    import random

    base, _ = pair
    src = base.to_parquet(tmp_path / "a.parquet").read_bytes()
    rng, outcomes = random.Random(0), {"error": 0, "same": 0}
    for i in range(300):
        b = bytearray(src)
        if i % 2:
            b = b[:rng.randrange(len(b))]
        else:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        (tmp_path / "c.parquet").write_bytes(bytes(b))
        try:
            got = read_parquet(tmp_path / "c.parquet")
        except FrameError:
            outcomes["error"] += 1
            continue
        assert got == base, f"corruption {i} loaded as a different trace"
        outcomes["same"] += 1
    assert outcomes["error"] > 250  # the corruptions really hit

def test_files_without_a_checksum_still_load(tmp_path, pair):
    """Traces written before the content checksum existed carry no digest: they load unchanged."""
    import polars as pl

    from spinal_nb.frame.parquet import DIGEST_KEY

    base, _ = pair
    p = base.to_parquet(tmp_path / "a.parquet")
    kv = pl.read_parquet_metadata(p)
    assert DIGEST_KEY in kv
    legacy = tmp_path / "legacy.parquet"
    pl.read_parquet(p).write_parquet(legacy, metadata={k: v for k, v in kv.items()
                                                       if k.startswith("spinal_nb.") and k != DIGEST_KEY})
    assert read_parquet(legacy) == base
    tampered = tmp_path / "tampered.parquet"
    pl.read_parquet(p).with_columns(pl.col("contraction") * 1.01).write_parquet(
        tampered, metadata={k: v for k, v in kv.items() if k.startswith("spinal_nb.")})
    with pytest.raises(FrameError, match="checksum"):
        read_parquet(tampered)


def as_written_by_0_1_0(frame: TraceFrame, path):
    """`frame` saved the way spinal-nb 0.1.0 wrote it: parameters under their old names, digest over that metadata."""
    new = frame.to_parquet(path.with_name("new-" + path.name))
    kv = pl.read_parquet_metadata(new)
    meta = json.loads(kv[META_KEY])

    def old(p):
        p = dict(p)
        p["window"] = p.pop("tail_window")
        return p

    meta["params"] = old(meta["params"])
    for info in meta["checkpoints"].values():
        info["params"] = old(info["params"])
    kv[META_KEY] = json.dumps(meta, sort_keys=True)
    data = pl.read_parquet(new)
    kv[DIGEST_KEY] = _content_digest(data, kv)
    data.write_parquet(path, metadata=kv)
    return path


@pytest.fixture(scope="module")
def frames():
    params = SpinalParams(tail_window=(0.2, 0.8))
    return (synthetic_trace("old", n_layers=4, n_prompts=12, params=params),
            synthetic_trace("new", n_layers=4, n_prompts=12, params=params, alpha=lambda d: 0.7 + 0.3 * d))


def test_a_file_with_the_old_parameter_names_loads_under_the_new_ones(tmp_path, frames):
    old, _ = frames
    path = as_written_by_0_1_0(old, tmp_path / "old.parquet")
    assert '"window"' in pl.read_parquet_metadata(path)[META_KEY]  # the file really says `window`
    back = read_parquet(path)
    assert back.params == SpinalParams(tail_window=(0.2, 0.8))
    assert back.meta["checkpoints"]["old"]["params"]["tail_window"] == [0.2, 0.8]
    assert back == old


def test_an_old_file_combines_and_compares_with_a_new_trace(tmp_path, frames):
    old, new = frames
    both = read_parquet(as_written_by_0_1_0(old, tmp_path / "old.parquet")) + new
    assert both.meta.get("mixed_params") is None and both.params.tail_window == (0.2, 0.8)
    assert both.compare("old", "new").summary == (old + new).compare("old", "new").summary


def test_old_parameter_names_map_in_from_dict_too():
    assert SpinalParams.from_dict({"window": [0.3, 0.7]}).tail_window == (0.3, 0.7)
    assert SpinalParams.upgrade({"skip_first": 2}) == {"skip_first": 2, "lens_metrics": True}  # + added since
