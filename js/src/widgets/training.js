// anywidget entry: spinal_nb.widgets.TrainingView — a training trace: layer × step heatmap, step/layer scrubbers,
// the selected layer over training and the depth path, all on one model (the selection is one (step, layer) state,
// synced with Python). Python replaces the payload in place as evaluations arrive (TrainingView.update).
import { h } from "../lib/dom.js";
import { moveCell } from "../lib/heatmap.js";
import { createStore, mountRoot } from "../lib/store.js";
import { mountDepthPath } from "../views/depth_path.js";
import { mountHeatmap, trainingOrder } from "../views/heatmap.js";
import { mountOverTraining, mountTrainingScrubber } from "../views/over_training.js";

function statusText(st) {
  if (!st || !st.evaluations) return "";
  const parts = [`${st.evaluations} evaluation${st.evaluations === 1 ? "" : "s"}`];
  if (st.first_step !== null && st.first_step !== undefined) parts.push(`steps ${st.first_step}–${st.last_step}`);
  if (st.alerts) parts.push(`${st.alerts} alert${st.alerts === 1 ? "" : "s"}`);
  if (st.updated) parts.push(`updated ${st.updated}`);
  if (st.source) parts.push(st.source);
  return parts.join(" · ");
}

function render({ model, el }) {
  const store = createStore(model);
  const keys = (key) => {
    const { order } = trainingOrder(store);
    const col = order.indexOf(store.checkpointIndex());
    const next = moveCell(Math.max(0, col), store.get("layer"), key, order.length, store.maxLayer);
    if (!next) return false;
    const name = store.names[order[next[0]]];
    const values = {};
    if (name !== undefined && name !== store.get("checkpoint")) values.checkpoint = name;
    if (next[1] !== store.get("layer")) values.layer = next[1];
    if (Object.keys(values).length) store.set(values);
    return true;
  };
  const root = mountRoot(el, store, "spn-training", keys);
  const live = h("span", { class: "spn-live", text: "live" });
  const status = h("span", { class: "spn-status" });
  root.append(h("div", { class: "spn-dash-title spn-train-title" }, [
    h("span", { text: model.get("title") || "SPINAL over training" }), live, status]));
  const top = h("div", { class: "spn-dash-top spn-train-top" });
  const left = h("div", { class: "spn-dash-main" });
  const right = h("div", { class: "spn-dash-side" });
  top.append(left, right);
  root.append(top);
  const height = model.get("height") || 380;
  const showStatus = () => {
    const st = model.get("_status") || {};
    status.textContent = statusText(st);
    live.style.display = st.live ? "" : "none";
  };
  const offs = [
    mountHeatmap(left, store, { height }),
    mountDepthPath(right, store, { height: height - 60 }),
    mountTrainingScrubber(root, store),
    mountOverTraining(root, store, { height: 190 }),
    store.on("_status", showStatus),
  ];
  showStatus();
  return () => {
    offs.forEach((off) => off());
    store.dispose();
  };
}

export default { render };
