import assert from "node:assert/strict";
import { register as globalRegistry } from "prom-client";
import { type RequestObservation, RouterMetrics } from "./metrics.ts";

/** One parsed sample line of the text exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[lm[1]] = lm[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Value of the one sample `name` whose labels are exactly `labels`; undefined when absent. */
function value(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  const hits = samples.filter((s) =>
    s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want
  );
  assert.ok(hits.length <= 1, `${name} ${want} appears ${hits.length} times`);
  return hits[0]?.value;
}

const base: RequestObservation = {
  strategy: "prefixaware",
  backend: "w1",
  reason: "longest-prefix",
  status: 200,
  cause: "proxied",
  endpoint: "/v1/chat/completions",
  model: "m",
  stream: false,
  durationS: 0.3,
  ttfbS: 0.02,
  ttftS: null,
  matchChunks: 5,
  bytes: 1000,
  cacheHit: true,
};

/** The labels of `router_requests_total` for `base` with `over` replaced. */
function reqLabels(over: Record<string, string> = {}): Record<string, string> {
  return {
    strategy: "prefixaware",
    backend: "w1",
    reason: "longest-prefix",
    status: "200",
    cause: "proxied",
    endpoint: "/v1/chat/completions",
    model: "m",
    ...over,
  };
}

Deno.test("observeRequest fills request, latency, match, cache-hit and bytes metrics", async () => {
  const m = new RouterMetrics();
  m.observeRequest(base);
  m.observeRequest({ ...base, durationS: 3, ttfbS: 0.7, matchChunks: 300, bytes: 24 });
  m.observeRequest({
    ...base,
    backend: "w2",
    reason: "fallback-least-loaded",
    status: 502,
    ttfbS: null,
    matchChunks: 0,
    bytes: 0,
    cacheHit: null,
  });
  m.observeRequest({ ...base, cacheHit: false, matchChunks: null, bytes: 1 });
  const s = parse(await m.render());
  const req = (backend: string, reason: string, status: string) =>
    value(s, "router_requests_total", reqLabels({ backend, reason, status }));
  assert.equal(req("w1", "longest-prefix", "200"), 3);
  assert.equal(req("w2", "fallback-least-loaded", "502"), 1);
  assert.equal(req("w1", "longest-prefix", "502"), undefined);

  const d = {
    strategy: "prefixaware",
    backend: "w1",
    endpoint: "/v1/chat/completions",
    model: "m",
  };
  const t = { strategy: "prefixaware", backend: "w1", stream: "false" };
  assert.equal(value(s, "router_request_duration_seconds_count", d), 3);
  assert.ok(Math.abs(value(s, "router_request_duration_seconds_sum", d)! - 3.6) < 1e-9);
  assert.equal(value(s, "router_request_duration_seconds_bucket", { ...d, le: "0.5" }), 2);
  assert.equal(value(s, "router_request_duration_seconds_bucket", { ...d, le: "2.5" }), 2);
  assert.equal(value(s, "router_request_duration_seconds_bucket", { ...d, le: "5" }), 3);
  assert.equal(value(s, "router_time_to_first_byte_seconds_count", t), 3);
  assert.equal(value(s, "router_time_to_first_byte_seconds_bucket", { ...t, le: "0.025" }), 2);
  assert.equal(
    value(s, "router_time_to_first_byte_seconds_count", { ...t, backend: "w2" }),
    undefined,
    "no first byte, no TTFB sample",
  );
  assert.equal(
    value(s, "router_request_duration_seconds_count", { ...d, backend: "w2" }),
    1,
  );

  // Match chunks: 5, 300, 0 observed; null skipped. Buckets are the design's.
  assert.equal(value(s, "router_prefix_match_chunks_count"), 3);
  assert.equal(value(s, "router_prefix_match_chunks_sum"), 305);
  assert.equal(value(s, "router_prefix_match_chunks_bucket", { le: "0" }), 1);
  assert.equal(value(s, "router_prefix_match_chunks_bucket", { le: "4" }), 1);
  assert.equal(value(s, "router_prefix_match_chunks_bucket", { le: "8" }), 2);
  assert.equal(value(s, "router_prefix_match_chunks_bucket", { le: "256" }), 2);
  assert.equal(value(s, "router_prefix_match_chunks_bucket", { le: "512" }), 3);
  const les = s.filter((x) => x.name === "router_prefix_match_chunks_bucket").map((x) =>
    x.labels.le
  );
  assert.deepEqual(les, [
    "0",
    "1",
    "2",
    "4",
    "8",
    "16",
    "32",
    "64",
    "128",
    "256",
    "512",
    "1024",
    "+Inf",
  ]);

  assert.equal(value(s, "router_cache_hit_requests_total", { category: "hit" }), 2);
  assert.equal(value(s, "router_cache_hit_requests_total", { category: "miss" }), 1);
  assert.equal(value(s, "router_response_bytes_total", { backend: "w1" }), 1025);
});

