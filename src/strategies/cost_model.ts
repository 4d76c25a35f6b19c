/**
 * The time-to-first-token model shared by `costaware` and the router's `LoadTracker`
 * (docs/decisions/0003-cost-aware-strategy.md), and the token arithmetic the cost-based strategies
 * share.
 *
 * Model. A request sent to a worker waits for the engine step that is running to end (on average
 * half a step, when the worker is busy), then runs in one step together with every prompt still
 * waiting for prefill there and every sequence decoding there:
 *
 *   ttft ≈ [busy] × decodeStepMs / 2 + stepOverheadMs + decoding × decodeMsPerSeq
 *          + (pendingPrefillTokens + uncachedTokens) ÷ prefillTokensPerMs
 *
 * with `uncachedTokens = requestTokens − matchChunks × chunkSize ÷ bytesPerToken` (never below
 * 0). Joining that step also delays the prefills queued there by `uncachedTokens ÷ rate` each
 * (`queuedDelayMs`). Every figure is per worker; the `LoadTracker` learns the rates online and the
 * priors below stand in until it has seen traffic.
 *
 * The engine's own figures, when the router scrapes them (`Candidate.engine`), add what its
 * accounting cannot see: requests other clients queued or run there (`engineExtraMs`).
 *
 * Tokens are the router's estimate, UTF-8 bytes ÷ `bytesPerToken` (4, the usual figure for
 * English BPE vocabularies and the simulated engine's rule); the tracker learns its rates in the
 * same units, so a constant estimation error cancels out.
 *
 * Cost: O(1) per candidate, no allocation.
 *
 * @module
 */

import type { Candidate, EngineLoad, PickContext, WorkerLoad } from "./types.ts";
import { figure } from "./engine_load.ts";

/** UTF-8 bytes per token when a context does not say. */
export const DEFAULT_BYTES_PER_TOKEN = 4;

/** Engine figures a cost model starts from before it has measured anything. */
export interface EnginePriors {
  /** Prefill rate, tokens per ms. */
  readonly prefillTokensPerMs: number;
  /** Fixed cost of one step, ms. */
  readonly stepOverheadMs: number;
  /** What one decoding sequence adds to a step, ms. */
  readonly decodeMsPerSeq: number;
  /** Duration of a decode step as a request sees it, ms. */
  readonly decodeStepMs: number;
}

/**
 * Priors of vLLM serving a 7B model on one A100 80GB (the figures behind the `a100-7b` engine
 * profile, docs/simulated-engine.md): ≈ 11 k prefill tokens/s (13 GFLOP/token at ~45% of
 * 312 TFLOP/s), ≈ 10 ms per step at batch 1 (15.2 GB of weights at ~2 TB/s plus launch), and
 * ≈ 0.12 ms per extra decoding sequence at a 2 k-token context (sampling plus 57 KB of KV per
 * context token read at 2 TB/s).
 */
export const A100_7B_PRIORS: EnginePriors = Object.freeze({
  prefillTokensPerMs: 1 / 0.09,
  stepOverheadMs: 10,
  decodeMsPerSeq: 0.12,
  decodeStepMs: 10,
});

/** Prompt tokens of the request: `ctx.requestTokens`, else chunks × chunk size ÷ bytes per token. */
export function requestTokensOf(ctx: PickContext): number {
  if (ctx.requestTokens !== undefined && ctx.requestTokens >= 0) return ctx.requestTokens;
  return ctx.requestChunks * ctx.chunkSize / (ctx.bytesPerToken ?? DEFAULT_BYTES_PER_TOKEN);
}

/** Tokens a match of `match` chunks covers, at most the request's tokens. */
export function matchTokensOf(ctx: PickContext, match: number, requestTokens: number): number {
  const t = match * ctx.chunkSize / (ctx.bytesPerToken ?? DEFAULT_BYTES_PER_TOKEN);
  return t < requestTokens ? t : requestTokens;
}

