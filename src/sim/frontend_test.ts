import assert from "node:assert/strict";
import { ApiFrontend } from "./frontend.ts";
import { getProfile } from "./profiles.ts";

Deno.test("API front end: fixed plus per-token time, one request at a time", () => {
  const f = new ApiFrontend({ apiOverheadMs: 1, tokenizeMsPerToken: 0.002 });
  // A burst of three 1 500-token requests at t = 0: 4 ms each, served one after another.
  assert.deepEqual([f.admit(0, 1500), f.admit(0, 1500), f.admit(0, 1500)], [4, 8, 12]);
  // Idle again by t = 100: no queue.
  assert.equal(f.admit(100, 500), 102);
  // A profile without API time lets requests through at once.
  assert.equal(new ApiFrontend({ apiOverheadMs: 0, tokenizeMsPerToken: 0 }).admit(5, 99), 5);
  assert.ok(getProfile("a100-7b").params.apiOverheadMs > 0);
});
