// Depth path: every checkpoint's trace through (contraction, transport) space, or one score against depth.

import { axes, clear, h, mountPlot, s } from "../lib/dom.js";
import { nearest, pathD, placeTooltip } from "../lib/geometry.js";
import { fmt, fmtInterval, fmtTick, linear, nice } from "../lib/scales.js";
import { legend } from "./legend.js";

export const LABELS = {
  contraction: "contraction α (spectral tail exponent)",
  transport: "transport 𝓛 (Fisher–Rao step)",
  entropy: "lens entropy (nats)",
  effective_rank: "effective rank (exp entropy of the eigenvalues)",
  kl_to_final: "KL(p_L ‖ p_ℓ) of the lens (nats)",
  top1_agreement: "top-1 agreement with the final layer",
  depth: "depth (layer ℓ / L)",
};

const MODES = [
  ["path", "α × 𝓛 path"],
  ["contraction", "α vs depth"],
  ["transport", "𝓛 vs depth"],
  ["entropy", "entropy vs depth"],
  // the companion metrics: a button only when the trace has them (header.companions)
  ["effective_rank", "eff. rank"],
  ["kl_to_final", "KL→L"],
  ["top1_agreement", "top-1=L"],
];
const COMPANIONS = new Set(["effective_rank", "kl_to_final", "top1_agreement"]);

function encoding(mode) {
  if (mode === "path") return { x: "contraction", y: "transport", xw: true, yw: true };
  return { x: "depth", y: mode, xw: false, yw: true };
}

