import assert from "node:assert/strict";
import { AttemptDeadlines, dialTarget, UpstreamTimeout, UpstreamUnreachable } from "./deadlines.ts";

const OFF = { connectMs: 0, ttfbMs: 0, idleMs: 0, totalMs: 0, dial: null, label: "Worker w1" };

/** Resolves with the abort reason once `d.signal` aborts, or "none" after `ms`. */
function outcome(d: AttemptDeadlines, ms: number): Promise<unknown> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve("none"), ms);
    d.signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve(d.reason);
    });
  });
}

Deno.test("first-byte deadline fires while waiting, not once the first byte came", async () => {
  const d = AttemptDeadlines.start({ ...OFF, ttfbMs: 30 }, new AbortController().signal);
  const r = await outcome(d, 500);
  d.end();
  assert.ok(r instanceof UpstreamTimeout);
  assert.equal(r.kind, "ttfb-timeout");
  assert.equal(r.message, "Worker w1 sent no response byte within 30 ms");

  const ok = AttemptDeadlines.start({ ...OFF, ttfbMs: 30 }, new AbortController().signal);
  ok.headers();
  ok.firstByte();
  assert.equal(await outcome(ok, 80), "none");
  ok.end();
});

Deno.test("idle deadline: chunks keep it off, a pause trips it", async () => {
  const d = AttemptDeadlines.start(
    { ...OFF, idleMs: 40, totalMs: 10_000 },
    new AbortController().signal,
  );
  d.headers();
  d.firstByte();
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 20));
    d.chunk();
  }
  assert.equal(d.signal.aborted, false, "100 ms of chunks 20 ms apart");
  const r = await outcome(d, 500);
  d.end();
  assert.ok(r instanceof UpstreamTimeout);
  assert.equal(r.kind, "idle-timeout");
});

Deno.test("total deadline applies in every phase; end() clears everything", async () => {
  const d = AttemptDeadlines.start({ ...OFF, totalMs: 30 }, new AbortController().signal);
  d.headers();
  d.firstByte();
  const r = await outcome(d, 500);
  d.end();
  assert.ok(r instanceof UpstreamTimeout && r.kind === "timeout");

  const ended = AttemptDeadlines.start(
    { ...OFF, totalMs: 30, ttfbMs: 20 },
    new AbortController().signal,
  );
  ended.end();
  assert.equal(await outcome(ended, 60), "none");
});

Deno.test("the client's abort reaches the signal with no reason of ours; abort() sets one", () => {
  const client = new AbortController();
  const d = AttemptDeadlines.start({ ...OFF, totalMs: 1000 }, client.signal);
  client.abort();
  assert.equal(d.signal.aborted, true);
  assert.equal(d.reason, undefined);
  d.end();

  const e = AttemptDeadlines.start(OFF, new AbortController().signal);
  const why = new Error("shutdown");
  e.abort(why);
  assert.equal(e.reason, why);
  e.end();
});

Deno.test("connect check: a refused dial aborts as unreachable; a reachable worker is left alone", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const refused = AttemptDeadlines.start(
    { ...OFF, connectMs: 20, dial: { hostname: "127.0.0.1", port } },
    new AbortController().signal,
  );
  const r = await outcome(refused, 1000);
  refused.end();
  assert.ok(r instanceof UpstreamUnreachable, String(r));
  assert.match(r.message, /^Worker w1 cannot be reached: /);

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept().then((c) => c.close());
  const reachable = AttemptDeadlines.start(
    {
      ...OFF,
      connectMs: 20,
      dial: { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port },
    },
    new AbortController().signal,
  );
  assert.equal(await outcome(reachable, 150), "none");
  reachable.end();
  await accepted;
  listener.close();
});

Deno.test("dialTarget: default ports and IPv6 brackets", () => {
  assert.deepEqual(dialTarget("http://h"), { hostname: "h", port: 80 });
  assert.deepEqual(dialTarget("https://h/base"), { hostname: "h", port: 443 });
  assert.deepEqual(dialTarget("http://[::1]:8000"), { hostname: "::1", port: 8000 });
});
