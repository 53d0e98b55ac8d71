// The views' shared state: one anywidget model (synced with Python) plus the decoded payloads derived from it.
// Every view in a dashboard reads and writes the same model, so linking is the model itself.

import { decodeColumns, indexRows, spectraByRow } from "./payload.js";
import { checkpointColors, extent } from "./scales.js";
import { clampLayer, stepLayer } from "./geometry.js";

export function createStore(model) {
  const cache = new Map();
  const offs = [];

  function derived(key, deps, build) {
    // rebuilt lazily after any of its traits changed
    if (!cache.has(key)) cache.set(key, build());
    if (!offs.some((o) => o.key === key)) {
      for (const d of deps) {
        const cb = () => cache.delete(key);
        model.on("change:" + d, cb);
        offs.push({ key, off: () => model.off("change:" + d, cb) });
      }
    }
    return cache.get(key);
  }

  // The changes go to the kernel after the frame that shows them (a message task queued from the frame's
  // requestAnimationFrame runs once its style, layout and paint are done), all the changes of that frame in one message.
  // Sent from the key's handler, the message's encoding and the websocket send ran inside the step's frame (≈ 1.3 ms
  // of a live step's handler in JupyterLab, in a profile); the kernel's reply comes tens of ms later in any case.
  // Until that send, an update from the kernel can come in between and put an older value back: ipywidgets applies the
  // echo of our previous message unless the trait waits in its own send buffer, which a change enters only when saved
  // (a held key in JupyterLab lost a step now and then: benchmarks/widget_held_key.py). So until the send the value set
  // here wins, as ipywidgets' buffer makes it win after.
  let saving = 0; // the backstop timer of a scheduled send, or 0
  const unsaved = new Map(); // trait -> the value set here and not yet sent
  const guarded = new Set();
  function guard(name) {
    if (guarded.has(name)) return;
    guarded.add(name);
    const keep = () => {
      if (unsaved.has(name) && model.get(name) !== unsaved.get(name)) model.set(name, unsaved.get(name));
    };
    model.on("change:" + name, keep);
    offs.push({ key: null, off: () => model.off("change:" + name, keep) });
  }
  function flush() {
    if (!saving) return;
    clearTimeout(saving);
    saving = 0;
    unsaved.clear();
    model.save_changes();
  }
  function saveAfterFrame() {
    if (saving) return;
    saving = setTimeout(flush, 100); // a hidden page draws no frames
    requestAnimationFrame(() => {
      const ch = new MessageChannel();
      ch.port1.onmessage = flush;
      ch.port2.postMessage(0);
    });
  }

  // Redraws once per frame: a view's redraw for a change (of the layer, say) runs in the next animation frame, with
  // every other redraw queued for that frame, in one callback. A held arrow key sends a step every 33 ms, faster than
  // a step is drawn on a slow machine: redrawing in the key's handler drew every step, one after the other, for frames
  // that showed only the last (in a held-key burst, two keydowns a frame; benchmarks/widget_held_key.py).
  const queued = new Set();
  let frameReq = 0;
  function runFrame() {
    frameReq = 0;
    const fns = [...queued];
    queued.clear();
    for (const fn of fns) {
      try {
        fn();
      } catch (err) {
        // reported as uncaught (the page's error event), but one view's error leaves the others drawn
        if (typeof reportError === "function") reportError(err);
        else setTimeout(() => { throw err; });
      }
    }
  }

  const store = {
    model,
    get: (name) => model.get(name),
    // run `fn` in the next animation frame, once however often it is asked for before then
    inFrame(fn) {
      queued.add(fn);
      if (!frameReq) frameReq = requestAnimationFrame(runFrame);
    },
    set(values) {
      for (const [k, v] of Object.entries(values)) {
        guard(k);
        unsaved.set(k, v);
        model.set(k, v);
      }
      saveAfterFrame();
    },
    // subscribe to trait changes ("layer checkpoint"); returns an unsubscribe function
    on(names, cb) {
      const list = names.split(/\s+/).filter(Boolean);
      for (const n of list) model.on("change:" + n, cb);
      const off = () => list.forEach((n) => model.off("change:" + n, cb));
      offs.push({ key: null, off });
      return off;
    },
    dispose() {
      flush();
      if (frameReq) cancelAnimationFrame(frameReq);
      frameReq = 0;
      queued.clear();
      offs.splice(0).forEach((o) => o.off());
      cache.clear();
    },

    get header() {
      return model.get("_header") || {};
    },
    get names() {
      return this.header.checkpoints || [];
    },
    get maxLayer() {
      return this.header.max_layer || 0;
    },
    get table() {
      return derived("table", ["_data", "_header"], () => decodeColumns(model.get("_header"), model.get("_data")));
    },
    get index() {
      return derived("index", ["_data", "_header"], () => indexRows(this.table, this.names.length));
    },
    get colors() {
      return derived("colors", ["_header"], () => checkpointColors(this.names, this.header.steps));
    },
    get deltas() {
      return derived("deltas", ["_deltas", "_deltas_header"],
        () => decodeColumns(model.get("_deltas_header"), model.get("_deltas")));
    },
    get spectra() {
      const hdr = model.get("_spectra_header");
      if (!hdr || !hdr.columns) return null;
      return derived("spectra", ["_spectra", "_spectra_header", "_data", "_header"],
        () => spectraByRow(hdr, model.get("_spectra"), this.table.rows));
    },
    get lens() {
      const hdr = model.get("_lens_header");
      if (!hdr || !hdr.columns) return null;
      return derived("lens", ["_lens", "_lens_header"], () => ({
        ...decodeColumns(hdr, model.get("_lens")),
        strings: hdr.strings || [],
        prompts: hdr.prompts || [],
      }));
    },
    // Range of a score over every checkpoint, intervals included (for stable axes while scrubbing).
    range(column, withIntervals = true) {
      const t = this.table;
      const cols = [t[column]];
      if (withIntervals && t[column + "_lo"]) cols.push(t[column + "_lo"], t[column + "_hi"]);
      return extent(cols, 0.04);
    },
    checkpointIndex() {
      return Math.max(0, this.names.indexOf(model.get("checkpoint")));
    },
    referenceIndex() {
      return Math.max(0, this.names.indexOf(model.get("reference")));
    },
    row(c, layer) {
      return this.index.row(c, layer);
    },
    setLayer(layer) {
      const l = clampLayer(layer, this.maxLayer);
      if (l !== model.get("layer")) this.set({ layer: l });
    },
    setCheckpoint(i) {
      const name = this.names[i];
      if (name !== undefined && name !== model.get("checkpoint")) this.set({ checkpoint: name });
    },
    // ←/→ (and Home/End/PageUp/PageDown) move the layer; returns true when the key was handled.
    handleKey(key) {
      const next = stepLayer(model.get("layer"), key, this.maxLayer);
      if (next === null) return false;
      this.setLayer(next);
      return true;
    },
  };
  return store;
}

