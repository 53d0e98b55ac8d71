import { test } from "node:test";
import assert from "node:assert/strict";
import { asBytes, decodeColumns, indexRows, spectraByRow } from "../src/lib/payload.js";

// Pack like spinal_nb/widgets/_payload.py: columns little-endian, each padded to 8 bytes.
function pack(cols) {
  const parts = [];
  const columns = {};
  let offset = 0;
  for (const [name, [code, arr]] of Object.entries(cols)) {
    const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    columns[name] = [code, offset, arr.length];
    const padded = new Uint8Array(Math.ceil(bytes.length / 8) * 8);
    padded.set(bytes);
    parts.push(padded);
    offset += padded.length;
  }
  const out = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return { header: { n: Object.values(cols)[0][1].length, columns }, bytes: out };
}

test("columns round-trip, from a DataView at an odd offset as Jupyter delivers them", () => {
  const { header, bytes } = pack({
    checkpoint: ["u16", new Uint16Array([0, 0, 1])],
    layer: ["i32", new Int32Array([1, 0, 0])],
    contraction: ["f32", new Float32Array([0.5, NaN, 0.75])],
    n: ["f64", new Float64Array([1e12, 2, 3])],
  });
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  const t = decodeColumns(header, new DataView(shifted.buffer, 3, bytes.length));
  assert.equal(t.rows, 3);
  assert.deepEqual([...t.layer], [1, 0, 0]);
  assert.ok(Number.isNaN(t.contraction[1]));
  assert.equal(t.contraction[2], 0.75);
  assert.equal(t.n[0], 1e12); // a column may be called "n"; the row count is "rows"
  const idx = indexRows(t, 2);
  assert.deepEqual(idx.byCheckpoint[0], [1, 0]); // sorted by layer
  assert.equal(idx.row(1, 0), 2);
  assert.equal(idx.row(1, 5), -1);
});

test("bad payloads fail loudly", () => {
  assert.throws(() => decodeColumns({ n: 1, columns: { a: ["f32", 0, 10] } }, new Uint8Array(8)), RangeError);
  assert.throws(() => decodeColumns({ n: 1, columns: { a: ["x9", 0, 1] } }, new Uint8Array(8)), TypeError);
  assert.throws(() => decodeColumns({ n: 1, columns: { rows: ["u8", 0, 1] } }, new Uint8Array(8)), TypeError);
  assert.throws(() => asBytes("text"), TypeError);
  assert.equal(asBytes(null).length, 0);
});

test("an interval sent as a half-width comes back as lo and hi", () => {
  const { header, bytes } = pack({
    contraction: ["f32", new Float32Array([0.5, NaN, 0.75])],
    contraction_hw: ["f32", new Float32Array([0.25, NaN, NaN])],
  });
  const t = decodeColumns(header, bytes);
  assert.deepEqual([...t.contraction_lo].slice(0, 1), [0.25]);
  assert.deepEqual([...t.contraction_hi].slice(0, 1), [0.75]);
  assert.ok(Number.isNaN(t.contraction_lo[1]) && Number.isNaN(t.contraction_hi[2]));
  assert.equal(t.contraction_hw, undefined);
});

