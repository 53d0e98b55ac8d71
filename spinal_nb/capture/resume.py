"""Resume state of `trace(save_to=folder)`: the partial accumulators, saved every few batches, so that calling again
with the same arguments resumes where the run stopped (and returns at once when it had finished).

Layout of the folder (no pickle anywhere):

    progress.json          format, the call's sha256, prompts done, the state file's name and sha256
    state-<prompts>.npz    numpy arrays only: gram.* (GramAccumulator.state_dict) and transport.*
    spill/group-<g>.npz    finished groups (spill.SpillFolder), written once; the state names them by sha256
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import atomic_file, file_sha256
from ..scores import GramAccumulator, TransportAccumulator

RESUME_FORMAT = 4  # 4: + the lens metrics' sums (kl_sum, agree_sum, final_count); 3: prompts run group by group,
# finished groups spilled; older formats are not read


class ResumeState:
    """Partial accumulators in `save_to/` : state-<prompts>.npz (numpy arrays only) + progress.json, and
    spill/group-<g>.npz for finished groups (written once; the state names them with their sha256).

    The npz is written first under a new name, then progress.json (which names it and holds its sha256) replaces
    the old one, then the old npz is removed: a crash at any moment leaves a consistent pair. No pickle anywhere.
    `prompts_done` counts prompts in the order they run (group by group, `positions.group_major`).
    """

    def __init__(self, folder: str | os.PathLike, call_sha256: str):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"save_to={str(folder)!r} is a file; pass a folder for the partial results.")
        self.call_sha256 = call_sha256
        self.progress_path = self.folder / "progress.json"
        self.spill_dir = self.folder / "spill"

    def load(self, gram: GramAccumulator, transport: TransportAccumulator) -> dict[str, Any] | None:
        if not self.progress_path.exists():
            return None
        try:
            progress = json.loads(self.progress_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{self.progress_path} is unreadable ({e}); delete the folder to start over.") from e
        found = progress.get("format") if isinstance(progress, dict) else None
        if found != RESUME_FORMAT:
            raise InputError(f"save_to={str(self.folder)!r} holds partial results in resume format "
                             f"{found!r} of another spinal-nb version (this one writes "
                             f"{RESUME_FORMAT}); delete the folder to start over.")
        if progress.get("call_sha256") != self.call_sha256:
            raise InputError(f"save_to={str(self.folder)!r} holds a run of a different call (other model, prompts, "
                             "parameters or batch size). Use another folder, or delete it to start over.")
        state_path = self.folder / progress["state_file"]
        if not state_path.exists() or file_sha256(state_path) != progress["state_sha256"]:
            raise InputError(f"The saved state {state_path} is missing or does not match progress.json; "
                             "delete the folder to start over.")
        with np.load(state_path, allow_pickle=False) as z:
            gram.load_state_dict({k[5:]: z[k] for k in z.files if k.startswith("gram.")})
            transport.load_state_dict({k[10:]: z[k] for k in z.files if k.startswith("transport.")})
        return progress

    def save(self, gram: GramAccumulator, transport: TransportAccumulator, prompts_done: int, n_prompts: int,
             extra: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        old = None
        if self.progress_path.exists():
            try:
                old = json.loads(self.progress_path.read_text()).get("state_file")
            except (OSError, json.JSONDecodeError):
                old = None
        arrays = {f"gram.{k}": v for k, v in gram.state_dict().items()}
        arrays.update({f"transport.{k}": v for k, v in transport.state_dict().items()})
        state_path = self.folder / f"state-{prompts_done}.npz"
        atomic_file(state_path, lambda f: np.savez(f, **arrays))
        progress = {"format": RESUME_FORMAT, "call_sha256": self.call_sha256, "prompts_done": prompts_done,
                    "n_prompts": n_prompts, "complete": prompts_done >= n_prompts, "state_file": state_path.name,
                    "state_sha256": file_sha256(state_path), "extra": extra,
                    "saved": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
        atomic_file(self.progress_path, lambda f: f.write(json.dumps(progress, indent=1).encode()))
        if old and old != state_path.name and (self.folder / old).exists():
            (self.folder / old).unlink()
