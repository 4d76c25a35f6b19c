/**
 * The tracer against a real OTLP/HTTP receiver (a `Deno.serve` on 127.0.0.1 port 0 recording
 * what is POSTed): the spans of a request with two attempts, and collectors that are down, answer
 * 503 or 429, or refuse the request.
 */

import assert from "node:assert/strict";
import { createTracer } from "./tracer.ts";
import { attrsOf, type JsonSpan, spansOf, testConfig } from "./testing.ts";
import type { HeaderSource, TracingConfig } from "./types.ts";

const T = "4bf92f3577b34da6a3ce929d0e0e4736";
const P = "00f067aa0ba902b7";

interface Received {
  path: string;
  contentType: string | null;
  auth: string | null;
  body: string;
}

/** An OTLP receiver answering each POST with `answer(n)` (n counts from 0). */
function receiver(answer: (n: number) => Response = () => Response.json({})) {
  const got: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    got.push({
      path: new URL(req.url).pathname,
      contentType: req.headers.get("content-type"),
      auth: req.headers.get("authorization"),
      body: await req.text(),
    });
    return answer(got.length - 1);
  });
  return { got, server, endpoint: `http://127.0.0.1:${server.addr.port}` };
}

function headers(h: Record<string, string>): HeaderSource {
  return { header: (name) => h[name] ?? null };
}

/** A port nothing listens on (bound, then closed). */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("otlp: a request span and two attempt spans reach the collector after shutdown", async () => {
  const r = receiver();
  try {
    const t = createTracer(
      testConfig({
        endpoint: r.endpoint + "/",
        headers: { authorization: "Bearer k" },
        serviceName: "router-a",
        resourceAttributes: { "deployment.environment": "test" },
      }),
    );
    const req = t.startRequest(
      headers({ traceparent: `00-${T}-${P}-01` }),
      "POST /v1/chat/completions",
      { "http.request.method": "POST", "url.path": "/v1/chat/completions" },
    );
    req.set("router.strategy", "prefixaware");
    req.set("gen_ai.request.model", "llama");
    const a1 = req.child("POST /v1/chat/completions", {
      "router.worker": "w1",
      "router.attempt": 0,
    });
    a1.set("router.attempt.outcome", "failed");
    a1.error("connect-error", "Worker w1 refused the connection");
    a1.end();
    const a2 = req.child("POST /v1/chat/completions", {
      "router.worker": "w2",
      "router.attempt": 1,
    });
    a2.set("router.attempt.outcome", "answered");
    a2.end(200);
    req.set("router.worker", "w2");
    req.set("router.reason", "longest-prefix");
    req.set("router.match_chunks", 5);
    req.end(200);
    assert.equal(r.got.length, 0, "nothing sent before the flush interval");
    await t.shutdown();

    assert.equal(r.got.length, 1);
    const [post] = r.got;
    assert.equal(post.path, "/v1/traces");
    assert.equal(post.contentType, "application/json");
    assert.equal(post.auth, "Bearer k");
    const body = JSON.parse(post.body);
    const resource = Object.fromEntries(
      // deno-lint-ignore no-explicit-any
      body.resourceSpans[0].resource.attributes.map((a: any) => [a.key, a.value.stringValue]),
    );
    assert.equal(resource["service.name"], "router-a");
    assert.equal(resource["deployment.environment"], "test");
    assert.equal(body.resourceSpans[0].scopeSpans[0].scope.name, "llm-cache-router");

    const spans = spansOf(post.body);
    const byName = (w: string) => spans.find((s) => attrsOf(s)["router.worker"] === w)!;
    const s = spans.find((x) => x.kind === 2) as JsonSpan;
    const s1 = byName("w1");
    const s2 = spans.find((x) => x.kind === 3 && attrsOf(x)["router.worker"] === "w2")!;
    assert.equal(spans.length, 3);
    for (const x of spans) assert.equal(x.traceId, T);
    assert.equal(s.parentSpanId, P);
    assert.equal(s1.parentSpanId, s.spanId);
    assert.equal(s2.parentSpanId, s.spanId);
    assert.notEqual(s1.spanId, s2.spanId);
    assert.deepEqual([s.kind, s1.kind, s2.kind], [2, 3, 3]);
    assert.deepEqual(attrsOf(s), {
      "http.request.method": "POST",
      "url.path": "/v1/chat/completions",
      "router.strategy": "prefixaware",
      "gen_ai.request.model": "llama",
      "router.worker": "w2",
      "router.reason": "longest-prefix",
      "router.match_chunks": "5",
      "http.response.status_code": "200",
    });
    assert.deepEqual(s.status, {});
    assert.deepEqual(s1.status, { code: 2, message: "Worker w1 refused the connection" });
    assert.equal(attrsOf(s1)["error.type"], "connect-error");
    assert.equal(attrsOf(s1)["router.attempt.outcome"], "failed");
    assert.deepEqual(s2.status, {});
    assert.equal(attrsOf(s2)["http.response.status_code"], "200");
    for (const x of spans) {
      assert.ok(BigInt(x.endTimeUnixNano) >= BigInt(x.startTimeUnixNano));
      assert.ok(BigInt(x.startTimeUnixNano) > 1_600_000_000_000_000_000n, "epoch nanoseconds");
    }
    assert.deepEqual(t.stats(), {
      queued: 0,
      exported: 3,
      droppedQueueFull: 0,
      droppedExportFailed: 0,
      rejected: 0,
      failedRequests: 0,
    });
  } finally {
    await r.server.shutdown();
  }
});

