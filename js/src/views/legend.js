// Checkpoint legend: swatches (few checkpoints) or a gradient bar over training steps (many); click selects.

import { clear, h } from "../lib/dom.js";
import { sequential } from "../lib/scales.js";

export function legend(box, store, { onHover, notes = [] }) {
  clear(box);
  const names = store.names;
  const { kind, colors, t, bySteps } = store.colors;
  const sel = store.checkpointIndex();
  const ref = store.referenceIndex();
  const hover = (c) => () => onHover && onHover(c);
  if (kind === "categorical") {
    const items = names.map((name, c) =>
      h("button", {
        class: "spn-legend-item" + (c === sel ? " spn-on" : ""), type: "button", title: `select ${name}`,
        "data-checkpoint": c, onclick: () => store.setCheckpoint(c), onmouseenter: hover(c), onmouseleave: hover(-1),
      }, [
        h("span", { class: "spn-swatch", style: { background: colors[c] } }),
        h("span", { class: "spn-legend-name", text: name }),
        c === ref ? h("span", { class: "spn-badge", text: "reference" }) : null,
      ]));
    box.append(h("div", { class: "spn-legend-items" }, items));
  } else {
    // a ramp with one tick per checkpoint: hover and click work on the ticks
    const steps = store.header.steps || [];
    const label = (c) => (bySteps ? `step ${steps[c]}` : names[c]);
    const stops = Array.from({ length: 11 }, (_, i) => `${sequential(i / 10)} ${i * 10}%`).join(", ");
    const ticks = names.map((name, c) =>
      h("button", {
        class: "spn-ramp-tick" + (c === sel ? " spn-on" : ""), type: "button", title: `${name} (${label(c)})`,
        style: { left: `${(t[c] * 100).toFixed(2)}%`, background: colors[c] }, "data-checkpoint": c,
        onclick: () => store.setCheckpoint(c), onmouseenter: hover(c), onmouseleave: hover(-1),
      }));
    const first = t.indexOf(Math.min(...t));
    const last = t.indexOf(Math.max(...t));
    box.append(h("div", { class: "spn-ramp" }, [
      h("span", { class: "spn-ramp-end", text: label(first) }),
      h("div", { class: "spn-ramp-bar", style: { background: `linear-gradient(to right, ${stops})` } }, ticks),
      h("span", { class: "spn-ramp-end", text: label(last) }),
      h("span", { class: "spn-ramp-sel" }, [
        h("span", { class: "spn-swatch", style: { background: colors[sel] } }),
        h("span", { class: "spn-legend-name", text: names[sel] }),
        sel === ref ? h("span", { class: "spn-badge", text: "reference" }) : null,
      ]),
    ]));
  }
  if (notes.length) {
    box.append(h("div", { class: "spn-legend-notes" },
      notes.map(([cls, text]) => h("span", { class: "spn-note " + cls }, [h("i"), text]))));
  }
}
