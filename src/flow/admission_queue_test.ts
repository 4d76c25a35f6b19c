/**
 * AdmissionQueue: priority order under a burst, bounds and sheds with Retry-After, fairness under
 * a flooding tenant, aborts, max wait, requeue at the front, in-transit accounting, close and
 * reload. Virtual time throughout except one real-time max-wait check.
 */

import assert from "node:assert/strict";
import { percentile } from "../bench/stats.ts";
import { AdmissionQueue } from "./admission_queue.ts";
import { realScheduler, VirtualScheduler } from "./scheduler.ts";
import { drive, FakeFleet, queueConfig, settle } from "./testing.ts";
import type { Admission, Dispatched, Shed } from "./types.ts";

function dispatched(a: Admission | undefined): Dispatched {
  assert.ok(a?.ok, `expected a dispatch, got ${JSON.stringify(a)}`);
  return a as Dispatched;
}

function shed(a: Admission | undefined): Shed {
  assert.ok(a !== undefined && !a.ok, `expected a shed, got ${JSON.stringify(a)}`);
  return a as Shed;
}

/** A queue without capacity callback, driven by `wake`, recording outcomes by request name. */
function manual(config = queueConfig()) {
  const sched = new VirtualScheduler();
  const queue = new AdmissionQueue({ config, scheduler: sched });
  const out = new Map<string, Admission>();
  const order: string[] = [];
  const add = (name: string, cls: string, tenant = "t", signal?: AbortSignal, cost?: number) =>
    queue.submit({ class: cls, tenant, signal, cost }, (a) => {
      out.set(name, a);
      if (a.ok) order.push(name);
    });
  return { sched, queue, out, order, add };
}

const BURST_CASES: ReadonlyArray<{ name: string; pattern: (i: number) => string }> = [
  { name: "all interactive", pattern: () => "interactive" },
  { name: "alternating", pattern: (i) => (i % 2 === 0 ? "interactive" : "batch") },
  { name: "batch first, then interactive", pattern: (i) => (i < 25 ? "batch" : "interactive") },
  { name: "one interactive in ten", pattern: (i) => (i % 10 === 9 ? "interactive" : "batch") },
];

for (const c of BURST_CASES) {
  Deno.test(`burst of 50 on 2 workers × max_inflight 2, ${c.name}: priority order, none lost`, async () => {
    const sched = new VirtualScheduler();
    const fleet = new FakeFleet(sched, {
      workers: 2,
      maxInflight: 2,
      serviceMs: 100,
      queue: { config: queueConfig() },
    });
    for (let i = 0; i < 50; i++) fleet.arrive(0, c.pattern(i), `tenant-${i % 3}`);
    await drive(sched);
    assert.equal(fleet.served.length, 50);
    assert.equal(fleet.served.filter((s) => s.shed !== null).length, 0);
    const queued = fleet.served.filter((s) => s.queuedOrder >= 0)
      .sort((a, b) => a.queuedOrder - b.queuedOrder);
    assert.equal(queued.length, 46); // 4 slots taken at once, the rest waited
    const firstBatch = queued.findIndex((s) => s.className === "batch");
    if (firstBatch >= 0) {
      assert.ok(
        queued.slice(firstBatch).every((s) => s.className === "batch"),
        "an interactive request was dispatched after a batch one",
      );
    }
    // Within the interactive class, three tenants alternate (DRR, quantum 1).
    const tenants = queued.filter((s) => s.className === "interactive").slice(0, 6)
      .map((s) => s.tenant);
    if (tenants.length === 6) assert.equal(new Set(tenants.slice(0, 3)).size, 3);
    const stats = fleet.queue.stats();
    assert.equal(stats.depth, 0);
    assert.equal(stats.inTransit, 0);
    assert.deepEqual(fleet.inflight, [0, 0]);
  });
}

