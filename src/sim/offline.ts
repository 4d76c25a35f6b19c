/**
 * Offline simulator: replays a trace against N {@linkcode EngineModel}s in virtual time, routing
 * every request through the real strategy code, with no HTTP.
 *
 * Arrivals. A closed-loop trace (`delay_ms`): sessions run in parallel; the first turn of a session
 * is issued at its `delay_ms`, each later turn `delay_ms` after the previous turn of the same
 * session completed (done, or refused). An open-loop trace (`arrival_ms`): every request is issued
 * at its `arrival_ms`, whatever else happens. A trace mixing both is an error (trace_format.ts).
 * Bodies are replayed as they are; a line's `output_tokens` fixes its answer's length (capped at
 * max_tokens), else the engine's answer-length model draws it.
 *
 * Routing, as the router does it: routing text (`routingText`) → chained chunk hashes
 * (`chunkSize`, 32) → `decide` over all workers with the router's in-flight counts, its load
 * tracker and a per-worker {@linkcode RadixTree} as the prefix index → `recordDecision` →
 * in-flight + 1 until the request completes. The index budget is the router's default
 * (`kv_budget` 131 072 chunks) and shrinks and grows back by the router's prediction feedback
 * (src/router/prediction_feedback.ts) from each request's reported `cached_tokens`, the path just
 * recorded refreshed first and a cold report on a busy worker ignored, as `settle.ts` does.
 *
 * Precise mode (`index: "precise"`): the router-side index is a `BlockIndex` (src/precise), read
 * through `view(worker)` as the strategies' `PrefixIndex`. The engines publish their KV events
 * (blocks stored and evicted, per step); each step's batch reaches the index `eventLagMs` (default
 * 20) after the step ends, as a subscriber would get it. A request's keys are the router's block
 * hashes of the very token ids the engine caches (the sim's pseudo tokens of its chat template),
 * 16 tokens a block, handed to `decide` as 64-byte chunks so the cost models count tokens right;
 * a routed request leaves predicted entries (TTL `predictTtlMs`, default 2 s) until its blocks are
 * announced. No prediction feedback (the events correct the index).
 *
 * Prediction error: each record carries the cached tokens the index predicted at routing
 * (`predicted_cached_tokens`): approximate, matched chunks × chunk tokens as the router's load
 * tracker takes it; precise, matched blocks × 16, capped as the engine caps a hit (the last
 * token is always computed). The summary's `predictionErrorBlocks` is the mean |predicted −
 * engine cached| ÷ 16 over successful requests.
 *
 * Each request then spends the profile's API server time (`ApiFrontend`: one request at a time per
 * worker) before the engine sees it; TTFT and total time count from the issue. A request the
 * engine refuses (400: over `max_model_len`) is answered after that time and records nothing in
 * the chosen worker's prefix index: its prefix never reached the engine's cache. The engine sees a
 * request through the sim worker's chat template, so cache hits are exactly those an HTTP run gets.
 *
 * Events are processed in time order, ties in the order they were scheduled, and every random
 * choice comes from seeded rngs: a seed reproduces a run exactly.
 *
 * Cost: one engine step per worker per event; each request hashes its text twice (router chunks
 * and engine blocks). Thousands of requests take well under a second.
 *
 * @module
 */

