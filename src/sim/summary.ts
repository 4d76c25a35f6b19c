/**
 * Summary figures of a run's request records, as the offline simulator prints them.
 *
 * Rule: latencies over successful requests (status 200). TTFT p50 / p95 / p99 and mean; total time
 * p50 / p95; time per output token (TPOT) as vLLM's benchmark defines it, (total − TTFT) ÷
 * (completion tokens − 1), over requests with at least two tokens; queue time (the engine's: from
 * the request reaching the engine to its first scheduled step) p50 / p95 where records carry it;
 * the router index's prediction error, mean |predicted − cached tokens| ÷ 16 (blocks), over
 * successful records that carry a prediction.
 * Quantiles are numpy's linear method (src/bench/stats.ts), so `simulate` and `bench` agree.
 *
 * Cost: one pass over the records plus a sort per quantile set.
 *
 * @module
 */

import { percentile } from "../bench/stats.ts";
import type { RequestRecord } from "./types.ts";

/** Figures over a set of records. */
export interface RunSummary {
  readonly requests: number;
  readonly errors: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  /** Σ cached ÷ Σ prompt tokens over successful requests ("KV cached"). */
  readonly kvCachedShare: number;
  readonly ttftP50Ms: number;
  readonly ttftP95Ms: number;
  readonly ttftP99Ms: number;
  readonly ttftMeanMs: number;
  readonly totalP50Ms: number;
  readonly totalP95Ms: number;
  /** Time per output token after the first, ms. */
  readonly tpotP50Ms: number;
  readonly tpotP95Ms: number;
  /** Time in the engine's queue, ms (NaN when no record carries it). */
  readonly queueP50Ms: number;
  readonly queueP95Ms: number;
  /** Σ preemptions the records report. */
  readonly preemptions: number;
  /**
   * Mean |predicted − engine cached tokens| in 16-token blocks (NaN when no record carries a
   * prediction); see `predicted_cached_tokens`.
   */
  readonly predictionErrorBlocks: number;
  /** Mean completion tokens of successful requests. */
  readonly completionMean: number;
  /** From the first start to the last end, ms. */
  readonly makespanMs: number;
}

/**
 * Quantile `q` (0..1) of `values`, by the bench report's definition (numpy's linear method, see
 * `src/bench/stats.ts`); NaN when empty.
 */
export function quantile(values: readonly number[], q: number): number {
  return percentile(values, q * 100);
}

/** Summary figures of `records`. */
export function summarize(records: readonly RequestRecord[]): RunSummary {
  let prompt = 0;
  let cached = 0;
  let completion = 0;
  let ok = 0;
  let preemptions = 0;
  const ttft: number[] = [];
  const total: number[] = [];
  const tpot: number[] = [];
  const queue: number[] = [];
  let predErr = 0;
  let predicted = 0;
  let first = Infinity;
  let last = -Infinity;
  for (const r of records) {
    first = Math.min(first, r.start_ms);
    last = Math.max(last, r.start_ms + r.total_ms);
    preemptions += r.preemptions ?? 0;
    if (r.status !== 200) continue;
    ok++;
    prompt += r.prompt_tokens;
    cached += r.cached_tokens;
    completion += r.completion_tokens;
    total.push(r.total_ms);
    if (r.ttft_ms !== null) {
      ttft.push(r.ttft_ms);
      if (r.completion_tokens > 1) {
        tpot.push((r.total_ms - r.ttft_ms) / (r.completion_tokens - 1));
      }
    }
    if (typeof r.queue_ms === "number") queue.push(r.queue_ms);
    if (typeof r.predicted_cached_tokens === "number") {
      predErr += Math.abs(r.predicted_cached_tokens - r.cached_tokens) / 16;
      predicted++;
    }
  }
  return {
    requests: records.length,
    errors: records.length - ok,
    promptTokens: prompt,
    cachedTokens: cached,
    kvCachedShare: prompt > 0 ? cached / prompt : 0,
    ttftP50Ms: quantile(ttft, 0.5),
    ttftP95Ms: quantile(ttft, 0.95),
    ttftP99Ms: quantile(ttft, 0.99),
    ttftMeanMs: ttft.length > 0 ? ttft.reduce((a, b) => a + b, 0) / ttft.length : NaN,
    totalP50Ms: quantile(total, 0.5),
    totalP95Ms: quantile(total, 0.95),
    tpotP50Ms: quantile(tpot, 0.5),
    tpotP95Ms: quantile(tpot, 0.95),
    queueP50Ms: quantile(queue, 0.5),
    queueP95Ms: quantile(queue, 0.95),
    preemptions,
    predictionErrorBlocks: predicted > 0 ? predErr / predicted : NaN,
    completionMean: ok > 0 ? completion / ok : NaN,
    makespanMs: records.length > 0 ? last - first : 0,
  };
}