// The widget root: themed container that takes keyboard focus and steps layers with the arrow keys.
// handleKey(key) -> true when handled; default: the arrow keys step the layer.
export function mountRoot(el, store, className, handleKey = (key) => store.handleKey(key)) {
  const root = document.createElement("div");
  root.className = "spinal-nb " + className;
  root.tabIndex = 0;
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", "spinal-nb depth trace view; the arrow keys move the selection");
  // Lumino (JupyterLab, Notebook 7) matches its keyboard shortcuts only outside elements marked like this, so the
  // arrow keys reach the widget instead of the notebook's command mode while the widget has focus
  suppressShortcuts(root);
  // Lumino walks from the key's target up to the first marked element, and a focused control inside the widget (the
  // slider, a button) matches command mode's `.jp-Notebook.jp-mod-commandMode :focus` itself, before the walk reaches
  // the root: ← on the slider went to the cell above. So whatever takes the focus in here is marked too. (Notebook 7
  // listens in the capture phase, so stopping the event's propagation below cannot keep it from Lumino.)
  root.addEventListener("focusin", (ev) => suppressShortcuts(ev.target));
  root.addEventListener("keydown", (ev) => {
    const tag = ev.target && ev.target.tagName;
    if (tag === "SELECT" || tag === "INPUT" || tag === "TEXTAREA") return; // those handle their own keys
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (handleKey(ev.key)) {
      ev.preventDefault();
      ev.stopPropagation(); // keep JupyterLab's command-mode shortcuts out of it
    }
  });
  el.append(root);
  return root;
}

function suppressShortcuts(node) {
  if (!node || !node.setAttribute || node.hasAttribute("data-lm-suppress-shortcuts")) return;
  node.setAttribute("data-lm-suppress-shortcuts", "true");
  node.setAttribute("data-p-suppress-shortcuts", "true");
}
