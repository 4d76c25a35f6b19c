/**
 * The router's Prometheus metrics.
 *
 * @module
 */

export {
  BREAKER_STATES,
  DURATION_BUCKETS_S,
  MATCH_CHUNK_BUCKETS,
  PREDICTION_ERROR_BUCKETS,
  REQUEST_CAUSES,
  type RequestCause,
  type RequestObservation,
  RouterMetrics,
  TTFB_BUCKETS_S,
} from "./metrics.ts";
export { EventLoopLag, LAG_WINDOW, registerProcessMetrics } from "./process_metrics.ts";
