/**
 * Contracts of the prefix layer: chunk-hash sequences and the per-worker prefix index.
 *
 * A chunk hash is 64 bits, kept as two unsigned 32-bit halves so that hashing and comparing stay
 * in plain number arithmetic (no BigInt on the hot path).
 *
 * @module
 */

/**
 * Chained 64-bit chunk hashes of one routing text: `[hi0, lo0, hi1, lo1, ...]`, so the length is
 * twice the chunk count. Hash `i` covers every byte from the start of the text to the end of chunk
 * `i`, so equal hashes at position `i` mean equal prefixes (up to hash collisions).
 */
export type ChunkHashes = Uint32Array;

/** Number of chunks in a hash sequence. */
export function chunkCount(hashes: ChunkHashes): number {
  return hashes.length >>> 1;
}

/** Size counters of one prefix index, as exported on /metrics. */
export interface PrefixIndexStats {
  /** Chunks held (sum of edge lengths). */
  readonly chunks: number;
  /** Nodes that end an inserted sequence (leaves and interior terminals). */
  readonly terminals: number;
  /** Capacity in chunks; 0 means unbounded. */
  readonly maxChunks: number;
  /** Insert calls since creation. */
  readonly inserts: number;
  /** Match calls since creation. */
  readonly queries: number;
  /** Chunks evicted since creation. */
  readonly evictions: number;
}

/** What the router believes one worker holds in its KV cache. */
export interface PrefixIndex {
  /** Longest prefix of `hashes` held, in chunks. Does not refresh recency. */
  match(hashes: ChunkHashes): number;
  /** Record that the worker now holds `hashes`; refreshes recency and evicts to the budget. */
  insert(hashes: ChunkHashes): void;
  /** Drop what is held beyond the first `keepChunks` chunks of `hashes` (used when the engine reports less than predicted). */
  truncate?(hashes: ChunkHashes, keepChunks: number): void;
  /** Forget everything. */
  clear(): void;
  /** Chunks held now: `stats().chunks` without building the stats object (read per request). */
  readonly chunks: number;
  /** Current size counters. */
  stats(): PrefixIndexStats;
}
