/**
 * `roundrobin`: cycles over the worker list by position (`Candidate.index`). The state is the
 * index of the last worker picked; each pick takes the admitted candidate with the smallest index
 * after it, wrapping to the smallest index overall. A worker left out of the candidates (breaker
 * open, at `max_inflight`) is skipped without shifting the cycle: with workers 0..3 and 1
 * excluded, the order is 0, 2, 3, 0, 2, 3, … and once 1 is back it resumes in its place, instead
 * of a counter modulo the candidate count, which would hand 1's turns to its neighbour.
 *
 * Cost: one pass over the candidates, no rng, no allocation besides the decision. Candidates need
 * not be sorted by index.
 *
 * @module
 */

import type { Candidate, Decision, PickContext, Strategy, StrategyParams } from "./types.ts";
import { resolveOptions } from "./strategy_options.ts";

/** Reason reported by {@linkcode RoundRobinStrategy}. */
export const ROUND_ROBIN_REASON = "round-robin";

/** Cycles over the workers by position; one instance per router (the cycle lives in it). */
export class RoundRobinStrategy implements Strategy {
  readonly name = "roundrobin";
  readonly usesPrefix = false;
  /** Worker index of the last pick; -1 before the first, so the cycle starts at the lowest index. */
  #last = -1;

  pick(ctx: PickContext): Decision | undefined {
    const cs = ctx.candidates;
    let next: Candidate | undefined; // smallest index > #last
    let lowest: Candidate | undefined; // smallest index overall, for the wrap-around
    for (let i = 0; i < cs.length; i++) {
      const c = cs[i];
      if (lowest === undefined || c.index < lowest.index) lowest = c;
      if (c.index > this.#last && (next === undefined || c.index < next.index)) next = c;
    }
    const candidate = next ?? lowest;
    if (candidate === undefined) return undefined;
    this.#last = candidate.index;
    return { candidate, reason: ROUND_ROBIN_REASON };
  }
}

/** Factory for the registry; roundrobin takes no parameters. */
export function createRoundRobin(params: StrategyParams): Strategy {
  resolveOptions("roundrobin", {}, params.options); // it has none: any given is a mistake
  return new RoundRobinStrategy();
}