Deno.test("backend gauges, token counters and retries", async () => {
  const m = new RouterMetrics();
  m.setInflight("w1", 3);
  m.setInflight("w1", 2);
  m.setInflight("w2", 7);
  m.setBackendUp("w1", true);
  m.setBackendUp("w2", true);
  m.setBackendUp("w2", false);
  m.setBreakerState("w1", "closed");
  m.setBreakerState("w2", "open");
  m.setBreakerState("w2", "half-open");
  m.addUpstreamTokens("w1", 1000, 768);
  m.addUpstreamTokens("w1", 500, 0);
  m.incRetry("w2", "connect");
  m.incRetry("w2", "connect");
  m.incRetry("w2", "5xx");
  m.observePredictionError(-40);
  m.observePredictionError(0);
  m.observePredictionError(300);
  const s = parse(await m.render());
  assert.equal(value(s, "router_inflight", { backend: "w1" }), 2);
  assert.equal(value(s, "router_inflight", { backend: "w2" }), 7);
  assert.equal(value(s, "router_backend_up", { backend: "w1" }), 1);
  assert.equal(value(s, "router_backend_up", { backend: "w2" }), 0);
  assert.equal(value(s, "router_breaker_state", { backend: "w1" }), 0);
  assert.equal(value(s, "router_breaker_state", { backend: "w2" }), 2);
  const state = (backend: string, st: string) =>
    value(s, "router_backend_breaker_state", { backend, state: st });
  assert.deepEqual([state("w1", "closed"), state("w1", "open"), state("w1", "half_open")], [
    1,
    0,
    0,
  ]);
  assert.deepEqual([state("w2", "closed"), state("w2", "open"), state("w2", "half_open")], [
    0,
    0,
    1,
  ]);
  assert.equal(value(s, "router_upstream_prompt_tokens_total", { backend: "w1" }), 1500);
  assert.equal(value(s, "router_upstream_cached_tokens_total", { backend: "w1" }), 768);
  assert.equal(value(s, "router_retries_total", { backend: "w2", reason: "connect" }), 2);
  assert.equal(value(s, "router_retries_total", { backend: "w2", reason: "5xx" }), 1);
  assert.equal(value(s, "router_prefix_prediction_error_tokens_count"), 3);
  assert.equal(value(s, "router_prefix_prediction_error_tokens_sum"), 260);
  assert.equal(value(s, "router_prefix_prediction_error_tokens_bucket", { le: "-16" }), 1);
  assert.equal(value(s, "router_prefix_prediction_error_tokens_bucket", { le: "0" }), 2);
  assert.equal(value(s, "router_prefix_prediction_error_tokens_bucket", { le: "128" }), 2);
  assert.equal(value(s, "router_prefix_prediction_error_tokens_bucket", { le: "512" }), 3);
});

