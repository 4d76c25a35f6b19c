import assert from "node:assert/strict";
import { Attempt } from "./attempt.ts";
import { choose } from "./choose.ts";
import { ENDPOINTS, type ProxyEndpoint } from "./endpoints.ts";
import { parse, type RequestPlan } from "./plan.ts";
import type { RouterState } from "./state.ts";
import { fakeRequest, testState } from "./testing.ts";

const CHAT = ENDPOINTS["/v1/chat/completions"] as ProxyEndpoint;
const BODY = JSON.stringify({ messages: [{ role: "user", content: "x".repeat(100) }] });

/** An in-process worker answering every request with `answer()`. */
function worker(answer: (req: Request) => Response | Promise<Response>) {
  const ready = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (a) => ready.resolve(a.port),
  }, answer);
  return ready.promise.then((port) => ({
    url: `http://127.0.0.1:${port}`,
    close: () => server.shutdown(),
  }));
}

async function begin(
  state: RouterState,
  signal = new AbortController().signal,
): Promise<{ att: Attempt; plan: RequestPlan }> {
  const plan = await parse(fakeRequest({ body: BODY }), CHAT, state, "r1");
  const choice = choose(state, plan, new Set(), false, 0)!;
  return { att: Attempt.begin(state, plan, choice, signal), plan };
}

Deno.test("Attempt: begin records and counts in flight; settle undoes it exactly once", async () => {
  const s = testState(["http://127.0.0.1:1"]);
  const b = s.backends[0];
  const { att, plan } = await begin(s);
  assert.equal(b.inflight, 1);
  assert.equal(b.prefix.match(plan.hashes), plan.hashes.length / 2, "recorded at begin");
  assert.equal(s.attempts.size, 1);
  assert.equal(s.tracker.figures(0).inflight, 1);
  att.settle();
  att.settle();
  assert.equal(b.inflight, 0);
  assert.equal(s.attempts.size, 0);
  assert.equal(s.tracker.figures(0).inflight, 0);
});

Deno.test("Attempt: one breaker verdict per attempt, the first one given", async () => {
  const s = testState(["http://127.0.0.1:1"], { worker: { breakerThreshold: 1 } });
  const b = s.backends[0];
  const { att } = await begin(s);
  att.succeeded();
  att.failed({ kind: "stream-error", error: "upstream_failed", message: "late" }, null);
  att.settle();
  assert.equal(b.breaker.consecutiveFailures, 0, "the failure after the verdict is ignored");
  const second = await begin(s);
  second.att.failed({ kind: "connect-error", error: "upstream_failed", message: "x" }, "r1");
  second.att.succeeded();
  second.att.settle();
  assert.equal(b.breaker.stateCode, 1, "threshold 1: the failure opened the breaker");
  assert.equal(s.logs.filter((l) => l.msg === "upstream failed").length, 1);
});

Deno.test("Attempt.send: an answer with its first bytes, a 5xx to retry, a refused connect", async () => {
  let status = 200;
  const w = await worker(async (req) => {
    await req.arrayBuffer();
    return Response.json({ ok: status }, { status });
  });
  try {
    const s = testState([w.url]);
    const ok = await begin(s);
    const sent = await ok.att.send(ok.plan, () => true);
    assert.ok(sent.ok);
    assert.equal(sent.answer.upstream.status, 200);
    assert.equal(new TextDecoder().decode(sent.answer.first!), '{"ok":200}');
    assert.equal(sent.answer.sse, false);
    ok.att.settle();

    status = 503;
    const bad = await begin(s);
    const failed = await bad.att.send(bad.plan, () => true);
    assert.ok(!failed.ok && failed.failure !== null);
    assert.equal(failed.failure.kind, "status-5xx");
    bad.att.settle();
    const kept = await begin(s);
    const answered = await kept.att.send(kept.plan, () => false);
    assert.ok(answered.ok, "no retry possible: the 5xx is the answer");
    assert.equal(answered.answer.upstream.status, 503);
    kept.att.settle();
  } finally {
    await w.close();
  }
  const s = testState([w.url]); // closed now: refused
  const gone = await begin(s);
  const refused = await gone.att.send(gone.plan, () => true);
  assert.ok(!refused.ok && refused.failure !== null);
  assert.equal(refused.failure.kind, "connect-error");
  gone.att.settle();
});

Deno.test("Attempt.send: a client that leaves before the answer ends it as gone, no failure", async () => {
  const hold = Promise.withResolvers<void>();
  const w = await worker(async (req) => {
    await req.arrayBuffer();
    await hold.promise;
    return Response.json({});
  });
  try {
    const s = testState([w.url]);
    const client = new AbortController();
    const { att, plan } = await begin(s, client.signal);
    const sending = att.send(plan, () => true);
    setTimeout(() => client.abort(), 20);
    const sent = await sending;
    assert.ok(!sent.ok && sent.failure === null && sent.gone === "client");
    att.settle();
    assert.equal(s.backends[0].breaker.consecutiveFailures, 0);
    assert.equal(s.backends[0].inflight, 0);
  } finally {
    hold.resolve();
    await w.close();
  }
});
