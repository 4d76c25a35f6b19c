/**
 * The overload experiment: open-loop arrivals above the fleet's capacity, in virtual time, on the
 * simulated engine model, comparing how the router handles them.
 *
 * Scenario (defaults). 4 workers of profile `a100-7b`. Two classes: `interactive` (rank 10, 512
 * prompt tokens, 64 answer tokens, TTFT target 1 s) and `batch` (rank 0, sheddable, 2048 prompt,
 * 256 answer, TTFT target 10 s). Two tenants, in one of two load shapes (`--scenario`):
 * - `flood` (default): `alice` sends interactive requests at 10 % of the fleet's capacity;
 *   `mallory` floods, interactive at 200 % and batch at 50 %: 2.6 × capacity in all, and the
 *   interactive class alone is over capacity (what fairness and order do);
 * - `priority`: interactive at 80 % of capacity (alice 10 %, mallory 70 %), mallory's batch at
 *   120 %: 2 × capacity, while the interactive class alone fits (what priority does).
 * Poisson arrivals for 60 s (seeded). Clients give up (and the engine drops their request) when
 * no first token came within 30 s.
 *
 * Capacity is measured first: one engine kept full (`max_num_seqs` requests in flight, closed
 * loop) on the same mix of requests, completions per second × workers.
 *
 * Modes:
 * - `direct`: no caps, no router queue: every request goes at once to the least-loaded engine,
 *   whose own FCFS queue grows (the router without `max_inflight`);
 * - `reject`: `max_inflight` per worker (default 16), no queue: a request finding every worker
 *   full is answered 503 at once (today's router with caps);
 * - `queue`: `max_inflight` per worker and the router queue (`AdmissionQueue`) with the defaults
 *   of `flow.queue`: strict priority, DRR across tenants, `order: adaptive`; max wait = the
 *   class's TTFT target (1 s, 10 s), 429 when shed;
 * - `queue_fcfs`: the same with `order: fcfs` in both classes (oldest first: under sustained
 *   overload it sends only requests that already waited about their max wait, so late);
 * - `queue_lifo`: the same with `order: lifo` (newest first: fresh requests go, the oldest time
 *   out; but a burst that drains is served newest first too);
 * - `queue_no_drr`: the defaults with one tenant key for all (what DRR adds, measured).
 *
 * Figures per mode, class and tenant: TTFT p50/p95 of the requests that got a first token (from
 * arrival at the router, queue wait included), the router-side wait p95, the number that got a
 * first token, the share of the requests sent whose TTFT met their class's target (a class "meets
 * its target" when that share is at least 95 %), goodput (requests meeting the target, per second
 * of the arrival window) and the requests lost by reason. Deterministic for a seed.
 *
 * @module
 */

import { percentile } from "../bench/stats.ts";
import { getProfile } from "../sim/profiles.ts";
import type { EngineParams } from "../sim/types.ts";
import { SeededRng } from "../util/rng.ts";
import { AdmissionQueue } from "./admission_queue.ts";
import { SimFleet, type SimRequest } from "./overload_fleet.ts";
import { VirtualScheduler } from "./scheduler.ts";
import { resolveFlowConfig } from "./section.ts";
import type { Admission, FlowQueueConfig } from "./types.ts";

/** Size of the requests of one class. */
export interface RequestKind {
  readonly promptTokens: number;
  readonly maxTokens: number;
  /** TTFT a request must meet to count towards goodput, ms. */
  readonly ttftTargetMs: number;
}

/** One open-loop arrival stream. */
export interface OverloadStream {
  readonly tenant: string;
  readonly className: string;
  /** Arrival rate as a share of the measured fleet capacity (times `overload`). */
  readonly share: number;
}

/** How the router handles the load. */
export type OverloadMode =
  | "direct"
  | "reject"
  | "queue"
  | "queue_fcfs"
  | "queue_lifo"
  | "queue_no_drr";

