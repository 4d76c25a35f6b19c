/**
 * The fully-resolved router configuration. `loadConfig` turns YAML plus environment overrides into
 * this shape or reports every error at once; nothing downstream sees a missing value.
 * Durations are in milliseconds, sizes in bytes, budgets in chunks.
 *
 * @module
 */

import type { DiscoveryConfig, WorkerTemplate } from "../discovery/section.ts";
import type { FlowConfig } from "../flow/types.ts";
import type { StrategyParams } from "../strategies/types.ts";
import type { SyncConfig } from "../sync/section.ts";
import type { TokenizerSpec } from "../tokenize/section.ts";
import type { TracingConfig } from "../telemetry/types.ts";

export type { DiscoveryConfig, FlowConfig, SyncConfig, TokenizerSpec, WorkerTemplate };

/** Log verbosity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One upstream engine. */
export interface WorkerConfig {
  /** Unique id, used in headers and metric labels. */
  readonly id: string;
  /** Base URL, `http(s)://host:port` (no trailing slash, no `/v1`). */
  readonly url: string;
  /** Prefix index capacity in chunks; 0 = bounded by `router.index_max_bytes` only. */
  readonly kvBudget: number;
  /** Models (and adapters) the worker serves; null = learned from its `/v1/models`. */
  readonly models: readonly string[] | null;
  /** Requests in flight at most; 0 = no cap. A worker at its cap is not admitted. */
  readonly maxInflight: number;
  /** Whole-request timeout in ms: headers, body and stream together; 0 = none. */
  readonly timeoutMs: number;
  /**
   * Time allowed to connect, ms; 0 = off. Deno's `fetch` has no connect phase of its own, so the
   * router enforces it by dialing the worker itself when no response headers came within this
   * time (see `src/proxy/deadlines.ts`).
   */
  readonly connectTimeoutMs: number;
  /** Time from sending the request to the first response body byte, ms; 0 = off. */
  readonly ttfbTimeoutMs: number;
  /** Longest pause between two body chunks once the body started, ms; 0 = off. */
  readonly idleTimeoutMs: number;
  /** Consecutive failures that open the breaker. */
  readonly breakerThreshold: number;
  /** Time the breaker stays open before one probe is let through, ms. */
  readonly breakerCooldownMs: number;
  /** Bearer token sent upstream, or null. */
  readonly apiKey: string | null;
  /** The engine's metrics URL (`health.scrape_metrics`); null = `<url>/metrics`. */
  readonly metricsUrl: string | null;
  /** precise: the engine's KV-event endpoint (`{host}` not yet replaced), or null. */
  readonly kvEvents: string | null;
  /** precise: the engine's replay endpoint, or null. */
  readonly kvEventsReplay: string | null;
  /** precise: the topic of the engine's events ("" = any). */
  readonly kvEventsTopic: string;
}

