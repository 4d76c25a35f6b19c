/**
 * The router: request handler, worker pool, routing step and server lifecycle.
 * @module
 */
export { type ReloadSummary, Router, type RouterDeps, RouterShutdown } from "./router.ts";
export { jsonTooDeep, SCAN_MIN_BYTES, valueTooDeep } from "./limits.ts";
export { ApiKeyAuth, equalsFixedTime } from "./auth.ts";
export { type FailureKind, FaultMetrics } from "./fault_metrics.ts";
export { ListenError, type RunningRouter, type StartOptions, startRouter } from "./server.ts";
export { Backend } from "./pool.ts";
export {
  candidatesFor,
  decide,
  recordDecision,
  type RouteInput,
  type RouteTarget,
} from "./select.ts";
export { Logger, silentLogger } from "./logger.ts";