/** Every mode, in the order the default run reports them. */
export const MODES: readonly OverloadMode[] = [
  "direct",
  "reject",
  "queue",
  "queue_fcfs",
  "queue_lifo",
  "queue_no_drr",
];

/** Class order each queue mode forces (the others keep the config's). */
const MODE_ORDER: Partial<Record<OverloadMode, "fcfs" | "lifo">> = {
  queue_fcfs: "fcfs",
  queue_lifo: "lifo",
};

/** Options of {@linkcode runOverload}; every field has a default (see the module comment). */
export interface OverloadOptions {
  readonly workers?: number;
  readonly profile?: string;
  readonly params?: Partial<EngineParams>;
  readonly durationMs?: number;
  /** Multiplies every stream's share. Default 1. */
  readonly overload?: number;
  readonly streams?: readonly OverloadStream[];
  readonly kinds?: Readonly<Record<string, RequestKind>>;
  /** `max_inflight` per worker in the `reject` and `queue` modes. Default 16. */
  readonly maxInflight?: number;
  /** The router queue's config; default: `flow.queue` with the two classes above. */
  readonly queue?: FlowQueueConfig;
  readonly clientTimeoutMs?: number;
  readonly seed?: number;
  readonly modes?: readonly OverloadMode[];
}

/** Figures of one class (or one tenant's part of it) in one mode. */
export interface ClassFigures {
  readonly sent: number;
  /** Requests that got a first token. */
  readonly served: number;
  readonly ttftP50Ms: number;
  readonly ttftP95Ms: number;
  /** Router-side wait (arrival to dispatch) of the dispatched requests, p95, ms. */
  readonly queueWaitP95Ms: number;
  /** Requests meeting the class's TTFT target, per second of the arrival window. */
  readonly goodputPerS: number;
  /** Share of the requests sent that met their class's TTFT target (0..1). */
  readonly metTargetShare: number;
  /** Requests that did not finish, by reason (`client_timeout`, `no_worker`, queue sheds). */
  readonly lost: Readonly<Record<string, number>>;
}

/** Figures of one mode. */
export interface ModeFigures {
  readonly mode: OverloadMode;
  readonly classes: Readonly<Record<string, ClassFigures>>;
  /** By `tenant/class`. */
  readonly streams: Readonly<Record<string, ClassFigures>>;
  readonly goodputPerS: number;
  /** Largest engine queue (waiting sequences) seen on any worker. */
  readonly maxEngineWaiting: number;
  /** Largest router queue depth seen (queue mode). */
  readonly maxQueueDepth: number;
  /** Requests still queued, in transit or in flight after the run: 0 unless something leaked. */
  readonly leftover: number;
}

/** What {@linkcode runOverload} returns. */
export interface OverloadResult {
  /** Measured fleet capacity on the request mix, requests/s. */
  readonly capacityPerS: number;
  /** Total arrival rate, requests/s. */
  readonly arrivalPerS: number;
  readonly maxInflight: number;
  readonly modes: readonly ModeFigures[];
}

const DEFAULT_KINDS: Readonly<Record<string, RequestKind>> = {
  interactive: { promptTokens: 512, maxTokens: 64, ttftTargetMs: 1000 },
  batch: { promptTokens: 2048, maxTokens: 256, ttftTargetMs: 10_000 },
};

/** The load shapes of the module comment. */
export const SCENARIOS: Readonly<Record<string, readonly OverloadStream[]>> = {
  flood: [
    { tenant: "alice", className: "interactive", share: 0.1 },
    { tenant: "mallory", className: "interactive", share: 2.0 },
    { tenant: "mallory", className: "batch", share: 0.5 },
  ],
  priority: [
    { tenant: "alice", className: "interactive", share: 0.1 },
    { tenant: "mallory", className: "interactive", share: 0.7 },
    { tenant: "mallory", className: "batch", share: 1.2 },
  ],
};

const DEFAULT_STREAMS = SCENARIOS.flood;

/**
 * The experiment's queue: `flow.queue` defaults, `max_total` 4000, max waits by class (default:
 * each class's TTFT target, 1 s and 10 s: a request that waited longer can only be late).
 */
