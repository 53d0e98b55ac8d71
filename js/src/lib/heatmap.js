// Layer × training-step heatmap: column order, value grid, colour scales, cell geometry and hit testing. Pure.

import { sequential } from "./scales.js";

// Checkpoint indices with a finite step, sorted by step (ties keep checkpoint order). Checkpoints without a step
// are left out: a training heatmap's x axis is the step.
export function stepOrder(steps) {
  const idx = [];
  for (let i = 0; i < (steps || []).length; i++) if (Number.isFinite(steps[i])) idx.push(i);
  return idx.sort((a, b) => steps[a] - steps[b] || a - b);
}

// Values of one table column as a grid: grid[col][layer] for the checkpoints in `order` and layers 0..maxLayer.
// rowOf(c, layer) -> table row or -1 (a missing layer, e.g. a shallower model, is NaN); column: a typed array
// indexed by table row (a score, or a paired difference against the reference computed in Python).
export function valueGrid(order, maxLayer, rowOf, column) {
  return order.map((c) => {
    const out = new Float64Array(maxLayer + 1).fill(NaN);
    for (let l = 0; l <= maxLayer; l++) {
      const r = rowOf(c, l);
      if (r >= 0 && column) out[l] = column[r];
    }
    return out;
  });
}

// Value at quantile q (0..1) of the finite values, linear interpolation between order statistics.
export function quantile(values, q) {
  const v = Array.from(values).filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const pos = Math.min(1, Math.max(0, q)) * (v.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

// Colour domain of a grid. Values: [q, 1-q] quantiles (one runaway evaluation must not wash out the rest; cells
// beyond are clamped and the legend says so). Differences: symmetric around 0, ±max(|q|, |1-q|) quantile.
// Returns {lo, hi, clippedLo, clippedHi, diverging}.
export function heatDomain(grid, { diverging = false, q = 0.02 } = {}) {
  const all = [];
  for (const col of grid) for (const v of col) if (Number.isFinite(v)) all.push(v);
  if (!all.length) return { lo: diverging ? -1 : 0, hi: 1, clippedLo: false, clippedHi: false, diverging };
  const min = Math.min(...all);
  const max = Math.max(...all);
  let lo = quantile(all, q);
  let hi = quantile(all, 1 - q);
  if (diverging) {
    let m = Math.max(Math.abs(lo), Math.abs(hi));
    if (!(m > 0)) m = Math.max(Math.abs(min), Math.abs(max)) || 1;
    lo = -m;
    hi = m;
  } else if (!(hi > lo)) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.05;
    lo -= d;
    hi += d;
  }
  return { lo, hi, clippedLo: min < lo - 1e-12, clippedHi: max > hi + 1e-12, diverging };
}

// Diverging ramp for differences: blue (negative) - near white (0) - red (positive); t in [0, 1], 0.5 = zero.
const DIVERGING = [
  [0.0, [33, 102, 172]], [0.2, [67, 147, 195]], [0.4, [209, 229, 240]], [0.5, [247, 247, 247]],
  [0.6, [253, 219, 199]], [0.8, [214, 96, 77]], [1.0, [178, 24, 43]],
];

function ramp(stops, t) {
  const x = Math.min(1, Math.max(0, t));
  for (let i = 1; i < stops.length; i++) {
    const [t1, c1] = stops[i];
    const [t0, c0] = stops[i - 1];
    if (x <= t1) {
      const u = t1 > t0 ? (x - t0) / (t1 - t0) : 0;
      return "#" + c0.map((v, j) => Math.round(v + (c1[j] - v) * u).toString(16).padStart(2, "0")).join("");
    }
  }
  return "#" + stops[stops.length - 1][1].map((v) => v.toString(16).padStart(2, "0")).join("");
}

export function diverging(t) {
  return ramp(DIVERGING, Number.isFinite(t) ? t : 0.5);
}

// value -> colour for a domain from heatDomain (clamped at its ends); null for a missing value.
export function heatColor(domain) {
  const { lo, hi } = domain;
  const span = hi - lo;
  const norm = (v) => (span > 0 ? Math.min(1, Math.max(0, (v - lo) / span)) : 0.5);
  const f = (v) => (Number.isFinite(v) ? (domain.diverging ? diverging(norm(v)) : sequential(norm(v))) : null);
  f.norm = norm;
  return f;
}

// Cell geometry inside box = {left, top, width, height}: columns left to right in step order, layer 0 at the
// bottom (depth grows upwards, as in the depth-path plot's y axis of a depth mode). Cells tile the box exactly.
export function heatLayout(box, nCols, nRows) {
  const cw = nCols > 0 ? box.width / nCols : 0;
  const rh = nRows > 0 ? box.height / nRows : 0;
  return {
    box, nCols, nRows, cellWidth: cw, cellHeight: rh,
    x: (col) => box.left + col * cw, // left edge of a column
    y: (row) => box.top + (nRows - 1 - row) * rh, // top edge of a layer's row
    cx: (col) => box.left + (col + 0.5) * cw,
    cy: (row) => box.top + (nRows - 1 - row + 0.5) * rh,
    // [col, row] under a point, or null outside the grid
    at(px, py) {
      if (!(cw > 0 && rh > 0)) return null;
      const col = Math.floor((px - box.left) / cw);
      const fromTop = Math.floor((py - box.top) / rh);
      if (col < 0 || col >= nCols || fromTop < 0 || fromTop >= nRows) return null;
      return [col, nRows - 1 - fromTop];
    },
  };
}

// At most `max` evenly spread column indices to label, always the first and the last.
export function labelEvery(n, max) {
  if (n <= 0) return [];
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const every = Math.ceil((n - 1) / Math.max(1, max - 1));
  const out = [];
  for (let i = 0; i < n - 1; i += every) out.push(i);
  if (n - 1 - out[out.length - 1] < every * 0.75 && out.length > 1) out.pop(); // keep the last label clear
  out.push(n - 1);
  return out;
}

// Keyboard moves over (column, layer): ←/→ one step, ↑/↓ one layer, PageUp/PageDown a tenth of the layers,
// Home/End first/last step. Returns [col, layer] or null when the key is not ours.
export function moveCell(col, layer, key, nCols, maxLayer) {
  const page = Math.max(1, Math.round(maxLayer / 10));
  const c = (v) => Math.min(nCols - 1, Math.max(0, v));
  const l = (v) => Math.min(maxLayer, Math.max(0, v));
  switch (key) {
    case "ArrowRight": return [c(col + 1), layer];
    case "ArrowLeft": return [c(col - 1), layer];
    case "ArrowUp": return [col, l(layer + 1)];
    case "ArrowDown": return [col, l(layer - 1)];
    case "PageUp": return [col, l(layer + page)];
    case "PageDown": return [col, l(layer - page)];
    case "Home": return [0, layer];
    case "End": return [c(nCols - 1), layer];
    default: return null;
  }
}
