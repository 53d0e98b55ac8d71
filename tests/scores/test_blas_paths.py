"""The numerics tests hold on other BLAS code paths, i.e. on other CPUs.

numpy's OpenBLAS (DYNAMIC_ARCH) and torch's MKL pick kernels per CPU, and a kernel fixes the summation order of every
Gram product and eigen-solve. A test that compares two differently ordered computations bit for bit passes on one CPU
and fails on another (it happened: AVX-512 Xeon, 5e-15 relative). Here the same tests run again with forced kernels —
`OPENBLAS_CORETYPE` (numpy: eigvalsh, matmul) and `MKL_CBWR` (torch: addmm) — which this test first shows really
change the bits of a Gram and of its spectrum, so the rerun exercises other orders on any machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Kernels every x86-64 CPU can run (an AVX-512 kernel would die with SIGILL on a CPU without it)
PATHS = {
    "sandybridge+mkl-compatible": {"OPENBLAS_CORETYPE": "Sandybridge", "MKL_CBWR": "COMPATIBLE"},
    "prescott+mkl-avx+2-threads": {"OPENBLAS_CORETYPE": "Prescott", "MKL_CBWR": "AVX", "OPENBLAS_NUM_THREADS": "2",
                                   "MKL_NUM_THREADS": "2"},
}
# the tests that compare spectra, accumulator states and whole traces across differently batched computations
NUMERICS = ["tests/scores/test_gram_hybrid.py", "tests/scores/test_contraction.py", "tests/scores/test_eigen.py",
            "tests/capture/test_resume_format.py", "tests/capture/test_spill.py"]

BITS = """
import hashlib, numpy as np, torch
rng = np.random.default_rng(0)
x = torch.tensor(rng.standard_normal((700, 96)) + 1e3)
g = torch.zeros(96, 96, dtype=torch.float64)
g.addmm_(x[:300].T, x[:300]); g.addmm_(x[300:].T, x[300:])
h = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
print(h(g.numpy()), h(np.linalg.eigvalsh(x.numpy().T @ x.numpy())))
"""


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "MKL_"))}
    return {**env, **extra}


def _bits(extra: dict[str, str]) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", BITS], env=_env(extra), capture_output=True, text=True, timeout=300,
                         check=True).stdout.split()
    return out[0], out[1]


def test_the_forced_kernels_change_the_summation_order():
    # A forced kernel can be the one a CPU picks anyway (an old Sandybridge picks Sandybridge): for each library,
    # at least one of the forced paths must give other bits than the default, or the reruns below prove nothing.
    default = _bits({})
    forced = {name: _bits(extra) for name, extra in PATHS.items()}
    assert any(b[0] != default[0] for b in forced.values()), f"MKL_CBWR changed no bit of torch's Gram: {forced}"
    assert any(b[1] != default[1] for b in forced.values()), f"OPENBLAS_CORETYPE changed no eigvalsh bit: {forced}"


@pytest.mark.parametrize("name", PATHS)
def test_numerics_tests_pass_on_another_blas_path(name):
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *NUMERICS],
                       cwd=ROOT, env=_env(PATHS[name]), capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"{name}:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
