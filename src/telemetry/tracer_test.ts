import assert from "node:assert/strict";
import { parseTraceparent } from "./trace_context.ts";
import { createTracer, NOOP_TRACER, tracesUrl, withTraceHeaders } from "./tracer.ts";
import { attrsOf, RecordingTransport, testConfig } from "./testing.ts";
import type { HeaderSource } from "./types.ts";

const T = "4bf92f3577b34da6a3ce929d0e0e4736";
const P = "00f067aa0ba902b7";

function headers(h: Record<string, string>): HeaderSource {
  return { header: (name) => h[name] ?? null };
}

function tracer(overrides = {}) {
  const rec = new RecordingTransport();
  const t = createTracer(testConfig(overrides), { transport: rec.send });
  return { t, rec };
}

Deno.test("tracer: off is the no-op tracer, whose spans carry nothing", async () => {
  assert.equal(createTracer(null), NOOP_TRACER);
  assert.equal(createTracer(testConfig({ endpoint: "" })), NOOP_TRACER);
  const span = NOOP_TRACER.startRequest(headers({ traceparent: `00-${T}-${P}-01` }), "POST /x");
  assert.equal(span.traceId, null);
  assert.equal(span.traceparent(), null);
  const child = span.child("attempt");
  assert.equal(child.traceparent(), null);
  const h: [string, string][] = [["traceparent", `00-${T}-${P}-01`]];
  assert.equal(withTraceHeaders(h, child), h); // the client's header goes on untouched
  await NOOP_TRACER.shutdown();
});

Deno.test("tracer: a valid traceparent is continued, its tracestate kept", async () => {
  const { t, rec } = tracer();
  const span = t.startRequest(
    headers({ traceparent: `00-${T}-${P}-01`, tracestate: "rojo=1, congo=2" }),
    "POST /v1/chat/completions",
  );
  assert.equal(span.traceId, T);
  assert.equal(span.sampled, true);
  const child = span.child("POST /v1/chat/completions");
  const tp = parseTraceparent(child.traceparent()!);
  assert.ok(tp !== null);
  assert.equal(tp.traceId, T);
  assert.notEqual(tp.spanId, P);
  assert.equal(tp.flags & 1, 1);
  assert.equal(child.tracestate(), "rojo=1,congo=2");
  child.end(200);
  span.end(200);
  await t.shutdown();
  const [c, s] = rec.spans();
  assert.equal(s.parentSpanId, P);
  assert.equal(s.flags & 0x300, 0x300, "the parent is remote");
  assert.equal(s.traceState, "rojo=1,congo=2");
  assert.equal(c.parentSpanId, s.spanId);
  assert.equal(c.spanId, tp.spanId);
  assert.equal(c.flags & 0x300, 0x100, "the attempt's parent is local");
});

Deno.test("tracer: no or an invalid traceparent starts a new trace, tracestate ignored", async () => {
  const { t, rec } = tracer();
  const bad = t.startRequest(
    headers({ traceparent: `00-${"0".repeat(32)}-${P}-01`, tracestate: "rojo=1" }),
    "POST /x",
  );
  const none = t.startRequest(headers({}), "POST /x");
  for (const span of [bad, none]) {
    assert.ok(span.traceId !== null && /^[0-9a-f]{32}$/.test(span.traceId));
    assert.notEqual(span.traceId, T);
    assert.equal(span.tracestate(), null);
    const tp = parseTraceparent(span.traceparent()!);
    assert.equal(tp?.flags, 3, "sampled, and the id is random");
    span.end(200);
  }
  assert.notEqual(bad.traceId, none.traceId);
  await t.shutdown();
  const spans = rec.spans();
  assert.equal(spans.length, 2);
  for (const s of spans) {
    assert.equal(s.parentSpanId, undefined);
    assert.equal(s.traceState, undefined);
    assert.equal(s.flags & 0x300, 0x100, "a root: no remote parent");
  }
});

Deno.test("tracer: an unsampled caller is followed: ids for the engine, nothing exported", async () => {
  const { t, rec } = tracer({ sampleRatio: 1 });
  const span = t.startRequest(headers({ traceparent: `00-${T}-${P}-00` }), "POST /x");
  assert.equal(span.sampled, false);
  assert.equal(span.traceId, T);
  const child = span.child("attempt");
  const tp = parseTraceparent(child.traceparent()!);
  assert.equal(tp?.traceId, T);
  assert.equal(tp?.flags, 0);
  assert.notEqual(tp?.spanId, P);
  child.end(200);
  span.end(200);
  await t.shutdown();
  assert.equal(rec.bodies.length, 0);
  assert.equal(t.stats().exported, 0);
});

Deno.test("tracer: ratio 0 records no new trace, but continues a sampled one", async () => {
  const { t, rec } = tracer({ sampleRatio: 0 });
  const root = t.startRequest(headers({}), "POST /x");
  assert.equal(root.sampled, false);
  assert.equal(parseTraceparent(root.child("a").traceparent()!)?.flags, 2);
  root.end(200);
  const continued = t.startRequest(headers({ traceparent: `00-${T}-${P}-01` }), "POST /x");
  assert.equal(continued.sampled, true);
  continued.end(200);
  await t.shutdown();
  assert.deepEqual(rec.spans().map((s) => s.traceId), [T]);
});

