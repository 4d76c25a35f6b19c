/**
 * Replica benchmark: R router replicas (with or without Redis sync) in front of the same simulated
 * workers, a multiturn trace whose consecutive turns go to different replicas, and the KV-cached
 * share the engines reported (Σ cached / Σ prompt tokens).
 *
 * Spread: turn k of session i goes to replica (i + k) mod R, a client-side round-robin front that
 * makes every turn after the first reach another replica than the turn before it, the worst case
 * for replicas that do not share their view (a load balancer with no affinity is not much better).
 * With R = 1 it is the single-router baseline.
 *
 * Each run starts fresh workers (cold KV caches), fresh routers and, with sync and no `redisUrl`, a
 * fresh `redis-server` on a free port; everything is shut down before it returns.
 *
 * @module
 */

import { configFromWorkers } from "../config/mod.ts";
import { sendRequest } from "../bench/replay.ts";
import { percentile } from "../bench/stats.ts";
import { generateTrace } from "../bench/traces.ts";
import type { RequestRecord, TraceEntry } from "../bench/types.ts";
import { groupSessions } from "../bench/replay.ts";
import { type RunningRouter, startRouter } from "../router/mod.ts";
import { type SimWorker, startSimWorker } from "../sim/server.ts";
import { PrefixSync } from "./redis_sync.ts";
import { type RedisServerHandle, startRedisServer } from "./redis_server.ts";
import type { PrefixSyncStats } from "./types.ts";

/** Options of {@linkcode runReplicaComparison}. */
export interface ReplicaComparisonOptions {
  /** Router replicas, ≥ 1. */
  readonly replicas: number;
  /** Share routing records through Redis. */
  readonly sync: boolean;
  /** Concurrent sessions of the multiturn trace. */
  readonly sessions: number;
  /** Turns per session (default 8). */
  readonly turns?: number;
  /** Simulated workers (default 4). */
  readonly workers?: number;
  /** Engine profile (default `a100-7b`). */
  readonly profile?: string;
  /** Simulated time scale (default 0.2). */
  readonly timeScale?: number;
  /** Trace and routing seed (default 1). */
  readonly seed?: number;
  /** Shared system prompt bytes (trace default when absent). */
  readonly systemBytes?: number;
  /** `max_tokens` per request (trace default when absent). */
  readonly maxTokens?: number;
  /** Mean think time between turns, ms (default 0). */
  readonly thinkMs?: number;
  /** First turns start within this window, ms (default 0). */
  readonly staggerMs?: number;
  /** Routing strategy (default `prefixaware`). */
  readonly strategy?: string;
  /** Redis to use with `sync`; default: a `redis-server` started for the run. */
  readonly redisUrl?: string;
  /** Per-request timeout, ms (default 120000). */
  readonly timeoutMs?: number;
  /** Called after each request. */
  readonly onRecord?: (r: RequestRecord, done: number, total: number) => void;
}

/** What one run measured. */
export interface ReplicaComparisonResult {
  readonly replicas: number;
  readonly sync: boolean;
  readonly sessions: number;
  readonly requests: number;
  readonly errors: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  /** Σ cached / Σ prompt tokens over successful requests. */
  readonly cachedShare: number;
  /** Share of turns after the first that reached the worker of the session's previous turn. */
  readonly sameWorkerShare: number;
  /** Median time to first token, ms. */
  readonly ttftP50Ms: number | null;
  /** Wall time of the replay, ms. */
  readonly wallMs: number;
  /** Per-replica sync counters (empty without sync). */
  readonly syncStats: readonly PrefixSyncStats[];
  /** Records in trace order. */
  readonly records: readonly RequestRecord[];
}

