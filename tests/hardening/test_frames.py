"""Hardening: malformed frames, corrupt or foreign Parquet, mixing traces that do not compare (docs/hardening.md §2)."""
import json

import polars as pl
import pytest
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace
from spinal_nb.errors import FrameError
from spinal_nb.frame import TraceFrame, read_parquet
from spinal_nb.frame.schema import REQUIRED
from spinal_nb.synthetic import synthetic_trace


@pytest.fixture(scope="module")
def frame():
    return synthetic_trace("base", n_layers=6, n_prompts=12, tokens_per_prompt=10, seed=3)


@pytest.fixture(scope="module")
def good_file(frame, tmp_path_factory):
    return frame.to_parquet(tmp_path_factory.mktemp("good") / "good.parquet")


# -- corrupt and foreign files ------------------------------------------------------------------------------------
def test_every_truncation_of_a_trace_file_is_refused_or_exact(good_file, frame, tmp_path):
    raw = good_file.read_bytes()
    cuts = sorted({0, 1, 4, 8, len(raw) // 3, len(raw) // 2, len(raw) - 9, len(raw) - 8, len(raw) - 1})
    for n in cuts:
        p = tmp_path / f"cut{n}.parquet"
        p.write_bytes(raw[:n])
        with pytest.raises(FrameError):
            read_parquet(p)
    assert read_parquet(good_file) == frame


def test_flipped_bytes_never_load_as_a_different_valid_frame(good_file, frame, tmp_path):
    raw = bytearray(good_file.read_bytes())
    for i in range(0, len(raw), max(1, len(raw) // 40)):
        bad = bytearray(raw)
        bad[i] ^= 0xFF
        p = tmp_path / "flip.parquet"
        p.write_bytes(bytes(bad))
        try:
            back = read_parquet(p)
        except FrameError:
            continue
        # Parquet has no checksum by default: a flip in a value can survive. It must then still be a valid frame
        # with the same shape and metadata, never a raw exception or a different schema.
        assert back.data.columns == frame.data.columns and back.data.height == frame.data.height
        assert back.meta == frame.meta


@pytest.mark.parametrize("content", [b"", b"PAR1", b"not parquet at all\n" * 20, b"PAR1" + b"\0" * 100 + b"PAR1",
                                     json.dumps({"checkpoint": "x"}).encode()])
def test_garbage_files_are_frame_errors(tmp_path, content):
    p = tmp_path / "g.parquet"
    p.write_bytes(content)
    with pytest.raises(FrameError):
        read_parquet(p)


def test_foreign_and_tampered_parquet(tmp_path, frame, good_file):
    foreign = tmp_path / "foreign.parquet"
    pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}).write_parquet(foreign)
    with pytest.raises(FrameError, match="not a spinal-nb trace"):
        read_parquet(foreign)

    meta = pl.read_parquet_metadata(good_file)
    assert "spinal_nb.sha256" in meta
    p = tmp_path / "t.parquet"
    frame.data.write_parquet(p, metadata={**meta, "spinal_nb.meta": meta["spinal_nb.meta"].replace('"', '"', 1) + " "})
    with pytest.raises(FrameError, match="checksum"):  # any edit of a checksummed file is caught first ...
        read_parquet(p)
    meta = {k: v for k, v in meta.items() if k != "spinal_nb.sha256"}  # ... the structure checks below guard files
    # without one (written before the checksum existed, or by hand)

    def write(data, **kv):
        p = tmp_path / "t.parquet"
        data.write_parquet(p, metadata={**meta, **kv})
        return p

    with pytest.raises(FrameError, match="format"):
        read_parquet(write(frame.data, **{"spinal_nb.format": "99"}))
    with pytest.raises(FrameError, match="corrupt spinal-nb metadata"):
        read_parquet(write(frame.data, **{"spinal_nb.meta": "{not json"}))
    with pytest.raises(FrameError, match="corrupt spinal-nb metadata"):
        read_parquet(write(frame.data, **{"spinal_nb.lens": "[1, 2"}))
    with pytest.raises(FrameError, match="missing required column"):
        read_parquet(write(frame.data.drop("transport")))
    with pytest.raises(FrameError, match="Unknown column"):
        read_parquet(write(frame.data.with_columns(pl.lit(1).alias("contractoin"))))
    with pytest.raises(FrameError, match="wrong type|cannot be read"):
        read_parquet(write(frame.data.with_columns(pl.col("layer").cast(pl.String) + "x")))
    with pytest.raises(FrameError, match="Duplicate"):
        read_parquet(write(pl.concat([frame.data, frame.data.head(1)])))
    with pytest.raises(FrameError, match="at least one row"):
        read_parquet(write(frame.data.head(0)))


def test_paths_that_are_not_files(tmp_path):
    with pytest.raises(FrameError, match="No such file"):
        read_parquet(tmp_path / "absent.parquet")
    with pytest.raises(FrameError):
        read_parquet(tmp_path)  # a directory


GOOD_CHECKPOINT = {"model": "m", "n_layers": 6, "d_model": 8, "extra": {}}


def _hand_edited(path):
    """The file's metadata minus its checksum: what a hand-edited (or pre-checksum) file carries."""
    return {k: v for k, v in pl.read_parquet_metadata(path).items() if k != "spinal_nb.sha256"}


@pytest.mark.parametrize("meta,says", [
    ("[1, 2, 3]", "must be a JSON object"),
    ('"str"', "must be a JSON object"),
    ("null", "must be a JSON object"),
    ('{"spinal_nb": 3}', "version"),
    ('{"checkpoints": 5}', "'checkpoints'"),
    ('{"checkpoints": [["base", {}]]}', "'checkpoints'"),
    ('{"checkpoints": {"base": 5}}', r"checkpoints\['base'\] must be a dict"),
    ('{"checkpoints": {"base": {"n_layers": "six"}}}', r"\['n_layers'\] must be int"),
    ('{"checkpoints": {"base": {"n_prompts": true}}}', r"\['n_prompts'\] must be int"),
    ('{"checkpoints": {"base": {"model": ["m"]}}}', r"\['model'\] must be str"),
    ('{"checkpoints": {"base": {"extra": "x"}}}', r"\['extra'\] must be dict"),
    ('{"checkpoints": {"base": {"params": {"bogus": 1}}}}', "not valid SPINAL parameters"),
    ('{"params": {"bogus": 1}}', "not valid SPINAL parameters.*bogus"),
    ('{"params": {"n_groups": 1}}', "not valid SPINAL parameters"),
    ('{"params": {"window": 0.5}}', "not valid SPINAL parameters"),
    ('{"params": [1, 2]}', "must be a dict of SPINAL parameters"),
    ('{"mixed_params": "yes"}', "mixed_params"),
])
def test_metadata_with_the_wrong_structure_is_a_frame_error(tmp_path, frame, good_file, meta, says):
    kv = _hand_edited(good_file)
    p = tmp_path / "t.parquet"
    frame.data.write_parquet(p, metadata={**kv, "spinal_nb.meta": meta})
    with pytest.raises(FrameError, match="corrupt spinal-nb metadata.*" + says):
        read_parquet(p)


def test_metadata_with_extra_keys_and_nulls_still_loads(tmp_path, frame, good_file):
    """The checks refuse wrong structure only: extra keys (e.g. the monitor's) and nulls are fine."""
    meta = {**frame.meta, "monitor": {"events": []}, "checkpoints": {
        "base": {**GOOD_CHECKPOINT, "revision": None, "own_key": [1, "x"]}}}
    kv = _hand_edited(good_file)
    p = tmp_path / "t.parquet"
    frame.data.write_parquet(p, metadata={**kv, "spinal_nb.meta": json.dumps(meta)})
    assert read_parquet(p).meta == meta


def test_to_parquet_fsyncs_the_temp_file_before_the_rename(tmp_path, frame, monkeypatch):
    import os

    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", str(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = frame.to_parquet(tmp_path / "t.parquet")
    monkeypatch.undo()
    kinds = [c[0] for c in calls]
    assert kinds.index("fsync") < kinds.index("replace")
    tmp = calls[kinds.index("replace")][1]
    assert ".t.parquet." in tmp and tmp.endswith(".tmp")
    if os.path.exists("/proc/self/fd"):
        assert calls[kinds.index("fsync")][1] == tmp  # the temp file itself is synced, before it becomes the file
    assert read_parquet(path) == frame


@pytest.mark.parametrize("fail_at", ["write_parquet", "fsync", "replace"])
def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, frame, monkeypatch, fail_at):
    import os

    other = synthetic_trace("other", n_layers=6, n_prompts=12, tokens_per_prompt=10, seed=4)
    path = frame.to_parquet(tmp_path / "t.parquet")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    if fail_at == "write_parquet":
        monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
    else:
        monkeypatch.setattr(os, fail_at, boom)
    with pytest.raises(OSError, match="No space"):
        other.to_parquet(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
    assert read_parquet(path) == frame


# -- frames built by hand -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("col", REQUIRED)
def test_each_missing_required_column_is_named(frame, col):
    with pytest.raises(FrameError, match=col):
        TraceFrame(frame.data.drop(col), frame.meta)


def test_not_a_dataframe_and_null_checkpoints(frame):
    with pytest.raises(FrameError, match="polars DataFrame"):
        TraceFrame(frame.data.to_pandas() if hasattr(frame.data, "to_pandas") else {}, frame.meta)
    with pytest.raises(FrameError, match="checkpoint name"):
        TraceFrame(frame.data.with_columns(pl.lit(None, pl.String).alias("checkpoint")), frame.meta)


# -- traces that do not compare -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_pair():
    tok, prompts = make_tokenizer(), make_prompts(16, seed=21)
    a = trace(make_model("llama", seed=1), prompts, tokenizer=tok, checkpoint="a", progress=False)
    b = trace(make_model("llama", seed=2), prompts, tokenizer=tok, checkpoint="b", progress=False)
    b_groups = trace(make_model("llama", seed=2), prompts, tokenizer=tok, checkpoint="b5", n_groups=5,
                     progress=False)
    import transformers as T

    deep_cfg = T.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    deep = trace(T.LlamaForCausalLM(deep_cfg).eval(), prompts, tokenizer=tok, checkpoint="deep", progress=False)
    return a, b, b_groups, deep


def test_traces_with_different_parameters_refuse_to_combine(real_pair):
    a, _, b5, _ = real_pair
    with pytest.raises(FrameError, match="n_groups"):
        TraceFrame.concat([a, b5])
    with pytest.raises(FrameError, match="different parameters"):
        a + b5
    forced = TraceFrame.concat([a, b5], force=True)
    assert forced.meta.get("mixed_params") and "different parameters" in repr(forced)


def test_different_depths_compare_only_on_depth(real_pair):
    a, b, _, deep = real_pair
    both = TraceFrame.concat([a, deep])
    with pytest.raises(FrameError, match="on='depth'"):
        both.compare("a", "deep")
    cmp = both.compare("a", "deep", on="depth")
    assert cmp.layers.height == a.data.height and not cmp.summary["paired"]
    ok = TraceFrame.concat([a, b]).compare("a", "b")
    assert ok.summary["paired"]  # same prompts, same groups: paired intervals


def test_unknown_checkpoint_and_duplicate_names(real_pair):
    a, b, _, _ = real_pair
    both = TraceFrame.concat([a, b])
    with pytest.raises(FrameError, match="No checkpoint"):
        both.compare("a", "c")
    with pytest.raises(FrameError, match="rename"):
        TraceFrame.concat([a, a])
    with pytest.raises(FrameError, match="on must be"):
        both.compare("a", "b", on="tokens")
    with pytest.raises(FrameError, match="terminal_depth"):
        both.compare("a", "b", terminal_depth=1.5)
