import assert from "node:assert/strict";
import { Attempt } from "./attempt.ts";
import { choose } from "./choose.ts";
import { ENDPOINTS, type ProxyEndpoint } from "./endpoints.ts";
import { classify, retryable } from "./failures.ts";
import { UpstreamUnreachable } from "../proxy/deadlines.ts";
import { parse } from "./plan.ts";
import { fakeRequest, testState } from "./testing.ts";

/** What Deno.connect throws when the process has no file descriptor left. */
function emfile(): Error {
  return Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });
}

Deno.test("a dial that fails for want of file descriptors is the router's failure, not the worker's", async () => {
  const f = classify(null, emfile(), false, "w1");
  assert.equal(f.kind, "fd-exhausted");
  assert.equal(f.error, "no_worker", "a 503: the router cannot open a connection now");
  assert.equal(retryable(f, "before-first-byte", true), false, "another worker fares no better");
  // A plain refused connection stays the worker's connect failure.
  const refused = Object.assign(new Error("Connection refused (os error 111)"), {
    code: "ECONNREFUSED",
  });
  assert.equal(classify(null, refused, false, "w1").kind, "connect-error");
  // The connect check (fetch client) aborts with UpstreamUnreachable naming the OS error.
  const probe = new UpstreamUnreachable("w1 cannot be reached: Too many open files (os error 24)");
  assert.equal(classify(probe, new Error("aborted"), false, "w1").kind, "fd-exhausted");
  assert.equal(
    classify(new UpstreamUnreachable("w1 cannot be reached: refused"), null, false, "w1").kind,
    "connect-error",
  );

  // The breaker hears nothing of it: a flood of clients must not open healthy workers' breakers.
  const s = testState(["http://127.0.0.1:1"], { worker: { breakerThreshold: 1 } });
  const chat = ENDPOINTS["/v1/chat/completions"] as ProxyEndpoint;
  const body = JSON.stringify({ messages: [{ role: "user", content: "x" }] });
  const plan = await parse(fakeRequest({ body }), chat, s, "r1");
  const att = Attempt.begin(
    s,
    plan,
    choose(s, plan, new Set(), false, 0)!,
    new AbortController().signal,
  );
  att.failed(f, "r1");
  att.settle();
  assert.equal(s.backends[0].breaker.consecutiveFailures, 0);
  assert.equal(s.backends[0].breaker.state, "closed");
});

Deno.test("a worker's bad head that quotes '(os error 24)' is its own bad response, not the router's descriptors", async () => {
  const { parseHead } = await import("../proxy/h1_head.ts");
  const head = new TextEncoder().encode("HTTP/1.1 2x0 Too many open files (os error 24)\r\n\r\n");
  let err: unknown = null;
  try {
    parseHead(head, 0, head.length - 4);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error && err.message.includes("(os error 24)"), String(err));
  const f = classify(undefined, err, false, "w1");
  assert.equal(f.kind, "bad-response", "the worker's bytes must not dodge its breaker");
  assert.equal(retryable(f, "before-first-byte", false), true);
});
