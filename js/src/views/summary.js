// Compare summary: candidate (the selected checkpoint) minus the reference, the SPINAL audit signal.

import { axes, clear, h, onResize, s } from "../lib/dom.js";
import { bandD, pathD, ruleLabel, textWidth } from "../lib/geometry.js";
import { extent, fmt, fmtInterval, fmtSample, fmtSigned, fmtTick, linear, nice } from "../lib/scales.js";

export function mountSummary(parent, store) {
  const panel = h("section", { class: "spn-panel spn-summary" });
  const select = h("select", { class: "spn-select", "aria-label": "reference checkpoint",
    onchange: (ev) => store.set({ reference: ev.target.value }) });
  const candidate = h("span", { class: "spn-candidate" });
  panel.append(h("header", { class: "spn-head" }, [h("h3", { class: "spn-title", text: "Compare" })]),
    h("div", { class: "spn-pair" }, [candidate, h("span", { class: "spn-minus", text: "−" }), select]));
  const body = h("div", { class: "spn-summary-body" });
  panel.append(body);
  parent.append(panel);
  let width = 320;
  let rules = []; // the selected layer's rule in each Δ chart, with the chart's x scale

  function update() {
    const names = store.names;
    const sel = store.checkpointIndex();
    const ref = store.referenceIndex();
    const { colors } = store.colors;
    clear(select).append(...names.map((n) => h("option", { value: n, text: n, selected: n === names[ref] ? "selected" : null })));
    select.value = names[ref];
    select.disabled = !!store.get("_static");
    if (select.disabled) select.title = "static export: the reference is fixed";
    clear(candidate).append(h("span", { class: "spn-swatch", style: { background: colors[sel] } }),
      h("span", { text: names[sel] }));
    clear(body);
    rules = [];
    if (sel === ref) {
      body.append(h("p", { class: "spn-muted", text: "The selected checkpoint is the reference. Pick another checkpoint " +
        "(click a trace, a legend entry or a table row) to see what changed." }));
      return;
    }
    const sm = (store.get("_summaries") || {})[names[sel]];
    if (!sm) {
      body.append(h("p", { class: "spn-muted", text: "No comparison available." }));
      return;
    }
    // checkpoints of different depth: compared on depth (interpolated) by the one rule in Python, or refused
    if (sm.label) body.append(h("p", { class: "spn-interp", text: sm.label }));
    const samples = store.header.samples || {};
    const low = [names[sel], names[ref]].filter((n) => samples[n] && samples[n].caution);
    if (low.length) {
      body.append(h("p", { class: "spn-caution", title: store.header.n_per_d_note || "",
        text: `⚠ ${low.map((n) => `${n}: ${fmtSample(samples[n]).text}`).join("; ")}. ${store.header.n_per_d_note || ""}` }));
    }
    if (sm.error) {
      body.append(h("p", { class: "spn-warn", text: sm.error }));
      return;
    }
    if (sm.verdict && sm.verdict.text) {
      body.append(h("p", { class: `spn-verdict spn-verdict-${sm.verdict.key || ""}`, text: sm.verdict.text }));
    }
    const wl = sm.window_layers || [];
    const loc = sm.localization || {};
    const ci = (v) => (v && v.mean !== null && v.mean !== undefined ? v : null);
    const metric = (label, v, help) => h("div", { class: "spn-metric", title: help }, [
      h("div", { class: "spn-dt", text: label }),
      h("div", { class: "spn-dd",}, ci(v)
        ? [h("b", { text: fmtSigned(v.mean, 3) }), h("small", { text: fmtInterval(v.lo, v.hi) }),
          excludes0(v) ? h("span", { class: "spn-badge spn-badge-sig", text: "≠ 0" }) : null]
        : [h("span", { class: "spn-muted", text: "—" })]),
    ]);
    const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
    body.append(h("div", { class: "spn-metrics" }, [
      h("div", { class: "spn-metric" }, [h("div", { class: "spn-dt", text: "terminal window" }),
        h("div", { class: "spn-dd", text: wl.length ? `depth ≥ ${sm.terminal_depth} · layers ${wl[0]}–${wl[wl.length - 1]}` : "empty" })]),
      metric("window mean Δα", sm.window_contraction, "mean contraction difference over the terminal window"),
      metric("window mean Δ𝓛", sm.window_transport, "mean transport difference over the terminal window"),
      h("div", { class: "spn-metric", title: "share of Σ|Δ| over all layers that falls inside the terminal window" }, [
        h("div", { class: "spn-dt", text: "localization" }),
        h("div", { class: "spn-dd",}, [h("b", { text: `α ${pct(loc.contraction)}` }), h("span", { text: " · " }),
          h("b", { text: `𝓛 ${pct(loc.transport)}` }), h("small", { text: "of Σ|Δ| in window" })])]),
      h("div", { class: "spn-metric", title: "first layer from which the Δα interval excludes 0 for every deeper layer" }, [
        h("div", { class: "spn-dt", text: "onset" }),
        h("div", { class: "spn-dd", text: sm.onset_layer === null || sm.onset_layer === undefined ? "none"
          : `${sm.curve ? "reference layer" : "layer"} ${sm.onset_layer} (depth ${fmt(sm.onset_depth, 2)})` })]),
    ]));
    body.append(deltaChart("contraction", "Δα", sm), deltaChart("transport", "Δ𝓛", sm));
    moveRules();
    body.append(h("p", { class: "spn-caption", text: `${sm.paired ? "Paired" : "Unpaired"} ` +
      `${Math.round((sm.confidence || 0.95) * 100)}% intervals from the prompt-group jackknife; candidate − reference` +
      (sm.aligned === "depth" ? ", interpolated on depth." : ".") }));
  }

  function excludes0(v) {
    return Number.isFinite(v.lo) && Number.isFinite(v.hi) && (v.lo > 0 || v.hi < 0);
  }

  // The Δ curve of the selected pair: the candidate's rows (equal depth), or, on depth, the interpolated curve the
  // summary carries on the reference's depths (it belongs to no row of the candidate).
  function series(score, sm, sel) {
    const col = "d_" + score;
    if (sm.curve) {
      const num = (a) => (a || []).map((v) => (v === null || v === undefined ? NaN : v));
      return { depth: num(sm.curve.depth), v: num(sm.curve[col]), lo: num(sm.curve[col + "_lo"]),
        hi: num(sm.curve[col + "_hi"]) };
    }
    const d = store.deltas;
    if (!d[col]) return null;
    const rows = store.index.byCheckpoint[sel];
    return { depth: rows.map((r) => store.table.depth[r]), v: rows.map((r) => d[col][r]),
      lo: rows.map((r) => d[col + "_lo"][r]), hi: rows.map((r) => d[col + "_hi"][r]) };
  }

  // Δ score against depth: interval band, zero line, window band, onset and selected layer.
  function deltaChart(score, label, sm) {
    const sel = store.checkpointIndex();
    const t = store.table;
    const height = 128;
    // below the plot: the x tick labels, then "depth" under the last one (they touched at 24 px)
    const box = { left: 52, top: 6, width: width - 52 - 10, height: height - 6 - 34 };
    const svg = s("svg", { class: "spn-svg spn-delta", width, height, viewBox: `0 0 ${width} ${height}`,
      role: "img", "aria-label": `${label} against depth` });
    const ser = series(score, sm, sel);
    if (!ser) return svg;
    const { v, lo, hi } = ser;
    const yd = nice(...extent([v, lo, hi, [0]], 0.05), 3);
    const x = linear([0, 1], [box.left, box.left + box.width]);
    const y = linear(yd, [box.top + box.height, box.top]);
    const x0 = x(sm.terminal_depth);
    svg.append(s("rect", { class: "spn-window", x: x0, y: box.top, width: box.left + box.width - x0, height: box.height }));
    axes(svg, x, y, box, { xFormat: fmtTick, yFormat: fmtTick, xTicks: 5, yTicks: 3 });
    svg.append(s("text", { class: "spn-axis-label", x: box.left + 4, y: box.top + 11, text: `${label} (candidate − reference)` }));
    svg.append(s("text", { class: "spn-tick", x: box.left + box.width, y: height - 2, "text-anchor": "end", text: "depth" }));
    svg.append(s("line", { class: "spn-zero", x1: box.left, x2: box.left + box.width, y1: y(0), y2: y(0) }));
    const xs = ser.depth.map(x);
    svg.append(s("path", { class: "spn-band", d: bandD(xs, lo.map(y), hi.map(y)), fill: store.colors.colors[sel] }));
    svg.append(s("path", { class: "spn-delta-line", d: pathD(xs.map((px, i) => [px, y(v[i])])),
      stroke: store.colors.colors[sel] }));
    if (score === "contraction" && sm.onset_layer !== null && sm.onset_layer !== undefined) {
      const px = x(sm.onset_depth);
      svg.append(s("line", { class: "spn-onset", x1: px, x2: px, y1: box.top, y2: box.top + box.height }));
      const text = sm.curve ? `onset depth ${fmt(sm.onset_depth, 2)}` : `onset ℓ${sm.onset_layer}`;
      const at = ruleLabel(px, textWidth(text, 10), box.left, box.left + box.width);
      svg.append(s("text", { class: "spn-onset-label", x: at.x, y: box.top + box.height - 4, "text-anchor": at.anchor,
        text }));
    }
    const rule = s("line", { class: "spn-layer-rule", y1: box.top, y2: box.top + box.height });
    svg.append(rule);
    rules.push({ rule, x });
    return svg;
  }

  // the selected layer: a scrub step moves the rules, nothing else in the panel changes
  function moveRules() {
    const r = store.row(store.checkpointIndex(), store.get("layer"));
    for (const { rule, x } of rules) {
      const px = r >= 0 ? String(x(store.table.depth[r])) : null;
      if (px === null) rule.setAttribute("visibility", "hidden");
      else {
        rule.removeAttribute("visibility");
        if (rule.getAttribute("x1") !== px) {
          rule.setAttribute("x1", px);
          rule.setAttribute("x2", px);
        }
      }
    }
  }

  const offs = [
    store.on("checkpoint reference terminal_depth _summaries _deltas _header _data", update),
    store.on("layer", () => store.inFrame(moveRules)),
    onResize(panel, (w) => {
      width = Math.max(240, w - 28);
      update();
    }),
  ];
  update();
  return () => offs.forEach((off) => off());
}
