// anywidget entry: spinal_nb.widgets.DepthPathView
import { createStore, mountRoot } from "../lib/store.js";
import { mountDepthPath } from "../views/depth_path.js";

function render({ model, el }) {
  const store = createStore(model);
  const root = mountRoot(el, store, "spn-depth-view");
  const off = mountDepthPath(root, store, { height: model.get("height") || 380 });
  return () => {
    off();
    store.dispose();
  };
}

export default { render };
