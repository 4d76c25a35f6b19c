/**
 * Reading `Candidate.engine` (the engine's own scraped load figures) the same way in every
 * strategy: a figure counts only while it is fresh (`now − at ≤ maxAgeMs`, either side: a pick
 * whose `now` was taken just before the scrape landed is not stale), and only when it is a finite
 * number ≥ 0 (anything else reads as absent). Stale or absent figures leave a strategy exactly as
 * it is without them.
 *
 * Cost: O(1), no allocation.
 *
 * @module
 */

import type { Candidate, EngineLoad } from "./types.ts";

/** `c.engine` when it is fresh at `now`; undefined otherwise. */
export function freshEngine(c: Candidate, now: number): EngineLoad | undefined {
  const e = c.engine;
  if (e === undefined) return undefined;
  const age = now - e.at;
  return age <= e.maxAgeMs && age >= -e.maxAgeMs ? e : undefined; // false for NaN
}

/** A usable count or ratio: finite and ≥ 0, else 0. */
export function figure(v: number | undefined): number {
  return v !== undefined && v >= 0 && v < Infinity ? v : 0;
}

/** Requests queued in `c`'s engine by its fresh figures; 0 when unknown or stale. */
export function engineWaiting(c: Candidate, now: number): number {
  const e = freshEngine(c, now);
  return e === undefined ? 0 : figure(e.waiting);
}
