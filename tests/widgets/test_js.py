"""The front end's pure-JS tests (js/test/*.test.js: scales, geometry, payload decoding, heatmap) run inside pytest.

`node --test js/test/` must pass; its TAP summary is parsed so that a run that executed no test also fails.
Skipped, with the reason, only when `node` is not installed (the bundles in spinal_nb/static need no node).
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "js"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed: the pure-JS tests (js/test) need node >= 18 "
                                         "(apt-get install -y nodejs)")
def test_node_unit_tests_pass():
    files = sorted(p.name for p in (JS / "test").glob("*.test.js"))
    assert files, "no js/test/*.test.js found"
    r = subprocess.run([NODE, "--test", *[f"test/{f}" for f in files]], cwd=JS, capture_output=True, text=True,
                       timeout=300)
    out = r.stdout + r.stderr
    counts = {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|cancelled) (\d+)$", out, re.M)}
    assert r.returncode == 0 and counts.get("fail", 1) == 0 and counts.get("cancelled", 0) == 0, \
        f"node --test failed ({counts}):\n{out[-6000:]}"
    assert counts.get("tests", 0) >= 15 and counts["pass"] == counts["tests"], out[-3000:]
