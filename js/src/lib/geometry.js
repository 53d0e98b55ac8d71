// Plot geometry shared by the views: SVG path strings, hit testing, layer stepping, fitted tail lines. Pure.

// SVG path through [x, y] points; a non-finite point breaks the line (a null score is a gap, not a zero).
export function pathD(points) {
  let d = "";
  let pen = false;
  for (const [x, y] of points) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      pen = false;
      continue;
    }
    d += (pen ? "L" : "M") + x.toFixed(2) + " " + y.toFixed(2);
    pen = true;
  }
  return d;
}

// Closed SVG path of an interval band (x, lo..hi), one polygon per run of points where all three are finite.
export function bandD(xs, lo, hi) {
  let d = "";
  let run = [];
  const flush = () => {
    if (run.length >= 2) {
      const up = run.map((i) => [xs[i], hi[i]]);
      const dn = run.map((i) => [xs[i], lo[i]]).reverse();
      d += pathD(up) + pathD(dn).replace(/^M/, "L") + "Z";
    }
    run = [];
  };
  for (let i = 0; i < xs.length; i++) {
    if ([xs[i], lo[i], hi[i]].every(Number.isFinite)) run.push(i);
    else flush();
  }
  flush();
  return d;
}

// Index of the point nearest to (x, y) within maxDist pixels, or -1. points: [[x, y], ...] (non-finite skipped).
export function nearest(points, x, y, maxDist = Infinity) {
  let best = -1;
  let bestD = maxDist * maxDist;
  for (let i = 0; i < points.length; i++) {
    const [px, py] = points[i];
    if (!Number.isFinite(px) || !Number.isFinite(py)) continue;
    const d = (px - x) ** 2 + (py - y) ** 2;
    if (d <= bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

export function clampLayer(layer, maxLayer) {
  if (!Number.isFinite(layer)) return 0;
  return Math.min(maxLayer, Math.max(0, Math.round(layer)));
}

// Keyboard stepping over layers: arrows move by one, PageUp/PageDown by a tenth of the depth, Home/End to the ends.
// Returns the new layer, or null when the key is not ours.
export function stepLayer(layer, key, maxLayer) {
  const page = Math.max(1, Math.round(maxLayer / 10));
  const moves = {
    ArrowRight: layer + 1, ArrowUp: layer + 1, ArrowLeft: layer - 1, ArrowDown: layer - 1,
    PageUp: layer + page, PageDown: layer - page, Home: 0, End: maxLayer,
  };
  return key in moves ? clampLayer(moves[key], maxLayer) : null;
}

// First layer whose depth reaches the terminal window (depth >= terminalDepth), or -1.
export function windowStart(depths, terminalDepth) {
  for (let i = 0; i < depths.length; i++) if (depths[i] >= terminalDepth - 1e-9) return i;
  return -1;
}

// End points of the fitted tail line log sigma = intercept - alpha log k over ranks [kLo, kHi].
export function tailLine(alpha, intercept, kLo, kHi) {
  if (![alpha, intercept, kLo, kHi].every(Number.isFinite) || kLo <= 0 || kHi < kLo) return null;
  const at = (k) => [k, Math.exp(intercept - alpha * Math.log(k))];
  return [at(kLo), at(kHi)];
}

// Tooltip placement: keep a box of size (w, h) next to the cursor and inside [0, width] x [0, height].
export function placeTooltip(x, y, w, h, width, height, gap = 12) {
  let left = x + gap;
  if (left + w > width) left = x - gap - w;
  let top = y + gap;
  if (top + h > height) top = y - gap - h;
  return [Math.max(0, left), Math.max(0, top)];
}

// Where to put the label of a vertical rule at px inside a plot [left, right]: to its left (anchor "end") when a label
// of `width` pixels fits there, else to its right, else at the left edge. A label left of the plot met the tick labels.
export function ruleLabel(px, width, left, right, gap = 3) {
  if (px - gap - width >= left) return { x: px - gap, anchor: "end" };
  if (px + gap + width <= right) return { x: px + gap, anchor: "start" };
  return { x: left + gap, anchor: "start" };
}

// A label's width estimated from its length (no layout read: that would force a layout on every redraw). Generous:
// 0.62 em per character covers the wide sans fonts that "system-ui" can resolve to.
export function textWidth(text, fontSize) {
  return String(text).length * fontSize * 0.62;
}
