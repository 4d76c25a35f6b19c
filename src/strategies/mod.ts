/**
 * Routing strategies: the contracts, the registry that builds a strategy from its config name,
 * and the built-in strategies (`roundrobin`, `random`, `leastloaded`, `prefixaware`).
 *
 * @module
 */

export type * from "./types.ts";
export { createStrategy, registerStrategy, STRATEGY_NAMES } from "./registry.ts";
export { createRoundRobin, ROUND_ROBIN_REASON, RoundRobinStrategy } from "./round_robin.ts";
export { createRandom, RANDOM_REASON, RandomStrategy } from "./random.ts";
export {
  createLeastLoaded,
  LEAST_LOADED_REASON,
  LeastLoadedStrategy,
  pickLeastLoaded,
} from "./least_loaded.ts";
export {
  createPrefixAware,
  FALLBACK_REASON,
  LONGEST_PREFIX_REASON,
  PrefixAwareStrategy,
  SPILLED_FALLBACK_REASON,
  SPILLED_REASON,
} from "./prefix_aware.ts";
