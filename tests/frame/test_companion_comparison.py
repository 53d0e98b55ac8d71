"""compare() on the companion metrics: paired Δ per layer with the delete-a-group jackknife interval (recomputed here
from the frame's replicates), a window mean, and no say in the verdict (it is the same without them)."""
import numpy as np
import polars as pl
import pytest
from scipy import stats
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace
from spinal_nb.frame import TraceFrame
from spinal_nb.frame.comparison import COMPANIONS

G = 5


@pytest.fixture(scope="module")
def pair():
    tok, prompts = make_tokenizer(), make_prompts(20, seed=8)
    a = trace(make_model("llama", seed=0), prompts, tokenizer=tok, checkpoint="a", batch_size=10, progress=False,
              n_groups=G)
    b = trace(make_model("llama", seed=1), prompts, tokenizer=tok, checkpoint="b", batch_size=10, progress=False,
              n_groups=G)
    return TraceFrame.concat([a, b])


def test_companion_deltas_are_paired_with_jackknife_intervals(pair):
    cmp = pair.compare("a", "b", terminal_depth=0.5)  # layers 1-2 of 0-2: the window holds a layer that moves
    assert cmp.summary["paired"]
    a, b = pair.checkpoint("a"), pair.checkpoint("b")
    t = stats.t.ppf(0.975, G - 1)
    for name in COMPANIONS:
        est = b[name].to_numpy() - a[name].to_numpy()
        np.testing.assert_allclose(cmp.layers[f"d_{name}"].to_numpy(), est, rtol=1e-12, atol=1e-15)
        d = np.array(b[f"{name}_jk"].to_list()) - np.array(a[f"{name}_jk"].to_list())
        se = np.sqrt((G - 1) / G * ((d - d.mean(1, keepdims=True)) ** 2).sum(1))
        lo, hi = cmp.layers[f"d_{name}_lo"].to_numpy(), cmp.layers[f"d_{name}_hi"].to_numpy()
        moving = se > 0  # the last layer's KL (0) and agreement (1) do not move
        assert moving.sum() >= 2
        np.testing.assert_allclose(lo[moving], (est - t * se)[moving], rtol=1e-9)
        np.testing.assert_allclose(hi[moving], (est + t * se)[moving], rtol=1e-9)
        band_lo = cmp.layers[f"d_{name}_band_lo"].to_numpy()
        assert np.all(band_lo[moving] <= lo[moving] + 1e-12)  # the band is at least as wide as the pointwise one
        window = cmp.summary["companions"][name]["window"]
        inside = a["depth"].to_numpy() >= cmp.summary["terminal_depth"]
        assert window["mean"] == pytest.approx(est[inside].mean(), rel=1e-12)
        assert window["lo"] < window["mean"] < window["hi"]
    assert "effective_rank" in repr(cmp) and "not part of the verdict" in repr(cmp)


def test_the_verdict_ignores_the_companions(pair):
    with_them = pair.compare("a", "b")
    dropped = pair.data.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in COMPANIONS)
    without = TraceFrame(dropped.drop([f"{c}_jk" for c in COMPANIONS]), pair.meta).compare("a", "b")
    assert with_them.summary["verdict"] == without.summary["verdict"]
    assert with_them.verdict() == without.verdict()
    assert without.layers["d_kl_to_final"].null_count() == without.layers.height  # absent: null, not 0
    assert without.summary["companions"]["kl_to_final"]["window"]["mean"] is None


def as_written_before_the_companions(frame: TraceFrame, path):
    """`frame` saved as spinal-nb wrote it before the companion metrics: no such columns, no `lens_metrics`."""
    import json

    from spinal_nb.frame.parquet import DIGEST_KEY, META_KEY, _content_digest

    new = frame.to_parquet(path.with_name("new-" + path.name))
    kv = pl.read_parquet_metadata(new)
    meta = json.loads(kv[META_KEY])
    for p in [meta["params"], *(info["params"] for info in meta["checkpoints"].values())]:
        del p["lens_metrics"]
    kv[META_KEY] = json.dumps(meta, sort_keys=True)
    data = pl.read_parquet(new).drop([f"{c}{s}" for c in COMPANIONS for s in ("", "_lo", "_hi", "_jk")])
    kv[DIGEST_KEY] = _content_digest(data, kv)
    data.write_parquet(path, metadata=kv)
    return path


def test_an_old_file_without_the_companions_reads_combines_and_compares(pair, tmp_path):
    from spinal_nb.frame import read_parquet

    old = read_parquet(as_written_before_the_companions(pair.select(["a"]), tmp_path / "old.parquet"))
    assert old.data["kl_to_final"].null_count() == old.data.height
    assert old.data["effective_rank_jk"].to_list() == [[]] * old.data.height
    assert old.params == pair.params  # lens_metrics read at its default: the old file combines with new traces
    both = old + pair.select(["b"])
    assert both.meta.get("mixed_params") is None
    cmp = both.compare("a", "b")
    assert cmp.summary["companions"]["effective_rank"]["window"]["mean"] is None
    full = pair.compare("a", "b")
    for key in ("window_contraction", "window_transport", "verdict"):
        assert cmp.summary[key] == full.summary[key]
