"""DepthPathView: every checkpoint's depth trace as a path through (contraction, transport) space."""
from __future__ import annotations

from ._base import STATIC, TraceWidget


class DepthPathView(TraceWidget):
    """Each checkpoint's layers 0..L as a path through (contraction α, transport 𝓛) space, switchable to α, 𝓛 or
    entropy against depth (`mode`). Whiskers are the intervals, the terminal window (depth ≥ `terminal_depth`) is drawn
    thick / shaded, hover shows a layer's values, click selects that checkpoint and layer.

    >>> from spinal_nb.widgets import DepthPathView
    >>> view = DepthPathView(frame, mode="contraction")   # doctest: +SKIP
    >>> view.layer = 24                                    # doctest: +SKIP
    """

    _esm = STATIC / "depth_path.js"
