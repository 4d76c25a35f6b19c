/**
 * The strategy sweep behind `cmd/bench.ts`: for each strategy × sessions point × seed, start fresh
 * simulated workers (or use the given engine URLs), start a router with that strategy in front of
 * them, generate the trace, replay it, shut everything down, and tag the records with the cell.
 *
 * Fresh workers per cell make cells independent: no cell inherits a warm KV cache from the one
 * before. With `workerUrls` (real engines) the sweep empties every engine's prefix cache before
 * each cell (`engine_reset.ts`: vLLM `POST /reset_prefix_cache`, SGLang `POST /flush_cache`,
 * llama-server slot erase). When some engine offers none of these, caches carry over, and the
 * cells are interleaved instead: each sessions × seed point runs every strategy in turn, the
 * order rotated from one point to the next, so no strategy always inherits the same one's cache.
 * `onNote` hears which of the two happened (the report prints it).
 *
 * The router, sim worker and offline simulator can be injected (`deps`) for tests.
 * `offline: true` runs the offline simulator (virtual time, no HTTP) instead.
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import { configFromWorkers, type ConfigOverrides } from "../config/mod.ts";
import { silentLogger, startRouter } from "../router/mod.ts";
import { startSimWorker } from "../sim/server.ts";
import { PROFILES } from "../sim/profiles.ts";
import { simulate } from "../sim/offline.ts";
import type { TraceRequest } from "../sim/types.ts";
import { cacheNote, CacheResetter, type ResetMethod } from "./engine_reset.ts";
import { replayTrace } from "./replay.ts";
import { generateTrace } from "./traces.ts";
import type { BenchRecord, RequestRecord, Shape, TraceEntry } from "./types.ts";

/** A running simulated worker (`src/sim/server.ts`). */
export interface SimWorkerHandle {
  readonly url: string;
  readonly port: number;
  readonly id: string;
  /** The KV-event publisher and replay ports, when started with `kvEvents` (precise index). */
  readonly kvEventsPort?: number | null;
  readonly kvEventsReplayPort?: number | null;
  shutdown(): Promise<void>;
}

/** A running router (`src/router/mod.ts`). */
export interface RouterHandle {
  readonly url: string;
  readonly port: number;
  /** In precise mode, whether every KV-event subscription is connected (absent: nothing to wait for). */
  kvConnected?(): boolean;
  shutdown(): Promise<void>;
}

/** Options of the offline simulator run for one cell. */
export interface OfflineRunOptions {
  strategy: string;
  /** Number of simulated workers. */
  workers: number;
  /** Engine profile name, e.g. `a100-7b`. */
  profile: string;
  /** Seeds the routing RNG. */
  seed: number;
}

/** How the sweep starts a simulated worker. */
export interface SimStartOptions {
  port: number;
  profile: string;
  timeScale: number;
  id: string;
  /** Engine KV capacity in blocks (default: the profile's). */
  params?: { capacityBlocks: number };
  /** The longest prompt plus answer the engine takes (default: the profile's). */
  maxModelLen?: number;
  /** KV events published over ZMQ (precise index). */
  kvEvents?: { endpoint: string; replayEndpoint: string };
}

/** A worker the router is configured with. */
export interface SweepTarget {
  id: string;
  url: string;
  kvEvents?: string;
  kvEventsReplay?: string;
}

/** What the sweep needs from the rest of the project; each defaults to the real module. */
export interface SweepDeps {
  startSimWorker?(opts: SimStartOptions): Promise<SimWorkerHandle>;
  startRouter?(
    config: RouterConfig,
    opts: { port: number; hostname?: string },
  ): Promise<RouterHandle>;
  configFromWorkers?(
    workers: readonly (string | SweepTarget)[],
    overrides: { router?: Record<string, unknown>; logging?: Record<string, unknown> },
  ): RouterConfig;
  runOffline?(
    trace: readonly TraceEntry[],
    opts: OfflineRunOptions,
  ): readonly RequestRecord[] | Promise<readonly RequestRecord[]>;
  /** Empties real engines' caches between cells (default: a `CacheResetter`). */
  resetter?: { resetAll(urls: readonly string[]): Promise<(ResetMethod | null)[]> };
}

/** Where the sweep is. */
export interface SweepProgress {
  /** `cell-start` before a cell runs, `request` after each request, `cell-done` after a cell. */
  kind: "cell-start" | "request" | "cell-done";
  strategy: string;
  sessions: number;
  seed: number;
  /** 1-based index of the cell, and the number of cells. */
  cell: number;
  cells: number;
  /** Requests finished in this cell, and the cell's trace length. */
  done: number;
  total: number;
}

