import { test } from "node:test";
import assert from "node:assert/strict";
import { mountPlot } from "../src/lib/dom.js";

// node has no DOM: a ResizeObserver that the test triggers by hand, frames that run at once, a store that records
// subscriptions, and an element that only has a width.
function fakes() {
  const observers = [];
  globalThis.ResizeObserver = class {
    constructor(cb) {
      this.cb = cb;
      this.connected = false;
      observers.push(this);
    }
    observe() { this.connected = true; }
    disconnect() { this.connected = false; }
    resize(width) { this.cb([{ contentRect: { width } }]); }
  };
  globalThis.requestAnimationFrame = (f) => { f(); return 1; };
  globalThis.cancelAnimationFrame = () => {};
  const subs = [];
  const store = {
    on(names, cb) {
      const sub = { names, cb, active: true };
      subs.push(sub);
      return () => { sub.active = false; };
    },
  };
  return { observers, subs, store };
}

test("mountPlot draws once at the element's width, subscribes, redraws on resize and tears down", () => {
  const { observers, subs, store } = fakes();
  const log = [];
  let width = 640;
  const draw = () => log.push(["draw", width]);
  const restyle = () => log.push(["restyle", width]);
  const off = mountPlot({ clientWidth: 500 }, store, {
    on: [["mode window", draw], ["layer checkpoint", restyle]],
    resize: (w) => { width = w; },
    draw,
  });
  assert.deepEqual(log, [["draw", 500]]);
  assert.deepEqual(subs.map((x) => [x.names, x.cb]), [["mode window", draw], ["layer checkpoint", restyle]]);
  assert.equal(observers.length, 1);
  assert.ok(observers[0].connected);

  observers[0].resize(720.4);
  assert.deepEqual(log.at(-1), ["draw", 720]);
  observers[0].resize(720); // the same (rounded) width: no redraw
  observers[0].resize(0); // hidden: no redraw at width 0
  assert.equal(log.length, 2);

  off();
  assert.ok(subs.every((x) => !x.active));
  assert.ok(!observers[0].connected);
});

test("mountPlot keeps the view's width while the element has none yet (not attached)", () => {
  const { store } = fakes();
  const widths = [];
  let width = 640;
  mountPlot({ clientWidth: 0 }, store, { resize: (w) => { width = w; }, draw: () => widths.push(width) });
  assert.deepEqual(widths, [640]);
});