export function mountDepthPath(parent, store, { height = 380 } = {}) {
  const panel = h("section", { class: "spn-panel spn-depth" });
  const buttons = MODES.map(([mode, label]) =>
    h("button", { class: "spn-seg", type: "button", "data-mode": mode, text: label,
      onclick: () => store.set({ mode }) }));
  const head = h("header", { class: "spn-head" }, [
    h("h3", { class: "spn-title", text: "Depth trace" }),
    h("div", { class: "spn-segmented", role: "tablist" }, buttons),
  ]);
  const plot = h("div", { class: "spn-plot", style: { height: height + "px" } });
  const svg = s("svg", { class: "spn-svg", height, role: "img" });
  // the selected layer's marks in an SVG of their own, over the traces: a scrub step changes only this small layer
  // of the page, and the traces' thousands of elements are not painted again
  const overlay = s("svg", { class: "spn-overlay", height, "aria-hidden": "true" });
  const tip = h("div", { class: "spn-tooltip", role: "tooltip" });
  plot.append(svg, overlay, tip);
  const legendBox = h("div", { class: "spn-legend" });
  panel.append(head, plot, legendBox);
  parent.append(panel);

  const clipId = "spn-clip-" + Math.random().toString(36).slice(2);
  let width = 640;
  let screen = []; // [x, y] per table row, for hit testing
  let hovered = -1; // checkpoint index under the pointer
  let groups = [];
  let layerMarks = null;
  let marks = null; // the rule, its label and one ring per checkpoint, in layerMarks
  let scales = null;

  function draw() {
    const have = new Set(store.header.companions || []);
    let mode = store.get("mode") || "path";
    if (COMPANIONS.has(mode) && !have.has(mode)) mode = "path"; // a trace without that metric
    buttons.forEach((b) => {
      b.classList.toggle("spn-on", b.dataset.mode === mode);
      b.hidden = COMPANIONS.has(b.dataset.mode) && !have.has(b.dataset.mode);
    });
    const t = store.table;
    const names = store.names;
    const { colors } = store.colors;
    const enc = encoding(mode);
    const win = store.get("terminal_depth");
    const box = { left: 64, top: 14, width: Math.max(120, width - 64 - 18), height: height - 14 - 48 };
    const xd = enc.x === "depth" ? [0, 1] : nice(...store.range(enc.x), 6);
    const yd = nice(...store.range(enc.y), 5);
    const x = linear(xd, [box.left, box.left + box.width]);
    const y = linear(yd, [box.top + box.height, box.top]);
    scales = { x, y, box, enc };
    svg.classList.toggle("spn-many", store.colors.kind === "sequential");
    svg.setAttribute("width", width);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("aria-label", `${LABELS[enc.y]} against ${LABELS[enc.x]}, one line per checkpoint`);
    clear(svg);

    if (enc.x === "depth") {
      // the terminal window as a shaded band
      const x0 = x(Math.max(win, xd[0]));
      svg.append(s("rect", { class: "spn-window", x: x0, y: box.top, width: box.left + box.width - x0,
        height: box.height }));
      svg.append(s("text", { class: "spn-window-label", x: box.left + box.width - 6, y: box.top + 13,
        "text-anchor": "end", text: `terminal window (depth ≥ ${win})` }));
    }
    axes(svg, x, y, box, { xLabel: LABELS[enc.x], yLabel: LABELS[enc.y], xFormat: fmtTick, yFormat: fmtTick,
      xTicks: 7, yTicks: 5 });

    const clip = s("clipPath", { id: clipId }, [s("rect", { x: box.left, y: box.top, width: box.width,
      height: box.height })]);
    svg.append(s("defs", {}, [clip]));
    const series = s("g", { class: "spn-series-all", "clip-path": `url(#${clipId})` });
    svg.append(series);

    screen = new Array(t.rows);
    groups = names.map((_, c) => {
      const rows = store.index.byCheckpoint[c];
      const g = s("g", { class: "spn-series", "data-checkpoint": c, style: { "--c": colors[c] } });
      const pts = rows.map((r) => [x(t[enc.x][r]), y(t[enc.y][r])]);
      rows.forEach((r, i) => (screen[r] = pts[i]));
      const whiskers = s("g", { class: "spn-whiskers" });
      rows.forEach((r, i) => {
        const [px, py] = pts[i];
        if (!Number.isFinite(px) || !Number.isFinite(py)) return;
        if (enc.yw) {
          const lo = t[enc.y + "_lo"][r];
          const hi = t[enc.y + "_hi"][r];
          if (Number.isFinite(lo) && Number.isFinite(hi)) {
            whiskers.append(s("line", { x1: px, x2: px, y1: y(lo), y2: y(hi) }));
          }
        }
        if (enc.xw) {
          const lo = t[enc.x + "_lo"][r];
          const hi = t[enc.x + "_hi"][r];
          if (Number.isFinite(lo) && Number.isFinite(hi)) {
            whiskers.append(s("line", { x1: x(lo), x2: x(hi), y1: py, y2: py }));
          }
        }
      });
      // early layers thin, terminal window thick: the window is visible in every mode
      const split = rows.findIndex((r) => t.depth[r] >= win - 1e-9);
      const early = split < 0 ? pts : pts.slice(0, split + 1);
      const late = split < 0 ? [] : pts.slice(split);
      g.append(whiskers, s("path", { class: "spn-line", d: pathD(early) }),
        s("path", { class: "spn-line spn-line-window", d: pathD(late) }));
      const dots = s("g", { class: "spn-dots" });
      rows.forEach((r, i) => {
        const [px, py] = pts[i];
        if (!Number.isFinite(px) || !Number.isFinite(py)) return;
        dots.append(s("circle", { cx: px, cy: py, r: t.depth[r] >= win - 1e-9 ? 2.8 : 2.2,
          "data-layer": t.layer[r] }));
      });
      g.append(dots);
      if (mode === "path" && pts.length) {
        const first = pts.findIndex(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
        let last = pts.length - 1;
        while (last > 0 && !(Number.isFinite(pts[last][0]) && Number.isFinite(pts[last][1]))) last--;
        if (first >= 0) {
          g.append(s("text", { class: "spn-endlabel", x: pts[first][0] + 6, y: pts[first][1] - 6,
            text: `ℓ${t.layer[rows[first]]}` }));
          g.append(s("text", { class: "spn-endlabel", x: pts[last][0] + 6, y: pts[last][1] - 6,
            text: `ℓ${t.layer[rows[last]]}` }));
        }
      }
      series.append(g);
      return g;
    });
    layerMarks = s("g", { class: "spn-layer-marks" });
    marks = null;
    overlay.setAttribute("width", width);
    overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    clear(overlay).append(layerMarks);
    restyle();
    drawLegend();
  }

  function restyle() {
    if (!scales) return;
    const sel = store.checkpointIndex();
    const active = hovered >= 0 ? hovered : -1;
    svg.classList.toggle("spn-has-hover", active >= 0);
    groups.forEach((g, c) => {
      g.classList.toggle("spn-hovered", c === active);
      g.classList.toggle("spn-selected", c === sel);
    });
    // selected and hovered series on top; moved only when they are not there already (moving a series re-inserts its
    // marks, which a scrub step, where neither changes, should not pay for)
    const top = [...new Set([sel, active])].filter((c) => c >= 0 && groups[c]);
    const parent = top.length ? groups[top[0]].parentNode : null;
    const tail = parent ? Array.from(parent.children).slice(-top.length) : [];
    if (top.some((c, i) => tail[i] !== groups[c])) for (const c of top) parent.append(groups[c]);
    // the selected layer: a ring on every checkpoint's point (the selected one last, on top), and a rule in the
    // depth modes; the marks are moved, not rebuilt
    const layer = store.get("layer");
    const t = store.table;
    const { colors } = store.colors;
    const { x, box, enc } = scales;
    // (a new trace with more checkpoints can announce its selection before its data redraws the plot)
    if (!marks || marks.rings.length !== store.names.length) {
      clear(layerMarks);
      marks = { rule: s("line", { class: "spn-layer-rule", y1: box.top, y2: box.top + box.height }),
        label: s("text", { class: "spn-layer-rule-label", y: box.top + box.height - 6 }),
        rings: store.names.map(() => s("circle", { class: "spn-layer-ring" })) };
      layerMarks.append(marks.rule, marks.label, ...marks.rings);
    }
    const selRow = store.row(sel, layer);
    const ruled = enc.x === "depth" && selRow >= 0;
    show(marks.rule, ruled);
    show(marks.label, ruled);
    if (ruled) {
      const px = x(t.depth[selRow]);
      attrs(marks.rule, { x1: px, x2: px });
      attrs(marks.label, { x: px + 4 });
      if (marks.label.textContent !== `layer ${layer}`) marks.label.textContent = `layer ${layer}`;
    }
    const order = store.names.map((_, c) => c).filter((c) => c !== sel).concat(sel < store.names.length ? [sel] : []);
    order.forEach((c, i) => {
      const ring = marks.rings[i];
      const r = store.row(c, layer);
      const pt = r >= 0 ? screen[r] : null;
      const ok = !!pt && Number.isFinite(pt[0]) && Number.isFinite(pt[1]);
      show(ring, ok);
      if (!ok) {
        attrs(ring, { class: "spn-layer-ring" }); // a hidden ring is no one's
        return;
      }
      attrs(ring, { class: "spn-layer-ring" + (c === sel ? " spn-layer-ring-selected" : ""), cx: pt[0], cy: pt[1],
        r: c === sel ? 6 : 4.5, stroke: colors[c], "data-checkpoint": c, "data-layer": layer });
    });
  }

  function drawLegend() {
    legend(legendBox, store, {
      onHover: (c) => {
        hovered = c;
        restyle();
      },
      notes: [
        ["spn-key-window", `thick line: terminal window (depth ≥ ${store.get("terminal_depth")})`],
        ["spn-key-whisker", `whiskers: ${Math.round((store.header.confidence || 0.95) * 100)}% interval (prompt jackknife)`],
      ],
    });
  }

  function showTip(r, px, py) {
    const t = store.table;
    const c = t.checkpoint[r];
    const name = store.names[c];
    const L = store.header.n_layers[name];
    const reason = (store.header.reasons || {})[r];
    clear(tip);
    tip.append(
      h("div", { class: "spn-tip-title" }, [
        h("span", { class: "spn-swatch", style: { background: store.colors.colors[c] } }),
        h("span", { text: name }),
      ]),
      h("div", { class: "spn-tip-sub", text: `layer ${t.layer[r]} of ${L} · depth ${fmt(t.depth[r], 2)}` }),
      h("table", { class: "spn-tip-table" }, [
        tipRow("α contraction", t.contraction[r], t.contraction_lo[r], t.contraction_hi[r],
          Number.isFinite(t.contraction_r2[r]) ? `R² ${fmt(t.contraction_r2[r], 3)}` : ""),
        tipRow("𝓛 transport", t.transport[r], t.transport_lo[r], t.transport_hi[r],
          t.layer[r] === L ? "last layer: no step" : ""),
        tipRow("entropy", t.entropy[r], t.entropy_lo[r], t.entropy_hi[r], "nats"),
      ]),
    );
    if (reason) tip.append(h("div", { class: "spn-tip-note", text: `α not fitted: ${reason}` }));
    tip.style.display = "block";
    const [left, top] = placeTooltip(px, py, tip.offsetWidth, tip.offsetHeight, width, height);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }

  function tipRow(label, v, lo, hi, extra) {
    return h("tr", {}, [
      h("th", { text: label }),
      h("td", { class: "spn-num", text: fmt(v, 4) }),
      h("td", { class: "spn-num spn-muted", text: fmtInterval(lo, hi) }),
      h("td", { class: "spn-muted", text: extra }),
    ]);
  }

  function pointer(ev) {
    const rect = svg.getBoundingClientRect();
    const px = ev.clientX - rect.left;
    const py = ev.clientY - rect.top;
    return [px, py, nearest(screen, px, py, 16)];
  }

  svg.addEventListener("mousemove", (ev) => {
    const [px, py, r] = pointer(ev);
    const c = r >= 0 ? store.table.checkpoint[r] : -1;
    if (c !== hovered) {
      hovered = c;
      restyle();
    }
    if (r >= 0) showTip(r, px, py);
    else tip.style.display = "none";
  });
  svg.addEventListener("mouseleave", () => {
    hovered = -1;
    tip.style.display = "none";
    restyle();
  });
  svg.addEventListener("click", (ev) => {
    const [, , r] = pointer(ev);
    if (r < 0) return;
    const t = store.table;
    store.set({ checkpoint: store.names[t.checkpoint[r]], layer: t.layer[r] });
  });

  return mountPlot(plot, store, {
    on: [["mode terminal_depth _data _header", draw], ["layer checkpoint", () => store.inFrame(restyle)],
      ["checkpoint reference", drawLegend]],
    resize: (w) => { width = w; },
    draw,
  });
}

// Set attributes that differ (an unchanged attribute costs nothing to skip, and invalidates nothing), compared with
// the strings last written here rather than read back from the DOM (the marks' attributes are written only here).
const lastAttrs = new WeakMap();
function attrs(el, values) {
  let last = lastAttrs.get(el);
  if (!last) lastAttrs.set(el, (last = {}));
  for (const [k, v] of Object.entries(values)) {
    const str = String(v);
    if (last[k] !== str) {
      el.setAttribute(k, str);
      last[k] = str;
    }
  }
}

function show(el, on) {
  if (on) el.removeAttribute("display");
  else el.setAttribute("display", "none");
}
