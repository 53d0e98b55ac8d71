// Scales, ticks, number formats and checkpoint colours shared by every view. Pure functions: tested with node --test.

// [min, max] of finite values over any number of arrays; pad widens by a fraction of the span on each side.
export function extent(arrays, pad = 0) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const arr of arrays) {
    if (!arr) continue;
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.05;
    return [lo - d, hi + d];
  }
  const d = (hi - lo) * pad;
  return [lo - d, hi + d];
}

// Tick step of 1, 2 or 5 times a power of ten giving about `count` ticks over [lo, hi].
export function tickStep(lo, hi, count = 5) {
  const span = Math.abs(hi - lo);
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const e = raw / power; // in [1, 10): round to 1, 2, 5 or 10 (geometric midpoints, as d3 does)
  return (e >= Math.sqrt(50) ? 10 : e >= Math.sqrt(10) ? 5 : e >= Math.sqrt(2) ? 2 : 1) * power;
}

// Round tick values inside [lo, hi] (inclusive, tolerant to float error).
export function ticks(lo, hi, count = 5) {
  if (lo > hi) [lo, hi] = [hi, lo];
  const step = tickStep(lo, hi, count);
  const start = Math.ceil(lo / step - 1e-9);
  const stop = Math.floor(hi / step + 1e-9);
  const out = [];
  for (let i = start; i <= stop; i++) out.push(+(i * step).toPrecision(12));
  return out;
}

// Extend [lo, hi] outwards to multiples of the tick step.
export function nice(lo, hi, count = 5) {
  const step = tickStep(lo, hi, count);
  return [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step];
}

export function linear(domain, range) {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  const f = (v) => r0 + (v - d0) * k;
  f.invert = (p) => (k === 0 ? d0 : d0 + (p - r0) / k);
  f.domain = domain;
  f.range = range;
  f.ticks = (count = 5) => ticks(d0, d1, count);
  return f;
}

// Base-10 log scale; ticks at powers of ten (plus 2 and 5 when the domain spans under two decades).
export function log(domain, range) {
  const [d0, d1] = domain;
  if (!(d0 > 0 && d1 > 0)) throw new RangeError("log scale needs a positive domain");
  const inner = linear([Math.log10(d0), Math.log10(d1)], range);
  const f = (v) => inner(Math.log10(v));
  f.invert = (p) => 10 ** inner.invert(p);
  f.domain = domain;
  f.range = range;
  f.ticks = () => {
    const a = Math.floor(Math.log10(Math.min(d0, d1)) + 1e-9);
    const b = Math.ceil(Math.log10(Math.max(d0, d1)) - 1e-9);
    const lo = Math.min(d0, d1) * (1 - 1e-9);
    const hi = Math.max(d0, d1) * (1 + 1e-9);
    const mult = b - a <= 2 ? [1, 2, 5] : [1];
    const out = [];
    for (let e = a; e <= b; e++) {
      for (const m of mult) {
        const v = +(m * 10 ** e).toPrecision(12);
        if (v >= lo && v <= hi) out.push(v);
      }
    }
    return out;
  };
  return f;
}

// [lo, hi] (positive) widened to 1, 2 or 5 times a power of ten: a log axis that moves only now and then.
export function logNice(lo, hi) {
  if (!(hi > 0)) return [lo, hi];
  if (!(lo > 0) || lo > hi) lo = hi / 1000;
  const split = (v) => {
    const e = Math.floor(Math.log10(v));
    return [v / 10 ** e, 10 ** e];
  };
  const [ml, pl] = split(lo);
  const [mh, ph] = split(hi);
  const down = (ml >= 5 - 1e-9 ? 5 : ml >= 2 - 1e-9 ? 2 : 1) * pl;
  const up = (mh <= 1 + 1e-9 ? 1 : mh <= 2 + 1e-9 ? 2 : mh <= 5 + 1e-9 ? 5 : 10) * ph;
  return [+down.toPrecision(12), +up.toPrecision(12)];
}

