/**
 * Offline simulator: replays a trace against N {@linkcode EngineModel}s in virtual time, routing
 * every request through the real strategy code, with no HTTP.
 *
 * Rule: sessions run in parallel, closed loop: the first turn of a session is issued at its
 * `delay_ms`, each later turn `delay_ms` after the previous turn of the same session completed
 * (done, or rejected). Bodies are replayed as they are (the trace already carries earlier answers
 * in later turns' history). Each request is routed the way the router does it: routing text
 * (`routingText`) → chained chunk hashes (`chunkSize`, 32) → `decide` over all workers with the
 * router's in-flight counts and a per-worker {@linkcode RadixTree} as the prefix index →
 * `recordDecision` → in-flight + 1 until the request completes. The engine sees the request
 * through the sim worker's chat template, so cache hits are exactly those an HTTP run would get.
 *
 * Events are processed in time order, ties in the order they were scheduled, and every random
 * choice comes from one seeded rng: a seed reproduces a run exactly.
 *
 * Cost: one engine step per worker per event; each request hashes its text twice (router chunks
 * and engine blocks). Thousands of requests take well under a second.
 *
 * @module
 */

import { chunkHashes, RadixTree, routingText, utf8 } from "../prefix/mod.ts";
import { type LoadTicket, LoadTracker } from "../router/load_tracker.ts";
import { decide, recordDecision, type RouteTarget } from "../router/select.ts";
import { createStrategy } from "../strategies/mod.ts";
import { SeededRng } from "../util/rng.ts";
import { chatPromptText, maxTokensOf } from "./chat_template.ts";
import { EngineError, EngineModel, type EngineStats } from "./engine.ts";
import { getProfile } from "./profiles.ts";
import type { EngineParams, RequestRecord, StepResult, TraceRequest } from "./types.ts";
import { errorMessage } from "../util/errors.ts";
import { percentile } from "../bench/stats.ts";

/** Options of {@linkcode simulate}. */
export interface SimulateOptions {
  readonly trace: readonly TraceRequest[];
  /** Number of workers (engines). */
  readonly workers: number;
  /** Engine profile of every worker. Default `a100-7b`. */
  readonly profile?: string;
  /** Overrides of the profile's engine parameters. */
  readonly params?: Partial<EngineParams>;
  /** Strategy name from the registry (`prefixaware`, `roundrobin`, `random`, `leastloaded`). */
  readonly strategy: string;
  /** Default 2. */
  readonly minMatchChunks?: number;
  /** Default 8; 0 = valve off. */
  readonly saturationInflight?: number;
  /** Router chunk size in bytes. Default 32. */
  readonly chunkSize?: number;
  /**
   * Prefix index budget per worker in chunks; default: the engine's KV capacity in bytes
   * (blocks × block size × bytes per token) ÷ `chunkSize`. 0 = unbounded.
   */
  readonly kvBudgetChunks?: number;
  /** Seed of the routing rng. Default 1. */
  readonly seed?: number;
  /** `max_tokens` when a body has none. Default 64. */
  readonly defaultMaxTokens?: number;
  /** Strategy-specific options (`router.strategy_options`), e.g. `{ tie_epsilon: 0.02 }`. */
  readonly strategyOptions?: Readonly<Record<string, number>>;
}

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
  readonly ttftMeanMs: number;
  readonly totalP50Ms: number;
  readonly totalP95Ms: number;
  /** From the first start to the last end, ms. */
  readonly makespanMs: number;
}

/** What {@linkcode simulate} returns. */
export interface SimulateResult {
  /** One record per trace request, in completion order. */
  readonly records: RequestRecord[];
  readonly summary: RunSummary;
  readonly workers: ReadonlyArray<{ readonly id: string; readonly stats: EngineStats }>;
}

/**
 * Quantile `q` (0..1) of `values`, by the bench report's definition (numpy's linear method, see
 * `src/bench/stats.ts`), so `simulate` and `bench` agree on the same records; NaN when empty.
 */
export function quantile(values: readonly number[], q: number): number {
  return percentile(values, q * 100);
}

