"""Contraction score: the power-law tail exponent of a layer's singular-value spectrum (docs/method.md).

The singular values of the stacked, column-centered state matrix H (N x d) are obtained exactly without keeping all
of H: per layer we stream, per jackknife group of prompts, either the group's rows or its Gram matrix, plus the column
sum and the row count, in float64. States are shifted by a reference row (the first batch's mean) before
accumulating, so that centering later does not subtract two huge numbers (residual streams have a large shared mean
direction). A group keeps its rows while it has fewer than d of them and switches to its d x d Gram the moment it
reaches d (rows are the smaller form below d, the Gram above), so memory is min(N_g, d) * d float64 values per
group and layer. Leave-one-group-out spectra, and with them intervals, come at no extra pass over the data.

A group that will take no more rows (the tracer feeds prompts group by group) can be spilled: its rows / Grams go,
bit for bit, to a store for finished groups (`store=`, any object with the `GroupStore` methods; the tracer's is a
folder of .npz files, spinal_nb.capture.spill) and are read back one layer at a time at finalize. Then the memory
held is one group's worth, whatever the number of prompts (a 1,000-prompt trace of SmolLM2's shape: at most 85 MiB
instead of 785 MiB of accumulators in memory). This module does no I/O itself.
"""
from __future__ import annotations

import ctypes
import time
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from ..errors import InputError, NumericsError
from .eigen import Done, ThreadSolver, TorchSolver


def _as_float64(x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise InputError(f"States must be floating point, got dtype {t.dtype}.")
    return t.to(torch.float64)


_malloc_trim = None
_TRIM_AFTER = 16 << 20  # bytes of switched rows between two trims: bounds what stays resident; ~10 ms a trim
_TRIM_EVERY = 1.0  # seconds: once groups have switched, later batches re-touch the freed holes; trim that too


def _return_freed_heap() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim; a no-op elsewhere).

    A group switching to its Gram frees its row chunks: many small blocks between live ones, which glibc keeps
    resident; and later temporaries that land in those holes leave them resident again. Without trimming the
    process holds the freed rows and the new Grams at once (SmolLM2's shape, batches of 1,000 prompts, accumulator
    alone: 1.49 GB resident for 0.79 GB of accumulators, 0.84 GB with trimming; a whole trace: peak 2.42 GB, 1.91 GB).
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl)
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


STATE_LAYOUT = 3  # layout of GramAccumulator.state_dict (1: one d x d Gram per layer and group; 2: hybrid, no spill)


class GroupStore(Protocol):
    """Where finished groups go (`GramAccumulator(store=...)`); spinal_nb.capture.spill.SpillFolder is one."""

    def put(self, group: int, arrays: Iterator[tuple[str, np.ndarray]]) -> bool:
        """Keep the (name, array) pairs of `group`; False (nothing kept, the caller keeps the group) if it cannot."""

    def get(self, group: int, name: str) -> np.ndarray: ...

    def nbytes(self, group: int) -> int: ...

    def digest(self, group: int) -> str:
        """sha256 (hex) of what is kept for `group`."""

    def holds(self, group: int, digest: str) -> bool:
        """Whether `group` is kept, with that digest."""

    def where(self, group: int) -> str: ...


