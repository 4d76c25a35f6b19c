/**
 * The router's Prometheus metrics, on a registry owned by each `RouterMetrics` instance (never
 * prom-client's global default registry, so several routers can live in one process, as they do
 * in tests).
 *
 * Names and labels follow the design brief; every label is bounded: `strategy` and `reason` come
 * from code, `backend` from the config, `status` is the exact HTTP status code (a bounded set: the
 * router only forwards what the upstream answered or one of its own few error codes).
 *
 * Hot path: `observeRequest` runs once per request. prom-client's `labels(...)` builds a label
 * object and a bound function on every call, so the children are built once per label combination
 * and kept in maps keyed by the joined label values; a request then costs three map lookups and the
 * sample updates themselves.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { PrefixIndexStats } from "../prefix/types.ts";

/** Buckets of `router_request_duration_seconds`: streams of long answers run for minutes. */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  20,
  30,
  60,
  120,
  300,
];

/** Buckets of `router_time_to_first_byte_seconds`: a long uncached prefill takes seconds. */
export const TTFB_BUCKETS_S: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/** Buckets of `router_prefix_match_chunks`, as the design brief fixes them. */
export const MATCH_CHUNK_BUCKETS: readonly number[] = [
  0,
  1,
  2,
  4,
  8,
  16,
  32,
  64,
  128,
  256,
  512,
  1024,
];

/**
 * Buckets of `router_prefix_prediction_error_tokens`, symmetric around 0 because the error is
 * signed. ±16 is the smallest useful step: vLLM caches whole blocks of 16 tokens, so smaller
 * errors are rounding.
 */
export const PREDICTION_ERROR_BUCKETS: readonly number[] = [
  -8192,
  -2048,
  -512,
  -128,
  -16,
  0,
  16,
  128,
  512,
  2048,
  8192,
];

/** One finished request, as `observeRequest` records it. */
export interface RequestObservation {
  /** Strategy name. */
  readonly strategy: string;
  /** Worker id that served the request (the last one tried). */
  readonly backend: string;
  /** Routing reason, as sent in `X-Router-Reason`. */
  readonly reason: string;
  /** HTTP status the client received. */
  readonly status: number;
  /** Whole request, seconds. */
  readonly durationS: number;
  /** Time to the first response byte sent to the client, seconds; null when none was sent. */
  readonly ttfbS: number | null;
  /** Prefix match of the chosen worker, chunks; null when the strategy does not use prefixes. */
  readonly matchChunks: number | null;
  /** Response body bytes sent to the client. */
  readonly bytes: number;
  /** Whether the engine reported cached prompt tokens (> 0); null when it reported no usage. */
  readonly cacheHit: boolean | null;
}

const SEP = "\u001f";

/** Children of the per-backend series, built once per backend. */
interface BackendSeries {
  readonly bytes: Counter.Internal;
  readonly inflight: Gauge.Internal<string>;
  readonly up: Gauge.Internal<string>;
  readonly breaker: Gauge.Internal<string>;
  readonly promptTokens: Counter.Internal;
  readonly cachedTokens: Counter.Internal;
  readonly treeChunks: Gauge.Internal<string>;
  readonly treeTerminals: Gauge.Internal<string>;
  readonly treeMaxChunks: Gauge.Internal<string>;
  readonly treeInserts: Counter.Internal;
  readonly treeQueries: Counter.Internal;
  readonly treeEvictions: Counter.Internal;
  /** Last totals seen by `setPrefixTreeStats`, to turn them into counter increments. */
  last: { inserts: number; queries: number; evictions: number; index: object | null } | null;
}

/** Children of the per-(strategy, backend) histograms. */
interface LatencySeries {
  readonly duration: Histogram.Internal<string>;
  readonly ttfb: Histogram.Internal<string>;
}

/** The router's metrics on a registry of their own. */
export class RouterMetrics {
  /** The registry holding every metric of this instance. */
  readonly registry: Registry = new Registry();

  readonly #requests: Counter<string>;
  readonly #duration: Histogram<string>;
  readonly #ttfb: Histogram<string>;
  readonly #matchChunks: Histogram<string>;
  readonly #cacheHits: Counter<string>;
  readonly #cacheHit: Counter.Internal;
  readonly #cacheMiss: Counter.Internal;
  readonly #predictionError: Histogram<string>;
  readonly #bytes: Counter<string>;
  readonly #inflight: Gauge<string>;
  readonly #up: Gauge<string>;
  readonly #breaker: Gauge<string>;
  readonly #promptTokens: Counter<string>;
  readonly #cachedTokens: Counter<string>;
  readonly #retries: Counter<string>;
  readonly #treeChunks: Gauge<string>;
  readonly #treeTerminals: Gauge<string>;
  readonly #treeMaxChunks: Gauge<string>;
  readonly #treeInserts: Counter<string>;
  readonly #treeQueries: Counter<string>;
  readonly #treeEvictions: Counter<string>;

