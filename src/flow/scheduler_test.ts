/** VirtualScheduler ordering and timers; realScheduler timers fire and cancel. */

import assert from "node:assert/strict";
import { TimerQueue } from "../util/timer_queue.ts";
import { realScheduler, VirtualScheduler } from "./scheduler.ts";

Deno.test("VirtualScheduler: time order, ties in scheduling order, past times run now", () => {
  const s = new VirtualScheduler(100);
  const seen: string[] = [];
  s.at(300, () => seen.push(`c@${s.now()}`));
  s.at(200, () => seen.push(`a@${s.now()}`));
  s.at(200, () => {
    seen.push(`b@${s.now()}`);
    s.at(0, () => seen.push(`late@${s.now()}`));
  });
  s.runUntil(250);
  assert.deepEqual(seen, ["a@200", "b@200", "late@200"]);
  assert.equal(s.now(), 250);
  s.run();
  assert.deepEqual(seen.at(-1), "c@300");
});

Deno.test("VirtualScheduler timers: re-arming replaces, cancel stops", () => {
  const s = new VirtualScheduler();
  let fired: number[] = [];
  const t = s.timer(() => fired.push(s.now()));
  t.schedule(100);
  t.schedule(50);
  s.advance(200);
  assert.deepEqual(fired, [50]);
  fired = [];
  t.schedule(300);
  t.cancel();
  s.run();
  assert.deepEqual(fired, []);
});

Deno.test("realScheduler timers fire once on their queue and can be cancelled", async () => {
  const queue = new TimerQueue();
  const s = realScheduler(queue);
  const keepAlive = setTimeout(() => {}, 5000);
  const { promise, resolve } = Promise.withResolvers<void>();
  let cancelled = 0;
  const c = s.timer(() => cancelled++);
  c.schedule(s.now() + 5);
  c.cancel();
  s.timer(resolve).schedule(s.now() + 10);
  await promise;
  clearTimeout(keepAlive);
  assert.equal(cancelled, 0);
  assert.equal(queue.size, 0);
});