class GramAccumulator:
    """Streams per-layer, per-group rows or Gram matrices of hidden states (float64).

    Per (layer, group): the group's shifted rows while it has fewer than d of them, its Gram X^T X from then on
    (exact either way; the switch only changes rounding). Spectra of row sets with N < d come from the N x N kernel
    (same nonzero eigenvalues, cheaper) unless `kernel=False`.

    >>> acc = GramAccumulator(n_layers=1, d=4, n_groups=2)
    >>> acc.update(0, np.random.default_rng(0).normal(size=(50, 4)), np.arange(50) % 2)
    >>> acc.spectrum(0).shape
    (4,)
    """

    def __init__(self, n_layers: int, d: int, n_groups: int, *, row_normalize: bool = False,
                 device: str | torch.device = "cpu", kernel: bool = True, store: GroupStore | None = None):
        if n_layers < 1 or d < 1 or n_groups < 1:
            raise InputError(f"GramAccumulator needs n_layers, d, n_groups >= 1, got {n_layers}, {d}, {n_groups}.")
        self.n_layers, self.d, self.n_groups = n_layers, d, n_groups
        self.row_normalize = row_normalize
        self.kernel = kernel
        self.device = torch.device(device)
        z = dict(dtype=torch.float64, device=self.device)
        self.colsum = torch.zeros(n_layers, n_groups, d, **z)
        self.count = torch.zeros(n_layers, n_groups, dtype=torch.int64, device=self.device)
        self.shift = torch.zeros(n_layers, d, **z)
        self.has_shift = torch.zeros(n_layers, dtype=torch.bool, device=self.device)
        # per [layer][group]: shifted row chunks (while < d rows) or the d x d Gram (None until the switch)
        self._rows: list[list[list[torch.Tensor]]] = [[[] for _ in range(n_groups)] for _ in range(n_layers)]
        self._gram: list[list[torch.Tensor | None]] = [[None] * n_groups for _ in range(n_layers)]
        self._n: list[list[int]] = [[0] * n_groups for _ in range(n_layers)]  # host copy of count: no device sync
        # spilled groups: kept by `store` (False: in memory), and per layer whether what is kept is a Gram
        self.store = store
        self._disk: list[bool] = [False] * n_groups
        self._disk_gram = np.zeros((n_layers, n_groups), dtype=bool)
        self._freed = 0  # bytes of row chunks freed by switches since the last trim
        self._trimmed: float | None = None  # time of the last trim; None while no group has switched

    # -- accumulation -------------------------------------------------------------------------------------------
    def update(self, layer: int, states, groups) -> None:
        """Add rows `states` [N, d] belonging to jackknife groups `groups` [N] to layer `layer`."""
        x = _as_float64(states).to(self.device)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise InputError(f"States for layer {layer} must have shape [N, {self.d}], got {tuple(x.shape)}.")
        g = torch.as_tensor(groups, device=self.device).long()
        if g.shape != (x.shape[0],):
            raise InputError(f"groups must have shape [{x.shape[0]}], got {tuple(g.shape)}.")
        if x.shape[0] == 0:
            return
        if not torch.isfinite(x).all():
            raise NumericsError(f"NaN or Inf in the hidden states of layer {layer}; "
                                "try float32 instead of float16, or check the model's weights.")
        if g.min() < 0 or g.max() >= self.n_groups:
            raise InputError(f"group ids must lie in [0, {self.n_groups}).")
        spilled = [i for i in torch.unique(g).tolist() if self._disk[i]]
        if spilled:
            raise InputError(f"group(s) {spilled} were spilled to disk as finished; they take no more rows.")
        if self.row_normalize:
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
        if not self.has_shift[layer]:
            self.shift[layer] = x.mean(0)
            self.has_shift[layer] = True
        x = x - self.shift[layer]
        for gid in torch.unique(g).tolist():
            xg = x[g == gid]  # a copy: keeping it does not keep the batch alive
            self.colsum[layer, gid] += xg.sum(0)
            self.count[layer, gid] += xg.shape[0]
            self._n[layer][gid] += xg.shape[0]
            gram = self._gram[layer][gid]
            if gram is not None:
                gram.addmm_(xg.T, xg)
                continue
            chunks = self._rows[layer][gid]
            chunks.append(xg)
            if self._n[layer][gid] >= self.d:  # d rows or more: the Gram is the smaller form from now on
                rows = torch.cat(chunks)
                chunks.clear()
                self._gram[layer][gid] = rows.T @ rows
                self._freed += rows.numel() * rows.element_size()
        if self.device.type == "cpu" and (self._freed >= _TRIM_AFTER or (
                self._trimmed is not None and time.monotonic() - self._trimmed >= _TRIM_EVERY)):
            xg = rows = None  # the last switched group's joined rows: freed before the trim
            _return_freed_heap()
            self._freed, self._trimmed = 0, time.monotonic()

    # -- results ------------------------------------------------------------------------------------------------
    def n_rows(self, layer: int, leave_out: int | None = None) -> int:
        c = self.count[layer]
        return int(c.sum() - (c[leave_out] if leave_out is not None else 0))

    def nonempty_groups(self, layer: int = 0) -> list[int]:
        return [i for i in range(self.n_groups) if int(self.count[layer, i]) > 0]

    def storage_bytes(self, layer: int | None = None, group: int | None = None) -> int:
        """Bytes held in memory in the per-group rows and Grams (of one layer, or all; of one group, or all): the
        part that grows with d and N. Spilled groups hold none (see `spilled_bytes`)."""
        layers = range(self.n_layers) if layer is None else [layer]
        groups = range(self.n_groups) if group is None else [group]
        return sum(t.numel() * t.element_size() for i in layers for g in groups
                   for t in (self._rows[i][g] + [x for x in [self._gram[i][g]] if x is not None]))

    def spilled_bytes(self) -> int:
        """Bytes of the spilled groups in their store (on disk)."""
        return sum(self.store.nbytes(g) for g in self.spilled_groups())

    def spilled_groups(self) -> list[int]:
        return [g for g in range(self.n_groups) if self._disk[g]]

    # -- spilling -----------------------------------------------------------------------------------------------
    def spill(self, group: int) -> bool:
        """Move a finished group's rows / Grams (all layers) to the `store` and free them.

        The caller promises the group takes no more rows (`update` refuses them afterwards). The float64 values are
        kept as they are, so every spectrum is bit-identical to the one from memory. Returns False (nothing
        done) without a store, for an empty group, when the group is already spilled or the store cannot take it.
        """
        if self.store is None or self._disk[group] or not any(self._n[i][group] for i in range(self.n_layers)):
            return False
        is_gram = np.array([self._gram[i][group] is not None for i in range(self.n_layers)])
        if not self.store.put(group, self.group_arrays(group)):
            return False  # read-only or full disk: the group stays in memory
        for i in range(self.n_layers):
            self._freed += sum(t.numel() * t.element_size() for t in self._rows[i][group])
            self._rows[i][group] = []
            self._gram[i][group] = None
        self._disk[group], self._disk_gram[:, group] = True, is_gram
        if self.device.type == "cpu":
            _return_freed_heap()
            self._freed, self._trimmed = 0, time.monotonic()
        return True

    def group_arrays(self, group: int) -> Iterator[tuple[str, np.ndarray]]:
        """One group's shifted ("gram<layer>", d x d) or ("rows<layer>", n x d) float64 arrays (memory or store)."""
        for i in range(self.n_layers):
            if self._is_gram(i, group):
                yield f"gram{i}", self._gram_tensor(i, group).cpu().numpy()
            elif self._n[i][group]:
                yield f"rows{i}", self._layer_rows(i, [group]).cpu().numpy()

    def merge_group(self, group: int, arrays: dict[str, np.ndarray], colsum, count, shift) -> None:
        """Take an empty group from another accumulator (its `group_arrays`, colsum[:, group], count[:, group], shift)
        around this one's shift (exact algebra, δ = its shift − ours: rows + δ; G + δ s^T + s δ^T + n δ δ^T; s + n δ;
        bit for bit where δ = 0)."""
        if self._disk[group] or any(self._n[i][group] for i in range(self.n_layers)):
            raise InputError(f"group {group} already holds rows; merge only into an empty group.")
        z = dict(dtype=torch.float64, device=self.device)
        for i in range(self.n_layers):
            n = int(count[i])
            if n == 0:
                continue
            if not self.has_shift[i]:
                self.shift[i], self.has_shift[i] = torch.as_tensor(shift[i], **z), True
            delta = torch.as_tensor(shift[i], **z) - self.shift[i]
            s = torch.as_tensor(colsum[i], **z)
            moved = bool(delta.any())
            if f"gram{i}" in arrays:
                g = torch.tensor(arrays[f"gram{i}"], **z)
                self._gram[i][group] = g.addr_(delta, s).addr_(s, delta).addr_(delta, delta, alpha=n) if moved else g
            else:
                r = torch.tensor(arrays[f"rows{i}"], **z)
                self._rows[i][group] = [r.add_(delta) if moved else r]
            self.colsum[i, group] = s + n * delta if moved else s
            self.count[i, group] = self._n[i][group] = n

    def _from_disk(self, layer: int, group: int) -> torch.Tensor:
        key = f"{'gram' if self._disk_gram[layer, group] else 'rows'}{layer}"
        return torch.from_numpy(self.store.get(group, key)).to(self.device)

    def _is_gram(self, layer: int, group: int) -> bool:
        if self._disk[group]:
            return bool(self._disk_gram[layer, group])
        return self._gram[layer][group] is not None

    def _gram_tensor(self, layer: int, group: int) -> torch.Tensor:
        """A Gram-stored group's Gram: the live tensor (do not modify it) or a fresh copy read from disk."""
        return self._from_disk(layer, group) if self._disk[group] else self._gram[layer][group]

    def _layer_rows(self, layer: int, groups: list[int]) -> torch.Tensor:
        """The rows of row-stored `groups` stacked in group order: a temporary copy (the chunks stay as they are,
        so that joining them never leaves freed chunks plus joined copies resident)."""
        chunks = [c for g in groups for c in (
            [self._from_disk(layer, g)] if self._disk[g] and self._n[layer][g] else self._rows[layer][g])]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.d, dtype=torch.float64, device=self.device)

    def spectrum(self, layer: int, leave_out: int | None = None, center: bool = True) -> np.ndarray:
        """Singular values (descending) of the stacked state matrix, column-centered if `center`.

        Only the first r = min(N - 1, d) (centered) or min(N, d) values are returned: the rest are exactly zero.
        """
        if leave_out is None:
            return self.spectra(layer, center=center)[0]
        return self.spectra(layer, [leave_out], center=center, full=False)[1][0]

    def spectra(self, layer: int, leave_out: list[int] | tuple[int, ...] = (), center: bool = True,
                full: bool = True, solver=None) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """(spectrum of all rows, [spectrum with group g left out for g in leave_out]) of one layer.

        The same numbers as `spectrum` called once per group, with the layer's total Gram formed once (a row-stored
        group's Gram X_g^T X_g is formed from its rows when needed, one group at a time). A row set with N < d rows
        (then every group in it is row-stored) takes the N x N kernel route instead. Eigenvalues come from LAPACK's
        symmetric solver through numpy (float64): on one CPU thread it is 1.5-3x faster than torch's, and finalize
        does (L + 1) x (1 + n_groups) of them; `solver` (scores.eigen) runs them on threads or batched on a GPU.
        """
        solver = solver if solver is not None else ThreadSolver(1)
        n_g = self.count[layer].tolist()
        n = sum(n_g)
        s = self.colsum[layer].sum(0)
        is_gram = [self._is_gram(layer, g) for g in range(self.n_groups)]

        def by_kernel(out: int | None) -> bool:  # fewer rows than d, all of them stored as rows
            kept = n - (n_g[out] if out is not None else 0)
            return self.kernel and kept < self.d and all(
                not is_gram[g] for g in range(self.n_groups) if g != out and n_g[g] > 0)

        rows, start = None, {}  # the layer's rows joined, only for the kernel route (then fewer than 2d of them)
        if any(by_kernel(out) for out in ([None] if full else []) + list(leave_out)):
            by_rows = [g for g in range(self.n_groups) if not is_gram[g] and n_g[g] > 0]
            rows = self._layer_rows(layer, by_rows)
            start = dict(zip(by_rows, np.cumsum([0] + [n_g[g] for g in by_rows]).tolist(), strict=False))

        def group_rows(g: int) -> torch.Tensor:
            return rows[start[g]:start[g] + n_g[g]] if g in start else self._layer_rows(layer, [g])

        total: list[torch.Tensor] = []  # the layer's Gram, formed on first use

        def total_gram() -> torch.Tensor:
            if not total:
                t = torch.zeros(self.d, self.d, dtype=torch.float64, device=self.device)
                for g in range(self.n_groups):
                    if is_gram[g]:
                        t += self._gram_tensor(layer, g)
                    elif n_g[g]:
                        x = group_rows(g)
                        t.addmm_(x.T, x)
                total.append(t)
            return total[0]

        whole = None
        if full:
            if by_kernel(None):
                whole = self._kernel_spectrum(layer, rows, s, n, center, solver)
            else:
                whole = self._spectrum_of(layer, solver.empty(self.d, s).copy_(total_gram()), s, n, center, solver)
        parts = []
        for g in leave_out:
            s_out, n_out = s - self.colsum[layer, g], n - n_g[g]
            if by_kernel(g):
                kept = rows if g not in start else torch.cat([rows[:start[g]], rows[start[g] + n_g[g]:]])
                parts.append(self._kernel_spectrum(layer, kept, s_out, n_out, center, solver, own=g in start))
                continue
            if is_gram[g]:
                gram = torch.sub(total_gram(), self._gram_tensor(layer, g), out=solver.empty(self.d, s))
            else:  # the group's own Gram subtracted in place: no d x d temporary for it
                gram = solver.empty(self.d, s).copy_(total_gram())
                if n_g[g]:
                    x = group_rows(g)
                    gram.addmm_(x.T, x, alpha=-1.0)
            parts.append(self._spectrum_of(layer, gram, s_out, n_out, center, solver))
        if isinstance(solver, TorchSolver):
            solver.flush()
        return (whole.result() if whole is not None else None), [p.result() for p in parts]

    def _spectrum_of(self, layer: int, gram: torch.Tensor, s: torch.Tensor, n: int, center: bool, solver):
        """Spectrum from a Gram of shifted rows; `gram` is a temporary and is overwritten (d x d memory counts
        at finalize: d = 4096 is 134 MB a copy)."""
        if n < 2:
            return Done(np.zeros(0))
        if center:
            m = s / n
            c = gram.addr_(m, m, alpha=-float(n))
            rank = min(n - 1, self.d)
        else:  # undo the shift: sum (x+c)(x+c)^T = G + c s^T + s c^T + n c c^T
            sh = self.shift[layer]
            c = gram.addr_(sh, s).addr_(s, sh).addr_(sh, sh, alpha=float(n))
            rank = min(n, self.d)
        return solver.submit(c, rank)

    def _kernel_spectrum(self, layer: int, rows: torch.Tensor | None, s: torch.Tensor, n: int,
                         center: bool, solver, own: bool = False):
        """The same singular values from the n x n kernel Y Y^T of the (centered or unshifted) rows Y, n < d.
        `own`: `rows` is a temporary of the caller's, centered in place (one n x d copy less at finalize)."""
        if n < 2 or rows is None:
            return Done(np.zeros(0))
        shift = -s / n if center else self.shift[layer]
        y = rows.add_(shift) if own else rows + shift
        c = torch.mm(y, y.T, out=solver.empty(y.shape[0], y))
        return solver.submit(c, min(n - 1, self.d) if center else min(n, self.d))

    # -- resume -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """numpy arrays only: `is_gram` [layers, groups]; `gram` [groups stored as Grams, d, d] and `rows`
        [rows of the other groups, d], both in (layer, group) order and for groups in memory only; `spilled`
        [groups] and `spill_sha256` [groups, 32] (the spilled groups stay where they are, in their store: a saved
        state names them and their digests instead of copying them); colsum, count, shift, has_shift; format."""
        L, G = self.n_layers, self.n_groups
        spilled = np.array(self._disk, dtype=bool)
        is_gram = np.array([[self._is_gram(i, g) for g in range(G)] for i in range(L)], dtype=bool)
        grams = [self._gram[i][g].cpu().numpy() for i in range(L) for g in range(G) if is_gram[i, g] and not spilled[g]]
        rows = [self._layer_rows(i, [g for g in range(G) if not is_gram[i, g] and not spilled[g]]).cpu().numpy()
                for i in range(L)]
        sha = np.zeros((G, 32), dtype=np.uint8)
        for g in np.flatnonzero(spilled).tolist():
            sha[g] = np.frombuffer(bytes.fromhex(self.store.digest(g)), dtype=np.uint8)
        out = {"format": np.array(STATE_LAYOUT, dtype=np.int64), "is_gram": is_gram, "spilled": spilled,
               "spill_sha256": sha,
               "gram": np.stack(grams) if grams else np.zeros((0, self.d, self.d)),
               "rows": np.concatenate(rows) if rows else np.zeros((0, self.d))}
        out.update({k: getattr(self, k).cpu().numpy() for k in ("colsum", "count", "shift", "has_shift")})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if "format" not in state or int(np.asarray(state["format"])) != STATE_LAYOUT:
            found = int(np.asarray(state["format"])) if "format" in state else 1
            raise InputError(f"Saved accumulator state has layout {found}, this spinal-nb reads layout {STATE_LAYOUT} "
                             "(saved by another version); delete the folder of partial results to start over.")
        missing = {"is_gram", "gram", "rows", "colsum", "count", "shift", "has_shift", "spilled",
                   "spill_sha256"} - set(state)
        if missing:
            raise InputError(f"Saved accumulator state lacks {sorted(missing)}; delete the folder to start over.")
        L, G, d = self.n_layers, self.n_groups, self.d
        small = {}
        for k in ("colsum", "count", "shift", "has_shift"):
            cur = getattr(self, k)
            new = torch.as_tensor(np.asarray(state[k]))
            if tuple(new.shape) != tuple(cur.shape):
                raise InputError(f"Saved accumulator '{k}' has shape {tuple(new.shape)}, expected {tuple(cur.shape)}.")
            small[k] = new.to(dtype=cur.dtype, device=self.device).clone()
        is_gram, grams, rows, spilled, sha = (np.asarray(state[k]) for k in (
            "is_gram", "gram", "rows", "spilled", "spill_sha256"))
        count = small["count"].cpu().numpy()
        ok = is_gram.shape == (L, G) and spilled.shape == (G,) and spilled.dtype == bool and sha.shape == (G, 32)
        in_mem = ~spilled[None, :] if ok else None
        if (not ok or grams.shape != (int((is_gram & in_mem).sum()), d, d)
                or rows.shape != (int(count[~is_gram & in_mem].sum()), d)
                or (count[is_gram] < d).any() or (count[~is_gram] >= d).any()):
            raise InputError("Saved accumulator state is inconsistent (rows, Grams and counts disagree); "
                             "delete the folder to start over.")
        for g in np.flatnonzero(spilled).tolist():
            if self.store is None or not self.store.holds(g, bytes(sha[g]).hex()):
                where = self.store.where(g) if self.store is not None else "(no spill store given)"
                raise InputError(f"The spilled accumulator file {where} of group {g} is missing or does not "
                                 "match the saved state; delete the folder to start over.")
        for k, v in small.items():
            setattr(self, k, v)
        z = dict(dtype=torch.float64, device=self.device)
        self._disk, self._disk_gram = spilled.tolist(), is_gram & spilled[None, :]
        self._n = count.tolist()
        self._rows = [[[] for _ in range(G)] for _ in range(L)]
        self._gram = [[None] * G for _ in range(L)]
        k = r = 0
        for i in range(L):
            for g in range(G):
                if spilled[g]:
                    continue
                if is_gram[i, g]:
                    self._gram[i][g] = torch.tensor(grams[k], **z)
                    k += 1
                elif count[i, g] > 0:
                    self._rows[i][g] = [torch.tensor(rows[r:r + count[i, g]], **z)]
                    r += int(count[i, g])
