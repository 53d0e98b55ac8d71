// Columnar binary payload: Python packs each column as little-endian typed bytes into one buffer and describes it
// in a JSON header {n, columns: {name: [code, byteOffset, length, ...parameters]}}. Decoding is a view per column: no
// per-row JSON. Display-only columns arrive as 16-bit codes, decoded here once into Float32Array (the same float64
// expression as spinal_nb/widgets/_payload.py `decode`, rounded to float32): `q16` (lo, step) -> lo + q·step,
// `lq16` (a, b) -> 0 for q = 0, else exp(a + (q − 1)·b); 65535 is NaN in both. A `ratio` column (num, by, den) has
// no bytes: num[i] / den[by[i]], 0 where den is 0 (depth = layer / L).

const TYPES = {
  f32: Float32Array,
  f64: Float64Array,
  i32: Int32Array,
  u32: Uint32Array,
  u16: Uint16Array,
  u8: Uint8Array,
};

// Synced Bytes traits arrive as DataView (Jupyter), ArrayBuffer, or a typed array (our static HTML shim).
export function asBytes(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError("payload: expected bytes, got " + Object.prototype.toString.call(value));
}

// header + bytes -> {rows, name: TypedArray}. Columns are copied out so that unaligned offsets never matter. An
// interval sent as a half-width (`<name>_hw`, when it is symmetric about the value) comes back as `<name>_lo` and
// `<name>_hi`, so the views read every interval alike.
export function decodeColumns(header, value) {
  const out = rawColumns(header, value);
  for (const name of Object.keys(out)) {
    if (!name.endsWith("_hw") || !out[name.slice(0, -3)]) continue;
    const v = out[name.slice(0, -3)];
    const hw = out[name];
    const lo = new Float64Array(hw.length);
    const hi = new Float64Array(hw.length);
    for (let i = 0; i < hw.length; i++) {
      lo[i] = v[i] - hw[i];
      hi[i] = v[i] + hw[i];
    }
    out[name.slice(0, -3) + "_lo"] = lo;
    out[name.slice(0, -3) + "_hi"] = hi;
    delete out[name];
  }
  return out;
}

// The spectra buffer (one entry per spectrum: its table row, point count, tail-fit line and rank pattern; then the
// points' σ, and each distinct pattern of ranks once) as arrays indexed by table row: start (-1 for none), count,
// fit_intercept, fit_k_lo, fit_k_hi; and k, sigma per point (k expanded from the patterns).
export function spectraByRow(header, value, nRows) {
  const sp = rawColumns(header, value);
  const k = new Uint32Array(sp.sigma ? sp.sigma.length : 0);
  for (let j = 0, at = 0; j < sp.rows; j++) {
    const from = sp.k_start[sp.pattern[j]];
    if (from === undefined || from + sp.count[j] > sp.k.length || at + sp.count[j] > k.length) {
      throw new RangeError(`payload: spectrum ${j} runs past its rank pattern or the points`);
    }
    k.set(sp.k.subarray(from, from + sp.count[j]), at);
    at += sp.count[j];
  }
  const out = { k, sigma: sp.sigma, start: new Int32Array(nRows).fill(-1), count: new Uint16Array(nRows),
    fit_intercept: new Float64Array(nRows).fill(NaN), fit_k_lo: new Float64Array(nRows).fill(NaN),
    fit_k_hi: new Float64Array(nRows).fill(NaN) };
  let at = 0;
  for (let j = 0; j < sp.rows; j++) {
    const r = sp.row[j];
    if (r < nRows) {
      out.start[r] = at;
      out.count[r] = sp.count[j];
      out.fit_intercept[r] = sp.fit_intercept[j];
      out.fit_k_lo[r] = sp.fit_k_lo[j];
      out.fit_k_hi[r] = sp.fit_k_hi[j];
    }
    at += sp.count[j];
  }
  return out;
}

const Q_NAN = 65535;

// u16 codes of a q16 / lq16 column -> Float32Array.
export function dequantize(code, params, q) {
  const [p0, p1] = params;
  if (!Number.isFinite(p0) || !Number.isFinite(p1)) throw new TypeError(`payload: bad ${code} parameters`);
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const c = q[i];
    if (c === Q_NAN) out[i] = NaN;
    else if (code === "q16") out[i] = p0 + c * p1;
    else out[i] = c === 0 ? 0 : Math.exp(p0 + (c - 1) * p1);
  }
  return out;
}

function rawColumns(header, value) {
  const bytes = asBytes(value);
  const out = { rows: header && header.n ? header.n : 0 };
  const columns = (header && header.columns) || {};
  const ratios = [];
  for (const [name, spec] of Object.entries(columns)) {
    if (name === "rows") throw new TypeError("payload: 'rows' is reserved for the row count");
    const [code, offset, length, ...params] = spec;
    if (code === "ratio") {
      ratios.push([name, length, params]);
      continue;
    }
    const quantized = code === "q16" || code === "lq16";
    const T = quantized ? Uint16Array : TYPES[code];
    if (!T) throw new TypeError(`payload: unknown column type ${code} for ${name}`);
    const nbytes = length * T.BYTES_PER_ELEMENT;
    if (offset + nbytes > bytes.byteLength) {
      throw new RangeError(`payload: column ${name} runs past the buffer (${offset + nbytes} > ${bytes.byteLength})`);
    }
    const copy = bytes.slice(offset, offset + nbytes); // fresh, aligned ArrayBuffer
    out[name] = quantized ? dequantize(code, params, new T(copy.buffer, 0, length)) : new T(copy.buffer, 0, length);
  }
  for (const [name, length, [num, by, den]] of ratios) {
    const n = out[num];
    const b = out[by];
    if (!n || !b || n.length !== length || b.length !== length || !Array.isArray(den)) {
      throw new TypeError(`payload: ratio column ${name} needs columns ${num} and ${by} of length ${length}`);
    }
    const col = new Float64Array(length);
    for (let i = 0; i < length; i++) {
      const d = den[b[i]];
      col[i] = d ? n[i] / d : 0;
    }
    out[name] = col;
  }
  return out;
}

// Index of the main table: rows of each checkpoint in layer order, and (checkpoint, layer) -> row.
export function indexRows(table, nCheckpoints) {
  const byCheckpoint = Array.from({ length: nCheckpoints }, () => []);
  const at = new Map();
  for (let i = 0; i < table.rows; i++) {
    const c = table.checkpoint[i];
    byCheckpoint[c].push(i);
    at.set(c * 100000 + table.layer[i], i);
  }
  for (const rows of byCheckpoint) rows.sort((a, b) => table.layer[a] - table.layer[b]);
  return {
    byCheckpoint,
    row(c, layer) {
      const r = at.get(c * 100000 + layer);
      return r === undefined ? -1 : r;
    },
  };
}
