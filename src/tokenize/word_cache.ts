/**
 * Word cache: pre-token → its token ids, in typed arrays of a fixed size, in two generations.
 *
 * Why not a `Map`: a follow-up turn looks up a few hundred fresh pre-token strings, and with tens
 * of thousands of words cached each `Map` lookup hashed the string and chased three objects (the
 * stored key, the entry, the ids array); measured 55-65 µs per 700 characters of prose, against
 * 15 µs here, where an entry is a few slots of flat arrays and a hit copies ids from one pool.
 *
 * Rule: a word is found by its FNV-1a 32 hash of UTF-16 code units (open addressing, linear
 * probing, a table at most half full) and confirmed by comparing its length and every code unit
 * with the stored copy, so a lookup is exact whatever the hash does. New entries go to the young
 * generation; when it has no room (entries, characters or ids), it becomes the old one and the
 * previous old one is emptied and reused. A lookup that misses the young generation and hits the
 * old one copies the entry to the young one. So a word used in every turn stays, one not seen for
 * a generation goes, and the memory is fixed: two generations of `64 × entries` bytes each
 * (`entries` is the power of two that fits half the budget: 32 Ki entries each for 4 MiB). A word
 * longer than an eighth of a generation's pools is not stored.
 *
 * Cost: per lookup one pass over the word's code units for the hash and one for the comparison,
 * one or two probes (never more than `MAX_PROBES`, whatever words a client picks); a hit appends
 * ids from the pool without allocating.
 *
 * @module
 */

import type { IdBuffer } from "./id_buffer.ts";

/** Bytes one entry of one generation takes (see the module rule). */
export const BYTES_PER_ENTRY = 64;

/**
 * Slots a lookup or an insert probes at most from a word's home slot. FNV-1a is unseeded, so a
 * client can pick words that share one home slot; unbounded, each of them would walk the whole
 * run. Past this many a word is not stored (encoded again when met); at a half-full table with
 * an even hash a run this long is all but never met.
 */
export const MAX_PROBES = 32;

/** FNV-1a 32 of the UTF-16 code units of `text` from `start` to `end`. */
export function wordHash(text: string, start = 0, end = text.length): number {
  let h = 0x811c9dc5 | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h;
}

/** One generation: a hash table over a pool of characters and a pool of ids. */
class Generation {
  readonly maxEntries: number;
  readonly #mask: number;
  readonly #hash: Int32Array;
  /** Where the key starts in `#chars`; -1 for an empty slot. */
  readonly #keyAt: Int32Array;
  readonly #keyLength: Int32Array;
  readonly #idsAt: Int32Array;
  readonly #idsLength: Int32Array;
  readonly #chars: Uint16Array;
  readonly ids: Uint32Array;
  entries = 0;
  #charsUsed = 0;
  #idsUsed = 0;

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries;
    const slots = Math.max(2, 2 * maxEntries);
    this.#mask = slots - 1;
    this.#hash = new Int32Array(slots);
    this.#keyAt = new Int32Array(slots).fill(-1);
    this.#keyLength = new Int32Array(slots);
    this.#idsAt = new Int32Array(slots);
    this.#idsLength = new Int32Array(slots);
    this.#chars = new Uint16Array(8 * maxEntries);
    this.ids = new Uint32Array(2 * maxEntries);
  }

  /** The slot of the word `text[start..end)` (hash `h`), or -1. */
  find(text: string, start: number, end: number, h: number): number {
    const keyAt = this.#keyAt;
    const chars = this.#chars;
    const n = end - start;
    let i = h & this.#mask;
    for (let probe = 0; probe < MAX_PROBES; probe++) {
      const at = keyAt[i];
      if (at < 0) return -1;
      if (this.#hash[i] === h && this.#keyLength[i] === n) {
        let k = 0;
        while (k < n && chars[at + k] === text.charCodeAt(start + k)) k++;
        if (k === n) return i;
      }
      i = (i + 1) & this.#mask;
    }
    return -1;
  }

  idsAt(slot: number): number {
    return this.#idsAt[slot];
  }

  idsLength(slot: number): number {
    return this.#idsLength[slot];
  }

  /** Whether a word of `chars` characters and `ids` ids could ever be stored. */
  storable(chars: number, ids: number): boolean {
    return chars * 8 <= this.#chars.length && ids * 8 <= this.ids.length && this.maxEntries > 0;
  }

  /** Whether the entry fits now. */
  fits(chars: number, ids: number): boolean {
    return this.entries < this.maxEntries && this.#charsUsed + chars <= this.#chars.length &&
      this.#idsUsed + ids <= this.ids.length;
  }

  /**
   * Stores a word known not to be here (the caller checked `fits`); nothing when no slot is free
   * within {@linkcode MAX_PROBES} of its home.
   */
  insert(word: string, h: number, ids: ArrayLike<number>): void {
    let i = h & this.#mask;
    for (let probe = 0; this.#keyAt[i] >= 0; probe++) {
      if (probe + 1 === MAX_PROBES) return;
      i = (i + 1) & this.#mask;
    }
    this.#hash[i] = h;
    this.#keyAt[i] = this.#charsUsed;
    this.#keyLength[i] = word.length;
    for (let k = 0; k < word.length; k++) this.#chars[this.#charsUsed++] = word.charCodeAt(k);
    this.#idsAt[i] = this.#idsUsed;
    this.#idsLength[i] = ids.length;
    for (let k = 0; k < ids.length; k++) this.ids[this.#idsUsed++] = ids[k];
    this.entries++;
  }

  clear(): void {
    this.#keyAt.fill(-1);
    this.entries = 0;
    this.#charsUsed = 0;
    this.#idsUsed = 0;
  }

  /** Bytes of the arrays. */
  get bytes(): number {
    return 5 * this.#hash.byteLength + this.#chars.byteLength + this.ids.byteLength;
  }
}

