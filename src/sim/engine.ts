/**
 * EngineModel: a vLLM-like engine with automatic prefix caching, as a pure state machine driven by
 * its caller's clock. Nothing here reads a clock or starts a timer.
 *
 * Tokens. A prompt's token count is `floor(utf8Bytes / bytesPerToken)` (at least 1) unless the
 * caller gives the real count. Rounding down makes full token blocks and full byte windows agree:
 * block `i` covers bytes `[i × blockBytes, (i + 1) × blockBytes)` with
 * `blockBytes = blockSize × bytesPerToken` (64 by default), and its hash is the router's chained
 * 64-bit hash of every byte before its end (`chunkHashes` from src/prefix/chunker.ts), as vLLM chains block
 * hashes. Only full blocks are hashed, hence cacheable.
 *
 * KV cache. `capacityBlocks` blocks. A hashed block has a reference count: blocks used by running
 * sequences are pinned; at zero a block joins an LRU of free cached blocks and stays reusable until
 * evicted, least-recently-freed first. A sequence's blocks are released tail first (as vLLM does),
 * so the tail of a prefix is evicted before its head. Unhashed blocks (partial blocks, reserved room
 * for the answer) are private to a sequence and uncached when freed. Free unhashed room is used
 * before any cached block is evicted.
 *
 * Prefix reuse. At admission (not at submit: the cache changes while a request waits) a sequence
 * pins the longest run of its prompt's block hashes that is cached. As in vLLM, at least the last
 * prompt token is always computed (it produces the first output token), so the hit is capped at
 * `floor((promptTokens − 1) / blockSize)` blocks: a prompt that is an exact multiple of the block
 * size gets one block less than a full hit. `cached_tokens = reused blocks × blockSize`.
 *
 * Generated tokens. Blocks fill as the prompt is prefilled and are registered in the cache as soon
 * as they are full (chunked prefill included). The answer's blocks are registered when the sequence
 * finishes, hashed over prompt + answer bytes, so a follow-up turn that carries the answer in its
 * history (after the chat template's generation prompt) reuses them. The last sampled token has no
 * KV entry, as in vLLM.
 *
 * Scheduler. Continuous batching, vLLM v1 order: running sequences first (one token per decoding
 * sequence, the next prefill chunk for a sequence still prefilling), then waiting sequences in
 * arrival order while `maxNumSeqs` and the `maxNumBatchedTokens` budget allow (chunked prefill).
 * Admission reserves blocks for prompt + `max_tokens` up front; a request that does not fit waits
 * (head-of-line, FCFS). Deviation from vLLM, which allocates blocks on demand and preempts a running
 * sequence when it runs out: reserving means no preemption, and is what llama.cpp's fixed slots do.
 *
 * Step time = `stepOverheadMs` + Σ over prefill chunks of n tokens starting at context s of
 * `n × prefillMsPerToken + prefillMsPerTokenContext × n × (s + n / 2)` + Σ over decoding sequences
 * of `decodeMsPerSeq + decodeMsPerContextToken × context`. Cached tokens cost nothing.
 *
 * Driving it: `submit` queues a request and returns its id; `step(now)` runs one scheduler step
 * that starts at `now` and returns its duration and the events that happen at its end
 * (`now + durationMs`); the caller waits until then (real time or virtual), delivers the events and
 * calls `step` again while `hasWork()`. `cancel(id)` frees a sequence at once; events already
 * returned for it should be dropped by the caller.
 *
 * Cost: `submit` hashes the prompt once (one pass over its bytes); a step is linear in the running
 * sequences plus the blocks it pins or frees.
 *
 * @module
 */

import { chunkHashes, utf8 } from "../prefix/chunker.ts";
import type { EngineEvent, EngineParams, StepResult } from "./types.ts";

