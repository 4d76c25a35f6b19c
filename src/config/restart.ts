/**
 * Which changes between two configurations a reload cannot apply: listeners are bound once, and
 * the Redis sync, the worker discovery and precise mode (its index, KV-event subscriptions and
 * tokenizers) are built once, at start-up. A reload keeps such changes
 * in the config in force but lists their YAML keys, so that the operator is told to restart.
 *
 * `discovery.worker` is not listed: the entry point applies it to the discovered workers on
 * reload. `router.chunk_size` is listed while sync is on: the router applies it, but the running
 * sync keeps tagging and filtering records with the chunk size it started with.
 *
 * @module
 */

import type { RouterConfig } from "./types.ts";

/** YAML keys whose change between `prev` and `next` takes effect only after a restart. */
export function restartKeys(prev: RouterConfig, next: RouterConfig): string[] {
  const keys: string[] = [];
  if (prev.server.addr !== next.server.addr) keys.push("server.addr");
  if (prev.metrics.addr !== next.metrics.addr) keys.push("metrics.addr");
  if (prev.metrics.enabled !== next.metrics.enabled && prev.metrics.addr !== null) {
    keys.push("metrics.enabled");
  }

  const ps = prev.sync;
  const ns = next.sync;
  if (ps.replicaId !== ns.replicaId) keys.push("sync.replica_id");
  if ((ps.redis === null) !== (ns.redis === null)) {
    keys.push("sync.redis.url");
  } else if (ps.redis !== null && ns.redis !== null) {
    const fields = [
      ["url", "url"],
      ["stream", "stream"],
      ["maxLen", "max_len"],
      ["catchUpMs", "catch_up"],
      ["queueMax", "queue_max"],
    ] as const;
    for (const [field, key] of fields) {
      if (ps.redis[field] !== ns.redis[field]) keys.push(`sync.redis.${key}`);
    }
  }
  if (ps.redis !== null && prev.router.chunkSize !== next.router.chunkSize) {
    keys.push("router.chunk_size");
  }

  // Precise mode's index, subscriptions and tokenizers are built once.
  if (prev.router.index !== next.router.index) keys.push("router.index");
  if (prev.router.blockSize !== next.router.blockSize) keys.push("router.block_size");
  if (prev.router.predictTtlMs !== next.router.predictTtlMs) keys.push("router.predict_ttl");
  if (!sameJson(prev.tokenizers, next.tokenizers)) keys.push("tokenizers");

  const pd = prev.discovery;
  const nd = next.discovery;
  if (pd.mode !== nd.mode) keys.push("discovery.mode");
  if (pd.intervalMs !== nd.intervalMs) keys.push("discovery.interval");
  if (!sameJson(pd.dns, nd.dns)) keys.push("discovery.dns");
  if (!sameJson(pd.kubernetes, nd.kubernetes)) keys.push("discovery.kubernetes");
  return keys;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
