"""Which token positions a trace uses, and how prompts become padded batches (docs/method.md, "Layers and positions").

- Every non-padding position of every prompt except its first `skip_first`, then every `position_stride`-th of
  those (stride 1 = all).
- Batches are padded on the RIGHT, whatever the tokenizer's `padding_side`: with causal attention a real token only
  sees earlier real tokens, so its states are the ones of the unpadded prompt, and position ids start at 0 for
  every prompt. Left padding would shift the position ids of short prompts in families that compute them from the
  cache position. The pad id is irrelevant (masked, never selected), so a tokenizer without a pad token is fine.
- Prompt i (global index in the call) belongs to jackknife group i % n_groups, so batching never changes groups.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..scores import assign_groups


def selected_positions(n_tokens: int, skip_first: int, stride: int = 1) -> range:
    """Positions of a prompt with `n_tokens` real tokens that enter the scores.

    >>> list(selected_positions(7, skip_first=1, stride=2))
    [1, 3, 5]
    """
    return range(skip_first, n_tokens, stride)


@dataclass
class Batch:
    """One right-padded batch: ids and mask [B, T], the selection mask [B, T] and each selected row's group."""

    prompt_indices: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    select: torch.Tensor  # bool [B, T]: positions that enter the scores (row-major order = prompt, then position)
    groups: torch.Tensor  # int64 [N_selected]

    @property
    def n_selected(self) -> int:
        return int(self.select.sum())


def make_batch(token_ids: Sequence[Sequence[int]], prompt_indices: Sequence[int], *, pad_id: int, skip_first: int,
               stride: int, n_groups: int) -> Batch:
    """Right-pad `token_ids` into one batch and mark the selected positions.

    >>> b = make_batch([[5, 6, 7], [8]], [0, 1], pad_id=0, skip_first=1, stride=1, n_groups=10)
    >>> b.input_ids.tolist(), b.select.tolist(), b.groups.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[False, True, True], [False, False, False]], [0, 0])
    """
    width = max(len(t) for t in token_ids)
    n = len(token_ids)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    select = torch.zeros((n, width), dtype=torch.bool)
    group_of_row = assign_groups(np.asarray(prompt_indices), n_groups)
    group_grid = torch.zeros((n, width), dtype=torch.long)
    for row, toks in enumerate(token_ids):
        ids[row, : len(toks)] = torch.as_tensor(list(toks), dtype=torch.long)
        mask[row, : len(toks)] = 1
        select[row, list(selected_positions(len(toks), skip_first, stride))] = True
        group_grid[row] = int(group_of_row[row])
    return Batch(list(prompt_indices), ids, mask, select, group_grid[select])


def group_major(n_prompts: int, n_groups: int) -> tuple[list[int], dict[int, int]]:
    """The order prompts run in (jackknife group 0's prompts first, each group in prompt order) and, per group, the
    position in that order after which the group is finished. Group membership stays prompt index % n_groups, so
    the order changes no score (beyond float64 summation order); it lets finished groups leave memory."""
    groups = assign_groups(np.arange(n_prompts), n_groups)
    order = np.argsort(groups, kind="stable").tolist()
    last = {int(groups[i]): pos for pos, i in enumerate(order)}
    return order, last
