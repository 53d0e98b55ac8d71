"""`pytest --strict-skips` (what `make test` and CI run) fails on a skip not listed in ALLOWED_SKIPS, and only then."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tree(tmp: Path, skip_in: str) -> Path:
    """A throw-away test tree with the project's conftest, one passing test and one test skipping in `skip_in`."""
    (tmp / "tests" / "capture").mkdir(parents=True)
    (tmp / "tests" / "ui").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp / "tests" / "conftest.py")
    (tmp / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    (tmp / "tests" / "ui" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    (tmp / skip_in).write_text("import pytest\n\n@pytest.mark.skip(reason='chromium is not installed')\n"
                               "def test_skipped():\n    pass\n")
    return tmp


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def test_an_unlisted_skip_fails_the_strict_run(tmp_path):
    folder = _tree(tmp_path, "tests/ui/test_browser.py")
    strict = _run(folder, "--strict-skips")
    assert strict.returncode == 1, strict.stdout
    assert "tests/ui/test_browser.py::test_skipped: chromium is not installed" in strict.stdout
    assert _run(folder).returncode == 0  # without the flag a skip stays a skip


def test_a_listed_skip_passes_the_strict_run(tmp_path):
    folder = _tree(tmp_path, "tests/capture/test_cuda.py")
    strict = _run(folder, "--strict-skips")
    assert strict.returncode == 0, strict.stdout
    assert "1 passed, 1 skipped" in strict.stdout


def test_a_module_level_skip_counts_too(tmp_path):
    folder = _tree(tmp_path, "tests/ui/test_browser.py")
    (folder / "tests" / "ui" / "test_browser.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_anywhere')\n\ndef test_x():\n    pass\n")
    strict = _run(folder, "--strict-skips")
    assert strict.returncode == 1 and "tests/ui/test_browser.py" in strict.stdout, strict.stdout
