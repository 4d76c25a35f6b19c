/**
 * Chunker tests: the chained-hash rule checked against a BigInt FNV-1a 64 reference.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { chunkHashes, fnv1a64Hex, utf8 } from "./chunker.ts";
import { chunkCount } from "./types.ts";

const MASK = (1n << 64n) - 1n;

/** FNV-1a 64 of `bytes`, the slow obvious way. */
function fnv1a64(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK;
  return h;
}

function pair(hashes: Uint32Array, i: number): bigint {
  return (BigInt(hashes[2 * i]) << 32n) | BigInt(hashes[2 * i + 1]);
}

const bytesOf = (text: string) => new TextEncoder().encode(text);

Deno.test("fnv1a64Hex: published FNV-1a 64 test vectors", () => {
  assert.equal(fnv1a64Hex(""), "cbf29ce484222325");
  assert.equal(fnv1a64Hex("a"), "af63dc4c8601ec8c");
  assert.equal(fnv1a64Hex("foobar"), "85944171f73967e8");
});

Deno.test("chunkHashes: hash i is FNV-1a 64 of the first (i+1)×size bytes", () => {
  const text = "The quick brown fox jumps over the lazy dog, again and again.";
  const bytes = bytesOf(text);
  const h = chunkHashes(text, 8);
  assert.equal(chunkCount(h), Math.floor(bytes.length / 8));
  for (let i = 0; i < chunkCount(h); i++) {
    assert.equal(pair(h, i), fnv1a64(bytes.subarray(0, (i + 1) * 8)), `chunk ${i}`);
  }
  // First chunk of "foobarfo" size 6 is FNV-1a 64("foobar").
  const f = chunkHashes("foobarfo", 6);
  assert.deepEqual(Array.from(f), [0x85944171, 0xf73967e8]);
});

Deno.test("chunkHashes: only full chunks are hashed", () => {
  const cases: [string, number, number][] = [
    ["", 4, 0],
    ["abc", 4, 0],
    ["abcd", 4, 1],
    ["abcdefg", 4, 1],
    ["abcdefgh", 4, 2],
    ["x".repeat(100), 32, 3],
    ["x".repeat(100), 1, 100],
  ];
  for (const [text, size, want] of cases) {
    const h = chunkHashes(text, size);
    assert.equal(chunkCount(h), want, `${JSON.stringify(text)} / ${size}`);
    assert.equal(h.length, 2 * want);
  }
  // A trailing partial chunk does not change the full ones.
  assert.deepEqual(chunkHashes("abcdefgh", 4), chunkHashes("abcdefghij", 4));
});

Deno.test("chunkHashes: multi-byte text is chunked by UTF-8 bytes", () => {
  const text = "héllo 日本語 🙂!"; // h é llo ␠ 日本語 ␠ 🙂 ! = 1+2+3+1+9+1+4+1 = 22 bytes
  const bytes = bytesOf(text);
  assert.equal(bytes.length, 22);
  const h = chunkHashes(text, 5);
  assert.equal(chunkCount(h), 4);
  for (let i = 0; i < 4; i++) assert.equal(pair(h, i), fnv1a64(bytes.subarray(0, (i + 1) * 5)));
  // Bytes and string inputs agree.
  assert.deepEqual(chunkHashes(bytes, 5), h);
  assert.deepEqual(utf8(text), bytes);
});

Deno.test("chunkHashes property: chained FNV-1a over any text", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 60 }), fc.integer({ min: 1, max: 9 }), (
      text,
      size,
    ) => {
      const bytes = bytesOf(text);
      const h = chunkHashes(text, size);
      assert.equal(chunkCount(h), Math.floor(bytes.length / size));
      for (let i = 0; i < chunkCount(h); i++) {
        assert.equal(pair(h, i), fnv1a64(bytes.subarray(0, (i + 1) * size)));
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("chunkHashes: equal prefixes share leading hashes and diverge after the first difference", () => {
  const a = "common system prompt é 日本 / tail A and more";
  const b = "common system prompt é 日本 / tail B and more";
  const size = 4;
  const ha = chunkHashes(a, size);
  const hb = chunkHashes(b, size);
  const firstDiff = bytesOf(a).findIndex((x, i) => x !== bytesOf(b)[i]);
  const shared = Math.floor(firstDiff / size);
  assert.ok(shared > 0 && shared < chunkCount(ha));
  for (let i = 0; i < chunkCount(ha); i++) {
    const same = ha[2 * i] === hb[2 * i] && ha[2 * i + 1] === hb[2 * i + 1];
    // Chained: after the differing chunk, no later chunk agrees even though the bytes do.
    assert.equal(same, i < shared, `chunk ${i}`);
  }
});

Deno.test("chunkHashes property: shared leading chunks are exactly the common byte prefix", () => {
  const piece = fc.constantFrom("a", "b", "é", "日", "🙂", " ");
  const text = fc.array(piece, { maxLength: 24 }).map((p) => p.join(""));
  fc.assert(
    fc.property(text, text, fc.integer({ min: 1, max: 6 }), (a, b, size) => {
      const ba = bytesOf(a);
      const bb = bytesOf(b);
      let lcp = 0;
      while (lcp < ba.length && lcp < bb.length && ba[lcp] === bb[lcp]) lcp++;
      const ha = chunkHashes(a, size);
      const hb = chunkHashes(b, size);
      let agree = 0;
      const n = Math.min(chunkCount(ha), chunkCount(hb));
      while (
        agree < n && ha[2 * agree] === hb[2 * agree] && ha[2 * agree + 1] === hb[2 * agree + 1]
      ) {
        agree++;
      }
      assert.equal(agree, Math.min(Math.floor(lcp / size), n));
    }),
    { numRuns: 300 },
  );
});

Deno.test("chunkHashes: rejects an invalid chunk size", () => {
  for (const size of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(
      () => chunkHashes("abc", size),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message === `chunk size must be a positive integer, got ${size}`,
      `size ${size}`,
    );
  }
});

Deno.test("utf8: reuses its buffer and grows for long text", () => {
  const long = "日".repeat(40_000); // 120 000 bytes, above the initial 64 KiB buffer
  const bytes = utf8(long);
  assert.equal(bytes.length, 120_000);
  assert.deepEqual(bytes.subarray(0, 3), Uint8Array.of(0xe6, 0x97, 0xa5));
  assert.equal(chunkCount(chunkHashes(long, 32)), 3750);
});
