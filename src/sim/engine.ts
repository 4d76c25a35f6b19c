/**
 * EngineModel: a vLLM V1-like engine with automatic prefix caching, as a pure state machine driven
 * by its caller's clock. Nothing here reads a clock or starts a timer.
 *
 * Tokens. A prompt's token count is `floor(utf8Bytes / bytesPerToken)` (at least 1) unless the
 * caller gives the real count. Rounding down makes full token blocks and full byte windows agree:
 * block `i` covers bytes `[i × blockBytes, (i + 1) × blockBytes)` with
 * `blockBytes = blockSize × bytesPerToken` (64 by default), and its key is the router's chained
 * 64-bit hash of every byte before its end (`chunkHashes` from src/prefix/chunker.ts), as vLLM
 * chains block hashes. Only full blocks are hashed, hence cacheable.
 *
 * KV cache (src/sim/kv_cache.ts). `capacityBlocks` blocks; hashed blocks are reference counted,
 * free ones wait in an LRU until evicted; a sequence releases its blocks tail first.
 *
 * Prefix reuse. At admission a sequence pins the longest run of its known tokens' block keys that
 * is cached. At least the last token is always computed (it produces the next token), so the hit
 * is capped at `floor((tokens − 1) / blockSize)` blocks. `cached_tokens` is the hit of the first
 * admission, in tokens.
 *
 * Answers. A request's answer has `outputTokens` tokens when the caller fixes it (a trace's
 * `output_tokens`), `max_tokens` with `ignoreEos`, else a length drawn from the answer-length model
 * (src/sim/answer_length.ts, default geometric with mean 200), at least `minTokens`; never more than
 * `max_tokens`. It ends with `finish_reason` `"stop"` (end of sequence) or `"length"`.
 *
 * Blocks grow with the sequence, as in vLLM V1: each step a scheduled sequence gets the blocks its
 * new tokens need. When the pool cannot supply them, the newest running sequence is preempted
 * (V1's `running.pop()`) until they fit, the sequence itself last: its full blocks are hashed
 * (over prompt + answer so far) and released, its progress reset, and it goes back to the head of
 * the queue; readmitted, it reuses whatever of its blocks is still cached and recomputes the rest
 * (prompt and the tokens already sent), then goes on where it stopped. No request is admitted in a
 * step that preempted (V1 rule).
 *
 * Same-step sharing. `prefixSharing: "v1"` (default) hashes a sequence's blocks when it is
 * scheduled, before the step runs, so a request scheduled after it in the same step reuses a prefix
 * it computes (vLLM V1's `allocate_slots` caches blocks at scheduling; vLLM PR 29387). `"v0"` hashes
 * blocks once computed: requests with the same new prefix admitted in one step each compute it
 * (vLLM issue 9643). Answer blocks are hashed when the sequence finishes or is preempted, over
 * prompt + answer bytes; the last sampled token has no KV entry.
 *
 * Scheduler, vLLM V1 order: running sequences first (one token per decoding sequence, the next
 * chunk for one that is prefilling or recomputing), then waiting ones in arrival order while
 * `maxNumSeqs`, the `maxNumBatchedTokens` budget and the pool allow (chunked prefill; a head that
 * does not fit blocks the queue).
 *
 * Step time = `stepOverheadMs` + Σ over chunks of n tokens starting at context s of
 * `n × prefillMsPerToken + prefillMsPerTokenContext × n × (s + n / 2)` + Σ over decoding sequences
 * of `decodeMsPerSeq + decodeMsPerContextToken × context`. Cached tokens cost nothing.
 *
 * Driving it: `submit` queues a request; `step(now)` runs one step that starts at `now` and returns
 * its duration and the events that happen at its end; the caller waits until then, delivers the
 * events and calls `step` again while `hasWork()`. `cancel(id)` frees a sequence at once.
 *
 * Cost: `submit` hashes the prompt once; a step is linear in the running sequences plus the blocks
 * it pins or frees; a preemption or a finish hashes the sequence's bytes once more.
 *
 * @module
 */

