/**
 * Router-side state of one worker: its prefix index, in-flight count, breaker and health. A worker
 * is admitted (may be offered to the strategy) when its health check passes, its breaker admits
 * traffic and it is under `max_inflight`.
 *
 * A config reload keeps the `Backend` of a worker that stays (same id and url) and hands it the new
 * settings with `update`, so its prefix index, breaker, health mark and in-flight count survive;
 * requests in flight hold the object and count themselves out on it whatever the reload did.
 *
 * @module
 */

import type { WorkerConfig } from "../config/types.ts";
import { CircuitBreaker } from "../backends/mod.ts";
import { RadixTree } from "../prefix/mod.ts";
import { type DeadlineOptions, dialTarget } from "../proxy/deadlines.ts";
import { H1Pool } from "../proxy/h1_client.ts";
import type { RouteTarget } from "./select.ts";
import type { Clock } from "../util/clock.ts";
import type { WorkerLoad } from "../strategies/types.ts";

/** One upstream worker and what the router knows of it. */
export class Backend implements RouteTarget {
  /** Position in the router's current worker list (reassigned by a reload). */
  index: number;
  readonly id: string;
  readonly url: string;
  /** Host and port the connect check dials. */
  readonly dial: { readonly hostname: string; readonly port: number };
  /** Path prefix of the worker's URL ("" or "/base"), put before the request's path. */
  readonly basePath: string;
  prefix: RadixTree;
  breaker: CircuitBreaker;
  config: WorkerConfig;
  /** The deadlines of a request's attempt on this worker, from `config` (rebuilt by `update`). */
  deadlines: DeadlineOptions;
  /** Requests forwarded and not yet finished. */
  inflight = 0;
  /** Result of the last active health check (true until one fails). */
  up = true;
  /** Where cost-model figures come from; set by the router only when its strategy reads them. */
  loadSource: ((index: number) => WorkerLoad) | null = null;
  readonly #clock: Clock;
  /** Keep-alive connections of the HTTP/1.1 client; created on first use, http:// only. */
  #h1: H1Pool | null = null;
  #disposed = false;

  constructor(index: number, config: WorkerConfig, clock: Clock) {
    this.index = index;
    this.config = config;
    this.id = config.id;
    this.url = config.url;
    this.dial = dialTarget(config.url);
    this.basePath = new URL(config.url).pathname.replace(/\/+$/, "");
    this.#clock = clock;
    this.prefix = new RadixTree({ maxChunks: config.kvBudget, chained: true });
    this.breaker = this.#newBreaker(config);
    this.deadlines = this.#deadlinesOf(config);
  }

  /** The worker's KV budget in chunks (`kv_budget`), the prefix index's capacity. */
  get capacityChunks(): number {
    return this.config.kvBudget;
  }

  /** Cost-model figures of this worker, when the router's strategy uses them. */
  get load(): WorkerLoad | undefined {
    return this.loadSource?.(this.index);
  }

  /**
   * The worker's HTTP/1.1 connection pool (`router.upstream_client: native`); null for an
   * `https://` worker, which `fetch` serves, and after `dispose`.
   */
  h1(): H1Pool | null {
    if (this.#disposed) return null;
    if (this.#h1 !== null || !this.url.startsWith("http://")) return this.#h1;
    this.#h1 = new H1Pool({ hostname: this.dial.hostname, port: this.dial.port });
    return this.#h1;
  }

  /** The worker's connection pool if one was opened (`h1()` opens it), for inspection. */
  get h1Pool(): H1Pool | null {
    return this.#h1;
  }

  /**
   * Closes idle upstream connections now and busy ones when their request ends; requests that
   * still hold this object finish normally. For a worker a reload removed, and the router's end.
   */
  dispose(): void {
    this.#disposed = true;
    this.#h1?.close();
  }

  /** Whether the strategy may be offered this worker now. */
  admits(): boolean {
    if (!this.up) return false;
    if (this.config.maxInflight > 0 && this.inflight >= this.config.maxInflight) return false;
    return this.breaker.canAdmit();
  }

  /**
   * Takes the settings of a reloaded config for this same worker (same id and url). The prefix
   * index and the breaker are kept unless their own settings changed: a new `kv_budget` needs a
   * new index (its capacity is fixed), new breaker settings a new, closed breaker. Everything else
   * applies to the next request. Returns what had to be reset, for the reload log.
   */
  update(config: WorkerConfig): string[] {
    const reset: string[] = [];
    if (config.kvBudget !== this.config.kvBudget) {
      this.prefix = new RadixTree({ maxChunks: config.kvBudget, chained: true });
      reset.push("prefix index (kv_budget changed)");
    }
    if (
      config.breakerThreshold !== this.config.breakerThreshold ||
      config.breakerCooldownMs !== this.config.breakerCooldownMs
    ) {
      this.breaker = this.#newBreaker(config);
      reset.push("circuit breaker (breaker settings changed)");
    }
    this.config = config;
    this.deadlines = this.#deadlinesOf(config);
    return reset;
  }

  #deadlinesOf(config: WorkerConfig): DeadlineOptions {
    return {
      connectMs: config.connectTimeoutMs,
      ttfbMs: config.ttfbTimeoutMs,
      idleMs: config.idleTimeoutMs,
      totalMs: config.timeoutMs,
      dial: this.dial,
      label: `Worker ${this.id}`,
    };
  }

  #newBreaker(config: WorkerConfig): CircuitBreaker {
    return new CircuitBreaker({
      threshold: config.breakerThreshold,
      cooldownMs: config.breakerCooldownMs,
      clock: this.#clock,
    });
  }
}
