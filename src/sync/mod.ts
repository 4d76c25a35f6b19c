/**
 * Replica sync: router replicas share their routing records through a Redis stream so that their
 * per-worker prefix indexes converge (ADR 0004).
 *
 * ```ts
 * import { createPrefixSync, registerSyncMetrics, resolveSyncConfig } from "./mod.ts";
 * const { value } = resolveSyncConfig({ redis: { url: "redis://127.0.0.1:6379" } });
 * const sync = createPrefixSync(value, router, { chunkSize: 32, logger: router.logger });
 * registerSyncMetrics(router.metrics.registry, () => sync?.stats() ?? null);
 * // after router.reload(next): sync?.refresh(); on shutdown: await sync?.stop();
 * ```
 *
 * @module
 */

export { DEFAULT_STREAM, defaultReplicaId, PrefixSync, redactRedisUrl } from "./redis_sync.ts";
export type { PrefixSyncOptions } from "./redis_sync.ts";
export { registerSyncMetrics } from "./metrics.ts";
export { decodeHashes, encodeHashes, parseRecord, recordFields } from "./codec.ts";
export {
  createPrefixSync,
  type CreateSyncOptions,
  resolveSyncConfig,
  SYNC_ENV,
  SYNC_OFF,
  type SyncConfig,
} from "./config.ts";
export type {
  PrefixSyncStats,
  SyncedBackend,
  SyncedRouter,
  SyncLogger,
  SyncRecord,
} from "./types.ts";