import { chunkHashes, utf8 } from "../prefix/chunker.ts";
import { SeededRng } from "../util/rng.ts";
import {
  type AnswerLengthModel,
  DEFAULT_ANSWER_LENGTH,
  drawAnswerLength,
} from "./answer_length.ts";
import { KvCache } from "./kv_cache.ts";
import type { EngineEvent, EngineParams, StepResult } from "./types.ts";

/** A request as the engine takes it. */
export interface EngineRequest {
  /** The prompt as the model would see it (chat template applied), text or UTF-8 bytes. */
  readonly prompt: string | Uint8Array;
  /** Real prompt token count, when a tokenizer gave one; estimated from bytes otherwise. */
  readonly promptTokens?: number;
  /** Tokens to generate at most (`max_tokens`), ≥ 1. */
  readonly maxTokens: number;
  /** Length of the answer, when the caller knows it (a trace's `output_tokens`); capped. */
  readonly outputTokens?: number;
  /** vLLM's `ignore_eos`: the answer runs to `maxTokens`. */
  readonly ignoreEos?: boolean;
  /** vLLM's `min_tokens`: no end of sequence before this many tokens. */
  readonly minTokens?: number;
  /** Engine time the request arrived, for its queue time. */
  readonly arrivalMs?: number;
}

/** Options of the engine beyond its hardware parameters. */
export interface EngineOptions {
  /** Lengths of answers nothing fixes. Default geometric, mean 200. */
  readonly answerLength?: AnswerLengthModel;
  /** Seed of the answer-length draws. Default 1. */
  readonly seed?: number;
  /** When a prefix computed in a step becomes reusable: `"v1"` (default) or `"v0"`. */
  readonly prefixSharing?: "v1" | "v0";
}

/** A request the engine can never serve (too long for the model or the cache); HTTP 400. */
export class EngineError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = "EngineError";
  }
}

/** Counters and gauges, as exported on /metrics. */
export interface EngineStats {
  readonly waiting: number;
  readonly running: number;
  readonly capacityBlocks: number;
  /** Blocks in use by sequences (pinned or private). */
  readonly usedBlocks: number;
  /** Hashed blocks held (pinned or free in the LRU). */
  readonly cachedBlocks: number;
  /** `usedBlocks / capacityBlocks` (vLLM's KV cache usage: free cached blocks count as free). */
  readonly usage: number;
  /** Tokens looked up at admissions (vLLM `prefix_cache_queries`). */
  readonly prefixCacheQueries: number;
  /** Cached tokens found at admissions (vLLM `prefix_cache_hits`). */
  readonly prefixCacheHits: number;
  readonly promptTokensTotal: number;
  readonly generationTokensTotal: number;
  readonly requestsFinished: number;
  /** Of `requestsFinished`: ended at end-of-sequence. */
  readonly requestsFinishedStop: number;
  /** Of `requestsFinished`: ran to `max_tokens`. */
  readonly requestsFinishedLength: number;
  readonly requestsCancelled: number;
  /** Running sequences preempted for want of blocks (vLLM `num_preemptions`). */
  readonly preemptions: number;
  readonly evictedBlocks: number;
  readonly steps: number;
}

/** The text of generated token `i`: four ASCII bytes from a fixed cycle, so answers are stable. */
const ANSWER_CYCLE = "The simulated engine writes this same calm answer. ";
const ANSWER_CYCLE_TEXT = ANSWER_CYCLE.repeat(4); // 204 chars = 51 tokens of 4 bytes

/** The text of generated token `i` (exactly `bytesPerToken` ASCII characters). */
export function tokenText(i: number, bytesPerToken = 4): string {
  const start = (i * bytesPerToken) % (ANSWER_CYCLE_TEXT.length - bytesPerToken);
  return ANSWER_CYCLE_TEXT.slice(start, start + bytesPerToken);
}

/** The whole answer of `n` tokens, as a client would receive it. */
export function answerText(n: number, bytesPerToken = 4): string {
  let s = "";
  for (let i = 0; i < n; i++) s += tokenText(i, bytesPerToken);
  return s;
}

