/**
 * EngineModel: a vLLM V1-like engine with automatic prefix caching, as a pure state machine driven
 * by its caller's clock. Nothing here reads a clock or starts a timer.
 *
 * Tokens. A request brings its token ids, or text whose pseudo ids the engine derives (4 UTF-8
 * bytes a token, src/sim/token_ids.ts). Block `i`'s key is the engine's chained 64-bit hash of
 * token ids `[0, 16(i + 1))`, seeded by the request's LoRA adapter, as vLLM chains block hashes and
 * puts the LoRA in them. Only full blocks are hashed, hence cacheable.
 *
 * KV events (`kvEvents: true`): each step reports, in order, vLLM's BlockStored (a run of blocks
 * that just got hashed into the cache, with its parent's key, token ids, block size, LoRA and
 * medium GPU) and BlockRemoved (one per evicted block); `resetPrefixCache` reports
 * AllBlocksCleared. A duplicate block (v0 sharing) is not cached, so not reported.
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
 * prompt + answer tokens; the last sampled token has no KV entry.
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
 * it pins or frees; a preemption or a finish hashes the sequence's tokens once more. KV events copy
 * each stored block's 16 token ids.
 *
 * @module
 */

import type { KvEvent } from "../kv_events/types.ts";
import { SeededRng } from "../util/rng.ts";
import {
  type AnswerLengthModel,
  DEFAULT_ANSWER_LENGTH,
  drawAnswerLength,
} from "./answer_length.ts";
import { KvCache } from "./kv_cache.ts";
import {
  concatIds,
  engineBlockKeys,
  keyWords,
  promptBytes,
  pseudoTail,
  pseudoTokenIds,
} from "./token_ids.ts";
import { answerText, tokenText } from "./answer_text.ts";
import type {
  AnswerVocab,
  EngineEvent,
  EngineOptions,
  EngineParams,
  EngineRequest,
  EngineStats,
  LoraRef,
  PromptRef,
  StepResult,
} from "./types.ts";

export type { EngineOptions, EngineRequest, EngineStats, PromptRef } from "./types.ts";
export { answerText, tokenText } from "./answer_text.ts";

/** A request the engine can never serve (too long for the model or the cache); HTTP 400. */
export class EngineError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = "EngineError";
  }
}

interface Seq {
  readonly id: number;
  /** The prompt's token ids. */
  readonly promptIds: Uint32Array;
  /** Pseudo tokens: the prompt's bytes after its last full token, regrouped with the answer. */
  readonly tail: Uint8Array;
  readonly lora: LoraRef | null;
  readonly promptTokens: number;
  readonly maxTokens: number;
  /** Length the answer will have (≤ maxTokens). */
  readonly outputTokens: number;
  readonly arrivalMs: number | null;
  /** Token ids the keys cover: the prompt, and on preemption or finish the answer so far. */
  ids: Uint32Array;
  /** Keys of the full blocks of `ids`. */
  keys: number[];
  /** Cached tokens at the first admission; -1 before it. */
  cachedTokens: number;
  /** Tokens whose KV exists or is being computed this step. */
  computed: number;
  generated: number;
  /** Leading blocks registered (hashed, or kept private as a duplicate). */
  registered: number;
  pinned: number[];
  privateBlocks: number;
  queueMs: number | null;
  preemptions: number;
}

/** Tokens the sequence knows: prompt plus every token sampled so far. */
function known(seq: Seq): number {
  return seq.promptTokens + seq.generated;
}