import { chunkHashes, RadixTree, routingText, utf8 } from "../prefix/mod.ts";
import type { ChunkHashes, PrefixIndex } from "../prefix/types.ts";
import { blockHashes } from "../precise/block_hash.ts";
import { BlockIndex } from "../precise/block_index.ts";
import { ManualClock } from "../util/clock.ts";
import type { KvEvent } from "../kv_events/types.ts";
import { type LoadTicket, LoadTracker } from "../router/load_tracker.ts";
import { nextCapacity } from "../router/prediction_feedback.ts";
import { DEFAULT_KV_BUDGET } from "../config/fields.ts";
import { decide, recordDecision, type RouteTarget } from "../router/select.ts";
import { createStrategy } from "../strategies/mod.ts";
import type { Strategy } from "../strategies/types.ts";
import { errorMessage } from "../util/errors.ts";
import { SeededRng } from "../util/rng.ts";
import { parseTraceLines, TimingCheck, type TraceTiming } from "../bench/trace_format.ts";
import type { AnswerLengthModel } from "./answer_length.ts";
import { chatPromptText, maxTokensOf } from "./chat_template.ts";
import { EngineError, EngineModel, type EngineStats } from "./engine.ts";
import { EventQueue } from "./event_queue.ts";
import { ApiFrontend } from "./frontend.ts";
import { getProfile } from "./profiles.ts";
import { type RunSummary, summarize } from "./summary.ts";
import { pseudoTokenIds } from "./token_ids.ts";
import type {
  EngineEvent,
  EngineParams,
  RequestRecord,
  StepResult,
  TraceRequest,
} from "./types.ts";

export { quantile, summarize } from "./summary.ts";
export type { RunSummary } from "./summary.ts";

/** Options of {@linkcode simulate}. */
export interface SimulateOptions {
  readonly trace: readonly TraceRequest[];
  /** Number of workers (engines). */
  readonly workers: number;
  /** Engine profile of every worker. Default `a100-7b`. */
  readonly profile?: string;
  /** Overrides of the profile's engine parameters. */
  readonly params?: Partial<EngineParams>;
  /** Overrides the profile's `max_model_len` (`--max-model-len`). */
  readonly maxModelLen?: number;
  /** Lengths of answers the trace does not fix. Default geometric, mean 200. */
  readonly answerLength?: AnswerLengthModel;
  /** Same-step prefix sharing as vLLM `"v1"` (default) or `"v0"`. */
  readonly prefixSharing?: "v1" | "v0";
  /** Strategy name from the registry (`prefixaware`, `roundrobin`, `random`, `leastloaded`). */
  readonly strategy: string;
  /** Default 2. */
  readonly minMatchChunks?: number;
  /** Default 8; 0 = valve off. */
  readonly saturationInflight?: number;
  /** Router chunk size in bytes. Default 32. */
  readonly chunkSize?: number;
  /** Prefix index budget per worker in chunks (`kv_budget`; 0 = unbounded); default the router's. */
  readonly kvBudgetChunks?: number;
  /** Apply the router's prediction feedback to the index. Default true, as the router. */
  readonly feedback?: boolean;
  /** Seed of the routing rng (and of the engines' answer lengths). Default 1. */
  readonly seed?: number;
  /** `max_tokens` when a body has none. Default 64. */
  readonly defaultMaxTokens?: number;
  /** Strategy-specific options (`router.strategy_options`), e.g. `{ tie_epsilon: 0.02 }`. */
  readonly strategyOptions?: Readonly<Record<string, number>>;
  /** The router's index: `approximate` (default, its own routing text) or `precise` (KV events). */
  readonly index?: "approximate" | "precise";
  /** Precise: time from a step's end to its events reaching the index, ms. Default 20. */
  readonly eventLagMs?: number;
  /** Precise: lifetime of a routed request's predicted blocks, ms. Default 2000. */
  readonly predictTtlMs?: number;
}

/** What {@linkcode simulate} returns. */
export interface SimulateResult {
  /** One record per trace request, in completion order. */
  readonly records: RequestRecord[];
  readonly summary: RunSummary;
  readonly workers: ReadonlyArray<{
    readonly id: string;
    readonly stats: EngineStats;
    /**
     * Chunks (precise: blocks) in the router's index of the worker at the end, and its capacity
     * (0 = none).
     */
    readonly indexChunks: number;
    readonly indexCapacity: number;
  }>;
  /** Over all engines: preemptions and evicted KV blocks. */
  readonly totals: { readonly preemptions: number; readonly evictedBlocks: number };
}

