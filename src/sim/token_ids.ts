/**
 * Token ids and block keys of the simulated engine.
 *
 * Pseudo tokens (no tokenizer configured): a prompt of `n` UTF-8 bytes has `floor(n / 4)` tokens
 * (at least 1), token `i` being bytes `[4i, 4i + 4)` read as a big-endian uint32. The ids are
 * therefore stable, derived from the text alone, and reversible (`pseudoText`), so `/tokenize`,
 * `/detokenize`, the engine's cache and its KV events all agree on them. The 0-3 bytes after the
 * last full group belong to no token (the "tail"); a continuation (the answer) is regrouped with
 * them, as the next turn's prompt text would be. A prompt under 4 bytes is one token, zero-padded.
 *
 * Block keys: the engine's own chained 64-bit hash of token ids, never the router's scheme
 * (src/precise/block_hash.ts), just as vLLM's hashes differ from the router's: the router must
 * map them through the events' token ids. Rule: two 32-bit lanes start from a seed (a constant, or
 * the constant mixed with an FNV-1a of the LoRA adapter's name, so an adapter's blocks never match
 * the base model's, as vLLM puts the LoRA in the block hash) and absorb every token id without a
 * reset between blocks; block `i`'s key is the lanes after its last token, finalised with
 * MurmurHash3's fmix32 and cut to 53 bits so it is an exact JS number (and a valid u64 on the
 * wire). Cost: a few multiplications per token; one number per block.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The UTF-8 bytes of a prompt given as text or bytes. */
export function promptBytes(prompt: string | Uint8Array): Uint8Array {
  return typeof prompt === "string" ? encoder.encode(prompt) : prompt;
}

/** Pseudo token ids of `bytes`: one id per 4 bytes (big-endian), at least one. */
export function pseudoTokenIds(bytes: Uint8Array): Uint32Array {
  const n = bytes.length >>> 2;
  if (n === 0) {
    let v = 0;
    for (let i = 0; i < 4; i++) v = (v << 8) | (bytes[i] ?? 0);
    return Uint32Array.of(v >>> 0);
  }
  const out = new Uint32Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    out[i] = ((bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3]) >>> 0;
  }
  return out;
}

/** The bytes after the last full 4-byte group (empty for a padded prompt under 4 bytes). */
export function pseudoTail(bytes: Uint8Array): Uint8Array {
  return bytes.length < 4 ? new Uint8Array(0) : bytes.subarray(bytes.length & ~3);
}

/** The text of pseudo token ids (each id's 4 bytes; invalid UTF-8 is replaced). */
export function pseudoText(ids: ArrayLike<number>): string {
  const bytes = new Uint8Array(ids.length * 4);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i] >>> 0;
    bytes[4 * i] = v >>> 24;
    bytes[4 * i + 1] = (v >>> 16) & 255;
    bytes[4 * i + 2] = (v >>> 8) & 255;
    bytes[4 * i + 3] = v & 255;
  }
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--; // the padding of a short prompt
  return decoder.decode(bytes.subarray(0, end));
}

/** `a` then `b`. */
export function concatIds(a: ArrayLike<number>, b: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(a.length + b.length);
  out.set(a as ArrayLike<number>);
  out.set(b as ArrayLike<number>, a.length);
  return out;
}

const SEED_A = 0x6a09e667 | 0;
const SEED_B = 0x3c6ef372 | 0;
const TWO_21 = 2 ** 21;
const TWO_32 = 2 ** 32;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function fnv32(text: string, basis: number): number {
  let h = basis;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h | 0;
}

/**
 * Keys of the first `blocks` full blocks of `ids` (fewer when `ids` is shorter), chained from the
 * seed of `lora` (null: the base model).
 */
export function engineBlockKeys(
  ids: ArrayLike<number>,
  blockSize: number,
  blocks: number,
  lora: string | null = null,
): number[] {
  const n = Math.min(blocks, Math.floor(ids.length / blockSize));
  const keys = new Array<number>(Math.max(0, n));
  let a = SEED_A;
  let b = SEED_B;
  if (lora !== null) {
    a = fmix32(a ^ fnv32(lora, 0x811c9dc5 | 0)) | 0;
    b = fmix32(b ^ fnv32(lora, 0x050c5d1f)) | 0;
  }
  for (let k = 0, t = 0; k < n; k++) {
    for (const end = t + blockSize; t < end; t++) {
      const x = ids[t] | 0;
      a = Math.imul(a ^ x, 0x9e3779b1);
      a = (a << 13) | (a >>> 19);
      b = (Math.imul(b + x, 0x85ebca77) ^ a) | 0;
    }
    keys[k] = fmix32(a) * TWO_21 + (fmix32(b ^ 0x27d4eb2f) >>> 11);
  }
  return keys;
}

/** A 53-bit key as the `[hi, lo]` words of its 64-bit value. */
export function keyWords(key: number): [number, number] {
  return [Math.floor(key / TWO_32), key >>> 0];
}
