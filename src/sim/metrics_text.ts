/**
 * The sim worker's `/metrics` page: Prometheus text with vLLM's metric names, labelled
 * `model_name`, and the sim's own `sim_*` counters.
 *
 * Cost: O(1); a few hundred bytes per scrape.
 *
 * @module
 */

import type { EngineStats } from "./engine.ts";

/** Prometheus text exposition of `s` for the served `model`. */
export function metricsText(s: EngineStats, model: string): string {
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
  metric("sim_requests_cancelled_total", "counter", "Requests cancelled.", s.requestsCancelled);
  metric("sim_kv_cache_capacity_blocks", "gauge", "KV cache capacity.", s.capacityBlocks);
  metric("sim_kv_cache_cached_blocks", "gauge", "Hashed blocks held.", s.cachedBlocks);
  metric("sim_kv_cache_evicted_blocks_total", "counter", "Blocks evicted.", s.evictedBlocks);
  metric("sim_engine_steps_total", "counter", "Engine steps run.", s.steps);
  return lines.join("\n") + "\n";
}
