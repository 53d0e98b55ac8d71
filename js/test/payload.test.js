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
  const { header, bytes } = pack({
    row: ["u16", new Uint16Array([3, 1])], count: ["u8", new Uint8Array([2, 3])],
    fit_intercept: ["f32", new Float32Array([1.5, NaN])], fit_k_lo: ["f32", new Float32Array([2, NaN])],
    fit_k_hi: ["f32", new Float32Array([9, NaN])],
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
  assert.equal(sp.fit_intercept[3], 1.5);
  assert.ok(Number.isNaN(sp.fit_k_lo[1]) && Number.isNaN(sp.fit_k_lo[0]));
});
