import assert from "node:assert/strict";
import { downstreamHeaders, stripHopByHop, upstreamHeaders, withApiKey } from "./headers.ts";
import { RouterError } from "../util/errors.ts";

const base = { clientIp: "10.0.0.9", host: "router:8080", proto: "http", requestId: "r1" };

Deno.test("upstreamHeaders: drops hop-by-hop, Connection-listed and forwarding headers, sets its own", () => {
  const h = upstreamHeaders(
    new Headers({
      connection: "keep-alive, x-private",
      "keep-alive": "timeout=5",
      "x-private": "1",
      "x-forwarded-for": "1.2.3.4",
      forwarded: "for=1.2.3.4",
      authorization: "Bearer client",
      "accept-encoding": "gzip",
      "x-kept": "yes",
    }),
    { ...base, forwardClientAuth: false },
  );
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
  const kept = upstreamHeaders(new Headers({ authorization: "Bearer client" }), {
    ...base,
    forwardClientAuth: true,
  });
  assert.equal(kept.get("authorization"), "Bearer client");
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
  const h = new Headers({ authorization: "Bearer client", "x-a": "1" });
  assert.equal(withApiKey(h, null), h);
  const keyed = withApiKey(h, "sk-w");
  assert.notEqual(keyed, h);
  assert.equal(keyed.get("authorization"), "Bearer sk-w");
  assert.equal(h.get("authorization"), "Bearer client");
});

Deno.test("downstreamHeaders: hop-by-hop, Connection-listed and length/encoding headers dropped", () => {
  const h = downstreamHeaders(
    new Headers({
      connection: "x-internal",
      "x-internal": "1",
      "transfer-encoding": "chunked",
      "content-length": "10",
      "content-encoding": "gzip",
      "proxy-authenticate": "Basic",
      "content-type": "text/event-stream",
    }),
  );
  assert.deepEqual([...h.keys()], ["content-type"]);
  assert.deepEqual([...stripHopByHop(new Headers({ upgrade: "h2c", a: "1" })).keys()], ["a"]);
});
