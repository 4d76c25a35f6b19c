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
import { CHUNK_BYTES, NODE_BYTES, RadixTree } from "../prefix/radix_tree.ts";
import type { PrefixIndex } from "../prefix/types.ts";
import { type DeadlineOptions, dialTarget } from "../proxy/deadlines.ts";
import { H1Pool } from "../proxy/h1_client.ts";
import type { RouteTarget } from "./select.ts";
import type { Clock } from "../util/clock.ts";
import type { EngineReading } from "../backends/engine_scraper.ts";
import type { EngineLoad, WorkerLoad } from "../strategies/types.ts";
import { configuredEntries, type ModelEntry } from "./models.ts";

/** Where a worker's engine figures come from: the router's `EngineScraper`. */
export interface EngineSource {
  /** The figures routing reads, while fresh; undefined when stale or absent. */
  engineLoad(id: string): EngineLoad | undefined;
  /** The last reading, fresh or stale, with its time and failures. */
  reading(id: string): EngineReading | undefined;
}

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
  /**
   * What the router believes this worker holds: its own radix tree (approximate mode), or its
   * view of the precise block index (`precise.ts` sets it).
   */
  prefix: PrefixIndex;
  breaker: CircuitBreaker;
  config: WorkerConfig;
  /** The deadlines of a request's attempt on this worker, from `config` (rebuilt by `update`). */
  deadlines: DeadlineOptions;
  /** Requests forwarded and not yet finished. */
  inflight = 0;
  /** Result of the last active health check (true until one fails). */
  up = true;
  /**
   * Served models (and adapters): from `workers[].models`, or learned from the worker's
   * `/v1/models` (`model_refresh.ts`); null while unknown.
   */
  models: ReadonlyMap<string, ModelEntry> | null;
  /** Where cost-model figures come from; set by the router only when its strategy reads them. */
  loadSource: ((index: number) => WorkerLoad) | null = null;
  /** Where the engine's own load signals come from (`health.scrape_metrics`), or null. */
  engineSource: EngineSource | null = null;
  readonly #clock: Clock;
  /** Keep-alive connections of the HTTP/1.1 client; created on first use, http:// only. */
  #h1: H1Pool | null = null;
  #disposed = false;

  /** The prefix index's bounds: `kv_budget` and this worker's share of `index_max_bytes`. */
  #budget: IndexBudget;

  /**
   * @param indexShareBytes this worker's share of `router.index_max_bytes` (default: no share,
   *   only `kv_budget` bounds the index)
   */
  constructor(index: number, config: WorkerConfig, clock: Clock, indexShareBytes = Infinity) {
    this.index = index;
    this.config = config;
    this.#budget = indexBudget(config.kvBudget, indexShareBytes);
    this.models = config.models === null ? null : configuredEntries(config.models);
    this.id = config.id;
    this.url = config.url;
    this.dial = dialTarget(config.url);
    this.basePath = new URL(config.url).pathname.replace(/\/+$/, "");
    this.#clock = clock;
    this.prefix = this.#newTree();
    this.breaker = this.#newBreaker(config);
    this.deadlines = this.#deadlinesOf(config);
  }

  /**
   * The prefix index's capacity in chunks: `kv_budget`, or less when this worker's share of
   * `router.index_max_bytes` is smaller; 0 = unbounded.
   */
  get capacityChunks(): number {
    return this.#budget.chunks;
  }

  /** Bearer token sent upstream (for the model refresher). */
  get apiKey(): string | null {
    return this.config.apiKey;
  }

  /** The engine's own load figures, while fresh (`health.scrape_metrics`). */
  get engine(): EngineLoad | undefined {
    return this.engineSource?.engineLoad(this.id);
  }

  /** The scraper's last reading of the engine, fresh or not (for the operator); undefined: none. */
  get engineReading(): EngineReading | undefined {
    return this.engineSource?.reading(this.id);
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
  update(config: WorkerConfig, indexShareBytes = Infinity): string[] {
    const reset: string[] = [];
    const budget = indexBudget(config.kvBudget, indexShareBytes);
    if (config.kvBudget !== this.config.kvBudget) {
      this.#budget = budget;
      if (this.prefix instanceof RadixTree) this.prefix = this.#newTree();
      reset.push("prefix index (kv_budget changed)");
    } else if (budget.chunks !== this.#budget.chunks || budget.nodes !== this.#budget.nodes) {
      // The share of router.index_max_bytes changed (workers added or removed): the tree keeps
      // what fits.
      this.#budget = budget;
      if (this.prefix instanceof RadixTree) this.prefix.resize(budget.chunks, budget.nodes);
    }
    if (
      config.breakerThreshold !== this.config.breakerThreshold ||
      config.breakerCooldownMs !== this.config.breakerCooldownMs
    ) {
      this.breaker = this.#newBreaker(config);
      reset.push("circuit breaker (breaker settings changed)");
    }
    if (config.models !== null) this.models = configuredEntries(config.models);
    else if (this.config.models !== null) this.models = null; // learned from now on
    this.config = config;
    this.deadlines = this.#deadlinesOf(config);
    return reset;
  }

  #newTree(): RadixTree {
    return new RadixTree({
      maxChunks: this.#budget.chunks,
      maxNodes: this.#budget.nodes,
      chained: true,
    });
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

/** Bounds of one worker's prefix index. */
export interface IndexBudget {
  /** Chunks at most; 0 = unbounded. */
  readonly chunks: number;
  /** Nodes at most; 0 = unbounded. */
  readonly nodes: number;
}

/**
 * The bounds of a worker's prefix index: `kvBudget` chunks (0 = none), and half of `shareBytes`
 * for chunks and half for nodes, so the tree stays within `shareBytes` whatever its shape
 * (`CHUNK_BYTES` per chunk, `NODE_BYTES` per node).
 */
export function indexBudget(kvBudget: number, shareBytes: number): IndexBudget {
  if (!Number.isFinite(shareBytes)) return { chunks: kvBudget, nodes: 0 };
  const byBytes = Math.max(1, Math.floor(shareBytes / 2 / CHUNK_BYTES));
  return {
    chunks: kvBudget > 0 ? Math.min(kvBudget, byBytes) : byBytes,
    nodes: Math.max(4, Math.floor(shareBytes / 2 / NODE_BYTES)),
  };
}
