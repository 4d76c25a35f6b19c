import assert from "node:assert/strict";
import type { BodySource } from "../http/types.ts";
import type { H1Answer } from "../proxy/h1_client.ts";
import { type Answer, Attempt } from "./attempt.ts";
import { choose } from "./choose.ts";
import { ENDPOINTS, type ProxyEndpoint } from "./endpoints.ts";
import { parse } from "./plan.ts";
import { relay } from "./relay.ts";
import { RequestLog } from "./settle.ts";
import { fakeRequest, testState } from "./testing.ts";

const CHAT = ENDPOINTS["/v1/chat/completions"] as ProxyEndpoint;
const enc = new TextEncoder();
const dec = new TextDecoder();

async function setup(overrides = {}) {
  const s = testState(["http://127.0.0.1:1"], overrides);
  const plan = await parse(
    fakeRequest({ body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }) }),
    CHAT,
    s,
    "rid",
  );
  const att = Attempt.begin(
    s,
    plan,
    choose(s, plan, new Set(), false, 0)!,
    new AbortController().signal,
  );
  const log = new RequestLog(s.logger, s.clock, "rid", "/v1/chat/completions", "x", s.clock.now());
  return { s, plan, att, log };
}

function answer(
  upstream: Partial<H1Answer>,
  first: string | null,
  rest: BodySource | null,
  sse = false,
): Answer {
  const up: H1Answer = {
    status: 200,
    statusText: "OK",
    headers: [],
    whole: null,
    body: rest,
    ...upstream,
  };
  const whole = up.whole !== null;
  return {
    upstream: up,
    reader: rest,
    first: first === null ? null : enc.encode(first),
    whole,
    sse,
  };
}

/** A source yielding `parts`, then the end (or `fail` thrown). */
function source(parts: string[], fail?: Error): BodySource & { cancelled: boolean } {
  let i = 0;
  const src = {
    cancelled: false,
    read: () => {
      if (i < parts.length) {
        return Promise.resolve({ done: false as const, value: enc.encode(parts[i++]) });
      }
      return fail
        ? Promise.reject(fail)
        : Promise.resolve({ done: true as const, value: undefined });
    },
    cancel: () => {
      src.cancelled = true;
      return Promise.resolve();
    },
  };
  return src;
}

Deno.test("relay: a whole answer is sent as bytes with the router's headers; settled and logged once", async () => {
  const { s, plan, att, log } = await setup();
  const json =
    '{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}}';
  const reply = relay(
    s,
    plan,
    att,
    answer(
      {
        headers: [["content-type", "application/json"], ["content-length", "9"], [
          "x-request-id",
          "worker-id",
        ], ["connection", "close"]],
        whole: enc.encode(json),
      },
      json,
      null,
    ),
    log,
    0,
  );
  assert.equal(reply.status, 200);
  assert.ok(reply.body instanceof Uint8Array);
  assert.equal(dec.decode(reply.body), json);
  const h = reply.headers;
  assert.deepEqual(h.filter(([n]) => n === "x-request-id"), [["x-request-id", "rid"]]);
  assert.ok(h.some(([n, v]) => n === "x-router-backend" && v === "w1"));
  assert.ok(!h.some(([n]) => n === "content-length" || n === "connection"));
  assert.equal(s.backends[0].inflight, 0, "settled");
  const lines = s.logs.filter((l) => l.msg === "request");
  assert.equal(lines.length, 1);
  assert.equal(lines[0].status, 200);
  assert.equal(lines[0].prompt_tokens, 5);
});

Deno.test("relay: a streamed answer settles when its body ends; a cancelled one logs 499", async () => {
  for (const cancel of [false, true]) {
    const { s, plan, att, log } = await setup();
    const rest = source(['data: {"choices":[{"delta":{"content":"b"}}]}\n\n', "data: [DONE]\n\n"]);
    const reply = relay(
      s,
      plan,
      att,
      answer(
        { headers: [["content-type", "text/event-stream"]] },
        'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
        rest,
        true,
      ),
      log,
      0,
    );
    const body = reply.body as BodySource;
    assert.equal(s.backends[0].inflight, 1, "in flight while the body runs");
    let text = dec.decode((await body.read()).value!);
    if (cancel) {
      await body.cancel("client gone");
      assert.ok(rest.cancelled, "the upstream body is cancelled too");
    } else {
      for (let r = await body.read(); !r.done; r = await body.read()) text += dec.decode(r.value);
      assert.ok(text.endsWith("data: [DONE]\n\n"));
    }
    assert.equal(s.backends[0].inflight, 0);
    const lines = s.logs.filter((l) => l.msg === "request");
    assert.equal(lines.length, 1);
    assert.equal(lines[0].status, cancel ? 499 : 200);
  }
});

Deno.test("relay: an SSE body that fails mid-way ends with an error event, counted, no breaker verdict against it", async () => {
  const { s, plan, att, log } = await setup({ worker: { breakerThreshold: 1 } });
  const rest = source([], new Error("reset by peer"));
  const reply = relay(
    s,
    plan,
    att,
    answer(
      { headers: [["content-type", "text/event-stream"]] },
      'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
      rest,
      true,
    ),
    log,
    0,
  );
  const body = reply.body as BodySource;
  let text = "";
  for (let r = await body.read(); !r.done; r = await body.read()) text += dec.decode(r.value);
  assert.match(text, /data: \{"error":\{"message":"Worker w1 failed mid-stream: reset by peer"/);
  assert.equal(s.backends[0].breaker.stateCode, 0, "the worker answered: its breaker stays closed");
  assert.equal(s.backends[0].inflight, 0);
  const m = await s.metrics.render();
  assert.match(m, /router_upstream_failures_total\{backend="w1",kind="stream-error"\} 1/);
});

Deno.test("relay: a status without a body gets none, and its source is cancelled", async () => {
  const { s, plan, att, log } = await setup();
  const rest = source(["ignored"]);
  const reply = relay(
    s,
    plan,
    att,
    answer({ status: 204, statusText: "No Content" }, "x", rest),
    log,
    0,
  );
  assert.equal(reply.status, 204);
  assert.equal(reply.body, null);
  assert.ok(rest.cancelled);
  assert.equal(s.backends[0].inflight, 0);
});