const FULL_CASES: ReadonlyArray<{
  name: string;
  config: ReturnType<typeof queueConfig>;
  fill: ReadonlyArray<string>;
  arriving: string;
  expect: { arriving: "queued" | "queue_full"; displaced: number };
}> = [
  {
    name: "whole queue full, same class",
    config: queueConfig({ maxTotal: 3 }),
    fill: ["interactive", "interactive", "interactive"],
    arriving: "interactive",
    expect: { arriving: "queue_full", displaced: 0 },
  },
  {
    name: "class full",
    config: queueConfig({}, { batch: { maxQueue: 2 } }),
    fill: ["batch", "batch"],
    arriving: "batch",
    expect: { arriving: "queue_full", displaced: 0 },
  },
  {
    name: "class that never waits",
    config: queueConfig({}, { batch: { maxQueue: 0 } }),
    fill: [],
    arriving: "batch",
    expect: { arriving: "queue_full", displaced: 0 },
  },
  {
    name: "whole queue full, higher class displaces the newest sheddable",
    config: queueConfig({ maxTotal: 3 }),
    fill: ["batch", "batch", "interactive"],
    arriving: "interactive",
    expect: { arriving: "queued", displaced: 1 },
  },
  {
    name: "whole queue full, lower class is not sheddable",
    config: queueConfig({ maxTotal: 3 }, { batch: { sheddable: false } }),
    fill: ["batch", "batch", "interactive"],
    arriving: "interactive",
    expect: { arriving: "queue_full", displaced: 0 },
  },
  {
    name: "whole queue full, lower class cannot displace a higher one",
    config: queueConfig({ maxTotal: 2 }),
    fill: ["interactive", "interactive"],
    arriving: "batch",
    expect: { arriving: "queue_full", displaced: 0 },
  },
];

for (const c of FULL_CASES) {
  Deno.test(`a full queue sheds with Retry-After: ${c.name}`, () => {
    const { queue, out, add } = manual(c.config);
    c.fill.forEach((cls, i) => add(`f${i}`, cls));
    add("new", c.arriving);
    const displaced = [...out.values()].filter((a) => !a.ok && a.reason === "displaced");
    assert.equal(displaced.length, c.expect.displaced);
    if (c.expect.displaced > 0) {
      // The newest sheddable request gave up its place: f1, not f0.
      assert.equal(shed(out.get("f1")).reason, "displaced");
      assert.equal(out.get("f0"), undefined);
    }
    const got = out.get("new");
    if (c.expect.arriving === "queued") assert.equal(got, undefined);
    else {
      const s = shed(got);
      assert.equal(s.reason, "queue_full");
      assert.equal(s.status, 429);
      assert.ok(Number.isInteger(s.retryAfterS) && s.retryAfterS! >= 1);
      assert.match(s.message, /^[A-Z].*[^.]$/);
    }
    for (const d of displaced) {
      assert.equal((d as Shed).status, 429);
      assert.ok((d as Shed).retryAfterS! >= 1);
    }
    assert.equal(queue.depth, c.fill.length - c.expect.displaced + (got === undefined ? 1 : 0));
  });
}

Deno.test("queue_full Retry-After follows the recent dispatch rate and the queue ahead", () => {
  const { sched, queue, out, add } = manual(queueConfig({ maxTotal: 21 }));
  // 100 dispatches over 10 s: a decayed rate of about 6.3/s (τ = 10 s).
  for (let i = 0; i < 100; i++) {
    add(`d${i}`, "interactive");
    queue.wake(1);
    sched.advance(100);
  }
  for (let i = 0; i < 21; i++) add(`w${i}`, "interactive");
  add("refused", "interactive");
  const rate = queue.stats().dispatchRatePerS;
  assert.ok(rate > 5 && rate < 8, `rate ${rate}`);
  const s = shed(out.get("refused"));
  assert.equal(s.retryAfterS, Math.ceil(22 / rate));
});

