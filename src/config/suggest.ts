/**
 * "Did you mean": the known name closest to a mistyped one, for config errors. Only a suggestion:
 * nothing is ever applied in its place.
 *
 * Rule: names are compared without case, `_` or `-` (so `chunkSize`, `chunk-size` and `chunk_size`
 * are one name), by optimal string alignment distance (insert, delete, substitute, or swap two
 * neighbours: 1 each). A candidate is suggested when its distance is at most `limit`, by default
 * a third of the typed name's length, at least 1 and at most 3 (`adr` → `addr`, `stratgy` →
 * `strategy`, `lvl` → nothing); the closest wins, ties go to the earlier candidate.
 *
 * Cost: O(|a|·|b|) per candidate; names longer than 64 characters get no suggestion, so a huge
 * key in a hostile document costs nothing.
 *
 * This module imports nothing, so the section modules can use it through `validate.ts`.
 *
 * @module
 */

/** Longest name compared; a longer one is no typo of a config key. */
const MAX_NAME = 64;

/** `name` in the form names are compared in: lower case, without `_` and `-`. */
export function normalName(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, "");
}

/** The default distance allowed for a typed name of `length` characters (normal form). */
export function defaultLimit(length: number): number {
  return Math.min(3, Math.max(1, Math.floor(length / 3)));
}

/**
 * Optimal string alignment distance between `a` and `b`, or `Infinity` once it exceeds `max`
 * (rows stop early when their minimum passes it).
 */
export function editDistance(a: string, b: string, max = Infinity): number {
  if (Math.abs(a.length - b.length) > max) return Infinity;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, prev2[j - 2] + 1);
      }
      row.push(d);
      if (d < best) best = d;
    }
    if (best > max) return Infinity;
    prev2 = prev;
    prev = row;
  }
  const d = prev[b.length];
  return d > max ? Infinity : d;
}

/**
 * The candidate closest to `name` within `limit` (default: `defaultLimit` of its normal form), or
 * undefined. `name` itself is never suggested.
 */
export function closest(
  name: string,
  candidates: readonly string[],
  limit?: number,
): string | undefined {
  if (name.length > MAX_NAME) return undefined;
  const typed = normalName(name);
  const max = limit ?? defaultLimit(typed.length);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    if (c === name || c.length > MAX_NAME) continue;
    const d = editDistance(typed, normalName(c), max);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** `", did you mean <x>?"` for the candidate closest to `name`, or `""` when none is close. */
export function didYouMean(name: string, candidates: readonly string[], limit?: number): string {
  const c = closest(name, candidates, limit);
  return c === undefined ? "" : `, did you mean ${c}?`;
}
