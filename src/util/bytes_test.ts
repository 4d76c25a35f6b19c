import assert from "node:assert/strict";
import { concatBytes } from "./bytes.ts";

Deno.test("concatBytes: parts in order, empty parts and no parts, always a new buffer", () => {
  assert.deepEqual(concatBytes([]), new Uint8Array(0));
  const one = Uint8Array.of(1, 2);
  const copy = concatBytes([one]);
  assert.deepEqual(copy, one);
  assert.notEqual(copy.buffer, one.buffer);
  const view = Uint8Array.of(9, 3, 4, 9).subarray(1, 3);
  assert.deepEqual(
    concatBytes([one, new Uint8Array(0), view, Uint8Array.of(5)]),
    Uint8Array.of(1, 2, 3, 4, 5),
  );
});
