/**
 * Section cache: text section → its token ids, least recently used first out, within a byte
 * budget.
 *
 * Rule: an entry costs `2 × key length` (UTF-16) `+ 4 × ids` `+ ENTRY_OVERHEAD` bytes; after an
 * insert, the oldest entries go until the total is within `maxBytes`. An entry over an eighth of
 * the budget is not stored (one huge message must not flush every conversation). A hit moves the
 * entry to the newest end. Keys longer than `LONG_KEY` characters are prefixed with their FNV-1a
 * 64 hash: V8 hashes such long strings by their length alone, so many cached sections of the same
 * length would share one bucket and every lookup would compare whole strings; the prefix makes
 * those comparisons stop at the first characters.
 *
 * Stored arrays are never handed out to be modified: callers copy them into a fresh result.
 *
 * Cost: one `Map` lookup per section (hashing the key once), plus a delete and a set on a hit.
 *
 * @module
 */

import { fnv1a64Hex } from "../prefix/chunker.ts";

/** Bytes counted per entry on top of key and ids (map slot, typed-array header). */
export const ENTRY_OVERHEAD = 96;

/** Keys longer than this many characters get a hash prefix (see the module rule). */
export const LONG_KEY = 8192;

/** Counters of a {@linkcode SectionCache}. */
export interface SectionCacheStats {
  readonly entries: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
}

/** LRU map from section text to token ids under a byte budget. */
export class SectionCache {
  readonly maxBytes: number;
  readonly #map = new Map<string, Uint32Array>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  /** @param maxBytes budget in bytes; 0 stores nothing */
  constructor(maxBytes: number) {
    if (!Number.isFinite(maxBytes) || maxBytes < 0) {
      throw new RangeError(`maxBytes must be a non-negative number, got ${maxBytes}`);
    }
    this.maxBytes = Math.floor(maxBytes);
  }

  /** The key under which `section` is stored. */
  static key(section: string): string {
    return section.length > LONG_KEY ? fnv1a64Hex(section) + section : section;
  }

  /** Bytes an entry costs. */
  static cost(key: string, ids: Uint32Array): number {
    return 2 * key.length + 4 * ids.length + ENTRY_OVERHEAD;
  }

  /** The ids of `key` (from {@linkcode SectionCache.key}), refreshing its recency; counts a hit or a miss. */
  get(key: string): Uint32Array | undefined {
    const ids = this.#map.get(key);
    if (ids === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    this.#map.delete(key);
    this.#map.set(key, ids);
    return ids;
  }

  /** Stores `ids` under `key` unless the entry is too large, then evicts down to the budget. */
  set(key: string, ids: Uint32Array): void {
    const cost = SectionCache.cost(key, ids);
    if (cost * 8 > this.maxBytes) return;
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#map.delete(key);
      this.#bytes -= SectionCache.cost(key, old);
    }
    this.#map.set(key, ids);
    this.#bytes += cost;
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#map.keys().next();
      if (oldest.done) break;
      const k = oldest.value;
      this.#bytes -= SectionCache.cost(k, this.#map.get(k)!);
      this.#map.delete(k);
      this.#evictions++;
    }
  }

  /** Entries held. */
  get size(): number {
    return this.#map.size;
  }

  /** Drops every entry (counters stay). */
  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }

  /** Current counters. */
  stats(): SectionCacheStats {
    return {
      entries: this.#map.size,
      bytes: this.#bytes,
      maxBytes: this.maxBytes,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
    };
  }

  /** Bytes recounted from the entries (tests compare it with `stats().bytes`). */
  recount(): number {
    let total = 0;
    for (const [k, ids] of this.#map) total += SectionCache.cost(k, ids);
    return total;
  }
}