Deno.test("a flooding tenant leaves another tenant's p95 wait within one service time (DRR)", async () => {
  // 4 slots, 100 ms per request: 40 dispatches/s. Tenant A puts 400 requests in at t=0 (10 s of
  // work). Tenant B sends one every 200 ms (5/s, below its fair share of 20/s), so B never has
  // more than one request waiting. Bound: when B's request arrives, B's flow joins the DRR ring
  // behind A; A's turn lets at most one more A request go (quantum 1), then B's goes. Every busy
  // slot frees within one service time, so two dispatches happen within 100 ms of any instant:
  // B waits at most 100 ms. FCFS would make B wait behind A's backlog (seconds).
  const run = async (tenantOfB: string) => {
    const sched = new VirtualScheduler();
    const fleet = new FakeFleet(sched, {
      workers: 2,
      maxInflight: 2,
      serviceMs: 100,
      queue: { config: queueConfig() },
    });
    for (let i = 0; i < 400; i++) fleet.arrive(0, "interactive", "A");
    for (let i = 0; i < 40; i++) fleet.arrive(10 + 200 * i, "interactive", tenantOfB);
    await drive(sched);
    const waits = (pick: (id: number) => boolean) =>
      fleet.served.filter((s) => pick(s.id)).map((s) => s.startedAt! - s.arrivedAt);
    assert.equal(fleet.served.filter((s) => s.shed !== null).length, 0);
    return { a: waits((id) => id < 400), b: waits((id) => id >= 400) };
  };
  const fair = await run("B");
  assert.equal(fair.b.length, 40);
  assert.ok(percentile(fair.b, 95) <= 100, `B p95 wait ${percentile(fair.b, 95)} ms`);
  assert.ok(Math.max(...fair.b) <= 100, `B max wait ${Math.max(...fair.b)} ms`);
  assert.ok(percentile(fair.a, 95) > 5000, "A's flood did not build a backlog");
  // The same arrivals under one tenant id (FCFS within the flow): B's requests wait seconds.
  const fifo = await run("A");
  assert.ok(percentile(fifo.b, 95) > 1000, `FCFS p95 ${percentile(fifo.b, 95)} ms`);
});

Deno.test("an aborted queued request never dispatches and leaves depth at 0", () => {
  const { queue, out, add } = manual(
    queueConfig({}, { interactive: { maxWaitMs: 5000 } }),
  );
  const ac = new AbortController();
  add("a", "interactive", "t", ac.signal);
  assert.equal(queue.depth, 1);
  ac.abort();
  const s = shed(out.get("a"));
  assert.equal(s.reason, "aborted");
  assert.equal(s.status, 499);
  assert.equal(s.retryAfterS, null);
  const st = queue.stats();
  assert.equal(st.depth, 0);
  assert.equal(st.classes.interactive.depth, 0);
  assert.equal(st.tenants.other.depth, 0);
  assert.equal(st.classes.interactive.shed.aborted, 1);
  assert.equal(queue.wake(10), 0);
  assert.equal(st.classes.interactive.dispatched, 0);
  // Already aborted on arrival: refused at once, never counted as waiting.
  add("b", "interactive", "t", AbortSignal.abort());
  assert.equal(shed(out.get("b")).reason, "aborted");
  assert.equal(queue.depth, 0);
});

Deno.test("an abort after dispatch changes nothing (the listener is gone)", () => {
  const { queue, out, add } = manual();
  const ac = new AbortController();
  let calls = 0;
  queue.submit({ class: "interactive", tenant: "t", signal: ac.signal }, () => calls++);
  add("other", "interactive");
  queue.wake(1);
  ac.abort();
  assert.equal(calls, 1);
  assert.equal(queue.depth, 1);
  assert.equal(out.get("other"), undefined);
});

Deno.test("max wait sheds in time (virtual clock), the next deadline re-armed", () => {
  const { sched, queue, out, add } = manual(
    queueConfig({}, { interactive: { maxWaitMs: 1000 } }),
  );
  add("a", "interactive");
  sched.advance(300);
  add("b", "interactive");
  sched.advance(699); // t = 999
  assert.equal(out.size, 0);
  sched.advance(1); // t = 1000
  const s = shed(out.get("a"));
  assert.equal(s.reason, "timeout");
  assert.equal(s.status, 429);
  assert.equal(s.waitedMs, 1000);
  assert.ok(s.retryAfterS! >= 1);
  assert.equal(out.get("b"), undefined);
  sched.advance(299); // t = 1299
  assert.equal(out.get("b"), undefined);
  sched.advance(1);
  assert.equal(shed(out.get("b")).waitedMs, 1000);
  assert.equal(queue.depth, 0);
});

