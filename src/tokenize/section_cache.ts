/**
 * Section cache: text section → its token ids, within a byte budget, evicting the oldest entry
 * not used since it was last passed over (second chance, an approximation of least recently used).
 *
 * Rule: an entry costs `2 × key length` (UTF-16) `+ 4 × ids` `+ ENTRY_OVERHEAD` bytes. A hit only
 * marks the entry; after an insert, while the total is over `maxBytes`, the oldest entry is looked
 * at: a marked one is unmarked and moved to the newest end, an unmarked one is evicted. So a hit
 * costs one lookup and no change to the map (moving every hit to the end, as a strict LRU does,
 * made the map rehash its holes and took a quarter of the encode time). An entry over an eighth of
 * the budget is not stored (one huge message must not flush every conversation). Keys longer than
 * `LONG_KEY` characters are prefixed with their FNV-1a 64 hash: V8 hashes very long strings by
 * their length alone, so many cached sections of the same length would share one bucket and every
 * lookup would compare whole strings; the prefix makes those comparisons stop at once.
 *
 * Stored arrays are never handed out to be modified: callers copy them into a fresh result.
 *
 * Cost: one `Map` lookup per section (hashing the key once); eviction amortised O(1) per insert.
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

interface Entry {
  readonly ids: Uint32Array;
  readonly cost: number;
  /** Used since the eviction scan last passed it. */
  used: boolean;
}

/** Map from section text to token ids under a byte budget (second-chance eviction). */
export class SectionCache {
  readonly maxBytes: number;
  readonly #map = new Map<string, Entry>();
  /** The eviction scan's position, kept between inserts (see `#oldest`). */
  #cursor: MapIterator<[string, Entry]> | undefined;
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

  /** The ids of `key` (from {@linkcode SectionCache.key}), marking it used; counts a hit or a miss. */
  get(key: string): Uint32Array | undefined {
    const entry = this.#map.get(key);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    entry.used = true;
    return entry.ids;
  }

  /** Stores `ids` under `key` unless the entry is too large, then evicts down to the budget. */
  set(key: string, ids: Uint32Array): void {
    const cost = SectionCache.cost(key, ids);
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#map.delete(key);
      this.#bytes -= old.cost;
    }
    // Too big to keep: not stored, and no older value of the key is left to be read instead.
    if (cost * 8 > this.maxBytes) return;
    this.#map.set(key, { ids, cost, used: false });
    this.#bytes += cost;
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#oldest();
      if (oldest === undefined) break;
      const [k, entry] = oldest;
      this.#map.delete(k);
      if (entry.used) {
        // Second chance: unmark and move to the newest end. Each entry is moved at most once per
        // pass, so the loop ends within two passes.
        entry.used = false;
        this.#map.set(k, entry);
      } else {
        this.#bytes -= entry.cost;
        this.#evictions++;
      }
    }
  }

  /**
   * The next entry of the eviction scan. A Map iterator is live (it skips deleted entries and
   * reaches entries added after it), so one iterator kept across inserts visits the entries in
   * insertion order and meets a moved entry again at the end: the clock hand. Starting a new
   * iterator per eviction would walk over every deleted slot at the front of the table each time
   * (measured: 4 µs per operation instead of 0.1 once the cache was full).
   */
  #oldest(): [string, Entry] | undefined {
    for (let attempt = 0; attempt < 2; attempt++) {
      this.#cursor ??= this.#map.entries();
      const next = this.#cursor.next();
      if (!next.done) return next.value;
      this.#cursor = undefined;
    }
    return undefined;
  }

  /** Entries held. */
  get size(): number {
    return this.#map.size;
  }

  /** Drops every entry (counters stay). */
  clear(): void {
    this.#map.clear();
    this.#cursor = undefined;
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
    for (const [k, entry] of this.#map) total += SectionCache.cost(k, entry.ids);
    return total;
  }
}
