/**
 * The router's Prometheus metrics, on a registry owned by each `RouterMetrics` instance (never
 * prom-client's global default registry, so several routers can live in one process, as they do
 * in tests).
 *
 * Names and labels follow the design brief; docs/metrics.md lists every family. Every label is
 * bounded: `strategy` and `reason` come from code, `backend` is a configured (or discovered)
 * worker or `none`, `endpoint` the route name of the endpoint table (never the raw path), `model` a
 * model some worker is known to serve or `other`/`none` (the router layer chooses, see
 * `src/router/request_metrics.ts`), `cause` one of {@link REQUEST_CAUSES}, `status` the exact HTTP
 * status code (a bounded set: the router forwards what the upstream answered or one of its own
 * few codes).
 *
 * Every answer the router gives is counted once in `router_requests_total` (proxied or not); the
 * latency histograms only see answers of the proxy pipeline.
 *
 * Hot path: `observeRequest` runs once per request. prom-client's `labels(...)` builds a label
 * object and a bound function on every call, so the children are built once per label combination
 * and kept in maps keyed by the joined label values; a request then costs two or three map lookups
 * and the sample updates themselves.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { BreakerState } from "../backends/circuit_breaker.ts";
import type { PrefixIndexStats } from "../prefix/types.ts";
import { EngineSignalMetrics } from "./engine_signal_metrics.ts";
import { EventLoopLag, registerProcessMetrics } from "./process_metrics.ts";

/**
 * Why the router gave the answer it gave, the `cause` label of `router_requests_total`:
 * - `proxied`: a worker's answer, passed on (whatever its status);
 * - `router_error`: the router's own 502/503/504 (no worker, every attempt failed, shutting down);
 * - `limit`: 400/408/413 from the request limits and bad bodies (too large, too slow, not JSON,
 *   too deep, bad fields, model required), and flow control's refusals: 400 for an unknown
 *   priority, 429 (queue full, displaced, waited too long, tenant rate or concurrency limit);
 * - `auth`: 401, a missing or wrong API key;
 * - `not_found`: 404, no route for the path or no worker serves the model;
 * - `method`: 405, a method the path does not take;
 * - `client_gone`: 499, the client left before its answer was over;
 * - `local`: an endpoint the router answers itself (`/healthz`, `/readyz`, `/metrics`,
 *   `/v1/models`, `/debug/*`), whatever its status;
 * - `internal`: 500, a defect in the router (a thrown error that is not a `RouterError`).
 */
export const REQUEST_CAUSES = [
  "proxied",
  "router_error",
  "limit",
  "auth",
  "not_found",
  "method",
  "client_gone",
  "local",
  "internal",
] as const;

/** One of {@link REQUEST_CAUSES}. */
export type RequestCause = typeof REQUEST_CAUSES[number];

/** The values of the `state` label of `router_backend_breaker_state`. */
export const BREAKER_STATES = ["closed", "open", "half_open"] as const;

/** Numeric codes of `router_breaker_state`: 0 closed, 1 open, 2 half-open. */
const BREAKER_CODE: Readonly<Record<BreakerState, number>> = {
  closed: 0,
  open: 1,
  "half-open": 2,
};

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

/**
 * Buckets of `router_time_to_first_byte_seconds` and `router_time_to_first_token_seconds`: a long
 * uncached prefill takes seconds.
 */
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

/** One answer of the router, as `observeRequest` records it. */
export interface RequestObservation {
  /** Strategy name. */
  readonly strategy: string;
  /** Worker id that served the request (the last one tried), or `none`. */
  readonly backend: string;
  /** Routing reason, as sent in `X-Router-Reason`, or `none`. */
  readonly reason: string;
  /** HTTP status the client received (499 when it left first). */
  readonly status: number;
  /** Why the router answered as it did. */
  readonly cause: RequestCause;
  /** Route name from the endpoint table (`/v1/chat/completions`), or `none` for no route. */
  readonly endpoint: string;
  /** A model some worker serves, `other` for any other name, `none` when none was read. */
  readonly model: string;
  /** Whether the client asked for a stream (`stream: true`). */
  readonly stream: boolean;
  /** Whole request, seconds; null for an answer outside the proxy pipeline (not observed). */
  readonly durationS: number | null;
  /** Time to the first response byte sent to the client, seconds; null when none was sent. */
  readonly ttfbS: number | null;
  /** Time to the first generated token of a stream, seconds; null when none (or not a stream). */
  readonly ttftS: number | null;
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
  /** `router_backend_breaker_state` children, in {@link BREAKER_STATES} order. */
  readonly breakerStates: readonly Gauge.Internal<string>[];
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

/** Children of the latency histograms of one (strategy, backend, endpoint, model, stream). */
interface LatencySeries {
  readonly duration: Histogram.Internal<string>;
  readonly ttfb: Histogram.Internal<string>;
  readonly ttft: Histogram.Internal<string>;
}

/** The router's metrics on a registry of their own. */
export class RouterMetrics {
  /** The registry holding every metric of this instance. */
  readonly registry: Registry = new Registry();
  /** The engines' own load signals per worker (`engine_signal_metrics.ts`). */
  readonly engine: EngineSignalMetrics = new EngineSignalMetrics(this.registry);

