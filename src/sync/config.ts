/**
 * The factory that turns the resolved `sync:` section into a running {@linkcode PrefixSync} for a
 * router; the section itself (types, defaults, checks) is in `section.ts` and re-exported here.
 *
 * @module
 */

import { defaultReplicaId, PrefixSync } from "./redis_sync.ts";
import type { SyncConfig } from "./section.ts";
import type { SyncedRouter, SyncLogger } from "./types.ts";

export {
  DEFAULT_STREAM,
  resolveSyncConfig,
  show,
  SYNC_ENV,
  SYNC_OFF,
  type SyncConfig,
} from "./section.ts";

/** Options of {@linkcode createPrefixSync} besides the config. */
export interface CreateSyncOptions {
  /** `router.chunk_size`: records made with another chunk size are ignored. */
  readonly chunkSize: number;
  readonly logger?: SyncLogger;
  readonly onStateChange?: (connected: boolean) => void;
  /**
   * Start at once (default). False: the caller calls `start()` later, e.g. once discovery has
   * reported the workers, so the catch-up history finds them instead of being ignored as records
   * about unknown workers.
   */
  readonly start?: boolean;
}

/**
 * A `PrefixSync` attached to `router` (started unless `opts.start` is false), or null when sync is
 * off. The caller owns it:
 * `refresh()` after a reload, `stop()` on shutdown.
 */
export function createPrefixSync(
  config: SyncConfig,
  router: SyncedRouter,
  opts: CreateSyncOptions,
): PrefixSync | null {
  if (config.redis === null) return null;
  const sync = PrefixSync.attach(router, {
    url: config.redis.url,
    replicaId: config.replicaId ?? defaultReplicaId(),
    stream: config.redis.stream,
    maxLen: config.redis.maxLen,
    catchUpMs: config.redis.catchUpMs,
    queueMax: config.redis.queueMax,
    chunkSize: opts.chunkSize,
    logger: opts.logger,
    onStateChange: opts.onStateChange,
  });
  if (opts.start !== false) sync.start();
  return sync;
}
