/**
 * The fully-resolved router configuration. `loadConfig` turns YAML plus environment overrides into
 * this shape or reports every error at once; nothing downstream sees a missing value.
 * Durations are in milliseconds, sizes in bytes, budgets in chunks.
 *
 * @module
 */

/** Log verbosity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One upstream engine. */
export interface WorkerConfig {
  /** Unique id, used in headers and metric labels. */
  readonly id: string;
  /** Base URL, `http(s)://host:port` (no trailing slash, no `/v1`). */
  readonly url: string;
  /** Prefix index capacity in chunks; 0 = unbounded. */
  readonly kvBudget: number;
  /** Requests in flight at most; 0 = no cap. A worker at its cap is not admitted. */
  readonly maxInflight: number;
  /** Whole-request timeout in ms. */
  readonly timeoutMs: number;
  /** Consecutive failures that open the breaker. */
  readonly breakerThreshold: number;
  /** Time the breaker stays open before one probe is let through, ms. */
  readonly breakerCooldownMs: number;
  /** Bearer token sent upstream, or null. */
  readonly apiKey: string | null;
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
    /** Largest request body accepted, bytes. */
    readonly maxBodyBytes: number;
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
  };
  readonly health: {
    /** Active health check period, ms; 0 = off. */
    readonly intervalMs: number;
    /** Path probed on each worker (`/health` or `/v1/models`). */
    readonly path: string;
    /** Probe timeout, ms. */
    readonly timeoutMs: number;
  };
  readonly workers: readonly WorkerConfig[];
  readonly logging: {
    readonly level: LogLevel;
    readonly format: "text" | "json";
  };
  readonly metrics: {
    readonly enabled: boolean;
    /** Separate admin listener `host:port` for /metrics, or null to serve on the main port. */
    readonly addr: string | null;
  };
}
