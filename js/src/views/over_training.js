// Step and layer scrubbers with a readout of the selected cell, and the selected layer's score over training
// (interval band, reference level, selected step, alerts).

import { axes, clear, h, mountPlot, s } from "../lib/dom.js";
import { bandD, pathD } from "../lib/geometry.js";
import { extent, fmt, fmtInterval, fmtSigned, fmtTick, linear, nice } from "../lib/scales.js";
import { HEAT, alertSteps, trainingOrder } from "./heatmap.js";

export function mountTrainingScrubber(parent, store) {
  const panel = h("section", { class: "spn-panel spn-train-scrub" });
  const stepSlider = h("input", { class: "spn-slider spn-slider-plain", type: "range", min: 0, step: 1,
    "aria-label": "training step" });
  const layerSlider = h("input", { class: "spn-slider", type: "range", min: 0, step: 1, "aria-label": "layer" });
  const stepOut = h("span", { class: "spn-readout spn-step-out" });
  const stepOf = h("span", { class: "spn-depth-out" });
  const layerOut = h("span", { class: "spn-readout spn-layer-out" });
  const depthOut = h("span", { class: "spn-depth-out" });
  const badge = h("span", { class: "spn-badge spn-badge-window", text: "terminal window" });
  const cell = h("div", { class: "spn-cell-readout" });
  panel.append(
    h("div", { class: "spn-scrub-grid" }, [
      h("h3", { class: "spn-title", text: "Step" }), h("div", { class: "spn-slider-wrap" }, [stepSlider]),
      h("div", { class: "spn-scrub-out" }, [stepOut, stepOf]),
      h("h3", { class: "spn-title", text: "Layer" }), h("div", { class: "spn-slider-wrap" }, [layerSlider]),
      h("div", { class: "spn-scrub-out" }, [layerOut, depthOut, badge]),
    ]),
    cell,
    h("div", { class: "spn-hint spn-hint-line", text: "click or drag on the heatmap · ← → steps · ↑ ↓ layers" }),
  );
  parent.append(panel);

  stepSlider.addEventListener("input", () => {
    const { order } = trainingOrder(store);
    const c = order[+stepSlider.value];
    if (c !== undefined) store.setCheckpoint(c);
  });
  layerSlider.addEventListener("input", () => store.setLayer(+layerSlider.value));

  function update() {
    const { order, steps } = trainingOrder(store);
    const sel = store.checkpointIndex();
    const col = order.indexOf(sel);
    const L = store.maxLayer;
    const layer = store.get("layer");
    const win = store.get("terminal_depth");
    stepSlider.max = Math.max(0, order.length - 1);
    stepSlider.value = Math.max(0, col);
    layerSlider.max = L;
    layerSlider.value = layer;
    layerSlider.style.setProperty("--win", `${((Math.ceil(win * L - 1e-9) - 0.5) / L) * 100}%`);
    stepOut.textContent = col >= 0 ? String(steps[col]) : "—";
    stepOf.textContent = `evaluation ${col + 1} of ${order.length}`;
    layerOut.textContent = `${layer} / ${L}`;
    const r = store.row(sel, layer);
    const t = store.table;
    const depth = r >= 0 ? t.depth[r] : layer / L;
    depthOut.textContent = `depth ${fmt(depth, 2)}`;
    badge.style.visibility = depth >= win - 1e-9 ? "visible" : "hidden";
    panel.dataset.layer = layer;
    panel.dataset.step = col >= 0 ? String(steps[col]) : "";
    clear(cell);
    const d = store.deltas;
    const ref = store.get("reference");
    cell.append(h("span", { class: "spn-cell-name", text: store.names[sel] || "" }));
    if (r < 0) {
      cell.append(h("span", { class: "spn-muted", text: `no layer ${layer} in this checkpoint` }));
      return;
    }
    for (const key of ["contraction", "transport", "entropy"]) {
      const dc = "d_" + key;
      const dv = d[dc] ? d[dc][r] : NaN;
      const lo = d[dc + "_lo"] ? d[dc + "_lo"][r] : NaN;
      const hi = d[dc + "_hi"] ? d[dc + "_hi"][r] : NaN;
      const sig = Number.isFinite(lo) && Number.isFinite(hi) && (lo > 0 || hi < 0);
      cell.append(h("span", { class: "spn-cell-item", "data-score": key }, [
        h("span", { class: "spn-dt", text: HEAT[key].label }),
        h("b", { class: "spn-num", text: fmt(t[key][r], 3) }),
        h("small", { class: "spn-muted", text: fmtInterval(t[key + "_lo"][r], t[key + "_hi"][r]) }),
        Number.isFinite(dv) ? h("span", { class: "spn-num" + (sig ? " spn-sig" : ""),
          title: `paired difference from ${ref}${sig ? ": interval excludes 0" : ""}`,
          text: ` Δ ${fmtSigned(dv, 3)}` }) : null,
      ]));
    }
    const alerts = alertSteps(store);
    if (col >= 0 && alerts.has(steps[col])) {
      cell.append(h("span", { class: "spn-badge spn-badge-sig", text: "alert", title: alerts.get(steps[col]) }));
    }
  }

  const offs = [store.on("layer checkpoint reference terminal_depth heat _data _header _deltas _alerts",
    () => store.inFrame(update))];
  update();
  return () => offs.forEach((off) => off());
}

