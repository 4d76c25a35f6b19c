/**
 * `costaware`: send the request where its first token is predicted to come soonest.
 *
 * Rule: for each admitted worker estimate the time to first token with the model of
 * `cost_model.ts`:
 *
 *   ttft = [busy] × decodeStepMs / 2 + stepOverheadMs + decoding × decodeMsPerSeq
 *          + (pendingPrefillTokens + requestTokens − match × chunkSize ÷ bytesPerToken)
 *            ÷ prefillTokensPerMs
 *
 * and pick the minimum; candidates within `tie_epsilon` (5%) of it are near-ties, one of which is
 * drawn uniformly with the injected rng (predictions are not that precise, and a fixed tie-break
 * sends every burst to the same worker). Reason `min-cost`.
 *
 * The per-worker figures come from `Candidate.load`, filled by the router's `LoadTracker`, which
 * learns each worker's rates from the TTFTs and `cached_tokens` it observes; there is no threshold
 * and no valve: a long cached prefix wins exactly while the time it saves exceeds the queue it
 * joins. A candidate without `load` is costed by `assumedLoad` (every in-flight request counted as
 * a pending prefill as large as this request: spreads rather than piles).
 *
 * Options: `tie_epsilon` (0.05, relative).
 *
 * Cost: O(n) per pick, one rng draw only when there is more than one near-tie; the cost buffer is
 * owned by the instance and reused (pick is synchronous).
 *
 * @module
 */

import {
  A100_7B_PRIORS,
  assumedLoad,
  estimateTtftMs,
  matchTokensOf,
  pickNearMin,
  requestTokensOf,
  scratch,
} from "./cost_model.ts";
import { type OptionSpec, resolveOptions } from "./strategy_options.ts";
import type { Decision, PickContext, Strategy, StrategyParams } from "./types.ts";

/** Reason reported by {@linkcode CostAwareStrategy}. */
export const MIN_COST_REASON = "min-cost";

/** Options of `costaware` and their defaults. */
export const COST_AWARE_OPTIONS = {
  tie_epsilon: {
    default: 0.05,
    max: 1,
    doc: "relative margin within which predicted TTFTs count as tied (drawn at random)",
  },
} as const satisfies Record<string, OptionSpec>;

/** Minimum predicted time to first token. */
export class CostAwareStrategy implements Strategy {
  readonly name = "costaware";
  readonly usesPrefix = true;
  readonly tieEpsilon: number;
  #costs: Float64Array<ArrayBuffer> = new Float64Array(8);

  /** Throws a RangeError on an unknown or out-of-range option. */
  constructor(params: StrategyParams) {
    const o = resolveOptions("costaware", COST_AWARE_OPTIONS, params.options);
    this.tieEpsilon = o.tie_epsilon;
  }

  /** Predicted TTFT of the request on each candidate, ms, in candidate order (tests, logs). */
  costs(ctx: PickContext): number[] {
    const n = ctx.candidates.length;
    this.#fill(ctx);
    return Array.from(this.#costs.subarray(0, n));
  }

  pick(ctx: PickContext): Decision | undefined {
    const n = ctx.candidates.length;
    if (n === 0) return undefined;
    this.#fill(ctx);
    const i = pickNearMin(this.#costs, n, this.tieEpsilon, ctx.rng);
    return { candidate: ctx.candidates[i], reason: MIN_COST_REASON };
  }

  #fill(ctx: PickContext): void {
    const cs = ctx.candidates;
    const costs = this.#costs = scratch(this.#costs, cs.length);
    const tokens = requestTokensOf(ctx);
    for (let i = 0; i < cs.length; i++) {
      const c = cs[i];
      const load = c.load ?? assumedLoad(c, tokens);
      costs[i] = estimateTtftMs(load, tokens - matchTokensOf(ctx, c.match, tokens), A100_7B_PRIORS);
    }
  }
}

/** Factory for the registry. */
export function createCostAware(params: StrategyParams): Strategy {
  return new CostAwareStrategy(params);
}
