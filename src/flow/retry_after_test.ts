/** DecayingRate and retryAfterSeconds. */

import assert from "node:assert/strict";
import { DecayingRate, RATE_TAU_MS, retryAfterSeconds } from "./retry_after.ts";

Deno.test("DecayingRate: a steady 10/s reads about 10/s, and decays when it stops", () => {
  const r = new DecayingRate();
  for (let t = 0; t < 60_000; t += 100) r.note(t);
  const steady = r.perSecond(60_000);
  assert.ok(Math.abs(steady - 10) < 0.6, `steady ${steady}`);
  assert.ok(Math.abs(r.perSecond(60_000 + RATE_TAU_MS) - steady / Math.E) < 0.01);
  assert.equal(new DecayingRate().perSecond(5), 0);
});

const CASES: ReadonlyArray<[string, [number, number, number, number], number]> = [
  ["queue ahead ÷ rate, rounded up", [99, 20, 10_000, 60], 5],
  ["at least 1", [0, 1000, 10_000, 60], 1],
  ["capped at the maximum", [10_000, 1, 10_000, 60], 60],
  ["nothing flowing: the class's max wait", [5, 0, 7_500, 60], 8],
  ["nothing flowing, long max wait: capped", [5, 0.05, 600_000, 30], 30],
  ["a rate below one per time constant counts as nothing flowing", [0, 0.09, 3_000, 60], 3],
];

for (const [name, [ahead, rate, fallback, max], want] of CASES) {
  Deno.test(`retryAfterSeconds: ${name}`, () => {
    assert.equal(retryAfterSeconds(ahead, rate, fallback, max), want);
  });
}
