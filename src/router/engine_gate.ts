/**
 * The engine gate of flow control (`flow.queue.engine_max_waiting`, issue 21): a worker whose
 * engine itself reports `waiting ≥ engine_max_waiting` requests (vLLM's
 * `vllm:num_requests_waiting`, SGLang's `sglang:num_queue_reqs`, llama-server's deferred requests;
 * scraped by `health.scrape_metrics`) takes no new request while flow control is on: it has no
 * free slot for the router queue and is not a candidate of a first attempt, so the request waits
 * in the router's fair, prioritised queue instead of piling into the engine's FIFO, where every
 * class and tenant waits alike.
 *
 * Rules:
 * - Only fresh figures count (`now − at` within the scraper's `maxAgeMs`, either side); stale or
 *   absent ones, or an engine that does not export a waiting count, leave the worker to the
 *   router's own counts (`max_inflight`), as without the gate.
 * - A retry (the request already left the queue) is never held back: a worker with a queue is
 *   better than a 502.
 * - Wake-ups need no event: the queue's periodic tick (250 ms) re-reads the figures, which the
 *   scraper refreshes every `health.scrape_interval`.
 *
 * Cost: a closure call, one map lookup and a few comparisons per worker per check.
 *
 * @module
 */

import type { Backend } from "./pool.ts";

/** A predicate: whether a worker is held back now. */
export type Gate = (b: Backend) => boolean;

/** Whether `b`'s fresh engine figures at `now` show `maxWaiting` or more requests waiting. */
export function engineSaturated(b: Backend, maxWaiting: number, now: number): boolean {
  if (maxWaiting <= 0) return false;
  const e = b.engine;
  if (e === undefined) return false;
  const age = now - e.at;
  if (!(age <= e.maxAgeMs && age >= -e.maxAgeMs)) return false; // stale (or NaN): ignored
  const w = e.waiting;
  return w !== undefined && w >= maxWaiting && w < Infinity;
}