Deno.test("max wait sheds in real time too (realScheduler)", async () => {
  const queue = new AdmissionQueue({
    config: queueConfig({}, { interactive: { maxWaitMs: 30 } }),
    scheduler: realScheduler(),
  });
  // The queue's timers are unref'd (in the router, the client's connection keeps the process
  // alive); here a plain timer does.
  const keepAlive = setTimeout(() => {}, 5000);
  const t0 = performance.now();
  const a = await queue.enqueue({ class: "interactive", tenant: "t" });
  clearTimeout(keepAlive);
  assert.equal(shed(a).reason, "timeout");
  assert.ok(performance.now() - t0 >= 25);
  assert.equal(queue.depth, 0);
});

Deno.test("a request that lost the race goes back to the front of its tenant's flow", () => {
  const { queue, order, add, out } = manual();
  add("a1", "interactive", "A");
  add("a2", "interactive", "A");
  add("b1", "interactive", "B");
  queue.wake(1);
  assert.deepEqual(order, ["a1"]);
  assert.equal(queue.inTransit, 1);
  const first = dispatched(out.get("a1"));
  let again: Admission | undefined;
  first.requeueThen((a) => (again = a));
  assert.equal(queue.inTransit, 0);
  assert.equal(queue.depth, 3);
  // a1 keeps its place and its turn: it goes before a2 and before B's turn.
  assert.equal(queue.wake(1), 1);
  assert.equal(dispatched(again).tenant, "A");
  queue.wake(1);
  assert.deepEqual(order, ["a1", "b1"]);
  assert.equal(queue.stats().classes.interactive.requeued, 1);
});

Deno.test("requeue of a tenant's only request puts its flow at the head of the ring", async () => {
  const sched = new VirtualScheduler();
  const fleet = new FakeFleet(sched, {
    workers: 1,
    maxInflight: 1,
    serviceMs: 100,
    queue: { config: queueConfig() },
  });
  fleet.arrive(0, "interactive", "X"); // takes the slot
  fleet.arrive(1, "interactive", "A");
  for (let i = 0; i < 5; i++) fleet.arrive(2, "interactive", "B");
  sched.at(50, () => (fleet.stealNext = 1)); // A's first dispatch finds no worker
  await drive(sched);
  const queued = fleet.served.filter((s) => s.queuedOrder >= 0)
    .sort((a, b) => a.queuedOrder - b.queuedOrder).map((s) => s.tenant);
  assert.deepEqual(queued, ["A", "B", "B", "B", "B", "B"]);
  assert.equal(fleet.queue.stats().classes.interactive.requeued, 1);
  assert.equal(fleet.queue.inTransit, 0);
});

Deno.test("onCapacity counts requests in transit against free capacity", () => {
  const sched = new VirtualScheduler();
  let free = 2;
  const queue = new AdmissionQueue({
    config: queueConfig(),
    scheduler: sched,
    capacity: () => free,
  });
  const got: Dispatched[] = [];
  for (let i = 0; i < 5; i++) {
    queue.submit({ class: "interactive", tenant: "t" }, (a) => got.push(dispatched(a)));
  }
  assert.equal(queue.onCapacity(), 2);
  assert.equal(queue.onCapacity(), 0);
  got[0].started();
  got[0].started(); // idempotent
  free = 1; // the started request now holds a slot
  assert.equal(queue.onCapacity(), 0);
  free = 2;
  assert.equal(queue.onCapacity(), 1);
  assert.equal(queue.inTransit, 2);
  assert.throws(() => got[0].requeueThen(() => {}), /requeue after started/);
});

Deno.test("close sheds waiting requests with 503 and refuses new ones", async () => {
  const { queue, out, add } = manual(queueConfig({}, { interactive: { maxWaitMs: 1000 } }));
  add("a", "interactive");
  add("b", "batch");
  queue.close();
  assert.equal(shed(out.get("a")).status, 503);
  assert.equal(shed(out.get("b")).reason, "closed");
  const late = await queue.enqueue({ class: "interactive", tenant: "t" });
  assert.equal(shed(late).reason, "closed");
  assert.equal(queue.depth, 0);
});

