"""The symmetric eigen-solves of finalize: on every CPU core, or on the accumulators' GPU.

finalize does (L + 1) x (1 + G) eigen-solves of d x d matrices (the full and the leave-one-group-out Grams of each
layer); at d = 4096 one takes tens of seconds on a CPU. A `Solver` takes each matrix as soon as it is formed and hands
back a handle whose `result()` is its spectrum (sqrt of the top `rank` eigenvalues, descending):

- `ThreadSolver` (CPU): LAPACK's dsyevd through numpy, one solve per worker thread (numpy releases the GIL), with
  BLAS limited to cores // workers threads each while the pool runs (threadpoolctl when installed, else the
  set_num_threads entry point of numpy's bundled OpenBLAS): two solves on two threads each would fight for the
  cores (measured on 2 cores, d = 1536: 1.4x slower than serial), two on one thread each finish 1.3x sooner. At most
  `workers` matrices wait or run at once: `workers` d x d copies besides the total Gram (serial: one).
- `TorchSolver` (CUDA, or any torch device): torch.linalg.eigvalsh in float64 on the matrices' device, batched over
  as many same-sized matrices as fit in free device memory; CUDA out of memory falls back to numpy on the CPU with
  a warning.

Every solver returns the same numbers as the serial numpy path within float64 rounding (the eigenvalue solvers are
backward stable; only the BLAS summation order differs): |λ_new − λ_old| ≤ 1e-12 · λ_max in tests/scores/test_eigen.py.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from ..errors import InputError

try:  # optional: caps BLAS threads in any BLAS numpy was built with
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

_BLOCK = 512


def symmetrize_lower_(c: torch.Tensor, block: int = _BLOCK) -> torch.Tensor:
    """Make the lower triangle of c that of 0.5 (c + c^T), in place, a block of rows at a time from the still
    untouched upper triangle (no d x d copy). Both eigen-solvers read the lower triangle only."""
    for i in range(0, c.shape[-1], block):
        j = min(i + block, c.shape[-1])
        c[..., i:j, :i].add_(c[..., :i, i:j].transpose(-1, -2)).mul_(0.5)
        diag = c[..., i:j, i:j]
        diag.copy_(diag + diag.transpose(-1, -2)).mul_(0.5)
    return c


def resolved_sqrt(ev: np.ndarray) -> np.ndarray:
    """sqrt of descending eigenvalues ev [..., n] of a float64 Gram or kernel, those it cannot resolve set to 0.

    The Gram route squares the singular values: float64 sums of products and a backward-stable eigen-solve determine
    each eigenvalue only to about n·ε·‖C‖ (ε = 2.2e-16, n the matrix size, ‖C‖ ≤ its trace = Σλ), so a singular
    value below √(n·ε·Σλ) is not determined by the data: two summation orders of the same rows give different ones.
    Rows that repeat (a prompt prefix shared by several prompts: equal, or equal up to the float32 rounding of
    differently padded batches) leave such eigenvalues; their square roots (≈ 2e-7·σ₁ on SmolLM2) pass the
    1e-7·σ₁ floor and entered the tail fit (measured on SmolLM2, 20 prompts over 5 shared prefixes: α moved by
    2e-5 and a leave-one-group-out α by 3% between a one-process and a two-rank trace of the same batches; with
    this cut both agree to 5e-13). They are reported as 0, which the floor then drops."""
    ev = np.asarray(ev, dtype=np.float64)
    n = ev.shape[-1]
    tol = n * np.finfo(np.float64).eps * np.abs(ev).sum(axis=-1, keepdims=True)
    return np.sqrt(np.where(ev > tol, ev, 0.0))


def numpy_sqrt_eig(c: torch.Tensor, rank: int) -> np.ndarray:
    """sqrt of the top `rank` eigenvalues of 0.5 (c + c^T), descending, unresolved ones 0 (`resolved_sqrt`);
    c (a temporary) is overwritten."""
    symmetrize_lower_(c)
    ev = np.linalg.eigvalsh(c.cpu().numpy(), UPLO="L")[::-1]  # ascending -> descending
    return resolved_sqrt(ev)[:rank]


class Done:
    def __init__(self, value: np.ndarray):
        self.value = value

    def result(self) -> np.ndarray:
        return self.value


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def _openblas_setter():
    """numpy's bundled OpenBLAS (get, set) thread-count functions, or None."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    libs += glob.glob(os.path.join(os.path.dirname(np.__file__), ".dylibs", "*openblas*"))
    for path in libs:
        try:
            so = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                get, put = (getattr(so, f"{prefix}{w}_num_threads{suffix}", None) for w in ("get", "set"))
                if get is not None and put is not None:
                    return get, put
    return None


