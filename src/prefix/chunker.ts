/**
 * Chunker: routing text → chained 64-bit hashes, one per full `chunkSize`-byte window of the text's
 * UTF-8 bytes (ADR 0006; ADR 0001 for the chaining).
 *
 * Rule: the hash state is never reset between chunks, so the hash emitted at the end of chunk `i`
 * is a function of bytes `[0, (i + 1) × chunkSize)`. This is the chaining vLLM uses for its KV
 * blocks (a block's hash includes its parent's): one hash names the whole prefix, so two requests
 * agree on chunk `i` only when they agree on everything before it. A trailing partial window is not
 * hashed, as engines cache only full blocks.
 *
 * The hash ("word chain", scheme 2): the bytes are read in units, a little-endian 32-bit word each
 * when `chunkSize` is a multiple of 4 (the default 32 is), else one byte each. Two 32-bit lanes
 * absorb every unit `x`:
 * - `a`: the MurmurHash3 (x86, 32-bit) block step, `k = rotl(x·c1, 15)·c2; a = rotl(a ^ k, 13)·5 + n`
 * - `b = rotl((b ^ x)·m, 17) + a`
 * Each step is a bijection of its lane for a fixed unit, so a different unit always changes both
 * lanes; the hash of chunk `i` is the lanes' state `[a, b]` after its last unit.
 *
 * Cost: one pass over the words, about 0.6 ns per byte (6 KB in 4 µs, against 12 µs for the
 * byte-serial FNV-1a 64 it replaced); no allocation besides the result (the UTF-8 buffer is
 * reused across calls).
 *
 * @module
 */

import type { ChunkHashes } from "./types.ts";

/** Version of the hash rule above; replicas that sync routing records compare it. */
export const HASH_SCHEME = 2;

const SEED_A = 0x9747b28c | 0;
const SEED_B = 0x5bd1e995 | 0;
const C1 = 0xcc9e2d51 | 0;
const C2 = 0x1b873593 | 0;
const N = 0xe6546b64 | 0;
const M = 0x85ebca6b | 0;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const encoder = new TextEncoder();
let scratch = new Uint8Array(64 * 1024);
/** `scratch` seen as int32 words, so a string's hashes need no view of their own per call. */
let scratchWords = new Int32Array(scratch.buffer);

/** Encodes `text` as UTF-8 into a reused buffer; returns a view valid until the next call. */
export function utf8(text: string): Uint8Array {
  // UTF-8 needs at most 3 bytes per UTF-16 code unit.
  const need = text.length * 3;
  if (scratch.length < need) {
    // A multiple of 4 bytes, so the word view covers all of it.
    scratch = new Uint8Array((Math.max(need, scratch.length * 2) + 3) & ~3);
    scratchWords = new Int32Array(scratch.buffer);
  }
  const { written } = encoder.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}

/**
 * Chained chunk hashes of `input` (a string is taken as its UTF-8 bytes).
 * @param chunkSize bytes per chunk, ≥ 1
 */
export function chunkHashes(input: string | Uint8Array, chunkSize: number): ChunkHashes {
  if (!(chunkSize >= 1) || !Number.isInteger(chunkSize)) {
    throw new RangeError(`chunk size must be a positive integer, got ${chunkSize}`);
  }
  const bytes = typeof input === "string" ? utf8(input) : input;
  const n = Math.floor(bytes.length / chunkSize);
  const out = new Uint32Array(n * 2);
  if (n === 0) return out;
  // Units: little-endian words when the chunk size allows, else one byte each (widened).
  const wordUnits = chunkSize % 4 === 0;
  const units = !wordUnits
    ? Int32Array.from(bytes.subarray(0, n * chunkSize))
    : LITTLE_ENDIAN && bytes.buffer === scratch.buffer && bytes.byteOffset === 0
    ? scratchWords // a string, or `utf8()`'s view: no view of its own per call
    : wordsOf(bytes, n * chunkSize);
  const per = wordUnits ? chunkSize >>> 2 : chunkSize;
  let a = SEED_A;
  let b = SEED_B;
  let w = 0;
  for (let c = 0; c < n; c++) {
    const end = w + per;
    for (; w < end; w++) {
      const x = units[w];
      let k = Math.imul(x, C1);
      k = Math.imul((k << 15) | (k >>> 17), C2);
      a ^= k;
      a = (Math.imul((a << 13) | (a >>> 19), 5) + N) | 0;
      b = Math.imul(b ^ x, M);
      b = (((b << 17) | (b >>> 15)) + a) | 0;
    }
    out[2 * c] = a; // Uint32Array stores int32 values modulo 2^32
    out[2 * c + 1] = b;
  }
  return out;
}

/** The first `length` bytes (a multiple of 4) as little-endian int32 words, without a copy when it can. */
function wordsOf(bytes: Uint8Array, length: number): Int32Array {
  const count = length >>> 2;
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) {
    return new Int32Array(bytes.buffer, bytes.byteOffset, count);
  }
  const words = new Int32Array(count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(words.buffer).set(bytes.subarray(0, length));
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, length);
    for (let i = 0; i < count; i++) words[i] = view.getInt32(4 * i, true);
  }
  return words;
}

const FNV_OFFSET_HI = 0xcbf29ce4;
const FNV_OFFSET_LO = 0x84222325;
// FNV 64-bit prime 0x00000100_000001b3: hi half 0x100, lo half 0x1b3.
const FNV_PRIME_LO = 0x1b3;

/** FNV-1a 64 of a whole string as 16 hex digits (stable ids, placeholders). */
export function fnv1a64Hex(text: string): string {
  const bytes = utf8(text);
  let hi = FNV_OFFSET_HI | 0;
  let lo = FNV_OFFSET_LO | 0;
  for (let i = 0; i < bytes.length; i++) {
    lo ^= bytes[i];
    // (hi:lo) × (0x100:0x1b3) mod 2^64 in int32 arithmetic: the carry out of lo × 0x1b3 is
    // computed from lo's 16-bit halves so that no intermediate leaves the small-integer range.
    const carry = ((lo >>> 16) * FNV_PRIME_LO + (((lo & 0xffff) * FNV_PRIME_LO) >>> 16)) >>> 16;
    hi = (Math.imul(hi, FNV_PRIME_LO) + (lo << 8) + carry) | 0;
    lo = Math.imul(lo, FNV_PRIME_LO);
  }
  return (hi >>> 0).toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0");
}
