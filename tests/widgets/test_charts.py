"""Altair charts of a TraceFrame: the same data as the frame, the user's words on the axes, offline PNG/SVG export."""
import json

import numpy as np
import pytest

from spinal_nb.errors import InputError
from spinal_nb.widgets import chart


def _datasets(spec: dict) -> list[list[dict]]:
    return list(spec.get("datasets", {}).values())


def _axis_titles(spec) -> set[str]:
    out = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("x", "y") and isinstance(v, dict) and isinstance(v.get("title"), str):
                    out.add(v["title"])
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(spec)
    return out


def test_path_chart_holds_the_frames_values(frame3):
    spec = chart(frame3, kind="path").to_dict()
    rows = max(_datasets(spec), key=len)
    assert len(rows) == frame3.data.height
    got = {(r["checkpoint"], r["layer"]): (r["contraction"], r["transport"]) for r in rows}
    for r in frame3.data.iter_rows(named=True):
        a, t = got[(r["checkpoint"], r["layer"])]
        assert a == pytest.approx(r["contraction"])
        assert (t is None and r["transport"] is None) or t == pytest.approx(r["transport"])
    assert {"contraction α (spectral tail exponent)", "transport 𝓛 (Fisher–Rao step)"} <= _axis_titles(spec)


@pytest.mark.parametrize("kind, title", [("contraction", "contraction α (spectral tail exponent)"),
                                         ("transport", "transport 𝓛 (Fisher–Rao step)"),
                                         ("entropy", "lens entropy (nats)")])
def test_depth_charts_have_the_window_band_and_words(frame3, kind, title):
    spec = chart(frame3, kind=kind, terminal_depth=0.7).to_dict()
    assert {title, "depth (layer ℓ / L)"} <= _axis_titles(spec)
    assert any(r.get("start") == 0.7 and r.get("end") == 1.0 for d in _datasets(spec) for r in d)


def test_delta_chart_is_the_comparison(frame3):
    spec = chart(frame3, kind="delta", reference="base", candidate="dpo").to_dict()
    comp = frame3.compare("base", "dpo")
    rows = [r for d in _datasets(spec) for r in d if r.get("score", "").startswith("Δα")]
    got = {r["layer"]: r["delta"] for r in rows}
    for layer, d in zip(comp.layers["layer"], comp.layers["d_contraction"], strict=True):
        assert got[layer] == pytest.approx(d)
    assert "onset" in json.dumps(spec["title"])


def test_spectrum_chart_draws_each_fit_with_slope_minus_alpha(frame3):
    spec = chart(frame3, kind="spectrum", layer=20).to_dict()
    fits = [r for d in _datasets(spec) for r in d if "alpha" in r]
    assert {r["checkpoint"] for r in fits} == set(frame3.checkpoints)
    for name in frame3.checkpoints:
        (k0, s0), (k1, s1) = [(r["rank"], r["sigma"]) for r in fits if r["checkpoint"] == name]
        alpha = frame3.checkpoint(name).filter(layer=20)["contraction"][0]
        assert -np.log(s1 / s0) / np.log(k1 / k0) == pytest.approx(alpha)


def test_many_checkpoints_use_a_sequential_scale_over_steps(frame_steps):
    spec = chart(frame_steps, kind="contraction").to_dict()
    assert '"scheme": "viridis"' in json.dumps(spec) and "training step" in json.dumps(spec)


def test_bad_kind_and_missing_spectra(frame3):
    with pytest.raises(InputError, match="kind must be one of"):
        chart(frame3, kind="heatmap")
    from support import make_frame
    with pytest.raises(InputError, match="did not keep spectra"):
        chart(make_frame(2, 8, spectra=False), kind="spectrum")


def test_export_png_and_svg_offline(frame3, tmp_path):
    pytest.importorskip("vl_convert", reason="vl-convert-python (the export extra) is not installed")
    c = chart(frame3, kind="path")
    c.save(tmp_path / "path.svg")
    c.save(tmp_path / "path.png", scale_factor=2)
    svg = (tmp_path / "path.svg").read_text()
    assert svg.lstrip().startswith("<svg") and "contraction α (spectral tail exponent)" in svg
    png = (tmp_path / "path.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    chart(frame3, kind="delta").save(tmp_path / "delta.svg")
    assert "depth (layer ℓ / L)" in (tmp_path / "delta.svg").read_text()