/** Options of `runSweep`. */
export interface SweepOptions {
  strategies: string[];
  sessions: number[];
  seeds: number[];
  turns: number;
  systemBytes: number;
  maxTokens: number;
  /** Simulated workers per cell (ignored with `workerUrls`). */
  workers: number;
  /** Engine profile of the simulated workers, e.g. `a100-7b`. */
  profile: string;
  /** Multiplier on every simulated duration (0.1 = ten times faster than real time). */
  timeScale: number;
  /** Real engines instead of simulated workers. */
  workerUrls?: string[];
  /** Run the offline simulator instead of HTTP. */
  offline?: boolean;
  /** Trace shape (default `multiturn`). */
  shape?: Shape;
  /** Model name in request bodies (default `sim`; set it for real engines). */
  model?: string;
  /** Think time and first-turn stagger of the trace, ms (default 0). */
  thinkMs?: number;
  staggerMs?: number;
  /** Per-request timeout of the replay, ms. */
  timeoutMs?: number;
  /**
   * The router's prefix index (default `approximate`). `precise`: the simulated workers publish KV
   * events, the router subscribes to them and tokenizes through the workers' `/tokenize`.
   */
  index?: "approximate" | "precise";
  /** Engine KV capacity of the simulated workers in blocks (default: the profile's). */
  capacityBlocks?: number;
  /** Run one short unrecorded cell before the sweep (HTTP mode only; default true). */
  warmup?: boolean;
  /** Stops the sweep: in-flight requests are cancelled, servers shut down. */
  signal?: AbortSignal;
  onProgress?: (p: SweepProgress) => void;
  /** A line for the report (how engine caches were handled between cells). */
  onNote?: (note: string) => void;
  deps?: SweepDeps;
}

/** Cells point by point (sessions, then seed), every strategy in turn, rotated per point. */
function interleaved(opts: SweepOptions): [string, number, number][] {
  const out: [string, number, number][] = [];
  const n = opts.strategies.length;
  let point = 0;
  for (const sessions of opts.sessions) {
    for (const seed of opts.seeds) {
      for (let i = 0; i < n; i++) out.push([opts.strategies[(point + i) % n], sessions, seed]);
      point++;
    }
  }
  return out;
}

function resolveDeps(opts: SweepOptions): Required<Omit<SweepDeps, "resetter">> & SweepDeps {
  const d = opts.deps ?? {};
  return {
    startSimWorker: d.startSimWorker ?? startSimWorker,
    startRouter: d.startRouter ?? (async (config, o) => {
      const running = await startRouter(config, { ...o, logger: silentLogger });
      const precise = running.router.precise;
      return {
        url: running.url,
        port: running.port,
        kvConnected: precise === null
          ? undefined
          : () => precise.subscriptions().every((x) => x.sub.state === "connected"),
        shutdown: () => running.shutdown(),
      };
    }),
    configFromWorkers: d.configFromWorkers ??
      ((workers, overrides) => configFromWorkers(workers, overrides as ConfigOverrides)),
    runOffline: d.runOffline ??
      ((trace, o) => simulate({ trace: trace as unknown as TraceRequest[], ...o }).records),
  };
}

