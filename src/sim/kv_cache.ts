/**
 * KvCache: the simulated engine's pool of KV blocks, with prefix caching (vLLM's block pool).
 *
 * Rule: `capacity` blocks. A block is either private to one sequence (a partial block, or one not
 * hashed yet) or hashed under a block key. A hashed block has a reference count: blocks that
 * running sequences use are pinned; at zero a block joins an LRU of free cached blocks and stays
 * reusable until it is evicted, least-recently-freed first. An allocation takes free unhashed room
 * first and evicts cached blocks only when there is none left, as vLLM's free block queue does.
 * Callers release a sequence's blocks tail first, so the tail of a prefix is evicted before its
 * head.
 *
 * Keys are the engine's 53-bit block keys (src/sim/token_ids.ts). An eviction calls `onEvict` with
 * the key, so the engine can publish vLLM's BlockRemoved; `clear` empties the cache (vLLM's
 * `reset_prefix_cache`) and is refused while any block is in use.
 *
 * Cost: every operation is O(1) per block it touches (Map insertion order is the LRU order).
 *
 * @module
 */

/** Blocks of one sequence as the pool sees them. */
export interface BlockHolder {
  /** Hashed blocks it holds a reference on, in block order. */
  pinned: number[];
  /** Unhashed blocks it holds. */
  privateBlocks: number;
}

/** A pool of KV blocks with hashed, reference-counted, LRU-evicted cached blocks. */
export class KvCache {
  readonly capacity: number;
  /** Hashed blocks → reference count. */
  readonly #refs = new Map<number, number>();
  /** Hashed blocks with no reference, least recently freed first. */
  readonly #lru = new Map<number, true>();
  readonly #onEvict: ((key: number) => void) | null;
  #private = 0;
  #evicted = 0;

  constructor(capacity: number, onEvict?: (key: number) => void) {
    this.capacity = capacity;
    this.#onEvict = onEvict ?? null;
  }

  /** Blocks neither hashed nor private. */
  get free(): number {
    return this.capacity - this.#refs.size - this.#private;
  }

  /** Blocks an allocation could get now: free ones plus cached ones nobody uses. */
  get available(): number {
    return this.free + this.#lru.size;
  }

  /** Blocks in use by sequences (pinned or private); free cached blocks count as free. */
  get used(): number {
    return this.#refs.size - this.#lru.size + this.#private;
  }

  /** Hashed blocks held, pinned or free. */
  get cached(): number {
    return this.#refs.size;
  }

  /** Cached blocks evicted so far. */
  get evicted(): number {
    return this.#evicted;
  }

  has(key: number): boolean {
    return this.#refs.has(key);
  }

  /** Leading blocks of `keys` cached now, at most `max`. Does not touch recency. */
  match(keys: readonly number[], max: number): number {
    let k = 0;
    while (k < keys.length && k < max && this.#refs.has(keys[k])) k++;
    return k;
  }

  /** How many of the first `k` keys are cached with no reference (pinning them takes them). */
  unreferenced(keys: readonly number[], k: number): number {
    let n = 0;
    for (let i = 0; i < k; i++) if (this.#refs.get(keys[i]) === 0) n++;
    return n;
  }

  /** Takes a reference on the first `k` keys for `seq` (they must be cached). */
  pinPrefix(seq: BlockHolder, keys: readonly number[], k: number): void {
    for (let i = 0; i < k; i++) {
      const key = keys[i];
      const r = this.#refs.get(key) ?? 0;
      if (r === 0) this.#lru.delete(key);
      this.#refs.set(key, r + 1);
      seq.pinned.push(key);
    }
  }

  /** Gives `seq` `n` private blocks, evicting cached ones as needed; the caller checked `available`. */
  allocate(seq: BlockHolder, n: number): void {
    while (this.free < n) {
      const oldest = this.#lru.keys().next();
      if (oldest.done) throw new Error("KV cache accounting broken: nothing left to evict");
      this.#lru.delete(oldest.value);
      this.#refs.delete(oldest.value);
      this.#evicted++;
      this.#onEvict?.(oldest.value);
    }
    this.#private += n;
    seq.privateBlocks += n;
  }

  /**
   * Turns one of `seq`'s private blocks into the hashed block `key`. When `key` is cached already
   * (another sequence computed the same block first) the block stays a private duplicate, as in
   * vLLM, where the duplicate is freed uncached; returns whether it was hashed.
   */
  hash(seq: BlockHolder, key: number): boolean {
    if (this.#refs.has(key) || seq.privateBlocks === 0) return false;
    seq.privateBlocks--;
    this.#private--;
    this.#refs.set(key, 1);
    seq.pinned.push(key);
    return true;
  }

  /** Frees every block of `seq`: unpins tail first, drops its private room. */
  release(seq: BlockHolder): void {
    for (let i = seq.pinned.length - 1; i >= 0; i--) {
      const key = seq.pinned[i];
      const r = (this.#refs.get(key) ?? 1) - 1;
      this.#refs.set(key, r);
      if (r === 0) this.#lru.set(key, true);
    }
    seq.pinned = [];
    this.#private -= seq.privateBlocks;
    seq.privateBlocks = 0;
  }

  /**
   * Forgets every cached block (vLLM's `reset_prefix_cache`); false, changing nothing, while a
   * sequence holds blocks (vLLM refuses in that case too).
   */
  clear(): boolean {
    if (this.used > 0) return false;
    this.#refs.clear();
    this.#lru.clear();
    return true;
  }
}