export function overloadQueue(
  maxWait: Readonly<Record<string, string>> = { interactive: "1s", batch: "10s" },
): FlowQueueConfig {
  const { value, errors } = resolveFlowConfig({
    queue: {
      max_total: 4000,
      classes: [
        { name: "interactive", rank: 10, max_wait: maxWait.interactive ?? "1s" },
        { name: "batch", rank: 0, max_wait: maxWait.batch ?? "10s", sheddable: true },
      ],
    },
  });
  if (value === null) throw new Error(errors.join("; "));
  return value.queue;
}

interface Resolved {
  readonly workers: number;
  readonly params: EngineParams;
  readonly durationMs: number;
  readonly overload: number;
  readonly streams: readonly OverloadStream[];
  readonly kinds: Readonly<Record<string, RequestKind>>;
  readonly maxInflight: number;
  readonly queue: FlowQueueConfig;
  readonly clientTimeoutMs: number;
  readonly seed: number;
}

function resolve(o: OverloadOptions): Resolved {
  const workers = o.workers ?? 4;
  if (!Number.isInteger(workers) || workers < 1) {
    throw new RangeError(`workers must be a positive integer, got ${workers}`);
  }
  const streams = o.streams ?? DEFAULT_STREAMS;
  const kinds = o.kinds ?? DEFAULT_KINDS;
  for (const s of streams) {
    if (kinds[s.className] === undefined) {
      throw new RangeError(`stream ${s.tenant}/${s.className} has no request kind`);
    }
  }
  return {
    workers,
    params: { ...getProfile(o.profile ?? "a100-7b").params, ...o.params },
    durationMs: o.durationMs ?? 60_000,
    overload: o.overload ?? 1,
    streams,
    kinds,
    maxInflight: o.maxInflight ?? 16,
    queue: o.queue ?? overloadQueue(),
    clientTimeoutMs: o.clientTimeoutMs ?? 30_000,
    seed: o.seed ?? 1,
  };
}

/**
 * Completions per second of the fleet kept full: one engine with `max_num_seqs` requests in
 * flight (closed loop), request kinds in proportion to the streams' shares, × workers.
 */
export function measureCapacity(opts: OverloadOptions = {}): number {
  const o = resolve(opts);
  const sched = new VirtualScheduler();
  const fleet = new SimFleet(sched, o.params, 1);
  // Kinds in proportion to the shares, by a deterministic weighted round robin.
  const total = o.streams.reduce((a, s) => a + s.share, 0);
  const credit = o.streams.map(() => 0);
  let id = 0;
  const next = (): SimRequest => {
    for (let i = 0; i < credit.length; i++) credit[i] += o.streams[i].share / total;
    let best = 0;
    for (let i = 1; i < credit.length; i++) if (credit[i] > credit[best]) best = i;
    credit[best] -= 1;
    const s = o.streams[best];
    const k = o.kinds[s.className];
    return newRequest(id++, s, k, sched.now());
  };
  let done = 0;
  let warmAt = -1;
  const warm = 500;
  const measure = 3000;
  fleet.onFree = () => {
    done++;
    if (done === warm) warmAt = sched.now();
    if (done < warm + measure) fleet.submit(0, next());
  };
  for (let i = 0; i < o.params.maxNumSeqs; i++) fleet.submit(0, next());
  while (done < warm + measure && sched.pending > 0) sched.run(1);
  return (measure / (sched.now() - warmAt)) * 1000 * o.workers;
}

/** Runs the experiment (see the module comment); deterministic for a seed. */
export function runOverload(opts: OverloadOptions = {}): OverloadResult {
  const o = resolve(opts);
  const capacityPerS = measureCapacity(opts);
  const arrivals = arrivalsOf(o, capacityPerS);
  const modes = (opts.modes ?? MODES).map((m) => runMode(o, m, arrivals));
  return {
    capacityPerS,
    arrivalPerS: (arrivals.length / o.durationMs) * 1000,
    maxInflight: o.maxInflight,
    modes,
  };
}

