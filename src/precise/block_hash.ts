/**
 * The router's own chained 64-bit hash of token blocks: one function for the blocks engines
 * announce (BlockStored's `token_ids`) and for a request's tokens, so both land on the same keys.
 * Engine hashes are never reproduced (KV-EVENTS.md: they depend on a per-process seed and on the
 * engine's hash algorithm); they are only mapped to these.
 *
 * Rule: the hash of block `i` is the state of two 32-bit lanes after absorbing every token id of
 * blocks `0..i` (never reset between blocks, so hash `i` names the whole prefix, as the engines'
 * parent-chained block hashes do). Each token id `x` (a uint32) goes through the chunker's
 * "word chain" step (`src/prefix/chunker.ts`): lane `a` takes the MurmurHash3 x86-32 block step,
 * lane `b = rotl((b ^ x)·m, 17) + a`; both are bijections of their lane for a fixed `x`. A
 * trailing partial block is not hashed, as engines cache only full blocks.
 *
 * Keys: the lanes start from a seed. Without LoRA and cache salt it is a constant; with either,
 * the seed is the constant mixed with a 64-bit FNV-1a of the LoRA name and the salt (tagged and
 * separated, so `lora="a", salt=""` and `lora="", salt="a"` differ) and finalised with
 * MurmurHash3's fmix32. A salted or LoRA request therefore never matches unsalted blocks, as the
 * engine's own keys differ in the same cases. Other per-block extra keys (multimodal items,
 * prompt-embedding hashes) are absorbed after that block's tokens as two fingerprint words
 * (`absorbExtra`): the router cannot know them for a request, so such blocks never match a
 * request's plain-token blocks.
 *
 * Cost: a 1 500-token prompt (93 blocks of 16) in about 6 µs on the project's 2-core machines,
 * as fast as the chunker over the same prompt's 6 KB (`block_index_bench.ts`); one `Uint32Array`
 * of 2 words per block; a seed with LoRA or salt is computed once per distinct key and cached (at
 * most 1024 kept).
 *
 * @module
 */

import type { ChunkHashes } from "../prefix/types.ts";

/** Version of the rule above (bump when it changes). */
export const BLOCK_HASH_SCHEME = 1;

/** What besides the tokens enters a block's key. */
export interface BlockKey {
  readonly loraName?: string | null;
  readonly cacheSalt?: string | null;
}

const SEED_A = 0x2f6b3a41 | 0;
const SEED_B = 0x7c159e6d | 0;
const C1 = 0xcc9e2d51 | 0;
const C2 = 0x1b873593 | 0;
const N = 0xe6546b64 | 0;
const M = 0x85ebca6b | 0;

/** The lanes after the last `absorb*` call (module state, so no pair is allocated per block). */
let stA = 0;
let stB = 0;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** FNV-1a 64 of a string's UTF-16 code units as [hi, lo] (only seeds and extras use it). */
function fnv64(text: string): [number, number] {
  let hi = 0xcbf29ce4 | 0;
  let lo = 0x84222325 | 0;
  for (let i = 0; i < text.length; i++) {
    lo ^= text.charCodeAt(i);
    const carry = ((lo >>> 16) * 0x1b3 + (((lo & 0xffff) * 0x1b3) >>> 16)) >>> 16;
    hi = (Math.imul(hi, 0x1b3) + (lo << 8) + carry) | 0;
    lo = Math.imul(lo, 0x1b3);
  }
  return [hi, lo];
}

const seedCache = new Map<string, [number, number]>();

/** Sets the lanes to the seed of `key` (the root of a chain). */
export function seedLanes(key?: BlockKey | null): void {
  const lora = key?.loraName ?? null;
  const salt = key?.cacheSalt ?? null;
  if (lora === null && salt === null) {
    stA = SEED_A;
    stB = SEED_B;
    return;
  }
  const text = `${lora === null ? "-" : `L${lora}`}\u0000${salt === null ? "-" : `S${salt}`}`;
  let seed = seedCache.get(text);
  if (seed === undefined) {
    const [hi, lo] = fnv64(text);
    seed = [fmix32(SEED_A ^ hi), fmix32(SEED_B ^ lo ^ 0x5bd1e995)];
    if (seedCache.size >= 1024) seedCache.clear();
    seedCache.set(text, seed);
  }
  stA = seed[0];
  stB = seed[1];
}

/** Sets the lanes to a previous block's hash (to continue its chain). */
export function setLanes(hi: number, lo: number): void {
  stA = hi | 0;
  stB = lo | 0;
}

/** Absorbs `tokens[from..to)` into the lanes. */
export function absorbTokens(tokens: ArrayLike<number>, from: number, to: number): void {
  let a = stA;
  let b = stB;
  for (let i = from; i < to; i++) {
    const x = tokens[i] | 0;
    let k = Math.imul(x, C1);
    k = Math.imul((k << 15) | (k >>> 17), C2);
    a ^= k;
    a = (Math.imul((a << 13) | (a >>> 19), 5) + N) | 0;
    b = Math.imul(b ^ x, M);
    b = (((b << 17) | (b >>> 15)) + a) | 0;
  }
  stA = a;
  stB = b;
}

/** Absorbs a block's extra keys (their stable text form) as two fingerprint words. */
export function absorbExtra(text: string): void {
  const [hi, lo] = fnv64(text);
  absorbTokens([hi ^ 0x6d2b79f5, lo], 0, 2);
}

/** The lanes' high word (unsigned). */
export function lanesHi(): number {
  return stA >>> 0;
}

/** The lanes' low word (unsigned). */
export function lanesLo(): number {
  return stB >>> 0;
}

/**
 * Chained hashes of the full blocks of `tokenIds`, `[hi0, lo0, hi1, lo1, ...]`.
 * @param blockSize tokens per block (the engine's block or page size), ≥ 1
 */
export function blockHashes(
  tokenIds: ArrayLike<number>,
  blockSize: number,
  key?: BlockKey | null,
): ChunkHashes {
  if (!(blockSize >= 1) || !Number.isInteger(blockSize)) {
    throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
  }
  const n = Math.floor(tokenIds.length / blockSize);
  const out = new Uint32Array(n * 2);
  seedLanes(key);
  for (let c = 0; c < n; c++) {
    absorbTokens(tokenIds, c * blockSize, (c + 1) * blockSize);
    out[2 * c] = stA;
    out[2 * c + 1] = stB;
  }
  return out;
}
