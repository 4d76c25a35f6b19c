/**
 * `random`: a candidate drawn uniformly with the injected rng. The baseline that ignores both
 * load and cache state.
 *
 * Cost: one rng draw per pick, no allocation besides the decision.
 *
 * @module
 */

import type { Decision, PickContext, Strategy, StrategyParams } from "./types.ts";
import { resolveOptions } from "./strategy_options.ts";

/** Reason reported by {@linkcode RandomStrategy}. */
export const RANDOM_REASON = "random";

/** Routes to a uniformly random candidate. */
export class RandomStrategy implements Strategy {
  readonly name = "random";
  readonly usesPrefix = false;

  pick(ctx: PickContext): Decision | undefined {
    const n = ctx.candidates.length;
    if (n === 0) return undefined;
    return { candidate: ctx.candidates[ctx.rng.int(n)], reason: RANDOM_REASON };
  }
}

/** Factory for the registry; random takes no parameters. */
export function createRandom(params: StrategyParams): Strategy {
  resolveOptions("random", {}, params.options); // it has none: any given is a mistake
  return new RandomStrategy();
}