Deno.test("tracer: attributes, status and error rules of server and client spans", async () => {
  const { t, rec } = tracer();
  const span = t.startRequest(headers({}), "POST /x", { "router.strategy": "prefixaware" });
  span.set("gen_ai.request.model", "m".repeat(1000));
  span.set("router.match_chunks", 3);
  span.set("router.match_chunks", 4); // replaces
  span.set("x.ratio", 0.5);
  span.set("x.nan", Number.NaN);
  span.set("x.flag", true);
  const a1 = span.child("attempt", { "router.worker": "w1", "router.attempt": 0 });
  a1.error("connect-error", "Worker w1 refused the connection");
  a1.end();
  const a2 = span.child("attempt", { "router.worker": "w2" });
  a2.end(404); // a client span: ≥ 400 is an error
  span.end(404); // a server span: 4xx is not
  span.end(500); // once only
  span.set("late", 1);
  await t.shutdown();
  const [s1, s2, s] = rec.spans();
  const attrs = attrsOf(s);
  assert.equal(attrs["router.strategy"], "prefixaware");
  assert.equal((attrs["gen_ai.request.model"] as string).length, 256);
  assert.equal(attrs["router.match_chunks"], "4");
  assert.equal(attrs["x.ratio"], 0.5);
  assert.equal(attrs["x.nan"], "NaN");
  assert.equal(attrs["x.flag"], true);
  assert.equal(attrs["http.response.status_code"], "404");
  assert.equal(attrs["late"], undefined);
  assert.deepEqual(s.status, {});
  assert.equal(s.kind, 2);
  assert.equal(s1.kind, 3);
  assert.deepEqual(s1.status, { code: 2, message: "Worker w1 refused the connection" });
  assert.equal(attrsOf(s1)["error.type"], "connect-error");
  assert.equal(attrsOf(s1)["router.attempt"], "0");
  assert.deepEqual(s2.status, { code: 2 });
  assert.equal(attrsOf(s2)["error.type"], "404");
});

Deno.test("tracer: a server span that ends ≥ 500 is an error", async () => {
  const { t, rec } = tracer();
  t.startRequest(headers({}), "POST /x").end(503);
  await t.shutdown();
  assert.equal(rec.spans()[0].status.code, 2);
  assert.equal(attrsOf(rec.spans()[0])["error.type"], "503");
});

Deno.test("tracer: times are epoch nanoseconds from the clock", async () => {
  const rec = new RecordingTransport();
  let now = 1_700_000_000_123.25;
  const t = createTracer(testConfig(), { transport: rec.send, now: () => now });
  const span = t.startRequest(headers({}), "POST /x");
  now += 1.5;
  span.end(200);
  await t.shutdown();
  const [s] = rec.spans();
  assert.equal(s.startTimeUnixNano, "1700000000123250000");
  assert.equal(s.endTimeUnixNano, "1700000000124750000");
});

Deno.test("withTraceHeaders: the client's trace headers are replaced, others kept", () => {
  const { t } = tracer();
  const span = t.startRequest(
    headers({ traceparent: `00-${T}-${P}-01`, tracestate: "rojo=1" }),
    "POST /x",
  );
  const child = span.child("attempt");
  const base: [string, string][] = [
    ["x-request-id", "r1"],
    ["traceparent", `00-${T}-${P}-01`],
    ["tracestate", "rojo=1"],
    ["content-type", "application/json"],
  ];
  const out = withTraceHeaders(base, child);
  assert.deepEqual(out, [
    ["x-request-id", "r1"],
    ["content-type", "application/json"],
    ["traceparent", child.traceparent()!],
    ["tracestate", "rojo=1"],
  ]);
  assert.equal(base.length, 4, "the plan's headers are not changed");
  // An invalid client tracestate is not sent on.
  const noState = t.startRequest(
    headers({ traceparent: `00-${T}-${P}-01`, tracestate: "Bad=1" }),
    "POST /x",
  ).child("a");
  assert.deepEqual(withTraceHeaders([["tracestate", "Bad=1"]], noState), [
    ["traceparent", noState.traceparent()!],
  ]);
  return t.shutdown();
});

Deno.test("tracesUrl: the OTLP/HTTP traces path under the endpoint", () => {
  assert.equal(tracesUrl("http://c:4318"), "http://c:4318/v1/traces");
  assert.equal(tracesUrl("http://c:4318/"), "http://c:4318/v1/traces");
  assert.equal(tracesUrl("https://c/otlp"), "https://c/otlp/v1/traces");
});

Deno.test("createTracer: a header fetch refuses is a config error at creation", () => {
  assert.throws(() => createTracer(testConfig({ headers: { "bad name": "x" } })), TypeError);
  assert.throws(() => createTracer(testConfig({ headers: { authorization: "a\nb" } })), TypeError);
});
