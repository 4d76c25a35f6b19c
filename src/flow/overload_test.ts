/**
 * The overload experiment on a small fleet: every request accounted for, nothing left behind, the
 * router queue beating no queue on interactive TTFT and goodput, DRR protecting the light tenant,
 * and the same seed giving the same result.
 */

import assert from "node:assert/strict";
import { main, type OverloadOptions, runOverload } from "./overload.ts";

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
  // LIFO sends fresh ones: more goodput than no queue and than FCFS.
  assert.ok(mode("queue_lifo").goodputPerS > direct.goodputPerS);
  assert.ok(mode("queue_lifo").goodputPerS > queue.goodputPerS);
  assert.ok(direct.maxEngineWaiting > 10 * queue.maxEngineWaiting);
  // DRR: the light tenant gets more of its requests served, and sooner, than under FCFS.
  const alice = queue.streams["alice/interactive"];
  const aliceFcfs = mode("queue_fcfs").streams["alice/interactive"];
  assert.ok(alice.served > aliceFcfs.served, `alice ${alice.served} vs ${aliceFcfs.served}`);
  assert.ok(alice.ttftP95Ms < aliceFcfs.ttftP95Ms);
  // Shed answers, not engine queues, absorb the excess.
  assert.ok((queue.classes.batch.lost.timeout ?? 0) > 0);
  assert.deepEqual(runOverload(SMALL), r);
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
  } finally {
    console.log = log;
    console.error = error;
  }
});
