import { test } from "node:test";
import assert from "node:assert/strict";
import {
  diverging, heatColor, heatDomain, heatLayout, labelEvery, moveCell, quantile, stepOrder, valueGrid,
} from "../src/lib/heatmap.js";
import { sequential } from "../src/lib/scales.js";

test("columns are the checkpoints with a step, in step order (ties keep checkpoint order)", () => {
  assert.deepEqual(stepOrder([300, 0, null, 100, 100]), [1, 3, 4, 0]);
  assert.deepEqual(stepOrder([]), []);
  assert.deepEqual(stepOrder(null), []);
});

test("value grid: grid[col][layer] from table rows, missing layers are NaN", () => {
  // checkpoint 0 has layers 0..2 at rows 0..2; checkpoint 1 only layers 0..1 at rows 3..4
  const rows = new Map([["0:0", 0], ["0:1", 1], ["0:2", 2], ["1:0", 3], ["1:1", 4]]);
  const rowOf = (c, l) => (rows.has(`${c}:${l}`) ? rows.get(`${c}:${l}`) : -1);
  const col = new Float32Array([0.5, 0.6, 0.7, 1.5, 1.6]);
  const g = valueGrid([1, 0], 2, rowOf, col);
  assert.equal(g.length, 2);
  assert.deepEqual(Array.from(g[1]), [0.5, 0.6, 0.7].map((v) => Math.fround(v)));
  assert.equal(g[0][0], Math.fround(1.5));
  assert.ok(Number.isNaN(g[0][2]));
  assert.ok(valueGrid([0], 2, rowOf, undefined)[0].every(Number.isNaN)); // a column the payload lacks
});

test("quantiles interpolate between order statistics and skip non-finite values", () => {
  assert.equal(quantile([3, 1, 2, NaN, 4], 0), 1);
  assert.equal(quantile([3, 1, 2, NaN, 4], 1), 4);
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.ok(Number.isNaN(quantile([NaN], 0.5)));
});

test("domain clips one runaway evaluation and says so; differences are symmetric around 0", () => {
  const cols = Array.from({ length: 10 }, (_, c) => Float64Array.from({ length: 10 }, (_, l) => c * 10 + l));
  cols[9][9] = 1e6; // a diverging run's last evaluation
  const d = heatDomain(cols, { q: 0.02 });
  assert.ok(d.hi < 1000 && d.clippedHi, JSON.stringify(d));
  const all = heatDomain(cols, { q: 0 }); // q = 0: the full range, nothing clipped
  assert.deepEqual([all.lo, all.hi, all.clippedLo, all.clippedHi], [0, 1e6, false, false]);
  assert.equal(d.lo, quantile(cols.flatMap((c) => Array.from(c)), 0.02));
  const dd = heatDomain([Float64Array.from([-0.1, 0.3, 0.2, NaN])], { diverging: true, q: 0 });
  assert.deepEqual([dd.lo, dd.hi], [-0.3, 0.3]);
  const flat = heatDomain([Float64Array.from([2, 2])]);
  assert.ok(flat.lo < 2 && flat.hi > 2);
  const empty = heatDomain([Float64Array.from([NaN])]);
  assert.deepEqual([empty.lo, empty.hi], [0, 1]);
});

test("colours: sequential for values, white at 0 for differences, ends clamped, null for missing", () => {
  const c = heatColor({ lo: 1, hi: 3, diverging: false });
  assert.equal(c(1), sequential(0));
  assert.equal(c(3), sequential(1));
  assert.equal(c(99), sequential(1)); // clamped
  assert.equal(c(2), sequential(0.5));
  assert.equal(c(NaN), null);
  const d = heatColor({ lo: -2, hi: 2, diverging: true });
  assert.equal(d(0), "#f7f7f7");
  assert.equal(d(0), diverging(0.5));
  assert.equal(d(-2), "#2166ac"); // blue: lower than the reference
  assert.equal(d(2), "#b2182b"); // red: higher
  assert.equal(d.norm(1), 0.75);
});

test("cell layout tiles the box; layer 0 is the bottom row; hit testing inverts it", () => {
  const box = { left: 40, top: 20, width: 300, height: 250 };
  const g = heatLayout(box, 12, 25);
  assert.equal(g.cellWidth, 25);
  assert.equal(g.cellHeight, 10);
  assert.equal(g.x(0), 40);
  assert.equal(g.x(12), 340); // right edge of the last column
  assert.equal(g.y(24), 20); // the deepest layer at the top
  assert.equal(g.y(0) + g.cellHeight, 270); // layer 0 touches the bottom
  for (const [col, row] of [[0, 0], [11, 24], [5, 13]]) {
    assert.deepEqual(g.at(g.cx(col), g.cy(row)), [col, row]);
    assert.deepEqual(g.at(g.x(col) + 0.01, g.y(row) + 0.01), [col, row]); // top-left corner belongs to the cell
  }
  assert.equal(g.at(39.9, 100), null);
  assert.equal(g.at(100, 270.1), null);
  assert.equal(heatLayout(box, 0, 5).at(50, 50), null);
});

test("step labels: at most max, evenly spread, first and last always kept", () => {
  assert.deepEqual(labelEvery(4, 10), [0, 1, 2, 3]);
  const l = labelEvery(100, 8);
  assert.ok(l.length <= 8 && l[0] === 0 && l[l.length - 1] === 99, String(l));
  const gaps = l.slice(1, -1).map((v, i) => v - l[i]);
  assert.ok(gaps.every((g) => g === gaps[0]));
  assert.deepEqual(labelEvery(0, 5), []);
  assert.deepEqual(labelEvery(1, 5), [0]);
});

test("keys: left/right move steps, up/down move layers, clamped", () => {
  assert.deepEqual(moveCell(3, 10, "ArrowRight", 5, 24), [4, 10]);
  assert.deepEqual(moveCell(4, 10, "ArrowRight", 5, 24), [4, 10]);
  assert.deepEqual(moveCell(0, 10, "ArrowLeft", 5, 24), [0, 10]);
  assert.deepEqual(moveCell(2, 24, "ArrowUp", 5, 24), [2, 24]);
  assert.deepEqual(moveCell(2, 0, "ArrowDown", 5, 24), [2, 0]);
  assert.deepEqual(moveCell(2, 10, "PageUp", 5, 24), [2, 12]);
  assert.deepEqual(moveCell(2, 10, "End", 5, 24), [4, 10]);
  assert.deepEqual(moveCell(2, 10, "Home", 5, 24), [0, 10]);
  assert.equal(moveCell(2, 10, "a", 5, 24), null);
});
