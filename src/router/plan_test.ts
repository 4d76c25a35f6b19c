import assert from "node:assert/strict";
import { RouterError } from "../util/errors.ts";
import { ENDPOINTS, type ProxyEndpoint } from "./endpoints.ts";
import { BYTES_PER_TOKEN, modelTag, parse, requestIdOf } from "./plan.ts";
import { fakeRequest, testState } from "./testing.ts";

const CHAT = ENDPOINTS["/v1/chat/completions"] as ProxyEndpoint;
const body = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: "m", messages: [{ role: "user", content: "hello world" }], ...extra });

Deno.test("parse: a chat request becomes a plan with its routing key, headers and session", async () => {
  const state = testState(["http://127.0.0.1:1"]);
  const req = fakeRequest({
    body: body({
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "hello world ".repeat(10) }],
    }),
    headers: {
      "x-session-id": "s1",
      connection: "keep-alive, x-secret",
      "x-secret": "hop",
      "x-forwarded-proto": "https",
      host: "router.local",
    },
  });
  const plan = await parse(req, CHAT, state, "rid-1");
  assert.equal(plan.model, "m");
  assert.equal(plan.stream, true);
  assert.equal(plan.includeUsage, true);
  assert.equal(plan.sessionId, "s1");
  assert.equal(plan.requestId, "rid-1");
  assert.equal(plan.target, "/v1/chat/completions");
  const text = `${modelTag("m")}user:${"hello world ".repeat(10)}\n`;
  assert.equal(plan.promptTokens, text.length / BYTES_PER_TOKEN);
  assert.equal(plan.hashes.length, 2 * 4, "18 + 126 bytes: four full 32-byte chunks");
  const h = new Map(plan.headers);
  assert.equal(h.get("x-secret"), undefined, "a header named in Connection is dropped");
  assert.equal(h.get("connection"), undefined);
  assert.equal(h.get("x-forwarded-proto"), "http", "from the listener, never the client");
  assert.equal(h.get("x-forwarded-host"), "router.local");
  assert.equal(h.get("x-request-id"), "rid-1");
  assert.equal(h.get("content-type"), "application/json");
});

Deno.test("parse: bad bodies are 4xx RouterErrors naming what is wrong", async () => {
  const state = testState(["http://127.0.0.1:1"], {
    server: { maxBodyBytes: 200, maxJsonDepth: 3, maxHeaderBytes: 100 },
  });
  const cases: [string, Parameters<typeof fakeRequest>[0], number, RegExp | string][] = [
    ["not JSON", { body: "{nope" }, 400, /not valid JSON/],
    ["not UTF-8", { body: new Uint8Array([0x7b, 0xff, 0x7d]) }, 400, /not valid UTF-8/],
    ["too deep", { body: '{"a":{"b":{"c":{}}}}' }, 400, "json_too_deep"],
    ["too large", { body: body({ pad: "x".repeat(300) }) }, 413, /exceeds the limit of 200/],
    [
      "headers too large",
      { body: body(), headers: { "x-big": "y".repeat(200) } },
      400,
      "headers_too_large",
    ],
    ["model not a string", { body: body({ model: 5 }) }, 400, /model must be a string/],
  ];
  for (const [name, init, status, want] of cases) {
    const err = await parse(fakeRequest(init), CHAT, state, "r").then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof RouterError, name);
    assert.equal(err.status, status, name);
    if (typeof want === "string") assert.equal(err.code, want, name);
    else assert.match(err.message, want, name);
  }
});

Deno.test("requestIdOf keeps a printable id of at most 128 bytes and replaces anything else", () => {
  assert.equal(requestIdOf(fakeRequest({ headers: { "x-request-id": "abc-1" } })), "abc-1");
  for (const bad of ["a b", "x".repeat(129), "é"]) {
    const id = requestIdOf(fakeRequest({ headers: { "x-request-id": bad } }));
    assert.notEqual(id, bad);
    assert.match(id, /^[0-9a-f-]{36}$/);
  }
  assert.match(requestIdOf(fakeRequest()), /^[0-9a-f-]{36}$/);
});
