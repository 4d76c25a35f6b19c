/**
 * The routing-quality matrix behind docs/results.md (issue 19): every strategy on every cell of
 * trace shapes × engine profiles × worker counts × arrival loops, in the offline simulator
 * (virtual time, deterministic), and the default strategy's p95 TTFT held against leastloaded's
 * and the best other strategy's, with 95% CIs (`matrix_report.ts`).
 *
 * A cell:
 * - closed loop: `sessionsPerWorker × workers` sessions of `turns` requests with think times
 *   (`thinkMs`, first turns spread over `staggerMs`), as `generateTrace` writes them;
 * - open loop: the same requests, each arriving when leastloaded issued it in the closed loop
 *   (its issue times replayed as `arrival_ms`), whatever the strategy under test does: the load
 *   and the sessions' spread in time are the closed loop's, but a slow answer no longer holds the
 *   next turn back. (Poisson arrivals handed out round by round, `toOpenLoop`, were tried first:
 *   they put every session at the same turn at once, a burst of the largest prompts that no
 *   router can spread.)
 * - a trace of its own (`trace`, e.g. an imported Mooncake trace) instead of a generated shape.
 * Each cell runs enough seeds (from `firstSeed`) for `requestsPerCell` requests per strategy;
 * seed s generates trace s and seeds routing and answer lengths. Every strategy sees the same
 * requests, so the comparison is paired request by request.
 *
 * Cost: one `simulate` per strategy × seed × cell; about 0.5 ms of CPU per simulated request on
 * a100-7b shapes (the default matrix, 48 cells × 9 strategies × ~1 500 requests: ~6 minutes).
 *
 * @module
 */

import type { EngineParams } from "../sim/types.ts";
import { simulate } from "../sim/offline.ts";
import type { AnswerLengthModel } from "../sim/answer_length.ts";
import type { RequestRecord as SimRecord, TraceRequest } from "../sim/types.ts";
import { generateTrace } from "./traces.ts";
import type { AnyTraceEntry, Shape } from "./types.ts";

/** How requests arrive in a cell. */
export type Loop = "closed" | "open";

/** What the matrix runs; see the module comment. */
export interface MatrixSpec {
  readonly shapes: readonly Shape[];
  readonly profiles: readonly string[];
  readonly workers: readonly number[];
  readonly loops: readonly Loop[];
  /** Every strategy compared; must include `defaultStrategy` and `leastloaded`. */
  readonly strategies: readonly string[];
  /** The strategy held against the others. */
  readonly defaultStrategy: string;
  /** Sessions per worker, for every shape or by shape name (a trace's name for `trace`). */
  readonly sessionsPerWorker: number | Readonly<Record<string, number>>;
  readonly requestsPerCell: number;
  readonly turns: number;
  readonly thinkMs: number;
  readonly staggerMs: number;
  readonly maxTokens: number;
  readonly outputTokens: AnswerLengthModel;
  /** First seed; later cells' seeds follow it (default 1). Tuning runs use other seeds. */
  readonly firstSeed?: number;
  /** Engine parameter overrides for every cell (e.g. a small `capacityBlocks` for evictions). */
  readonly params?: Partial<EngineParams>;
  /** Options per strategy name (`router.strategy_options`). */
  readonly strategyOptions?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** A trace to run instead of generated shapes (one cell per profile × workers; `shapes` ignored). */
  readonly trace?: { readonly name: string; readonly entries: readonly AnyTraceEntry[] };
  /** Max model length override (long imported prompts). */
  readonly maxModelLen?: number;
  /** The router's prediction feedback on the prefix index (default true, as the router). */
  readonly feedback?: boolean;
  /** The router's `kv_budget` per worker, chunks (default 0: unbounded, the router's default). */
  readonly kvBudgetChunks?: number;
  /** Called after each cell. */
  readonly onCell?: (cell: CellRecords, done: number, total: number) => void;
}

/** One cell's coordinates. */
export interface Cell {
  readonly shape: string;
  readonly profile: string;
  readonly workers: number;
  readonly loop: Loop;
  readonly sessions: number;
  readonly seeds: readonly number[];
  /** Open loop: arrivals per second (requests ÷ the closed loop's makespan). */
  readonly rate?: number;
  /** Open loop: each request's arrival, ms, by `seed/session/turn`. */
  readonly arrivals?: ReadonlyMap<string, number>;
}

/** What one strategy did in one cell: per request, in a stable key order shared by strategies. */
export interface StrategyRun {
  readonly strategy: string;
  /** `seed/session/turn` → record. */
  readonly records: ReadonlyMap<string, SimRecord>;
  readonly evictedBlocks: number;
  readonly preemptions: number;
}

/** A cell and its runs. */
export interface CellRecords {
  readonly cell: Cell;
  readonly runs: readonly StrategyRun[];
}

