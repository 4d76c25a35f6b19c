/**
 * LoadTracker: the router's own account of what each worker is doing, and each worker's speed
 * learned from what it observes. It fills `Candidate.load` (`WorkerLoad`) for cost-model
 * strategies (`costaware`, `dynamo-cost`, `llmd-weighted`); the model it feeds is in
 * `src/strategies/cost_model.ts` and docs/decisions/0003-cost-aware-strategy.md.
 *
 * Accounting. Every forwarded request gets a ticket at dispatch and goes through
 * prefill → decode → done:
 * - `onDispatch(worker, promptTokens, predictedCachedTokens)`: the request's predicted uncached
 *   tokens join the worker's pending prefill, its prompt joins the worker's active tokens;
 * - `onFirstToken(ticket, ttftMs)`: its prefill is over: pending → decoding;
 * - `onUsage(ticket, promptTokens, cachedTokens)`: what the engine reported (any time before done);
 * - `onDone(ticket, info)`: it leaves the worker, whatever phase it was in (stream end, error,
 *   client cancel, retry). Exactly once per ticket; later calls are ignored, so a count never
 *   leaks or goes negative.
 *
 * Learning (per worker, no thresholds):
 * - prefill rate: each request with a first token gives one sample, at done: work = the pending
 *   prefill it queued behind at dispatch + its own uncached tokens (from `cached_tokens` when the
 *   engine reported it, else as predicted), time = its TTFT minus the fixed part of the model (half
 *   a step when the worker was busy, one step overhead, the decode term). The rate is the ratio of
 *   two exponentially weighted sums, Σ work ÷ Σ time, forgotten with the work seen (half-weight
 *   after `horizonTokens`), so a run of tiny prefills, whose times are mostly noise, barely moves
 *   it; it starts from a prior worth `priorTokens` of work at the prior rate, and stays within a
 *   factor 16 of it (a sanity bound against a run of zero-time samples, not a tuning knob);
 * - decode step: an EWMA (weight `alpha`) of (total − TTFT) ÷ (completion tokens − 1).
 * Tokens are in the router's units (bytes ÷ 4, see cost_model.ts): a reported `cached_tokens` is
 * rescaled by the request's estimated ÷ reported prompt tokens before it is used.
 *
 * Cost: O(1) per event, one small object per ticket; `load()` allocates one `WorkerLoad`.
 * No timers, no clock: times come in as arguments.
 *
 * @module
 */

import { A100_7B_PRIORS, type EnginePriors } from "../strategies/cost_model.ts";
import type { WorkerLoad } from "../strategies/types.ts";

/** Options of {@linkcode LoadTracker}. */
export interface LoadTrackerOptions {
  /** Number of workers; workers are addressed by their index (`Backend.index`). */
  readonly workers: number;
  /** Engine figures before anything is measured; default {@linkcode A100_7B_PRIORS}. */
  readonly priors?: Partial<EnginePriors>;
  /** Weight of a new decode-step observation in its EWMA; default 0.1 (about the last 10). */
  readonly alpha?: number;
  /** Prefill work, in tokens, after which an observation has half its weight; default 16384. */
  readonly horizonTokens?: number;
  /** How much work, in tokens, the prior rate is worth at the start; default 2048. */
  readonly priorTokens?: number;
}

/** Learned and accounted figures of one worker, beyond `WorkerLoad` (tests, metrics, logs). */
export interface WorkerFigures extends WorkerLoad {
  /** Requests dispatched and not yet done. */
  readonly inflight: number;
  /** Prefill-rate observations so far. */
  readonly prefillSamples: number;
  /** Decode-step observations so far. */
  readonly decodeSamples: number;
}

/** A request in flight as the tracker knows it. Opaque to callers: pass it back. */
export class LoadTicket {
  /** @internal */ phase: 0 | 1 | 2 = 0; // prefill, decode, done
  /** @internal */ ttftMs: number | null = null;
  /** @internal */ reportedPrompt: number | null = null;
  /** @internal */ reportedCached: number | null = null;

