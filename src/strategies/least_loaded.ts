/**
 * `leastloaded`: the candidate with the fewest requests in flight. Ties are broken uniformly at
 * random with the injected rng, not by position: a positional tie-break sends every burst that
 * arrives while workers are equally loaded to the same (lowest-numbered) worker.
 *
 * Engine signals: when a candidate carries fresh engine figures (`Candidate.engine`, scraped from
 * the engine's `/metrics`), its load is the router's in-flight count plus the requests queued in
 * the engine: a queue means the engine cannot start more work now, whoever sent it (other routers,
 * other clients), and a request joins the back of it. So a worker with a deep engine queue loses
 * ties and more. Running requests are not added: the router's own are already in its count, and
 * a batch that still has room starts a new request at once. Stale or absent figures count 0: the
 * rule is then exactly the plain one.
 *
 * Cost: two passes over the candidates, no allocation, at most one rng draw (none when the
 * minimum is unique).
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";
import type { Candidate, Decision, PickContext, Strategy, StrategyParams } from "./types.ts";
import { resolveOptions } from "./strategy_options.ts";
import { engineWaiting } from "./engine_load.ts";

/** Reason reported by {@linkcode LeastLoadedStrategy}. */
export const LEAST_LOADED_REASON = "least-loaded";

/**
 * The candidate with the lowest `inflight` (plus its engine's queue, fresh at `now`, when `now` is
 * given), ties broken uniformly with `rng`; `undefined` when `candidates` is empty. Shared with
 * strategies that fall back to least-loaded (prefixaware, which passes no `now`).
 */
export function pickLeastLoaded(
  candidates: readonly Candidate[],
  rng: Rng,
  now?: number,
): Candidate | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  let min = loadOf(candidates[0], now);
  let ties = 1;
  for (let i = 1; i < n; i++) {
    const f = loadOf(candidates[i], now);
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
    if (loadOf(candidates[i], now) === min && k-- === 0) return candidates[i];
  }
  return undefined; // unreachable: k < ties
}

/** In-flight count, plus the engine's fresh queue when `now` is given. */
function loadOf(c: Candidate, now: number | undefined): number {
  return now === undefined ? c.inflight : c.inflight + engineWaiting(c, now);
}

/** Routes to the least-loaded candidate. */
export class LeastLoadedStrategy implements Strategy {
  readonly name = "leastloaded";
  readonly usesPrefix = false;

  pick(ctx: PickContext): Decision | undefined {
    const candidate = pickLeastLoaded(ctx.candidates, ctx.rng, ctx.now);
    return candidate === undefined ? undefined : { candidate, reason: LEAST_LOADED_REASON };
  }
}

/** Factory for the registry; leastloaded takes no parameters. */
export function createLeastLoaded(params: StrategyParams): Strategy {
  resolveOptions("leastloaded", {}, params.options); // it has none: any given is a mistake
  return new LeastLoadedStrategy();
}
