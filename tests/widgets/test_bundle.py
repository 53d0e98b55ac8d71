"""The built front end: current with its sources, free of CDN imports and HTML injection, shipped in the wheel."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"
STATIC = ROOT / "spinal_nb" / "static"
BUNDLES = ["depth_path.js", "layer_scrubber.js", "dashboard.js", "training.js", "spinal.css"]


def source_hash() -> str:
    """Same digest as js/build.mjs sourceHash(): sorted walk of js/src, then build.mjs and package.json."""
    def files(d: Path):
        for p in sorted(d.iterdir(), key=lambda p: p.name):
            yield from (files(p) if p.is_dir() else [p])
    h = hashlib.sha256()
    for p in [*files(JS / "src"), JS / "build.mjs", JS / "package.json"]:
        h.update(p.relative_to(JS).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def test_bundle_is_built_from_the_current_sources():
    info = json.loads((STATIC / "build-info.json").read_text())
    assert info["source_sha256"] == source_hash(), "js/src changed since the last build: run `cd js && npm run build`"
    for name in BUNDLES:
        assert (STATIC / name).stat().st_size > 1000, name


@pytest.mark.skipif(not (JS / "node_modules" / ".bin" / "esbuild").exists() or not shutil.which("node"),
                    reason="node and js/node_modules (cd js && npm ci) are needed to rebuild the bundle")
def test_rebuilding_gives_the_committed_bytes(tmp_path):
    subprocess.run(["node", "build.mjs", str(tmp_path)], cwd=JS, check=True, capture_output=True, timeout=120)
    for name in BUNDLES:
        assert (tmp_path / name).read_bytes() == (STATIC / name).read_bytes(), f"{name} is stale: npm run build"


@pytest.mark.parametrize("name", BUNDLES)
def test_no_network_and_no_html_parsing_in_the_bundle(name):
    text = (STATIC / name).read_text(encoding="utf-8")
    # the only URL allowed is the SVG namespace identifier (never fetched)
    urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"\bimport\s*[({*\"']|\bimport\s+\w|@import|url\((?!#)", text), "bundles must be self-contained"
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in text, f"{sink} in {name}: data must go in through textContent"


@pytest.mark.skipif(os.environ.get("SPINAL_SKIP_WHEEL") == "1", reason="SPINAL_SKIP_WHEEL=1")
def test_the_wheel_ships_the_built_front_end(tmp_path):
    """`pip wheel .` (hatchling) must carry spinal_nb/static, so installs never need node."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("spinal_nb-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in BUNDLES:
            assert f"spinal_nb/static/{name}" in names
            assert z.read(f"spinal_nb/static/{name}") == (STATIC / name).read_bytes()