/** A request as the engine takes it. */
export interface EngineRequest {
  /** The prompt as the model would see it (chat template applied), text or UTF-8 bytes. */
  readonly prompt: string | Uint8Array;
  /** Real prompt token count, when a tokenizer gave one; estimated from bytes otherwise. */
  readonly promptTokens?: number;
  /** Tokens to generate, ≥ 1. */
  readonly maxTokens: number;
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
  /** Prompt tokens of admitted requests (vLLM `prefix_cache_queries`). */
  readonly prefixCacheQueries: number;
  /** Cached tokens of admitted requests (vLLM `prefix_cache_hits`). */
  readonly prefixCacheHits: number;
  readonly promptTokensTotal: number;
  readonly generationTokensTotal: number;
  readonly requestsFinished: number;
  readonly requestsCancelled: number;
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
  /** Block keys of the prompt's full blocks. */
  readonly keys: string[];
  readonly promptTokens: number;
  readonly maxTokens: number;
  cachedTokens: number;
  /** Prompt tokens whose KV exists (cached or computed). */
  computed: number;
  generated: number;
  /** Keys this sequence holds a reference on, in block order. */
  pinned: string[];
  /** Prompt blocks registered (pinned or hashed) so far. */
  registered: number;
  /** Unhashed blocks held. */
  privateBlocks: number;
}

function keysOf(bytes: Uint8Array, blockBytes: number, maxBlocks: number): string[] {
  const h = chunkHashes(bytes, blockBytes);
  const n = Math.min(h.length >>> 1, maxBlocks);
  const keys = new Array<string>(n);
  for (let i = 0; i < n; i++) keys[i] = h[2 * i].toString(16) + ":" + h[2 * i + 1].toString(16);
  return keys;
}

/** A vLLM-like engine with a prefix-cached KV store, driven step by step. */
export class EngineModel {
  readonly params: EngineParams;
  readonly #blockBytes: number;
  /** Hashed blocks → reference count. */
  readonly #refs = new Map<string, number>();
  /** Hashed blocks with no reference, least recently freed first (Map keeps insertion order). */
  readonly #lru = new Map<string, true>();
  #privateBlocks = 0;
  readonly #waiting: Seq[] = [];
  readonly #running: Seq[] = [];
  readonly #byId = new Map<number, Seq>();
  #nextId = 1;
  #queries = 0;
  #hits = 0;
  #promptTotal = 0;
  #genTotal = 0;
  #finished = 0;
  #cancelled = 0;
  #evicted = 0;
  #steps = 0;