interface Seq {
  readonly id: number;
  readonly bytes: Uint8Array;
  readonly promptTokens: number;
  readonly maxTokens: number;
  /** Length the answer will have (≤ maxTokens). */
  readonly outputTokens: number;
  readonly arrivalMs: number | null;
  /** Keys of the full blocks of the known tokens (the prompt; on preemption, also the answer). */
  keys: string[];
  /** Cached tokens at the first admission; -1 before it. */
  cachedTokens: number;
  /** Tokens whose KV exists or is being computed this step. */
  computed: number;
  generated: number;
  /** Leading blocks registered (hashed, or kept private as a duplicate). */
  registered: number;
  pinned: string[];
  privateBlocks: number;
  queueMs: number | null;
  preemptions: number;
}

function keysOf(bytes: Uint8Array, blockBytes: number, maxBlocks: number): string[] {
  const h = chunkHashes(bytes, blockBytes);
  const n = Math.min(h.length >>> 1, maxBlocks);
  const keys = new Array<string>(n);
  for (let i = 0; i < n; i++) keys[i] = h[2 * i].toString(16) + ":" + h[2 * i + 1].toString(16);
  return keys;
}

/** Tokens the sequence knows: prompt plus every token sampled so far. */
function known(seq: Seq): number {
  return seq.promptTokens + seq.generated;
}

/** A vLLM-like engine with a prefix-cached KV store, driven step by step. */
export class EngineModel {
  readonly params: EngineParams;
  readonly #blockBytes: number;
  readonly #cache: KvCache;
  readonly #answerLength: AnswerLengthModel;
  readonly #rng: SeededRng;
  readonly #v1: boolean;
  readonly #waiting: Seq[] = [];
  readonly #running: Seq[] = [];
  readonly #byId = new Map<number, Seq>();
  #nextId = 1;
  #queries = 0;
  #hits = 0;
  #promptTotal = 0;
  #genTotal = 0;
  #finishedStop = 0;
  #finishedLength = 0;
  #cancelled = 0;
  #preemptions = 0;
  #steps = 0;

