/**
 * `dynamo-cost`: NVIDIA Dynamo's KV router cost function, written from its documented behaviour,
 * for side-by-side comparison.
 *
 * Rule: for each admitted worker
 *
 *   logit = overlap_score_weight × prefill_blocks + decode_blocks
 *
 * - prefill_blocks: prompt tokens still to compute there, the worker's prefill already in flight
 *   (`load.pendingPrefillTokens`: Dynamo's prompt-side load accounting) plus the request's tokens
 *   beyond its cached prefix (`requestTokens − match × chunkSize ÷ bytesPerToken`), in blocks of
 *   `block_size` tokens;
 * - decode_blocks: the KV blocks the worker would hold while decoding, its active sequences
 *   (`load.activeTokens`) plus this request's, in blocks.
 * The lowest logit wins. With `router_temperature` 0 (Dynamo's default) the choice is the argmin;
 * exactly equal logits are drawn at random. Softmax sampling for a temperature above 0 is not
 * implemented. Reason `min-kv-cost`.
 *
 * Without `load` the router's in-flight count stands in: no pending prefill, and each in-flight
 * request holds as many blocks as this one.
 *
 * Defaults: `--kv-overlap-score-weight` / `--router-kv-overlap-score-credit` 1.0,
 * `--router-temperature` 0.0 (Dynamo KV router docs). `block_size` (16, vLLM's default block)
 * only sets the unit; the argmin does not depend on it.
 *
 * Cost: O(n) per pick, at most one rng draw; the logit buffer is reused.
 *
 * @module
 */

import { matchTokensOf, requestTokensOf } from "./cost_model.ts";
import { pickNearMin, scratch } from "./tie_break.ts";
import { type OptionSpec, resolveOptions } from "./strategy_options.ts";
import type { Decision, PickContext, Strategy, StrategyParams } from "./types.ts";

/** Reason reported by {@linkcode DynamoCostStrategy}. */
export const MIN_KV_COST_REASON = "min-kv-cost";

/** Options of `dynamo-cost` and their published defaults. */
export const DYNAMO_OPTIONS = {
  overlap_score_weight: {
    default: 1,
    doc: "weight of the prefill blocks against the decode blocks",
  },
  block_size: { default: 16, min: 1, integer: true, doc: "tokens per KV block (unit only)" },
} as const satisfies Record<string, OptionSpec>;

/** Dynamo's KV-router cost, argmin at temperature 0. */
export class DynamoCostStrategy implements Strategy {
  readonly name = "dynamo-cost";
  readonly usesPrefix = true;
  readonly usesLoad = true;
  readonly overlapScoreWeight: number;
  readonly blockSize: number;
  #logits: Float64Array<ArrayBuffer> = new Float64Array(8);

  /** Throws a RangeError on an unknown or out-of-range option. */
  constructor(params: StrategyParams) {
    const o = resolveOptions("dynamo-cost", DYNAMO_OPTIONS, params.options);
    this.overlapScoreWeight = o.overlap_score_weight;
    this.blockSize = o.block_size;
  }

  /** The logit of each candidate, in candidate order (tests, logs). */
  logits(ctx: PickContext): number[] {
    this.#fill(ctx);
    return Array.from(this.#logits.subarray(0, ctx.candidates.length));
  }

  pick(ctx: PickContext): Decision | undefined {
    const n = ctx.candidates.length;
    if (n === 0) return undefined;
    this.#fill(ctx);
    const i = pickNearMin(this.#logits, n, 0, ctx.rng);
    return { candidate: ctx.candidates[i], reason: MIN_KV_COST_REASON };
  }

  #fill(ctx: PickContext): void {
    const cs = ctx.candidates;
    const l = this.#logits = scratch(this.#logits, cs.length);
    const tokens = requestTokensOf(ctx);
    const b = this.blockSize;
    for (let i = 0; i < cs.length; i++) {
      const c = cs[i];
      const pending = c.load?.pendingPrefillTokens ?? 0;
      const active = c.load?.activeTokens ?? c.inflight * tokens;
      const prefill = (pending + tokens - matchTokensOf(ctx, c.match, tokens)) / b;
      const decode = (active + tokens) / b;
      l[i] = this.overlapScoreWeight * prefill + decode;
    }
  }
}

/** Factory for the registry. */
export function createDynamoCost(params: StrategyParams): Strategy {
  return new DynamoCostStrategy(params);
}