@contextmanager
def blas_threads(n: int):
    """numpy's BLAS limited to `n` threads inside the block (no-op when neither threadpoolctl nor numpy's OpenBLAS
    entry points are found; then `ThreadSolver` runs serially, see `blas_limit_available`)."""
    if threadpool_limits is None:
        fns = _openblas_setter()
        if fns is None:
            yield
            return
        get, put = fns
        before = get()
        put(n)
        try:
            yield
        finally:
            put(before)
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def blas_limit_available() -> bool:
    return threadpool_limits is not None or _openblas_setter() is not None


class ThreadSolver:
    """numpy eigen-solves on `workers` threads (None: every core; 1: inline, no thread). Use as a context manager."""

    def __init__(self, workers: int | None = None):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise InputError(f"workers must be a positive int or None (every core), got {workers!r}.")
        n = cpu_count() if workers is None else workers
        # without a way to cap BLAS per worker, parallel solves oversubscribe the cores: stay serial then
        self.workers = n if n == 1 or blas_limit_available() else 1
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(self.workers)
        self._limit = None

    def __enter__(self) -> ThreadSolver:
        if self.workers > 1:
            self._limit = blas_threads(max(1, cpu_count() // self.workers))
            self._limit.__enter__()
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="spinal-eig")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            self._limit.__exit__(*exc)

    def empty(self, n: int, like: torch.Tensor) -> torch.Tensor:
        if self._pool is not None:
            self._slots.acquire()  # at most `workers` matrices formed and not yet solved
        return torch.empty(n, n, dtype=like.dtype, device=like.device)

    def submit(self, c: torch.Tensor, rank: int):
        if self._pool is None:
            return Done(numpy_sqrt_eig(c, rank))

        def run() -> np.ndarray:
            try:
                return numpy_sqrt_eig(c, rank)
            finally:
                self._slots.release()
        return self._pool.submit(run)


class TorchSolver:
    """torch.linalg.eigvalsh (float64) on the matrices' own device, batched over same-sized matrices.

    `batch`: matrices per eigvalsh call (None: as many as fit in half the free device memory, with room for the
    solver's workspace; 1 on CPU tensors). Handles resolve when the batch is full or at `flush()`."""

    def __init__(self, batch: int | None = None):
        self.batch = batch
        self._buf: torch.Tensor | None = None
        self._queued: list[tuple[Future, int]] = []

    def __enter__(self) -> TorchSolver:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self._buf = None

    def _capacity(self, n: int, like: torch.Tensor) -> int:
        if self.batch is not None:
            return self.batch
        if like.device.type != "cuda":
            return 1
        free, _ = torch.cuda.mem_get_info(like.device)
        return int(max(1, min(16, free // 2 // (3 * n * n * 8))))  # the matrix, eigvalsh's copy and workspace

    def empty(self, n: int, like: torch.Tensor) -> torch.Tensor:
        buf = self._buf
        if buf is not None and (buf.shape[-1] != n or buf.device != like.device):
            self.flush()
            buf = self._buf = None
        if buf is None:
            buf = self._buf = torch.empty(self._capacity(n, like), n, n, dtype=torch.float64, device=like.device)
        if len(self._queued) == buf.shape[0]:
            self.flush()
        return buf[len(self._queued)]

    def submit(self, c: torch.Tensor, rank: int):
        fut: Future = Future()
        buf = self._buf
        if buf is None or c.data_ptr() != buf[len(self._queued)].data_ptr():  # not a slot (a kernel matrix): alone
            fut.set_result(self._solve(symmetrize_lower_(c).unsqueeze(0))[0][:rank])
            return fut
        self._queued.append((fut, rank))
        return fut

    def flush(self) -> None:
        if not self._queued:
            return
        k = len(self._queued)
        out = self._solve(symmetrize_lower_(self._buf[:k]))
        for (fut, rank), sig in zip(self._queued, out, strict=True):
            fut.set_result(sig[:rank])
        self._queued = []

    @staticmethod
    def _solve(c: torch.Tensor) -> np.ndarray:
        """sqrt of the eigenvalues (descending, unresolved ones 0) of the lower triangles of the batch c [B, n, n]."""
        try:
            ev = torch.linalg.eigvalsh(c, UPLO="L").cpu().numpy()
        except torch.OutOfMemoryError:
            warnings.warn(f"Out of device memory for the eigenvalues of {c.shape[0]} matrices of size {c.shape[-1]}: "
                          "solving them on the CPU instead (slower).", RuntimeWarning, stacklevel=3)
            host = c.cpu().numpy()
            ev = np.stack([np.linalg.eigvalsh(m, UPLO="L") for m in host])
        return resolved_sqrt(ev[:, ::-1])


def solver_for(device: torch.device, workers: int | None = None):
    """The solver for accumulators on `device`: batched torch on CUDA, numpy threads on the CPU."""
    return TorchSolver() if torch.device(device).type == "cuda" else ThreadSolver(workers)
