// DOM and SVG builders. Every string from the data (checkpoint names, tokens, prompts) goes in through
// textContent or setAttribute, never through HTML parsing: tokens are untrusted.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k === "class") node.setAttribute("class", v);
    else if (k === "style" && typeof v === "object") {
      for (const [prop, val] of Object.entries(v)) {
        if (prop.startsWith("--")) node.style.setProperty(prop, val); // custom properties need setProperty
        else node.style[prop] = val;
      }
    }
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  return node;
}

function append(node, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// h("div", {class: "x", text: "literal <b>"}, [children]) — strings become text nodes.
export function h(tag, attrs, children) {
  return append(apply(document.createElement(tag), attrs), children);
}

export function s(tag, attrs, children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// Axes for a plot area: ticks, grid lines and a label in the user's words.
// x/y are scales from scales.js; box = {left, top, width, height}.
export function axes(g, x, y, box, { xLabel, yLabel, xTicks = 6, yTicks = 5, xFormat, yFormat, grid = true }) {
  const xt = x.ticks(xTicks);
  const yt = y.ticks(yTicks);
  const right = box.left + box.width;
  const bottom = box.top + box.height;
  const grp = s("g", { class: "spn-axes" });
  if (grid) {
    for (const v of yt) {
      grp.append(s("line", { class: "spn-grid", x1: box.left, x2: right, y1: y(v), y2: y(v) }));
    }
    for (const v of xt) {
      grp.append(s("line", { class: "spn-grid", x1: x(v), x2: x(v), y1: box.top, y2: bottom }));
    }
  }
  grp.append(s("line", { class: "spn-axis", x1: box.left, x2: right, y1: bottom, y2: bottom }));
  grp.append(s("line", { class: "spn-axis", x1: box.left, x2: box.left, y1: box.top, y2: bottom }));
  for (const v of xt) {
    grp.append(s("text", { class: "spn-tick", x: x(v), y: bottom + 14, "text-anchor": "middle", text: xFormat(v) }));
  }
  for (const v of yt) {
    grp.append(s("text", { class: "spn-tick", x: box.left - 6, y: y(v) + 3.5, "text-anchor": "end", text: yFormat(v) }));
  }
  if (xLabel) {
    grp.append(s("text", { class: "spn-axis-label", x: box.left + box.width / 2, y: bottom + 32,
      "text-anchor": "middle", text: xLabel }));
  }
  if (yLabel) {
    const cy = box.top + box.height / 2;
    grp.append(s("text", { class: "spn-axis-label", x: 0, y: 0, "text-anchor": "middle",
      transform: `translate(${box.left - 42} ${cy}) rotate(-90)`, text: yLabel }));
  }
  g.append(grp);
  return grp;
}

// Observe an element's width; calls back (debounced to one per frame) with the new width.
export function onResize(el, cb) {
  let frame = 0;
  let last = -1;
  const ro = new ResizeObserver((entries) => {
    const w = Math.round(entries[0].contentRect.width);
    if (w === last || w === 0) return;
    last = w;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => cb(w));
  });
  ro.observe(el);
  return () => ro.disconnect();
}

// Mount a plot that is drawn at its element's width: subscribes `on` ([[trait names, callback], ...]) on the store,
// redraws on a width change (`resize(w)` hands the view its new width, then `draw()`), takes the element's width now
// if it has one, draws once; returns the teardown (unsubscribes, stops observing).
export function mountPlot(plot, store, { on = [], resize, draw }) {
  const offs = [
    ...on.map(([names, cb]) => store.on(names, cb)),
    onResize(plot, (w) => {
      resize(w);
      draw();
    }),
  ];
  if (plot.clientWidth) resize(plot.clientWidth);
  draw();
  return () => offs.forEach((off) => off());
}
