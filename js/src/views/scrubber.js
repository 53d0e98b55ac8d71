// Layer scrubber: a slider (and ←/→) over layers, and what every checkpoint shows at the selected layer.
//
// A scrub step redraws in place: the table's cells, the spectrum's curves (one canvas; often a copy of curves painted
// ahead between frames) and the lens columns take the new layer's values, and elements are built only when the
// structure changes (checkpoints, reference, selection, data, prompt or position). Building ~500 elements a step,
// and laying them out, took a scrub past one frame.

import { axes, clear, h, onResize, s } from "../lib/dom.js";
import { tailLine } from "../lib/geometry.js";
import { alignPositions, tokenizations } from "../lib/lens.js";
import { extent, fmt, fmtInterval, fmtSample, fmtSigned, fmtTick, log, logNice } from "../lib/scales.js";
import { copyCanvas, paintSpectrum, sizeCanvas } from "./spectrum_canvas.js";

const SPEC_HEIGHT = 210;

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
  const companions = () => (store.header.companions || []).filter((k) => COMPANION_HEAD[k] && store.table[k]);
  const specBox = h("div", { class: "spn-spectrum", "data-draws": 0 });
  const lensBox = h("div", { class: "spn-lens", "data-draws": 0 });
  panel.append(head, h("div", { class: "spn-scrub-body" }, [tableBox, lensBox, specBox]));
  parent.append(panel);

  slider.addEventListener("input", () => store.setLayer(+slider.value));
  const lensState = { prompt: null, group: 0, position: null }; // group: the tokenization the position is in
  let specWidth = 360;
  let scrolledFor = -1; // the checkpoint whose table row was last scrolled into view
  // One redraw per frame, of the parts the frame's trait changes touch (store.inFrame): a live scrub changes `layer` (a
  // step: values in place), then the kernel's reply sets _spectra, _lens and their headers in one go (the spectrum and the lens only).
  // A reply whose buffers hold a layer already drawn from the previous buffers (prefetched neighbours) redraws
  // nothing: the drawing would be the same, and rebuilding it under the pointer would drop hover and focus.
  const dirty = new Set();
  const shown = { spectrum: null, lens: null }; // what each box shows, drawn from real data (not pending)
  function schedule(part) {
    if (!dirty.size) {
      store.inFrame(() => {
        const parts = new Set(dirty);
        dirty.clear();
        const layer = store.get("layer");
        panel.dataset.detail = String(store.get("_spectra_header")?.layer ?? store.get("_lens_header")?.layer);
        if (parts.has("all")) update();
        else if (parts.has("layer")) step();
        else {
          const sel = store.checkpointIndex();
          if (parts.has("spectrum") && !(shown.spectrum === `${layer}:${sel}`
              && sameLayer(store.get("_spectra_header"), layer))) drawSpectrum(layer, sel);
          if (parts.has("lens") && !(shown.lens === `${layer}` && sameLayer(store.get("_lens_header"), layer))) {
            drawLens(layer);
          }
          // a live reply brings the neighbours' spectra: the next layer's curves can be painted ahead now
          if (parts.has("spectrum")) prepareSoon();
        }
      });
    }
    dirty.add(part);
  }

  // everything: the table's rows are rebuilt (selection, reference, checkpoints or data changed)
  function update() {
    spec.palette = null; // the theme's colours are read again (a forced style computation: not on every step)
    buildTable();
    step();
  }

  // one layer: values in place
  function step() {
    const layer = store.get("layer");
    const L = store.maxLayer;
    if (slider.max !== String(L)) slider.max = L;
    if (slider.value !== String(layer)) slider.value = layer;
    const win = store.get("terminal_depth");
    const winAt = `${((Math.ceil(win * L - 1e-9) - 0.5) / L) * 100}%`;
    if (slider.style.getPropertyValue("--win") !== winAt) slider.style.setProperty("--win", winAt);
    setText(readout, `${layer} / ${L}`);
    const sel = store.checkpointIndex();
    const r = store.row(sel, layer);
    const depth = r >= 0 ? store.table.depth[r] : layer / L;
    setText(depthOut, `depth ${fmt(depth, 2)}`);
    const vis = depth >= win - 1e-9 ? "visible" : "hidden";
    if (badge.style.visibility !== vis) badge.style.visibility = vis;
    panel.dataset.layer = layer;
    fillTable(layer);
    drawSpectrum(layer, sel);
    drawLens(layer);
  }

  // --- table ------------------------------------------------------------------------------------------------------
  // The table is drawn on sheets: tables of the same rows stacked in one grid cell of the box, the one shown on top
  // (class spn-table) and another under it, transparent and hidden from screen readers. Right after a step's
  // frame, a task fills the other sheet with the next layer in the direction of travel and lays it out; the step to
  // that layer then only brings that sheet on top — no text to lay out in its frame (the ≈ 60 texts of ≈ 8 rows a
  // step changed took ≈ 3–4 ms of its layout; BENCHMARKS.md "Sheets"). A step to a layer no sheet holds (a jump, a
  // turn, or a key faster than the frames) fills the shown sheet in place, as before. (A third sheet, kept for the
  // previous layer, measured no better: every sheet is a compositor layer the page's layerization walks.)
  let sheets = []; // {table, rows, layer (the layer its rows were filled for, null while empty)}
  let front = 0; // the sheet shown
  let table = null; // sheets[front].table
  // per checkpoint: {c, isRef, onDepth, tr, cells (the six value cells) or null, missing (td) or null, layer (the
  // layer its cells show), sheet}
  let tableRows = []; // sheets[front].rows
  let travel = 1; // the direction of the last step (+1 up, -1 down): the sheet made ready is for the next layer that way
  let idleReq = 0; // a preparation is queued (-1: a task, else the idle callback's id)

  function buildTable() {
    cancelPrepare();
    sheets = [buildSheet()];
    front = 0;
    ({ table, rows: tableRows } = sheets[0]);
    table.classList.add("spn-table");
    clear(tableBox).append(table);
    watchRows();
  }

  // a sheet's rows for the current checkpoints, selection and reference (a change of these rebuilds every sheet)
  function buildSheet() {
    const sel = store.checkpointIndex();
    const ref = store.referenceIndex();
    const { colors } = store.colors;
    const summaries = store.get("_summaries") || {};
    const samples = store.header.samples || {};
    const sheet = { table: null, rows: null, layer: null };
    sheet.rows = store.names.map((name, c) => ({
      c, isRef: c === ref, cells: null, missing: null, layer: null, sheet,
      // another depth than the reference: compared on depth in the Compare panel, never index by index here
      onDepth: c !== ref && !!summaries[name] && summaries[name].aligned === "depth",
      tr: h("tr", { class: (c === sel ? "spn-on " : "") + (c === ref ? "spn-ref" : ""), "data-checkpoint": c,
        onclick: () => store.setCheckpoint(c) }, [
        h("td", { class: "spn-name" }, [h("span", { class: "spn-swatch", style: { background: colors[c] } }),
          h("span", { class: "spn-name-text", text: name }), sampleLine(samples[name])]),
      ]),
    }));
    sheet.table = h("table", { class: "spn-sheet" }, [
      h("thead", {}, [h("tr", {}, [
        h("th", { text: "checkpoint" }), h("th", { text: "α contraction" }), h("th", { text: "fit R²" }),
        h("th", { text: "𝓛 transport" }), h("th", { text: "entropy" }),
        ...companions().map((k) => h("th", { text: COMPANION_HEAD[k][0], title: COMPANION_HEAD[k][1],
          "data-column": k })),
        h("th", { text: "Δα vs ref" }), h("th", { text: "Δ𝓛 vs ref" }),
      ])]),
      h("tbody", {}, sheet.rows.map((row) => row.tr)),
    ]);
    return sheet;
  }

  // the sheet `i` on top: the marker class moves (it sets the stacking order and opacity of the two tables, and no
  // CSS rule reaches into a sheet through it, so no cell is restyled)
  function showSheet(i) {
    const old = sheets[front].table;
    old.classList.remove("spn-table");
    old.setAttribute("aria-hidden", "true");
    front = i;
    ({ table, rows: tableRows } = sheets[i]);
    table.classList.add("spn-table");
    table.removeAttribute("aria-hidden");
  }

  // A step fills only the rows in the table box's view (about 8 of 20 at 340 px) and the selected row (read as the
  // selection's values): every changed cell is text to lay out again (≈ 0.35 ms a row a step). The others keep the text of the layer
  // they were last filled for (tr[data-layer]), marked stale (tr[data-stale], their values hidden by the CSS), and
  // are filled when they come into view: on the box's scroll event, which runs before the scrolled frame is painted,
  // and from the observer (after a resize that shows more rows; its reports come in a task after the frame is painted,
  // hence a margin of about a row, which also covers most of a scroll the compositor paints before this thread runs).
  // The sheets are stacked in one place: the rows of the shown sheet stand for all (by checkpoint index).
  let inView = null; // the checkpoints whose rows are in view (or within the margin); null until the observer's first report: fill all
  let observer = null;
  let tableLayer = null; // the layer the table is for
  const rowOf = new WeakMap(); // tr → its entry in its sheet's rows

  function watchRows() {
    if (observer) observer.disconnect();
    inView = null;
    if (typeof IntersectionObserver !== "function") return;
    observer = new IntersectionObserver((entries) => {
      if (!inView) inView = new Set();
      for (const e of entries) {
        const row = rowOf.get(e.target);
        if (!row || row.sheet !== sheets[front]) continue;
        if (e.isIntersecting) {
          inView.add(row.c);
          if (row.layer !== tableLayer && tableLayer !== null) fillRow(row, tableLayer);
        } else inView.delete(row.c);
      }
    }, { root: tableBox, rootMargin: "48px 0px" });
    observeRows(sheets[front]);
  }

  function observeRows(sheet) {
    for (const row of sheet.rows) {
      rowOf.set(row.tr, row);
      if (observer) observer.observe(row.tr);
    }
  }

  tableBox.addEventListener("scroll", () => {
    // a scroll may bring stale rows into view: fill them all now, before the frame (once after a step; then none is)
    if (tableLayer === null) return;
    for (const row of tableRows) if (row.layer !== tableLayer) fillRow(row, tableLayer);
  }, { passive: true });

  function fillTable(layer) {
    if (tableLayer !== null && layer !== tableLayer) travel = layer > tableLayer ? 1 : -1;
    const ready = sheets.findIndex((sh, i) => i !== front && sh.layer === layer);
    if (ready >= 0) showSheet(ready);
    tableLayer = layer;
    fillSheet(sheets[front], layer);
    // keep the selected row in view when the selection moves (or once the widget is on the page); not on every layer
    // step, where the table keeps its scroll position: reading the layout here forces a synchronous layout of the
    // whole page (10–25 ms a step in JupyterLab)
    const sel = store.checkpointIndex();
    if (sel !== scrolledFor && tableBox.isConnected && tableBox.clientHeight > 0) {
      scrolledFor = sel;
      const on = table.querySelector("tr.spn-on");
      if (on && on.scrollIntoView && tableBox.scrollHeight > tableBox.clientHeight) on.scrollIntoView({ block: "nearest" });
    }
    prepareSoon();
  }

  // the rows in view and the selected row filled for `layer`, the others marked stale (a new sheet's rows are all
  // filled once, so that its rows have their cells and heights when it is shown and scrolled)
  function fillSheet(sheet, layer) {
    sheet.layer = layer;
    const sel = store.checkpointIndex();
    for (const row of sheet.rows) {
      if (!inView || inView.has(row.c) || row.c === sel || row.layer === null) {
        if (row.layer !== layer) fillRow(row, layer);
      } else if ((row.layer !== layer) !== row.tr.hasAttribute("data-stale")) row.tr.toggleAttribute("data-stale");
    }
    sheet.table.dataset.layer = layer;
  }

  // After a step's frame, in a task of its own (right after the frame is painted): the other sheet filled for the next
  // layer in the direction of travel (at an end of the depth, the layer back) and laid out — the text layout of ≈ 8
  // rows, a few ms, out of any step's frame. Never while a redraw waits for its frame (a key pressed since): then it
  // is asked again, in idle time. requestIdleCallback alone came too late: a held key's steps left it no idle period,
  // and it ran on its 250 ms timeout, if at all.
  const idle = typeof requestIdleCallback === "function"
    ? (fn) => requestIdleCallback(fn, { timeout: 250 }) : (fn) => setTimeout(fn, 30);
  let prepGen = 0; // bumped by a rebuild: a callback of an earlier build does nothing
  const unidle = typeof cancelIdleCallback === "function" ? cancelIdleCallback : clearTimeout;
  function prepareSoon(lazy = false) {
    if (!tableBox.isConnected || idleReq === -1 || (idleReq && lazy)) return;
    if (idleReq) unidle(idleReq); // a step since: its next layer first
    const gen = prepGen;
    const run = () => {
      idleReq = 0;
      if (gen === prepGen) prepare();
    };
    if (lazy) idleReq = idle(run);
    else {
      const ch = new MessageChannel();
      ch.port1.onmessage = run;
      ch.port2.postMessage(0);
      idleReq = -1;
    }
  }
  function cancelPrepare() {
    if (idleReq > 0) unidle(idleReq);
    prepGen++;
    idleReq = 0;
  }
  function prepare() {
    if (tableLayer === null || !table || !table.isConnected) return;
    if (dirty.size) { // a redraw is queued (a step asks again after its frame; a reply's redraw does not)
      prepareSoon(true);
      return;
    }
    const next = [tableLayer + travel, tableLayer - travel].find((l) => l >= 0 && l <= store.maxLayer);
    if (next === undefined) return;
    prepareSpectrum(next);
    if (sheets.some((sh) => sh.layer === next)) return;
    let sheet = sheets.find((_, k) => k !== front);
    if (!sheet) {
      sheet = buildSheet();
      sheet.table.setAttribute("aria-hidden", "true");
      tableBox.append(sheet.table);
      observeRows(sheet);
      sheets.push(sheet);
    }
    fillSheet(sheet, next);
    void sheet.table.offsetHeight; // laid out now, between frames, not in the frame of the step that shows it
  }

  function fillRow(row, layer) {
    const t = store.table;
    const d = store.deltas;
    row.layer = layer;
    const at = String(layer);
    if (row.tr.dataset.layer !== at) row.tr.dataset.layer = at;
    if (row.tr.hasAttribute("data-stale")) row.tr.removeAttribute("data-stale");
    const r = store.row(row.c, layer);
    if (r < 0) {
      if (!row.missing) {
        if (row.cells) row.cells.forEach((td) => td.remove());
        row.cells = null;
        row.missing = h("td", { class: "spn-muted", colspan: 6 + companions().length });
        row.tr.append(row.missing);
      }
      setText(row.missing, `no layer ${layer} (L = ${store.header.n_layers[store.names[row.c]]})`);
      return;
    }
    if (!row.cells) {
      if (row.missing) row.missing.remove();
      row.missing = null;
      row.cells = [numCell(), numCell(), numCell(), numCell(), deltaCell(row), deltaCell(row),
        ...companions().map(numCell)];
      // the companions sit between entropy and the deltas
      row.tr.append(...row.cells.slice(0, 4), ...row.cells.slice(6), ...row.cells.slice(4, 6));
    }
    const [a, r2, tr, ent, da, dt, ...comp] = row.cells;
    companions().forEach((k, i) => {
      setNum(comp[i], fmt(t[k][r], COMPANION_HEAD[k][2]), "");
      const title = `${COMPANION_HEAD[k][1]}: ${fmt(t[k][r], 4)} ${fmtInterval(t[k + "_lo"][r], t[k + "_hi"][r])}`;
      if (comp[i].title !== title) comp[i].title = title;
    });
    setNum(a, fmt(t.contraction[r], 3), fmtInterval(t.contraction_lo[r], t.contraction_hi[r]));
    setNum(r2, fmt(t.contraction_r2[r], 3), "");
    setNum(tr, fmt(t.transport[r], 3), fmtInterval(t.transport_lo[r], t.transport_hi[r]));
    setNum(ent, fmt(t.entropy[r], 3), "");
    if (!row.isRef && !row.onDepth) {
      setDelta(da, d, r, "d_contraction");
      setDelta(dt, d, r, "d_transport");
    }
  }

  // N and N/d under the checkpoint's name; below N/d = 4 a caution (α̂'s bias, docs/method.md)
  function sampleLine(sample) {
    const { text, caution } = fmtSample(sample);
    return h("small", { class: "spn-sample" + (caution ? " spn-caution" : ""),
      title: caution ? store.header.n_per_d_note || "" : "N: scored positions; d: hidden size",
      text: caution ? `⚠ ${text}` : text });
  }

  // a Δ cell: the value and interval, filled per step, or a fixed note for the reference and an on-depth checkpoint
  function deltaCell(row) {
    if (row.isRef) return h("td", { class: "spn-muted", text: "reference" });
    if (row.onDepth) {
      return h("td", { class: "spn-muted", text: "on depth",
        title: "its depth L differs from the reference's: compared on depth (interpolated) in the Compare panel" });
    }
    return numCell();
  }

  function setDelta(td, d, r, col) {
    const v = d[col] ? d[col][r] : NaN;
    const lo = d[col + "_lo"] ? d[col + "_lo"][r] : NaN;
    const hi = d[col + "_hi"] ? d[col + "_hi"][r] : NaN;
    const clear0 = Number.isFinite(lo) && Number.isFinite(hi) && (lo > 0 || hi < 0);
    setNum(td, fmtSigned(v, 3), fmtInterval(lo, hi));
    if (td.classList.contains("spn-sig") !== clear0) {
      td.classList.toggle("spn-sig", clear0);
      td.title = clear0 ? "interval excludes 0" : "";
    }
  }

  // --- spectrum: axes in SVG (rebuilt when the domain moves), curves, fit window and tail line on a canvas ----------
  const spec = {
    title: h("h4", { class: "spn-subtitle" }),
    plot: h("div", { class: "spn-spec-plot" }),
    svg: s("svg", { class: "spn-svg", role: "img" }),
    canvas: h("canvas", { class: "spn-spec-canvas", "aria-hidden": "true" }),
    caption: h("p", { class: "spn-caption" }),
    msg: h("p", { class: "spn-muted" }),
    axesKey: null,
    drawn: false, // the plot holds a drawing from real data
    palette: null,
    // the curves of the next layer, painted between frames on a canvas off the page (prepareSpectrum), and what they
    // were painted for
    ahead: { canvas: null, key: null },
  };
  spec.plot.append(spec.svg, spec.canvas);

  // What the spectrum of `layer` shows for the selection `sel`, from the spectra buffers (which must hold the layer):
  // the series, scales and caption; `series` is empty when no checkpoint kept a spectrum there.
  function spectrumPlan(layer, sel) {
    const sp = store.spectra;
    const t = store.table;
    const series = store.names.map((_, c) => {
      const r = store.row(c, layer);
      if (r < 0 || !(sp.count[r] > 0)) return null;
      const a = sp.start[r];
      return { c, r, k: sp.k.subarray(a, a + sp.count[r]), sigma: sp.sigma.subarray(a, a + sp.count[r]) };
    }).filter(Boolean);
    if (!series.length) return { series };
    const width = specWidth;
    const height = SPEC_HEIGHT;
    const box = { left: 58, top: 8, width: width - 58 - 12, height: height - 8 - 40 };
    const kx = extent(series.map((q) => q.k));
    const sy = extent(series.map((q) => q.sigma));
    // the y axis snaps to 1-2-5 steps, so that it (and the SVG holding it) changes only now and then while scrubbing
    const xd = [Math.max(1, kx[0]), Math.max(kx[1], 2)];
    const yd = logNice(sy[0] * 0.9, sy[1] * 1.1);
    const x = log(xd, [box.left, box.left + box.width]);
    const y = log(yd, [box.top + box.height, box.top]);
    const cur = series.find((q) => q.c === sel);
    let fit = null;
    let caption = "";
    if (cur) {
      const line = tailLine(t.contraction[cur.r], sp.fit_intercept[cur.r], sp.fit_k_lo[cur.r], sp.fit_k_hi[cur.r]);
      if (Number.isFinite(sp.fit_k_lo[cur.r])) fit = { kLo: sp.fit_k_lo[cur.r], kHi: sp.fit_k_hi[cur.r], line };
      if (line) {
        caption = `${store.names[sel]}: α = ${fmt(t.contraction[cur.r], 3)} (slope of the dashed fit, R² ` +
          `${fmt(t.contraction_r2[cur.r], 3)}, ranks ${sp.fit_k_lo[cur.r]}–${sp.fit_k_hi[cur.r]} shaded)`;
      } else {
        caption = `${store.names[sel]}: no tail fit here` +
          ((store.header.reasons || {})[cur.r] ? ` — ${store.header.reasons[cur.r]}` : "");
      }
    }
    // what the curves depend on: a canvas painted for the same key holds the same picture
    const axesKey = `${width}|${xd}|${yd}`;
    const key = [layer, sel, axesKey, store.table, store.header, store.colors.colors, spec.palette];
    return { series, width, height, box, x, y, axesKey, fit, caption, key };
  }

  function drawSpectrum(layer, sel) {
    if (!store.header.has_spectra) {
      shown.spectrum = null;
      spec.drawn = false;
      clear(specBox);
      return;
    }
    const pending = !store.spectra || !sameLayer(store.get("_spectra_header"), layer);
    shown.spectrum = pending ? null : `${layer}:${sel}`;
    if (pending) {
      if (spec.drawn) showStale(specBox, layer);
      else showSpecMessage(layer, "loading…", true);
      return;
    }
    if (!spec.palette) spec.palette = readPalette(specBox);
    const plan = spectrumPlan(layer, sel);
    if (!plan.series.length) {
      showSpecMessage(layer, "No spectrum kept for this layer.", false);
      return;
    }
    fresh(specBox);
    if (spec.title.parentNode !== specBox || spec.msg.parentNode) {
      spec.msg.remove();
      specBox.append(spec.title, spec.plot, spec.caption);
    }
    specBox.dataset.draws = +specBox.dataset.draws + 1;
    setText(spec.title, `Spectrum at layer ${layer}`);
    const { width, height } = plan;
    if (plan.axesKey !== spec.axesKey) {
      spec.axesKey = plan.axesKey;
      spec.svg.setAttribute("width", width);
      spec.svg.setAttribute("height", height);
      spec.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
      clear(spec.svg);
      axes(spec.svg, plan.x, plan.y, plan.box, { xLabel: "rank k", yLabel: "singular value σₖ", xFormat: fmtTick,
        yFormat: fmtTick });
      sizeCanvas(spec.canvas, width, height);
    }
    spec.svg.setAttribute("aria-label", `singular values against rank at layer ${layer}, log–log, with the ` +
      "fitted tail line");
    const ahead = spec.ahead;
    if (ahead.key && sameKey(ahead.key, plan.key) && ahead.canvas.width === spec.canvas.width
        && ahead.canvas.height === spec.canvas.height) {
      copyCanvas(spec.canvas, ahead.canvas);
      specBox.dataset.copies = +(specBox.dataset.copies || 0) + 1;
    } else paintPlan(spec.canvas, plan, sel);
    setText(spec.caption, plan.caption);
    spec.drawn = true;
  }

  function paintPlan(canvas, plan, sel) {
    const { width, height, box, x, y, series, fit } = plan;
    paintSpectrum(canvas, { width, height, box, x, y, series, sel, fit, colors: store.colors.colors,
      palette: spec.palette });
  }

  // Between frames (prepare): the curves of `layer` painted onto a canvas off the page, when the spectra buffers hold
  // that layer (always in a static export; in a live widget, the reply's neighbours of the selected layer). The step
  // to that layer then copies the bitmap instead of stroking every checkpoint's curve in its frame.
  function prepareSpectrum(layer) {
    if (!spec.drawn || !spec.palette || !store.header.has_spectra || !store.spectra
        || !sameLayer(store.get("_spectra_header"), layer)) return;
    const sel = store.checkpointIndex();
    const plan = spectrumPlan(layer, sel);
    if (!plan.series.length || (spec.ahead.key && sameKey(spec.ahead.key, plan.key))) return;
    const canvas = spec.ahead.canvas || (spec.ahead.canvas = document.createElement("canvas"));
    sizeCanvas(canvas, plan.width, plan.height);
    paintPlan(canvas, plan, sel);
    spec.ahead.key = plan.key;
    specBox.dataset.ahead = layer; // (no CSS reads it: the tests' and benchmarks' sign that the copy is ready)
  }

  function showSpecMessage(layer, text, pending) {
    fresh(specBox);
    spec.drawn = false;
    spec.plot.remove();
    spec.caption.remove();
    setText(spec.title, `Spectrum at layer ${layer}`);
    spec.msg.className = pending ? "spn-muted spn-pending" : "spn-muted";
    setText(spec.msg, text);
    if (spec.title.parentNode !== specBox) specBox.prepend(spec.title);
    if (spec.msg.parentNode !== specBox) specBox.append(spec.msg);
  }

  // --- lens: the prompt picker and chips are rebuilt when the prompt or position changes; the columns per step ------
  const lens = { top: null, topKey: null, body: null, cols: new Map(), colsKey: null, drawn: false,
    title: h("h4", { class: "spn-subtitle" }) };

  function drawLens(layer) {
    const data = store.lens;
    if (!store.header.has_lens || !data || !data.prompts.length) {
      // a trace without lens detail (trace()'s lens_prompts defaults to None): say how to fill the panel
      shown.lens = null;
      lens.drawn = false;
      if (!lensBox.querySelector(".spn-lens-hint")) {
        clear(fresh(lensBox)).append(h("h4", { class: "spn-subtitle", text: "Logit lens" }),
          h("p", { class: "spn-muted spn-lens-hint", text: LENS_HINT }));
        lens.top = lens.topKey = lens.body = lens.colsKey = null;
      }
      return;
    }
    const pending = !sameLayer(store.get("_lens_header"), layer);
    shown.lens = pending ? null : `${layer}`;
    if (pending && lens.drawn) {
      showStale(lensBox, layer);
      return;
    }
    fresh(lensBox);
    lensBox.dataset.draws = +lensBox.dataset.draws + 1;
    const prompts = data.prompts;
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
    const { colors } = store.colors;

    setText(lens.title, `Logit lens at layer ${layer}: top next-token predictions`);
    const topKey = `${promptsKey(prompts)}|${lensState.prompt}|${lensState.group}|${lensState.position}|${colors}`;
    if (topKey !== lens.topKey || !lens.top || lens.top[0].parentNode !== lensBox) {
      lens.topKey = topKey;
      lens.top = [lens.title, ...lensTop(prompts, groups, at, colors)];
      lens.colsKey = null;
      clear(lensBox).append(...lens.top);
      lens.body = null;
    }
    // rows of this prompt and layer at each checkpoint's (lined-up) position, grouped by checkpoint, in rank order
    const byC = new Map();
    if (!pending) {
      for (const i of lensRows(data, lensState.prompt, layer)) {
        const c = data.checkpoint[i];
        if (data.position[i] !== at[groupOf.get(c) ?? 0]) continue;
        if (!byC.has(c)) byC.set(c, []);
        byC.get(c).push(i);
      }
    }
    // a checkpoint whose tokens have no position ending the picked text: its column says so
    const unaligned = groups.flatMap((grp, g) => (at[g] === null ? grp.checkpoints : []));
    const shownC = [...new Set([...byC.keys(), ...unaligned])].sort((a, b) => a - b);
    let body;
    if (pending) body = setLensMessage("loading…", true);
    else if (!shownC.length) body = setLensMessage("No lens detail at this layer and position.", false);
    else {
      const colsKey = shownC.map((c) => `${c}:${byC.has(c) ? byC.get(c).length : "none"}`).join(",") + `|${colors}`;
      if (colsKey !== lens.colsKey || !lens.colsBox) {
        lens.colsKey = colsKey;
        lens.cols = new Map(shownC.map((c) => [c, lensColumn(c, byC.has(c) ? byC.get(c).length : 0, colors)]));
        lens.colsBox = h("div", { class: "spn-lens-cols" }, [...lens.cols.values()].map((col) => col.el));
      }
      for (const [c, col] of lens.cols) {
        const idx = (byC.get(c) || []).sort((a, b) => data.rank[a] - data.rank[b]);
        idx.forEach((i, j) => {
          const row = col.rows[j];
          setText(row.tok, visible(data.strings[data.lens_token[i]]));
          const w = `${Math.min(100, data.prob[i] * 100).toFixed(1)}%`;
          if (row.bar.style.width !== w) row.bar.style.width = w;
          setText(row.prob, `${fmt(data.prob[i] * 100, 3)}%`);
        });
      }
      body = lens.colsBox;
    }
    if (lens.body !== body) {
      if (lens.body) lens.body.remove();
      lensBox.append(body);
      lens.body = body;
    }
    lens.drawn = !pending;
  }

  function setLensMessage(text, pending) {
    const p = lens.msg || (lens.msg = h("p"));
    p.className = pending ? "spn-muted spn-pending" : "spn-muted";
    setText(p, text);
    return p;
  }

  function lensTop(prompts, groups, at, colors) {
    const out = [];
    if (prompts.length > 1) {
      out.push(h("select", { class: "spn-select", "aria-label": "prompt",
        onchange: (ev) => {
          Object.assign(lensState, { prompt: +ev.target.value, group: 0, position: null });
          drawLens(store.get("layer"));
        } },
      prompts.map((p) => h("option", { value: p.index, text: p.text.length > 70 ? p.text.slice(0, 69) + "…" : p.text,
        selected: p.index === lensState.prompt ? "selected" : null }))));
    }
    for (const [g, grp] of groups.entries()) {
      out.push(h("div", { class: "spn-tokens", "aria-label": "input tokens: pick a position" +
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
    }
    return out;
  }

  function lensColumn(c, nRows, colors) {
    const headEl = h("div", { class: "spn-lens-head" }, [
      h("span", { class: "spn-swatch", style: { background: colors[c] } }), h("span", { text: store.names[c] })]);
    if (!nRows) {
      return { el: h("div", { class: "spn-lens-col", "data-checkpoint": c }, [headEl,
        h("p", { class: "spn-muted spn-lens-none", text: "no token of this checkpoint's tokenizer ends there" })]),
      rows: [] };
    }
    const rows = Array.from({ length: nRows }, () => ({
      tok: h("span", { class: "spn-lens-tok" }),
      bar: h("i", { style: { background: colors[c] } }),
      prob: h("span", { class: "spn-num spn-prob" }),
    }));
    return {
      el: h("div", { class: "spn-lens-col", "data-checkpoint": c }, [headEl, ...rows.map((row) =>
        h("div", { class: "spn-lens-row" }, [row.tok, h("span", { class: "spn-bar" }, [row.bar]), row.prob]))]),
      rows,
    };
  }

  // While the kernel sends a new layer's spectra and lens, the previous drawing stays, dimmed, under a "loading" note:
  // emptying the panel would shrink the notebook cell and grow it back on every scrub step (a layout shift of the
  // whole notebook, twice a step).
  function showStale(box, layer) {
    box.classList.add("spn-stale");
    let note = box.querySelector(":scope > .spn-pending-note");
    if (!note) {
      note = h("p", { class: "spn-muted spn-pending spn-pending-note", role: "status" });
      box.append(note);
    }
    note.textContent = `loading layer ${layer}…`;
  }

  // the box leaves the stale state (its note goes)
  function fresh(box) {
    if (box.classList.contains("spn-stale")) {
      box.classList.remove("spn-stale");
      const note = box.querySelector(":scope > .spn-pending-note");
      if (note) note.remove();
    }
    return box;
  }

  const offs = [
    () => observer && observer.disconnect(),
    store.on("layer", () => schedule("layer")),
    store.on("checkpoint reference terminal_depth _data _header _deltas _summaries", () => schedule("all")),
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

// The theme's colours for the canvas (CSS variables resolve in the page, not in a canvas).
function readPalette(el) {
  const cs = getComputedStyle(el);
  return { fg: cs.getPropertyValue("--spn-fg").trim() || "#1d2329",
    window: cs.getPropertyValue("--spn-window").trim() || "rgba(128, 128, 128, 0.09)" };
}

// A text change only when the text differs (an unchanged text node is not laid out or painted again).
// the companion metrics in the table: header, its tooltip, digits (the interval is in the cell's tooltip: the table
// must fit its box at 800 px)
const COMPANION_HEAD = {
  effective_rank: ["eff. rank", "effective rank of the centered Gram (exp of the entropy of its eigenvalues)", 3],
  kl_to_final: ["KL→L", "KL(p_L ‖ p_ℓ) of the lens from the final layer (nats)", 2],
  top1_agreement: ["top-1=L", "share of positions whose lens top-1 token is the final layer's", 2],
};

// The last text written to each element, compared instead of reading textContent back (which builds a string from
// the DOM on every call). Only setText writes the text of these elements.
const written = new WeakMap();
function setText(el, text) {
  if (written.get(el) === text && el.firstChild) return;
  if (el.textContent !== text) el.textContent = text;
  written.set(el, text);
}

// A value cell: the value and its interval as two text nodes, kept on the cell with the strings they show, so a
// step compares strings instead of reading the DOM.
function numCell() {
  const td = h("td", { class: "spn-num" });
  const value = document.createTextNode("");
  const interval = document.createTextNode("");
  td.append(value, h("small", {}, [interval]));
  td.spn = { value, interval, shown: ["", ""] };
  return td;
}

function setNum(td, value, interval) {
  const c = td.spn;
  if (c.shown[0] !== value) c.value.nodeValue = c.shown[0] = value;
  if (c.shown[1] !== interval) c.interval.nodeValue = c.shown[1] = interval;
}

// The lens rows of one prompt at one layer (an index per decoded lens table, built on first use: a static export
// holds every layer's rows, and a step would otherwise scan them all).
const lensIndex = new WeakMap();
function lensRows(data, prompt, layer) {
  let index = lensIndex.get(data);
  if (!index) {
    index = new Map();
    for (let i = 0; i < data.checkpoint.length; i++) {
      const key = `${data.prompt[i]}|${data.layer[i]}`;
      if (!index.has(key)) index.set(key, []);
      index.get(key).push(i);
    }
    lensIndex.set(data, index);
  }
  return index.get(`${prompt}|${layer}`) || [];
}

// A signature of the prompts (the live widget's every reply brings a new header object with the same prompts).
const promptKeys = new WeakMap();
function promptsKey(prompts) {
  if (!promptKeys.has(prompts)) promptKeys.set(prompts, JSON.stringify(prompts));
  return promptKeys.get(prompts);
}

// keys of spectrumPlan: equal values, or the same objects
function sameKey(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

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
