import assert from "node:assert/strict";
import fc from "fast-check";
import { type TimerEntry, TimerQueue } from "./timer_queue.ts";

/** Runs `fn` with a ref'd timer held: the queue's own timer is unref'd and keeps nothing alive. */
async function held<T>(fn: () => Promise<T>): Promise<T> {
  const keep = setTimeout(() => {}, 60_000);
  try {
    return await fn();
  } finally {
    clearTimeout(keep);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("timer queue: due entries fire in time order; cancelled ones never; moved ones at their new time", async () => {
  await held(async () => {
    const q = new TimerQueue();
    const fired: string[] = [];
    const e = (name: string) => TimerQueue.entry(() => fired.push(name));
    const a = e("a"), b = e("b"), c = e("c"), d = e("d");
    const t = performance.now();
    q.schedule(c, t + 45);
    q.schedule(a, t + 15);
    q.schedule(b, t + 30);
    q.schedule(d, t + 20);
    q.cancel(d);
    q.schedule(c, t + 5); // moved earlier
    assert.equal(q.size, 3);
    await sleep(80);
    assert.deepEqual(fired, ["c", "a", "b"]);
    assert.equal(q.size, 0);
    assert.equal(d.pos, -1);
    // A callback may schedule again.
    let n = 0;
    const again: TimerEntry = TimerQueue.entry(() => {
      if (++n < 3) q.schedule(again, performance.now() + 5);
    });
    q.schedule(again, performance.now() + 5);
    await sleep(80);
    assert.equal(n, 3);
  });
});

Deno.test("timer queue: a callback that cancels or moves another entry due in the same firing wins", async () => {
  await held(async () => {
    const q = new TimerQueue();
    const fired: string[] = [];
    const cancelled = TimerQueue.entry(() => fired.push("cancelled"));
    const moved = TimerQueue.entry(() => fired.push("moved"));
    const first = TimerQueue.entry(() => {
      fired.push("first");
      q.cancel(cancelled);
      q.schedule(moved, performance.now() + 60);
    });
    const t = performance.now() + 10;
    q.schedule(first, t);
    q.schedule(cancelled, t + 0.2); // all three fall in one firing (1 ms of slack)
    q.schedule(moved, t + 0.4);
    await sleep(40);
    assert.deepEqual(fired, ["first"], "the cancelled one never fires, the moved one not yet");
    assert.equal(q.size, 1);
    await sleep(80);
    assert.deepEqual(fired, ["first", "moved"], "the moved one fires once, at its new time");
    assert.equal(cancelled.pos, -1);
  });
});

Deno.test("timer queue: one timer for deadlines started in due order; re-armed only when an earlier one comes", () => {
  {
    const real = globalThis.setTimeout;
    let armed = 0;
    let lastDelay: number | undefined;
    // deno-lint-ignore no-explicit-any
    (globalThis as any).setTimeout = (...args: Parameters<typeof setTimeout>) => {
      armed++;
      lastDelay = args[1];
      return real(...args);
    };
    const q = new TimerQueue();
    const entries: TimerEntry[] = [];
    try {
      const t = performance.now();
      for (let i = 0; i < 1000; i++) {
        const e = TimerQueue.entry(() => {});
        entries.push(e);
        q.schedule(e, t + 10_000 + i);
      }
      assert.equal(armed, 1);
      for (const e of entries.slice(0, 500)) q.cancel(e); // ending in time arms nothing
      assert.equal(armed, 1);
      q.schedule(TimerQueue.entry(() => {}), t + 5_000); // an earlier one re-arms
      assert.equal(armed, 2);
      // A deadline beyond setTimeout's range (2^31 − 1 ms) is approached in steps, not fired now.
      const far = new TimerQueue();
      const farEntry = TimerQueue.entry(() => {});
      far.schedule(farEntry, t + 2 ** 33);
      assert.equal(lastDelay, 2 ** 31 - 1);
      far.cancel(farEntry);
    } finally {
      globalThis.setTimeout = real;
      for (const e of entries) q.cancel(e);
    }
  }
});

Deno.test("timer queue: a throwing callback is reported and the others still fire", async () => {
  await held(async () => {
    const reported: unknown[] = [];
    const onError = (ev: ErrorEvent) => {
      reported.push(ev.error);
      ev.preventDefault();
    };
    globalThis.addEventListener("error", onError);
    try {
      const q = new TimerQueue();
      let ok = false;
      const t = performance.now();
      q.schedule(
        TimerQueue.entry(() => {
          throw new Error("boom");
        }),
        t + 5,
      );
      q.schedule(TimerQueue.entry(() => ok = true), t + 5);
      await sleep(40);
      assert.equal(ok, true);
      assert.equal(reported.length, 1);
      assert.equal((reported[0] as Error).message, "boom");
    } finally {
      globalThis.removeEventListener("error", onError);
    }
  });
});

Deno.test("timer queue (property): after any schedule/move/cancel sequence, size and earliest match a model", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.nat(15), fc.boolean(), fc.integer({ min: 1_000_000, max: 2_000_000 })),
        { maxLength: 200 },
      ),
      (ops) => {
        const q = new TimerQueue();
        const entries = Array.from({ length: 16 }, () => TimerQueue.entry(() => {}));
        const model = new Map<number, number>();
        try {
          for (const [i, cancel, at] of ops) {
            if (cancel) {
              q.cancel(entries[i]);
              model.delete(i);
            } else {
              q.schedule(entries[i], performance.now() + at);
              model.set(i, entries[i].at);
            }
            assert.equal(q.size, model.size);
            assert.equal(q.nextAt, Math.min(Infinity, ...model.values()));
            for (const [j, e] of entries.entries()) assert.equal(e.pos >= 0, model.has(j));
          }
        } finally {
          for (const e of entries) q.cancel(e);
        }
      },
    ),
  );
});

Deno.test("timer queue: a pending deadline does not keep the process alive (subprocess)", async () => {
  // A child schedules deadlines a minute away, on a queue of its own and on the shared one, and
  // ends its script. Its timer is unref'd, so the child exits at once with nothing fired; a ref'd
  // timer would hold it for the minute, and the kill below would end it instead.
  const module = new URL("./timer_queue.ts", import.meta.url).href;
  const script = `
    import { deadlineTimers, TimerQueue } from ${JSON.stringify(module)};
    const fire = () => console.log("fired");
    new TimerQueue().schedule(TimerQueue.entry(fire), performance.now() + 60_000);
    deadlineTimers.schedule(TimerQueue.entry(fire), performance.now() + 60_000);
    console.log("scheduled");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(15_000),
  }).output();
  assert.equal(out.signal, null, "the child was killed: a deadline kept it alive");
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout), "scheduled\n");
});
