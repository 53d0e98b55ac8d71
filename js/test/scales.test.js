import { test } from "node:test";
import assert from "node:assert/strict";
import { checkpointColors, extent, fmt, fmtInterval, fmtSigned, linear, log, nice, sequential, tickStep, ticks, CATEGORICAL } from "../src/lib/scales.js";
import * as scales from "../src/lib/scales.js";

test("extent skips non-finite values and pads by a fraction of the span", () => {
  assert.deepEqual(extent([[3, NaN, 1], new Float32Array([2, Infinity])]), [1, 3]);
  assert.deepEqual(extent([[0, 10]], 0.1), [-1, 11]);
  assert.deepEqual(extent([[NaN]]), [0, 1]);
  const [lo, hi] = extent([[2, 2]]);
  assert.ok(lo < 2 && hi > 2);
});

test("tick steps are 1, 2 or 5 times a power of ten", () => {
  for (const [lo, hi] of [[0, 1], [0.13, 0.47], [-3, 170], [1e-4, 3e-4], [0.5, 1.3]]) {
    const step = tickStep(lo, hi, 5);
    const m = step / 10 ** Math.floor(Math.log10(step) + 1e-12);
    assert.ok([1, 2, 5].some((x) => Math.abs(m - x) < 1e-9), `step ${step} for [${lo}, ${hi}]`);
    const t = ticks(lo, hi, 5);
    assert.ok(t.length >= 3 && t.length <= 11, `${t.length} ticks for [${lo}, ${hi}]`);
    assert.ok(t.every((v) => v >= lo - 1e-12 && v <= hi + 1e-12));
  }
  assert.deepEqual(ticks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(nice(0.13, 0.47, 5), [0.1, 0.5]);
});

test("linear scale maps and inverts, including reversed ranges (SVG y)", () => {
  const y = linear([0, 2], [300, 100]);
  assert.equal(y(0), 300);
  assert.equal(y(2), 100);
  assert.equal(y(1), 200);
  assert.equal(y.invert(150), 1.5);
});

test("log scale is linear in log10 and ticks at powers of ten", () => {
  const x = log([1, 1000], [0, 300]);
  assert.equal(x(10), 100);
  assert.ok(Math.abs(x.invert(200) - 100) < 1e-9);
  assert.deepEqual(x.ticks(), [1, 10, 100, 1000]);
  assert.deepEqual(log([1, 30], [0, 1]).ticks(), [1, 2, 5, 10, 20]);
  assert.throws(() => log([0, 10], [0, 1]));
});

test("formats: missing values are a dash, signs are explicit, minus is a real minus", () => {
  assert.equal(fmt(NaN), "—");
  assert.equal(fmt(null), "—");
  assert.equal(fmt(0.123456, 3), "0.123");
  assert.equal(fmt(12.3456, 3), "12.3");
  assert.equal(fmtSigned(0.25, 2), "+0.25");
  assert.equal(fmtSigned(-0.25, 2), "−0.25");
  assert.equal(fmtInterval(-0.1, 0.2, 2), "[−0.10, 0.20]");
  assert.equal(fmtInterval(NaN, 0.2), "");
});

test("colours: categorical for few checkpoints, sequential ordered by step for many", () => {
  const few = checkpointColors(["base", "dpo"]);
  assert.equal(few.kind, "categorical");
  assert.deepEqual(few.colors, CATEGORICAL.slice(0, 2));
  const names = Array.from({ length: 20 }, (_, i) => `s${i}`);
  const steps = names.map((_, i) => (19 - i) * 100); // later names = earlier steps
  const many = checkpointColors(names, steps);
  assert.equal(many.kind, "sequential");
  assert.equal(many.t[19], 0);
  assert.equal(many.t[0], 1);
  assert.equal(many.colors[19], sequential(0));
  assert.equal(new Set(many.colors).size, 20);
  const noSteps = checkpointColors(names, names.map(() => null));
  assert.equal(noSteps.t[0], 0); // by position when steps are missing
  assert.match(sequential(0.5), /^#[0-9a-f]{6}$/);
  assert.equal(sequential(0), "#440154"); // viridis start
});

test("a checkpoint's sample size reads N and N/d, with the caution flag from the header", () => {
  const { fmtSample } = scales;
  assert.deepEqual(fmtSample({ n: 4096, n_per_d: 8, caution: false }), { text: "N 4,096 · N/d 8.0", caution: false });
  assert.deepEqual(fmtSample({ n: 1152, n_per_d: 2, caution: true }), { text: "N 1,152 · N/d 2.0", caution: true });
  assert.deepEqual(fmtSample({ n: 64000, n_per_d: 125, caution: false }).text, "N 64,000 · N/d 125");
  assert.equal(fmtSample({ n: 300, n_per_d: null, caution: false }).text, "N 300 · N/d —");
  assert.equal(fmtSample(undefined).text, "N —");
});

test("logNice widens a positive range to 1-2-5 steps", async () => {
  const { logNice } = await import("../src/lib/scales.js");
  assert.deepEqual(logNice(0.043, 11.7), [0.02, 20]);
  assert.deepEqual(logNice(1, 10), [1, 10]);
  assert.deepEqual(logNice(0.3, 0.31), [0.2, 0.5]);
  assert.deepEqual(logNice(0, 5), [0.005, 5]);
});
