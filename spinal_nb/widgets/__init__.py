"""Interactive views of a TraceFrame (anywidget): depth path, layer scrubber, linked dashboard, training view;
static charts.

Usage (needs a TraceFrame and a notebook: an illustration, not a doctest)::

    from spinal_nb.widgets import show, chart
    dash = show(frame)            # linked dashboard; dash.layer / dash.checkpoint are synced with the browser
    dash.to_html("audit.html")    # self-contained, offline
    report(frame, "audit.html", reference="base")   # the same as `spinal report`
    chart(frame, kind="path").save("path.svg")
    view = TrainingView(read_training_trace("run/spinal-trace"))  # layer × step heatmap
    cb = SpinalCallback(probes, on_evaluation=view.update)        # live refresh
"""
from .charts import chart
from .dashboard import Dashboard, link, report, show
from .depth_path import DepthPathView
from .layer_scrubber import LayerScrubber
from .training import TrainingView, show_training

__all__ = ["Dashboard", "DepthPathView", "LayerScrubber", "TrainingView", "chart", "link", "report", "show",
           "show_training"]