  constructor(params: EngineParams, options: EngineOptions = {}) {
    for (const [k, v] of Object.entries(params)) {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        throw new RangeError(`engine parameter ${k} must be a finite number ≥ 0, got ${v}`);
      }
    }
    const ints = ["blockSize", "bytesPerToken", "capacityBlocks", "maxNumSeqs", "maxModelLen"];
    for (const k of ints as Array<keyof EngineParams>) {
      if (!Number.isInteger(params[k]) || params[k] < 1) {
        throw new RangeError(`engine parameter ${k} must be a positive integer, got ${params[k]}`);
      }
    }
    const room = params.capacityBlocks * params.blockSize;
    if (params.maxModelLen > room) {
      // vLLM refuses to start in this case, with about these words.
      throw new RangeError(
        `max model len ${params.maxModelLen} is larger than the maximum number of tokens that ` +
          `can be stored in the KV cache (${room}); lower it or raise the capacity`,
      );
    }
    if (options.prefixSharing !== undefined && !["v0", "v1"].includes(options.prefixSharing)) {
      throw new RangeError(`prefix sharing must be v0 or v1, got ${options.prefixSharing}`);
    }
    this.params = { ...params };
    this.#blockBytes = params.blockSize * params.bytesPerToken;
    this.#cache = new KvCache(params.capacityBlocks);
    this.#answerLength = options.answerLength ?? DEFAULT_ANSWER_LENGTH;
    this.#rng = new SeededRng(options.seed ?? 1);
    this.#v1 = (options.prefixSharing ?? "v1") === "v1";
  }

  /** Estimated token count of `prompt` at `bytesPerToken` (at least 1). */
  countTokens(prompt: string | Uint8Array): number {
    const n = typeof prompt === "string" ? utf8(prompt).length : prompt.length;
    return Math.max(1, Math.floor(n / this.params.bytesPerToken));
  }

  /** Throws `EngineError` when the request can never be served; returns its prompt token count. */
  validate(req: EngineRequest): number {
    const p = this.params;
    const promptTokens = req.promptTokens ?? this.countTokens(req.prompt);
    if (!(Number.isInteger(req.maxTokens) && req.maxTokens >= 1)) {
      throw new EngineError(
        `max_tokens must be a positive integer, got ${req.maxTokens}`,
        "bad_request",
      );
    }
    const total = promptTokens + req.maxTokens;
    if (total > p.maxModelLen) {
      throw new EngineError(
        `This model's maximum context length is ${p.maxModelLen} tokens. However, you requested ` +
          `${total} tokens (${promptTokens} in the messages, ${req.maxTokens} in the completion). ` +
          `Please reduce the length of the messages or completion.`,
        "context_length_exceeded",
      );
    }
    return promptTokens;
  }

  /** Queues a request; returns its id. Throws `EngineError` when it can never be served. */
  submit(req: EngineRequest): number {
    const promptTokens = this.validate(req);
    const bytes = typeof req.prompt === "string" ? utf8(req.prompt).slice() : req.prompt.slice();
    const seq: Seq = {
      id: this.#nextId++,
      bytes,
      promptTokens,
      maxTokens: req.maxTokens,
      outputTokens: this.#lengthOf(req),
      arrivalMs: req.arrivalMs ?? null,
      keys: keysOf(bytes, this.#blockBytes, Math.floor(promptTokens / this.params.blockSize)),
      cachedTokens: -1,
      computed: 0,
      generated: 0,
      registered: 0,
      pinned: [],
      privateBlocks: 0,
      queueMs: null,
      preemptions: 0,
    };
    this.#waiting.push(seq);
    this.#byId.set(seq.id, seq);
    return seq.id;
  }

  /** Whether a step would do anything. */
  hasWork(): boolean {
    return this.#running.length > 0 || this.#waiting.length > 0;
  }

  /** Whether `id` is queued or running. */
  has(id: number): boolean {
    return this.#byId.has(id);
  }

  /** Drops a queued or running sequence and frees its blocks; false when unknown or finished. */
  cancel(id: number): boolean {
    const seq = this.#byId.get(id);
    if (seq === undefined) return false;
    const wi = this.#waiting.indexOf(seq);
    if (wi >= 0) this.#waiting.splice(wi, 1);
    const ri = this.#running.indexOf(seq);
    if (ri >= 0) this.#running.splice(ri, 1);
    this.#cache.release(seq);
    this.#byId.delete(id);
    this.#cancelled++;
    return true;
  }

  /**
   * Longest run of `prompt`'s full blocks cached now, in tokens, with the last-token cap; what
   * `cached_tokens` would be if the request were admitted now. Does not touch recency.
   */
  peekCachedTokens(prompt: string | Uint8Array, promptTokens?: number): number {
    const n = promptTokens ?? this.countTokens(prompt);
    const bytes = typeof prompt === "string" ? utf8(prompt) : prompt;
    const keys = keysOf(bytes, this.#blockBytes, Math.floor(n / this.params.blockSize));
    return this.#cache.match(keys, this.#hitCap(n)) * this.params.blockSize;
  }

  /** Runs one step starting at `now`; `undefined` when there is nothing to do. */
  step(now: number): StepResult | undefined {
    if (!this.hasWork()) return undefined;
    const p = this.params;
    const budget = { left: p.maxNumBatchedTokens > 0 ? p.maxNumBatchedTokens : Infinity };
    const scheduled: Array<{ seq: Seq; n: number; decode: boolean }> = [];
    const preempted = this.#scheduleRunning(budget, scheduled);
    if (!preempted) this.#admitWaiting(budget, scheduled, now);
    if (scheduled.length === 0) return undefined;

    let ms = p.stepOverheadMs;
    let batched = 0;
    for (const { seq, n, decode } of scheduled) {
      const s = seq.computed - n;
      ms += decode
        ? p.decodeMsPerSeq + p.decodeMsPerContextToken * (s + 1)
        : n * p.prefillMsPerToken + p.prefillMsPerTokenContext * n * (s + n / 2);
      batched += n;
    }
    const end = now + ms;
    const events: EngineEvent[] = [];
    for (const { seq } of scheduled) {
      if (!this.#v1) this.#register(seq, seq.computed);
      if (seq.computed < known(seq)) continue; // a prefill chunk that is not the last
      events.push(this.#event(seq, seq.generated === 0 ? "first_token" : "token", end));
      seq.generated++;
      this.#genTotal++;
      if (seq.generated >= seq.outputTokens) {
        events.push(this.#event(seq, "done", end));
        this.#finish(seq);
      }
    }
    this.#steps++;
    return { startMs: now, durationMs: ms, endMs: end, batchedTokens: batched, events };
  }

  /** Current counters. */
  stats(): EngineStats {
    const c = this.#cache;
    return {
      waiting: this.#waiting.length,
      running: this.#running.length,
      capacityBlocks: this.params.capacityBlocks,
      usedBlocks: c.used,
      cachedBlocks: c.cached,
      usage: c.used / this.params.capacityBlocks,
      prefixCacheQueries: this.#queries,
      prefixCacheHits: this.#hits,
      promptTokensTotal: this.#promptTotal,
      generationTokensTotal: this.#genTotal,
      requestsFinished: this.#finishedStop + this.#finishedLength,
      requestsFinishedStop: this.#finishedStop,
      requestsFinishedLength: this.#finishedLength,
      requestsCancelled: this.#cancelled,
      preemptions: this.#preemptions,
      evictedBlocks: c.evicted,
      steps: this.#steps,
    };
  }

  /** Whether the hashed block of `prompt`'s block `i` is cached (tests, introspection). */
  isBlockCached(prompt: string, i: number): boolean {
    const keys = keysOf(utf8(prompt), this.#blockBytes, i + 1);
    return i < keys.length && this.#cache.has(keys[i]);
  }

  /** Blocks sequence `id` holds now, or -1 when it is not in the engine (tests, introspection). */
  blocksOf(id: number): number {
    const seq = this.#byId.get(id);
    return seq === undefined ? -1 : seq.pinned.length + seq.privateBlocks;
  }

  #lengthOf(req: EngineRequest): number {
    let n: number;
    if (req.ignoreEos === true) n = req.maxTokens;
    else if (req.outputTokens !== undefined) n = req.outputTokens;
    else n = Math.max(req.minTokens ?? 1, drawAnswerLength(this.#answerLength, this.#rng));
    if (!(n >= 1)) n = 1;
    return Math.min(Math.floor(n), req.maxTokens);
  }

  #hitCap(tokens: number): number {
    return Math.floor((tokens - 1) / this.params.blockSize);
  }

  #blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.params.blockSize);
  }

  /**
   * Schedules the running sequences in order, giving each the blocks its tokens need and
   * preempting the newest ones when the pool runs short. Returns whether it preempted.
   */
  #scheduleRunning(
    budget: { left: number },
    out: Array<{ seq: Seq; n: number; decode: boolean }>,
  ): boolean {
    let preempted = false;
    for (let i = 0; i < this.#running.length && budget.left > 0; i++) {
      const seq = this.#running[i];
      const n = Math.min(known(seq) - seq.computed, budget.left);
      const need = this.#blocksFor(seq.computed + n) - seq.pinned.length - seq.privateBlocks;
      let fits = true;
      while (need > this.#cache.available) {
        // The newest running sequence is the last; it was not scheduled yet in this step.
        const victim = this.#running[this.#running.length - 1];
        this.#preempt(victim);
        preempted = true;
        if (victim === seq) {
          fits = false;
          break;
        }
      }
      if (!fits) break;
      if (need > 0) this.#cache.allocate(seq, need);
      const decode = seq.generated > 0 && n === 1 && seq.computed + 1 === known(seq);
      seq.computed += n;
      budget.left -= n;
      out.push({ seq, n, decode });
      if (this.#v1) this.#register(seq, seq.computed);
    }
    return preempted;
  }

  /** Admits waiting sequences in order while slots, budget and blocks allow. */
  #admitWaiting(
    budget: { left: number },
    out: Array<{ seq: Seq; n: number; decode: boolean }>,
    now: number,
  ): void {
    const B = this.params.blockSize;
    while (
      this.#waiting.length > 0 && this.#running.length < this.params.maxNumSeqs && budget.left > 0
    ) {
      const seq = this.#waiting[0];
      const tokens = known(seq);
      const k = this.#cache.match(seq.keys, this.#hitCap(tokens));
      const n = Math.min(tokens - k * B, budget.left);
      const need = this.#blocksFor(k * B + n) - k;
      if (need > this.#cache.available - this.#cache.unreferenced(seq.keys, k)) break;
      this.#waiting.shift();
      this.#running.push(seq);
      this.#cache.pinPrefix(seq, seq.keys, k);
      this.#cache.allocate(seq, need);
      seq.registered = k;
      seq.computed = k * B + n;
      if (seq.cachedTokens < 0) {
        seq.cachedTokens = k * B;
        this.#promptTotal += seq.promptTokens;
        if (seq.arrivalMs !== null) seq.queueMs = Math.max(0, now - seq.arrivalMs);
      }
      this.#queries += tokens;
      this.#hits += k * B;
      budget.left -= n;
      out.push({ seq, n, decode: false });
      if (this.#v1) this.#register(seq, seq.computed);
    }
  }

  /** Hashes the sequence's known full blocks up to `tokens` tokens of KV. */
  #register(seq: Seq, tokens: number): void {
    const full = Math.min(seq.keys.length, Math.floor(tokens / this.params.blockSize));
    for (; seq.registered < full; seq.registered++) {
      this.#cache.hash(seq, seq.keys[seq.registered]);
    }
  }

  /** Extends `seq.keys` over the answer so far: prompt + answer bytes, chained. */
  #extendKeys(seq: Seq): void {
    const blocks = Math.floor(known(seq) / this.params.blockSize);
    if (blocks <= seq.keys.length) return;
    const answer = utf8(answerText(seq.generated, this.params.bytesPerToken));
    const all = new Uint8Array(seq.bytes.length + answer.length);
    all.set(seq.bytes);
    all.set(answer, seq.bytes.length);
    // Keys are chained hashes of the bytes, so the prompt's keys come out the same.
    seq.keys = keysOf(all, this.#blockBytes, blocks);
  }

  /** Preemption by recompute: keeps what it computed in the cache, frees it, requeues it first. */
  #preempt(seq: Seq): void {
    this.#running.pop();
    this.#extendKeys(seq);
    this.#register(seq, seq.computed);
    this.#cache.release(seq);
    seq.registered = 0;
    seq.computed = 0;
    seq.preemptions++;
    this.#preemptions++;
    this.#waiting.unshift(seq);
  }

  #finish(seq: Seq): void {
    // The answer's full blocks join the cache; the last sampled token has no KV entry.
    this.#extendKeys(seq);
    this.#register(seq, known(seq) - 1);
    const ri = this.#running.indexOf(seq);
    if (ri >= 0) this.#running.splice(ri, 1);
    this.#cache.release(seq);
    this.#byId.delete(seq.id);
    if (seq.generated >= seq.maxTokens) this.#finishedLength++;
    else this.#finishedStop++;
  }

  #event(seq: Seq, kind: EngineEvent["kind"], timeMs: number): EngineEvent {
    const done = kind === "done";
    const index = seq.generated;
    return {
      id: seq.id,
      kind,
      timeMs,
      index,
      text: done ? "" : tokenText(index, this.params.bytesPerToken),
      promptTokens: seq.promptTokens,
      cachedTokens: Math.max(0, seq.cachedTokens),
      completionTokens: done ? seq.generated : index + 1,
      finishReason: done ? (seq.generated >= seq.maxTokens ? "length" : "stop") : null,
      queueMs: seq.queueMs,
      preemptions: seq.preemptions,
    };
  }
}
