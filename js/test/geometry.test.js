import { test } from "node:test";
import assert from "node:assert/strict";
import {
  bandD, clampLayer, nearest, pathD, placeTooltip, ruleLabel, stepLayer, tailLine, textWidth, windowStart,
} from "../src/lib/geometry.js";

test("pathD breaks the line at missing values instead of drawing through them", () => {
  assert.equal(pathD([[0, 0], [1, 2]]), "M0.00 0.00L1.00 2.00");
  assert.equal(pathD([[0, 0], [1, NaN], [2, 2], [3, 3]]), "M0.00 0.00M2.00 2.00L3.00 3.00");
  assert.equal(pathD([]), "");
});

test("bandD makes one closed polygon per run of finite intervals", () => {
  const d = bandD([0, 1, 2, 3, 4], [0, 0, NaN, 0, 0], [1, 1, 1, 1, 1]);
  assert.equal((d.match(/Z/g) || []).length, 2);
  assert.equal(bandD([0, 1], [0, NaN], [1, 1]), ""); // a single point is not a band
});

test("nearest finds the closest point within the radius, skipping missing ones", () => {
  const pts = [[0, 0], [10, 10], [NaN, 5], [20, 0]];
  assert.equal(nearest(pts, 9, 9), 1);
  assert.equal(nearest(pts, 19, 1, 3), 3);
  assert.equal(nearest(pts, 50, 50, 5), -1);
});

test("layer stepping: arrows by one, page by a tenth, Home/End, clamped; other keys ignored", () => {
  assert.equal(stepLayer(5, "ArrowRight", 30), 6);
  assert.equal(stepLayer(5, "ArrowLeft", 30), 4);
  assert.equal(stepLayer(0, "ArrowLeft", 30), 0);
  assert.equal(stepLayer(30, "ArrowRight", 30), 30);
  assert.equal(stepLayer(5, "PageUp", 30), 8);
  assert.equal(stepLayer(5, "End", 30), 30);
  assert.equal(stepLayer(5, "Home", 30), 0);
  assert.equal(stepLayer(5, "a", 30), null);
  assert.equal(clampLayer(3.6, 30), 4);
  assert.equal(clampLayer(NaN, 30), 0);
});

test("windowStart finds the first layer in the terminal window", () => {
  const depths = Array.from({ length: 31 }, (_, l) => l / 30);
  assert.equal(windowStart(depths, 0.7), 21); // the paper's window: blocks 21-30 of 30
  assert.equal(windowStart([0, 0.5], 0.7), -1);
});

test("tailLine follows sigma = exp(b) k^-alpha at both ends", () => {
  const [[k0, s0], [k1, s1]] = tailLine(0.8, Math.log(5), 10, 100);
  assert.equal(k0, 10);
  assert.ok(Math.abs(s0 - 5 * 10 ** -0.8) < 1e-12);
  assert.ok(Math.abs(-Math.log(s1 / s0) / Math.log(k1 / k0) - 0.8) < 1e-12);
  assert.equal(tailLine(NaN, 0, 1, 2), null);
  assert.equal(tailLine(1, 0, 5, 2), null);
});

test("tooltips stay inside the plot", () => {
  assert.deepEqual(placeTooltip(10, 10, 100, 50, 500, 300), [22, 22]);
  assert.deepEqual(placeTooltip(480, 290, 100, 50, 500, 300), [368, 228]);
});

test("a rule's label stays inside the plot: left of the rule when it fits, else right of it", () => {
  assert.deepEqual(ruleLabel(200, 50, 52, 300), { x: 197, anchor: "end" });
  // an onset at depth 0 sits on the y axis: its label went left of it, over the tick labels
  assert.deepEqual(ruleLabel(52, 50, 52, 300), { x: 55, anchor: "start" });
  assert.deepEqual(ruleLabel(80, 50, 52, 300), { x: 83, anchor: "start" });
  assert.deepEqual(ruleLabel(60, 500, 52, 300), { x: 55, anchor: "start" }); // wider than the plot
  assert.ok(textWidth("onset ℓ12", 10) > 50);
});
