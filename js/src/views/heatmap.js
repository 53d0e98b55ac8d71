// Training heatmap: one column per evaluated training step, one row per layer, colour = α, 𝓛 or entropy (or its
// paired difference from the reference step). Click or drag selects (step, layer); alerts are marked on the steps.

import { clear, h, mountPlot, s } from "../lib/dom.js";
import { placeTooltip } from "../lib/geometry.js";
import { diverging, heatColor, heatDomain, heatLayout, labelEvery, stepOrder, valueGrid } from "../lib/heatmap.js";
import { fmt, fmtInterval, fmtSigned, fmtTick, sequential } from "../lib/scales.js";

export const HEAT = {
  contraction: { short: "α", label: "contraction α" },
  transport: { short: "𝓛", label: "transport 𝓛" },
  entropy: { short: "H", label: "lens entropy" },
  // companions (shown when the trace has them: header.companions)
  effective_rank: { short: "r", label: "effective rank", button: "eff. rank" },
  kl_to_final: { short: "KL", label: "KL to the final layer", button: "KL→L" },
  top1_agreement: { short: "top-1", label: "top-1 agreement", button: "top-1=L" },
};
const BASE = new Set(["contraction", "transport", "entropy"]);

// The training order shared by the training views: columns = checkpoints with a step, sorted by step.
export function trainingOrder(store) {
  const steps = store.header.steps || [];
  const order = stepOrder(steps);
  return { order, steps: order.map((c) => steps[c]), col: (c) => order.indexOf(c) };
}

export function alertSteps(store) {
  const a = store.get("_alerts") || {};
  return new Map((a.steps || []).map((st, i) => [st, (a.messages || [])[i] || "alert"]));
}