function validate(o: SweepOptions): void {
  const lists: [string, unknown[]][] = [
    ["strategies", o.strategies],
    ["sessions", o.sessions],
    ["seeds", o.seeds],
  ];
  for (const [name, xs] of lists) {
    if (xs.length === 0) throw new RangeError(`${name} must not be empty`);
  }
  for (const s of o.sessions) {
    if (!Number.isInteger(s) || s < 1) throw new RangeError(`sessions must be >= 1, got ${s}`);
  }
  if (!o.workerUrls && (!Number.isInteger(o.workers) || o.workers < 1)) {
    throw new RangeError(`workers must be >= 1, got ${o.workers}`);
  }
  if (o.workerUrls && o.workerUrls.length === 0) throw new RangeError("workerUrls is empty");
  if (!(o.timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${o.timeScale}`);
  if (o.index === "precise" && (o.workerUrls !== undefined || o.offline)) {
    throw new RangeError("the precise index runs with simulated workers over HTTP");
  }
}

/** Runs every cell in order (strategy, then sessions, then seed) and returns all records. */
export async function runSweep(opts: SweepOptions): Promise<BenchRecord[]> {
  validate(opts);
  const deps = resolveDeps(opts);
  const cells = opts.strategies.length * opts.sessions.length * opts.seeds.length;
  const out: BenchRecord[] = [];
  if (!opts.offline && opts.warmup !== false) {
    // One short unrecorded cell first: JIT compilation, connection pools and the first
    // allocations would otherwise land on whichever strategy happens to run first.
    const warm = generateTrace({
      shape: "multiturn",
      sessions: 2,
      turns: 2,
      seed: 0,
      systemBytes: opts.systemBytes,
      maxTokens: Math.min(opts.maxTokens, 8),
      model: opts.model,
    });
    await runCell(opts, deps, opts.strategies[0], 0, warm, () => {});
  }
  let order: [string, number, number][] = [];
  for (const strategy of opts.strategies) {
    for (const sessions of opts.sessions) {
      for (const seed of opts.seeds) order.push([strategy, sessions, seed]);
    }
  }
  let reset = false;
  if (opts.workerUrls && !opts.offline) {
    const resetter = opts.deps?.resetter ?? new CacheResetter();
    const methods = await resetter.resetAll(opts.workerUrls);
    reset = methods.every((m) => m !== null);
    if (!reset) order = interleaved(opts);
    opts.onNote?.(cacheNote(methods, !reset));
    deps.resetter = resetter;
  }
  let cell = 0;
  for (const [strategy, sessions, seed] of order) {
    if (opts.signal?.aborted) return out;
    if (reset) await deps.resetter!.resetAll(opts.workerUrls!);
    cell++;
    const trace = generateTrace({
      shape: opts.shape ?? "multiturn",
      sessions,
      turns: opts.turns,
      seed,
      systemBytes: opts.systemBytes,
      maxTokens: opts.maxTokens,
      model: opts.model,
      thinkMs: opts.thinkMs,
      staggerMs: opts.staggerMs,
    });
    const progress = (kind: SweepProgress["kind"], done: number) =>
      opts.onProgress?.({
        kind,
        strategy,
        sessions,
        seed,
        cell,
        cells,
        done,
        total: trace.length,
      });
    progress("cell-start", 0);
    const records = opts.offline
      ? await deps.runOffline(trace, {
        strategy,
        workers: opts.workers,
        profile: opts.profile,
        seed,
      })
      : await runCell(opts, deps, strategy, seed, trace, (n) => progress("request", n));
    for (const r of records) out.push({ ...r, strategy, sessions, seed });
    progress("cell-done", records.length);
  }
  return out;
}

async function runCell(
  opts: SweepOptions,
  deps: ReturnType<typeof resolveDeps>,
  strategy: string,
  seed: number,
  trace: TraceEntry[],
  onRequest: (done: number) => void,
): Promise<RequestRecord[]> {
  const workers: SimWorkerHandle[] = [];
  let router: RouterHandle | null = null;
  const precise = opts.index === "precise";
  try {
    let targets: SweepTarget[];
    if (opts.workerUrls) {
      targets = opts.workerUrls.map((url, i) => ({ id: `w${i + 1}`, url }));
    } else {
      const started = await Promise.allSettled(
        Array.from({ length: opts.workers }, (_, i) =>
          deps.startSimWorker({
            port: 0,
            profile: opts.profile,
            timeScale: opts.timeScale,
            id: `w${i + 1}`,
            ...(opts.capacityBlocks === undefined ? {} : {
              params: { capacityBlocks: opts.capacityBlocks },
              // An engine refuses a max_model_len its whole cache cannot hold, as vLLM does.
              maxModelLen: cappedModelLen(opts.profile, opts.capacityBlocks),
            }),
            ...(precise ? { kvEvents: KV_EVENTS_ANY_PORT } : {}),
          })),
      );
      for (const s of started) if (s.status === "fulfilled") workers.push(s.value);
      const failed = started.find((s) => s.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
      targets = workers.map((w) => ({
        id: w.id,
        url: w.url,
        ...(precise
          ? {
            kvEvents: `tcp://127.0.0.1:${w.kvEventsPort}`,
            kvEventsReplay: `tcp://127.0.0.1:${w.kvEventsReplayPort}`,
          }
          : {}),
      }));
    }
    const config = deps.configFromWorkers(targets, {
      router: { strategy, seed, ...(precise ? { index: "precise" } : {}) },
      logging: { level: "error" },
    });
    router = await deps.startRouter(config, { port: 0, hostname: "127.0.0.1" });
    const connected = router.kvConnected;
    if (connected !== undefined && !(await waitUntil(connected, KV_CONNECT_MS, opts.signal))) {
      throw new Error(`KV event subscriptions did not connect within ${KV_CONNECT_MS / 1000} s`);
    }
    let done = 0;
    return await replayTrace(trace, {
      url: router.url,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
      onRecord: () => onRequest(++done),
    });
  } finally {
    if (router) await router.shutdown();
    await Promise.all(workers.map((w) => w.shutdown()));
  }
}

/** Any free ports for a simulated worker's KV-event publisher and replay socket. */
const KV_EVENTS_ANY_PORT = { endpoint: "tcp://127.0.0.1:0", replayEndpoint: "tcp://127.0.0.1:0" };

/** How long the router's KV-event subscriptions may take to connect. */
const KV_CONNECT_MS = 10_000;

/** Polls `cond` every 20 ms until it holds (true), `ms` pass or `signal` aborts (false). */
async function waitUntil(cond: () => boolean, ms: number, signal?: AbortSignal): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end || signal?.aborted) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** The profile's max_model_len, lowered to what `capacityBlocks` blocks of the profile hold. */
function cappedModelLen(profile: string, capacityBlocks: number): number {
  const p = PROFILES[profile]?.params;
  if (p === undefined) return capacityBlocks * 16;
  return Math.min(p.maxModelLen, capacityBlocks * p.blockSize);
}
