"""Interactive views of a TraceFrame (anywidget): depth path, layer scrubber, linked dashboard; static charts.

    >>> from spinal_nb.widgets import show, chart      # doctest: +SKIP
    >>> dash = show(frame)            # linked dashboard; dash.layer / dash.checkpoint are synced with the browser
    >>> dash.to_html("audit.html")    # self-contained, offline
    >>> chart(frame, kind="path").save("path.svg")
"""
from .charts import chart
from .dashboard import Dashboard, link, show
from .depth_path import DepthPathView
from .layer_scrubber import LayerScrubber

__all__ = ["Dashboard", "DepthPathView", "LayerScrubber", "chart", "link", "show"]
