/**
 * `costaware`: send the request where it costs the least time to first token.
 *
 * Rule: for each admitted worker, with the model of `cost_model.ts`,
 *
 *   cost = ttft + others_weight × prefilling × uncached ÷ prefillTokensPerMs
 *          + future_weight × λ × D × (W + D / 2)
 *   ttft = [busy] × decodeStepMs / 2 + stepOverheadMs + decoding × decodeMsPerSeq
 *          + (pendingPrefillTokens + uncached) ÷ prefillTokensPerMs
 *   uncached = requestTokens − match × chunkSize ÷ bytesPerToken
 *
 * the first term being the request's own predicted TTFT there, the second the delay its prefill
 * adds to the prefills already queued there (they share the engine's next step; an upper bound,
 * since chunked prefill serves them first, hence the weight 0.5), and the third the delay it adds
 * to requests arriving there before it is done (`futureDelayMs`: D its prefill, W the prefill
 * pending there, λ that worker's own recent arrival rate, its share of the picks over a window of
 * about 20 picks per worker). The pick minimises the TTFT the whole system adds, not only the
 * request's own. The minimum wins;
 * candidates within `tie_epsilon` (2%) of it are near-ties, one of which is drawn uniformly with
 * the injected rng (predictions are not that precise, and a fixed tie-break sends every burst to
 * the same worker). Reason `min-cost`.
 *
 * The per-worker figures come from `Candidate.load`, filled by the router's `LoadTracker`, which
 * learns each worker's rates from the TTFTs and `cached_tokens` it observes; there is no threshold
 * and no valve: a long cached prefix wins exactly while the time it saves exceeds the queue it
 * joins. A candidate without `load` is costed by `assumedLoad` (every in-flight request counted as
 * a pending prefill as large as this request: spreads rather than piles).
 *
 * Engine signals: a candidate with fresh engine figures (`Candidate.engine`, scraped from its
 * `/metrics`) also pays `engineExtraMs` (cost_model.ts): the engine's waiting queue beyond the
 * router's own requests before their first token there, priced as prefills as large as this one
 * (other routers or clients send to that engine); others' running sequences; and, when its KV
 * usage is above 0.9, the risk of a preemption, priced as the request's prefill again, scaled from
 * 0 at 0.9 to 1 at full. Stale or absent figures add nothing: the cost is then exactly the one
 * above. Without the engine's KV usage, a worker with a `kv_budget` pays the same risk from the
 * router's own count of prompt tokens in flight there (`kvPressureMs`): a small cache that the
 * request would fill preempts, and a recomputed sequence costs its whole prefill again.
 *
 * Options: `tie_epsilon` (0.02, relative), `others_weight` (0.5), `future_weight` (1); 0 turns a
 * term off (ablation). Issue 19's matrix (docs/results.md, ADR 0010) set the last two.
 * docs/decisions/0003-cost-aware-strategy.md has the model, its evidence and its limits.
 *
 * Cost: O(n) per pick, one rng draw only when there is more than one near-tie; the cost buffer is
 * owned by the instance and reused (pick is synchronous).
 *
 * @module
 */

import {
  A100_7B_PRIORS,
  assumedLoad,
  DEFAULT_BYTES_PER_TOKEN,
  engineExtraMs,
  estimateTtftMs,
  futureDelayMs,
  kvPressureMs,
  matchTokensOf,
  queuedDelayMs,
  requestTokensOf,
} from "./cost_model.ts";
import { pickNearMin, scratch } from "./tie_break.ts";
import { freshEngine } from "./engine_load.ts";
import { type OptionSpec, resolveOptions } from "./strategy_options.ts";
import type { Decision, PickContext, Strategy, StrategyParams } from "./types.ts";

/** Reason reported by {@linkcode CostAwareStrategy}. */
export const MIN_COST_REASON = "min-cost";

/** Options of `costaware` and their defaults. */
export const COST_AWARE_OPTIONS = {
  tie_epsilon: {
    default: 0.02,
    max: 1,
    doc: "relative margin within which costs count as tied (drawn at random)",
  },
  others_weight: {
    default: 0.5,
    doc:
      "weight of the delay the request adds to prefills already queued there (0 = own TTFT only)",
  },
  future_weight: {
    default: 1,
    doc: "weight of the delay the request adds to requests expected to arrive there meanwhile",
  },
} as const satisfies Record<string, OptionSpec>;

