/**
 * Tracing: OpenTelemetry spans for each request and each upstream attempt, W3C trace context in
 * and out, export as OTLP/HTTP JSON. Off by default (`createTracer(null)` is a no-op).
 *
 * Attribute names the router sets (OpenTelemetry semantic conventions where one exists):
 * - request span (server): `http.request.method`, `url.path`, `router.strategy`, `router.worker`,
 *   `router.reason`, `router.match_chunks`, `gen_ai.request.model`, `router.attempts`,
 *   `http.response.status_code` (set by `end(status)`), `error.type` (by `error` or a 5xx end).
 * - attempt span (client): `router.worker`, `server.address`, `router.attempt` (0 for the first),
 *   `router.attempt.outcome` (`answered`, `failed`, `client_gone`, `shutdown`), `error.type` (the
 *   failure kind: `connect-error`, `ttfb-timeout`, `status-5xx` …), `http.response.status_code`.
 *
 * @module
 */

export type {
  Attrs,
  AttrValue,
  HeaderSource,
  Span,
  Tracer,
  TracerStats,
  TracingConfig,
} from "./types.ts";
export {
  createTracer,
  NOOP_TRACER,
  type TracerOptions,
  tracesUrl,
  withTraceHeaders,
} from "./tracer.ts";
export { TRACING_DEFAULTS } from "./defaults.ts";
export { parseTraceparent, parseTracestate } from "./trace_context.ts";
