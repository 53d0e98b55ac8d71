"""LayerScrubber: a slider over layers and, for the selected layer, every checkpoint's scores, spectrum and lens."""
from __future__ import annotations

from ._base import STATIC, TraceWidget


class LayerScrubber(TraceWidget):
    """Slider (and ←/→ keys) over layers. For the selected `layer`, per checkpoint: α with its interval and fit R²,
    𝓛, entropy, Δ against `reference`; the log–log spectrum with the fitted tail line when the frame keeps spectra;
    the top-k logit-lens tokens when the frame has `.lens` detail.

    >>> from spinal_nb.widgets import LayerScrubber
    >>> scrub = LayerScrubber(frame, reference="base")     # doctest: +SKIP
    >>> scrub.layer                                        # doctest: +SKIP
    30
    """

    _esm = STATIC / "layer_scrubber.js"
