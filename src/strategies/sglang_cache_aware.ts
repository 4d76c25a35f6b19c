/**
 * `sglang-cache-aware`: the SGLang router's `cache_aware` policy (sgl-router / sgl-model-gateway),
 * written from its documented behaviour, for side-by-side comparison.
 *
 * Rule, over the admitted workers with `load` = the router's in-flight count:
 * 1. Imbalanced when both `max − min > balance_abs_threshold` (32) and
 *    `max > min × balance_rel_threshold` (1.1) → the least-loaded worker, reason `shortest-queue`.
 * 2. Else match rate = best match ÷ request chunks (SGLang: matched characters ÷ request
 *    characters). Above `cache_threshold` (0.5; strictly greater, as SGLang compares) → the worker
 *    with the longest match, reason `cache-match`; equal longest matches go to the less loaded one
 *    (current gateway: "pressure-select" among the tenants holding the prefix), then at random.
 * 3. Else the least-loaded worker, reason `cache-miss-least-loaded`. This is what the current
 *    sgl-model-gateway does; the first sgl-router took the worker with the smallest tree instead
 *    (fewest cached characters). The issue asks for least-loaded, and the gateway agrees.
 * Least-loaded ties are broken at random (SGLang takes the first of equals; a positional choice
 * was measured to hurt here, see DESIGN.md).
 *
 * Deviations: SGLang keeps one approximate radix tree over characters with workers as tenants
 * and evicts it on a timer (`eviction_interval_secs`, `max_tree_size`); here each worker's prefix
 * index over 32-byte chunks (LRU within `kv_budget`) answers the same question.
 *
 * Defaults: `CacheAwareConfig::default()` in sgl-model-gateway `src/policies/mod.rs`
 * (0.5 / 32 / 1.1). The gateway's CLI flags default to 0.3 / 64 / 1.5; pass them as options to
 * compare with a CLI-launched gateway.
 *
 * Cost: O(n) per pick, at most one rng draw, no allocation besides the decision.
 *
 * @module
 */

import { pickLeastLoaded } from "./least_loaded.ts";
import { pickLeastLoadedWithMatch } from "./tie_break.ts";
import { type OptionSpec, resolveOptions } from "./strategy_options.ts";
import type { Decision, PickContext, Strategy, StrategyParams } from "./types.ts";

/** Reason when the load is imbalanced. */
export const SHORTEST_QUEUE_REASON = "shortest-queue";
/** Reason when the match rate is above the cache threshold. */
export const CACHE_MATCH_REASON = "cache-match";
/** Reason when it is not. */
export const CACHE_MISS_REASON = "cache-miss-least-loaded";

/** Options of `sglang-cache-aware` and their published defaults. */
export const SGLANG_OPTIONS = {
  cache_threshold: {
    default: 0.5,
    max: 1,
    doc: "match rate (matched ÷ request chunks) above which the longest match is taken",
  },
  balance_abs_threshold: {
    default: 32,
    doc: "imbalanced needs max − min in-flight above this",
  },
  balance_rel_threshold: {
    default: 1.1,
    doc: "imbalanced also needs max in-flight above min × this",
  },
} as const satisfies Record<string, OptionSpec>;

/** SGLang's cache-aware policy with its balance gate. */
export class SglangCacheAwareStrategy implements Strategy {
  readonly name = "sglang-cache-aware";
  readonly usesPrefix = true;
  readonly cacheThreshold: number;
  readonly balanceAbsThreshold: number;
  readonly balanceRelThreshold: number;

  /** Throws a RangeError on an unknown or out-of-range option. */
  constructor(params: StrategyParams) {
    const o = resolveOptions("sglang-cache-aware", SGLANG_OPTIONS, params.options);
    this.cacheThreshold = o.cache_threshold;
    this.balanceAbsThreshold = o.balance_abs_threshold;
    this.balanceRelThreshold = o.balance_rel_threshold;
  }

  pick(ctx: PickContext): Decision | undefined {
    const cs = ctx.candidates;
    const n = cs.length;
    if (n === 0) return undefined;
    let min = cs[0].inflight;
    let max = min;
    let bestMatch = cs[0].match;
    for (let i = 1; i < n; i++) {
      const c = cs[i];
      if (c.inflight < min) min = c.inflight;
      if (c.inflight > max) max = c.inflight;
      if (c.match > bestMatch) bestMatch = c.match;
    }
    if (max - min > this.balanceAbsThreshold && max > min * this.balanceRelThreshold) {
      return { candidate: pickLeastLoaded(cs, ctx.rng)!, reason: SHORTEST_QUEUE_REASON };
    }
    const rate = ctx.requestChunks > 0 ? bestMatch / ctx.requestChunks : 0;
    if (bestMatch > 0 && rate > this.cacheThreshold) {
      return {
        candidate: pickLeastLoadedWithMatch(cs, bestMatch, ctx.rng)!,
        reason: CACHE_MATCH_REASON,
      };
    }
    return { candidate: pickLeastLoaded(cs, ctx.rng)!, reason: CACHE_MISS_REASON };
  }
}

/** Factory for the registry. */
export function createSglangCacheAware(params: StrategyParams): Strategy {
  return new SglangCacheAwareStrategy(params);
}
