/**
 * `leastloaded`: the candidate with the fewest requests in flight. Ties are broken uniformly at
 * random with the injected rng, not by position: a positional tie-break sends every burst that
 * arrives while workers are equally loaded to the same (lowest-numbered) worker.
 *
 * Cost: two passes over the candidates, no allocation, at most one rng draw (none when the
 * minimum is unique).
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";
import type { Candidate, Decision, PickContext, Strategy, StrategyParams } from "./types.ts";
import { resolveOptions } from "./strategy_options.ts";

/** Reason reported by {@linkcode LeastLoadedStrategy}. */
export const LEAST_LOADED_REASON = "least-loaded";

/**
 * The candidate with the lowest `inflight`, ties broken uniformly with `rng`; `undefined` when
 * `candidates` is empty. Shared with strategies that fall back to least-loaded (prefixaware).
 */
export function pickLeastLoaded(
  candidates: readonly Candidate[],
  rng: Rng,
): Candidate | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  let min = candidates[0].inflight;
  let ties = 1;
  for (let i = 1; i < n; i++) {
    const f = candidates[i].inflight;
    if (f < min) {
      min = f;
      ties = 1;
    } else if (f === min) {
      ties++;
    }
  }
  // Second pass instead of collecting the tied candidates: keeps the hot path allocation-free.
  let k = ties === 1 ? 0 : rng.int(ties);
  for (let i = 0; i < n; i++) {
    if (candidates[i].inflight === min && k-- === 0) return candidates[i];
  }
  return undefined; // unreachable: k < ties
}

/** Routes to the least-loaded candidate. */
export class LeastLoadedStrategy implements Strategy {
  readonly name = "leastloaded";
  readonly usesPrefix = false;

  pick(ctx: PickContext): Decision | undefined {
    const candidate = pickLeastLoaded(ctx.candidates, ctx.rng);
    return candidate === undefined ? undefined : { candidate, reason: LEAST_LOADED_REASON };
  }
}

/** Factory for the registry; leastloaded takes no parameters. */
export function createLeastLoaded(params: StrategyParams): Strategy {
  resolveOptions("leastloaded", {}, params.options); // it has none: any given is a mistake
  return new LeastLoadedStrategy();
}