Deno.test("prefix tree stats: gauges are set, counters advance by the totals' delta", async () => {
  const m = new RouterMetrics();
  const stats = (inserts: number, queries: number, evictions: number, chunks = 10) => ({
    chunks,
    terminals: 3,
    maxChunks: 4096,
    inserts,
    queries,
    evictions,
  });
  m.setPrefixTreeStats("w1", stats(5, 20, 0));
  m.setPrefixTreeStats("w1", stats(8, 31, 2, 40));
  m.setPrefixTreeStats("w1", stats(8, 31, 2, 40)); // unchanged totals add nothing
  m.setPrefixTreeStats("w2", stats(1, 1, 0));
  let s = parse(await m.render());
  const w1 = { backend: "w1" };
  assert.equal(value(s, "router_prefix_tree_chunks", w1), 40);
  assert.equal(value(s, "router_prefix_tree_terminals", w1), 3);
  assert.equal(value(s, "router_prefix_tree_max_chunks", w1), 4096);
  assert.equal(value(s, "router_prefix_tree_inserts_total", w1), 8);
  assert.equal(value(s, "router_prefix_tree_queries_total", w1), 31);
  assert.equal(value(s, "router_prefix_tree_evictions_total", w1), 2);
  assert.equal(value(s, "router_prefix_tree_inserts_total", { backend: "w2" }), 1);

  // A new index starts its totals from 0: its whole total is added, the counter never goes back.
  m.setPrefixTreeStats("w1", stats(3, 4, 0, 5));
  s = parse(await m.render());
  assert.equal(value(s, "router_prefix_tree_inserts_total", w1), 11);
  assert.equal(value(s, "router_prefix_tree_queries_total", w1), 35);
  assert.equal(value(s, "router_prefix_tree_evictions_total", w1), 2);
  assert.equal(value(s, "router_prefix_tree_chunks", w1), 5);

  // Named indexes: a replacement whose totals already passed the old one's still counts whole.
  const before = {};
  const after = {};
  m.setPrefixTreeStats("w3", stats(10, 10, 0), before);
  m.setPrefixTreeStats("w3", stats(15, 15, 0), after); // a reload's new tree, already past 10
  m.setPrefixTreeStats("w3", stats(16, 16, 0), after);
  s = parse(await m.render());
  assert.equal(value(s, "router_prefix_tree_inserts_total", { backend: "w3" }), 10 + 16);
});

Deno.test("render declares every metric with its type", async () => {
  const m = new RouterMetrics();
  const text = await m.render();
  const types: Record<string, string> = {
    router_requests_total: "counter",
    router_request_duration_seconds: "histogram",
    router_time_to_first_byte_seconds: "histogram",
    router_time_to_first_token_seconds: "histogram",
    router_prefix_match_chunks: "histogram",
    router_cache_hit_requests_total: "counter",
    router_prefix_tree_chunks: "gauge",
    router_prefix_tree_terminals: "gauge",
    router_prefix_tree_max_chunks: "gauge",
    router_prefix_tree_inserts_total: "counter",
    router_prefix_tree_queries_total: "counter",
    router_prefix_tree_evictions_total: "counter",
    router_response_bytes_total: "counter",
    router_inflight: "gauge",
    router_backend_up: "gauge",
    router_breaker_state: "gauge",
    router_backend_breaker_state: "gauge",
    router_upstream_prompt_tokens_total: "counter",
    router_upstream_cached_tokens_total: "counter",
    router_retries_total: "counter",
    router_prefix_prediction_error_tokens: "histogram",
  };
  for (const [name, type] of Object.entries(types)) {
    assert.ok(text.includes(`# TYPE ${name} ${type}\n`), `${name} declared as ${type}`);
  }
  assert.match(m.contentType, /^text\/plain/);
});

Deno.test("two instances share no state and leave the global registry alone", async () => {
  const before = await globalRegistry.metrics();
  const a = new RouterMetrics();
  const b = new RouterMetrics(); // same names again: would throw on a shared registry
  a.observeRequest(base);
  a.setInflight("w1", 4);
  b.setInflight("w1", 9);
  const sa = parse(await a.render());
  const sb = parse(await b.render());
  const labels = reqLabels();
  assert.equal(value(sa, "router_requests_total", labels), 1);
  assert.equal(value(sb, "router_requests_total", labels), undefined);
  assert.equal(value(sa, "router_inflight", { backend: "w1" }), 4);
  assert.equal(value(sb, "router_inflight", { backend: "w1" }), 9);
  assert.equal(await globalRegistry.metrics(), before);
  assert.ok(!before.includes("router_"));
});

