import json

import numpy as np
import polars as pl
import pytest

from spinal_nb import FrameError, SpinalParams, TraceFrame, compare, read_parquet
from spinal_nb.frame.schema import LENS_SCHEMA
from spinal_nb.synthetic import synthetic_trace


@pytest.fixture(scope="module")
def pair():
    base = synthetic_trace("base", n_layers=20, n_prompts=30, alpha=lambda d: 0.6, step=lambda d: 0.3, seed=1)
    dpo = synthetic_trace("dpo", n_layers=20, n_prompts=30, seed=1,
                          alpha=lambda d: 0.6 + (0.4 if d >= 0.75 else 0.0),
                          step=lambda d: 0.3 - (0.15 if d >= 0.75 else 0.0))
    return base, dpo


def lens_table():
    return pl.DataFrame({"checkpoint": ["base"] * 2, "prompt_index": [0, 0], "prompt": ["a <b>", "a <b>"],
                         "position": [1, 1], "token": ["<b>", "<b>"], "layer": [3, 3], "rank": [0, 1],
                         "token_id": [5, 9], "lens_token": ["<img src=x onerror=alert(1)>", "é"], "prob": [0.7, 0.1]},
                        schema=LENS_SCHEMA)


def test_schema_and_columns(pair):
    base, _ = pair
    assert base.checkpoints == ["base"] and base.n_layers() == 20
    assert base.data.get_column("layer").to_list() == list(range(21))
    assert base.data.get_column("transport").to_list()[-1] is None  # no step out of the last layer
    assert base.data.get_column("depth").to_list()[10] == pytest.approx(0.5)
    row = base.data.row(5, named=True)
    assert row["contraction_lo"] < row["contraction"] < row["contraction_hi"]
    assert len(row["contraction_jk"]) == 10 and len(row["spectrum"]) > 0
    assert row["n_tokens"] == 30 * 24


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


def test_unknown_and_missing_columns(pair):
    base, _ = pair
    with pytest.raises(FrameError, match="did you mean 'contraction'"):
        TraceFrame(base.data.rename({"contraction": "contractoin"}))
    with pytest.raises(FrameError, match="Unknown column 'entropyy'"):
        base.column("entropyy")
    with pytest.raises(FrameError, match="No checkpoint"):
        base.checkpoint("nope")
    with pytest.raises(FrameError, match="at least one row"):
        TraceFrame(base.data.head(0))
    with pytest.raises(FrameError, match="Duplicate"):
        TraceFrame(pl.concat([base.data, base.data.head(1)]))
    with pytest.raises(FrameError):
        TraceFrame(base.data.with_columns(pl.lit("x").alias("layer")))


def test_concat_refuses_mixed_parameters_unless_forced(pair):
    base, dpo = pair
    other = synthetic_trace("other", n_layers=20, n_prompts=12, params=SpinalParams(skip_first=0))
    with pytest.raises(FrameError, match="different parameters.*skip_first"):
        TraceFrame.concat([base, other])
    forced = TraceFrame.concat([base, other], force=True)
    assert forced.meta["mixed_params"] and forced.params is None and forced.checkpoints == ["base", "other"]
    with pytest.raises(FrameError, match="appear in more than one"):
        TraceFrame.concat([base, base])
    with pytest.raises(FrameError):
        TraceFrame.concat([])
    both = base + dpo
    assert both.checkpoints == ["base", "dpo"] and both.params == SpinalParams()


def test_compare_finds_planted_late_change(pair):
    base, dpo = pair
    c = compare(base, dpo)
    s = c.summary
    assert s["paired"] is True
    assert s["window_layers"] == list(range(14, 21))
    assert s["onset_layer"] == 15 and s["onset_depth"] == pytest.approx(0.75)
    assert s["localization"]["contraction"] == pytest.approx(1.0)
    assert s["localization"]["transport"] > 0.95
    wa, wt = s["window_contraction"], s["window_transport"]
    assert wa["lo"] > 0 and wt["hi"] < 0  # α rises, 𝓛 falls, both beyond their intervals
    d = c.layers
    early = d.filter(pl.col("layer") < 15)
    assert early.get_column("d_contraction").abs().max() < 1e-12  # same prompts, same draws: nothing changed
    assert "onset" in repr(c) and "layer 15" in repr(c)
    # reversed roles flip the sign
    r = compare(dpo, base).summary
    assert r["window_contraction"]["mean"] == pytest.approx(-wa["mean"])


def test_unpaired_compare_is_wider_than_paired(pair):
    base, dpo = pair
    unpaired_dpo = TraceFrame(dpo.data, {**dpo.meta, "checkpoints": {"dpo": {**dpo.meta["checkpoints"]["dpo"],
                                                                               "prompts_sha256": "other"}}})
    p = compare(base, dpo).summary["window_contraction"]
    u = compare(base, unpaired_dpo).summary
    assert u["paired"] is False
    uw = u["window_contraction"]
    assert uw["mean"] == pytest.approx(p["mean"])
    assert (uw["hi"] - uw["lo"]) > (p["hi"] - p["lo"])


def test_compare_warns_when_token_counts_differ(pair):
    base, dpo = pair
    assert compare(base, dpo).summary["warnings"] == []  # same prompts: no caveat
    fewer = synthetic_trace("fewer", n_layers=20, n_prompts=30, tokens_per_prompt=1, seed=1, alpha=lambda d: 0.6)
    c = (base + fewer).compare("base", "fewer")
    n_base, n_fewer = (int(f.data.get_column("n_tokens")[0]) for f in (base, fewer))
    assert n_fewer < 48 < n_base  # d = 48: the short trace's rank is its N - 1
    (w,) = c.summary["warnings"]
    assert f"N = {n_base:,}" in w and f"N = {n_fewer:,}" in w and "rank is N − 1" in w
    assert "warning: α depends on the number of scored positions" in repr(c)


def test_compare_mismatched_depths(pair):
    base, _ = pair
    shallow = synthetic_trace("shallow", n_layers=10, n_prompts=30, seed=1, alpha=lambda d: 0.6)
    both = base + shallow
    with pytest.raises(FrameError, match="on='depth'"):
        both.compare("base", "shallow")
    c = both.compare("base", "shallow", on="depth")
    assert c.layers.height == 21 and c.summary["paired"] is False
    # at depths both share (every other base layer) the delta is the plain difference of values
    b = base.data.filter(pl.col("layer") == 10).get_column("contraction").item()
    s = shallow.data.filter(pl.col("layer") == 5).get_column("contraction").item()
    assert c.layers.filter(pl.col("layer") == 10).get_column("d_contraction").item() == pytest.approx(s - b)


def test_repr_and_html_escape_names(pair):
    base, _ = pair
    evil = base.rename({"base": "<script>alert(1)</script>"})
    assert "<script>" not in evil._repr_html_() and "&lt;script&gt;" in evil._repr_html_()
    assert "base" in repr(base) and "α" in repr(base)


def test_null_contraction_keeps_reason():
    tiny = synthetic_trace("tiny", n_layers=3, n_prompts=2, tokens_per_prompt=4, d=32)
    row = tiny.data.row(0, named=True)
    assert row["contraction"] is None and "trace more tokens" in row["contraction_reason"]
    assert np.isfinite(row["transport"])


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
