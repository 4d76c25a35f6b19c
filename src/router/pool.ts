/**
 * Router-side state of one worker: its prefix index, in-flight count, breaker and health. A worker
 * is admitted (may be offered to the strategy) when its health check passes, its breaker admits
 * traffic and it is under `max_inflight`.
 *
 * @module
 */

import type { WorkerConfig } from "../config/types.ts";
import { CircuitBreaker } from "../backends/mod.ts";
import { RadixTree } from "../prefix/mod.ts";
import type { RouteTarget } from "./select.ts";
import type { Clock } from "../util/clock.ts";

/** One upstream worker and what the router knows of it. */
export class Backend implements RouteTarget {
  readonly id: string;
  readonly url: string;
  readonly capacityChunks: number;
  readonly prefix: RadixTree;
  readonly breaker: CircuitBreaker;
  /** Requests forwarded and not yet finished. */
  inflight = 0;
  /** Result of the last active health check (true until one fails). */
  up = true;

  constructor(readonly index: number, readonly config: WorkerConfig, clock: Clock) {
    this.id = config.id;
    this.url = config.url;
    this.capacityChunks = config.kvBudget;
    this.prefix = new RadixTree({ maxChunks: config.kvBudget });
    this.breaker = new CircuitBreaker({
      threshold: config.breakerThreshold,
      cooldownMs: config.breakerCooldownMs,
      clock,
    });
  }

  /** Whether the strategy may be offered this worker now. */
  admits(): boolean {
    if (!this.up) return false;
    if (this.config.maxInflight > 0 && this.inflight >= this.config.maxInflight) return false;
    return this.breaker.canAdmit();
  }
}
