"""Pure SPINAL math on arrays: spectrum tail fit, Fisher–Rao transport, jackknife intervals. No I/O, no modules."""
from .companions import effective_rank, to_final, to_final_
from .contraction import STATE_LAYOUT, GramAccumulator, GroupStore
from .finalize import finalize
from .intervals import assign_groups, jackknife_interval, jackknife_se
from .tail import TailFit, fit_tail, tail_gap
from .transport import (
    TransportAccumulator,
    check_entropy_finite,
    fisher_rao,
    fisher_rao_sqrt,
    lens_entropy,
    lens_point,
    lens_point_,
    lens_step,
)

__all__ = [
    "STATE_LAYOUT", "GramAccumulator", "GroupStore", "TailFit", "fit_tail", "tail_gap", "assign_groups", "jackknife_interval", "jackknife_se", "finalize",
    "TransportAccumulator", "fisher_rao", "lens_entropy", "lens_step", "lens_point", "lens_point_", "fisher_rao_sqrt",
    "check_entropy_finite", "effective_rank", "to_final", "to_final_",
]
