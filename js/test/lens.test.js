import { test } from "node:test";
import assert from "node:assert/strict";
import { alignPositions, tokenEnds, tokenizations } from "../src/lib/lens.js";

const TEXT = "The capital of France is";
const A = { checkpoints: [0], tokens: ["The", " capital", " of", " France", " is"].map((t, i) => [i, t]) };
const B = { checkpoints: [1], tokens: ["<s>", "The", " cap", "ital", " of", " Fr", "ance", " is"].map((t, i) => [i, t]) };

test("tokenEnds: where each token ends in the text; special tokens and fragments read nothing", () => {
  assert.deepEqual(tokenEnds(TEXT, A.tokens.map(([, t]) => t)), [3, 11, 14, 21, 24]);
  assert.deepEqual(tokenEnds(TEXT, B.tokens.map(([, t]) => t)), [0, 3, 7, 11, 14, 17, 21, 24]);
  // SentencePiece decodes a single token without its leading space
  assert.deepEqual(tokenEnds(TEXT, ["The", "capital", "of"]), [3, 11, 14]);
  // four byte fragments of "üß": the last one completes it
  assert.deepEqual(tokenEnds("Grüße", ["G", "r", "\ufffd", "\ufffd", "\ufffd", "\ufffd", "e"]), [1, 2, 2, 2, 2, 4, 5]);
  assert.deepEqual(tokenEnds("a — b", ["a", " \ufffd", "\ufffd", " b"]), [1, 1, 3, 5]);
  assert.deepEqual(tokenEnds("a b", ["a", "x", " b"]), [1, 1, 3]);
});

test("alignPositions: the position of each tokenization that ends the same prefix, or null", () => {
  assert.deepEqual(alignPositions(TEXT, [A, B], 0, 3), [3, 6]); // "… France" = " Fr" + "ance"
  assert.deepEqual(alignPositions(TEXT, [A, B], 0, 0), [0, 1]); // "The" (after BOS in B)
  assert.deepEqual(alignPositions(TEXT, [A, B], 1, 2), [null, 2]); // "The cap": no token of A ends there
  assert.deepEqual(alignPositions(TEXT, [A, B], 1, 7), [4, 7]);
  assert.deepEqual(alignPositions(TEXT, [A, B], 0, 99), [null, null]);
});

test("tokenizations: one group with every checkpoint when the header has none", () => {
  assert.deepEqual(tokenizations({ tokens: [[0, "a"]] }, 3), [{ checkpoints: [0, 1, 2], tokens: [[0, "a"]] }]);
  assert.deepEqual(tokenizations({ tokens: A.tokens, tokenizations: [A, B] }, 2), [A, B]);
});
