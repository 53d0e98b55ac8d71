"""The trace file format (spinal_nb.frame.parquet): files written by spinal-nb 0.1.0, whose parameters say `window`
for today's `tail_window`, still load, combine with new traces and compare."""
from __future__ import annotations

import json

import polars as pl
import pytest

from spinal_nb import SpinalParams, TraceFrame, read_parquet
from spinal_nb.frame.parquet import DIGEST_KEY, META_KEY, _content_digest
from spinal_nb.synthetic import synthetic_trace


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
    assert SpinalParams.upgrade({"skip_first": 2}) == {"skip_first": 2}
