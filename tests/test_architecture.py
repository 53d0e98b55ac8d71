"""The architecture of docs/ARCHITECTURE.md, held against the code: imports follow the flow, modules stay small, and
every name the page documents exists.

Imports are read from the source (ast), at module level and inside functions, with `importlib.import_module("...")`
calls counted as imports too.
"""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spinal_nb"

# The flow, bottom to top (docs/ARCHITECTURE.md): a module imports only from lower layers or from its own unit (its
# subpackage, or itself); the entry points (top layer) may use each other.
LAYERS = [
    ("errors", ["spinal_nb._version", "spinal_nb.errors"]),
    ("params / io / data", ["spinal_nb.params", "spinal_nb.io", "spinal_nb.extras", "spinal_nb.progress",
                            "spinal_nb.data"]),
    ("scores", ["spinal_nb.scores"]),
    ("frame", ["spinal_nb.frame"]),
    ("capture / lab / synthetic", ["spinal_nb.capture", "spinal_nb.lab", "spinal_nb.synthetic"]),
    ("monitor", ["spinal_nb.monitor"]),  # traces with capture
    ("widgets", ["spinal_nb.widgets"]),  # read the monitor's training traces
    ("entry points", ["spinal_nb.cli", "spinal_nb.magics", "spinal_nb.demo", "spinal_nb.doctor", "spinal_nb"]),
]
TOP = len(LAYERS) - 1
# heavy optional dependencies that may be imported inside a function, so that `import spinal_nb` stays fast
HEAVY = {"torch", "nnsight", "transformers", "tokenizers", "altair", "vl_convert", "trl", "datasets", "accelerate",
         "gguf", "IPython", "anywidget", "ipywidgets", "huggingface_hub"}
# parts of spinal_nb that pull those in; the entry points load them on first use
HEAVY_PARTS = {"spinal_nb.capture", "spinal_nb.widgets", "spinal_nb.demo", "spinal_nb.magics", "spinal_nb.monitor",
               "spinal_nb.monitor.callback"}
MAX_LINES = 500


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def layer(name: str) -> tuple[int, str]:
    """(rank, unit) of a module: its layer and the prefix that makes it part of that layer."""
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (rank, p)
    if best is None:
        raise AssertionError(f"{name} is in no layer of tests/test_architecture.py: place it (and the docs)")
    return best


def imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            here = inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, here) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target in modules() and target + "." + child.names[0].name in modules():
                    found.extend((f"{target}.{a.name}", child.lineno, here) for a in child.names)  # from . import x
                else:
                    found.append((target, child.lineno, here))
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "import_module" and child.args
                  and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str)):
                found.append((child.args[0].value, child.lineno, True))
            visit(child, here)

    visit(tree, False)
    return found


def test_imports_follow_the_flow():
    """errors → params/io/data → scores → frame → capture/lab/synthetic → monitor → widgets → cli/magics/demo."""
    wrong = []
    for name, path in modules().items():
        rank, unit = layer(name)
        for target, line, _ in imports(name, path):
            if not target.startswith("spinal_nb"):
                continue
            t_rank, t_unit = layer(target)
            same_unit = unit == t_unit and unit != "spinal_nb"
            if not (t_rank < rank or same_unit or (rank == TOP and t_rank == TOP)):
                wrong.append(f"{path.relative_to(ROOT)}:{line} {name} ({LAYERS[rank][0]}) imports {target} "
                             f"({LAYERS[t_rank][0]})")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_imports_are_at_module_level_except_heavy_ones():
    """Inside a function only: heavy optional dependencies, and the parts that load them (from the entry points, or
    a package's own: monitor's SpinalCallback needs transformers)."""
    hidden = []
    for name, path in modules().items():
        rank, unit = layer(name)
        for target, line, inside in imports(name, path):
            if not inside:
                continue
            if target.split(".")[0] in HEAVY or (target in HEAVY_PARTS and (rank == TOP or layer(target)[1] == unit)):
                continue
            hidden.append(f"{path.relative_to(ROOT)}:{line} imports {target} inside a function")
    assert not hidden, "move these imports to the top of their module:\n" + "\n".join(hidden)


def test_the_checker_sees_a_wrong_import(tmp_path, monkeypatch):
    """The rule is not vacuous: a scores module importing the frame, even inside a function, is reported."""
    bad = tmp_path / "spinal_nb" / "scores" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from ..frame import TraceFrame\n    import polars\n")
    found = imports("spinal_nb.scores.bad", bad)
    assert found == [("spinal_nb.frame", 2, True), ("polars", 3, True)]
    assert layer(found[0][0])[0] > layer("spinal_nb.scores.bad")[0]


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules (more than {MAX_LINES} lines): {long}"


def _documented_names() -> list[str]:
    """Every `spinal_nb....` dotted name in docs/ARCHITECTURE.md (in backticks or in the tree and tables)."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"\bspinal_nb(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text)))


@pytest.mark.parametrize("dotted", _documented_names())
def test_every_name_architecture_md_documents_exists(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            assert hasattr(obj, attr), f"docs/ARCHITECTURE.md documents {dotted}, but {attr!r} does not exist"
            obj = getattr(obj, attr)
        return
    raise AssertionError(f"docs/ARCHITECTURE.md documents {dotted}, which is no module")


def test_architecture_md_documents_every_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(PACKAGE)) for n, p in modules().items()
               if p.name != "__init__.py" and p.name not in text]
    assert not missing, f"docs/ARCHITECTURE.md's tree lacks {missing}"


def test_scores_are_math_only():
    """spinal_nb.scores: arrays in, numbers out. No files, no nnsight, nothing of spinal_nb but errors and params."""
    allowed = {"__future__", "ctypes", "math", "time", "collections", "dataclasses", "typing", "numpy", "scipy",
               "torch", "spinal_nb.errors", "spinal_nb.params", "spinal_nb.scores",
               # scores.eigen: a thread pool for the eigen-solves, and numpy's own BLAS library found (os, glob) to cap
               # its threads per worker; no data file is read or written
               "concurrent.futures", "threading", "contextlib", "functools", "warnings", "threadpoolctl", "os", "glob"}
    found = []
    for name, path in modules().items():
        if name.startswith("spinal_nb.scores"):
            for target, line, _ in imports(name, path):
                if not any(target == a or target.startswith(a + ".") for a in allowed):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not found, "\n".join(found)
