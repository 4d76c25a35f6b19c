/**
 * The router's Prometheus metrics.
 *
 * @module
 */

export {
  DURATION_BUCKETS_S,
  MATCH_CHUNK_BUCKETS,
  PREDICTION_ERROR_BUCKETS,
  type RequestObservation,
  RouterMetrics,
  TTFB_BUCKETS_S,
} from "./metrics.ts";
