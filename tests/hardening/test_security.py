"""Hardening, security (docs/hardening.md §4): no unpickling of anything, weights-only torch.load, remote code off
unless asked, and every token / checkpoint string escaped in HTML. The source checks parse spinal_nb/ with `ast`
(comments and strings cannot fool them, and neither can line breaks inside a call)."""
import ast
import inspect
import pathlib

import polars as pl
import pytest

from spinal_nb.frame import TraceFrame
from spinal_nb.frame.schema import LENS_SCHEMA
from spinal_nb.synthetic import synthetic_trace

PKG = pathlib.Path(__file__).resolve().parents[2] / "spinal_nb"
SOURCES = sorted(PKG.rglob("*.py"))
EVIL = "</script><script>alert('x')</script><img src=x onerror=alert(1)>"
RAW_EVIL = ("<script>alert", "</script><script>", "<img src=x")  # an escaped "<" makes them inert
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


@pytest.fixture(scope="module")
def trees():
    assert len(SOURCES) > 10
    return {p.relative_to(PKG.parent).as_posix(): ast.parse(p.read_text(encoding="utf-8")) for p in SOURCES}


def test_no_pickle_module_is_imported(trees):
    bad = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{path}:{node.lineno} {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
    assert not bad


def test_torch_load_only_with_weights_only_true(trees):
    bad = []
    for path, tree in trees.items():
        for call in _calls(tree):
            if _name(call.func).endswith("torch.load"):
                v = _kw(call, "weights_only")
                if not (isinstance(v, ast.Constant) and v.value is True):
                    bad.append(f"{path}:{call.lineno}")
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_numpy_and_pandas_never_allow_pickle(trees):
    bad = []
    for path, tree in trees.items():
        for call in _calls(tree):
            name = _name(call.func)
            if name.endswith(("np.load", "numpy.load")):
                v = _kw(call, "allow_pickle")
                if v is not None and not (isinstance(v, ast.Constant) and v.value is False):
                    bad.append(f"{path}:{call.lineno} {name}")
            if name.endswith(("read_pickle", "to_pickle", "pickle.loads", "pickle.load")):
                bad.append(f"{path}:{call.lineno} {name}")
    assert not bad


def test_no_eval_exec_or_shell(trees):
    bad = []
    for path, tree in trees.items():
        for call in _calls(tree):
            name = _name(call.func)
            if name in ("eval", "exec", "os.system", "yaml.load"):
                bad.append(f"{path}:{call.lineno} {name}")
            v = _kw(call, "shell")
            if isinstance(v, ast.Constant) and v.value is True:
                bad.append(f"{path}:{call.lineno} shell=True")
    assert not bad


def test_trust_remote_code_is_never_on_by_default(trees):
    bad = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults \
                    + node.args.kw_defaults
                for a, d in zip(args, defaults, strict=True):
                    # a required argument (no default) is fine: the caller decides; a default must be False
                    if a.arg == "trust_remote_code" and d is not None and not (
                            isinstance(d, ast.Constant) and d.value is False):
                        bad.append(f"{path}:{node.lineno} def {node.name}: default {ast.unparse(d) if d else None}")
            if isinstance(node, ast.Call):
                v = _kw(node, "trust_remote_code")
                if isinstance(v, ast.Constant) and v.value is not False:
                    bad.append(f"{path}:{node.lineno} call with trust_remote_code={v.value!r}")
                # the CLI flag must be an opt-in switch
                if _name(node.func).endswith("add_argument") and any(
                        isinstance(a, ast.Constant) and a.value == "--trust-remote-code" for a in node.args):
                    action, default = _kw(node, "action"), _kw(node, "default")
                    if not (isinstance(action, ast.Constant) and action.value == "store_true") or default is not None \
                            and not (isinstance(default, ast.Constant) and default.value is False):
                        bad.append(f"{path}:{node.lineno} --trust-remote-code is not an off-by-default switch")
    assert not bad


def test_trace_passes_trust_remote_code_false_to_transformers(monkeypatch, tmp_path):
    import transformers

    from spinal_nb.capture import trace

    seen = []

    def spy(*a, **k):
        seen.append(k.get("trust_remote_code"))
        raise OSError("stop here")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    with pytest.raises(Exception, match="stop here"):
        trace(str(tmp_path), ["the old man"], progress=False)
    assert seen == [False]
    assert inspect.signature(trace).parameters["trust_remote_code"].default is False


def test_the_ast_checks_can_fail():
    # each check above flags a planted violation (so a silent pass means the tree is clean, not the check broken)
    planted = ast.parse("import pickle\ntorch.load(f)\nnp.load(f, allow_pickle=True)\n"
                        "def f(trust_remote_code=True): pass\neval('1')\n")
    for check in (test_no_pickle_module_is_imported, test_torch_load_only_with_weights_only_true,
                  test_numpy_and_pandas_never_allow_pickle, test_no_eval_exec_or_shell,
                  test_trust_remote_code_is_never_on_by_default):
        with pytest.raises(AssertionError):
            check({"planted.py": planted})


# -- HTML escaping ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evil_frame():
    a = synthetic_trace(EVIL, n_layers=4, n_prompts=12, tokens_per_prompt=10, seed=1)
    b = synthetic_trace("dpo" + EVIL, n_layers=4, n_prompts=12, tokens_per_prompt=10, seed=1,
                        alpha=lambda d: 0.9)
    tf = TraceFrame.concat([a, b])
    lens = pl.DataFrame({"checkpoint": [EVIL] * 2, "prompt_index": [0, 0], "prompt": [EVIL, EVIL],
                         "position": [1, 1], "token": [EVIL, "&<>\"'"], "layer": [2, 2], "rank": [1, 2],
                         "token_id": [5, 9], "lens_token": [EVIL, "<b>"], "prob": [0.7, 0.1]}, schema=LENS_SCHEMA)
    return TraceFrame(tf.data, tf.meta, lens)


def _assert_escaped(page: str):
    for raw in RAW_EVIL:
        assert raw not in page, raw


def test_frame_and_comparison_html_escape_every_name(evil_frame):
    _assert_escaped(evil_frame._repr_html_())
    _assert_escaped(evil_frame.compare(EVIL, "dpo" + EVIL)._repr_html_())


def test_html_report_escapes_tokens_and_names(evil_frame, tmp_path):
    from spinal_nb.widgets import report

    try:
        page = report(evil_frame, reference=EVIL)
    except (FileNotFoundError, ImportError, ModuleNotFoundError) as e:  # widgets' built JS not in this tree yet
        pytest.skip(f"HTML export not available yet: {e}")
    assert len(page) > 1000
    _assert_escaped(page)