// Short, stable number formatting for tooltips and tables ("—" for missing values).
export function fmt(v, digits = 3) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(Math.max(0, digits - 1)).replace("e+", "e");
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(a)));
  return v.toFixed(Math.min(decimals, 6));
}

export function fmtSigned(v, digits = 3) {
  const s = fmt(v, digits);
  return Number.isFinite(v) && v > 0 ? "+" + s : s.replace("-", "−");
}

export function fmtInterval(lo, hi, digits = 3) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return "";
  return `[${fmt(lo, digits)}, ${fmt(hi, digits)}]`.replaceAll("-", "−");
}

// A checkpoint's sample size as shown: "N 4,096 · N/d 8.0" ({n, n_per_d, caution} from the payload's header), and
// whether α̂ needs the small-N/d caution.
export function fmtSample(sample) {
  if (!sample || sample.n === null || sample.n === undefined) return { text: "N —", caution: false };
  const n = `N ${Math.round(sample.n).toLocaleString("en-US")}`;
  const r = sample.n_per_d;
  const ratio = r === null || r === undefined || !Number.isFinite(r) ? "N/d —" : `N/d ${r >= 10 ? r.toFixed(0) : r.toFixed(1)}`;
  return { text: `${n} · ${ratio}`, caution: !!sample.caution };
}

export function fmtTick(v) {
  const a = Math.abs(v);
  if (v === 0) return "0";
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0).replace("e+", "e").replace("-", "−");
  return (+v.toPrecision(6)).toString().replace("-", "−");
}

// Categorical palette (Tableau 10, reordered for contrast between the first few checkpoints).
export const CATEGORICAL = [
  "#3b6fb6", "#e8772e", "#3a9a5b", "#c8414b", "#8a62b3", "#a0702b", "#d36aa6", "#6f7378", "#a7a93a", "#2fa6b8",
];

// Viridis stops (matplotlib), cut before the light yellow end that vanishes on a white page.
const VIRIDIS = [
  [0.0, [68, 1, 84]], [0.13, [71, 44, 122]], [0.25, [59, 81, 139]], [0.38, [44, 113, 142]],
  [0.5, [33, 144, 141]], [0.63, [39, 173, 129]], [0.75, [92, 200, 99]], [0.88, [170, 220, 50]], [1.0, [253, 231, 37]],
];
const SEQ_MAX = 0.8;

function hex(rgb) {
  return "#" + rgb.map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
}

// t in [0, 1] -> a colour on the (cut) viridis ramp.
export function sequential(t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * SEQ_MAX;
  for (let i = 1; i < VIRIDIS.length; i++) {
    const [t1, c1] = VIRIDIS[i];
    const [t0, c0] = VIRIDIS[i - 1];
    if (x <= t1) {
      const u = (x - t0) / (t1 - t0);
      return hex(c0.map((v, j) => v + (c1[j] - v) * u));
    }
  }
  return hex(VIRIDIS[VIRIDIS.length - 1][1]);
}

// One colour per checkpoint: categorical up to `maxCategorical`, else a sequential ramp ordered by training
// step when every checkpoint has one (else by position). Returns {kind, colors, order: t per checkpoint}.
export function checkpointColors(names, steps = null, maxCategorical = 8) {
  const n = names.length;
  if (n <= maxCategorical) {
    return { kind: "categorical", colors: names.map((_, i) => CATEGORICAL[i % CATEGORICAL.length]), t: null };
  }
  const haveSteps = steps && steps.length === n && steps.every((s) => Number.isFinite(s));
  const key = haveSteps ? steps : names.map((_, i) => i);
  const [lo, hi] = [Math.min(...key), Math.max(...key)];
  const t = key.map((k) => (hi > lo ? (k - lo) / (hi - lo) : 0));
  return { kind: "sequential", colors: t.map(sequential), t, bySteps: !!haveSteps };
}
