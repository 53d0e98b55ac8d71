// The spectrum's dense part on a canvas: every checkpoint's singular values against rank (up to 20 × 200 points),
// the fit window of the selected one and its dashed tail line. A scrub step repaints the canvas, or copies onto it the
// next layer's curves painted ahead on a canvas off the page (scrubber.js, prepareSpectrum); no element changes.

// Size the canvas for `width` × `height` CSS pixels at the screen's pixel ratio (sharp lines on HiDPI screens).
export function sizeCanvas(canvas, width, height) {
  const dpr = Math.max(1, Math.min(3, (typeof window !== "undefined" && window.devicePixelRatio) || 1));
  const w = Math.round(width * dpr);
  const h = Math.round(height * dpr);
  // setting a canvas's size clears and reallocates its bitmap, even to the same size
  if (canvas.width === w && canvas.height === h && canvas.dataset.dpr === String(dpr)) return;
  canvas.width = w;
  canvas.height = h;
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  canvas.dataset.dpr = String(dpr);
}

// The bitmap of `src` (a canvas of the same size, painted ahead) in place of `dst`'s: one copy, no path to stroke.
export function copyCanvas(dst, src) {
  const ctx = dst.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.globalAlpha = 1;
  ctx.clearRect(0, 0, dst.width, dst.height);
  ctx.drawImage(src, 0, 0);
}

// series: [{c, k, sigma}]; x, y: log scales; fit: {kLo, kHi, line: [[k, sigma], [k, sigma]] | null} or null;
// colors: per checkpoint; palette: {fg, window} (the theme's colours). The selected checkpoint is drawn last, on top.
export function paintSpectrum(canvas, { width, height, box, x, y, series, sel, fit, colors, palette }) {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const dpr = +canvas.dataset.dpr || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.left, box.top, box.width, box.height);
  ctx.clip();
  if (fit) {
    const x0 = x(Math.max(fit.kLo, x.domain[0]));
    const x1 = x(Math.min(fit.kHi, x.domain[1]));
    ctx.fillStyle = palette.window;
    ctx.fillRect(x0, box.top, Math.max(0, x1 - x0), box.height);
  }
  ctx.lineJoin = "round";
  const order = series.filter((q) => q.c !== sel).concat(series.filter((q) => q.c === sel));
  for (const q of order) {
    const on = q.c === sel;
    ctx.globalAlpha = on ? 1 : 0.3;
    ctx.lineWidth = on ? 2 : 1;
    ctx.strokeStyle = colors[q.c];
    polyline(ctx, q.k, q.sigma, x, y);
  }
  if (fit && fit.line) {
    ctx.globalAlpha = 1;
    ctx.setLineDash([5, 3]);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = palette.fg;
    polyline(ctx, fit.line.map(([k]) => k), fit.line.map(([, v]) => v), x, y);
    ctx.setLineDash([]);
  }
  ctx.restore();
}

// One stroke through the finite points (a gap where a point is not).
function polyline(ctx, ks, vs, x, y) {
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < ks.length; i++) {
    const px = x(ks[i]);
    const py = y(vs[i]);
    if (!Number.isFinite(px) || !Number.isFinite(py)) {
      pen = false;
      continue;
    }
    if (pen) ctx.lineTo(px, py);
    else ctx.moveTo(px, py);
    pen = true;
  }
  ctx.stroke();
}
