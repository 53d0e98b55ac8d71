"""TraceFrame: schema, validation, combining, display."""

import numpy as np
import polars as pl
import pytest

from spinal_nb import FrameError, SpinalParams, TraceFrame
from spinal_nb.synthetic import synthetic_trace


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


@pytest.mark.parametrize("tokens, caution", [(8, True), (24, False)])
def test_sample_size_is_the_scored_positions_over_the_width(tokens, caution):
    """A trace through the real accumulators: N = prompts × positions, d from the metadata (48), caution below 4."""
    tf = synthetic_trace("m", n_layers=2, d=48, n_prompts=12, tokens_per_prompt=tokens)
    n = 12 * tokens
    assert tf.sample_size("m") == {"n": n, "n_max": n, "d": 48, "n_per_d": n / 48, "caution": caution}
    line = repr(tf).splitlines()[2].split()
    assert line[:4] == ["m", "2", f"{n:,}", f"{n / 48:.2f}"] and (line[4] == "!") is caution
    assert ("N/d < 4" in repr(tf)) is caution and ("N/d &lt; 4" in tf._repr_html_()) is caution