/** A vLLM-like engine with a prefix-cached KV store, driven step by step. */
export class EngineModel {
  readonly params: EngineParams;
  readonly #cache: KvCache;
  readonly #vocab: AnswerVocab | null;
  /** KV events since the last take; null when not collected. */
  #kv: KvEvent[] | null;
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
    this.#kv = options.kvEvents === true ? [] : null;
    this.#vocab = options.vocab ?? null;
    this.#cache = new KvCache(params.capacityBlocks, (key) => {
      this.#kv?.push({
        type: "BlockRemoved",
        blockHashes: Uint32Array.from(keyWords(key)),
        medium: "GPU",
        groupIdx: null,
      });
    });
    this.#answerLength = options.answerLength ?? DEFAULT_ANSWER_LENGTH;
    this.#rng = new SeededRng(options.seed ?? 1);
    this.#v1 = (options.prefixSharing ?? "v1") === "v1";
  }

  /** Estimated token count of `prompt` at `bytesPerToken` (at least 1). */
  countTokens(prompt: string | Uint8Array): number {
    const n = promptBytes(prompt).length;
    return Math.max(1, Math.floor(n / this.params.bytesPerToken));
  }

  /** The prompt's token ids and pseudo tail. */
  #prompt(req: PromptRef): { ids: Uint32Array; tail: Uint8Array } {
    if (req.tokens !== undefined) {
      if (req.tokens.length === 0) throw new EngineError("the prompt has no tokens", "bad_request");
      const tail = (req as EngineRequest).tail ?? new Uint8Array(0);
      return { ids: Uint32Array.from(req.tokens), tail: tail.slice(0, 3) };
    }
    if (req.prompt === undefined) throw new EngineError("the request has no prompt", "bad_request");
    const bytes = promptBytes(req.prompt);
    return { ids: pseudoTokenIds(bytes), tail: pseudoTail(bytes).slice() };
  }

  /** Throws `EngineError` when the request can never be served; returns its prompt token count. */
  validate(req: EngineRequest): number {
    return this.#validate(req, this.#prompt(req).ids.length);
  }

  #validate(req: EngineRequest, promptTokens: number): number {
    const p = this.params;
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
    const { ids, tail } = this.#prompt(req);
    const promptTokens = this.#validate(req, ids.length);
    const lora = req.lora ?? null;
    const seq: Seq = {
      id: this.#nextId++,
      promptIds: ids,
      tail,
      lora,
      promptTokens,
      maxTokens: req.maxTokens,
      outputTokens: this.#lengthOf(req),
      arrivalMs: req.arrivalMs ?? null,
      ids,
      keys: this.#keys(ids, Math.floor(promptTokens / this.params.blockSize), lora),
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
   * Longest run of the prompt's full blocks cached now, in tokens, with the last-token cap; what
   * `cached_tokens` would be if the request were admitted now. Does not touch recency.
   */
  peekCachedTokens(prompt: string | Uint8Array | PromptRef): number {
    const ref = typeof prompt === "string" || prompt instanceof Uint8Array ? { prompt } : prompt;
    const { ids } = this.#prompt(ref);
    const n = ids.length;
    const keys = this.#keys(ids, Math.floor(n / this.params.blockSize), ref.lora ?? null);
    return this.#cache.match(keys, this.#hitCap(n)) * this.params.blockSize;
  }

  /**
   * Empties the prefix cache (vLLM's `reset_prefix_cache`) and reports AllBlocksCleared. While
   * sequences hold blocks it is refused (false), unless `resetRunning`: then every running
   * sequence is preempted first (vLLM's `reset_running_requests`), and recomputes later.
   */
  resetPrefixCache(resetRunning = false): boolean {
    if (resetRunning) { while (this.#running.length > 0) this.#preempt(this.#running.at(-1)!); }
    if (!this.#cache.clear()) return false;
    this.#kv?.push({ type: "AllBlocksCleared", medium: null });
    return true;
  }

  /** KV events reported outside a step (a reset) since the last step or take. */
  takeKvEvents(): KvEvent[] {
    if (this.#kv === null || this.#kv.length === 0) return [];
    const out = this.#kv;
    this.#kv = [];
    return out;
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
    const kvEvents = this.takeKvEvents();
    return { startMs: now, durationMs: ms, endMs: end, batchedTokens: batched, events, kvEvents };
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
  isBlockCached(prompt: string | PromptRef, i: number): boolean {
    const ref = typeof prompt === "string" ? { prompt } : prompt;
    const keys = this.#keys(this.#prompt(ref).ids, i + 1, ref.lora ?? null);
    return i < keys.length && this.#cache.has(keys[i]);
  }

  /** The text of generated token `i`. */
  tokenText(i: number): string {
    return this.#vocab?.text(i) ?? tokenText(i, this.params.bytesPerToken);
  }

  #keys(ids: ArrayLike<number>, blocks: number, lora: LoraRef | null): number[] {
    return engineBlockKeys(ids, this.params.blockSize, blocks, lora?.name ?? null);
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

  /** Hashes the sequence's known full blocks up to `tokens` tokens of KV; reports the new ones. */
  #register(seq: Seq, tokens: number): void {
    const full = Math.min(seq.keys.length, Math.floor(tokens / this.params.blockSize));
    let run = -1; // first block of a run of newly cached blocks, for one BlockStored
    for (; seq.registered < full; seq.registered++) {
      const stored = this.#cache.hash(seq, seq.keys[seq.registered]);
      if (this.#kv === null) continue;
      if (stored && run < 0) run = seq.registered;
      else if (!stored && run >= 0) {
        this.#stored(seq, run, seq.registered);
        run = -1;
      }
    }
    if (run >= 0) this.#stored(seq, run, seq.registered);
  }

  /** Reports blocks `[from, to)` of `seq` as one BlockStored. */
  #stored(seq: Seq, from: number, to: number): void {
    const B = this.params.blockSize;
    const hashes = new Uint32Array(2 * (to - from));
    for (let i = from; i < to; i++) hashes.set(keyWords(seq.keys[i]), 2 * (i - from));
    this.#kv!.push({
      type: "BlockStored",
      blockHashes: hashes,
      parentBlockHash: from === 0 ? null : Uint32Array.from(keyWords(seq.keys[from - 1])),
      tokenIds: Array.from(seq.ids.subarray(from * B, to * B)),
      blockSize: B,
      loraId: seq.lora?.id ?? null,
      medium: "GPU",
      loraName: seq.lora?.name ?? null,
      extraKeys: null,
      groupIdx: null,
      locality: null,
    });
  }

  /** Extends `seq.ids` and `seq.keys` over the answer so far (keys are chained, so the prompt's stay). */
  #extendKeys(seq: Seq): void {
    const blocks = Math.floor(known(seq) / this.params.blockSize);
    if (blocks <= seq.keys.length) return;
    let answer: Uint32Array;
    if (this.#vocab !== null) {
      answer = new Uint32Array(seq.generated);
      for (let i = 0; i < seq.generated; i++) answer[i] = this.#vocab.id(i);
    } else {
      // Pseudo tokens: the prompt's tail and the answer's bytes regroup into whole tokens.
      const text = promptBytes(answerText(seq.generated, this.params.bytesPerToken));
      const bytes = new Uint8Array(seq.tail.length + text.length);
      bytes.set(seq.tail);
      bytes.set(text, seq.tail.length);
      answer = pseudoTokenIds(bytes.subarray(0, bytes.length & ~3)).subarray(0, seq.generated);
    }
    seq.ids = concatIds(seq.promptIds, answer);
    seq.keys = this.#keys(seq.ids, blocks, seq.lora);
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
      text: done ? "" : this.tokenText(index),
      promptTokens: seq.promptTokens,
      cachedTokens: Math.max(0, seq.cachedTokens),
      completionTokens: done ? seq.generated : index + 1,
      finishReason: done ? (seq.generated >= seq.maxTokens ? "length" : "stop") : null,
      queueMs: seq.queueMs,
      preemptions: seq.preemptions,
    };
  }
}
