/**
 * Cost of tracing one proxied request: a request span continued from the client's `traceparent`,
 * seven attributes, one attempt span with four and its `traceparent` header, both ended.
 *
 * `deno bench -A src/telemetry/tracer_bench.ts`. The recording tracer's queue fills during a run
 * (timers cannot fire inside a synchronous bench loop), so later spans are dropped at `add`: the
 * span work is the same, only the push is saved. `encode` is the exporter's cost per batch,
 * paid in its timer.
 *
 * @module
 */

import { TRACING_DEFAULTS } from "./defaults.ts";
import { encodeTraces, exportHead, type SpanRecord } from "./otlp_json.ts";
import { createTracer, NOOP_TRACER, withTraceHeaders } from "./tracer.ts";
import type { HeaderSource, Tracer } from "./types.ts";

const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const req: HeaderSource = { header: (n) => (n === "traceparent" ? TP : null) };
const base: [string, string][] = [
  ["x-request-id", "r1"],
  ["traceparent", TP],
  ["content-type", "application/json"],
];

const accept = () =>
  Promise.resolve({ ok: true, retryable: false, retryAfterMs: null, rejected: 0 });
const sampled = createTracer({ ...TRACING_DEFAULTS, endpoint: "http://x" }, { transport: accept });
const unsampled = createTracer(
  { ...TRACING_DEFAULTS, endpoint: "http://x", sampleRatio: 0 },
  { transport: accept },
);
const unsampledReq: HeaderSource = { header: () => null };

let sink = 0;

function request(t: Tracer, h: HeaderSource): void {
  const span = t.startRequest(h, "POST /v1/chat/completions", {
    "http.request.method": "POST",
    "url.path": "/v1/chat/completions",
  });
  span.set("router.strategy", "prefixaware");
  span.set("gen_ai.request.model", "meta-llama/Llama-3.1-8B-Instruct");
  const att = span.child("POST /v1/chat/completions", {
    "router.worker": "w1",
    "router.attempt": 0,
  });
  sink += withTraceHeaders(base, att).length;
  att.set("router.attempt.outcome", "answered");
  att.end(200);
  span.set("router.worker", "w1");
  span.set("router.reason", "longest-prefix");
  span.set("router.match_chunks", 12);
  span.end(200);
}

Deno.bench(
  "baseline: the same calls on a plain object",
  { group: "request", baseline: true },
  () => {
    const o: Record<string, unknown> = { "http.request.method": "POST", "url.path": "/v1/chat" };
    o["router.strategy"] = "prefixaware";
    o["gen_ai.request.model"] = "meta-llama/Llama-3.1-8B-Instruct";
    sink += base.length;
    o["router.worker"] = "w1";
    sink += Object.keys(o).length;
  },
);

Deno.bench("tracing off (no-op tracer)", { group: "request" }, () => request(NOOP_TRACER, req));
Deno.bench("tracing on, recorded", { group: "request" }, () => request(sampled, req));
Deno.bench("tracing on, not recorded (ratio 0)", { group: "request" }, () => {
  request(unsampled, unsampledReq);
});

const batch: SpanRecord[] = Array.from({ length: 512 }, (_, i) => ({
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId: (i + 1).toString(16).padStart(16, "0"),
  parentSpanId: "00f067aa0ba902b7",
  parentRemote: true,
  traceState: null,
  name: "POST /v1/chat/completions",
  kind: 2,
  flags: 1,
  startMs: 1_700_000_000_000.25,
  endMs: 1_700_000_000_100.5,
  attrs: [
    "router.strategy",
    "prefixaware",
    "router.worker",
    "w1",
    "router.reason",
    "longest-prefix",
    "router.match_chunks",
    12,
    "gen_ai.request.model",
    "meta-llama/Llama-3.1-8B-Instruct",
    "http.response.status_code",
    200,
  ],
  statusCode: 0,
  statusMessage: "",
}));
const head = exportHead({ "service.name": "llm-cache-router" }, "llm-cache-router", "0");

Deno.bench("encode a batch of 512 spans as OTLP JSON", { group: "export" }, () => {
  sink += encodeTraces(head, batch).length;
});

globalThis.addEventListener("unload", () => {
  if (sink < 0) console.log(sink);
});