/** Pre-token → ids in fixed typed arrays, with generational eviction (see the module rule). */
export class WordCache {
  #young: Generation;
  #old: Generation;
  #hits = 0;
  #misses = 0;

  /** @param maxBytes budget in bytes for both generations; under 128 stores nothing */
  constructor(maxBytes: number) {
    if (!Number.isFinite(maxBytes) || maxBytes < 0) {
      throw new RangeError(`maxBytes must be a non-negative number, got ${maxBytes}`);
    }
    let entries = 0;
    while ((entries === 0 ? 1 : entries * 2) * BYTES_PER_ENTRY * 2 <= maxBytes) {
      entries = entries === 0 ? 1 : entries * 2;
    }
    this.#young = new Generation(entries);
    this.#old = new Generation(entries);
  }

  /** Entries one generation holds at most. */
  get maxEntries(): number {
    return this.#young.maxEntries;
  }

  /** Appends the ids of `word` to `out` and returns true, or returns false when not cached. */
  lookup(word: string, out: IdBuffer): boolean {
    return this.lookupIn(word, 0, word.length, out);
  }

  /** {@linkcode lookup} of the word `text[start..end)`, without cutting it out. */
  lookupIn(text: string, start: number, end: number, out: IdBuffer): boolean {
    const h = wordHash(text, start, end);
    const young = this.#young;
    let slot = young.find(text, start, end, h);
    if (slot >= 0) {
      this.#hits++;
      out.appendFrom(young.ids, young.idsAt(slot), young.idsLength(slot));
      return true;
    }
    const old = this.#old;
    slot = old.entries === 0 ? -1 : old.find(text, start, end, h);
    if (slot < 0) {
      this.#misses++;
      return false;
    }
    this.#hits++;
    const at = old.idsAt(slot);
    const n = old.idsLength(slot);
    out.appendFrom(old.ids, at, n);
    // Copied out first: making room may empty the old generation.
    this.#store(text.slice(start, end), h, old.ids.slice(at, at + n));
    return true;
  }

  /** Stores the ids of a word that {@linkcode lookup} did not find. */
  set(word: string, ids: ArrayLike<number>): void {
    this.#store(word, wordHash(word), ids);
  }

  #store(word: string, h: number, ids: ArrayLike<number>): void {
    if (!this.#young.storable(word.length, ids.length)) return;
    if (!this.#young.fits(word.length, ids.length)) {
      const emptied = this.#old;
      emptied.clear();
      this.#old = this.#young;
      this.#young = emptied;
    }
    this.#young.insert(word, h, ids);
  }

  /** Entries held (both generations; a promoted word counts twice until its old copy goes). */
  get size(): number {
    return this.#young.entries + this.#old.entries;
  }

  /** Bytes of the arrays (fixed). */
  get bytes(): number {
    return this.#young.bytes + this.#old.bytes;
  }

  /** Lookups that found the word, and those that did not. */
  get counts(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }
}