/**
 * Load figures to use for `c` when the router supplied none: every request in flight is counted
 * as one decoding sequence that also still waits for a prefill as large as this request's whole
 * prompt. That overstates load on purpose: without measurements the safe error is to spread
 * (least-loaded behaviour, cache as the tie-break) rather than to pile onto the cache holder.
 */
export function assumedLoad(
  c: Candidate,
  requestTokens: number,
  priors: EnginePriors = A100_7B_PRIORS,
): WorkerLoad {
  return {
    pendingPrefillTokens: c.inflight * requestTokens,
    decoding: c.inflight,
    prefilling: c.inflight,
    prefillTokensPerMs: priors.prefillTokensPerMs,
    decodeStepMs: priors.decodeStepMs,
    stepOverheadMs: priors.stepOverheadMs,
    decodeMsPerSeq: priors.decodeMsPerSeq,
    activeTokens: c.inflight * requestTokens,
  };
}

/** The worker's learned prefill rate (tokens per ms), or the prior's before one is learned. */
function prefillRate(load: WorkerLoad, priors: EnginePriors): number {
  return load.prefillTokensPerMs > 0 ? load.prefillTokensPerMs : priors.prefillTokensPerMs;
}

/** Estimated time to first token, ms, of a request with `uncachedTokens` to prefill on `load`. */
export function estimateTtftMs(
  load: WorkerLoad,
  uncachedTokens: number,
  priors: EnginePriors = A100_7B_PRIORS,
): number {
  const rate = prefillRate(load, priors);
  const overhead = load.stepOverheadMs ?? priors.stepOverheadMs;
  const perSeq = load.decodeMsPerSeq ?? priors.decodeMsPerSeq;
  const pending = load.pendingPrefillTokens > 0 ? load.pendingPrefillTokens : 0;
  const decoding = load.decoding > 0 ? load.decoding : 0;
  const prefilling = load.prefilling ?? (pending > 0 ? 1 : 0);
  const busy = decoding > 0 || prefilling > 0;
  const step = load.decodeStepMs > 0 ? load.decodeStepMs : priors.decodeStepMs;
  return (busy ? step / 2 : 0) + overhead + decoding * perSeq +
    (pending + (uncachedTokens > 0 ? uncachedTokens : 0)) / rate;
}

/**
 * Delay, ms, that prefilling `uncachedTokens` on `load` adds to the requests queued there before
 * their first token: they run in the engine's next step together with it. `prefilling` counts
 * every request before its first token, including the ones already in the running step, so this
 * is an upper bound.
 */
export function queuedDelayMs(
  load: WorkerLoad,
  uncachedTokens: number,
  priors: EnginePriors = A100_7B_PRIORS,
): number {
  const rate = prefillRate(load, priors);
  const waiting = load.prefilling ?? (load.pendingPrefillTokens > 0 ? 1 : 0);
  return waiting > 0 && uncachedTokens > 0 ? waiting * uncachedTokens / rate : 0;
}

/**
 * Expected delay, ms, that prefilling `uncachedTokens` on `load` adds to requests that will
 * arrive there before it is done, at `arrivalsPerMs` a ms: those arriving while the prefill
 * already pending there runs (W = pending ÷ rate) wait all of its D = uncached ÷ rate, those
 * arriving during D half of it on average: λ · D · (W + D / 2). A large prefill sent to a worker
 * other requests are about to come back to (their sessions live there) delays every one of them;
 * the greedy own-TTFT-plus-queued cost does not see them, and moving one long session there then
 * makes the next one move too.
 */
export function futureDelayMs(
  load: WorkerLoad,
  uncachedTokens: number,
  arrivalsPerMs: number,
  priors: EnginePriors = A100_7B_PRIORS,
): number {
  if (!(arrivalsPerMs > 0) || !(uncachedTokens > 0)) return 0;
  const rate = prefillRate(load, priors);
  const d = uncachedTokens / rate;
  const w = (load.pendingPrefillTokens > 0 ? load.pendingPrefillTokens : 0) / rate;
  return arrivalsPerMs * d * (w + d / 2);
}

/** KV cache usage from which `engineExtraMs` prices the risk of a preemption. */
export const KV_PREEMPTION_RISK_FROM = 0.9;