  readonly #requests: Counter<string>;
  readonly #duration: Histogram<string>;
  readonly #ttfb: Histogram<string>;
  readonly #ttft: Histogram<string>;
  readonly #matchChunks: Histogram<string>;
  readonly #cacheHits: Counter<string>;
  readonly #cacheHit: Counter.Internal;
  readonly #cacheMiss: Counter.Internal;
  readonly #predictionError: Histogram<string>;
  readonly #bytes: Counter<string>;
  readonly #inflight: Gauge<string>;
  readonly #up: Gauge<string>;
  readonly #breaker: Gauge<string>;
  readonly #breakerState: Gauge<string>;
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
  readonly #lag = new EventLoopLag();

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
      "Answers of the router, each counted once: by strategy, backend, routing reason, HTTP status, cause, endpoint and model",
      ["strategy", "backend", "reason", "status", "cause", "endpoint", "model"],
    );
    this.#duration = histogram(
      "router_request_duration_seconds",
      "Whole request time as the router saw it (proxy pipeline answers), seconds",
      ["strategy", "backend", "endpoint", "model"],
      DURATION_BUCKETS_S,
    );
    this.#ttfb = histogram(
      "router_time_to_first_byte_seconds",
      "Time from request arrival to the first response byte sent to the client (stream: whether the client asked for a stream), seconds",
      ["strategy", "backend", "stream"],
      TTFB_BUCKETS_S,
    );
    this.#ttft = histogram(
      "router_time_to_first_token_seconds",
      "Time from request arrival to the first generated token of a streamed answer, seconds",
      ["endpoint", "model"],
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
      "Proxied requests whose chosen worker held part of their prefix as the router predicted it (hit: match > 0 chunks) or none (miss)",
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
      "Circuit breaker state as a number: 0 closed, 1 open, 2 half-open",
      ["backend"],
    );
    this.#breakerState = gauge(
      "router_backend_breaker_state",
      "Circuit breaker state: 1 for the state the backend's breaker is in, 0 for the others",
      ["backend", "state"],
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
    registerProcessMetrics(this.registry, this.#lag);
  }

  /** Starts the event-loop lag sampler (the router's `start`); a second call does nothing. */
  start(): void {
    this.#lag.start();
  }

  /** Stops the event-loop lag sampler (the router's `stop`). */
  stop(): void {
    this.#lag.stop();
  }

  /** Content type of `render()`'s output, for the `/metrics` response. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Records one answer (see {@link RequestObservation}). */
  observeRequest(o: RequestObservation): void {
    const reqKey = o.strategy + SEP + o.backend + SEP + o.reason + SEP + o.status + SEP + o.cause +
      SEP + o.endpoint + SEP + o.model;
    let req = this.#requestChildren.get(reqKey);
    if (req === undefined) {
      req = this.#requests.labels(
        o.strategy,
        o.backend,
        o.reason,
        String(o.status),
        o.cause,
        o.endpoint,
        o.model,
      );
      this.#requestChildren.set(reqKey, req);
    }
    req.inc();
    if (o.durationS === null) return;

    const stream = o.stream ? "true" : "false";
    const latKey = o.strategy + SEP + o.backend + SEP + o.endpoint + SEP + o.model + SEP + stream;
    let lat = this.#latencyChildren.get(latKey);
    if (lat === undefined) {
      lat = {
        duration: this.#duration.labels(o.strategy, o.backend, o.endpoint, o.model),
        ttfb: this.#ttfb.labels(o.strategy, o.backend, stream),
        ttft: this.#ttft.labels(o.endpoint, o.model),
      };
      this.#latencyChildren.set(latKey, lat);
    }
    lat.duration.observe(o.durationS);
    if (o.ttfbS !== null) lat.ttfb.observe(o.ttfbS);
    if (o.ttftS !== null && o.stream) lat.ttft.observe(o.ttftS);

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

  /** Sets `backend`'s breaker state: the numeric gauge and the labelled one. */
  setBreakerState(backend: string, state: BreakerState): void {
    const s = this.#backend(backend);
    s.breaker.set(BREAKER_CODE[state]);
    const at = state === "half-open" ? 2 : state === "open" ? 1 : 0;
    for (let i = 0; i < s.breakerStates.length; i++) s.breakerStates[i].set(i === at ? 1 : 0);
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
    s.treeInserts.inc(counterDelta(last.inserts, stats.inserts));
    s.treeQueries.inc(counterDelta(last.queries, stats.queries));
    s.treeEvictions.inc(counterDelta(last.evictions, stats.evictions));
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
    for (const state of BREAKER_STATES) this.#breakerState.remove(backend, state);
  }

  #backend(backend: string): BackendSeries {
    let s = this.#backendChildren.get(backend);
    if (s === undefined) {
      s = {
        bytes: this.#bytes.labels(backend),
        inflight: this.#inflight.labels(backend),
        up: this.#up.labels(backend),
        breaker: this.#breaker.labels(backend),
        breakerStates: BREAKER_STATES.map((st) => this.#breakerState.labels(backend, st)),
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

/**
 * Increment that brings a counter from total `last` to total `now`; a smaller `now` (a new source
 * counting from zero) counts whole, so the counter never goes back.
 */
export function counterDelta(last: number, now: number): number {
  return now >= last ? now - last : now;
}
