/**
 * Chunker tests: the chained-hash rule checked against a plain reference of the word chain (scheme
 * 2, ADR 0006), pinned known answers, and FNV-1a 64 for `fnv1a64Hex`.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { chunkHashes, fnv1a64Hex, HASH_SCHEME, utf8 } from "./chunker.ts";
import { chunkCount } from "./types.ts";

const rotl = (v: number, r: number) => (v << r) | (v >>> (32 - r));

/**
 * The word chain's state after each full chunk of `bytes`, written the obvious way: units read
 * with a DataView (little-endian words when the size is a multiple of 4, else bytes).
 */
function reference(bytes: Uint8Array, size: number): number[] {
  const words = size % 4 === 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let a = 0x9747b28c | 0;
  let b = 0x5bd1e995 | 0;
  const out: number[] = [];
  const n = Math.floor(bytes.length / size);
  for (let c = 0; c < n; c++) {
    for (let p = c * size; p < (c + 1) * size; p += words ? 4 : 1) {
      const x = words ? view.getInt32(p, true) : bytes[p];
      const k = Math.imul(rotl(Math.imul(x, 0xcc9e2d51), 15), 0x1b873593);
      a = (Math.imul(rotl(a ^ k, 13), 5) + 0xe6546b64) | 0;
      b = (rotl(Math.imul(b ^ x, 0x85ebca6b), 17) + a) | 0;
    }
    out.push(a >>> 0, b >>> 0);
  }
  return out;
}

const bytesOf = (text: string) => new TextEncoder().encode(text);

Deno.test("fnv1a64Hex: published FNV-1a 64 test vectors", () => {
  assert.equal(fnv1a64Hex(""), "cbf29ce484222325");
  assert.equal(fnv1a64Hex("a"), "af63dc4c8601ec8c");
  assert.equal(fnv1a64Hex("foobar"), "85944171f73967e8");
});

Deno.test("chunkHashes: pinned known answers (scheme 2; replicas compare these across versions)", () => {
  assert.equal(HASH_SCHEME, 2);
  const hex = (h: Uint32Array) => Array.from(h, (v) => v.toString(16).padStart(8, "0")).join(" ");
  assert.equal(hex(chunkHashes("abcdefgh", 4)), "1719cb66 2513497c e3e1327c b6c7bdd4");
  assert.equal(hex(chunkHashes("foobarfo", 6)), "368b2808 7c320081");
  assert.equal(
    hex(chunkHashes("The quick brown fox jumps over the lazy dog, again and again.!!!!", 32)),
    "108f5319 03885333 eabd14d8 b3b895d7",
  );
});

Deno.test("chunkHashes: hash i is the chain's state after the first (i+1)×size bytes", () => {
  const text = "The quick brown fox jumps over the lazy dog, again and again.";
  const bytes = bytesOf(text);
  for (const size of [8, 6, 32, 1]) {
    const h = chunkHashes(text, size);
    assert.equal(chunkCount(h), Math.floor(bytes.length / size));
    assert.deepEqual(Array.from(h), reference(bytes, size), `size ${size}`);
  }
});

Deno.test("chunkHashes: byte inputs at any alignment agree with the string's hashes", () => {
  const text = "aligned or not, the words are the same: 日本語 🙂 ".repeat(5);
  const bytes = bytesOf(text);
  const want = chunkHashes(text, 16);
  assert.ok(chunkCount(want) > 4);
  for (let shift = 0; shift < 4; shift++) {
    const holder = new Uint8Array(bytes.length + shift);
    holder.set(bytes, shift);
    const view = holder.subarray(shift);
    assert.deepEqual(chunkHashes(view, 16), want, `byte offset ${shift}`);
    assert.deepEqual(view, bytes, "the input is not modified");
  }
  // The router hands over `utf8()`'s own view of the shared buffer.
  assert.deepEqual(chunkHashes(utf8(text), 16), want);
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
  assert.deepEqual(Array.from(h), reference(bytes, 5));
  // Bytes and string inputs agree.
  assert.deepEqual(chunkHashes(bytes, 5), h);
  assert.deepEqual(utf8(text), bytes);
});

Deno.test("chunkHashes property: the chain over any text, word and byte units", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 60 }), fc.integer({ min: 1, max: 12 }), (
      text,
      size,
    ) => {
      const bytes = bytesOf(text);
      const h = chunkHashes(text, size);
      assert.equal(chunkCount(h), Math.floor(bytes.length / size));
      assert.deepEqual(Array.from(h), reference(bytes, size));
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
  // After the buffer grew, hashes still read the new buffer's words.
  assert.deepEqual(Array.from(chunkHashes(long, 32)), reference(bytesOf(long), 32));
  assert.deepEqual(Array.from(chunkHashes(utf8(long), 32)), reference(bytesOf(long), 32));
});
