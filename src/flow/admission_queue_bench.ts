/**
 * Cost of one request through the router queue: enqueue, dispatch (DRR pick), `started`. At depth
 * 0 (the queue holds only this request) and at depth 1 000 (1 000 requests of 10 tenants wait in
 * two classes; each iteration adds one and lets one go, so the depth stays). Real-time scheduler
 * with a max wait, so the class timer is armed as in the router. With and without an abort signal
 * (the router passes the client's), and in the promise form the router awaits.
 *
 * Run: `deno bench -A src/flow/admission_queue_bench.ts`
 */

import { AdmissionQueue } from "./admission_queue.ts";
import { realScheduler } from "./scheduler.ts";
import { queueConfig } from "./testing.ts";
import type { Admission } from "./types.ts";
import { TimerQueue } from "../util/timer_queue.ts";

function makeQueue(depth: number): AdmissionQueue {
  const q = new AdmissionQueue({
    config: queueConfig({}, { interactive: { maxWaitMs: 600_000 }, batch: { maxWaitMs: 600_000 } }),
    scheduler: realScheduler(new TimerQueue()),
  });
  for (let i = 0; i < depth; i++) {
    q.submit({ class: i % 2 === 0 ? "interactive" : "batch", tenant: `t${i % 10}` }, noop);
  }
  return q;
}

const noop = () => {};
const start = (a: Admission) => {
  if (a.ok) a.started();
};

const q0 = makeQueue(0);
const q1000 = makeQueue(1000);
const q1000s = makeQueue(1000);
let n = 0;

Deno.bench({
  name: "submit + dispatch + started, depth 0",
  group: "queue",
  baseline: true,
  fn() {
    q0.submit({ class: "interactive", tenant: "a" }, start);
    q0.wake(1);
  },
});

Deno.bench({
  name: "submit + dispatch + started, depth 1000",
  group: "queue",
  fn() {
    q1000.submit({ class: "interactive", tenant: `t${n++ % 10}` }, start);
    q1000.wake(1);
  },
});

Deno.bench({
  name: "submit + dispatch + started, depth 1000, with abort signal",
  group: "queue",
  fn() {
    const ac = new AbortController();
    q1000s.submit({ class: "interactive", tenant: `t${n++ % 10}`, signal: ac.signal }, start);
    q1000s.wake(1);
  },
});

const p0 = makeQueue(0);
Deno.bench({
  name: "enqueue + await dispatch (promise), depth 0",
  group: "promise",
  async fn() {
    const p = p0.enqueue({ class: "interactive", tenant: "a" });
    p0.wake(1);
    start(await p);
  },
});