test("spectra by table row: start, count and the fit line of the rows sent, nothing for the others", () => {
  // two spectra sharing nothing: patterns [1, 2] and [1, 2, 3], sent once each in k (starting at k_start)
  const { header, bytes } = pack({
    row: ["u16", new Uint16Array([3, 1])], count: ["u8", new Uint8Array([2, 3])],
    fit_intercept: ["f32", new Float32Array([1.5, NaN])], fit_k_lo: ["f32", new Float32Array([2, NaN])],
    fit_k_hi: ["f32", new Float32Array([9, NaN])], pattern: ["u8", new Uint8Array([0, 1])],
    k_start: ["u8", new Uint8Array([0, 2])],
  });
  header.columns.k = ["u16", bytes.length, 5];
  header.columns.sigma = ["f32", bytes.length + 16, 5];
  const all = new Uint8Array(bytes.length + 40);
  all.set(bytes);
  all.set(new Uint8Array(new Uint16Array([1, 2, 1, 2, 3]).buffer), bytes.length);
  all.set(new Uint8Array(new Float32Array([4, 3, 9, 8, 7]).buffer), bytes.length + 16);
  const sp = spectraByRow(header, all, 5);
  assert.deepEqual([...sp.start], [-1, 2, -1, 0, -1]);
  assert.deepEqual([...sp.count], [0, 3, 0, 2, 0]);
  assert.deepEqual([...sp.sigma.subarray(sp.start[1], sp.start[1] + sp.count[1])], [9, 8, 7]);
  assert.deepEqual([...sp.k.subarray(sp.start[1], sp.start[1] + sp.count[1])], [1, 2, 3]);
  assert.deepEqual([...sp.k.subarray(sp.start[3], sp.start[3] + sp.count[3])], [1, 2]);
  assert.equal(sp.fit_intercept[3], 1.5);
  assert.ok(Number.isNaN(sp.fit_k_lo[1]) && Number.isNaN(sp.fit_k_lo[0]));
  // a shared pattern is expanded for each spectrum that uses it
  const noFit = () => new Float32Array([NaN, NaN]);
  const shared = pack({ row: ["u8", new Uint8Array([0, 1])], count: ["u8", new Uint8Array([2, 2])],
    fit_intercept: ["f32", noFit()], fit_k_lo: ["f32", noFit()], fit_k_hi: ["f32", noFit()],
    pattern: ["u8", new Uint8Array([0, 0])], k_start: ["u8", new Uint8Array([0])], k: ["u16", new Uint16Array([1, 5])],
    sigma: ["f32", new Float32Array([2, 1])] });
  shared.header.columns.sigma[2] = 4; // 4 points: two spectra of the one pattern [1, 5]
  const b2 = new Uint8Array(shared.bytes.length + 8);
  b2.set(shared.bytes);
  b2.set(new Uint8Array(new Float32Array([6, 5]).buffer), shared.bytes.length);
  const s2 = spectraByRow(shared.header, b2, 2);
  assert.deepEqual([...s2.k], [1, 5, 1, 5]);
  assert.deepEqual([...s2.sigma], [2, 1, 6, 5]);
  // a pattern index with no pattern fails loudly
  const bad = pack({ row: ["u8", new Uint8Array([0])], count: ["u8", new Uint8Array([2])],
    fit_intercept: ["f32", noFit()], fit_k_lo: ["f32", noFit()], fit_k_hi: ["f32", noFit()],
    pattern: ["u8", new Uint8Array([3])], k_start: ["u8", new Uint8Array([0])], k: ["u16", new Uint16Array([1, 5])],
    sigma: ["f32", new Float32Array([2, 1])] });
  assert.throws(() => spectraByRow(bad.header, bad.bytes, 1), RangeError);
});

test("q16 and lq16 columns decode to float32 by their formulas; 65535 is NaN, lq16's 0 is exactly 0", () => {
  const lo = -0.5;
  const step = 0.25;
  const a = Math.log(1e-3);
  const b = Math.log(1e6) / 65533;
  const { header, bytes } = pack({
    r2: ["q16", new Uint16Array([0, 2, 65534, 65535])],
    hw: ["lq16", new Uint16Array([0, 1, 65534, 65535])],
  });
  header.columns.r2.push(lo, step);
  header.columns.hw.push(a, b);
  const t = decodeColumns(header, bytes);
  assert.ok(t.r2 instanceof Float32Array && t.hw instanceof Float32Array);
  assert.deepEqual([...t.r2].slice(0, 2), [-0.5, 0]);
  assert.equal(t.r2[2], Math.fround(-0.5 + 65534 * 0.25));
  assert.ok(Number.isNaN(t.r2[3]) && Number.isNaN(t.hw[3]));
  assert.equal(t.hw[0], 0);
  assert.equal(t.hw[1], Math.fround(1e-3));
  assert.ok(Math.abs(t.hw[2] / 1e3 - 1) < 1e-6); // the top code is the column's maximum, 1e-3 · 1e6
  header.columns.hw.pop();
  assert.throws(() => decodeColumns(header, bytes), TypeError); // a missing parameter
});

test("a ratio column costs no bytes: num / den[by], 0 where den is 0", () => {
  const { header, bytes } = pack({ checkpoint: ["u8", new Uint8Array([0, 0, 1, 1, 2])],
    layer: ["u8", new Uint8Array([0, 7, 3, 10, 4])] });
  header.columns.depth = ["ratio", 0, 5, "layer", "checkpoint", [10, 30, 0]];
  const t = decodeColumns(header, bytes);
  assert.deepEqual([...t.depth], [0, 0.7, 0.1, 1 / 3, 0]); // exact float64 quotients: 0.7 is 7 / 10
  header.columns.depth = ["ratio", 0, 5, "layer", "nosuch", [10]];
  assert.throws(() => decodeColumns(header, bytes), TypeError);
});
