/**
 * Applying a new configuration to the router's state between two requests.
 *
 * Workers are matched by id and url: a kept worker keeps its prefix index, breaker, health mark and
 * in-flight count (its other settings apply from the next request; see `Backend.update`); a new one
 * starts empty; a removed one takes no new request, and its requests in flight finish normally
 * (it is held in `retired` until the last one ends). A changed `chunk_size` empties every prefix
 * index, since the old hashes no longer match. Session pins to removed workers go; the load
 * tracker keeps kept workers' load and learned rates under their new positions.
 *
 * @module
 */

import { restartKeys } from "../config/mod.ts";
import type { RouterConfig } from "../config/types.ts";
import type { Strategy } from "../strategies/types.ts";
import { Backend } from "./pool.ts";
import { indexShare, type RouterState } from "./state.ts";

/** What a reload changed, for its log line. */
export interface ReloadSummary {
  readonly added: string[];
  readonly removed: string[];
  /** Workers kept with their prefix index, breaker and in-flight count. */
  readonly kept: string[];
  /** State that had to be reset, e.g. `w1: prefix index (kv_budget changed)`. */
  readonly reset: string[];
  /** Changed keys that take effect only after a restart (listeners are bound once). */
  readonly needsRestart: string[];
  readonly strategy: string;
}

/** Whether `next` builds the same strategy as `prev` (name and parameters). */
export function sameStrategy(prev: RouterConfig, next: RouterConfig): boolean {
  return prev.router.strategy === next.router.strategy &&
    prev.router.minMatchChunks === next.router.minMatchChunks &&
    prev.router.saturationInflight === next.router.saturationInflight &&
    JSON.stringify(prev.router.strategyOptions) === JSON.stringify(next.router.strategyOptions);
}

/**
 * Swaps `next`'s workers and `strategy` into `state` (see the module comment). Nothing here
 * throws. Auth, logger and health checks are the caller's to renew.
 */
export function applyWorkers(
  state: RouterState,
  next: RouterConfig,
  strategy: Strategy,
): ReloadSummary {
  const prev = state.config;
  const old = new Map(state.backends.map((b) => [b.id, b]));
  const summary: ReloadSummary = {
    added: [],
    removed: [],
    kept: [],
    reset: [],
    needsRestart: restartKeys(prev, next),
    strategy: strategy.name,
  };
  const chunkSizeChanged = prev.router.chunkSize !== next.router.chunkSize;
  /** Each new worker's index before the reload (null: a new worker), for the load tracker. */
  const from: (number | null)[] = [];
  const share = indexShare(next);
  const backends = next.workers.map((w, i) => {
    const b = old.get(w.id);
    if (b === undefined || b.url !== w.url) {
      from.push(null);
      summary.added.push(w.id);
      return new Backend(i, w, state.clock, share);
    }
    from.push(b.index);
    old.delete(w.id);
    b.index = i;
    for (const what of b.update(w, share)) summary.reset.push(`${w.id}: ${what}`);
    if (chunkSizeChanged && state.precise === null) {
      b.prefix.clear();
      summary.reset.push(`${w.id}: prefix index (chunk_size changed)`);
    }
    summary.kept.push(w.id);
    return b;
  });
  for (const b of old.values()) {
    summary.removed.push(b.id);
    if (b.inflight > 0) state.retired.add(b);
    b.dispose(); // its requests in flight keep their connections to the end
  }
  state.config = next;
  state.backends = backends;
  state.strategy = strategy;
  // Indices changed: kept workers keep their load and learned rates under their new index.
  state.tracker = state.tracker.remap(from.length > 0 ? from : [null]);
  state.precise?.attach(backends, state.logger);
  state.sessions.retain((b) => backends[b.index] === b);
  state.responses.retain((b) => backends[b.index] === b);
  return summary;
}