/** The cells of `spec`, in run order (profile, workers, shape, loop). */
export function cellsOf(spec: MatrixSpec): Omit<Cell, "rate">[] {
  const out: Omit<Cell, "rate">[] = [];
  const first = spec.firstSeed ?? 1;
  const shapes: string[] = spec.trace ? [spec.trace.name] : [...spec.shapes];
  const loops: Loop[] = spec.trace ? ["open"] : [...spec.loops];
  for (const profile of spec.profiles) {
    for (const workers of spec.workers) {
      for (const shape of shapes) {
        const sessions = perWorker(spec, shape) * workers;
        const perSeed = spec.trace ? spec.trace.entries.length : sessions * spec.turns;
        const n = spec.trace ? 1 : Math.max(1, Math.ceil(spec.requestsPerCell / perSeed));
        const seeds = Array.from({ length: n }, (_, i) => first + i);
        for (const loop of loops) out.push({ shape, profile, workers, loop, sessions, seeds });
      }
    }
  }
  return out;
}

/** Runs every cell of `spec`; see the module comment. */
export function runMatrix(spec: MatrixSpec): CellRecords[] {
  check(spec);
  const cells = cellsOf(spec);
  const out: CellRecords[] = [];
  const closed = new Map<string, StrategyRun>();
  cells.forEach((c, i) => {
    const key = `${c.shape}/${c.profile}/${c.workers}`;
    let cell: Cell = c;
    if (c.loop === "open" && !spec.trace) {
      const ll = closed.get(key) ?? runStrategy(spec, { ...c, loop: "closed" }, "leastloaded");
      const arrivals = new Map<string, number>();
      for (const [k, r] of ll.records) arrivals.set(k, r.start_ms);
      cell = { ...c, arrivals, rate: rateOf(ll, c.seeds.length) };
    }
    const runs = spec.strategies.map((s) => runStrategy(spec, cell, s));
    if (c.loop === "closed") closed.set(key, runs.find((r) => r.strategy === "leastloaded")!);
    const result = { cell, runs };
    out.push(result);
    spec.onCell?.(result, i + 1, cells.length);
  });
  return out;
}

/** Sessions per worker for `shape`. */
export function perWorker(spec: Pick<MatrixSpec, "sessionsPerWorker">, shape: string): number {
  const s = spec.sessionsPerWorker;
  const n = typeof s === "number" ? s : s[shape];
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`sessions per worker for ${shape} must be an integer ≥ 1, got ${n}`);
  }
  return n;
}

function check(spec: MatrixSpec): void {
  for (const s of ["leastloaded", spec.defaultStrategy]) {
    if (!spec.strategies.includes(s)) throw new RangeError(`strategies must include ${s}`);
  }
  for (
    const [k, v] of Object.entries({
      requestsPerCell: spec.requestsPerCell,
      turns: spec.turns,
      maxTokens: spec.maxTokens,
    })
  ) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${k} must be an integer ≥ 1, got ${v}`);
    }
  }
  if (spec.workers.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new RangeError(`workers must be integers ≥ 1, got ${spec.workers.join(",")}`);
  }
}

/** The trace of `cell` for `seed`. */
function traceOf(spec: MatrixSpec, cell: Cell, seed: number): TraceRequest[] {
  if (spec.trace) return spec.trace.entries as unknown as TraceRequest[];
  const closed = generateTrace({
    shape: cell.shape as Shape,
    sessions: cell.sessions,
    turns: spec.turns,
    seed,
    thinkMs: spec.thinkMs,
    staggerMs: spec.staggerMs,
    maxTokens: spec.maxTokens,
    outputTokens: spec.outputTokens,
  });
  if (cell.loop === "closed") return closed as unknown as TraceRequest[];
  const turn = new Map<string, number>();
  const open = closed.map((e) => {
    const k = turn.get(e.session_id) ?? 0;
    turn.set(e.session_id, k + 1);
    const { delay_ms: _, ...rest } = e;
    const at = cell.arrivals?.get(`${seed}/${e.session_id}/${k}`);
    if (at === undefined) throw new Error(`no closed-loop time for ${seed}/${e.session_id}/${k}`);
    return { ...rest, arrival_ms: at };
  });
  open.sort((a, b) => a.arrival_ms - b.arrival_ms);
  return open as unknown as TraceRequest[];
}

function runStrategy(spec: MatrixSpec, cell: Cell, strategy: string): StrategyRun {
  const records = new Map<string, SimRecord>();
  let evictedBlocks = 0;
  let preemptions = 0;
  for (const seed of cell.seeds) {
    const r = simulate({
      trace: traceOf(spec, cell, seed),
      workers: cell.workers,
      profile: cell.profile,
      strategy,
      seed,
      params: spec.params,
      maxModelLen: spec.maxModelLen,
      feedback: spec.feedback,
      kvBudgetChunks: spec.kvBudgetChunks,
      strategyOptions: spec.strategyOptions?.[strategy],
    });
    for (const rec of r.records) records.set(`${seed}/${rec.session_id}/${rec.turn}`, rec);
    evictedBlocks += r.totals.evictedBlocks;
    preemptions += r.totals.preemptions;
  }
  return { strategy, records, evictedBlocks, preemptions };
}

/** Requests per second of a run: requests ÷ Σ makespans over its seeds. */
function rateOf(run: StrategyRun, seeds: number): number {
  const end = new Map<string, number>();
  for (const [key, r] of run.records) {
    const seed = key.slice(0, key.indexOf("/"));
    end.set(seed, Math.max(end.get(seed) ?? 0, r.start_ms + r.total_ms));
  }
  const span = [...end.values()].reduce((a, b) => a + b, 0);
  return span > 0 ? run.records.size / (span / 1000) : seeds;
}