/**
 * The risk of a preemption from the router's own accounting, ms, for a worker whose KV capacity
 * it knows (`kv_budget`, as `capacityTokens`) when the engine reports no usage: the prompts in
 * flight there (`load.activeTokens`) plus this one's, as a share of the capacity, priced as
 * `engineExtraMs` prices the engine's own figure (from 0 at 0.9 to the request's whole prefill
 * again at full). 0 without a capacity or without `activeTokens`.
 */
export function kvPressureMs(
  load: WorkerLoad,
  capacityTokens: number,
  requestTokens: number,
  priors: EnginePriors = A100_7B_PRIORS,
): number {
  if (!(capacityTokens > 0) || load.activeTokens === undefined) return 0;
  const tokens = requestTokens > 0 ? requestTokens : 0;
  const usage = (load.activeTokens + tokens) / capacityTokens;
  if (!(usage > KV_PREEMPTION_RISK_FROM)) return 0;
  const risk = Math.min(1, (usage - KV_PREEMPTION_RISK_FROM) / (1 - KV_PREEMPTION_RISK_FROM));
  return risk * tokens / prefillRate(load, priors);
}

/**
 * What the engine's own figures add to a request's cost on `load`, ms, beyond what the router's
 * accounting already prices; 0 when they say nothing the router does not know.
 *
 * - Queue: requests waiting in the engine beyond those the router itself has before their first
 *   token there (`prefilling`) were sent by someone else (another router, a client going direct).
 *   Each is priced as a prefill of `engine.queuedRequestTokens` (the engine's mean uncached
 *   prompt, from its counters), or, when the engine gives no such figure, as large as this
 *   request's prompt (`requestTokens`, the convention of `assumedLoad`); this request waits for
 *   them.
 *   A queue that waits for KV room or a batch slot rather than for the prefill budget waits for
 *   requests to finish, which takes longer: this is a lower bound.
 * - Running beyond the router's in-flight count: others' sequences in the batch, each adding
 *   `decodeMsPerSeq` to every step, and half a step of wait when the router thought it idle.
 * - KV usage above `KV_PREEMPTION_RISK_FROM` (0.9): the engine is close to running out of blocks,
 *   when vLLM preempts the newest sequence and recomputes it later. The chance is taken to rise
 *   linearly from 0 there to 1 at full, and its price is the request's whole prefill again
 *   (`requestTokens ÷ rate`).
 */
export function engineExtraMs(
  load: WorkerLoad,
  engine: EngineLoad,
  inflight: number,
  requestTokens: number,
  priors: EnginePriors = A100_7B_PRIORS,
): number {
  const rate = prefillRate(load, priors);
  const perSeq = load.decodeMsPerSeq ?? priors.decodeMsPerSeq;
  const step = load.decodeStepMs > 0 ? load.decodeStepMs : priors.decodeStepMs;
  const pending = load.pendingPrefillTokens > 0 ? load.pendingPrefillTokens : 0;
  const prefilling = load.prefilling ?? (pending > 0 ? 1 : 0);
  const tokens = requestTokens > 0 ? requestTokens : 0;
  const queued = engine.queuedRequestTokens !== undefined && engine.queuedRequestTokens >= 0 &&
      engine.queuedRequestTokens < Infinity
    ? engine.queuedRequestTokens
    : tokens;
  const extraWaiting = Math.max(0, figure(engine.waiting) - prefilling);
  const extraRunning = Math.max(0, figure(engine.running) - inflight);
  const busy = load.decoding > 0 || prefilling > 0;
  let ms = extraWaiting * queued / rate + extraRunning * perSeq;
  if (!busy && (extraWaiting > 0 || extraRunning > 0)) ms += step / 2;
  const kv = figure(engine.kvUsage);
  if (kv > KV_PREEMPTION_RISK_FROM) {
    const risk = Math.min(1, (kv - KV_PREEMPTION_RISK_FROM) / (1 - KV_PREEMPTION_RISK_FROM));
    ms += risk * tokens / rate;
  }
  return ms;
}
