/**
 * The sim worker's `/metrics` page: Prometheus text with vLLM's metric names, labelled
 * `model_name` (the first served name, as vLLM labels), and the sim's own `sim_*` counters.
 *
 * vLLM's names: `vllm:num_requests_running`, `vllm:num_requests_waiting`,
 * `vllm:kv_cache_usage_perc` (and the older `vllm:gpu_cache_usage_perc`),
 * `vllm:prefix_cache_queries_total`, `vllm:prefix_cache_hits_total`, `vllm:prompt_tokens_total`,
 * `vllm:generation_tokens_total`, `vllm:request_success_total{finished_reason}`,
 * `vllm:num_preemptions_total`, and the histograms `vllm:time_to_first_token_seconds` and
 * `vllm:e2e_request_latency_seconds` with vLLM's buckets. Latencies are in model time (the
 * engine's clock, so a run at `--time-scale 0.1` reports what the modelled GPU would take).
 *
 * Cost: O(buckets) per observation and per scrape; about 6 KB per scrape.
 *
 * @module
 */

import type { EngineStats } from "./types.ts";

/** vLLM's buckets of `vllm:time_to_first_token_seconds`. */
export const TTFT_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.02,
  0.04,
  0.06,
  0.08,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
  20,
  40,
  80,
  160,
  640,
  2560,
];

/** vLLM's buckets of `vllm:e2e_request_latency_seconds`. */
export const E2E_BUCKETS = [
  0.3,
  0.5,
  0.8,
  1,
  1.5,
  2,
  2.5,
  5,
  10,
  15,
  20,
  30,
  40,
  50,
  60,
  120,
  240,
  480,
  960,
  1920,
  7680,
];

/** A Prometheus histogram (cumulative buckets, sum, count). */
export class Histogram {
  readonly buckets: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(buckets: readonly number[]) {
    this.buckets = buckets;
    this.#counts = buckets.map(() => 0);
  }

  /** Records one value. */
  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    this.#sum += v;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.#counts[i]++;
  }

  get count(): number {
    return this.#count;
  }

  /** Exposition lines under `name` with the label text `labels` (no braces). */
  lines(name: string, labels: string): string[] {
    const out = this.buckets.map((b, i) =>
      `${name}_bucket{${labels},le="${b}"} ${this.#counts[i]}`
    );
    out.push(`${name}_bucket{${labels},le="+Inf"} ${this.#count}`);
    out.push(`${name}_sum{${labels}} ${this.#sum}`, `${name}_count{${labels}} ${this.#count}`);
    return out;
  }
}

/** Latency histograms a sim worker keeps. */
export interface LatencyHistograms {
  readonly ttft: Histogram;
  readonly e2e: Histogram;
}

/** Fresh latency histograms with vLLM's buckets. */
export function latencyHistograms(): LatencyHistograms {
  return { ttft: new Histogram(TTFT_BUCKETS), e2e: new Histogram(E2E_BUCKETS) };
}

/** Prometheus text exposition of `s` for the served `model`. */
export function metricsText(s: EngineStats, model: string, latency?: LatencyHistograms): string {
  const l = `{model_name="${model}"}`;
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, value: number, labels = l) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${value}`);
  };
  metric("vllm:num_requests_running", "gauge", "Requests in the running batch.", s.running);
  metric("vllm:num_requests_waiting", "gauge", "Requests waiting in the queue.", s.waiting);
  metric("vllm:kv_cache_usage_perc", "gauge", "KV cache usage, 1 = full.", s.usage);
  metric("vllm:gpu_cache_usage_perc", "gauge", "KV cache usage (older name).", s.usage);
  metric(
    "vllm:prefix_cache_queries_total",
    "counter",
    "Prompt tokens looked up in the prefix cache.",
    s.prefixCacheQueries,
  );
  metric(
    "vllm:prefix_cache_hits_total",
    "counter",
    "Prompt tokens found in the prefix cache (cached tokens).",
    s.prefixCacheHits,
  );
  metric("vllm:prompt_tokens_total", "counter", "Prompt tokens processed.", s.promptTokensTotal);
  metric(
    "vllm:generation_tokens_total",
    "counter",
    "Tokens generated.",
    s.generationTokensTotal,
  );
  lines.push(
    "# HELP vllm:request_success_total Requests finished.",
    "# TYPE vllm:request_success_total counter",
    `vllm:request_success_total{model_name="${model}",finished_reason="stop"} ${s.requestsFinishedStop}`,
    `vllm:request_success_total{model_name="${model}",finished_reason="length"} ` +
      s.requestsFinishedLength,
  );
  metric(
    "vllm:num_preemptions_total",
    "counter",
    "Running requests preempted for want of KV blocks (recomputed later).",
    s.preemptions,
  );
  if (latency !== undefined) {
    const hist = (name: string, help: string, h: Histogram) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      lines.push(...h.lines(name, `model_name="${model}"`));
    };
    hist("vllm:time_to_first_token_seconds", "Time to first token, seconds.", latency.ttft);
    hist("vllm:e2e_request_latency_seconds", "End-to-end request latency, seconds.", latency.e2e);
  }
  metric("sim_requests_cancelled_total", "counter", "Requests cancelled.", s.requestsCancelled);
  metric("sim_kv_cache_capacity_blocks", "gauge", "KV cache capacity.", s.capacityBlocks);
  metric("sim_kv_cache_cached_blocks", "gauge", "Hashed blocks held.", s.cachedBlocks);
  metric("sim_kv_cache_evicted_blocks_total", "counter", "Blocks evicted.", s.evictedBlocks);
  metric("sim_engine_steps_total", "counter", "Engine steps run.", s.steps);
  return lines.join("\n") + "\n";
}
