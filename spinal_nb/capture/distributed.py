"""Data-parallel tracing on torch.distributed: ranks split the prompts by jackknife group and merge the sums.

When a process group is initialized (torchrun, `accelerate launch`, SLURM `srun` with the usual environment, or
`torch.distributed.init_process_group` by hand) with more than one rank, `trace()`:

1. checks that every rank was given the same call (a hash of the model fingerprint, the token ids and the
   parameters, compared across ranks) and that there are at least as many jackknife groups as ranks;
2. runs only its own groups: group g belongs to rank g % world (groups are prompt index % n_groups, so each rank
   runs about n_prompts / world prompts);
3. merges: group by group, its owner broadcasts the group's float64 rows or Gram per layer (from memory or its spill
   folder) and every rank adds it to a fresh accumulator, in group order, re-expressed around the shift of the
   first group's owner (exact algebra; bit for bit on the owner of group 0); the transport sums and counts are
   summed with all_reduce (every group's entries are nonzero on one rank only, so the sum is exact);
4. finalizes the merged accumulators, so every rank returns the same complete TraceFrame.

The collectives are the process group's: gloo on CPU, NCCL on GPU (tensors then travel through the current CUDA
device). A rank that dies leaves the others waiting in a collective until the process group's timeout
(`init_process_group(timeout=...)`; gloo's default is 30 minutes), which then raises on them: no silent hang.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..scores import GramAccumulator, TransportAccumulator, assign_groups
from ..scores.eigen import cpu_count
from .spill import SPILL_MIN_BYTES, SpillFolder


def context() -> tuple[int, int] | None:
    """(rank, world size) when a torch.distributed process group with 2 or more ranks is initialized, else None."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    return (dist.get_rank(), world) if world > 1 else None


def check_same_call(call: dict[str, Any], n_groups: int, world: int) -> None:
    """Refuse a call whose ranks were given different prompts, models or parameters, or too few groups."""
    if world > n_groups:
        raise InputError(f"trace() runs on {world} ranks but there are only n_groups={n_groups} jackknife groups "
                         f"to split between them: use n_groups >= {world} or fewer ranks.")
    key = hashlib.sha256(json.dumps(call, sort_keys=True, default=str).encode()).hexdigest()
    keys: list[Any] = [None] * world
    torch.distributed.all_gather_object(keys, key)
    other = [r for r, k in enumerate(keys) if k != keys[0]]
    if other:
        raise InputError(f"trace() under torch.distributed: rank(s) {other} were given another model, prompts or "
                         "parameters than rank 0; call trace() with the same arguments on every rank.")


def my_share(order: list[int], n_groups: int, rank: int, world: int) -> tuple[list[int], dict[int, int]]:
    """This rank's part of the group-major `order` (the prompts of groups g with g % world == rank) and, per own
    group, its last position in that part (as positions.group_major)."""
    groups = assign_groups(np.asarray(order, dtype=np.int64), n_groups)
    mine = [i for i, g in zip(order, groups.tolist(), strict=True) if g % world == rank]
    mine_groups = assign_groups(np.asarray(mine, dtype=np.int64), n_groups).tolist()
    return mine, {int(g): pos for pos, g in enumerate(mine_groups)}


def finalize_workers(requested: int | None) -> int | None:
    """The eigen-solve threads of one rank: what was asked, else the cores shared by the ranks of this node
    (LOCAL_WORLD_SIZE, set by torchrun and accelerate), so that the ranks of a node do not oversubscribe it."""
    if requested is not None:
        return requested
    return max(1, cpu_count() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))


def _comm_device(fallback: torch.device) -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if fallback.type != "cpu" else fallback


def merge(gram: GramAccumulator, transport: TransportAccumulator, rank: int, world: int,
          store: SpillFolder | None) -> tuple[GramAccumulator, TransportAccumulator]:
    """Every rank's accumulators (each holding its own groups) merged into the same complete ones on every rank."""
    dist = torch.distributed
    dev = _comm_device(gram.device)
    merged = GramAccumulator(gram.n_layers, gram.d, gram.n_groups, row_normalize=gram.row_normalize,
                             device=gram.device, kernel=gram.kernel, store=store)
    for g in range(gram.n_groups):
        owner = g % world
        head: list[Any] = [None]
        arrays: dict[str, np.ndarray] = {}
        if rank == owner:
            arrays = dict(gram.group_arrays(g))
            head[0] = {"shapes": {k: v.shape for k, v in arrays.items()},
                       "colsum": gram.colsum[:, g].cpu().numpy(), "count": gram.count[:, g].cpu().numpy(),
                       "shift": gram.shift.cpu().numpy()}
        dist.broadcast_object_list(head, src=owner)
        info = head[0]
        for name, shape in info["shapes"].items():  # insertion order: the same on every rank
            t = (torch.from_numpy(arrays[name]).to(dev) if rank == owner
                 else torch.empty(shape, dtype=torch.float64, device=dev))
            dist.broadcast(t, src=owner)
            arrays[name] = t.cpu().numpy()
        if int(info["count"].sum()):
            merged.merge_group(g, arrays, info["colsum"], info["count"], info["shift"])
        arrays.clear()
        if merged.storage_bytes(group=g) >= SPILL_MIN_BYTES:
            merged.spill(g)
    out = TransportAccumulator(transport.n_layers, transport.n_groups)
    for name in TransportAccumulator.ARRAYS:
        t = torch.from_numpy(np.ascontiguousarray(getattr(transport, name))).to(dev)
        dist.all_reduce(t)
        setattr(out, name, t.cpu().numpy())
    return merged, out
