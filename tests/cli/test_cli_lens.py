"""`spinal trace --lens FILE`: the tuned lens from a file reaches the trace, is recorded, and a file traced under
another lens is not appended to."""
from __future__ import annotations

import torch
from support import prompt_lines

from spinal_nb import cli
from spinal_nb.capture import TunedLens, trace
from spinal_nb.frame import TraceFrame

SCORES = ["transport", "transport_lo", "transport_hi", "entropy", "entropy_lo", "entropy_hi"]


def _lens(model_dir, seed=0):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ident = TunedLens.identity(model)
    g = torch.Generator().manual_seed(seed)
    return TunedLens(0.1 * torch.randn(ident.weight.shape, generator=g),
                     0.1 * torch.randn(ident.bias.shape, generator=g), ident.facts)


def test_trace_with_a_lens_file_equals_the_python_api(tiny_models, prompts_file, tmp_path, capsys):
    lens = _lens(tiny_models["base"])
    path = lens.save(tmp_path / "base.lens.safetensors")
    out = tmp_path / "t.parquet"
    argv = ["trace", tiny_models["base"], "--prompts", prompts_file, "--out", out, "--no-progress", "--n-groups", 3,
            "--lens", path]
    assert cli.main([str(a) for a in argv]) == 0
    frame = TraceFrame.read_parquet(out)
    assert frame.params.lens == lens.tag
    ref = trace(tiny_models["base"], prompt_lines(), n_groups=3, lens=lens, progress=False)
    assert frame.data.select(SCORES).equals(ref.data.select(SCORES), null_equal=True)
    plain = trace(tiny_models["base"], prompt_lines(), n_groups=3, progress=False)
    assert not frame.data["entropy"].equals(plain.data["entropy"])
    # appending a logit-lens trace to the tuned-lens file is refused before tracing
    argv2 = ["trace", tiny_models["dpo"], "--prompts", prompts_file, "--out", out, "--no-progress", "--n-groups", 3,
             "--checkpoint", "dpo", "--append"]
    capsys.readouterr()
    assert cli.main([str(a) for a in argv2]) == 2
    err = capsys.readouterr().err
    assert "other SPINAL parameters" in err and "lens" in err and lens.tag in err
    # a lens for another model (three layers) is refused
    deep = _lens(tiny_models["deep"]).save(tmp_path / "deep.lens.safetensors")
    argv3 = ["trace", tiny_models["base"], "--prompts", prompts_file, "--out", tmp_path / "x.parquet", "--no-progress",
             "--n-groups", 3, "--lens", deep]
    assert cli.main([str(a) for a in argv3]) == 2
    assert "fitted for another model" in capsys.readouterr().err