export function mountOverTraining(parent, store, { height = 200 } = {}) {
  const panel = h("section", { class: "spn-panel spn-over" });
  const title = h("h3", { class: "spn-title" });
  panel.append(h("header", { class: "spn-head" }, [title]));
  const plot = h("div", { class: "spn-plot", style: { height: height + "px" } });
  const svg = s("svg", { class: "spn-svg", height, role: "img" });
  plot.append(svg);
  const caption = h("p", { class: "spn-caption" });
  panel.append(plot, caption);
  parent.append(panel);
  let width = 640;
  let pts = [];

  function draw() {
    const heat = store.get("heat") || "contraction";
    const layer = store.get("layer");
    const { order, steps } = trainingOrder(store);
    const t = store.table;
    const rows = order.map((c) => store.row(c, layer));
    const val = (col, r) => (r >= 0 ? t[col][r] : NaN);
    const v = rows.map((r) => val(heat, r));
    const lo = rows.map((r) => val(heat + "_lo", r));
    const hi = rows.map((r) => val(heat + "_hi", r));
    title.textContent = `${HEAT[heat].label} at layer ${layer} over training`;
    svg.setAttribute("width", width);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("aria-label", title.textContent);
    clear(svg);
    const box = { left: 64, top: 10, width: Math.max(120, width - 64 - 18), height: height - 10 - 40 };
    const xs = steps.length ? [steps[0], steps[steps.length - 1]] : [0, 1];
    const xd = xs[1] > xs[0] ? xs : [xs[0] - 1, xs[0] + 1];
    const ref = store.referenceIndex();
    const refRow = store.row(ref, layer);
    const refV = refRow >= 0 ? t[heat][refRow] : NaN;
    const yd = nice(...extent([v, lo, hi, [refV]], 0.06), 4);
    const x = linear(xd, [box.left, box.left + box.width]);
    const y = linear(yd, [box.top + box.height, box.top]);
    axes(svg, x, y, box, { xLabel: "training step", yLabel: HEAT[heat].label, xFormat: fmtTick, yFormat: fmtTick,
      xTicks: 8, yTicks: 4 });
    const px = steps.map((st) => x(st));
    if (Number.isFinite(refV)) {
      svg.append(s("line", { class: "spn-ref-line", x1: box.left, x2: box.left + box.width, y1: y(refV), y2: y(refV) }));
      svg.append(s("text", { class: "spn-window-label", x: box.left + box.width - 4, y: y(refV) - 4,
        "text-anchor": "end", text: `reference (${store.get("reference")})` }));
    }
    const alerts = alertSteps(store);
    steps.forEach((st, i) => {
      if (!alerts.has(st)) return;
      svg.append(s("line", { class: "spn-alert-rule", x1: px[i], x2: px[i], y1: box.top, y2: box.top + box.height }));
    });
    const color = "var(--spn-fg)";
    svg.append(s("path", { class: "spn-band", d: bandD(px, lo.map(y), hi.map(y)), fill: color }));
    pts = steps.map((_, i) => [px[i], y(v[i])]);
    svg.append(s("path", { class: "spn-over-line", d: pathD(pts) }));
    const dots = s("g", { class: "spn-over-dots" });
    const col = order.indexOf(store.checkpointIndex());
    pts.forEach(([a, b], i) => {
      if (!Number.isFinite(a) || !Number.isFinite(b)) return;
      dots.append(s("circle", { cx: a, cy: b, r: i === col ? 4.5 : 2.4, class: i === col ? "spn-on" : null,
        "data-col": i }));
    });
    if (col >= 0) {
      svg.append(s("line", { class: "spn-layer-rule", x1: px[col], x2: px[col], y1: box.top, y2: box.top + box.height }));
    }
    svg.append(dots);
    const last = v.length ? v[v.length - 1] : NaN;
    caption.textContent = Number.isFinite(refV) && Number.isFinite(last)
      ? `Last evaluation (step ${steps[steps.length - 1]}): ${fmt(last, 3)} ${fmtInterval(lo[lo.length - 1], hi[hi.length - 1])}` +
        ` · reference ${fmt(refV, 3)} · band: ${Math.round((store.header.confidence || 0.95) * 100)}% interval (prompt jackknife)` +
        (alerts.size ? ` · red rules: alerts (${alerts.size})` : "")
      : "";
  }

  svg.addEventListener("click", (ev) => {
    const rect = svg.getBoundingClientRect();
    const mx = ev.clientX - rect.left;
    let best = -1;
    let bd = 24;
    pts.forEach(([a], i) => {
      if (Number.isFinite(a) && Math.abs(a - mx) < bd) {
        bd = Math.abs(a - mx);
        best = i;
      }
    });
    if (best >= 0) store.setCheckpoint(trainingOrder(store).order[best]);
  });

  return mountPlot(plot, store, {
    on: [["layer checkpoint reference heat terminal_depth _data _header _alerts", draw]],
    resize: (w) => { width = w; },
    draw,
  });
}
