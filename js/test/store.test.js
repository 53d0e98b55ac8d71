import { test } from "node:test";
import assert from "node:assert/strict";
import { createStore } from "../src/lib/store.js";

// A model with Backbone's event semantics (change:<name> after each changed trait, sets from inside a handler
// allowed) and a record of what save_changes sent: the traits set since the last send, with their values then.
function fakeModel(attrs) {
  const handlers = new Map();
  const dirty = new Set();
  const sent = [];
  const model = {
    get: (k) => attrs[k],
    set(k, v) {
      if (attrs[k] === v) return;
      attrs[k] = v;
      dirty.add(k);
      for (const cb of [...(handlers.get("change:" + k) || [])]) cb(model, v);
    },
    on(ev, cb) { handlers.set(ev, [...(handlers.get(ev) || []), cb]); },
    off(ev, cb) { handlers.set(ev, (handlers.get(ev) || []).filter((f) => f !== cb)); },
    save_changes() {
      sent.push(Object.fromEntries([...dirty].map((k) => [k, attrs[k]])));
      dirty.clear();
    },
  };
  // the kernel's update (ipywidgets' set_state: the echo of an earlier message, or Python setting a trait); as
  // ipywidgets does, a trait that ends the update at the kernel's value is not sent back
  const fromKernel = (k, v) => {
    model.set(k, v);
    if (attrs[k] === v) dirty.delete(k);
  };
  return { model, sent, fromKernel };
}

// frames by hand; the message that follows a frame (MessageChannel) as a macrotask
function frames() {
  const queue = [];
  globalThis.requestAnimationFrame = (f) => { queue.push(f); return queue.length; };
  globalThis.cancelAnimationFrame = () => {};
  globalThis.MessageChannel = class {
    constructor() {
      this.port1 = { onmessage: null };
      this.port2 = { postMessage: () => setImmediate(() => this.port1.onmessage && this.port1.onmessage()) };
    }
  };
  return async () => {
    for (const f of queue.splice(0)) f();
    await new Promise((r) => setImmediate(r));
  };
}

test("a kernel update before the change is sent does not put the older layer back", async () => {
  const frame = frames();
  const { model, sent, fromKernel } = fakeModel({ layer: 10, _header: { max_layer: 30 } });
  const store = createStore(model);
  store.set({ layer: 9 });
  store.set({ layer: 8 });
  fromKernel("layer", 9); // the echo of an earlier message arrives before this frame's send
  assert.equal(model.get("layer"), 8);
  await frame();
  assert.deepEqual(sent, [{ layer: 8 }]); // one message, the value the page shows
  // once sent, the kernel's updates apply (ipywidgets' own buffer guards the later ones)
  fromKernel("layer", 3);
  assert.equal(model.get("layer"), 3);
  store.dispose();
});

test("changes of one frame go in one message, after the frame", async () => {
  const frame = frames();
  const { model, sent } = fakeModel({ layer: 10, checkpoint: "a", _header: { max_layer: 30 } });
  const store = createStore(model);
  store.set({ layer: 9 });
  store.set({ checkpoint: "b", layer: 7 });
  assert.deepEqual(sent, []);
  await frame();
  assert.deepEqual(sent, [{ layer: 7, checkpoint: "b" }]);
  store.dispose();
});

test("a view whose redraw throws leaves the other views of that frame drawn, and the error is reported", async () => {
  const frame = frames();
  const { model } = fakeModel({ layer: 10, _header: { max_layer: 30 } });
  const store = createStore(model);
  const drawn = [];
  const reported = [];
  globalThis.reportError = (err) => reported.push(err.message); // the browser's: an uncaught error, not thrown here
  store.inFrame(() => { throw new Error("broken view"); });
  store.inFrame(() => drawn.push("other view"));
  await frame();
  assert.deepEqual(drawn, ["other view"]);
  assert.deepEqual(reported, ["broken view"]);
  store.dispose();
});
