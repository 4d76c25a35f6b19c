import assert from "node:assert/strict";
import { ApiKeyAuth, equalsFixedTime } from "./auth.ts";

Deno.test("equalsFixedTime: equal strings only, whatever the lengths", () => {
  const cases: [string, string, number][] = [
    ["abc", "abc", 1],
    ["abd", "abc", 0],
    ["ab", "abc", 0],
    ["abcd", "abc", 0],
    ["", "abc", 0],
    ["\u0000\u0000\u0000", "abc", 0],
    ["ABC", "abc", 0],
  ];
  for (const [given, key, want] of cases) {
    assert.equal(equalsFixedTime(given, key), want, `${given} vs ${key}`);
  }
});

Deno.test("ApiKeyAuth: off without keys; guards every path but health (and metrics unless protected)", () => {
  const off = new ApiKeyAuth([], true);
  assert.equal(off.enabled, false);
  assert.equal(off.guards("/v1/chat/completions"), false);

  const on = new ApiKeyAuth(["k1", "k2"], false);
  assert.equal(on.enabled, true);
  for (const p of ["/v1/chat/completions", "/v1/completions", "/v1/models", "/nope"]) {
    assert.equal(on.guards(p), true, p);
  }
  for (const p of ["/healthz", "/readyz", "/metrics"]) assert.equal(on.guards(p), false, p);
  assert.equal(new ApiKeyAuth(["k1"], true).guards("/metrics"), true);
});

Deno.test("ApiKeyAuth.accepts: a bearer token equal to one key, scheme case-insensitive", () => {
  const auth = new ApiKeyAuth(["key-one", "key-two"], false);
  const cases: [string | null, boolean][] = [
    ["Bearer key-one", true],
    ["bearer key-two", true],
    ["BEARER\tkey-one  ", true],
    [null, false],
    ["", false],
    ["Bearer", false],
    ["Bearer ", false],
    ["Bearer key-on", false],
    ["Bearer key-one2", false],
    ["Bearer key-one key-two", false],
    ["Basic key-one", false],
    ["key-one", false],
  ];
  for (const [header, want] of cases) {
    assert.equal(auth.accepts(header), want, JSON.stringify(header));
  }
});

Deno.test("ApiKeyAuth.unauthorized is a 401 in OpenAI's shape with a Bearer challenge", () => {
  const res = ApiKeyAuth.unauthorized();
  assert.equal(res.status, 401);
  const header = (name: string) => res.headers.find(([n]) => n === name)?.[1];
  assert.equal(header("content-type"), "application/json");
  assert.match(header("www-authenticate")!, /^Bearer realm=/);
  const body = JSON.parse(new TextDecoder().decode(res.body));
  assert.deepEqual(body.error.type, "authentication_error");
  assert.deepEqual(body.error.code, "invalid_api_key");
  assert.equal(body.error.param, null);
});
