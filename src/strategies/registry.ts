/**
 * Strategy registry: maps the names accepted by `router.strategy` to factories. The router and the
 * simulator build their strategy only through {@linkcode createStrategy}, so a new strategy plugs
 * in with one {@linkcode registerStrategy} call and no change to them.
 *
 * @module
 */

import { createCostAware } from "./cost_aware.ts";
import { createDynamoCost } from "./dynamo_cost.ts";
import { createLeastLoaded } from "./least_loaded.ts";
import { createLlmdWeighted } from "./llmd_weighted.ts";
import { createPrebleE2 } from "./preble_e2.ts";
import { createPrefixAware } from "./prefix_aware.ts";
import { createRandom } from "./random.ts";
import { createRoundRobin } from "./round_robin.ts";
import { createSglangCacheAware } from "./sglang_cache_aware.ts";
import type { Strategy, StrategyFactory, StrategyParams } from "./types.ts";

const factories = new Map<string, StrategyFactory>();
const names: string[] = [];

/** Registered strategy names in registration order; grows as strategies register. */
export const STRATEGY_NAMES: readonly string[] = names;

/**
 * Adds a strategy under `name`. Throws when the name is empty or already taken: replacing a
 * strategy silently would change what an existing config means.
 */
export function registerStrategy(name: string, factory: StrategyFactory): void {
  if (name === "") throw new Error("strategy name must not be empty");
  if (factories.has(name)) throw new Error(`strategy "${name}" is already registered`);
  factories.set(name, factory);
  names.push(name);
}

/** Builds the strategy registered as `name`; throws an Error listing the valid names otherwise. */
export function createStrategy(name: string, params: StrategyParams): Strategy {
  const factory = factories.get(name);
  if (factory === undefined) {
    throw new Error(`unknown strategy "${name}"; valid: ${names.join(", ")}`);
  }
  return factory(params);
}

registerStrategy("roundrobin", createRoundRobin);
registerStrategy("random", createRandom);
registerStrategy("leastloaded", createLeastLoaded);
registerStrategy("prefixaware", createPrefixAware);
registerStrategy("costaware", createCostAware);
registerStrategy("sglang-cache-aware", createSglangCacheAware);
registerStrategy("llmd-weighted", createLlmdWeighted);
registerStrategy("dynamo-cost", createDynamoCost);
registerStrategy("preble-e2", createPrebleE2);