/** Parses a JSONL trace (either timing, never both); throws naming the line on a malformed one. */
export function parseTrace(text: string): TraceRequest[] {
  return parseTraceLines(text).lines.map((l) => {
    const v = l as unknown as Record<string, unknown>;
    return { ...v, pattern: typeof v.pattern === "string" ? v.pattern : "" } as TraceRequest;
  });
}

type Ev =
  | { kind: "issue"; session: number; turn: number }
  | { kind: "arrive"; p: Pending; prompt: string; maxTokens: number; outputTokens?: number }
  | { kind: "refused"; p: Pending; error: string }
  | { kind: "step"; worker: number; result: StepResult }
  | { kind: "kv"; worker: number; events: readonly KvEvent[] };

interface Worker {
  readonly id: string;
  readonly engine: EngineModel;
  readonly prefix: RadixTree;
  readonly frontend: ApiFrontend;
  inflight: number;
  stepping: boolean;
}

interface Pending {
  readonly session: number;
  readonly turn: number;
  readonly start: number;
  readonly worker: number;
  readonly reason: string;
  readonly ticket: LoadTicket;
  readonly recordedChunks: number;
  /** The request's keys, refreshed in the index before a shrink (as `settle.ts` does). */
  readonly hashes: ChunkHashes;
  /** Cached tokens the index predicted at routing. */
  readonly predicted: number;
  firstMs: number | null;
}

/** A request's keys for the router's index, and what the router counts as its tokens. */
interface RouteKeys {
  readonly hashes: ChunkHashes;
  /** Chunk size handed to `decide` (bytes; precise: a block's tokens × 4). */
  readonly chunkSize: number;
  readonly tokens: number;
}

/** Tokens of a precise block, as the engines' blocks. */
const BLOCK_TOKENS = 16;

/** The router's token units: bytes ÷ 4 (router.ts `BYTES_PER_TOKEN`). */
const ROUTER_BYTES_PER_TOKEN = 4;

class OfflineRun {
  readonly workers: Worker[] = [];
  readonly records: RequestRecord[] = [];
  readonly #sessions: TraceRequest[][] = [];
  readonly #timing: TraceTiming;
  readonly #queue = new EventQueue<Ev>();
  readonly #pending: Array<Map<number, Pending>>;
  readonly #strategy: Strategy;
  readonly #tracker: LoadTracker;
  readonly #rng: SeededRng;
  readonly #chunkSize: number;
  readonly #budget: number;
  readonly #feedback: boolean;
  readonly #defaultMaxTokens: number;
  /** Precise mode's index, and the clock its predictions expire on; null when approximate. */
  readonly #blocks: BlockIndex | null;
  readonly #clock = new ManualClock(0);
  readonly #lagMs: number;

