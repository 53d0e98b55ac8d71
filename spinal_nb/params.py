"""Every open choice of the SPINAL method as one frozen, recorded parameter set (docs/method.md)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import InputError

RENAMED = {"window": "tail_window"}  # old name -> today's, for traces written by spinal-nb 0.1.0
ADDED = {"lens_metrics": True}  # parameters newer than some trace files, with the value those files read as


@dataclass(frozen=True)
class SpinalParams:
    """Parameters of a trace. Two traces combine only when their parameters are equal.

    >>> SpinalParams(skip_first=0).skip_first
    0
    """

    skip_first: int = 1  # leading positions dropped per prompt (BOS / attention sink)
    center: bool = True  # column-center H before the spectrum
    row_normalize: bool = False  # L2-normalize each state before the spectrum
    tail_window: tuple[float, float] = (0.1, 0.9)  # the spectrum's tail: ranks as fractions of the rank r
    floor: float = 1e-7  # drop sigma_k <= floor * sigma_1
    min_points: int = 8  # fewer points in the window -> contraction is null
    temperature: float = 1.0  # lens softmax temperature
    top_k: int | None = None  # None = exact full vocabulary
    position_stride: int = 1  # use every k-th selected position (1 = all)
    n_groups: int = 10  # delete-a-group jackknife groups of prompts
    confidence: float = 0.95
    lens: str = "logit"  # the readout: "logit", or "tuned-<16 hex of its weights' sha256>" (trace(..., lens=...))
    lens_metrics: bool = True  # also kl_to_final and top1_agreement (docs/method.md, "Companion metrics")

    def __post_init__(self) -> None:
        a, b = self.tail_window
        checks = [
            (isinstance(self.skip_first, int) and self.skip_first >= 0, "skip_first must be an int >= 0"),
            (0.0 <= a < b <= 1.0, f"tail_window must satisfy 0 <= a < b <= 1, got {self.tail_window}"),
            (0.0 <= self.floor < 1.0, "floor must be in [0, 1)"),
            (isinstance(self.min_points, int) and self.min_points >= 2, "min_points must be an int >= 2"),
            (math.isfinite(self.temperature) and self.temperature > 0, "temperature must be a positive number"),
            (self.top_k is None or (isinstance(self.top_k, int) and self.top_k >= 1), "top_k must be None or >= 1"),
            (isinstance(self.position_stride, int) and self.position_stride >= 1, "position_stride must be >= 1"),
            (isinstance(self.n_groups, int) and self.n_groups >= 2, "n_groups must be an int >= 2"),
            (0.5 <= self.confidence < 1.0, "confidence must be in [0.5, 1)"),
            (isinstance(self.lens, str) and (self.lens == "logit" or self.lens.startswith("tuned-")),
             "lens must be 'logit' or the tag of a tuned lens ('tuned-<hash>'); pass the lens itself as "
             "trace(..., lens=TunedLens)"),
            (isinstance(self.lens_metrics, bool), "lens_metrics must be True or False"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(f"Bad SPINAL parameter: {msg}.")
        object.__setattr__(self, "tail_window", (float(a), float(b)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tail_window"] = list(self.tail_window)
        if self.lens == "logit":  # the default readout is not written, so logit-lens records match older ones
            del d["lens"]
        return d

    @staticmethod
    def upgrade(d: dict[str, Any]) -> dict[str, Any]:
        """Parameters as an older spinal-nb recorded them, under today's names (`window` is now `tail_window`), with
        the parameters added since at their defaults (`lens_metrics`: such a file's companion columns are null, and
        it still combines with new traces)."""
        if not isinstance(d, dict) or (not any(old in d for old in RENAMED) and all(k in d for k in ADDED)):
            return d
        return {**ADDED, **{RENAMED.get(k, k): v for k, v in d.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpinalParams:
        d = cls.upgrade(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"Unknown SPINAL parameter(s): {sorted(unknown)}. Known: {sorted(known)}.")
        d = dict(d)
        if "tail_window" in d:
            d["tail_window"] = tuple(d["tail_window"])
        return cls(**d)

    def replace(self, **changes: Any) -> SpinalParams:
        return SpinalParams.from_dict({**self.to_dict(), **changes})
