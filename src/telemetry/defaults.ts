/**
 * Defaults of the tracing settings: OpenTelemetry's batch span processor and OTLP exporter
 * defaults (`OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_TIMEOUT`), tracing off.
 *
 * @module
 */

import type { TracingConfig } from "./types.ts";

/** The settings the config layer fills in for keys not given. */
export const TRACING_DEFAULTS: TracingConfig = Object.freeze({
  endpoint: "",
  headers: Object.freeze({}),
  serviceName: "llm-cache-router",
  resourceAttributes: Object.freeze({}),
  sampleRatio: 1,
  maxBatchSize: 512,
  maxQueueSize: 2048,
  flushIntervalMs: 5000,
  exportTimeoutMs: 10_000,
  maxRetries: 5,
});