  constructor(opts: SimulateOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) {
      throw new RangeError(`workers must be a positive integer, got ${opts.workers}`);
    }
    const profile = getProfile(opts.profile ?? "a100-7b");
    const params: EngineParams = {
      ...profile.params,
      ...opts.params,
      ...(opts.maxModelLen === undefined ? {} : { maxModelLen: opts.maxModelLen }),
    };
    this.#chunkSize = opts.chunkSize ?? 32;
    this.#budget = opts.kvBudgetChunks ?? DEFAULT_KV_BUDGET;
    this.#feedback = opts.feedback ?? true;
    this.#defaultMaxTokens = opts.defaultMaxTokens ?? 64;
    this.#strategy = createStrategy(opts.strategy, {
      minMatchChunks: opts.minMatchChunks ?? 2,
      saturationInflight: opts.saturationInflight ?? 8,
      options: opts.strategyOptions,
    });
    // Fed exactly as the router feeds it: dispatch, first token, usage, done.
    this.#tracker = new LoadTracker({ workers: opts.workers });
    this.#rng = new SeededRng(opts.seed ?? 1);
    const mode = opts.index ?? "approximate";
    if (mode !== "approximate" && mode !== "precise") {
      throw new RangeError(`index must be approximate or precise, got ${JSON.stringify(mode)}`);
    }
    this.#lagMs = opts.eventLagMs ?? 20;
    if (!(this.#lagMs >= 0)) throw new RangeError(`event lag must be ≥ 0 ms, got ${this.#lagMs}`);
    this.#blocks = mode === "precise"
      ? new BlockIndex({ clock: this.#clock, predictTtlMs: opts.predictTtlMs, blockSize: 16 })
      : null;
    for (let i = 0; i < opts.workers; i++) {
      this.workers.push({
        id: `w${i}`,
        engine: new EngineModel(params, {
          answerLength: opts.answerLength,
          prefixSharing: opts.prefixSharing,
          seed: (opts.seed ?? 1) * 1000 + i,
          kvEvents: this.#blocks !== null,
        }),
        prefix: new RadixTree({ maxChunks: this.#budget, chained: true }),
        frontend: new ApiFrontend(params),
        inflight: 0,
        stepping: false,
      });
    }
    this.#pending = this.workers.map(() => new Map());
    // Sessions in order of first appearance; turns in trace order; one timing for the trace.
    const timing = new TimingCheck();
    const index = new Map<string, number>();
    opts.trace.forEach((r, i) => {
      timing.check(r as unknown as Record<string, unknown>, i + 1);
      let s = index.get(r.session_id);
      if (s === undefined) {
        s = this.#sessions.length;
        index.set(r.session_id, s);
        this.#sessions.push([]);
      }
      this.#sessions[s].push(r);
    });
    this.#timing = timing.timing ?? "closed";
  }

  run(): void {
    for (let s = 0; s < this.#sessions.length; s++) {
      const turns = this.#sessions[s];
      if (this.#timing === "closed") {
        this.#queue.push(turns[0].delay_ms!, { kind: "issue", session: s, turn: 0 });
      } else {
        turns.forEach((t, k) =>
          this.#queue.push(t.arrival_ms!, { kind: "issue", session: s, turn: k })
        );
      }
    }
    for (let e = this.#queue.pop(); e !== undefined; e = this.#queue.pop()) {
      const v = e.v;
      if (v.kind === "issue") this.#issue(v.session, v.turn, e.t);
      else if (v.kind === "arrive") this.#arrive(v, e.t);
      else if (v.kind === "refused") this.#refused(v.p, v.error, e.t);
      else if (v.kind === "kv") {
        this.#clock.set(e.t);
        this.#blocks!.apply(this.workers[v.worker].id, v.events);
      } else this.#stepDone(v.worker, v.result);
    }
  }

  #startStep(w: number, now: number): void {
    const worker = this.workers[w];
    if (worker.stepping) return;
    const result = worker.engine.step(now);
    if (result === undefined) return;
    worker.stepping = true;
    this.#queue.push(result.endMs, { kind: "step", worker: w, result });
    if (this.#blocks !== null && result.kvEvents.length > 0) {
      this.#queue.push(result.endMs + this.#lagMs, {
        kind: "kv",
        worker: w,
        events: result.kvEvents,
      });
    }
  }

  /** The worker's index as the strategies read it. */
  #prefixOf(w: number): PrefixIndex {
    return this.#blocks?.view(this.workers[w].id) ?? this.workers[w].prefix;
  }

  /** The request's keys: routing-text chunks, or block hashes of the engine's own tokens. */
  #keys(body: Record<string, unknown>, prompt: string): RouteKeys {
    if (this.#blocks === null) {
      const text = routingText(body, "chat");
      return {
        hashes: chunkHashes(text, this.#chunkSize),
        chunkSize: this.#chunkSize,
        tokens: utf8(text).length / ROUTER_BYTES_PER_TOKEN,
      };
    }
    const ids = pseudoTokenIds(utf8(prompt));
    return {
      hashes: blockHashes(ids, BLOCK_TOKENS),
      chunkSize: BLOCK_TOKENS * ROUTER_BYTES_PER_TOKEN,
      tokens: ids.length,
    };
  }

  /** Cached tokens the index predicts from `matched` chunks (module comment). */
  #predicted(keys: RouteKeys, matched: number): number {
    if (this.#blocks === null) return matched * this.#chunkSize / ROUTER_BYTES_PER_TOKEN;
    const cap = Math.floor((keys.tokens - 1) / BLOCK_TOKENS);
    return Math.min(matched, cap) * BLOCK_TOKENS;
  }

  /** Closed loop: the session's next turn, `delay_ms` after this one ended. */
  #next(session: number, turn: number, now: number): void {
    if (this.#timing !== "closed") return;
    const t = this.#sessions[session][turn + 1];
    if (t !== undefined) {
      this.#queue.push(now + t.delay_ms!, { kind: "issue", session, turn: turn + 1 });
    }
  }

  #record(session: number, turn: number, fields: Partial<RequestRecord>): void {
    const req = this.#sessions[session][turn];
    this.records.push({
      session_id: req.session_id,
      pattern: req.pattern,
      turn,
      start_ms: 0,
      ttft_ms: null,
      total_ms: 0,
      status: 200,
      backend: null,
      reason: null,
      prompt_tokens: 0,
      cached_tokens: 0,
      completion_tokens: 0,
      error: null,
      ...fields,
    });
  }

  #issue(session: number, turn: number, now: number): void {
    const req = this.#sessions[session][turn];
    const fail = (status: number, error: string) => {
      this.#record(session, turn, { start_ms: now, status, error });
      this.#next(session, turn, now);
    };
    let keys: RouteKeys;
    let prompt: string;
    let maxTokens: number;
    try {
      prompt = chatPromptText(req.body);
      keys = this.#keys(req.body, prompt);
      maxTokens = maxTokensOf(req.body, this.#defaultMaxTokens);
    } catch (err) {
      return fail(400, errorMessage(err));
    }
    const hashes = keys.hashes;
    this.#clock.set(now);
    const targets: RouteTarget[] = this.workers.map((w, index) => ({
      index,
      id: w.id,
      prefix: this.#prefixOf(index),
      capacityChunks: this.#blocks === null ? this.#budget : 0,
      inflight: w.inflight,
      load: this.#tracker.load(index),
    }));
    const strategy = this.#strategy;
    const decision = decide({
      strategy,
      targets,
      hashes,
      chunkSize: keys.chunkSize,
      rng: this.#rng,
      now,
    });
    if (decision === undefined) return fail(503, "no worker admitted");
    const w = decision.candidate.index;
    const worker = this.workers[w];
    // The router's prediction, taken before recording (afterwards the match is the whole request).
    const matched = strategy.usesPrefix
      ? decision.candidate.match
      : targets[w].prefix.match(hashes);
    const predicted = this.#predicted(keys, matched);
    worker.inflight++;
    const ticket = this.#tracker.onDispatch(
      w,
      keys.tokens,
      matched * keys.chunkSize / ROUTER_BYTES_PER_TOKEN,
    );
    const p: Pending = {
      session,
      turn,
      start: now,
      worker: w,
      reason: decision.reason,
      ticket,
      recordedChunks: hashes.length >>> 1,
      hashes,
      predicted,
      firstMs: null,
    };
    const ready = worker.frontend.admit(now, worker.engine.countTokens(prompt));
    try {
      worker.engine.validate({ prompt, maxTokens });
    } catch (err) {
      if (!(err instanceof EngineError)) throw err;
      // Refused after tokenizing, as vLLM does; its prefix never reaches the worker's index.
      this.#queue.push(ready, { kind: "refused", p, error: err.message });
      return;
    }
    recordDecision(targets[w], hashes);
    const outputTokens = req.output_tokens;
    this.#queue.push(ready, { kind: "arrive", p, prompt, maxTokens, outputTokens });
  }

  #arrive(v: Extract<Ev, { kind: "arrive" }>, now: number): void {
    const w = v.p.worker;
    const engine = this.workers[w].engine;
    const id = engine.submit({
      prompt: v.prompt,
      maxTokens: v.maxTokens,
      outputTokens: v.outputTokens,
      arrivalMs: now,
    });
    this.#pending[w].set(id, v.p);
    this.#startStep(w, now);
  }

  #refused(p: Pending, error: string, now: number): void {
    const worker = this.workers[p.worker];
    worker.inflight--;
    this.#tracker.onDone(p.ticket);
    this.#record(p.session, p.turn, {
      start_ms: p.start,
      total_ms: now - p.start,
      status: 400,
      backend: worker.id,
      reason: p.reason,
      error,
    });
    this.#next(p.session, p.turn, now);
  }

  #stepDone(w: number, result: StepResult): void {
    const now = result.endMs;
    this.workers[w].stepping = false;
    for (const ev of result.events) {
      const p = this.#pending[w].get(ev.id);
      if (p === undefined) continue;
      if (ev.kind === "first_token") {
        p.firstMs = now;
        this.#tracker.onFirstToken(p.ticket, now - p.start);
      }
      if (ev.kind === "done") this.#done(w, p, ev, now);
    }
    this.#startStep(w, now);
  }

  #done(w: number, p: Pending, ev: EngineEvent, now: number): void {
    const worker = this.workers[w];
    this.#pending[w].delete(ev.id);
    worker.inflight--;
    const err = this.#tracker.onUsage(p.ticket, ev.promptTokens, ev.cachedTokens);
    if (this.#feedback && this.#blocks === null && Number.isFinite(err)) {
      // As the router settles a request: a large shortfall shrinks the worker's index.
      const predicted = p.ticket.predictedCachedTokens;
      const stats = worker.prefix.stats();
      const capacity = nextCapacity(
        {
          capacity: stats.maxChunks,
          configured: this.#budget,
          chunks: stats.chunks,
          recorded: p.recordedChunks,
          othersInflight: p.ticket.othersInflight,
        },
        predicted,
        predicted + err,
        this.#chunkSize / ROUTER_BYTES_PER_TOKEN,
      );
      if (capacity !== null) {
        if (capacity < stats.chunks) worker.prefix.touch(p.hashes);
        worker.prefix.resize(capacity);
      }
    }
    this.#tracker.onDone(p.ticket, {
      elapsedMs: now - p.start,
      completionTokens: ev.completionTokens,
    });
    this.#record(p.session, p.turn, {
      start_ms: p.start,
      ttft_ms: p.firstMs === null ? null : p.firstMs - p.start,
      total_ms: now - p.start,
      backend: worker.id,
      reason: p.reason,
      prompt_tokens: ev.promptTokens,
      cached_tokens: ev.cachedTokens,
      completion_tokens: ev.completionTokens,
      queue_ms: ev.queueMs,
      preemptions: ev.preemptions,
      predicted_cached_tokens: p.predicted,
    });
    this.#next(p.session, p.turn, now);
  }

  /** Chunks (blocks) the router's index holds for worker `w` now, and its capacity. */
  indexSize(w: number): { chunks: number; capacity: number } {
    if (this.#blocks !== null) {
      return { chunks: this.#blocks.blocks(this.workers[w].id), capacity: 0 };
    }
    return {
      chunks: this.workers[w].prefix.chunks,
      capacity: this.workers[w].prefix.stats().maxChunks,
    };
  }
}

/** Replays `opts.trace` in virtual time; deterministic for a seed. */
export function simulate(opts: SimulateOptions): SimulateResult {
  const run = new OfflineRun(opts);
  run.run();
  const workers = run.workers.map((w, i) => {
    const size = run.indexSize(i);
    return {
      id: w.id,
      stats: w.engine.stats(),
      indexChunks: size.chunks,
      indexCapacity: size.capacity,
    };
  });
  return {
    records: run.records,
    summary: summarize(run.records),
    workers,
    totals: {
      preemptions: workers.reduce((n, w) => n + w.stats.preemptions, 0),
      evictedBlocks: workers.reduce((n, w) => n + w.stats.evictedBlocks, 0),
    },
  };
}