export function mountHeatmap(parent, store, { height = 380 } = {}) {
  const panel = h("section", { class: "spn-panel spn-heat" });
  const scoreButtons = Object.entries(HEAT).map(([key, { short, label, button }]) =>
    h("button", { class: "spn-seg", type: "button", "data-heat": key, text: button || `${short} ${label.split(" ")[0]}`,
      title: label,
      // the depth path follows when it shows a score against depth (not the α × 𝓛 path)
      onclick: () => store.set(store.get("mode") === "path" ? { heat: key } : { heat: key, mode: key }) }));
  const deltaButtons = [[false, "value"], [true, "Δ vs reference"]].map(([d, label]) =>
    h("button", { class: "spn-seg", type: "button", "data-delta": String(d), text: label,
      onclick: () => store.set({ delta: d }) }));
  panel.append(h("header", { class: "spn-head" }, [
    h("h3", { class: "spn-title", text: "Layer × training step" }),
    h("div", { class: "spn-segmented", role: "tablist", "aria-label": "score" }, scoreButtons),
    h("div", { class: "spn-segmented spn-seg-second", role: "tablist", "aria-label": "value or difference" },
      deltaButtons),
  ]));
  const plot = h("div", { class: "spn-plot", style: { height: height + "px" } });
  const svg = s("svg", { class: "spn-svg spn-heat-svg", height, role: "img" });
  const tip = h("div", { class: "spn-tooltip", role: "tooltip" });
  plot.append(svg, tip);
  const legendBox = h("div", { class: "spn-heat-legend" });
  panel.append(plot, legendBox);
  parent.append(panel);

  let width = 640;
  let geo = null; // {layout, order, grid, color, ...} of the last draw
  let marks = null;
  let dragging = false;

  function current() {
    let heat = store.get("heat") || "contraction";
    if (!BASE.has(heat) && !(store.header.companions || []).includes(heat)) heat = "contraction"; // not in this trace
    const delta = !!store.get("delta");
    return { heat, delta, column: delta ? "d_" + heat : heat };
  }

  function draw() {
    const { heat, delta, column } = current();
    scoreButtons.forEach((b) => {
      b.classList.toggle("spn-on", b.dataset.heat === heat);
      b.hidden = !BASE.has(b.dataset.heat) && !(store.header.companions || []).includes(b.dataset.heat);
    });
    deltaButtons.forEach((b) => b.classList.toggle("spn-on", b.dataset.delta === String(delta)));
    const { order, steps } = trainingOrder(store);
    const L = store.maxLayer;
    const t = store.table;
    const src = delta ? store.deltas : t;
    const rowOf = (c, l) => store.row(c, l);
    const grid = valueGrid(order, L, rowOf, src[column]);
    const domain = heatDomain(grid, { diverging: delta });
    const color = heatColor(domain);
    const box = { left: 46, top: 22, width: Math.max(120, width - 46 - 70), height: height - 22 - 42 };
    const layout = heatLayout(box, order.length, L + 1);
    geo = { layout, order, steps, grid, color, domain, heat, delta, column };
    svg.setAttribute("width", width);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("aria-label", `${HEAT[heat].label}${delta ? " minus the reference step" : ""} by layer ` +
      `(rows) and training step (columns)`);
    clear(svg);

    const cells = s("g", { class: "spn-heat-cells" });
    const sig = s("g", { class: "spn-heat-sig" });
    const d = store.deltas;
    const sigR = Math.min(layout.cellWidth, layout.cellHeight) * 0.16;
    order.forEach((c, col) => {
      for (let l = 0; l <= L; l++) {
        const v = grid[col][l];
        const fill = color(v);
        cells.append(s("rect", {
          class: fill ? "spn-cell" : "spn-cell spn-cell-missing", x: layout.x(col).toFixed(2),
          y: layout.y(l).toFixed(2), width: (layout.cellWidth + 0.4).toFixed(2),
          height: (layout.cellHeight + 0.4).toFixed(2), fill: fill || null, "data-col": col, "data-layer": l,
        }));
        if (delta && sigR >= 1.2) {
          const r = store.row(c, l);
          const lo = r >= 0 && d[column + "_lo"] ? d[column + "_lo"][r] : NaN;
          const hi = r >= 0 && d[column + "_hi"] ? d[column + "_hi"][r] : NaN;
          if (Number.isFinite(lo) && Number.isFinite(hi) && (lo > 0 || hi < 0)) {
            sig.append(s("circle", { cx: layout.cx(col), cy: layout.cy(l), r: sigR }));
          }
        }
      }
    });
    svg.append(cells, sig);

    // axes: layers on the left (every few), steps below (thinned), the terminal window bracketed on the right
    const ax = s("g", { class: "spn-axes" });
    const layerEvery = Math.max(1, Math.ceil((L + 1) / Math.max(2, Math.floor(box.height / 22))));
    for (let l = 0; l <= L; l += layerEvery) {
      ax.append(s("text", { class: "spn-tick", x: box.left - 6, y: layout.cy(l) + 3.5, "text-anchor": "end",
        text: String(l) }));
    }
    const maxLabels = Math.max(2, Math.floor(box.width / 46));
    for (const col of labelEvery(order.length, maxLabels)) {
      ax.append(s("line", { class: "spn-axis", x1: layout.cx(col), x2: layout.cx(col), y1: box.top + box.height,
        y2: box.top + box.height + 4 }));
      ax.append(s("text", { class: "spn-tick", x: layout.cx(col), y: box.top + box.height + 15,
        "text-anchor": "middle", text: fmtTick(steps[col]) }));
    }
    ax.append(s("text", { class: "spn-axis-label", x: box.left + box.width / 2, y: box.top + box.height + 33,
      "text-anchor": "middle", text: "training step" }));
    ax.append(s("text", { class: "spn-axis-label", x: 0, y: 0, "text-anchor": "middle",
      transform: `translate(${box.left - 32} ${box.top + box.height / 2}) rotate(-90)`, text: "layer ℓ" }));
    const win = store.get("terminal_depth");
    const wl = Math.ceil(win * L - 1e-9);
    if (wl <= L) {
      const y0 = layout.y(L);
      const y1 = layout.y(wl) + layout.cellHeight;
      const xr = box.left + box.width + 6;
      ax.append(s("path", { class: "spn-heat-bracket", d: `M${xr} ${y0 + 1}h4V${y1 - 1}h-4` }));
      ax.append(s("text", { class: "spn-window-label", x: xr + 8, y: (y0 + y1) / 2 - 2, text: "terminal" }));
      ax.append(s("text", { class: "spn-window-label", x: xr + 8, y: (y0 + y1) / 2 + 10, text: "window" }));
    }
    svg.append(ax);

    // alerts of the monitor's rule: a red marker above the step's column
    const alerts = alertSteps(store);
    const al = s("g", { class: "spn-heat-alerts" });
    order.forEach((c, col) => {
      if (!alerts.has(steps[col])) return;
      const cx = layout.cx(col);
      const tri = s("path", { class: "spn-alert-mark", d: `M${cx - 5} ${box.top - 12}h10l-5 8z`, "data-col": col });
      tri.append(s("title", { text: `step ${steps[col]}: ${alerts.get(steps[col])}` }));
      al.append(tri);
    });
    svg.append(al);
    marks = s("g", { class: "spn-heat-marks" });
    svg.append(marks);
    restyle();
    drawLegend();
  }

  function restyle() {
    if (!geo || !marks) return;
    clear(marks);
    const { layout, order } = geo;
    const col = order.indexOf(store.checkpointIndex());
    const layer = store.get("layer");
    const { box } = layout;
    panel.dataset.layer = layer;
    panel.dataset.step = col >= 0 ? String(geo.steps[col]) : "";
    if (col >= 0) {
      marks.append(s("rect", { class: "spn-heat-col", x: layout.x(col), y: box.top, width: layout.cellWidth,
        height: box.height }));
    }
    marks.append(s("rect", { class: "spn-heat-row", x: box.left, y: layout.y(layer), width: box.width,
      height: layout.cellHeight }));
    if (col >= 0) {
      marks.append(s("rect", { class: "spn-heat-sel", x: layout.x(col) - 1, y: layout.y(layer) - 1,
        width: layout.cellWidth + 2, height: layout.cellHeight + 2, "data-col": col, "data-layer": layer }));
    }
  }

  function drawLegend() {
    clear(legendBox);
    const { domain, heat, delta } = geo;
    const n = 11;
    const stops = Array.from({ length: n }, (_, i) => {
      const c = delta ? diverging(i / (n - 1)) : sequential(i / (n - 1));
      return `${c} ${(i * 100) / (n - 1)}%`;
    }).join(", ");
    const lo = (domain.clippedLo ? "≤ " : "") + fmtTick(+domain.lo.toPrecision(3));
    const hi = (domain.clippedHi ? "≥ " : "") + fmtTick(+domain.hi.toPrecision(3));
    const name = delta ? `Δ${HEAT[heat].short} (step − ${store.get("reference")})` : HEAT[heat].label;
    legendBox.append(...[
      h("span", { class: "spn-heat-name", text: name }),
      h("span", { class: "spn-ramp-end", text: lo }),
      h("div", { class: "spn-heat-ramp", style: { background: `linear-gradient(to right, ${stops})` } }),
      h("span", { class: "spn-ramp-end", text: hi }),
      h("span", { class: "spn-note spn-key-missing" }, [h("i"), heat === "contraction" ? "no fit" : "no value"]),
      delta ? h("span", { class: "spn-note spn-key-sig" }, [h("i"), "interval excludes 0"]) : null,
      alertSteps(store).size ? h("span", { class: "spn-note spn-key-alert" }, [h("i"), "alert (hover for the rule's message)"]) : null,
    ].filter(Boolean));
  }

  function cellAt(ev) {
    if (!geo) return null;
    const rect = svg.getBoundingClientRect();
    const px = ev.clientX - rect.left;
    const py = ev.clientY - rect.top;
    const hit = geo.layout.at(px, py);
    return hit ? { col: hit[0], layer: hit[1], px, py } : null;
  }

  function select(hit) {
    const c = geo.order[hit.col];
    const name = store.names[c];
    if (name !== store.get("checkpoint") || hit.layer !== store.get("layer")) {
      store.set({ checkpoint: name, layer: hit.layer });
    }
  }

  function showTip(hit) {
    const { order, steps, heat } = geo;
    const c = order[hit.col];
    const r = store.row(c, hit.layer);
    const t = store.table;
    const d = store.deltas;
    clear(tip);
    tip.append(
      h("div", { class: "spn-tip-title" }, [h("span", { text: `step ${steps[hit.col]}` }),
        h("span", { class: "spn-muted", text: store.names[c] })]),
      h("div", { class: "spn-tip-sub", text: `layer ${hit.layer}` + (r >= 0 ? ` · depth ${fmt(t.depth[r], 2)}` : "") }),
    );
    if (r >= 0) {
      const dc = "d_" + heat;
      tip.append(h("table", { class: "spn-tip-table" }, [
        h("tr", {}, [h("th", { text: HEAT[heat].label }), h("td", { class: "spn-num", text: fmt(t[heat][r], 4) }),
          h("td", { class: "spn-num spn-muted", text: fmtInterval(t[heat + "_lo"][r], t[heat + "_hi"][r]) })]),
        h("tr", {}, [h("th", { text: `Δ vs ${store.get("reference")}` }),
          h("td", { class: "spn-num", text: d[dc] ? fmtSigned(d[dc][r], 3) : "—" }),
          h("td", { class: "spn-num spn-muted", text: d[dc] ? fmtInterval(d[dc + "_lo"][r], d[dc + "_hi"][r]) : "" })]),
      ]));
      const reason = (store.header.reasons || {})[r];
      if (heat === "contraction" && reason) tip.append(h("div", { class: "spn-tip-note", text: `α not fitted: ${reason}` }));
    }
    const alerts = alertSteps(store);
    if (alerts.has(steps[hit.col])) tip.append(h("div", { class: "spn-tip-note", text: alerts.get(steps[hit.col]) }));
    tip.style.display = "block";
    const [left, top] = placeTooltip(hit.px, hit.py, tip.offsetWidth, tip.offsetHeight, width, height);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }

  svg.addEventListener("pointerdown", (ev) => {
    const hit = cellAt(ev);
    if (!hit) return;
    dragging = true;
    if (svg.setPointerCapture && ev.pointerId !== undefined) {
      try { svg.setPointerCapture(ev.pointerId); } catch (_) { /* synthetic events have no capturable pointer */ }
    }
    select(hit);
  });
  svg.addEventListener("pointermove", (ev) => {
    const hit = cellAt(ev);
    if (hit && dragging) select(hit);
    if (hit) showTip(hit);
    else tip.style.display = "none";
  });
  const stop = () => { dragging = false; };
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
  svg.addEventListener("pointerleave", () => { tip.style.display = "none"; });

  return mountPlot(plot, store, {
    on: [["heat delta terminal_depth reference _data _header _deltas _alerts", draw], ["layer checkpoint", () => store.inFrame(restyle)]],
    resize: (w) => { width = w; },
    draw,
  });
}
