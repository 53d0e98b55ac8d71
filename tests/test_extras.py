"""Optional extras announce themselves before any work (issue 20): one line naming the extra and its pip command,
exit status 2, nothing created; an optional part (the demo's PNGs) is left out with one line saying so."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from spinal_nb import cli, extras
from spinal_nb.errors import ExtraMissingError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def without(monkeypatch):
    """Make an extra look uninstalled: its import names replaced by one that exists nowhere."""
    def hide(name: str) -> None:
        e = extras.EXTRAS[name]
        monkeypatch.setitem(extras.EXTRAS, name, extras.Extra(e.name, ("no_such_module_spinal_x",), e.adds, e.without))
    return hide


def test_every_extra_of_pyproject_is_described_and_its_modules_are_its_packages():
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.EXTRAS) == set(optional) - {"test"}
    for name, e in extras.EXTRAS.items():
        assert extras.present(name), f"the test environment has every extra; {name} lacks {extras.missing(name)}"
        dists = " ".join(optional[name]).lower().replace("-", "_")
        for module in e.modules:  # vl_convert <- vl-convert-python, jupyterlab <- jupyterlab, ...
            assert module.split(".")[0] in dists, (name, module, dists)


def test_require_is_one_line_with_the_pip_command(without):
    extras.require("export", "PNG charts")  # present: nothing happens
    without("export")
    with pytest.raises(ExtraMissingError) as e:
        extras.require("export", "PNG charts")
    msg = str(e.value)
    assert "\n" not in msg and "'export' extra" in msg and "pip install 'spinal-nb[export]'" in msg
    assert extras.skipped_note("export", "PNG charts").startswith("PNG charts skipped: the 'export' extra")
    assert extras.skipped_note("ui", "x") is None


def test_demo_notebook_without_jupyterlab_refuses_and_creates_nothing(without, tmp_path, capsys):
    without("ui")
    out = tmp_path / "nb"
    code = cli.main(["demo", "--notebook", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'spinal-nb[ui]'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_readme_table_is_the_extras_table():
    """README's table extra -> what it adds -> what happens without it says what spinal_nb.extras does."""
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `[")]
    assert rows == [f"| `[{e.name}]` | {e.adds} | {e.without} |" for e in extras.EXTRAS.values()]


def test_smollm2_without_the_real_extra_says_which(tmp_path):
    """`spinal demo --smollm2` refuses at once when gguf/accelerate are missing (hidden here in a child process:
    importlib.util.find_spec does not see them)."""
    code = ("import importlib.util, sys\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name.split('.')[0] in ('gguf', 'accelerate') "
            "else real(name, *a)\n"
            "from spinal_nb.cli import main\n"
            f"sys.exit(main(['demo', '--smollm2', '--out', {str(tmp_path / 'out')!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "pip install 'spinal-nb[real]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
