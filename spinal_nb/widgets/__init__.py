"""Interactive views of a TraceFrame (anywidget): depth path, layer scrubber, linked dashboard, training view;
static charts.

    >>> from spinal_nb.widgets import show, chart      # doctest: +SKIP
    >>> dash = show(frame)            # linked dashboard; dash.layer / dash.checkpoint are synced with the browser
    >>> dash.to_html("audit.html")    # self-contained, offline
    >>> report(frame, "audit.html", reference="base")   # the same as `spinal report`
    >>> chart(frame, kind="path").save("path.svg")
    >>> view = TrainingView(read_training_trace("run/spinal-trace"))  # doctest: +SKIP  (layer × step heatmap)
    >>> cb = SpinalCallback(probes, on_evaluation=view.update)        # doctest: +SKIP  (live refresh)
"""
from .charts import chart
from .dashboard import Dashboard, link, report, show
from .depth_path import DepthPathView
from .layer_scrubber import LayerScrubber
from .training import TrainingView, show_training

__all__ = ["Dashboard", "DepthPathView", "LayerScrubber", "TrainingView", "chart", "link", "report", "show",
           "show_training"]
