"""NDIF traffic: bytes per selected token that one remote batch sends back, before and after the lighter wire format.

The batch runs through capture.batch.capture_remote with remote="local" (nnsight's offline simulation of the NDIF
request: serialize → deserialize → run), and what the server would send back is measured as NDIF does it:
torch.save of the saved values, then zstd (nnsight's CONFIG.API.COMPRESS, on by default; the server's zstd level is
not in the client, so level 3, zstd's default, is assumed). "before" is the previous wire format rebuilt from the
same values (one tensor per layer in the model's dtype, steps and entropies in float64; its bits are exactly what
the old path returned); "after" is the byte-plane format (batch.unpack_wire rebuilds the same bits). Also shown:
the float32 rows that issue 15 counted. Models: 'tiny' (4 blocks, d = 128), 'shape576' (SmolLM2's shape, 30 blocks,
d = 576, seeded random weights), 'smollm2' (the real SmolLM2-135M-Instruct, offline), each in float32 and
bfloat16 (what NDIF serves). The 8B line is computed from d and L, with smollm2-bf16's measured zstd ratio.

    python benchmarks/ndif_bytes.py               # ~2 min on 2 cores: 3 models x 2 dtypes, one batch of 16 prompts
    python benchmarks/ndif_bytes.py --models tiny --prompts 8
"""
from __future__ import annotations

import argparse
import io
import json

import torch
import zstandard
from _bench import load_model, machine, pin_threads, real_prompts

from spinal_nb.capture.architectures import resolve_architecture
from spinal_nb.capture.batch import capture_remote
from spinal_nb.capture.load import forward_kwargs, pad_id
from spinal_nb.capture.positions import make_batch
from spinal_nb.params import SpinalParams


def nbytes(obj) -> tuple[int, int]:
    buf = io.BytesIO()
    torch.save(obj, buf)
    raw = buf.getvalue()
    return len(raw), len(zstandard.ZstdCompressor(level=3).compress(raw))


def measure(name: str, dtype: torch.dtype, n_prompts: int) -> dict:
    import nnsight

    model, tok = load_model(name)
    model = model.to(dtype)
    arch, params = resolve_architecture(model), SpinalParams()
    texts = real_prompts(n_prompts)
    ids = [tok(t)["input_ids"] for t in texts]
    batch = make_batch(ids, list(range(len(ids))), pad_id=pad_id(tok), skip_first=params.skip_first,
                       stride=params.position_stride, n_groups=params.n_groups)
    nn_model = nnsight.TransformersModel(model, tokenizer=tok)
    captured = {}
    import spinal_nb.capture.batch as b
    unpack = b.unpack_wire
    b.unpack_wire = lambda wire: captured.setdefault("wire", wire) and unpack(wire)
    try:
        with torch.no_grad():
            rows, steps, ents, _ = capture_remote(nn_model, arch, batch, forward_kwargs(model), params, "local")
    finally:
        b.unpack_wire = unpack
    n = batch.n_selected
    before = nbytes({"rows": rows, "steps": steps, "ents": ents})
    after = nbytes(captured["wire"])
    f32 = nbytes({"rows": [r.float() for r in rows]})
    return {"model": name, "dtype": str(dtype).removeprefix("torch."), "layers": len(rows), "d": rows[0].shape[1],
            "tokens": n, "f32_rows_per_token": round(f32[0] / n), "before_raw": round(before[0] / n),
            "before_zstd": round(before[1] / n), "after_raw": round(after[0] / n), "after_zstd": round(after[1] / n),
            "cut": round(1 - after[1] / before[1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tiny,shape576,smollm2")
    ap.add_argument("--prompts", type=int, default=16)
    a = ap.parse_args()
    pin_threads(2)
    out = [measure(m, dt, a.prompts) for m in a.models.split(",") for dt in (torch.float32, torch.bfloat16)]
    ref = next((r for r in out if r["model"] == "smollm2" and r["dtype"] == "bfloat16"), out[-1])
    per_tok = 33 * 4096 * 2  # an 8B shape served in bfloat16: 33 states of d = 4096 per token, 2 bytes each
    ratio_before, ratio_after = ref["before_zstd"] / ref["before_raw"], ref["after_zstd"] / ref["after_raw"]
    out.append({"model": "8B shape (computed)", "dtype": "bfloat16", "layers": 33, "d": 4096,
                "f32_rows_per_token": 2 * per_tok, "before_raw": per_tok, "before_zstd": round(per_tok * ratio_before),
                "after_zstd": round(per_tok * ratio_after), "per_1024_tokens_MB_before": round(
                    per_tok * ratio_before * 1024 / 1e6), "per_1024_tokens_MB_after": round(
                    per_tok * ratio_after * 1024 / 1e6), "ratio_from": f"{ref['model']} {ref['dtype']}"})
    print(json.dumps({"machine": machine(), "results": out}, indent=1))


if __name__ == "__main__":
    main()
