/**
 * Tie-breaking helpers shared by the scoring strategies: every choice among equals is drawn with
 * the injected rng (a positional tie-break sends every burst to the same worker), and none
 * allocates on the hot path.
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";
import type { Candidate } from "./types.ts";

/**
 * Index of a uniformly random entry among those with `costs[i] ≤ min × (1 + epsilon)` (only the
 * exact minimum when `epsilon` is 0); `-1` when `n` is 0. A NaN cost counts as +∞ (a bad load
 * figure must not leave the pick without a worker), so when no cost is finite every entry ties.
 * One rng draw when there is more than one such entry, none otherwise.
 */
export function pickNearMin(
  costs: ArrayLike<number>,
  n: number,
  epsilon: number,
  rng: Rng,
): number {
  if (n === 0) return -1;
  let min = Infinity;
  for (let i = 0; i < n; i++) if (costs[i] < min) min = costs[i]; // false for NaN
  const bound = epsilon > 0 && Number.isFinite(min) ? min + Math.abs(min) * epsilon : min;
  let ties = 0;
  let only = -1;
  for (let i = 0; i < n; i++) {
    if (near(costs[i], bound)) {
      ties++;
      only = i;
    }
  }
  if (ties === 1) return only;
  let k = rng.int(ties);
  for (let i = 0; i < n; i++) if (near(costs[i], bound) && k-- === 0) return i;
  return only; // unreachable: k < ties
}

/** Whether cost `c` is within `bound`; a NaN cost only when every cost is, or is +∞. */
function near(c: number, bound: number): boolean {
  return c <= bound || (bound === Infinity && Number.isNaN(c));
}

/** A reusable Float64Array of at least `n` entries (grown by doubling). */
export function scratch(buf: Float64Array<ArrayBuffer>, n: number): Float64Array<ArrayBuffer> {
  return buf.length >= n ? buf : new Float64Array(Math.max(n, buf.length * 2, 8));
}

/**
 * The least-loaded candidate among those whose match equals `match`, ties at random; `undefined`
 * when none has that match.
 */
export function pickLeastLoadedWithMatch(
  candidates: readonly Candidate[],
  match: number,
  rng: Rng,
): Candidate | undefined {
  let min = Infinity;
  let ties = 0;
  for (const c of candidates) {
    if (c.match !== match) continue;
    if (c.inflight < min) {
      min = c.inflight;
      ties = 1;
    } else if (c.inflight === min) {
      ties++;
    }
  }
  if (ties === 0) return undefined;
  let k = ties === 1 ? 0 : rng.int(ties);
  for (const c of candidates) {
    if (c.match === match && c.inflight === min && k-- === 0) return c;
  }
  return undefined; // unreachable: k < ties
}
