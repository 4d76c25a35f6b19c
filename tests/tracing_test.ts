/**
 * Tracing through a real router: an in-process OTLP/HTTP receiver gets the request span (server
 * kind, continuing the client's traceparent) and one child span per upstream attempt (client
 * kind: a refused connection, then the retry that answered); the worker receives the answering
 * attempt's traceparent; the access log carries the trace id.
 */

import assert from "node:assert/strict";
import {
  chatBody,
  chatCompletion,
  refusedUrl,
  routerHarness,
  startServer,
  waitFor,
} from "./_support.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number };
}

Deno.test("tracing: a request span, an attempt span per try, traceparent to the engine, trace id in the log", async () => {
  const spans: OtlpSpan[] = [];
  const collector = await startServer(async (req) => {
    const body = await req.json();
    for (const rs of body.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
    }
    return Response.json({});
  });
  let seenParent: string | null = null;
  const worker = await startServer(async (req) => {
    seenParent = req.headers.get("traceparent");
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  const h = await routerHarness([refusedUrl(), worker.url], {
    router: { strategy: "roundrobin" },
    tracing: { endpoint: collector.url, flushIntervalMs: 50 },
  }, { closeAlso: [worker] });
  const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
  try {
    const res = await h.post(chatBody("traced"), {
      headers: { traceparent: `00-${clientTrace}-00f067aa0ba902b7-01` },
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.ok(await waitFor(() => spans.length >= 3, 5000), `spans received: ${spans.length}`);
    const request = spans.find((s) => s.kind === 2)!; // SERVER
    const attempts = spans.filter((s) => s.kind === 3); // CLIENT
    assert.equal(request.traceId, clientTrace, "the client's trace is continued");
    assert.equal(request.parentSpanId, "00f067aa0ba902b7");
    assert.equal(attempts.length, 2, "the refused try and the retry");
    for (const a of attempts) {
      assert.equal(a.traceId, clientTrace);
      assert.equal(a.parentSpanId, request.spanId);
    }
    const attr = (s: OtlpSpan, k: string) => {
      const v = s.attributes.find((x) => x.key === k)?.value;
      return v === undefined ? undefined : Object.values(v)[0];
    };
    assert.equal(request.name, "POST /v1/chat/completions");
    assert.deepEqual(attempts.map((a) => a.name).sort(), ["attempt 0", "attempt 1"]);
    assert.equal(attr(request, "http.request.method"), "POST");
    assert.equal(attr(request, "url.path"), "/v1/chat/completions");
    assert.equal(attr(request, "router.strategy"), "roundrobin");
    assert.equal(attr(request, "gen_ai.request.model"), JSON.parse(chatBody("traced")).model);
    // The retry's match on w2, which has seen nothing yet: 0 chunks (an int, as a string in JSON).
    assert.equal(String(attr(request, "router.match_chunks")), "0");
    assert.equal(String(attr(request, "router.attempts")), "2");
    assert.equal(attr(request, "router.worker"), "w2");
    assert.equal(attr(request, "router.reason"), "retry-after-round-robin");
    assert.equal(String(attr(request, "http.response.status_code")), "200");
    const failed = attempts.find((a) => attr(a, "router.attempt.outcome") === "failed")!;
    assert.equal(attr(failed, "error.type"), "connect-error");
    assert.equal(String(attr(failed, "router.attempt")), "0");
    assert.equal(attr(failed, "router.worker"), "w1");
    assert.equal(attr(failed, "server.address"), "127.0.0.1");
    const answered = attempts.find((a) => attr(a, "router.attempt.outcome") === "answered")!;
    assert.equal(seenParent, `00-${clientTrace}-${answered.spanId}-01`, "the engine's parent");
    const line = h.logs.find((l) => l.msg === "request")!;
    assert.equal(line.trace_id, clientTrace);
  } finally {
    await h.close();
    await collector.close();
  }
});
