// Layer scrubber: a slider (and ←/→) over layers, and what every checkpoint shows at the selected layer.

import { axes, clear, h, onResize, s } from "../lib/dom.js";
import { pathD, tailLine } from "../lib/geometry.js";
import { alignPositions, tokenizations } from "../lib/lens.js";
import { extent, fmt, fmtInterval, fmtSample, fmtSigned, fmtTick, log } from "../lib/scales.js";

export function mountScrubber(parent, store) {
  const panel = h("section", { class: "spn-panel spn-scrubber" });
  const slider = h("input", { class: "spn-slider", type: "range", min: 0, max: store.maxLayer, step: 1,
    "aria-label": "layer" });
  const readout = h("span", { class: "spn-readout" });
  const depthOut = h("span", { class: "spn-depth-out" });
  const badge = h("span", { class: "spn-badge spn-badge-window", text: "terminal window" });
  const head = h("header", { class: "spn-head spn-scrub-head" }, [
    h("h3", { class: "spn-title", text: "Layer" }),
    h("div", { class: "spn-slider-wrap" }, [slider]),
    readout, depthOut, badge,
    h("span", { class: "spn-hint", text: "← → keys" }),
  ]);
  const tableBox = h("div", { class: "spn-table-wrap" });
  const specBox = h("div", { class: "spn-spectrum" });
  const lensBox = h("div", { class: "spn-lens" });
  panel.append(head, h("div", { class: "spn-scrub-body" }, [tableBox, lensBox, specBox]));
  parent.append(panel);

  slider.addEventListener("input", () => store.setLayer(+slider.value));
  const lensState = { prompt: null, group: 0, position: null }; // group: the tokenization the position is in
  let specWidth = 360;
  let scrolledFor = -1; // the checkpoint whose table row was last scrolled into view
  // One redraw per batch of trait changes, of the parts they touch: a live scrub changes `layer` (everything), then
  // the kernel's reply sets _spectra, _lens and their headers in one go (the spectrum and the lens only). A reply
  // whose buffers hold a layer already drawn from the previous buffers (prefetched neighbours) redraws nothing: the
  // drawing would be the same, and rebuilding it under the pointer would drop hover and focus.
  const dirty = new Set();
  const shown = { spectrum: null, lens: null }; // what each box shows, drawn from real data (not pending)
  function schedule(part) {
    if (!dirty.size) {
      queueMicrotask(() => {
        const parts = new Set(dirty);
        dirty.clear();
        const layer = store.get("layer");
        panel.dataset.detail = String(store.get("_spectra_header")?.layer ?? store.get("_lens_header")?.layer);
        if (parts.has("all")) update();
        else {
          const sel = store.checkpointIndex();
          if (parts.has("spectrum") && !(shown.spectrum === `${layer}:${sel}`
              && sameLayer(store.get("_spectra_header"), layer))) drawSpectrum(layer, sel);
          if (parts.has("lens") && !(shown.lens === `${layer}` && sameLayer(store.get("_lens_header"), layer))) {
            drawLens(layer);
          }
        }
      });
    }
    dirty.add(part);
  }

  function update() {
    const layer = store.get("layer");
    const L = store.maxLayer;
    slider.max = L;
    slider.value = layer;
    const win = store.get("terminal_depth");
    slider.style.setProperty("--win", `${((Math.ceil(win * L - 1e-9) - 0.5) / L) * 100}%`);
    readout.textContent = `${layer} / ${L}`;
    const sel = store.checkpointIndex();
    const r = store.row(sel, layer);
    const depth = r >= 0 ? store.table.depth[r] : layer / L;
    depthOut.textContent = `depth ${fmt(depth, 2)}`;
    badge.style.visibility = depth >= win - 1e-9 ? "visible" : "hidden";
    panel.dataset.layer = layer;
    drawTable(layer, sel);
    drawSpectrum(layer, sel);
    drawLens(layer);
  }

  function drawTable(layer, sel) {
    const t = store.table;
    const d = store.deltas;
    const ref = store.referenceIndex();
    const { colors } = store.colors;
    const summaries = store.get("_summaries") || {};
    const samples = store.header.samples || {};
    const rows = store.names.map((name, c) => {
      // another depth than the reference: compared on depth in the Compare panel, never index by index here
      const onDepth = c !== ref && summaries[name] && summaries[name].aligned === "depth";
      const r = store.row(c, layer);
      const cells = r < 0
        ? [h("td", { class: "spn-muted", colspan: 6, text: `no layer ${layer} (L = ${store.header.n_layers[name]})` })]
        : [
          h("td", { class: "spn-num" }, [fmt(t.contraction[r], 3), h("small", { text: fmtInterval(t.contraction_lo[r], t.contraction_hi[r]) })]),
          h("td", { class: "spn-num", text: fmt(t.contraction_r2[r], 3) }),
          h("td", { class: "spn-num" }, [fmt(t.transport[r], 3), h("small", { text: fmtInterval(t.transport_lo[r], t.transport_hi[r]) })]),
          h("td", { class: "spn-num", text: fmt(t.entropy[r], 3) }),
          deltaCell(c === ref, onDepth, d, r, "d_contraction"),
          deltaCell(c === ref, onDepth, d, r, "d_transport"),
        ];
      return h("tr", {
        class: (c === sel ? "spn-on " : "") + (c === ref ? "spn-ref" : ""), "data-checkpoint": c,
        onclick: () => store.setCheckpoint(c),
      }, [
        h("td", { class: "spn-name" }, [h("span", { class: "spn-swatch", style: { background: colors[c] } }),
          h("span", { class: "spn-name-text", text: name }), sampleLine(samples[name])]),
        ...cells,
      ]);
    });
    clear(tableBox).append(h("table", { class: "spn-table" }, [
      h("thead", {}, [h("tr", {}, [
        h("th", { text: "checkpoint" }), h("th", { text: "α contraction" }), h("th", { text: "fit R²" }),
        h("th", { text: "𝓛 transport" }), h("th", { text: "entropy" }),
        h("th", { text: "Δα vs ref" }), h("th", { text: "Δ𝓛 vs ref" }),
      ])]),
      h("tbody", {}, rows),
    ]));
    // keep the selected row in view when the selection moves (or once the widget is on the page); not on every layer
    // step, where the rebuilt table keeps its scroll position: reading the layout here forces a synchronous layout of
    // the whole page (10–25 ms a step in JupyterLab)
    if (sel !== scrolledFor && tableBox.isConnected && tableBox.clientHeight > 0) {
      scrolledFor = sel;
      const on = tableBox.querySelector("tr.spn-on");
      if (on && on.scrollIntoView && tableBox.scrollHeight > tableBox.clientHeight) on.scrollIntoView({ block: "nearest" });
    }
  }

  // N and N/d under the checkpoint's name; below N/d = 4 a caution (α̂'s bias, docs/method.md)
  function sampleLine(sample) {
    const { text, caution } = fmtSample(sample);
    return h("small", { class: "spn-sample" + (caution ? " spn-caution" : ""),
      title: caution ? store.header.n_per_d_note || "" : "N: scored positions; d: hidden size",
      text: caution ? `⚠ ${text}` : text });
  }

  function deltaCell(isRef, onDepth, d, r, col) {
    if (isRef) return h("td", { class: "spn-muted", text: "reference" });
    if (onDepth) {
      return h("td", { class: "spn-muted", text: "on depth",
        title: "its depth L differs from the reference's: compared on depth (interpolated) in the Compare panel" });
    }
    const v = d[col] ? d[col][r] : NaN;
    const lo = d[col + "_lo"] ? d[col + "_lo"][r] : NaN;
    const hi = d[col + "_hi"] ? d[col + "_hi"][r] : NaN;
    const clear0 = Number.isFinite(lo) && Number.isFinite(hi) && (lo > 0 || hi < 0);
    return h("td", { class: "spn-num" + (clear0 ? " spn-sig" : ""), title: clear0 ? "interval excludes 0" : "" },
      [fmtSigned(v, 3), h("small", { text: fmtInterval(lo, hi) })]);
  }

  function drawSpectrum(layer, sel) {
    const sp = store.spectra;
    if (!store.header.has_spectra) {
      shown.spectrum = null;
      clear(specBox);
      return;
    }
    const pending = !sp || !sameLayer(store.get("_spectra_header"), layer);
    const t = store.table;
    const { colors } = store.colors;
    const series = pending ? [] : store.names.map((_, c) => {
      const r = store.row(c, layer);
      if (r < 0 || !sp.count[r]) return null;
      const a = sp.start[r];
      return { c, r, k: sp.k.subarray(a, a + sp.count[r]), sigma: sp.sigma.subarray(a, a + sp.count[r]) };
    }).filter(Boolean);
    const title = h("h4", { class: "spn-subtitle", text: `Spectrum at layer ${layer}` });
    shown.spectrum = pending ? null : `${layer}:${sel}`;
    if (pending) {
      if (hasDrawing(specBox)) showStale(specBox, layer);
      else fresh(specBox).append(title, h("p", { class: "spn-muted spn-pending", text: "loading…" }));
      return;
    }
    fresh(specBox);
    if (!series.length) {
      specBox.append(title, h("p", { class: "spn-muted", text: "No spectrum kept for this layer." }));
      return;
    }
    const width = specWidth;
    const height = 210;
    const box = { left: 58, top: 8, width: width - 58 - 12, height: height - 8 - 40 };
    const kx = extent(series.map((q) => q.k));
    const sy = extent(series.map((q) => q.sigma));
    const x = log([Math.max(1, kx[0]), Math.max(kx[1], 2)], [box.left, box.left + box.width]);
    const y = log([sy[0] * 0.8, sy[1] * 1.25], [box.top + box.height, box.top]);
    const svg = s("svg", { class: "spn-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `singular values against rank at layer ${layer}, log–log, with the fitted tail line` });
    const cur = series.find((q) => q.c === sel);
    if (cur && Number.isFinite(t.fit_k_lo[cur.r])) {
      const x0 = x(Math.max(t.fit_k_lo[cur.r], x.domain[0]));
      const x1 = x(Math.min(t.fit_k_hi[cur.r], x.domain[1]));
      svg.append(s("rect", { class: "spn-window", x: x0, y: box.top, width: Math.max(0, x1 - x0), height: box.height }));
    }
    axes(svg, x, y, box, { xLabel: "rank k", yLabel: "singular value σₖ", xFormat: fmtTick, yFormat: fmtTick });
    for (const q of series.filter((z) => z.c !== sel).concat(cur ? [cur] : [])) {
      const pts = Array.from(q.k, (k, i) => [x(k), y(q.sigma[i])]);
      svg.append(s("path", { class: "spn-spec" + (q.c === sel ? " spn-spec-on" : ""), d: pathD(pts),
        stroke: colors[q.c] }));
    }
    let caption = "";
    if (cur) {
      const line = tailLine(t.contraction[cur.r], t.fit_intercept[cur.r], t.fit_k_lo[cur.r], t.fit_k_hi[cur.r]);
      if (line) {
        svg.append(s("path", { class: "spn-fit", d: pathD(line.map(([k, v]) => [x(k), y(v)])) }));
        caption = `${store.names[sel]}: α = ${fmt(t.contraction[cur.r], 3)} (slope of the dashed fit, R² ` +
          `${fmt(t.contraction_r2[cur.r], 3)}, ranks ${t.fit_k_lo[cur.r]}–${t.fit_k_hi[cur.r]} shaded)`;
      } else {
        caption = `${store.names[sel]}: no tail fit here` +
          ((store.header.reasons || {})[cur.r] ? ` — ${store.header.reasons[cur.r]}` : "");
      }
    }
    specBox.append(title, svg, h("p", { class: "spn-caption", text: caption }));
  }

  function drawLens(layer) {
    const lens = store.lens;
    if (!store.header.has_lens || !lens || !lens.prompts.length) {
      // a trace without lens detail (trace()'s lens_prompts defaults to None): say how to fill the panel
      shown.lens = null;
      if (!lensBox.querySelector(".spn-lens-hint")) {
        fresh(lensBox).append(h("h4", { class: "spn-subtitle", text: "Logit lens" }),
          h("p", { class: "spn-muted spn-lens-hint", text: LENS_HINT }));
      }
      return;
    }
    const pending = !sameLayer(store.get("_lens_header"), layer);
    shown.lens = pending ? null : `${layer}`;
    if (pending && hasDrawing(lensBox)) {
      showStale(lensBox, layer);
      return;
    }
    fresh(lensBox);
    const prompts = lens.prompts;
    if (lensState.prompt === null || !prompts.some((p) => p.index === lensState.prompt)) {
      Object.assign(lensState, { prompt: prompts[0].index, group: 0, position: null });
    }
    const prompt = prompts.find((p) => p.index === lensState.prompt);
    // one row of chips per tokenization (checkpoints with different tokenizers split the prompt differently); the
    // position picked in one row is lined up, in the others, with the token that ends the same text
    const groups = tokenizations(prompt, store.names.length);
    if (!(lensState.group < groups.length)) lensState.group = 0;
    const positions = groups[lensState.group].tokens.map(([pos]) => pos);
    if (lensState.position === null || !positions.includes(lensState.position)) {
      lensState.position = positions[positions.length - 1];
    }
    const at = groups.length > 1 ? alignPositions(prompt.text, groups, lensState.group, lensState.position)
      : [lensState.position];
    const groupOf = new Map();
    groups.forEach((grp, g) => grp.checkpoints.forEach((c) => groupOf.set(c, g)));
    const heading = [h("h4", { class: "spn-subtitle", text: `Logit lens at layer ${layer}: top next-token predictions` })];
    if (prompts.length > 1) {
      const select = h("select", { class: "spn-select", "aria-label": "prompt",
        onchange: (ev) => {
          Object.assign(lensState, { prompt: +ev.target.value, group: 0, position: null });
          drawLens(store.get("layer"));
        } },
      prompts.map((p) => h("option", { value: p.index, text: p.text.length > 70 ? p.text.slice(0, 69) + "…" : p.text,
        selected: p.index === lensState.prompt ? "selected" : null })));
      heading.push(select);
    }
    const { colors } = store.colors;
    const chips = groups.map((grp, g) => h("div", { class: "spn-tokens", "aria-label": "input tokens: pick a position" +
        (groups.length > 1 ? ` (tokens of ${grp.checkpoints.map((c) => store.names[c]).join(", ")})` : "") }, [
      groups.length > 1 ? grp.checkpoints.map((c) => h("span", { class: "spn-swatch spn-tokens-of",
        title: store.names[c], style: { background: colors[c] } })) : null,
      grp.tokens.map(([pos, tok]) => h("button", {
        class: "spn-token" + (g === lensState.group && pos === lensState.position ? " spn-on"
          : g !== lensState.group && pos === at[g] ? " spn-aligned" : ""),
        type: "button", "data-position": pos, title: `position ${pos}`, text: visible(tok),
        onclick: () => { Object.assign(lensState, { group: g, position: pos }); drawLens(store.get("layer")); },
      })),
    ]));
    // rows of this prompt and layer at each checkpoint's (lined-up) position, grouped by checkpoint, in rank order
    const byC = new Map();
    for (let i = 0; i < lens.checkpoint.length; i++) {
      if (lens.prompt[i] !== lensState.prompt || lens.layer[i] !== layer) continue;
      const c = lens.checkpoint[i];
      if (lens.position[i] !== at[groupOf.get(c) ?? 0]) continue;
      if (!byC.has(c)) byC.set(c, []);
      byC.get(c).push(i);
    }
    const head = (c) => h("div", { class: "spn-lens-head" }, [
      h("span", { class: "spn-swatch", style: { background: colors[c] } }), h("span", { text: store.names[c] })]);
    // a checkpoint whose tokens have no position ending the picked text: its column says so
    const unaligned = groups.flatMap((grp, g) => (at[g] === null ? grp.checkpoints : []));
    const shownC = [...new Set([...byC.keys(), ...unaligned])].sort((a, b) => a - b);
    const cols = shownC.map((c) => {
      if (!byC.has(c)) {
        return h("div", { class: "spn-lens-col", "data-checkpoint": c }, [head(c),
          h("p", { class: "spn-muted spn-lens-none", text: "no token of this checkpoint's tokenizer ends there" })]);
      }
      const idx = byC.get(c).sort((a, b) => lens.rank[a] - lens.rank[b]);
      return h("div", { class: "spn-lens-col", "data-checkpoint": c }, [
        head(c),
        ...idx.map((i) => h("div", { class: "spn-lens-row" }, [
          h("span", { class: "spn-lens-tok", text: visible(lens.strings[lens.lens_token[i]]) }),
          h("span", { class: "spn-bar" }, [h("i", { style: { width: `${Math.min(100, lens.prob[i] * 100).toFixed(1)}%`,
            background: colors[c] } })]),
          h("span", { class: "spn-num spn-prob", text: `${fmt(lens.prob[i] * 100, 3)}%` }),
        ])),
      ]);
    });
    lensBox.append(...heading, ...chips, pending ? h("p", { class: "spn-muted spn-pending", text: "loading…" }) : cols.length
      ? h("div", { class: "spn-lens-cols" }, cols)
      : h("p", { class: "spn-muted", text: "No lens detail at this layer and position." }));
  }

  // While the kernel sends a new layer's spectra and lens, the previous drawing stays, dimmed, under a "loading" note:
  // emptying the panel would shrink the notebook cell and grow it back on every scrub step (a layout shift of the
  // whole notebook, twice a step).
  function hasDrawing(box) {
    return !!box.firstChild && !box.querySelector(":scope > .spn-pending:not(.spn-pending-note)");
  }

  function showStale(box, layer) {
    box.classList.add("spn-stale");
    let note = box.querySelector(":scope > .spn-pending-note");
    if (!note) {
      note = h("p", { class: "spn-muted spn-pending spn-pending-note", role: "status" });
      box.append(note);
    }
    note.textContent = `loading layer ${layer}…`;
  }

  function fresh(box) {
    box.classList.remove("spn-stale");
    return clear(box);
  }

  const offs = [
    store.on("layer checkpoint reference terminal_depth _data _header _deltas _summaries", () => schedule("all")),
    store.on("_spectra _spectra_header", () => schedule("spectrum")),
    store.on("_lens _lens_header", () => schedule("lens")),
    onResize(specBox, (w) => {
      specWidth = Math.max(260, Math.min(w, 560));
      drawSpectrum(store.get("layer"), store.checkpointIndex());
    }),
  ];
  update();
  return () => offs.forEach((off) => off());
}

export const LENS_HINT = "No lens tokens in this trace: trace(..., lens_prompts=4) records the top next-token " +
  "predictions at every layer for the first 4 prompts, shown here.";

// Detail buffers hold every layer (static export: layer null), or the live widget's selected layer and its
// neighbours (`span` [lo, hi]), so that a step to a neighbour draws at once, before the kernel's reply.
export function sameLayer(header, layer) {
  if (!header) return false;
  if (header.layer === null || header.layer === undefined) return true;
  if (Array.isArray(header.span)) return header.span[0] <= layer && layer <= header.span[1];
  return header.layer === layer;
}

// Make whitespace-only or control tokens visible without changing printable text (tokens are shown literally).
export function visible(tok) {
  if (tok === null || tok === undefined) return "";
  const str = String(tok).replace(/\n/g, "↵").replace(/\t/g, "⇥");
  return str.length && !str.trim().length ? str.replace(/ /g, "␣") : str;
}
