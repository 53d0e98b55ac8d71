import { test } from "node:test";
import assert from "node:assert/strict";
import { sameLayer } from "../src/views/scrubber.js";

test("detail buffers: every layer (static), a prefetched span, or one layer (older replies)", () => {
  assert.equal(sameLayer(null, 3), false);
  assert.equal(sameLayer({ layer: null }, 3), true);
  assert.equal(sameLayer({}, 3), true);
  const live = { layer: 12, span: [11, 13] };
  assert.deepEqual([10, 11, 12, 13, 14].map((l) => sameLayer(live, l)), [false, true, true, true, false]);
  assert.deepEqual([11, 12, 13].map((l) => sameLayer({ layer: 12 }, l)), [false, true, false]);
});
