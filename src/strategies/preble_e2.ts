/**
 * `preble-e2`: the E2 (exploitation + exploration) rule of Preble's global scheduler
 * (Srivatsa et al., "Preble: Efficient Distributed Prompt Scheduling for LLM Serving",
 * arXiv 2407.00023, ICLR 2025), written from the paper, for side-by-side comparison.
 *
 * Rule: take the longest match over the admitted workers, in tokens
 * (`match × chunkSize ÷ bytesPerToken`), against the request's tokens still to compute there.
 * - Cached part longer than the new part (`matchTokens > requestTokens − matchTokens`) → exploit:
 *   the worker with that match; several → the least loaded, then at random. Reason
 *   `exploit-longest-prefix`.
 * - Else explore: the least-loaded worker (fewest in flight, ties at random). Reason
 *   `explore-least-loaded`.
 *
 * Simplifications, documented rather than hidden: Preble's exploration picks the GPU with the
 * lowest cost = its recent load (prefill and decode time over a window) + the eviction cost of
 * making room + this request's prefill there; the router's in-flight count stands in for all of
 * it. Preble's post-assignment rebalancing, prefix replication for hot prefixes and its local
 * (per-GPU) fair scheduler are out of a router's reach. E2 has no tuning parameter.
 *
 * Cost: O(n) per pick, at most one rng draw, no allocation besides the decision.
 *
 * @module
 */

import { matchTokensOf, requestTokensOf } from "./cost_model.ts";
import { pickLeastLoaded } from "./least_loaded.ts";
import { pickLeastLoadedWithMatch } from "./tie_break.ts";
import { resolveOptions } from "./strategy_options.ts";
import type { Decision, PickContext, Strategy, StrategyParams } from "./types.ts";

/** Reason when the cached part outweighs the new part. */
export const EXPLOIT_REASON = "exploit-longest-prefix";
/** Reason otherwise. */
export const EXPLORE_REASON = "explore-least-loaded";

/** Preble's E2 rule. */
export class PrebleE2Strategy implements Strategy {
  readonly name = "preble-e2";
  readonly usesPrefix = true;

  /** Throws a RangeError when given any option (E2 has none). */
  constructor(params: StrategyParams) {
    resolveOptions("preble-e2", {}, params.options);
  }

  pick(ctx: PickContext): Decision | undefined {
    const cs = ctx.candidates;
    const n = cs.length;
    if (n === 0) return undefined;
    let best = cs[0].match;
    for (let i = 1; i < n; i++) if (cs[i].match > best) best = cs[i].match;
    const tokens = requestTokensOf(ctx);
    const cached = matchTokensOf(ctx, best, tokens);
    if (best > 0 && cached > tokens - cached) {
      return { candidate: pickLeastLoadedWithMatch(cs, best, ctx.rng)!, reason: EXPLOIT_REASON };
    }
    return { candidate: pickLeastLoaded(cs, ctx.rng)!, reason: EXPLORE_REASON };
  }
}

/** Factory for the registry. */
export function createPrebleE2(params: StrategyParams): Strategy {
  return new PrebleE2Strategy(params);
}
