/** classOf (class from a header or body value) and tenantKey (bounded tenant ids). */

import assert from "node:assert/strict";
import { classOf, MAX_TENANT_ID, tenantKey } from "./classify.ts";
import { queueConfig } from "./testing.ts";

const config = queueConfig({}, { batch: { values: ["low", "2"] } });

const CASES: ReadonlyArray<[unknown, string]> = [
  [undefined, "interactive"],
  [null, "interactive"],
  ["", "interactive"],
  ["   ", "interactive"],
  ["interactive", "interactive"],
  ["BATCH", "batch"],
  [" High ", "interactive"],
  ["low", "batch"],
  [2, "batch"],
  ["2", "batch"],
];

for (const [value, want] of CASES) {
  Deno.test(`classOf(${JSON.stringify(value)}) is ${want}`, () => {
    assert.deepEqual(classOf(value, config), { ok: true, className: want });
  });
}

const ERRORS: ReadonlyArray<[unknown, RegExp]> = [
  ["urgent", /^Unknown priority class "urgent", valid values: interactive, high, batch, low, 2$/],
  [3, /^Unknown priority class "3"/],
  ["x".repeat(500), /^Unknown priority class "x{40}"\.\.\., valid/],
  [true, /^Priority class must be a string or a number, got boolean$/],
  [{ a: 1 }, /got object$/],
  [NaN, /got number$/],
];

for (const [value, want] of ERRORS) {
  Deno.test(`classOf refuses ${String(value).slice(0, 20)}`, () => {
    const r = classOf(value, config);
    assert.equal(r.ok, false);
    assert.match((r as { message: string }).message, want);
  });
}

Deno.test("tenantKey bounds long ids by hashing and names the empty one", () => {
  assert.equal(tenantKey("team-a"), "team-a");
  assert.equal(tenantKey(""), "anonymous");
  const exact = "k".repeat(MAX_TENANT_ID);
  assert.equal(tenantKey(exact), exact);
  const long = tenantKey("k".repeat(60_000));
  assert.match(long, /^#[0-9a-f]{16}$/);
  assert.notEqual(tenantKey("k".repeat(60_001)), long);
});
