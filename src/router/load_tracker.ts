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
 * Learning (no thresholds). Each estimate is pooled over all workers and shrunk per worker: a
 * worker's own observations pull it away from the pool's estimate only as far as their weight
 * allows, so a worker that has not been measured yet looks like the others, not like the prior
 * (with a wrong prior an unmeasured worker would look faster or slower than the measured ones and
 * attract or repel traffic for no reason), while a worker that really is slower drifts apart.
 * - prefill rate: each request with a first token gives one sample, at done: work = the pending
 *   prefill it queued behind at dispatch + its own uncached tokens (from `cached_tokens` when the
 *   engine reported it, else as predicted), time = its TTFT minus the fixed part of the model (half
 *   a step when the worker was busy, one step overhead, the decode term). A rate is the ratio of
 *   two exponentially weighted sums, Σ work ÷ Σ time, forgotten with the work seen (half weight
 *   after `horizonTokens`), so a run of tiny prefills, whose times are mostly noise, barely moves
 *   it. The pool starts from the prior rate worth `priorTokens` of work; a worker's rate is
 *   (Σ work + priorTokens) ÷ (Σ time + priorTokens ÷ pool rate). Rates stay within a factor 16 of
 *   the prior (a sanity bound against a run of zero-time samples, not a tuning knob);
 * - decode step: (total − TTFT) ÷ (completion tokens − 1) per request; exponentially weighted
 *   means (weight `alpha`), the pool's starting at the prior, a worker's shrunk to the pool's with
 *   the weight of 2 observations.
 * - fixed and per-sequence parts of a step (`stepOverheadMs`, `decodeMsPerSeq`): the same step
 *   samples regressed, pooled over workers, on the number of sequences decoding beside the request
 *   (the mean of that count at its first token and at its end): exponentially weighted least
 *   squares (weight 0.02, about the last 50 answers) with the prior's line as two pseudo-samples
 *   worth a quarter each that never fade (at 1 and 17 sequences), so a run of samples at one batch
 *   size cannot tilt the line far, and a 14B
 *   model's 18 ms steps and longer contexts replace the 7B priors after a few dozen answers. Both
 *   stay within a factor 16 of the prior, the slope at least 0.
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

/** Weight of a new step sample in the step line's sums (about the last 50 answers). */
const LINE_ALPHA = 0.02;

/** Weight, in observations, of the pool's decode step in a worker's (and the prior's in the pool's). */
const PRIOR_STEP_WEIGHT = 2;

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
  /** @internal Sequences decoding on the worker when this one reached its first token. */
  decodingAtFirst = 0;

  /** @internal */
  constructor(
    readonly worker: number,
    /** @internal The worker's state: settles there even after a reload re-numbered workers. */
    readonly state: WorkerState,
    readonly promptTokens: number,
    readonly predictedCachedTokens: number,
    /** @internal Pending prefill tokens on the worker when this was dispatched. */
    readonly pendingAhead: number,
    /** @internal Fixed part of the TTFT model at dispatch, ms. */
    readonly fixedMs: number,
    /** Other requests in flight on the worker when this one was dispatched. */
    readonly othersInflight: number = 0,
  ) {}

  /** Predicted uncached tokens (what this request added to the worker's pending prefill). */
  get uncachedTokens(): number {
    return this.promptTokens - this.predictedCachedTokens;
  }
}

/** Exponentially forgotten sums of prefill work (tokens) and time (ms), and of decode steps. */
class Learned {
  work = 0;
  time = 0;
  stepSum = 0;
  stepWeight = 0;
  prefillSamples = 0;
  decodeSamples = 0;

  addPrefill(work: number, time: number, horizonTokens: number): void {
    const keep = Math.pow(0.5, work / horizonTokens);
    this.work = this.work * keep + work;
    this.time = this.time * keep + time;
    this.prefillSamples++;
  }

  addStep(step: number, alpha: number): void {
    this.stepSum = this.stepSum * (1 - alpha) + step;
    this.stepWeight = this.stepWeight * (1 - alpha) + 1;
    this.decodeSamples++;
  }
}