/** Minimum predicted time to first token. */
export class CostAwareStrategy implements Strategy {
  readonly name = "costaware";
  readonly usesPrefix = true;
  readonly usesLoad = true;
  readonly tieEpsilon: number;
  readonly othersWeight: number;
  readonly futureWeight: number;
  /** Time of the last pick and mean gap between picks (ms), for the arrival rate. */
  #lastNow = NaN;
  #gap = NaN;
  /** Per worker index: picks, exponentially forgotten over `#window()`, and when last updated. */
  #mass: number[] = [];
  #massAt: number[] = [];
  #costs: Float64Array<ArrayBuffer> = new Float64Array(8);

  /** Throws a RangeError on an unknown or out-of-range option. */
  constructor(params: StrategyParams) {
    const o = resolveOptions("costaware", COST_AWARE_OPTIONS, params.options);
    this.tieEpsilon = o.tie_epsilon;
    this.othersWeight = o.others_weight;
    this.futureWeight = o.future_weight;
  }

  /** The cost of the request on each candidate, ms, in candidate order (tests, logs). */
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
    this.#observe(ctx.now, ctx.candidates[i].index, n);
    return { candidate: ctx.candidates[i], reason: MIN_COST_REASON };
  }

  /**
   * Notes a pick of worker `index` at `now`: the mean gap between picks (exponentially weighted,
   * 5%) and the worker's own recent picks, forgotten over a window of about 20 picks per worker.
   */
  #observe(now: number, index: number, workers: number): void {
    if (Number.isFinite(this.#lastNow) && now >= this.#lastNow) {
      const g = now - this.#lastNow;
      this.#gap = Number.isFinite(this.#gap) ? this.#gap * 0.95 + g * 0.05 : g;
    }
    this.#lastNow = now;
    const window = this.#window(workers);
    if (!(window > 0)) return;
    this.#mass[index] = this.#decayed(index, now, window) + 1;
    this.#massAt[index] = now;
  }

  /** Time over which picks are forgotten, ms: about 20 picks per worker. */
  #window(workers: number): number {
    return 20 * workers * this.#gap;
  }

  #decayed(index: number, now: number, window: number): number {
    const m = this.#mass[index];
    if (m === undefined) return 0;
    return m * Math.exp(-Math.max(0, now - this.#massAt[index]) / window);
  }

  /**
   * Arrivals per ms at worker `index`: its own recent picks (requests come back to where their
   * sessions live) until there are enough of them, the fleet's rate shared evenly before.
   */
  #arrivals(index: number, now: number, workers: number): number {
    if (!(this.futureWeight > 0 && this.#gap > 0)) return 0;
    const window = this.#window(workers);
    const even = 1 / (this.#gap * workers);
    if (this.#massAt.length === 0) return even;
    return this.#decayed(index, now, window) / window;
  }

  #fill(ctx: PickContext): void {
    const cs = ctx.candidates;
    const costs = this.#costs = scratch(this.#costs, cs.length);
    const tokens = requestTokensOf(ctx);
    for (let i = 0; i < cs.length; i++) {
      const c = cs[i];
      const load = c.load ?? assumedLoad(c, tokens);
      const uncached = tokens - matchTokensOf(ctx, c.match, tokens);
      let cost = estimateTtftMs(load, uncached, A100_7B_PRIORS) +
        this.othersWeight * queuedDelayMs(load, uncached, A100_7B_PRIORS) +
        this.futureWeight *
          futureDelayMs(load, uncached, this.#arrivals(c.index, ctx.now, cs.length));
      const engine = freshEngine(c, ctx.now);
      if (engine !== undefined) {
        cost += engineExtraMs(load, engine, c.inflight, tokens, A100_7B_PRIORS);
      }
      if (engine?.kvUsage === undefined && c.capacityChunks > 0) {
        const perChunk = ctx.chunkSize / (ctx.bytesPerToken ?? DEFAULT_BYTES_PER_TOKEN);
        cost += kvPressureMs(load, c.capacityChunks * perChunk, tokens, A100_7B_PRIORS);
      }
      costs[i] = cost;
    }
  }
}

/** Factory for the registry. */
export function createCostAware(params: StrategyParams): Strategy {
  return new CostAwareStrategy(params);
}
