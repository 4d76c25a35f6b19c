/**
 * `prefixaware`: send the request to the worker believed to hold the longest prefix of it, unless
 * that match is too short to be worth it or that worker is saturated.
 *
 * Rule (DESIGN.md): for each candidate take (match, inflight); shuffle the candidates with the
 * injected rng, then order them stably by match descending, inflight ascending, so equal
 * (match, inflight) pairs are ordered at random (a positional tie-break was measured to hurt).
 * - best.match below the minimum → least-loaded over all candidates, reason
 *   `fallback-least-loaded`. The minimum is `minMatchChunks` and, with the option
 *   `min_match_share` (default 0: off), that share of the request's chunks: with an absolute
 *   minimum only, a 64-byte system prompt every request shares is a match, and every request
 *   follows it to one worker.
 * - else best is saturated → the first later candidate in that order with a match at the minimum
 *   and not saturated, reason `spilled-from-saturated`; none → least-loaded, reason
 *   `spilled-fallback-least-loaded`. Saturated: `saturationInflight` > 0 and inflight ≥ it, or,
 *   with the option `saturation_tokens` > 0 (default 0: off), the work it would wait behind there
 *   is at least that many tokens: the prefill still pending there (`load.pendingPrefillTokens`;
 *   without `load`, inflight × this request's tokens) plus its own uncached tokens. Counting
 *   requests treats a 50-token question and a 10 k-token document alike; counting work does not.
 * - else best, reason `longest-prefix`.
 *
 * Cost: O(n) per pick and no allocation besides the decision (the work valve: O(1) more per
 * candidate). Only the first element of the
 * sorted order and the first eligible spill target are ever read, so instead of sorting, one pass
 * over the shuffled order keeps the first minimum of the sort key for each; that gives the same
 * choices as shuffle + stable sort for the same rng draws. What is shuffled is a scratch array of
 * positions owned by the instance and reused across picks (pick is synchronous, so it is never
 * shared); holding small integers, it keeps no candidate alive between picks.
 *
 * @module
 */

import { shuffle } from "../util/rng.ts";
import { matchTokensOf, requestTokensOf } from "./cost_model.ts";
import { LEAST_LOADED_REASON, pickLeastLoaded } from "./least_loaded.ts";
import type { Candidate, Decision, PickContext, Strategy, StrategyParams } from "./types.ts";
import { type OptionSpec, resolveOptions } from "./strategy_options.ts";

/** Options of `prefixaware` beyond its router keys, and their defaults (both off). */
export const PREFIX_AWARE_OPTIONS = {
  min_match_share: {
    default: 0,
    max: 1,
    doc: "a match must also cover this share of the request's chunks (0 = absolute minimum only)",
  },
  saturation_tokens: {
    default: 0,
    doc: "a worker with this much prefill work ahead of the request is saturated (0 = off)",
  },
} as const satisfies Record<string, OptionSpec>;

/** Reason when the longest match is taken. */
export const LONGEST_PREFIX_REASON = "longest-prefix";
/** Reason when the best worker is saturated and another with a long enough match takes it. */
export const SPILLED_REASON = "spilled-from-saturated";
/** Reason when the longest match is below `minMatchChunks`. */
export const FALLBACK_REASON = `fallback-${LEAST_LOADED_REASON}`;
/** Reason when the best worker is saturated and no other one qualifies. */
export const SPILLED_FALLBACK_REASON = `spilled-fallback-${LEAST_LOADED_REASON}`;

/** Whether `a` comes before `b` in the order match descending, inflight ascending. */
function before(a: Candidate, b: Candidate): boolean {
  return a.match > b.match || (a.match === b.match && a.inflight < b.inflight);
}

/** Longest-prefix routing with a least-loaded fallback and a saturation valve. */
export class PrefixAwareStrategy implements Strategy {
  readonly name = "prefixaware";
  readonly usesPrefix = true;
  readonly usesLoad: boolean;
  readonly minMatchChunks: number;
  readonly saturationInflight: number;
  readonly minMatchShare: number;
  readonly saturationTokens: number;
  /** Scratch: positions into `ctx.candidates`, shuffled in place on each pick. */
  #order: number[] = [];

  /** Throws a RangeError when a parameter is not a non-negative integer, or on a bad option. */
  constructor(params: StrategyParams) {
    this.minMatchChunks = checkCount("minMatchChunks", params.minMatchChunks);
    this.saturationInflight = checkCount("saturationInflight", params.saturationInflight);
    const o = resolveOptions("prefixaware", PREFIX_AWARE_OPTIONS, params.options);
    this.minMatchShare = o.min_match_share;
    this.saturationTokens = o.saturation_tokens;
    this.usesLoad = this.saturationTokens > 0;
  }

  /** Whether `c` is past the valve for this request (see the module comment). */
  #saturated(c: Candidate, ctx: PickContext, tokens: number): boolean {
    if (this.saturationInflight > 0 && c.inflight >= this.saturationInflight) return true;
    if (this.saturationTokens <= 0) return false;
    const pending = c.load !== undefined ? c.load.pendingPrefillTokens : c.inflight * tokens;
    return pending + tokens - matchTokensOf(ctx, c.match, tokens) >= this.saturationTokens;
  }

  pick(ctx: PickContext): Decision | undefined {
    const cs = ctx.candidates;
    const n = cs.length;
    if (n === 0) return undefined;
    const order = this.#order;
    if (order.length !== n) {
      order.length = 0; // rebuilt with push so the array stays packed
      for (let i = 0; i < n; i++) order.push(i);
    } else {
      for (let i = 0; i < n; i++) order[i] = i;
    }
    shuffle(order, ctx.rng);

    const min = this.minMatchShare > 0
      ? Math.max(this.minMatchChunks, Math.ceil(this.minMatchShare * ctx.requestChunks))
      : this.minMatchChunks;
    const valved = this.saturationInflight > 0 || this.saturationTokens > 0;
    const tokens = this.saturationTokens > 0 ? requestTokensOf(ctx) : 0;
    let best = cs[order[0]];
    let spill: Candidate | undefined;
    for (let i = 0; i < n; i++) {
      const c = cs[order[i]];
      // Strict `before`: the first of equals in shuffled order wins, as a stable sort keeps it.
      if (i > 0 && before(c, best)) best = c;
      if (
        valved && c.match >= min && (spill === undefined || before(c, spill)) &&
        !this.#saturated(c, ctx, tokens)
      ) {
        spill = c;
      }
    }

    if (best.match < min) {
      return { candidate: pickLeastLoaded(cs, ctx.rng)!, reason: FALLBACK_REASON };
    }
    if (valved && this.#saturated(best, ctx, tokens)) {
      // best is not eligible itself (saturated), so every eligible one sorts after it.
      if (spill !== undefined) return { candidate: spill, reason: SPILLED_REASON };
      return { candidate: pickLeastLoaded(cs, ctx.rng)!, reason: SPILLED_FALLBACK_REASON };
    }
    return { candidate: best, reason: LONGEST_PREFIX_REASON };
  }
}

function checkCount(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

/** Factory for the registry. */
export function createPrefixAware(params: StrategyParams): Strategy {
  // min_match_chunks and saturation_inflight are router keys; the rest are options.
  return new PrefixAwareStrategy(params);
}
