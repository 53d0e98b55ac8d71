"""On a GPU, the trace equals the CPU trace (same model, same prompts): the scores accumulate in float64 wherever the
forward pass runs. Skipped on machines without CUDA (CI); run on a GPU machine with `python -m pytest tests/capture/test_cuda.py`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

COLUMNS = ("contraction", "contraction_lo", "contraction_hi", "transport", "transport_lo", "transport_hi", "entropy")


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "qwen2_moe"])
def test_cuda_trace_equals_cpu_trace(family):
    prompts, tok = make_prompts(40, seed=3), make_tokenizer()
    cpu = trace(make_model(family), prompts, tokenizer=tok, checkpoint=family, n_groups=5, progress=False)
    gpu = trace(make_model(family), prompts, tokenizer=tok, checkpoint=family, n_groups=5, progress=False,
                device="cuda")
    assert gpu.meta["checkpoints"][family]["device"].startswith("cuda")
    for col in COLUMNS:
        a = cpu.data.get_column(col).to_numpy().astype(float)
        b = gpu.data.get_column(col).to_numpy().astype(float)
        # float32 forward passes on two devices differ by kernel rounding only
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5, equal_nan=True, err_msg=f"{family}: {col}")
    assert cpu.data.get_column("n_tokens").to_list() == gpu.data.get_column("n_tokens").to_list()


def test_cuda_bfloat16_trace_is_finite_and_close():
    prompts, tok = make_prompts(40, seed=4), make_tokenizer()
    ref = trace(make_model("llama"), prompts, tokenizer=tok, checkpoint="m", n_groups=5, progress=False)
    bf = trace(make_model("llama"), prompts, tokenizer=tok, checkpoint="m", n_groups=5, progress=False,
               device="cuda", dtype=torch.bfloat16)
    a = bf.data.get_column("contraction").to_numpy().astype(float)
    assert np.isfinite(a).all()
    # bf16 weights and activations move the scores, but only by bf16 rounding (3 significant digits)
    np.testing.assert_allclose(a, ref.data.get_column("contraction").to_numpy().astype(float), rtol=0.05)