Deno.test("cached label children keep counting the same series", async () => {
  const m = new RouterMetrics();
  for (let i = 0; i < 1000; i++) m.observeRequest({ ...base, status: i % 2 === 0 ? 200 : 429 });
  const s = parse(await m.render());
  assert.equal(value(s, "router_requests_total", reqLabels({ status: "200" })), 500);
  assert.equal(value(s, "router_requests_total", reqLabels({ status: "429" })), 500);
  const d = {
    strategy: "prefixaware",
    backend: "w1",
    endpoint: "/v1/chat/completions",
    model: "m",
  };
  assert.equal(value(s, "router_request_duration_seconds_count", d), 1000);
  assert.equal(value(s, "router_response_bytes_total", { backend: "w1" }), 1_000_000);
});

Deno.test("TTFT is observed for streams only; answers outside the pipeline get no latency", async () => {
  const m = new RouterMetrics();
  m.observeRequest({ ...base, stream: true, ttftS: 0.04 });
  m.observeRequest({ ...base, stream: true, ttftS: 0.2, model: "other" });
  m.observeRequest({ ...base, stream: false, ttftS: 0.03 }); // not a stream: no TTFT sample
  m.observeRequest({ ...base, stream: true, ttftS: null }); // no token (an error answer)
  m.observeRequest({
    ...base,
    backend: "none",
    reason: "none",
    status: 401,
    cause: "auth",
    model: "none",
    durationS: null,
    ttfbS: null,
  });
  const s = parse(await m.render());
  const ttft = (model: string) =>
    value(s, "router_time_to_first_token_seconds_count", {
      endpoint: "/v1/chat/completions",
      model,
    });
  assert.equal(ttft("m"), 1);
  assert.equal(ttft("other"), 1);
  assert.equal(
    value(s, "router_time_to_first_token_seconds_bucket", {
      endpoint: "/v1/chat/completions",
      model: "m",
      le: "0.05",
    }),
    1,
  );
  const streamed = { strategy: "prefixaware", backend: "w1", stream: "true" };
  assert.equal(value(s, "router_time_to_first_byte_seconds_count", streamed), 3);
  assert.equal(
    value(
      s,
      "router_requests_total",
      reqLabels({
        backend: "none",
        reason: "none",
        status: "401",
        cause: "auth",
        model: "none",
      }),
    ),
    1,
  );
  assert.equal(
    value(s, "router_request_duration_seconds_count", {
      strategy: "prefixaware",
      backend: "none",
      endpoint: "/v1/chat/completions",
      model: "none",
    }),
    undefined,
  );
});

Deno.test("forgetBackendGauges drops the labelled breaker states too", async () => {
  const m = new RouterMetrics();
  m.setBreakerState("gone", "open");
  m.forgetBackendGauges("gone");
  const text = await m.render();
  assert.ok(!text.includes('backend="gone"'), text);
});

Deno.test("process metrics: CPU, memory, start time and event-loop lag are exported", async () => {
  const m = new RouterMetrics();
  const s = parse(await m.render());
  assert.ok(value(s, "process_cpu_seconds_total")! > 0);
  assert.ok(value(s, "process_resident_memory_bytes")! > 1e6);
  assert.ok(value(s, "nodejs_heap_size_used_bytes")! > 0);
  const start = value(s, "process_start_time_seconds")!;
  assert.ok(Math.abs(start - Date.now() / 1000) < 24 * 3600, `start ${start}`);
  assert.equal(value(s, "nodejs_eventloop_lag_seconds"), 0);
  const build = s.find((x) => x.name === "router_build_info");
  assert.equal(build?.labels.deno, Deno.version.deno);
});
