// anywidget entry: spinal_nb.widgets.Dashboard — depth path, compare summary and layer scrubber on one model,
// so the selected layer and checkpoint are linked by construction (and synced with Python).
import { h } from "../lib/dom.js";
import { createStore, mountRoot } from "../lib/store.js";
import { mountDepthPath } from "../views/depth_path.js";
import { mountScrubber } from "../views/scrubber.js";
import { mountSummary } from "../views/summary.js";

function render({ model, el }) {
  const store = createStore(model);
  const root = mountRoot(el, store, "spn-dashboard");
  const title = model.get("title");
  if (title) root.append(h("div", { class: "spn-dash-title", text: title }));
  const top = h("div", { class: "spn-dash-top" });
  const left = h("div", { class: "spn-dash-main" });
  const right = h("div", { class: "spn-dash-side" });
  top.append(left, right);
  root.append(top);
  const offs = [
    mountDepthPath(left, store, { height: model.get("height") || 380 }),
    mountSummary(right, store),
    mountScrubber(root, store),
  ];
  return () => {
    offs.forEach((off) => off());
    store.dispose();
  };
}

export default { render };
