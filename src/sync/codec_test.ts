import assert from "node:assert/strict";
import fc from "fast-check";
import { chunkHashes } from "../prefix/mod.ts";
import { decodeHashes, encodeHashes, parseRecord, recordFields } from "./codec.ts";

Deno.test("encodeHashes/decodeHashes round-trip any hash chain", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 400 }), (xs) => {
      const h = Uint32Array.from(xs.length % 2 === 0 ? xs : xs.slice(1));
      assert.deepEqual(decodeHashes(encodeHashes(h)), h);
    }),
  );
});

Deno.test("encodeHashes writes little-endian bytes, 8 per chunk", () => {
  const h = Uint32Array.of(0x01020304, 0xa0b0c0d0);
  assert.equal(encodeHashes(h), btoa(String.fromCharCode(4, 3, 2, 1, 0xd0, 0xc0, 0xb0, 0xa0)));
  // A view into a larger buffer encodes only its own elements.
  const big = Uint32Array.of(9, 9, 0x01020304, 0xa0b0c0d0, 9, 9);
  assert.equal(encodeHashes(big.subarray(2, 4)), encodeHashes(h));
  assert.equal(encodeHashes(new Uint32Array(0)), "");
});

Deno.test("decodeHashes rejects text that is not whole chunks of base64", () => {
  assert.throws(() => decodeHashes("AQID"), /multiple of 8 bytes, got 3/);
  assert.throws(() => decodeHashes("not base64!"), /not base64/);
});

Deno.test("recordFields/parseRecord round-trip inserts and truncates", () => {
  const hashes = chunkHashes("hello world ".repeat(20), 32);
  const insert = {
    replica: "r1",
    incarnation: "5f2c9a1e",
    worker: "w-2",
    op: "insert" as const,
    hashes,
    keepChunks: 0,
    chunkSize: 32,
    hashScheme: 2,
    time: 1_700_000_000_123,
  };
  const f = recordFields(insert);
  assert.deepEqual(f.slice(0, 4), ["r", "r1", "w", "w-2"]);
  assert.deepEqual(parseRecord(f), insert);
  const truncate = { ...insert, op: "truncate" as const, keepChunks: 3, chunkSize: 0 };
  assert.deepEqual(parseRecord(recordFields(truncate)), truncate);
  // A router before incarnations wrote none: "".
  const older = { ...insert, incarnation: "" };
  assert.ok(!recordFields(older).includes("i"));
  assert.deepEqual(parseRecord(recordFields(older)), older);
});

Deno.test("parseRecord: a record without a hash scheme is scheme 1 (FNV-1a, before scheme 2)", () => {
  const old = ["r", "a", "w", "b", "h", "", "t", "5", "c", "32"];
  assert.equal(parseRecord(old).hashScheme, 1);
  assert.equal(parseRecord([...old, "s", "2"]).hashScheme, 2);
  assert.throws(() => parseRecord([...old, "s", "x"]), /field s must be/);
});

Deno.test("parseRecord names the missing or malformed field", () => {
  assert.throws(() => parseRecord(["r", "a", "h", ""]), /no field w/);
  assert.throws(() => parseRecord(["r", "a", "w", "b", "h", "", "t", "x"]), /field t must be/);
  assert.throws(
    () => parseRecord(["r", "a", "w", "b", "h", "", "t", "1", "o", "t"]),
    /no field k/,
  );
});