/** Runs one cell: R replicas, sync on or off, one trace. */
export async function runReplicaComparison(
  opts: ReplicaComparisonOptions,
): Promise<ReplicaComparisonResult> {
  const replicas = opts.replicas;
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new RangeError(`replicas must be an integer >= 1, got ${replicas}`);
  }
  const seed = opts.seed ?? 1;
  const trace = generateTrace({
    shape: "multiturn",
    sessions: opts.sessions,
    turns: opts.turns ?? 8,
    seed,
    systemBytes: opts.systemBytes,
    maxTokens: opts.maxTokens,
    thinkMs: opts.thinkMs,
    staggerMs: opts.staggerMs,
  });

  const workers: SimWorker[] = [];
  const routers: RunningRouter[] = [];
  const syncs: PrefixSync[] = [];
  let redis: RedisServerHandle | null = null;
  try {
    const started = await Promise.allSettled(
      Array.from({ length: opts.workers ?? 4 }, (_, i) =>
        startSimWorker({
          port: 0,
          profile: opts.profile ?? "a100-7b",
          timeScale: opts.timeScale ?? 0.2,
          id: `w${i + 1}`,
        })),
    );
    for (const s of started) if (s.status === "fulfilled") workers.push(s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;

    let redisUrl = opts.redisUrl;
    if (opts.sync && redisUrl === undefined) {
      redis = await startRedisServer();
      redisUrl = redis.url;
    }
    const stream = `bench:${crypto.randomUUID()}`;
    for (let r = 0; r < replicas; r++) {
      const config = configFromWorkers(workers.map((w) => ({ id: w.id, url: w.url })), {
        router: { strategy: opts.strategy ?? "prefixaware", seed: seed * 1000 + r },
        logging: { level: "error" },
        health: { intervalMs: 0 },
      });
      const running = await startRouter(config, { port: 0, hostname: "127.0.0.1" });
      routers.push(running);
      if (opts.sync) {
        const sync = PrefixSync.attach(running.router, {
          url: redisUrl!,
          replicaId: `replica-${r}`,
          stream,
          chunkSize: config.router.chunkSize,
        });
        sync.start();
        syncs.push(sync);
      }
    }
    if (syncs.length > 0) await waitConnected(syncs, 10_000);

    const t0 = performance.now();
    const records = await replaySpread(trace, routers.map((r) => r.url), opts);
    const wallMs = performance.now() - t0;
    return summarize(opts, records, wallMs, syncs.map((s) => s.stats()));
  } finally {
    await Promise.all(syncs.map((s) => s.stop()));
    await Promise.all(routers.map((r) => r.shutdown()));
    await Promise.all(workers.map((w) => w.shutdown()));
    await redis?.stop();
  }
}

async function waitConnected(syncs: readonly PrefixSync[], ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!syncs.every((s) => s.connected)) {
    if (performance.now() > end) throw new Error(`Redis sync did not connect within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sessions in parallel; turn k of session i to `urls[(i + k) % urls.length]`. */
async function replaySpread(
  trace: readonly TraceEntry[],
  urls: readonly string[],
  opts: ReplicaComparisonOptions,
): Promise<RequestRecord[]> {
  const sessions = groupSessions(trace);
  const results: RequestRecord[][] = sessions.map(() => []);
  const t0 = performance.now();
  let done = 0;
  await Promise.all(sessions.map(async (turns, i) => {
    for (let k = 0; k < turns.length; k++) {
      if (turns[k].delay_ms > 0) await new Promise((r) => setTimeout(r, turns[k].delay_ms));
      const rec = await sendRequest(turns[k], k, {
        url: urls[(i + k) % urls.length],
        timeoutMs: opts.timeoutMs ?? 120_000,
      }, t0);
      results[i].push(rec);
      opts.onRecord?.(rec, ++done, trace.length);
    }
  }));
  return results.flat();
}

function summarize(
  opts: ReplicaComparisonOptions,
  records: RequestRecord[],
  wallMs: number,
  syncStats: PrefixSyncStats[],
): ReplicaComparisonResult {
  let prompt = 0;
  let cached = 0;
  let errors = 0;
  let follow = 0;
  let same = 0;
  const ttfts: number[] = [];
  const lastBackend = new Map<string, string | null>();
  for (const r of records) {
    if (r.error !== null || r.status !== 200) errors++;
    else {
      prompt += r.prompt_tokens ?? 0;
      cached += r.cached_tokens ?? 0;
      if (r.ttft_ms !== null) ttfts.push(r.ttft_ms);
    }
    const prev = lastBackend.get(r.session_id);
    if (prev !== undefined) {
      follow++;
      if (prev !== null && prev === r.backend) same++;
    }
    lastBackend.set(r.session_id, r.backend);
  }
  ttfts.sort((a, b) => a - b);
  return {
    replicas: opts.replicas,
    sync: opts.sync,
    sessions: opts.sessions,
    requests: records.length,
    errors,
    promptTokens: prompt,
    cachedTokens: cached,
    cachedShare: prompt > 0 ? cached / prompt : 0,
    sameWorkerShare: follow > 0 ? same / follow : 0,
    ttftP50Ms: ttfts.length > 0 ? percentile(ttfts, 50) : null,
    wallMs,
    syncStats,
    records,
  };
}