/** Summary figures of `records`. */
export function summarize(records: readonly RequestRecord[]): RunSummary {
  const ok = records.filter((r) => r.status === 200);
  let prompt = 0;
  let cached = 0;
  const ttft: number[] = [];
  const total: number[] = [];
  let first = Infinity;
  let last = -Infinity;
  for (const r of records) {
    first = Math.min(first, r.start_ms);
    last = Math.max(last, r.start_ms + r.total_ms);
  }
  for (const r of ok) {
    prompt += r.prompt_tokens;
    cached += r.cached_tokens;
    if (r.ttft_ms !== null) ttft.push(r.ttft_ms);
    total.push(r.total_ms);
  }
  return {
    requests: records.length,
    errors: records.length - ok.length,
    promptTokens: prompt,
    cachedTokens: cached,
    kvCachedShare: prompt > 0 ? cached / prompt : 0,
    ttftP50Ms: quantile(ttft, 0.5),
    ttftP95Ms: quantile(ttft, 0.95),
    ttftMeanMs: ttft.length > 0 ? ttft.reduce((a, b) => a + b, 0) / ttft.length : NaN,
    totalP50Ms: quantile(total, 0.5),
    totalP95Ms: quantile(total, 0.95),
    makespanMs: records.length > 0 ? last - first : 0,
  };
}

/** Parses a JSONL trace; throws naming the line on a malformed one. */
export function parseTrace(text: string): TraceRequest[] {
  const out: TraceRequest[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new Error(
        `trace line ${i + 1} is not JSON: ${err instanceof Error ? err.message : err}`,
      );
    }
    const where = `trace line ${i + 1}`;
    if (typeof v.session_id !== "string") throw new Error(`${where}: session_id must be a string`);
    if (typeof v.delay_ms !== "number" || !(v.delay_ms >= 0)) {
      throw new Error(`${where}: delay_ms must be a number ≥ 0, got ${JSON.stringify(v.delay_ms)}`);
    }
    if (v.body === null || typeof v.body !== "object" || Array.isArray(v.body)) {
      throw new Error(`${where}: body must be an object`);
    }
    out.push({
      session_id: v.session_id,
      delay_ms: v.delay_ms,
      pattern: typeof v.pattern === "string" ? v.pattern : "",
      body: v.body as Record<string, unknown>,
    });
  }
  return out;
}

/** Binary min-heap of events by (time, sequence number). */
class EventQueue<T> {
  #items: Array<{ t: number; n: number; v: T }> = [];
  #n = 0;

  get size(): number {
    return this.#items.length;
  }

