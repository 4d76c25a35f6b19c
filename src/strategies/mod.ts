/**
 * Routing strategies: the contracts, the registry that builds a strategy from its config name,
 * and the built-in strategies: `roundrobin`, `random`, `leastloaded`, `prefixaware`, the cost
 * model `costaware`, and the peers' published rules `sglang-cache-aware`, `llmd-weighted`,
 * `dynamo-cost` and `preble-e2` (docs/strategies.md).
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
export {
  COST_AWARE_OPTIONS,
  CostAwareStrategy,
  createCostAware,
  MIN_COST_REASON,
} from "./cost_aware.ts";
export {
  A100_7B_PRIORS,
  assumedLoad,
  DEFAULT_BYTES_PER_TOKEN,
  engineExtraMs,
  type EnginePriors,
  estimateTtftMs,
  KV_PREEMPTION_RISK_FROM,
  matchTokensOf,
  queuedDelayMs,
  requestTokensOf,
} from "./cost_model.ts";
export {
  CACHE_MATCH_REASON,
  CACHE_MISS_REASON,
  createSglangCacheAware,
  SGLANG_OPTIONS,
  SglangCacheAwareStrategy,
  SHORTEST_QUEUE_REASON,
} from "./sglang_cache_aware.ts";
export {
  createLlmdWeighted,
  kvUsage,
  LLMD_OPTIONS,
  LlmdWeightedStrategy,
  MAX_SCORE_REASON,
} from "./llmd_weighted.ts";
export {
  createDynamoCost,
  DYNAMO_OPTIONS,
  DynamoCostStrategy,
  MIN_KV_COST_REASON,
} from "./dynamo_cost.ts";
export { createPrebleE2, EXPLOIT_REASON, EXPLORE_REASON, PrebleE2Strategy } from "./preble_e2.ts";
export { type OptionSpec, resolveOptions } from "./strategy_options.ts";
export { engineWaiting, freshEngine } from "./engine_load.ts";
