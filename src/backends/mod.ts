/**
 * Backend state: per-worker circuit breakers and active health checks.
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