/** The whole configuration. */
export interface RouterConfig {
  readonly server: {
    /** Listen address `host:port`; host may be empty (all interfaces). */
    readonly addr: string;
    /** Time allowed to read a request body, ms. */
    readonly readTimeoutMs: number;
    /** Time in-flight streams get to finish on SIGTERM, ms. */
    readonly shutdownTimeoutMs: number;
    /** Largest request body accepted, bytes (413 above it). */
    readonly maxBodyBytes: number;
    /** Largest request header block accepted on proxied routes, bytes (400 above it). */
    readonly maxHeaderBytes: number;
    /** Deepest JSON nesting accepted in a request body (400 deeper). */
    readonly maxJsonDepth: number;
    /** Time a client gets to send a whole request head, ms. */
    readonly headerTimeoutMs: number;
    /** A kept-alive client connection with no request is closed after this, ms. */
    readonly idleTimeoutMs: number;
    /** Client connections open at most. */
    readonly maxConnections: number;
    /** On SIGTERM: time /readyz answers 503 while the listener still serves, ms. */
    readonly drainDelayMs: number;
  };
  readonly router: {
    readonly strategy: string;
    readonly chunkSize: number;
    readonly minMatchChunks: number;
    /** 0 = valve off. */
    readonly saturationInflight: number;
    /** Retries on another worker while no byte reached the client. */
    readonly maxRetries: number;
    /** Seed of the routing RNG; null = random per process. */
    readonly seed: number | null;
    /**
     * `router.strategy_options`: strategy-specific numeric options by their snake_case name
     * (`cache_threshold`), passed to `createStrategy` as `options`; `{}` = the strategy's
     * published defaults. The loader builds the strategy once with them, so a name the strategy
     * does not know or a value out of range is a config error.
     */
    readonly strategyOptions: Readonly<Record<string, number>>;
    /**
     * `router.session_header`: request header (lower case) whose value pins a session to its
     * worker while that worker is admitted; `""` = session affinity off.
     */
    readonly sessionHeader: string;
    /**
     * `router.upstream_client`: how requests reach `http://` workers. `native` (default): the
     * router's keep-alive HTTP/1.1 client (`src/proxy/h1_client.ts`, ADR 0005); `fetch`: Deno's
     * `fetch`. `https://` workers always go through `fetch`.
     */
    readonly upstreamClient: "native" | "fetch";
    /** Whether an attempt that timed out after it was sent may be retried on another worker. */
    readonly retryTimeouts: boolean;
    /** Bytes all workers' prefix indexes may use together. */
    readonly indexMaxBytes: number;
    /** `approximate` (routing-text chunks) or `precise` (the engines' KV events, token blocks). */
    readonly index: "approximate" | "precise";
    /** precise: the engines' KV block size, tokens. */
    readonly blockSize: number;
    /** precise: lifetime of a routed request's predicted blocks, ms. */
    readonly predictTtlMs: number;
    /** Public model name → served model name. */
    readonly modelAliases: Readonly<Record<string, string>>;
    /** Extra paths proxied to the least-loaded worker serving the model. */
    readonly passthroughPaths: readonly string[];
  };
  readonly health: {
    /** Active health check period, ms; 0 = off. */
    readonly intervalMs: number;
    /** Path probed on each worker (`/health` or `/v1/models`). */
    readonly path: string;
    /** Probe timeout, ms. */
    readonly timeoutMs: number;
    /** Whether each engine's Prometheus /metrics is read for its load signals. */
    readonly scrapeMetrics: boolean;
    /** How often engine metrics are read, ms. */
    readonly scrapeIntervalMs: number;
  };
  /**
   * The workers. With `discovery.mode: static` the config file's list (never empty); with `dns` or
   * `kubernetes` empty in the file, and filled from discovery at run time
   * (`withDiscoveredWorkers`).
   */
  readonly workers: readonly WorkerConfig[];
  /** Replica sync through Redis (`sync:`); `redis: null` = off. */
  readonly sync: SyncConfig;
  /**
   * Where workers come from (`discovery:`). `worker` is `discovery.worker` resolved with the same
   * rules and defaults as a `workers[]` entry: the settings of every discovered worker.
   */
  readonly discovery: DiscoveryConfig & { readonly worker: WorkerTemplate };
  /**
   * Flow control (`flow:`): the router queue (priority classes, fairness across tenants, max
   * wait) and per-tenant limits; null (the section absent) = off: a request that finds every
   * worker full is answered 503 at once.
   */
  readonly flow: FlowConfig | null;
  readonly logging: {
    readonly level: LogLevel;
    readonly format: "text" | "json";
  };
  readonly metrics: {
    readonly enabled: boolean;
    /** Separate admin listener `host:port` for /metrics, or null to serve on the main port. */
    readonly addr: string | null;
  };
  /** OpenTelemetry tracing (`tracing:`); `endpoint` "" = off. */
  readonly tracing: TracingConfig;
  /** precise mode: per model, its tokenizer files (`tokenizers:`); empty = engines' /tokenize. */
  readonly tokenizers: readonly TokenizerSpec[];
  readonly auth: {
    /**
     * Keys clients must present as `Authorization: Bearer <key>`: `auth.api_keys` (or
     * `ROUTER_AUTH_API_KEYS`) together with the lines of `auth.api_keys_file`. Empty = no auth.
     */
    readonly apiKeys: readonly string[];
    /** File the keys were partly read from, re-read on reload; null = none. */
    readonly apiKeysFile: string | null;
    /** Whether `/metrics` needs a key too (`/healthz` and `/readyz` never do). */
    readonly protectMetrics: boolean;
    /** Whether the client's `Authorization` header travels upstream (a worker `api_key` wins). */
    readonly forwardClientAuth: boolean;
  };
}

/** Options of `parseConfig`, `loadConfig`, `configFromWorkers` and `configSchema`. */
export interface ParseOptions {
  /** Valid `router.strategy` names (the strategy registry's); absent: any non-empty string. */
  readonly strategies?: readonly string[];
  /** Name of the text's origin (a file path), shown in the error message. */
  readonly source?: string;
  /**
   * The strategy registry's `createStrategy`. When given, the strategy is built once with the
   * config's parameters and `router.strategy_options`, and what it rejects is reported at
   * `router.strategy_options`; absent: the options are only checked to be numbers.
   */
  readonly createStrategy?: (name: string, params: StrategyParams) => unknown;
  /**
   * `ROUTER_*` variables the entry point reads itself (besides `ROUTER_CONFIG`, always allowed):
   * never reported as a mistyped override, however close to one they are.
   */
  readonly ownEnv?: readonly string[];
}
