"""Fixtures of the CLI and magics tests: tiny saved checkpoints and a prompts file."""
from __future__ import annotations

import pytest
from support import make_llama, prompt_lines, save


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Two saved checkpoints of the same architecture (different weights) and a three-layer one."""
    root = tmp_path_factory.mktemp("models")
    return {"base": save(root / "base", make_llama(0)), "dpo": save(root / "dpo", make_llama(1)),
            "deep": save(root / "deep", make_llama(2, n_layers=3))}


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("\n".join(prompt_lines()) + "\n\n")  # trailing blank lines are skipped
    return path
