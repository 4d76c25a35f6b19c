/**
 * `prefixaware`: send the request to the worker believed to hold the longest prefix of it, unless
 * that match is too short to be worth it or that worker is saturated.
 *
 * Rule (DESIGN.md): for each candidate take (match, inflight); shuffle the candidates with the
 * injected rng, then order them stably by match descending, inflight ascending, so equal
 * (match, inflight) pairs are ordered at random (a positional tie-break was measured to hurt).
 * - best.match < `minMatchChunks` → least-loaded over all candidates, reason
 *   `fallback-least-loaded`.
 * - else `saturationInflight` > 0 and best.inflight ≥ it → the first later candidate in that order
 *   with match ≥ `minMatchChunks` and inflight < `saturationInflight`, reason
 *   `spilled-from-saturated`; none → least-loaded, reason `spilled-fallback-least-loaded`.
 * - else best, reason `longest-prefix`.
 *
 * Cost: O(n) per pick and no allocation besides the decision. Only the first element of the
 * sorted order and the first eligible spill target are ever read, so instead of sorting, one pass
 * over the shuffled order keeps the first minimum of the sort key for each; that gives the same
 * choices as shuffle + stable sort for the same rng draws. What is shuffled is a scratch array of
 * positions owned by the instance and reused across picks (pick is synchronous, so it is never
 * shared); holding small integers, it keeps no candidate alive between picks.
 *
 * @module
 */

import { shuffle } from "../util/rng.ts";
import { LEAST_LOADED_REASON, pickLeastLoaded } from "./least_loaded.ts";
import type { Candidate, Decision, PickContext, Strategy, StrategyParams } from "./types.ts";
import { resolveOptions } from "./strategy_options.ts";

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
  readonly minMatchChunks: number;
  readonly saturationInflight: number;
  /** Scratch: positions into `ctx.candidates`, shuffled in place on each pick. */
  #order: number[] = [];

  /** Throws a RangeError when a parameter is not a non-negative integer. */
  constructor(params: StrategyParams) {
    this.minMatchChunks = checkCount("minMatchChunks", params.minMatchChunks);
    this.saturationInflight = checkCount("saturationInflight", params.saturationInflight);
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

    const min = this.minMatchChunks;
    const valve = this.saturationInflight;
    let best = cs[order[0]];
    let spill: Candidate | undefined;
    for (let i = 0; i < n; i++) {
      const c = cs[order[i]];
      // Strict `before`: the first of equals in shuffled order wins, as a stable sort keeps it.
      if (i > 0 && before(c, best)) best = c;
      if (c.match >= min && c.inflight < valve && (spill === undefined || before(c, spill))) {
        spill = c;
      }
    }

    if (best.match < min) {
      return { candidate: pickLeastLoaded(cs, ctx.rng)!, reason: FALLBACK_REASON };
    }
    if (valve > 0 && best.inflight >= valve) {
      // best is not eligible itself (inflight ≥ valve), so every eligible one sorts after it.
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
  // Its parameters are router keys (min_match_chunks, saturation_inflight), not options.
  resolveOptions("prefixaware", {}, params.options);
  return new PrefixAwareStrategy(params);
}
