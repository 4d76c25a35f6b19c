import assert from "node:assert/strict";
import { sleep } from "./sleep.ts";

Deno.test("sleep resolves after its delay", async () => {
  const start = performance.now();
  await sleep(5).promise;
  // Timers may fire a little early on some platforms; allow 1 ms of slack.
  assert.ok(performance.now() - start >= 4);
});

Deno.test("sleep: wake resolves early and clears the timer", async () => {
  const s = sleep(60_000);
  let done = false;
  s.promise.then(() => done = true);
  await Promise.resolve();
  assert.equal(done, false);
  s.wake();
  await s.promise;
  assert.equal(done, true);
  s.wake(); // a second wake does nothing
  // Deno's sanitizer fails the test if the 60 s timer were still pending.
});
