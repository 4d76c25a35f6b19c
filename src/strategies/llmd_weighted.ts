/**
 * `llmd-weighted`: the llm-d inference scheduler's default scoring profile (queue, KV-cache
 * utilisation and prefix-cache scorers, max-score picker), written from its documented behaviour,
 * for side-by-side comparison.
 *
 * Rule: every admitted worker gets three scores in [0, 1] and their weighted sum; the highest sum
 * wins, equal sums at random (the max-score picker shuffles before it picks). Reason `max-score`.
 * - queue (weight `queue_weight`, 2): `(maxQ − q) ÷ (maxQ − minQ)` over the candidates, 1 for all
 *   when every queue is equal. llm-d reads the engine's waiting-queue gauge; the router has no
 *   scrape, so q is its own in-flight count for the worker.
 * - KV-cache utilisation (weight `kv_cache_weight`, 2): `1 − usage`. llm-d reads the engine's KV
 *   usage gauge; here usage = `load.activeTokens` ÷ the worker's capacity in tokens
 *   (`capacityChunks × chunkSize ÷ bytesPerToken`) when both are known, else the prefix index fill
 *   `cachedChunks ÷ capacityChunks`, and 0 for an unbounded worker.
 * - prefix (weight `prefix_weight`, 3): match ÷ request chunks (llm-d: matched ÷ total blocks of
 *   the prompt), 0 for a request shorter than one chunk.
 *
 * Defaults: the weights of llm-d's default scheduling profile (queue 2, KV-cache utilisation 2,
 * prefix-cache 3; llm-d inference-scheduling guide and the "well-lit path" configs).
 *
 * Cost: two passes over the candidates, at most one rng draw; the score buffer is reused.
 *
 * @module
 */

import { DEFAULT_BYTES_PER_TOKEN } from "./cost_model.ts";
import { pickNearMin, scratch } from "./tie_break.ts";
import { type OptionSpec, resolveOptions } from "./strategy_options.ts";
import type { Candidate, Decision, PickContext, Strategy, StrategyParams } from "./types.ts";

/** Reason reported by {@linkcode LlmdWeightedStrategy}. */
export const MAX_SCORE_REASON = "max-score";

/** Options of `llmd-weighted` and their published defaults. */
export const LLMD_OPTIONS = {
  queue_weight: { default: 2, doc: "weight of the queue scorer" },
  kv_cache_weight: { default: 2, doc: "weight of the KV-cache utilisation scorer" },
  prefix_weight: { default: 3, doc: "weight of the prefix-cache scorer" },
} as const satisfies Record<string, OptionSpec>;

/** llm-d's weighted scorers with a max-score pick. */
export class LlmdWeightedStrategy implements Strategy {
  readonly name = "llmd-weighted";
  readonly usesPrefix = true;
  readonly usesLoad = true;
  readonly queueWeight: number;
  readonly kvCacheWeight: number;
  readonly prefixWeight: number;
  #scores: Float64Array<ArrayBuffer> = new Float64Array(8);

  /** Throws a RangeError on an unknown or out-of-range option. */
  constructor(params: StrategyParams) {
    const o = resolveOptions("llmd-weighted", LLMD_OPTIONS, params.options);
    this.queueWeight = o.queue_weight;
    this.kvCacheWeight = o.kv_cache_weight;
    this.prefixWeight = o.prefix_weight;
  }

  /** Weighted score of each candidate, in candidate order (tests, logs). */
  scores(ctx: PickContext): number[] {
    this.#fill(ctx);
    return Array.from(this.#scores.subarray(0, ctx.candidates.length), (x) => -x);
  }

  pick(ctx: PickContext): Decision | undefined {
    const n = ctx.candidates.length;
    if (n === 0) return undefined;
    this.#fill(ctx);
    // Scores are stored negated so that the shared minimum picker finds the maximum.
    const i = pickNearMin(this.#scores, n, 0, ctx.rng);
    return { candidate: ctx.candidates[i], reason: MAX_SCORE_REASON };
  }

  #fill(ctx: PickContext): void {
    const cs = ctx.candidates;
    const n = cs.length;
    const s = this.#scores = scratch(this.#scores, n);
    let minQ = Infinity;
    let maxQ = -Infinity;
    for (const c of cs) {
      if (c.inflight < minQ) minQ = c.inflight;
      if (c.inflight > maxQ) maxQ = c.inflight;
    }
    for (let i = 0; i < n; i++) {
      const c = cs[i];
      const queue = maxQ === minQ ? 1 : (maxQ - c.inflight) / (maxQ - minQ);
      const kv = 1 - kvUsage(c, ctx);
      const prefix = ctx.requestChunks > 0 ? Math.min(1, c.match / ctx.requestChunks) : 0;
      s[i] = -(this.queueWeight * queue + this.kvCacheWeight * kv + this.prefixWeight * prefix);
    }
  }
}

/** KV usage in [0, 1] as the router can estimate it; see the module comment. */
export function kvUsage(c: Candidate, ctx: PickContext): number {
  if (c.capacityChunks <= 0) return 0;
  const active = c.load?.activeTokens;
  const u = active !== undefined
    ? active / (c.capacityChunks * ctx.chunkSize / (ctx.bytesPerToken ?? DEFAULT_BYTES_PER_TOKEN))
    : c.cachedChunks / c.capacityChunks;
  return u < 0 ? 0 : u > 1 ? 1 : u;
}

/** Factory for the registry. */
export function createLlmdWeighted(params: StrategyParams): Strategy {
  return new LlmdWeightedStrategy(params);
}
