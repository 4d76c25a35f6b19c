/**
 * Backend state: per-worker circuit breakers, active health checks, and the engines' own load
 * signals read from their `/metrics`.
 *
 * @module
 */

export {
  BREAKER_STATE_CODE,
  type BreakerState,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from "./circuit_breaker.ts";
export { HealthChecker, type HealthCheckerOptions, type HealthTarget } from "./health_checker.ts";
export {
  DEFAULT_MAX_METRICS_BYTES,
  EMPTY_SIGNALS,
  type EngineFigures,
  type EngineKind,
  EngineMetricsParser,
  type EngineSignals,
  fetchEngineSignals,
  type FetchSignalsOptions,
  figuresFor,
  parseEngineMetrics,
} from "./engine_metrics.ts";
export {
  type EngineReading,
  EngineScraper,
  type EngineScraperOptions,
  type ScrapeTarget,
} from "./engine_scraper.ts";