/** Exponentially weighted least squares of step time on decoding sequences, with fixed priors. */
class StepLine {
  #w = 0;
  #x = 0;
  #y = 0;
  #xx = 0;
  #xy = 0;
  readonly #prior: { w: number; x: number; y: number; xx: number; xy: number };
  readonly #given: readonly [number, number];
  /** {@link parts} as last computed; null after a sample (routing reads it per worker). */
  #parts: readonly [number, number] | null = null;

  constructor(overhead: number, perSeq: number) {
    this.#given = [overhead, perSeq];
    // Two points of the prior line, at 1 and 17 sequences, each worth a quarter of a sample.
    const q = 0.25;
    const ys = [overhead + perSeq, overhead + 17 * perSeq];
    this.#prior = {
      w: 2 * q,
      x: q * 18,
      y: q * (ys[0] + ys[1]),
      xx: q * (1 + 17 * 17),
      xy: q * (ys[0] + 17 * ys[1]),
    };
  }

  add(x: number, y: number, alpha: number): void {
    const k = 1 - alpha;
    this.#w = this.#w * k + 1;
    this.#x = this.#x * k + x;
    this.#y = this.#y * k + y;
    this.#xx = this.#xx * k + x * x;
    this.#xy = this.#xy * k + x * y;
    this.#parts = null;
  }

  /** The fit's fixed and per-sequence parts, each within a factor 16 of its prior. */
  parts(): readonly [number, number] {
    if (this.#parts !== null) return this.#parts;
    const [a, b] = this.#line();
    const [pa, pb] = this.#given;
    this.#parts = [within16(a, pa), within16(b, pb)];
    return this.#parts;
  }

  /** [intercept, slope] of the fit. */
  #line(): readonly [number, number] {
    if (this.#w === 0) return this.#given;
    const p = this.#prior;
    const w = this.#w + p.w;
    const mx = (this.#x + p.x) / w;
    const my = (this.#y + p.y) / w;
    const sxx = (this.#xx + p.xx) / w - mx * mx;
    const sxy = (this.#xy + p.xy) / w - mx * my;
    const slope = sxx > 1e-9 ? Math.max(0, sxy / sxx) : 0;
    return [Math.max(0, my - slope * mx), slope];
  }
}

/** `v` within a factor 16 of `prior` (a prior of 0 or less bounds nothing). */
function within16(v: number, prior: number): number {
  return prior > 0 ? Math.min(prior * 16, Math.max(prior / 16, v)) : v;
}

class WorkerState extends Learned {
  pending = 0;
  prefilling = 0;
  decoding = 0;
  active = 0;
  inflight = 0;
}

/** Per-worker in-flight accounting and learned rates; see the module comment. */
export class LoadTracker {
  readonly priors: EnginePriors;
  readonly alpha: number;
  readonly horizonTokens: number;
  readonly priorTokens: number;
  readonly #workers: WorkerState[] = [];
  /** All workers' observations, plus the prior as a pseudo-observation. */
  #pool = new Learned();
  /** Step time against decoding sequences, pooled over workers. */
  #line: StepLine;

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
    this.priorTokens = opts.priorTokens ?? 2048;
    if (!(this.priorTokens > 0)) {
      throw new RangeError(`priorTokens must be > 0, got ${this.priorTokens}`);
    }
    this.#pool.work = this.priorTokens;
    this.#pool.time = this.priorTokens / p.prefillTokensPerMs;
    this.#pool.stepSum = PRIOR_STEP_WEIGHT * p.decodeStepMs;
    this.#pool.stepWeight = PRIOR_STEP_WEIGHT;
    this.#line = new StepLine(p.stepOverheadMs, p.decodeMsPerSeq);
    for (let i = 0; i < opts.workers; i++) this.#workers.push(new WorkerState());
  }

  /** Number of workers tracked. */
  get workers(): number {
    return this.#workers.length;
  }

  /**
   * A tracker for a new worker list (a config reload): `from[i]` is the index here of the worker
   * that is number `i` in the new list, or null for a new worker. Kept workers keep their load and
   * what was learned about them, the pool keeps its estimates, and tickets already out settle on
   * the workers they were issued for (through either tracker); removed workers are dropped.
   */
  remap(from: readonly (number | null)[]): LoadTracker {
    const next = new LoadTracker({
      workers: 0,
      priors: this.priors,
      alpha: this.alpha,
      horizonTokens: this.horizonTokens,
      priorTokens: this.priorTokens,
    });
    next.#pool = this.#pool;
    next.#line = this.#line;
    for (const j of from) next.#workers.push(j === null ? new WorkerState() : this.#state(j));
    return next;
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
    const [overhead, perSeq] = this.#line.parts();
    const fixedMs = (busy ? this.#step(w) / 2 : 0) + overhead + w.decoding * perSeq;
    const t = new LoadTicket(worker, w, prompt, cached, w.pending, fixedMs, w.inflight);
    w.pending += prompt - cached;
    w.prefilling++;
    w.active += prompt;
    w.inflight++;
    return t;
  }

  /** The request's first token arrived `ttftMs` after dispatch: its prefill is over. */
  onFirstToken(ticket: LoadTicket, ttftMs: number): void {
    if (ticket.phase !== 0) return;
    const w = ticket.state;
    w.pending = Math.max(0, w.pending - ticket.uncachedTokens);
    w.prefilling--;
    w.decoding++;
    ticket.decodingAtFirst = w.decoding;
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
  onDone(ticket: LoadTicket, info?: { elapsedMs?: number; completionTokens?: number }): void {
    if (ticket.phase === 2) return;
    const w = ticket.state;
    const decodingBeside = (ticket.decodingAtFirst + w.decoding) / 2;
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
    const n = info?.completionTokens;
    const elapsed = info?.elapsedMs;
    if (n !== undefined && n >= 2 && elapsed !== undefined && elapsed >= ttft) {
      const step = (elapsed - ttft) / (n - 1);
      w.addStep(step, this.alpha);
      this.#pool.addStep(step, this.alpha);
      this.#line.add(decodingBeside, step, LINE_ALPHA);
    }
  }

  /** The figures a strategy sees for `worker`. */
  load(worker: number): WorkerLoad {
    const w = this.#state(worker);
    const [overhead, perSeq] = this.#line.parts();
    return {
      pendingPrefillTokens: w.pending,
      decoding: w.decoding,
      prefilling: w.prefilling,
      prefillTokensPerMs: this.#rate(w),
      decodeStepMs: this.#step(w),
      stepOverheadMs: overhead,
      decodeMsPerSeq: perSeq,
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

  /** The worker's prefill rate: its sums shrunk to the pool's rate; see the module comment. */
  #rate(w: WorkerState): number {
    const pool = this.#bounded(this.#pool.work / this.#pool.time);
    return this.#bounded((w.work + this.priorTokens) / (w.time + this.priorTokens / pool));
  }

  /** Within a factor 16 of the prior rate: a sanity bound, not a tuning knob. */
  #bounded(rate: number): number {
    const prior = this.priors.prefillTokensPerMs;
    return Math.min(prior * 16, Math.max(prior / 16, Number.isFinite(rate) ? rate : prior * 16));
  }

  /** The worker's decode step: its mean shrunk to the pool's with the weight of 2 observations. */
  #step(w: WorkerState): number {
    const pool = this.#pool.stepSum / this.#pool.stepWeight;
    return (w.stepSum + PRIOR_STEP_WEIGHT * pool) / (w.stepWeight + PRIOR_STEP_WEIGHT);
  }

  #learnPrefill(w: WorkerState, t: LoadTicket, ttft: number): void {
    let uncached = t.uncachedTokens;
    if (t.reportedPrompt !== null && t.reportedCached !== null) {
      uncached = (1 - t.reportedCached / t.reportedPrompt) * t.promptTokens;
    }
    const work = t.pendingAhead + uncached;
    if (!(work > 0)) return;
    const time = Math.max(0, ttft - t.fixedMs);
    w.addPrefill(work, time, this.horizonTokens);
    this.#pool.addPrefill(work, time, this.horizonTokens);
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
