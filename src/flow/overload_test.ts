/**
 * The overload experiment on a small fleet: every request accounted for, nothing left behind, the
 * router queue beating no queue on interactive TTFT and goodput, DRR protecting the light tenant,
 * and the same seed giving the same result.
 */

import assert from "node:assert/strict";
import { type OverloadOptions, runOverload, SCENARIOS } from "./overload.ts";
import { main } from "./overload_cli.ts";

const SMALL: OverloadOptions = { workers: 2, durationMs: 10_000, seed: 7 };

Deno.test("overload: accounting, queue vs direct, DRR vs FCFS, determinism", () => {
  const r = runOverload(SMALL);
  assert.ok(r.arrivalPerS > 2 * r.capacityPerS, "the scenario is not an overload");
  const mode = (m: string) => r.modes.find((x) => x.mode === m)!;
  for (const m of r.modes) {
    assert.equal(m.leftover, 0, `${m.mode} left requests behind`);
    for (const [name, c] of Object.entries({ ...m.classes, ...m.streams })) {
      const lost = Object.values(c.lost).reduce((a, b) => a + b, 0);
      assert.equal(c.served + lost, c.sent, `${m.mode} ${name}`);
      assert.equal(c.lost.unfinished, undefined);
    }
  }
  const direct = mode("direct");
  const queue = mode("queue");
  assert.ok(
    queue.classes.interactive.ttftP95Ms * 5 < direct.classes.interactive.ttftP95Ms,
    `interactive p95: queue ${queue.classes.interactive.ttftP95Ms}, direct ${direct.classes.interactive.ttftP95Ms}`,
  );
  // FCFS under sustained overload sends requests that already waited about max wait (late);
  // LIFO sends fresh ones: more goodput than no queue and than FCFS; adaptive (the default, in
  // mode queue) turns to LIFO under sustained overload and keeps that goodput.
  const fcfs = mode("queue_fcfs");
  assert.ok(mode("queue_lifo").goodputPerS > direct.goodputPerS);
  assert.ok(mode("queue_lifo").goodputPerS > fcfs.goodputPerS);
  assert.ok(queue.goodputPerS > fcfs.goodputPerS);
  assert.ok(queue.goodputPerS > direct.goodputPerS);
  assert.ok(direct.maxEngineWaiting > 10 * queue.maxEngineWaiting);
  // DRR: the light tenant gets more of its requests served, and sooner, than with one key for all.
  const alice = queue.streams["alice/interactive"];
  const aliceOne = mode("queue_no_drr").streams["alice/interactive"];
  assert.ok(alice.served > aliceOne.served, `alice ${alice.served} vs ${aliceOne.served}`);
  assert.ok(alice.metTargetShare > aliceOne.metTargetShare);
  // Shed answers, not engine queues, absorb the excess.
  assert.ok((queue.classes.batch.lost.timeout ?? 0) > 0);
  assert.deepEqual(runOverload(SMALL), r);
});

Deno.test("overload, priority scenario: the queue meets the interactive target, 503s do not", () => {
  const r = runOverload({
    durationMs: 30_000,
    seed: 7,
    streams: SCENARIOS.priority,
    modes: ["reject", "queue"],
  });
  const [reject, queue] = r.modes;
  assert.ok(queue.classes.interactive.metTargetShare >= 0.95, JSON.stringify(queue.classes));
  assert.ok(queue.classes.interactive.ttftP95Ms <= 1000);
  assert.ok(reject.classes.interactive.metTargetShare < 0.6, JSON.stringify(reject.classes));
  assert.ok(queue.goodputPerS > reject.goodputPerS);
});

Deno.test("overload main: help, bad flags, a bad --max-wait", () => {
  const log = console.log;
  const error = console.error;
  const out: string[] = [];
  console.log = (s: string) => out.push(s);
  console.error = (s: string) => out.push(s);
  try {
    assert.equal(main(["--help"]), 0);
    assert.match(out.join("\n"), /Usage: overload/);
    assert.equal(main(["--bogus"]), 2);
    assert.equal(main(["--workers", "0"]), 2);
    assert.equal(main(["--max-wait", "interactive"]), 2);
    assert.equal(main(["--modes", "queue,nope"]), 2);
    assert.match(out.at(-1)!, /--modes takes direct, reject, queue, queue_fcfs, queue_lifo/);
    assert.equal(main(["--scenario", "nope"]), 2);
    assert.match(out.at(-1)!, /--scenario takes flood, priority/);
  } finally {
    console.log = log;
    console.error = error;
  }
});
