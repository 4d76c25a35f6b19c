/**
 * Contracts of the router's tracing: the resolved config, the tracer and its spans, as the request
 * path sees them. The request path holds a {@link Tracer} and calls it the same way whether
 * tracing is on or off; off, it is a no-op whose spans do nothing and allocate nothing.
 *
 * @module
 */

/** Tracing settings, resolved (the config layer validates and fills defaults). */
export interface TracingConfig {
  /**
   * OTLP/HTTP base URL (`http://collector:4318`); spans go to `<endpoint>/v1/traces` as JSON.
   * Empty: tracing off.
   */
  readonly endpoint: string;
  /** Extra request headers for the collector (authentication). */
  readonly headers: Readonly<Record<string, string>>;
  /** `service.name` of the resource. */
  readonly serviceName: string;
  /** Further resource attributes (`deployment.environment`, `service.instance.id`). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** Share of new traces (no sampled-or-not parent) that are recorded, 0 to 1. */
  readonly sampleRatio: number;
  /** Most spans in one export request. */
  readonly maxBatchSize: number;
  /** Most ended spans waiting for export; more are dropped and counted. */
  readonly maxQueueSize: number;
  /** Longest wait of an ended span before its export starts, ms. */
  readonly flushIntervalMs: number;
  /** Longest wait for the collector's answer to one export request, ms. */
  readonly exportTimeoutMs: number;
  /** Retries of one batch after a retryable failure (429, 502, 503, 504, network), then dropped. */
  readonly maxRetries: number;
}

/** A span attribute value. */
export type AttrValue = string | number | boolean;

/** Attributes as a plain record. */
export type Attrs = Readonly<Record<string, AttrValue>>;

/** One span of a request: the request itself (server kind) or one upstream attempt (client). */
export interface Span {
  /** The trace's id (32 lower-case hex digits); null when tracing is off. */
  readonly traceId: string | null;
  /** Whether the span is recorded and exported. */
  readonly sampled: boolean;
  /** Sets attribute `key` (a later value replaces an earlier one); strings are cut at 256 chars. */
  set(key: string, value: AttrValue): void;
  /** Marks the span failed: `error.type = kind`, status ERROR with `message`. */
  error(kind: string, message?: string): void;
  /**
   * Ends the span, with the HTTP status when there is one (`http.response.status_code`; a server
   * span with ≥ 500, a client span with ≥ 400, is an error). Later calls do nothing.
   */
  end(status?: number | null): void;
  /** Starts a client-kind child span (an upstream attempt). */
  child(name: string, attrs?: Attrs): Span;
  /** The `traceparent` value naming this span as the parent; null when tracing is off. */
  traceparent(): string | null;
  /** The `tracestate` to send on (the client's, when valid); null when there is none. */
  tracestate(): string | null;
}

/** Where a request's trace context headers are read. `ServerRequest` is one. */
export interface HeaderSource {
  /** The value of header `name` (lower case), several fields joined with `, `; null when absent. */
  header(name: string): string | null;
}

/** Counters of the exporter, for metrics. */
export interface TracerStats {
  /** Ended spans waiting for export now. */
  readonly queued: number;
  /** Spans the collector accepted. */
  readonly exported: number;
  /** Spans dropped because the queue was full (or the tracer shut down). */
  readonly droppedQueueFull: number;
  /** Spans dropped because their export failed for good (retries spent, or not retryable). */
  readonly droppedExportFailed: number;
  /** Spans the collector answered as rejected (OTLP partial success). */
  readonly rejected: number;
  /** Export requests that failed (each try counts). */
  readonly failedRequests: number;
}

/** The router's tracer; see `createTracer`. */
export interface Tracer {
  /** Whether spans are made at all (false: the no-op tracer). */
  readonly enabled: boolean;
  /**
   * Starts the request's server-kind span, continuing the client's trace when its `traceparent`
   * is valid, else starting a new one.
   */
  startRequest(headers: HeaderSource, name: string, attrs?: Attrs): Span;
  /** Exporter counters. */
  stats(): TracerStats;
  /**
   * Exports what is queued (at most `timeoutMs`, default the export timeout) and stops the
   * exporter's timers; spans ended later are dropped.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}
