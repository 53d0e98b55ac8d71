"""The examples in the package's docstrings are true: each module's doctests run (the ones that need checkpoints, a
notebook or files on disk are marked +SKIP or written as plain usage blocks)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import spinal_nb

MODULES = sorted(m.name for m in pkgutil.walk_packages(spinal_nb.__path__, "spinal_nb."))


def test_the_walk_finds_the_modules_with_examples():
    # a walk that silently found nothing would make every case below vacuous
    assert {"spinal_nb.scores.transport", "spinal_nb.frame.traceframe", "spinal_nb.scores.tail"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    for test in finder.find(module, name):
        result = runner.run(test, out=failures.append)
        assert result.failed == 0, "".join(failures)
