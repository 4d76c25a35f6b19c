import assert from "node:assert/strict";
import { downstreamHeaders, stripHopByHop, upstreamHeaders, withApiKey } from "./headers.ts";
import { RouterError } from "../util/errors.ts";

const base = { clientIp: "10.0.0.9", host: "router:8080", proto: "http", requestId: "r1" };

Deno.test("upstreamHeaders: drops hop-by-hop, Connection-listed and forwarding headers, sets its own", () => {
  const list = upstreamHeaders(
    new Headers({
      connection: "keep-alive, x-private",
      "keep-alive": "timeout=5",
      "x-private": "1",
      "x-forwarded-for": "1.2.3.4",
      forwarded: "for=1.2.3.4",
      authorization: "Bearer client",
      "accept-encoding": "gzip",
      "content-type": "application/x-www-form-urlencoded", // curl -d without -H
      "x-kept": "yes",
    }),
    { ...base, forwardClientAuth: false },
  );
  const h = new Headers(list);
  assert.equal(new Set(list.map(([n]) => n)).size, list.length, "each name once");
  assert.deepEqual([...h.keys()].sort(), [
    "accept-encoding",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-kept",
    "x-request-id",
  ]);
  assert.equal(h.get("x-forwarded-for"), "10.0.0.9");
  assert.equal(h.get("accept-encoding"), "identity");
  assert.equal(h.get("x-forwarded-host"), "router:8080");
  assert.equal(h.get("x-forwarded-proto"), "http");
  assert.equal(h.get("x-request-id"), "r1");
  assert.equal(
    h.get("content-type"),
    "application/json",
    "the body was parsed as JSON: sent as JSON",
  );
  const kept = new Headers(
    upstreamHeaders(new Headers({ authorization: "Bearer client", "x-request-id": "theirs" }), {
      ...base,
      forwardClientAuth: true,
    }),
  );
  assert.equal(kept.get("authorization"), "Bearer client");
  assert.equal(kept.get("x-request-id"), "r1", "the router's request id, once");
});

Deno.test("upstreamHeaders: a header block over maxBytes is a 400 naming the sizes", () => {
  const big = new Headers({ "x-a": "a".repeat(100), "x-b": "b".repeat(100) });
  // Each header counts name + value + 4 (": " and CRLF): 3 + 100 + 4 twice = 214.
  upstreamHeaders(big, { ...base, forwardClientAuth: false, maxBytes: 214 });
  assert.throws(
    () => upstreamHeaders(big, { ...base, forwardClientAuth: false, maxBytes: 213 }),
    (err: unknown) =>
      err instanceof RouterError && err.status === 400 && err.code === "headers_too_large" &&
      err.message === "Request headers of 214 bytes exceed the limit of 213 bytes",
  );
});

Deno.test("withApiKey: the base itself without a key, a copy with the worker's bearer token", () => {
  const h: [string, string][] = [["authorization", "Bearer client"], ["x-a", "1"]];
  assert.equal(withApiKey(h, null), h);
  const keyed = withApiKey(h, "sk-w");
  assert.notEqual(keyed, h);
  assert.deepEqual(keyed, [["x-a", "1"], ["authorization", "Bearer sk-w"]]);
  assert.deepEqual(h, [["authorization", "Bearer client"], ["x-a", "1"]]);
});

Deno.test("downstreamHeaders: hop-by-hop, Connection-listed, length and the router's own headers dropped; the coding kept", () => {
  const h = downstreamHeaders(
    new Headers({
      "x-request-id": "abc123",
      "x-router-backend": "inner-w1",
      "x-router-reason": "round-robin",
      connection: "x-internal",
      "x-internal": "1",
      "transfer-encoding": "chunked",
      "content-length": "10",
      "content-encoding": "gzip",
      "proxy-authenticate": "Basic",
      "content-type": "text/event-stream",
    }),
  );
  assert.deepEqual(h, [["content-encoding", "gzip"], ["content-type", "text/event-stream"]]);
  assert.deepEqual(stripHopByHop(new Headers({ upgrade: "h2c", a: "1" })), [["a", "1"]]);
});
