import assert from "node:assert/strict";
import {
  EMPTY_SIGNALS,
  type EngineFigures,
  type EngineSignals,
  figuresFor,
  MAX_MODELS,
  parseEngineMetrics,
  readCapped,
} from "./engine_metrics.ts";

const M = "meta-llama/Llama-3.1-8B-Instruct";

/** A histogram family as vLLM writes it: many bucket lines that the parser must skip. */
function histogram(name: string, labels: string, buckets = 30): string {
  const out = [`# HELP ${name} A histogram.`, `# TYPE ${name} histogram`];
  for (let i = 0; i < buckets; i++) out.push(`${name}_bucket{${labels},le="${i * 0.5}"} ${i}`);
  out.push(`${name}_bucket{${labels},le="+Inf"} ${buckets}`);
  out.push(`${name}_count{${labels}} ${buckets}`, `${name}_sum{${labels}} 12.5`);
  return out.join("\n");
}

const VLLM_V1 = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="${M}"} 12.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="${M}"} 7.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="${M}"} 0.4375
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="${M}"} 3.0
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="${M}"} 1.2e+06
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="${M}"} 900000.0
${histogram("vllm:time_to_first_token_seconds", `engine="0",model_name="${M}"`)}
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="${M}"} 1.5e+06
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="${M}"} 900.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="${M}"} 100.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="${M}"} 0.0
`;

/** vLLM 0.8-era names only: gpu_ KV usage and prefix counters. */
const VLLM_OLD = `# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="${M}"} 2.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="${M}"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="${M}"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="${M}"} 0.05
# TYPE vllm:gpu_prefix_cache_queries_total counter
vllm:gpu_prefix_cache_queries_total{model_name="${M}"} 400.0
# TYPE vllm:gpu_prefix_cache_hits_total counter
vllm:gpu_prefix_cache_hits_total{model_name="${M}"} 100.0
# HELP vllm:gpu_prefix_cache_hit_rate GPU prefix cache block hit rate.
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{model_name="${M}"} 0.25
`;

/** During the deprecation both names are exported; the new one wins even when they differ. */
const VLLM_BOTH = `vllm:gpu_cache_usage_perc{model_name="m"} 0.9
vllm:gpu_prefix_cache_hits_total{model_name="m"} 1
vllm:kv_cache_usage_perc{model_name="m"} 0.2
vllm:prefix_cache_hits_total{model_name="m"} 5
`;

/** Data parallelism: two engines of one model behind one API server. */
const VLLM_DP = `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 10
vllm:num_requests_running{engine="1",model_name="m"} 6
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 4
vllm:num_requests_waiting{engine="1",model_name="m"} 0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.8
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.4
# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{engine="0",model_name="m"} 5
vllm:num_preemptions_created{engine="0",model_name="m"} 1.7e+09
vllm:num_preemptions_total{engine="1",model_name="m"} 1
vllm:num_preemptions_created{engine="1",model_name="m"} 1.7e+09
`;

/** Two models on one page (e.g. a proxy that fronts two engines). */
const VLLM_TWO_MODELS = `vllm:num_requests_running{model_name="a"} 3
vllm:num_requests_running{model_name="b"} 1
vllm:num_requests_waiting{model_name="a"} 2
vllm:num_requests_waiting{model_name="b"} 5
vllm:kv_cache_usage_perc{model_name="a"} 0.3
vllm:kv_cache_usage_perc{model_name="b"} 0.7
`;

const SGLANG = `# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="${M}",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 162.0
sglang:num_running_reqs{engine_type="unified",model_name="${M}",moe_ep_rank="0",pp_rank="0",tp_rank="1"} 162.0
# HELP sglang:num_used_tokens The number of used tokens.
# TYPE sglang:num_used_tokens gauge
sglang:num_used_tokens{model_name="${M}"} 123859.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="${M}",tp_rank="0"} 0.28
sglang:token_usage{model_name="${M}",tp_rank="1"} 0.28
# HELP sglang:gen_throughput The generation throughput (token/s).
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{model_name="${M}"} 86.50814177726902
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="${M}",tp_rank="0"} 2826.0
sglang:num_queue_reqs{model_name="${M}",tp_rank="1"} 2826.0
# HELP sglang:cache_hit_rate The prefix cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="${M}"} 0.007507552643049313
# HELP sglang:num_retracted_requests_total Total number of retracted requests.
# TYPE sglang:num_retracted_requests_total counter
sglang:num_retracted_requests_total{model_name="${M}"} 17.0
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="${M}"} 8.128902e+06
# TYPE sglang:num_requests_total counter
sglang:num_requests_total{model_name="${M}"} 11228.0
${histogram("sglang:time_to_first_token_seconds", `model_name="${M}"`)}
`;

const SGLANG_DP = `sglang:num_running_reqs{dp_rank="0",model_name="m",tp_rank="0"} 4
sglang:num_running_reqs{dp_rank="1",model_name="m",tp_rank="1"} 6
sglang:num_queue_reqs{dp_rank="0",model_name="m",tp_rank="0"} 1
sglang:num_queue_reqs{dp_rank="1",model_name="m",tp_rank="1"} 2
sglang:token_usage{dp_rank="0",model_name="m",tp_rank="0"} 0.5
sglang:token_usage{dp_rank="1",model_name="m",tp_rank="1"} 0.7
`;

const LLAMA_OLD = `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 33065
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# HELP llamacpp:kv_cache_tokens KV-cache tokens.
# TYPE llamacpp:kv_cache_tokens gauge
llamacpp:kv_cache_tokens 1024
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 3
`;

/** A current llama-server: no KV gauge any more. */
const LLAMA_NEW = `# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 1180
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode gauge
llamacpp:n_busy_slots_per_decode 1.4
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 4
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
`;

/** Text Generation Inference: none of the known names. */
const TGI = `# TYPE tgi_queue_size gauge
tgi_queue_size 4
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 8
`;

interface Case {
  name: string;
  text: string;
  engine: EngineSignals["engine"];
  want: EngineFigures;
  models?: Record<string, EngineFigures>;
  malformed?: number;
}

const CASES: Case[] = [
  {
    name: "vLLM V1, kv_cache_usage_perc, histograms skipped",
    text: VLLM_V1,
    engine: "vllm",
    want: {
      running: 12,
      waiting: 7,
      kvUsage: 0.4375,
      preemptions: 3,
      prefixCacheQueries: 1.2e6,
      prefixCacheHits: 9e5,
      promptTokens: 1.5e6,
      requests: 1000,
    },
    models: {
      [M]: {
        running: 12,
        waiting: 7,
        kvUsage: 0.4375,
        preemptions: 3,
        prefixCacheQueries: 1.2e6,
        prefixCacheHits: 9e5,
        promptTokens: 1.5e6,
        requests: 1000,
      },
    },
  },
  {
    name: "vLLM before the rename: gpu_cache_usage_perc and gpu_prefix_cache_*",
    text: VLLM_OLD,
    engine: "vllm",
    want: {
      running: 2,
      waiting: 0,
      kvUsage: 0.05,
      prefixCacheQueries: 400,
      prefixCacheHits: 100,
      prefixCacheHitRate: 0.25,
    },
  },
  {
    name: "vLLM with both names: the new ones win",
    text: VLLM_BOTH,
    engine: "vllm",
    want: { kvUsage: 0.2, prefixCacheHits: 5 },
  },
  {
    name: "vLLM data parallel: engines summed, KV usage averaged, _created skipped",
    text: VLLM_DP,
    engine: "vllm",
    want: { running: 16, waiting: 4, kvUsage: 0.6000000000000001, preemptions: 6 },
    models: { m: { running: 16, waiting: 4, kvUsage: 0.6000000000000001, preemptions: 6 } },
  },
  {
    name: "two model_name series: totals sum counts, take the fuller KV cache",
    text: VLLM_TWO_MODELS,
    engine: "vllm",
    want: { running: 4, waiting: 7, kvUsage: 0.7 },
    models: {
      a: { running: 3, waiting: 2, kvUsage: 0.3 },
      b: { running: 1, waiting: 5, kvUsage: 0.7 },
    },
  },
  {
    name: "SGLang: tensor-parallel copies counted once",
    text: SGLANG,
    engine: "sglang",
    want: {
      running: 162,
      waiting: 2826,
      kvUsage: 0.28,
      preemptions: 17,
      prefixCacheHitRate: 0.007507552643049313,
      promptTokens: 8128902,
      requests: 11228,
    },
  },
  {
    name: "SGLang data parallel: dp_rank summed",
    text: SGLANG_DP,
    engine: "sglang",
    want: { running: 10, waiting: 3, kvUsage: 0.6 },
  },
  {
    name: "llama-server with kv_cache_usage_ratio",
    text: LLAMA_OLD,
    engine: "llamacpp",
    want: { running: 2, waiting: 3, kvUsage: 0.125 },
    models: { "": { running: 2, waiting: 3, kvUsage: 0.125 } },
  },
  {
    name: "llama-server without a KV gauge",
    text: LLAMA_NEW,
    engine: "llamacpp",
    want: { running: 4, waiting: 0 },
  },
  { name: "unknown engine: empty, no error", text: TGI, engine: "unknown", want: {}, models: {} },
  { name: "empty page", text: "", engine: "unknown", want: {}, models: {} },
  {
    name: "malformed lines of known names are counted and skipped, the rest read",
    text: `vllm:num_requests_running{model_name="m} 3
vllm:num_requests_running{model_name="m"} 4
vllm:num_requests_waiting{model_name="m"} lots
vllm:num_requests_waiting{model_name="m"} 1 2 3
vllm:num_requests_waiting{model_name="m"} 2
garbage that is not a metric line at all {{{
vllm:kv_cache_usage_perc{model_name="m"}0.5
\u0000\uFFFD binary junk
`,
    engine: "vllm",
    want: { running: 4, waiting: 2 },
    malformed: 4,
  },
  {
    name: "NaN, ±Inf and negative values are dropped; a ratio above 1 reads as 1",
    text: `vllm:num_requests_running{engine="0",model_name="m"} NaN
vllm:num_requests_running{engine="1",model_name="m"} 3
vllm:num_requests_waiting{engine="0",model_name="m"} +Inf
vllm:num_requests_waiting{engine="1",model_name="m"} -2
vllm:kv_cache_usage_perc{model_name="m"} 87.5
vllm:num_preemptions_total{model_name="m"} -Inf
`,
    engine: "vllm",
    want: { running: 3, kvUsage: 1 },
  },
  {
    name: "timestamps, CRLF, tabs, escaped quotes in model_name, UTF-8 names, exemplars",
    text: [
      'vllm:num_requests_running{model_name="say \\"hi\\""} 5 1712000000000',
      '{"vllm:num_requests_waiting",model_name="say \\"hi\\""}\t6',
      'vllm:num_preemptions_total{model_name="say \\"hi\\""} 2 # {trace_id="x"} 1',
      "# EOF",
    ].join("\r\n"),
    engine: "vllm",
    want: { running: 5, waiting: 6, preemptions: 2 },
    models: { 'say "hi"': { running: 5, waiting: 6, preemptions: 2 } },
  },
];

/** The figure fields of `s` (drops engine, models, truncated, malformedLines, bytes). */
function figures(s: EngineFigures): EngineFigures {
  const { running, waiting, kvUsage, preemptions, prefixCacheHits, prefixCacheQueries } = s;
  const out: Record<string, number | undefined> = {
    running,
    waiting,
    kvUsage,
    preemptions,
    prefixCacheHits,
    prefixCacheQueries,
    prefixCacheHitRate: s.prefixCacheHitRate,
    promptTokens: s.promptTokens,
    requests: s.requests,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

for (const c of CASES) {
  Deno.test(`parseEngineMetrics: ${c.name}`, () => {
    const s = parseEngineMetrics(c.text);
    assert.equal(s.engine, c.engine);
    assert.deepEqual(figures(s), c.want);
    if (c.models) {
      assert.deepEqual(
        Object.fromEntries([...s.models].map(([k, v]) => [k, figures(v)])),
        c.models,
      );
    }
    assert.equal(s.malformedLines, c.malformed ?? 0);
    assert.equal(s.truncated, false);
  });
}

Deno.test("figuresFor: the request's model when listed apart, else the worker's totals", () => {
  const s = parseEngineMetrics(VLLM_TWO_MODELS);
  assert.equal(figuresFor(s, "b").waiting, 5);
  assert.equal(figuresFor(s, "nope").waiting, 7);
  assert.equal(figuresFor(s).waiting, 7);
  assert.equal(figuresFor(EMPTY_SIGNALS, "a").waiting, undefined);
});

Deno.test("parseEngineMetrics: more models than MAX_MODELS are kept in the totals only", () => {
  const lines: string[] = [];
  for (let i = 0; i < MAX_MODELS + 36; i++) {
    lines.push(`vllm:num_requests_waiting{model_name="m${i}"} 1`);
  }
  const s = parseEngineMetrics(lines.join("\n"));
  assert.equal(s.models.size, MAX_MODELS);
  assert.equal(s.waiting, MAX_MODELS + 36);
});

/** A stream of `text` in `chunk`-byte pieces; `pulled` counts the pieces handed out. */
function streamOf(text: string | (() => Uint8Array | null), chunk = 4096) {
  const state = { pulled: 0, cancelled: false };
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : undefined;
  let off = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      let piece: Uint8Array | null;
      if (bytes) {
        piece = off < bytes.length ? bytes.subarray(off, off += chunk) : null;
      } else {
        piece = (text as () => Uint8Array | null)();
      }
      if (piece === null) ctl.close();
      else {
        state.pulled++;
        ctl.enqueue(piece);
      }
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

Deno.test("readCapped: streamed in small pieces, lines split across pieces, same result", async () => {
  const { stream } = streamOf(VLLM_V1, 7);
  const s = await readCapped(stream, 1 << 20);
  assert.deepEqual(figures(s), figures(parseEngineMetrics(VLLM_V1)));
  assert.equal(s.bytes, new TextEncoder().encode(VLLM_V1).length);
  assert.equal(s.truncated, false);
});

Deno.test("readCapped: a multi-byte character split across pieces is decoded whole", async () => {
  const text = 'vllm:num_requests_waiting{model_name="模型"} 3\n';
  const { stream } = streamOf(text, 1);
  const s = await readCapped(stream, 1 << 20);
  assert.equal(s.models.get("模型")?.waiting, 3);
});

Deno.test("readCapped: a huge body is cut at the cap; the family being read is dropped", async () => {
  // Gauges first, then megabytes of histograms, then a family straddling the cap, then more.
  const head = `vllm:num_requests_running{model_name="m"} 2
vllm:num_requests_waiting{model_name="m"} 9
`;
  const filler = histogram("vllm:e2e_request_latency_seconds", 'model_name="m"', 20) + "\n";
  let body = head;
  while (body.length < 200_000) body += filler;
  const kv = `# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.9
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.1
vllm:num_preemptions_total{model_name="m"} 4
`;
  const cap = body.length + kv.indexOf('engine="1"'); // inside the KV family's second line
  body += kv;
  for (let i = 0; i < 50; i++) body += filler;
  const { stream, state } = streamOf(body, 8192);
  const s = await readCapped(stream, cap);
  assert.equal(s.truncated, true);
  assert.equal(s.bytes, cap);
  assert.equal(s.running, 2);
  assert.equal(s.waiting, 9);
  assert.equal(s.kvUsage, undefined, "the half-read family must not count");
  assert.equal(s.preemptions, undefined);
  assert.ok(state.cancelled, "the rest of the body is cancelled, not read");
  assert.ok(state.pulled * 8192 <= cap + 2 * 8192, `pulled ${state.pulled} pieces`);
});

Deno.test("readCapped: a complete family just before the cap is kept", async () => {
  const text = `vllm:num_requests_waiting{model_name="m"} 9
vllm:num_requests_running{model_name="m"} 2
${histogram("vllm:x", 'model_name="m"', 100)}
`;
  // Cut inside the next family's TYPE line: its HELP line, complete, closed the gauges.
  const cap = text.indexOf("# TYPE vllm:x") + 5;
  const s = await readCapped(streamOf(text, 64).stream, cap);
  assert.equal(s.truncated, true);
  assert.equal(s.waiting, 9);
  assert.equal(s.running, 2);
});

Deno.test("readCapped: an endless line without newlines is bounded by the cap", async () => {
  const piece = new TextEncoder().encode(
    'vllm:num_requests_waiting{model_name="' + "x".repeat(4000),
  );
  const { stream, state } = streamOf(() => piece);
  const s = await readCapped(stream, 1 << 20);
  assert.equal(s.truncated, true);
  assert.equal(s.waiting, undefined);
  assert.ok(state.cancelled);
  assert.ok(state.pulled <= (1 << 20) / piece.length + 2, `pulled ${state.pulled}`);
  assert.equal(s.malformedLines, 1, "the over-long line counts once");
});

Deno.test("readCapped: an over-long line is skipped and the next line still read", async () => {
  const text = `vllm:num_requests_waiting{model_name="${"y".repeat(100_000)}"} 5
vllm:num_requests_running{model_name="m"} 3
`;
  const s = await readCapped(streamOf(text, 1000).stream, 1 << 20);
  assert.equal(s.running, 3);
  assert.equal(s.waiting, undefined);
  assert.equal(s.malformedLines, 1);
});

Deno.test("readCapped: null body reads as empty signals", async () => {
  const s = await readCapped(null, 100);
  assert.equal(s.engine, "unknown");
  assert.equal(s.bytes, 0);
});