Deno.test("update: a removed class sheds its requests, a new max wait moves deadlines", () => {
  const { sched, queue, out, add } = manual(
    queueConfig({}, { interactive: { maxWaitMs: 10_000 } }),
  );
  add("a", "interactive");
  add("b", "batch");
  const only = queueConfig();
  queue.update({
    ...only,
    classes: [{ ...only.classes[0], maxWaitMs: 500 }],
  });
  assert.equal(shed(out.get("b")).reason, "closed");
  sched.advance(499);
  assert.equal(out.get("a"), undefined);
  sched.advance(1);
  assert.equal(shed(out.get("a")).reason, "timeout");
  assert.throws(() => add("c", "batch"), /unknown priority class "batch", valid: interactive/);
});

Deno.test("stats and observer: counts by class, reason and tenant label", () => {
  const sched = new VirtualScheduler();
  const seen: string[] = [];
  const queue = new AdmissionQueue({
    config: queueConfig({ maxTotal: 2 }),
    scheduler: sched,
    labelOf: (t) => (t === "gold" ? "gold" : "other"),
    observer: {
      dispatched: (c, t, ms) => seen.push(`dispatched ${c} ${t} ${ms}`),
      shed: (c, t, r, ms) => seen.push(`shed ${c} ${t} ${r} ${ms}`),
    },
  });
  queue.submit({ class: "interactive", tenant: "gold" }, () => {});
  queue.submit({ class: "batch", tenant: "x1" }, () => {});
  queue.submit({ class: "batch", tenant: "x2" }, () => {});
  sched.advance(40);
  queue.wake(2);
  assert.deepEqual(seen, [
    "shed batch other queue_full 0",
    "dispatched interactive gold 40",
    "dispatched batch other 40",
  ]);
  const st = queue.stats();
  assert.equal(st.classes.batch.shed.queue_full, 1);
  assert.equal(st.classes.batch.dispatched, 1);
  assert.deepEqual(st.tenants, {
    gold: { depth: 0, dispatched: 1, shed: 0 },
    other: { depth: 0, dispatched: 1, shed: 1 },
  });
});

Deno.test("enqueue resolves through a promise for the router's await", async () => {
  const sched = new VirtualScheduler();
  const queue = new AdmissionQueue({ config: queueConfig(), scheduler: sched });
  const p = queue.enqueue({ class: "batch", tenant: "t" });
  queue.wake(1);
  const a = dispatched(await p);
  assert.equal(a.className, "batch");
  const back = a.requeue();
  await settle();
  queue.wake(1);
  dispatched(await back).started();
  assert.equal(queue.inTransit, 0);
});

Deno.test("a metrics hook that throws does not leave a request unanswered", () => {
  const queue = new AdmissionQueue({
    config: queueConfig(),
    scheduler: new VirtualScheduler(),
    observer: {
      dispatched: () => {
        throw new Error("broken hook");
      },
    },
  });
  let got: Admission | undefined;
  queue.submit({ class: "interactive", tenant: "t" }, (a) => (got = a));
  queue.wake(1);
  dispatched(got).started();
  assert.equal(queue.inTransit, 0);
});

Deno.test("order: lifo in a class sends a tenant's newest request first; update switches it", () => {
  const lifo = queueConfig({}, { interactive: { order: "lifo" } });
  const { queue, order, add } = manual(lifo);
  for (const n of ["a1", "a2", "a3"]) add(n, "interactive", "A");
  queue.wake(1);
  assert.deepEqual(order, ["a3"]);
  queue.update(queueConfig());
  queue.wake(2);
  assert.deepEqual(order, ["a3", "a1", "a2"]);
});

Deno.test("order: adaptive is FCFS while the oldest waited under half its max wait, then LIFO", () => {
  const adaptive = queueConfig({}, { interactive: { order: "adaptive", maxWaitMs: 1000 } });
  const { sched, queue, order, add } = manual(adaptive);
  for (const n of ["a1", "a2", "a3", "a4", "a5"]) add(n, "interactive", "A");
  queue.wake(1);
  sched.advance(499);
  queue.wake(1);
  assert.deepEqual(order, ["a1", "a2"], "a draining queue goes in arrival order");
  sched.advance(1); // the oldest (a3) has waited 500 ms, half of max wait
  queue.wake(1);
  assert.deepEqual(order, ["a1", "a2", "a5"], "a standing queue sends the newest first");
  add("a6", "interactive", "A");
  queue.wake(1);
  assert.deepEqual(order, ["a1", "a2", "a5", "a6"]);
});