  push(t: number, v: T): void {
    const a = this.#items;
    a.push({ t, n: this.#n++, v });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): { t: number; v: T } | undefined {
    const a = this.#items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.#less(a[l], a[m])) m = l;
        if (r < a.length && this.#less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }

  #less(x: { t: number; n: number }, y: { t: number; n: number }): boolean {
    return x.t < y.t || (x.t === y.t && x.n < y.n);
  }
}

type Ev =
  | { kind: "issue"; session: number; turn: number }
  | { kind: "step"; worker: number; result: StepResult };

interface Worker {
  readonly id: string;
  readonly engine: EngineModel;
  readonly prefix: RadixTree;
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
  firstMs: number | null;
}

/** Replays `opts.trace` in virtual time; deterministic for a seed. */
export function simulate(opts: SimulateOptions): SimulateResult {
  if (!Number.isInteger(opts.workers) || opts.workers < 1) {
    throw new RangeError(`workers must be a positive integer, got ${opts.workers}`);
  }
  const profile = getProfile(opts.profile ?? "a100-7b");
  const params: EngineParams = { ...profile.params, ...opts.params };
  const chunkSize = opts.chunkSize ?? 32;
  const budget = opts.kvBudgetChunks ??
    Math.floor(params.capacityBlocks * params.blockSize * params.bytesPerToken / chunkSize);
  const strategy = createStrategy(opts.strategy, {
    minMatchChunks: opts.minMatchChunks ?? 2,
    saturationInflight: opts.saturationInflight ?? 8,
    options: opts.strategyOptions,
  });
  // Fed exactly as the router feeds it: dispatch, first token, usage, done.
  const tracker = new LoadTracker({ workers: opts.workers });
  const rng = new SeededRng(opts.seed ?? 1);
  const defaultMaxTokens = opts.defaultMaxTokens ?? 64;

  const workers: Worker[] = [];
  for (let i = 0; i < opts.workers; i++) {
    workers.push({
      id: `w${i}`,
      engine: new EngineModel(params),
      prefix: new RadixTree({ maxChunks: budget, chained: true }),
      inflight: 0,
      stepping: false,
    });
  }

  // Sessions in order of first appearance; turns in trace order.
  const sessionIndex = new Map<string, number>();
  const sessions: TraceRequest[][] = [];
  for (const r of opts.trace) {
    let s = sessionIndex.get(r.session_id);
    if (s === undefined) {
      s = sessions.length;
      sessionIndex.set(r.session_id, s);
      sessions.push([]);
    }
    sessions[s].push(r);
  }

  const queue = new EventQueue<Ev>();
  const records: RequestRecord[] = [];
  const pending: Array<Map<number, Pending>> = workers.map(() => new Map());

  const startStep = (w: number, now: number) => {
    const worker = workers[w];
    if (worker.stepping) return;
    const result = worker.engine.step(now);
    if (result === undefined) return;
    worker.stepping = true;
    queue.push(result.endMs, { kind: "step", worker: w, result });
  };

  const next = (session: number, turn: number, now: number) => {
    const t = sessions[session][turn + 1];
    if (t !== undefined) queue.push(now + t.delay_ms, { kind: "issue", session, turn: turn + 1 });
  };

  const issue = (session: number, turn: number, now: number) => {
    const req = sessions[session][turn];
    const fail = (status: number, error: string, backend: string | null, reason: string | null) => {
      records.push({
        session_id: req.session_id,
        pattern: req.pattern,
        turn,
        start_ms: now,
        ttft_ms: null,
        total_ms: 0,
        status,
        backend,
        reason,
        prompt_tokens: 0,
        cached_tokens: 0,
        completion_tokens: 0,
        error,
      });
      next(session, turn, now);
    };
    let text: string;
    let hashes: Uint32Array;
    let prompt: string;
    let maxTokens: number;
    try {
      text = routingText(req.body, "chat");
      hashes = chunkHashes(text, chunkSize);
      prompt = chatPromptText(req.body);
      maxTokens = maxTokensOf(req.body, defaultMaxTokens);
    } catch (err) {
      return fail(400, errorMessage(err), null, null);
    }
    const targets: RouteTarget[] = workers.map((w, index) => ({
      index,
      id: w.id,
      prefix: w.prefix,
      capacityChunks: budget,
      inflight: w.inflight,
      load: tracker.load(index),
    }));
    const decision = decide({ strategy, targets, hashes, chunkSize, rng, now });
    if (decision === undefined) return fail(503, "no worker admitted", null, null);
    const w = decision.candidate.index;
    // The router's prediction, taken before recording (afterwards the match is the whole request).
    const matched = strategy.usesPrefix
      ? decision.candidate.match
      : targets[w].prefix.match(hashes);
    recordDecision(targets[w], hashes);
    let id: number;
    try {
      id = workers[w].engine.submit({ prompt, maxTokens });
    } catch (err) {
      if (!(err instanceof EngineError)) throw err;
      return fail(400, err.message, workers[w].id, decision.reason);
    }
    workers[w].inflight++;
    const ticket = tracker.onDispatch(w, utf8(text).length / 4, matched * chunkSize / 4);
    pending[w].set(id, {
      ticket,
      session,
      turn,
      start: now,
      worker: w,
      reason: decision.reason,
      firstMs: null,
    });
    startStep(w, now);
  };

  const stepDone = (w: number, result: StepResult) => {
    const now = result.endMs;
    workers[w].stepping = false;
    for (const ev of result.events) {
      const p = pending[w].get(ev.id);
      if (p === undefined) continue;
      if (ev.kind === "first_token") {
        p.firstMs = now;
        tracker.onFirstToken(p.ticket, now - p.start);
      }
      if (ev.kind !== "done") continue;
      pending[w].delete(ev.id);
      workers[w].inflight--;
      tracker.onUsage(p.ticket, ev.promptTokens, ev.cachedTokens);
      tracker.onDone(p.ticket, { elapsedMs: now - p.start, completionTokens: ev.completionTokens });
      const req = sessions[p.session][p.turn];
      records.push({
        session_id: req.session_id,
        pattern: req.pattern,
        turn: p.turn,
        start_ms: p.start,
        ttft_ms: p.firstMs === null ? null : p.firstMs - p.start,
        total_ms: now - p.start,
        status: 200,
        backend: workers[w].id,
        reason: p.reason,
        prompt_tokens: ev.promptTokens,
        cached_tokens: ev.cachedTokens,
        completion_tokens: ev.completionTokens,
        error: null,
      });
      next(p.session, p.turn, now);
    }
    startStep(w, now);
  };

  for (let s = 0; s < sessions.length; s++) {
    queue.push(sessions[s][0].delay_ms, { kind: "issue", session: s, turn: 0 });
  }
  for (let e = queue.pop(); e !== undefined; e = queue.pop()) {
    if (e.v.kind === "issue") issue(e.v.session, e.v.turn, e.t);
    else stepDone(e.v.worker, e.v.result);
  }

  return {
    records,
    summary: summarize(records),
    workers: workers.map((w) => ({ id: w.id, stats: w.engine.stats() })),
  };
}