interface Arrival {
  readonly t: number;
  readonly stream: OverloadStream;
}

function arrivalsOf(o: Resolved, capacityPerS: number): Arrival[] {
  const rng = new SeededRng(o.seed);
  const out: Arrival[] = [];
  for (const stream of o.streams) {
    const perMs = (stream.share * o.overload * capacityPerS) / 1000;
    if (!(perMs > 0)) continue;
    for (let t = -Math.log(1 - rng.next()) / perMs; t < o.durationMs;) {
      out.push({ t, stream });
      t += -Math.log(1 - rng.next()) / perMs;
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

function newRequest(id: number, s: OverloadStream, k: RequestKind, now: number): SimRequest {
  return {
    id,
    tenant: s.tenant,
    className: s.className,
    promptTokens: k.promptTokens,
    maxTokens: k.maxTokens,
    arrivedAt: now,
    worker: -1,
    seq: -1,
    dispatchedAt: null,
    firstAt: null,
    doneAt: null,
    outcome: null,
  };
}

function runMode(o: Resolved, mode: OverloadMode, arrivals: readonly Arrival[]): ModeFigures {
  const sched = new VirtualScheduler();
  const fleet = new SimFleet(sched, o.params, o.workers);
  const cap = mode === "direct" ? 0 : o.maxInflight;
  const order = MODE_ORDER[mode];
  const queue = !mode.startsWith("queue") ? null : new AdmissionQueue({
    config: order === undefined ? o.queue : {
      ...o.queue,
      classes: o.queue.classes.map((c) => ({ ...c, order })),
    },
    scheduler: sched,
    capacity: () => fleet.free(cap),
  });
  const requests: SimRequest[] = [];
  let maxEngineWaiting = 0;
  let maxQueueDepth = 0;
  fleet.onFree = () => queue?.onCapacity();

  const dispatch = (r: SimRequest): boolean => {
    const w = fleet.pick(cap);
    if (w < 0) return false;
    fleet.submit(w, r);
    return true;
  };
  const arrive = (a: Arrival) => {
    const r = newRequest(requests.length, a.stream, o.kinds[a.stream.className], sched.now());
    requests.push(r);
    const ac = new AbortController();
    sched.at(r.arrivedAt + o.clientTimeoutMs, () => {
      if (r.firstAt !== null || r.outcome !== null) return;
      r.outcome = "client_timeout";
      ac.abort(); // a queued request leaves the queue
      fleet.cancel(r); // a dispatched one leaves its engine
    });
    if (queue === null) {
      if (!dispatch(r)) r.outcome = "no_worker";
      return;
    }
    if (queue.waitingAhead(r.className) === 0 && dispatch(r)) return;
    // queue_no_drr: one tenant key for all, so DRR has nothing to share.
    const tenant = mode === "queue_no_drr" ? "all" : r.tenant;
    queue.submit({ class: r.className, tenant, signal: ac.signal }, (adm: Admission) => {
      if (!adm.ok) {
        r.outcome ??= adm.reason;
        return;
      }
      // In virtual time nothing runs between the wake-up and here: a slot is free.
      if (dispatch(r)) adm.started();
      else adm.requeueThen(() => {});
    });
    maxQueueDepth = Math.max(maxQueueDepth, queue.depth);
  };

  for (const a of arrivals) sched.at(a.t, () => arrive(a));
  // Sample engine queues every 500 ms of the window.
  for (let t = 0; t <= o.durationMs; t += 500) {
    sched.at(t, () => {
      for (const d of fleet.engineDepths()) {
        maxEngineWaiting = Math.max(maxEngineWaiting, d.waiting);
      }
    });
  }
  sched.run();
  return {
    mode,
    ...figures(o, requests),
    maxEngineWaiting,
    maxQueueDepth,
    leftover: (queue?.depth ?? 0) + (queue?.inTransit ?? 0) +
      fleet.inflight.reduce((a, b) => a + b, 0),
  };
}

function figures(
  o: Resolved,
  requests: readonly SimRequest[],
): Pick<ModeFigures, "classes" | "streams" | "goodputPerS"> {
  const group = (key: (r: SimRequest) => string) => {
    const m = new Map<string, SimRequest[]>();
    for (const r of requests) {
      const k = key(r);
      const list = m.get(k);
      if (list) list.push(r);
      else m.set(k, [r]);
    }
    const out: Record<string, ClassFigures> = {};
    for (const [k, rs] of m) out[k] = classFigures(o, rs);
    return out;
  };
  const classes = group((r) => r.className);
  let goodput = 0;
  for (const c of Object.values(classes)) goodput += c.goodputPerS;
  return { classes, streams: group((r) => `${r.tenant}/${r.className}`), goodputPerS: goodput };
}

function classFigures(o: Resolved, rs: readonly SimRequest[]): ClassFigures {
  const ttft: number[] = [];
  const waits: number[] = [];
  const lost: Record<string, number> = {};
  let good = 0;
  for (const r of rs) {
    if (r.dispatchedAt !== null) waits.push(r.dispatchedAt - r.arrivedAt);
    if (r.firstAt !== null) {
      const t = r.firstAt - r.arrivedAt;
      ttft.push(t);
      if (t <= o.kinds[r.className].ttftTargetMs) good++;
    }
    if (r.outcome !== "done") {
      const why = r.outcome ?? "unfinished";
      lost[why] = (lost[why] ?? 0) + 1;
    }
  }
  return {
    sent: rs.length,
    served: ttft.length,
    ttftP50Ms: percentile(ttft, 50),
    ttftP95Ms: percentile(ttft, 95),
    queueWaitP95Ms: percentile(waits, 95),
    goodputPerS: (good / o.durationMs) * 1000,
    metTargetShare: rs.length === 0 ? 1 : good / rs.length,
    lost,
  };
}

/** The result as a text table. */
export function formatOverload(r: OverloadResult): string {
  const lines = [
    `capacity ${r.capacityPerS.toFixed(1)} req/s, arrivals ${r.arrivalPerS.toFixed(1)} req/s ` +
    `(${(r.arrivalPerS / r.capacityPerS).toFixed(2)}x), max_inflight ${r.maxInflight}`,
    "mode         stream                 sent  served  TTFT p50  TTFT p95  wait p95  met  goodput/s  lost",
  ];
  const row = (mode: string, name: string, c: ClassFigures) => {
    const lost = Object.entries(c.lost).map(([k, v]) => `${k}=${v}`).join(" ");
    lines.push(
      `${mode.padEnd(12)} ${name.padEnd(21)} ${String(c.sent).padStart(5)} ` +
        `${String(c.served).padStart(7)} ${fmt(c.ttftP50Ms).padStart(9)} ` +
        `${fmt(c.ttftP95Ms).padStart(9)} ${fmt(c.queueWaitP95Ms).padStart(9)} ` +
        `${(Math.round(c.metTargetShare * 100) + "%").padStart(4)} ` +
        `${c.goodputPerS.toFixed(1).padStart(10)}  ${lost}`,
    );
  };
  for (const m of r.modes) {
    for (const [k, c] of Object.entries(m.classes)) row(m.mode, k, c);
    for (const [k, c] of Object.entries(m.streams)) row(m.mode, `  ${k}`, c);
    lines.push(
      `${m.mode.padEnd(12)} goodput ${m.goodputPerS.toFixed(1)} req/s, largest engine queue ` +
        `${m.maxEngineWaiting}, largest router queue ${m.maxQueueDepth}, leftover ${m.leftover}`,
    );
  }
  lines.push("(times in ms; wait = arrival to dispatch; met = share of sent within TTFT target)");
  return lines.join("\n");
}

function fmt(n: number): string {
  return Number.isFinite(n) ? n.toFixed(0) : "-";
}