  constructor(params: EngineParams) {
    for (const [k, v] of Object.entries(params)) {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        throw new RangeError(`engine parameter ${k} must be a finite number ≥ 0, got ${v}`);
      }
    }
    for (const k of ["blockSize", "bytesPerToken", "capacityBlocks", "maxNumSeqs"] as const) {
      if (!Number.isInteger(params[k]) || params[k] < 1) {
        throw new RangeError(`engine parameter ${k} must be a positive integer, got ${params[k]}`);
      }
    }
    this.params = { ...params };
    this.#blockBytes = params.blockSize * params.bytesPerToken;
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
    if (Math.ceil(total / p.blockSize) > p.capacityBlocks) {
      throw new EngineError(
        `request needs ${Math.ceil(total / p.blockSize)} KV blocks, cache has ${p.capacityBlocks}`,
        "kv_cache_too_small",
      );
    }
    return promptTokens;
  }

  /** Queues a request; returns its id. Throws `EngineError` when it can never be served. */
  submit(req: EngineRequest): number {
    const promptTokens = this.validate(req);
    const bytes = typeof req.prompt === "string" ? utf8(req.prompt).slice() : req.prompt.slice();
    const fullBlocks = Math.floor(promptTokens / this.params.blockSize);
    const seq: Seq = {
      id: this.#nextId++,
      bytes,
      keys: keysOf(bytes, this.#blockBytes, fullBlocks),
      promptTokens,
      maxTokens: req.maxTokens,
      cachedTokens: 0,
      computed: 0,
      generated: 0,
      pinned: [],
      registered: 0,
      privateBlocks: 0,
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
    if (ri >= 0) {
      this.#running.splice(ri, 1);
      this.#release(seq);
    }
    this.#byId.delete(id);
    this.#cancelled++;
    return true;
  }

  /**
   * Longest run of `prompt`'s full blocks cached now, in tokens, with the exact-multiple cap;
   * what `cached_tokens` would be if the request were admitted now. Does not touch recency.
   */
  peekCachedTokens(prompt: string | Uint8Array, promptTokens?: number): number {
    const n = promptTokens ?? this.countTokens(prompt);
    const bytes = typeof prompt === "string" ? utf8(prompt) : prompt;
    const keys = keysOf(bytes, this.#blockBytes, Math.floor(n / this.params.blockSize));
    return this.#matchBlocks(keys, n) * this.params.blockSize;
  }

  /** Runs one step starting at `now`; `undefined` when there is nothing to do. */
  step(now: number): StepResult | undefined {
    if (!this.hasWork()) return undefined;
    const p = this.params;
    let budget = p.maxNumBatchedTokens > 0 ? p.maxNumBatchedTokens : Infinity;
    const chunks: Array<{ seq: Seq; n: number }> = [];
    const decodes: Seq[] = [];
    for (const seq of this.#running) {
      if (budget <= 0) break;
      if (seq.computed >= seq.promptTokens) {
        decodes.push(seq);
        budget -= 1;
      } else {
        const n = Math.min(seq.promptTokens - seq.computed, budget);
        chunks.push({ seq, n });
        budget -= n;
      }
    }
    while (this.#waiting.length > 0 && this.#running.length < p.maxNumSeqs && budget > 0) {
      const seq = this.#waiting[0];
      if (!this.#admit(seq)) break;
      this.#waiting.shift();
      this.#running.push(seq);
      const n = Math.min(seq.promptTokens - seq.computed, budget);
      chunks.push({ seq, n });
      budget -= n;
    }
    if (chunks.length === 0 && decodes.length === 0) {
      // Nothing fits: only possible when the head of the queue waits for blocks that no running
      // sequence will free, which validate() rules out. Report an idle step so drivers advance.
      return undefined;
    }

    let ms = p.stepOverheadMs;
    let batched = 0;
    for (const { seq, n } of chunks) {
      const s = seq.computed;
      ms += n * p.prefillMsPerToken + p.prefillMsPerTokenContext * n * (s + n / 2);
      batched += n;
    }
    for (const seq of decodes) {
      ms += p.decodeMsPerSeq + p.decodeMsPerContextToken * (seq.promptTokens + seq.generated);
      batched += 1;
    }
    const end = now + ms;
    const events: EngineEvent[] = [];
    const finished: Seq[] = [];
    for (const { seq, n } of chunks) {
      seq.computed += n;
      this.#registerPrompt(seq);
      if (seq.computed >= seq.promptTokens) {
        events.push(this.#event(seq, "first_token", end, 0));
        seq.generated = 1;
        this.#genTotal++;
        if (seq.generated >= seq.maxTokens) finished.push(seq);
      }
    }
    for (const seq of decodes) {
      events.push(this.#event(seq, "token", end, seq.generated));
      seq.generated++;
      this.#genTotal++;
      if (seq.generated >= seq.maxTokens) finished.push(seq);
    }
    for (const seq of finished) {
      events.push(this.#event(seq, "done", end, seq.generated));
      this.#finish(seq);
    }
    this.#steps++;
    return { startMs: now, durationMs: ms, endMs: end, batchedTokens: batched, events };
  }

  /** Current counters. */
  stats(): EngineStats {
    const pinned = this.#refs.size - this.#lru.size;
    const used = pinned + this.#privateBlocks;
    return {
      waiting: this.#waiting.length,
      running: this.#running.length,
      capacityBlocks: this.params.capacityBlocks,
      usedBlocks: used,
      cachedBlocks: this.#refs.size,
      usage: used / this.params.capacityBlocks,
      prefixCacheQueries: this.#queries,
      prefixCacheHits: this.#hits,
      promptTokensTotal: this.#promptTotal,
      generationTokensTotal: this.#genTotal,
      requestsFinished: this.#finished,
      requestsCancelled: this.#cancelled,
      evictedBlocks: this.#evicted,
      steps: this.#steps,
    };
  }

  /** Whether the hashed block of `prompt`'s block `i` is cached (tests, introspection). */
  isBlockCached(prompt: string, i: number): boolean {
    const keys = keysOf(utf8(prompt), this.#blockBytes, i + 1);
    return i < keys.length && this.#refs.has(keys[i]);
  }

  #event(seq: Seq, kind: EngineEvent["kind"], timeMs: number, index: number): EngineEvent {
    const done = kind === "done";
    return {
      id: seq.id,
      kind,
      timeMs,
      index,
      text: done ? "" : tokenText(index, this.params.bytesPerToken),
      promptTokens: seq.promptTokens,
      cachedTokens: seq.cachedTokens,
      completionTokens: done ? seq.generated : index + 1,
      finishReason: done ? "length" : null,
    };
  }

  #freeBlocks(): number {
    return this.params.capacityBlocks - this.#refs.size - this.#privateBlocks;
  }

  #matchBlocks(keys: readonly string[], promptTokens: number): number {
    const cap = Math.floor((promptTokens - 1) / this.params.blockSize);
    let k = 0;
    while (k < keys.length && k < cap && this.#refs.has(keys[k])) k++;
    return k;
  }

  /** Pins the cached prefix and reserves the rest; false (nothing changed) when it does not fit. */
  #admit(seq: Seq): boolean {
    const B = this.params.blockSize;
    const k = this.#matchBlocks(seq.keys, seq.promptTokens);
    const total = Math.ceil((seq.promptTokens + seq.maxTokens) / B);
    const need = total - k;
    let matchedFree = 0;
    for (let i = 0; i < k; i++) if (this.#refs.get(seq.keys[i]) === 0) matchedFree++;
    if (need > this.#freeBlocks() + this.#lru.size - matchedFree) return false;
    for (let i = 0; i < k; i++) this.#ref(seq.keys[i]);
    seq.pinned = seq.keys.slice(0, k);
    seq.registered = k;
    this.#evictFor(need);
    this.#privateBlocks += need;
    seq.privateBlocks = need;
    seq.cachedTokens = k * B;
    seq.computed = k * B;
    this.#queries += seq.promptTokens;
    this.#hits += seq.cachedTokens;
    this.#promptTotal += seq.promptTokens;
    return true;
  }

  #ref(key: string): void {
    const r = this.#refs.get(key) ?? 0;
    if (r === 0) this.#lru.delete(key);
    this.#refs.set(key, r + 1);
  }

  #evictFor(need: number): void {
    while (this.#freeBlocks() < need) {
      const oldest = this.#lru.keys().next();
      if (oldest.done) throw new Error("KV cache accounting broken: nothing left to evict");
      this.#lru.delete(oldest.value);
      this.#refs.delete(oldest.value);
      this.#evicted++;
    }
  }

  /** Turns a private block into the hashed block `key` (or keeps it private on a duplicate). */
  #hashBlock(seq: Seq, key: string): void {
    if (this.#refs.has(key) || seq.privateBlocks === 0) return;
    seq.privateBlocks--;
    this.#privateBlocks--;
    this.#refs.set(key, 1);
    seq.pinned.push(key);
  }

  #registerPrompt(seq: Seq): void {
    const full = Math.min(seq.keys.length, Math.floor(seq.computed / this.params.blockSize));
    for (; seq.registered < full; seq.registered++) this.#hashBlock(seq, seq.keys[seq.registered]);
  }

  #finish(seq: Seq): void {
    // Register the answer's full blocks, hashed over prompt + answer bytes. The last sampled
    // token has no KV entry.
    const B = this.params.blockSize;
    const withKv = seq.promptTokens + seq.generated - 1;
    const full = Math.floor(withKv / B);
    if (full > seq.keys.length) {
      const answer = utf8(answerText(seq.generated - 1, this.params.bytesPerToken));
      const all = new Uint8Array(seq.bytes.length + answer.length);
      all.set(seq.bytes);
      all.set(answer, seq.bytes.length);
      const keys = keysOf(all, this.#blockBytes, full);
      // Also when some prompt blocks stayed private duplicates (another sequence prefilled the
      // same blocks in the same step and hashed them first): keys are chained hashes of the
      // bytes, so the cached copies carry the same chain. vLLM caches on past duplicates too.
      for (let i = seq.keys.length; i < keys.length; i++) this.#hashBlock(seq, keys[i]);
    }
    const ri = this.#running.indexOf(seq);
    if (ri >= 0) this.#running.splice(ri, 1);
    this.#release(seq);
    this.#byId.delete(seq.id);
    this.#finished++;
  }

  /** Unpins tail first, so the tail of a prefix is evicted before its head; frees private room. */
  #release(seq: Seq): void {
    for (let i = seq.pinned.length - 1; i >= 0; i--) {
      const key = seq.pinned[i];
      const r = (this.#refs.get(key) ?? 1) - 1;
      this.#refs.set(key, r);
      if (r === 0) this.#lru.set(key, true);
    }
    seq.pinned = [];
    this.#privateBlocks -= seq.privateBlocks;
    seq.privateBlocks = 0;
  }
}
