// anywidget entry: spinal_nb.widgets.LayerScrubber
import { createStore, mountRoot } from "../lib/store.js";
import { mountScrubber } from "../views/scrubber.js";

function render({ model, el }) {
  const store = createStore(model);
  const root = mountRoot(el, store, "spn-scrubber-view");
  const off = mountScrubber(root, store);
  return () => {
    off();
    store.dispose();
  };
}

export default { render };