  /** @internal */
  constructor(
    readonly worker: number,
    readonly promptTokens: number,
    readonly predictedCachedTokens: number,
    /** @internal Pending prefill tokens on the worker when this was dispatched. */
    readonly pendingAhead: number,
    /** @internal Fixed part of the TTFT model at dispatch, ms. */
    readonly fixedMs: number,
  ) {}

  /** Predicted uncached tokens (what this request added to the worker's pending prefill). */
  get uncachedTokens(): number {
    return this.promptTokens - this.predictedCachedTokens;
  }
}

class WorkerState {
  pending = 0;
  prefilling = 0;
  decoding = 0;
  active = 0;
  inflight = 0;
  work: number;
  time: number;
  step: number;
  prefillSamples = 0;
  decodeSamples = 0;

  constructor(p: EnginePriors, priorTokens: number) {
    this.work = priorTokens;
    this.time = priorTokens / p.prefillTokensPerMs;
    this.step = p.decodeStepMs;
  }
}

/** Per-worker in-flight accounting and learned rates; see the module comment. */
export class LoadTracker {
  readonly priors: EnginePriors;
  readonly alpha: number;
  readonly horizonTokens: number;
  readonly #workers: WorkerState[] = [];

  /** Throws a RangeError on a bad option. */
  constructor(opts: LoadTrackerOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 0) {
      throw new RangeError(`workers must be a non-negative integer, got ${opts.workers}`);
    }
    const p = { ...A100_7B_PRIORS, ...opts.priors };
    for (const [k, v] of Object.entries(p)) {
      if (!(typeof v === "number" && Number.isFinite(v) && v >= 0)) {
        throw new RangeError(`prior ${k} must be a finite number ≥ 0, got ${v}`);
      }
    }
    if (!(p.prefillTokensPerMs > 0)) {
      throw new RangeError(`prior prefillTokensPerMs must be > 0, got ${p.prefillTokensPerMs}`);
    }
    this.priors = Object.freeze(p);
    this.alpha = opts.alpha ?? 0.1;
    if (!(this.alpha > 0 && this.alpha <= 1)) {
      throw new RangeError(`alpha must be in (0, 1], got ${this.alpha}`);
    }
    this.horizonTokens = opts.horizonTokens ?? 16384;
    if (!(this.horizonTokens > 0)) {
      throw new RangeError(`horizonTokens must be > 0, got ${this.horizonTokens}`);
    }
    const priorTokens = opts.priorTokens ?? 2048;
    if (!(priorTokens > 0)) throw new RangeError(`priorTokens must be > 0, got ${priorTokens}`);
    for (let i = 0; i < opts.workers; i++) this.#workers.push(new WorkerState(p, priorTokens));
  }

  /** Number of workers tracked. */
  get workers(): number {
    return this.#workers.length;
  }

  /**
   * A request was forwarded to `worker` with an estimated `promptTokens`, of which the router
   * predicts `predictedCachedTokens` are in the worker's cache (prefix match × tokens per chunk).
   * Call it when the request is sent (after the pick, with the recording); returns its ticket.
   */
  onDispatch(worker: number, promptTokens: number, predictedCachedTokens: number): LoadTicket {
    const w = this.#state(worker);
    const prompt = nonNegative(promptTokens);
    const cached = Math.min(prompt, nonNegative(predictedCachedTokens));
    const busy = w.decoding > 0 || w.prefilling > 0;
    const fixedMs = (busy ? w.step / 2 : 0) + this.priors.stepOverheadMs +
      w.decoding * this.priors.decodeMsPerSeq;
    const t = new LoadTicket(worker, prompt, cached, w.pending, fixedMs);
    w.pending += prompt - cached;
    w.prefilling++;
    w.active += prompt;
    w.inflight++;
    return t;
  }

  /** The request's first token arrived `ttftMs` after dispatch: its prefill is over. */
  onFirstToken(ticket: LoadTicket, ttftMs: number): void {
    if (ticket.phase !== 0) return;
    const w = this.#state(ticket.worker);
    w.pending = Math.max(0, w.pending - ticket.uncachedTokens);
    w.prefilling--;
    w.decoding++;
    ticket.phase = 1;
    if (Number.isFinite(ttftMs) && ttftMs >= 0) ticket.ttftMs = ttftMs;
  }

  /**
   * The engine reported `usage.prompt_tokens` and `prompt_tokens_details.cached_tokens`. Returns
   * the prediction error in tokens, reported cached − predicted cached, both in the router's units
   * (negative: the worker held less than the router believed); NaN when the report is unusable.
   */
  onUsage(ticket: LoadTicket, promptTokens: number, cachedTokens: number): number {
    if (!(promptTokens > 0) || !(cachedTokens >= 0) || cachedTokens > promptTokens) return NaN;
    ticket.reportedPrompt = promptTokens;
    ticket.reportedCached = cachedTokens;
    return cachedTokens / promptTokens * ticket.promptTokens - ticket.predictedCachedTokens;
  }

  /**
   * The request left the worker (ended, failed, was cancelled or will be retried elsewhere).
   * `elapsedMs` (dispatch to last token) and `completionTokens` feed the decode-step estimate.
   */
  onDone(ticket: LoadTicket, info: { elapsedMs?: number; completionTokens?: number } = {}): void {
    if (ticket.phase === 2) return;
    const w = this.#state(ticket.worker);
    if (ticket.phase === 0) {
      w.pending = Math.max(0, w.pending - ticket.uncachedTokens);
      w.prefilling--;
    } else {
      w.decoding--;
    }
    w.active = Math.max(0, w.active - ticket.promptTokens);
    w.inflight--;
    ticket.phase = 2;
    const ttft = ticket.ttftMs;
    if (ttft === null) return;
    this.#learnPrefill(w, ticket, ttft);
    const n = info.completionTokens;
    const elapsed = info.elapsedMs;
    if (n !== undefined && n >= 2 && elapsed !== undefined && elapsed >= ttft) {
      w.step += this.alpha * ((elapsed - ttft) / (n - 1) - w.step);
      w.decodeSamples++;
    }
  }

  /** The figures a strategy sees for `worker`. */
  load(worker: number): WorkerLoad {
    const w = this.#state(worker);
    return {
      pendingPrefillTokens: w.pending,
      decoding: w.decoding,
      prefilling: w.prefilling,
      prefillTokensPerMs: this.#rate(w),
      decodeStepMs: w.step,
      stepOverheadMs: this.priors.stepOverheadMs,
      decodeMsPerSeq: this.priors.decodeMsPerSeq,
      activeTokens: w.active,
    };
  }

  /** `load(worker)` plus counts of in-flight requests and observations. */
  figures(worker: number): WorkerFigures {
    const w = this.#state(worker);
    return {
      ...this.load(worker),
      inflight: w.inflight,
      prefillSamples: w.prefillSamples,
      decodeSamples: w.decodeSamples,
    };
  }

  /** Σ work ÷ Σ time, kept within a factor 16 of the prior (a sanity bound, not a tuning knob). */
  #rate(w: WorkerState): number {
    const prior = this.priors.prefillTokensPerMs;
    const r = w.time > 0 ? w.work / w.time : Infinity;
    return Math.min(prior * 16, Math.max(prior / 16, r));
  }

  #learnPrefill(w: WorkerState, t: LoadTicket, ttft: number): void {
    let uncached = t.uncachedTokens;
    if (t.reportedPrompt !== null && t.reportedCached !== null) {
      uncached = (1 - t.reportedCached / t.reportedPrompt) * t.promptTokens;
    }
    const work = t.pendingAhead + uncached;
    if (!(work > 0)) return;
    const time = Math.max(0, ttft - t.fixedMs);
    const keep = Math.pow(0.5, work / this.horizonTokens);
    w.work = w.work * keep + work;
    w.time = w.time * keep + time;
    w.prefillSamples++;
  }

  #state(worker: number): WorkerState {
    const w = this.#workers[worker];
    if (w === undefined) {
      throw new RangeError(
        `worker index must be in [0, ${this.#workers.length}), got ${worker}`,
      );
    }
    return w;
  }
}

function nonNegative(x: number): number {
  return Number.isFinite(x) && x > 0 ? x : 0;
}
