/**
 * Contracts of replica sync: the routing record replicas exchange, the logger and the router shape
 * the sync layer needs, and the counters it exposes for metrics.
 *
 * The sync layer imports nothing from `src/router`: a router is seen structurally as a list of
 * `{ id, prefix }` backends, so the router can be wired to it without either importing the other's
 * implementation.
 *
 * @module
 */

import type { ChunkHashes, PrefixIndex } from "../prefix/types.ts";

/** What one routing record says: replica `replica` sent a request with `hashes` to `worker`. */
export interface SyncRecord {
  /** Replica that made the decision. */
  readonly replica: string;
  /**
   * The publishing process (random per start), so a replica restarted under the same id (a pod
   * name survives a container restart) applies its previous life's records; "" when the
   * publisher did not say (routers before it): then a record with the own id counts as the own.
   */
  readonly incarnation: string;
  /** Worker id the request went to. */
  readonly worker: string;
  /**
   * `insert`: the worker now holds `hashes`. `truncate`: the engine reported less than predicted;
   * drop what the index holds along `hashes` beyond `keepChunks`.
   */
  readonly op: "insert" | "truncate";
  readonly hashes: ChunkHashes;
  /** For `truncate` only. */
  readonly keepChunks: number;
  /** Chunk size the hashes were made with; 0 when the publisher did not say. */
  readonly chunkSize: number;
  /**
   * Hash rule the hashes were made with (`HASH_SCHEME` in src/prefix/chunker.ts); 1 when the
   * publisher did not say (routers before scheme 2 hashed with FNV-1a 64 and wrote no `s`).
   */
  readonly hashScheme: number;
  /** Publisher's wall clock at the decision, ms since the epoch. */
  readonly time: number;
}

/** A structured logger; the router's `Logger` fits. */
export interface SyncLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger that writes nothing. */
export const quietLogger: SyncLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** One backend as the sync layer sees it: the router's `Backend` fits. */
export interface SyncedBackend {
  readonly id: string;
  readonly prefix: PrefixIndex;
}

/** A router as the sync layer sees it: the router's `Router` fits. */
export interface SyncedRouter {
  readonly backends: readonly SyncedBackend[];
}

/** Counters and gauges of one `PrefixSync`, read at scrape time. */
export interface PrefixSyncStats {
  /** Both Redis connections (writer and reader) are ready. */
  readonly connected: boolean;
  /** Records written to Redis. */
  readonly published: number;
  /** Other replicas' records applied to a local index. */
  readonly applied: number;
  /** Local records dropped because the queue was full while Redis was away. */
  readonly dropped: number;
  /** Other replicas' records not applied: unknown worker, other chunk size, or malformed. */
  readonly ignored: number;
  /** Local records waiting to be written. */
  readonly queued: number;
  /** Times the sync went from connected to disconnected. */
  readonly disconnects: number;
  /** Wall-clock age of the last applied record when it was applied, ms (clock skew included). */
  readonly lastLagMs: number;
}