  readonly #requestChildren = new Map<string, Counter.Internal>();
  readonly #latencyChildren = new Map<string, LatencySeries>();
  readonly #backendChildren = new Map<string, BackendSeries>();
  readonly #retryChildren = new Map<string, Counter.Internal>();

  constructor() {
    const registers = [this.registry];
    const counter = (name: string, help: string, labelNames: string[]) =>
      new Counter({ name, help, labelNames, registers });
    const gauge = (name: string, help: string, labelNames: string[]) =>
      new Gauge({ name, help, labelNames, registers });
    const histogram = (
      name: string,
      help: string,
      labelNames: string[],
      buckets: readonly number[],
    ) => new Histogram({ name, help, labelNames, buckets: [...buckets], registers });

    this.#requests = counter(
      "router_requests_total",
      "Requests answered, by strategy, backend, routing reason and HTTP status code",
      ["strategy", "backend", "reason", "status"],
    );
    this.#duration = histogram(
      "router_request_duration_seconds",
      "Whole request time as the router saw it, seconds",
      ["strategy", "backend"],
      DURATION_BUCKETS_S,
    );
    this.#ttfb = histogram(
      "router_time_to_first_byte_seconds",
      "Time from request arrival to the first response byte sent to the client, seconds",
      ["strategy", "backend"],
      TTFB_BUCKETS_S,
    );
    this.#matchChunks = histogram(
      "router_prefix_match_chunks",
      "Prefix match of the chosen backend, in chunks",
      [],
      MATCH_CHUNK_BUCKETS,
    );
    this.#cacheHits = counter(
      "router_cache_hit_requests_total",
      "Requests whose engine reported cached prompt tokens (hit) or none (miss)",
      ["category"],
    );
    this.#cacheHit = this.#cacheHits.labels("hit");
    this.#cacheMiss = this.#cacheHits.labels("miss");
    this.#predictionError = histogram(
      "router_prefix_prediction_error_tokens",
      "Predicted minus engine-reported cached prompt tokens (positive: the router overestimated)",
      [],
      PREDICTION_ERROR_BUCKETS,
    );
    this.#bytes = counter(
      "router_response_bytes_total",
      "Response body bytes sent to clients",
      ["backend"],
    );
    this.#inflight = gauge("router_inflight", "Requests in flight", ["backend"]);
    this.#up = gauge(
      "router_backend_up",
      "1 when the backend's last health probe passed, else 0",
      ["backend"],
    );
    this.#breaker = gauge(
      "router_breaker_state",
      "Circuit breaker state: 0 closed, 1 open, 2 half-open",
      ["backend"],
    );
    this.#promptTokens = counter(
      "router_upstream_prompt_tokens_total",
      "Prompt tokens reported by the engine",
      ["backend"],
    );
    this.#cachedTokens = counter(
      "router_upstream_cached_tokens_total",
      "Cached prompt tokens reported by the engine",
      ["backend"],
    );
    this.#retries = counter(
      "router_retries_total",
      "Requests retried on another backend, by the backend that failed and why",
      ["backend", "reason"],
    );
    this.#treeChunks = gauge(
      "router_prefix_tree_chunks",
      "Chunks held in the backend's prefix index",
      ["backend"],
    );
    this.#treeTerminals = gauge(
      "router_prefix_tree_terminals",
      "Inserted sequences ending in the backend's prefix index",
      ["backend"],
    );
    this.#treeMaxChunks = gauge(
      "router_prefix_tree_max_chunks",
      "Capacity of the backend's prefix index in chunks (0 = unbounded)",
      ["backend"],
    );
    this.#treeInserts = counter(
      "router_prefix_tree_inserts_total",
      "Inserts into the backend's prefix index",
      ["backend"],
    );
    this.#treeQueries = counter(
      "router_prefix_tree_queries_total",
      "Lookups in the backend's prefix index",
      ["backend"],
    );
    this.#treeEvictions = counter(
      "router_prefix_tree_evictions_total",
      "Chunks evicted from the backend's prefix index",
      ["backend"],
    );
  }

  /** Content type of `render()`'s output, for the `/metrics` response. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Records one finished request. */
  observeRequest(o: RequestObservation): void {
    const reqKey = o.strategy + SEP + o.backend + SEP + o.reason + SEP + o.status;
    let req = this.#requestChildren.get(reqKey);
    if (req === undefined) {
      req = this.#requests.labels(o.strategy, o.backend, o.reason, String(o.status));
      this.#requestChildren.set(reqKey, req);
    }
    req.inc();

    const latKey = o.strategy + SEP + o.backend;
    let lat = this.#latencyChildren.get(latKey);
    if (lat === undefined) {
      lat = {
        duration: this.#duration.labels(o.strategy, o.backend),
        ttfb: this.#ttfb.labels(o.strategy, o.backend),
      };
      this.#latencyChildren.set(latKey, lat);
    }
    lat.duration.observe(o.durationS);
    if (o.ttfbS !== null) lat.ttfb.observe(o.ttfbS);

    if (o.matchChunks !== null) this.#matchChunks.observe(o.matchChunks);
    if (o.cacheHit !== null) (o.cacheHit ? this.#cacheHit : this.#cacheMiss).inc();
    if (o.bytes > 0) this.#backend(o.backend).bytes.inc(o.bytes);
  }

  /** Sets the requests in flight on `backend`. */
  setInflight(backend: string, n: number): void {
    this.#backend(backend).inflight.set(n);
  }

  /** Sets whether `backend` passed its last health probe. */
  setBackendUp(backend: string, up: boolean): void {
    this.#backend(backend).up.set(up ? 1 : 0);
  }

  /** Sets the breaker state code of `backend` (0 closed, 1 open, 2 half-open). */
  setBreakerState(backend: string, n: number): void {
    this.#backend(backend).breaker.set(n);
  }

  /** Adds the engine-reported prompt and cached prompt tokens of one request. */
  addUpstreamTokens(backend: string, prompt: number, cached: number): void {
    const s = this.#backend(backend);
    if (prompt > 0) s.promptTokens.inc(prompt);
    if (cached > 0) s.cachedTokens.inc(cached);
  }

  /** Counts one retry away from `backend` for `reason` (e.g. `connect`, `5xx`). */
  incRetry(backend: string, reason: string): void {
    const key = backend + SEP + reason;
    let c = this.#retryChildren.get(key);
    if (c === undefined) {
      c = this.#retries.labels(backend, reason);
      this.#retryChildren.set(key, c);
    }
    c.inc();
  }

  /**
   * Records the error of the router's cache prediction for one request, in tokens: predicted
   * cached tokens minus the engine-reported ones (positive when the router overestimated).
   */
  observePredictionError(tokens: number): void {
    this.#predictionError.observe(tokens);
  }

  /**
   * Publishes a prefix index's counters. Sizes are set as gauges; the monotonic totals (inserts,
   * queries, evictions) advance their counters by the difference from the last call. A new
   * `index` (a reload replaced the tree) starts from zero: its whole totals are added, even when
   * they already passed the old tree's. Without `index`, a total smaller than the last one is
   * taken as a replacement.
   */
  setPrefixTreeStats(backend: string, stats: PrefixIndexStats, index: object | null = null): void {
    const s = this.#backend(backend);
    s.treeChunks.set(stats.chunks);
    s.treeTerminals.set(stats.terminals);
    s.treeMaxChunks.set(stats.maxChunks);
    const same = s.last !== null && s.last.index === index;
    const last = same ? s.last! : { inserts: 0, queries: 0, evictions: 0 };
    s.treeInserts.inc(delta(last.inserts, stats.inserts));
    s.treeQueries.inc(delta(last.queries, stats.queries));
    s.treeEvictions.inc(delta(last.evictions, stats.evictions));
    s.last = {
      inserts: stats.inserts,
      queries: stats.queries,
      evictions: stats.evictions,
      index,
    };
  }

  /** Backends with per-backend series. */
  backendIds(): string[] {
    return [...this.#backendChildren.keys()];
  }

  /**
   * Drops `backend`'s gauges (in flight, up, breaker state, prefix index sizes): for a worker that
   * is gone, their last values would read as current. Its counters stay, as Prometheus expects.
   */
  forgetBackendGauges(backend: string): void {
    if (!this.#backendChildren.delete(backend)) return;
    for (
      const g of [
        this.#inflight,
        this.#up,
        this.#breaker,
        this.#treeChunks,
        this.#treeTerminals,
        this.#treeMaxChunks,
      ]
    ) g.remove(backend);
  }

  #backend(backend: string): BackendSeries {
    let s = this.#backendChildren.get(backend);
    if (s === undefined) {
      s = {
        bytes: this.#bytes.labels(backend),
        inflight: this.#inflight.labels(backend),
        up: this.#up.labels(backend),
        breaker: this.#breaker.labels(backend),
        promptTokens: this.#promptTokens.labels(backend),
        cachedTokens: this.#cachedTokens.labels(backend),
        treeChunks: this.#treeChunks.labels(backend),
        treeTerminals: this.#treeTerminals.labels(backend),
        treeMaxChunks: this.#treeMaxChunks.labels(backend),
        treeInserts: this.#treeInserts.labels(backend),
        treeQueries: this.#treeQueries.labels(backend),
        treeEvictions: this.#treeEvictions.labels(backend),
        last: null,
      };
      this.#backendChildren.set(backend, s);
    }
    return s;
  }
}

/** Increment that brings a counter from total `last` to total `now`. */
function delta(last: number, now: number): number {
  return now >= last ? now - last : now;
}
