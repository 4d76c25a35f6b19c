/**
 * Assertion helpers for the bench tests, on top of `node:assert/strict`.
 *
 * @module
 */

import assertMod from "node:assert/strict";

/** Fails with `msg` unless `cond`. */
export function assert(cond: unknown, msg?: string): asserts cond {
  assertMod.ok(cond, msg as string);
}

/** Deep strict equality. */
export function assertEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T {
  assertMod.deepStrictEqual(actual, expected, msg as string);
}