Deno.test("otlp: batches by size go out without waiting for the interval", async () => {
  const r = receiver();
  try {
    const t = createTracer(
      testConfig({ endpoint: r.endpoint, maxBatchSize: 4, flushIntervalMs: 60_000 }),
    );
    for (let i = 0; i < 8; i++) t.startRequest(headers({}), "POST /x").end(200);
    const until = Date.now() + 10_000;
    while (t.stats().exported < 8 && Date.now() < until) await new Promise((f) => setTimeout(f, 5));
    assert.equal(t.stats().exported, 8);
    assert.deepEqual(r.got.map((g) => spansOf(g.body).length), [4, 4]);
    await t.shutdown();
  } finally {
    await r.server.shutdown();
  }
});

/** Ends `n` request spans with one attempt each, synchronously. */
function burst(t: ReturnType<typeof createTracer>, n: number): void {
  for (let i = 0; i < n; i++) {
    const s = t.startRequest(headers({}), "POST /x");
    s.child("a").end(200);
    s.end(200);
  }
}

const SMALL: Partial<TracingConfig> = {
  maxBatchSize: 5,
  maxQueueSize: 20,
  flushIntervalMs: 10,
  exportTimeoutMs: 2000,
  maxRetries: 3,
};

Deno.test("otlp: a collector that is down blocks nothing and the queue stays at its cap", async () => {
  const t = createTracer(
    testConfig({ ...SMALL, endpoint: `http://127.0.0.1:${closedPort()}` }),
    { random: () => 0 },
  );
  burst(t, 200); // 400 spans, synchronously: nothing waits on the collector
  const s = t.stats();
  assert.ok(s.queued <= 20, `queued ${s.queued}`);
  assert.ok(s.droppedQueueFull >= 400 - 20 - 5, `dropped ${s.droppedQueueFull}`);
  await new Promise((f) => setTimeout(f, 100));
  burst(t, 100);
  assert.ok(t.stats().queued <= 20);
  await t.shutdown(3000);
  const end = t.stats();
  assert.equal(end.exported, 0);
  assert.equal(end.queued, 0);
  assert.equal(end.droppedQueueFull + end.droppedExportFailed, 600, "every span accounted for");
  assert.ok(end.failedRequests >= 1);
});

Deno.test("otlp: a collector answering 503 is retried, then the batch is dropped", async () => {
  const r = receiver(() => new Response("busy", { status: 503, headers: { "retry-after": "0" } }));
  try {
    const t = createTracer(testConfig({ ...SMALL, endpoint: r.endpoint, maxRetries: 2 }));
    burst(t, 100);
    assert.ok(t.stats().queued <= 20);
    const until = Date.now() + 10_000;
    while (t.stats().droppedExportFailed < 5 && Date.now() < until) {
      await new Promise((f) => setTimeout(f, 5));
    }
    await t.shutdown(3000);
    const s = t.stats();
    assert.equal(s.exported, 0);
    assert.equal(s.droppedQueueFull + s.droppedExportFailed, 200);
    // The first batch was tried 3 times (2 retries) with the same body.
    assert.ok(r.got.length >= 3);
    assert.equal(r.got[0].body, r.got[1].body);
    assert.equal(r.got[1].body, r.got[2].body);
    assert.equal(s.failedRequests, r.got.length);
  } finally {
    await r.server.shutdown();
  }
});

Deno.test("otlp: 429 with Retry-After, then accepted: exported once, nothing dropped", async () => {
  const r = receiver((n) =>
    n === 0
      ? new Response("slow down", { status: 429, headers: { "retry-after": "1" } })
      : Response.json({ partialSuccess: {} })
  );
  try {
    const t = createTracer(testConfig({ ...SMALL, endpoint: r.endpoint }));
    const t0 = Date.now();
    burst(t, 1);
    const until = Date.now() + 10_000;
    while (t.stats().exported < 2 && Date.now() < until) {
      await new Promise((f) => setTimeout(f, 10));
    }
    assert.equal(t.stats().exported, 2);
    assert.equal(r.got.length, 2);
    assert.ok(Date.now() - t0 >= 1000, "waited for Retry-After");
    await t.shutdown();
  } finally {
    await r.server.shutdown();
  }
});

Deno.test("otlp: a 400 is not retried", async () => {
  const r = receiver(() => new Response("bad", { status: 400 }));
  try {
    const t = createTracer(testConfig({ ...SMALL, endpoint: r.endpoint }));
    burst(t, 1);
    await t.shutdown();
    assert.equal(r.got.length, 1);
    assert.equal(t.stats().droppedExportFailed, 2);
  } finally {
    await r.server.shutdown();
  }
});

Deno.test("otlp: a collector that never answers is cut at the shutdown deadline", async () => {
  const hold = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    await hold.promise;
    return new Response("late");
  });
  try {
    const t = createTracer(
      testConfig({ ...SMALL, endpoint: `http://127.0.0.1:${server.addr.port}` }),
    );
    burst(t, 3);
    await t.shutdown(200);
    const s = t.stats();
    assert.equal(s.exported, 0);
    assert.equal(s.droppedExportFailed + s.droppedQueueFull, 6);
  } finally {
    hold.resolve();
    await server.shutdown();
  }
});
