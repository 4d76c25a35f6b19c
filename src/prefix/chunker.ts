/**
 * Chunker: routing text → chained 64-bit FNV-1a hashes, one per full `chunkSize`-byte window of
 * the text's UTF-8 bytes.
 *
 * Rule: the hash state is never reset between chunks, so the hash emitted at the end of chunk `i`
 * is the FNV-1a 64 of bytes `[0, (i + 1) × chunkSize)`. This is the chaining vLLM uses for its KV
 * blocks (a block's hash includes its parent's): one hash names the whole prefix, so two requests
 * agree on chunk `i` only when they agree on everything before it. A trailing partial window is not
 * hashed, as engines cache only full blocks.
 *
 * Cost: one xor and two 32-bit multiplies per byte (about 4 ns/byte: 200 KB in under 1 ms), no
 * allocation besides the result (the UTF-8 buffer is reused across calls).
 *
 * @module
 */

import type { ChunkHashes } from "./types.ts";

const OFFSET_HI = 0xcbf29ce4;
const OFFSET_LO = 0x84222325;
// FNV 64-bit prime 0x00000100_000001b3: hi half 0x100, lo half 0x1b3.
const PRIME_LO = 0x1b3;

const encoder = new TextEncoder();
let scratch = new Uint8Array(64 * 1024);

/** Encodes `text` as UTF-8 into a reused buffer; returns a view valid until the next call. */
export function utf8(text: string): Uint8Array {
  // UTF-8 needs at most 3 bytes per UTF-16 code unit.
  const need = text.length * 3;
  if (scratch.length < need) scratch = new Uint8Array(Math.max(need, scratch.length * 2));
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
  let hi = OFFSET_HI | 0;
  let lo = OFFSET_LO | 0;
  let pos = 0;
  for (let c = 0; c < n; c++) {
    const end = pos + chunkSize;
    for (; pos < end; pos++) {
      lo ^= bytes[pos];
      // (hi:lo) × (0x100:0x1b3) mod 2^64 in int32 arithmetic: the carry out of lo × 0x1b3 is
      // computed from lo's 16-bit halves so that no intermediate leaves the small-integer range.
      const carry = ((lo >>> 16) * PRIME_LO + (((lo & 0xffff) * PRIME_LO) >>> 16)) >>> 16;
      hi = (Math.imul(hi, PRIME_LO) + (lo << 8) + carry) | 0;
      lo = Math.imul(lo, PRIME_LO);
    }
    out[2 * c] = hi; // Uint32Array stores int32 values modulo 2^32
    out[2 * c + 1] = lo;
  }
  return out;
}

/** FNV-1a 64 of a whole string as 16 hex digits (stable ids, placeholders). */
export function fnv1a64Hex(text: string): string {
  const bytes = utf8(text);
  if (bytes.length === 0) return OFFSET_HI.toString(16) + OFFSET_LO.toString(16);
  const h = chunkHashes(bytes, bytes.length);
  return h[0].toString(16).padStart(8, "0") + h[1].toString(16).padStart(8, "0");
}
