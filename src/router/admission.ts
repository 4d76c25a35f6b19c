/**
 * Flow control in the router: who a request is (priority class, tenant), its tenant's limits, and
 * a wait in the router queue while no worker serving its model can take it. The glue between the
 * request stages and `src/flow` (`AdmissionQueue`, `TenantLimits`); docs/flow-control.md.
 *
 * Per request, one {@link FlowTicket} (`FlowControl.ticket()`; with flow control off a shared one
 * that does nothing, so the pipeline is what it was: 503 at once when no worker is admitted):
 * 1. `admit` after parse: the class named by `flow.queue.class_header` or else the body's
 *    `class_field` (unknown: 400 `invalid_priority`); the tenant (`tenants.source`: the bearer
 *    key's fingerprint `key:<FNV-1a 64 hex>`, never the key itself, or a header's value); its
 *    limits (429 with `Retry-After`). Then it waits in its model's queue when no candidate
 *    worker is free, or when requests of its class or a higher one for that model wait or are
 *    on their way to a worker (it would overtake them); else it goes on at once.
 *    A wait ends dispatched, or shed: 429 with `Retry-After` (full, displaced, waited
 *    `max_wait`), 503 (the queue closed at shutdown), 499 (the client left: it never reaches a
 *    worker).
 * 2. `wait` when `choose` then finds no worker after all (another request took the slot, or
 *    raced this one since `admit`): a dispatched request goes back to the front of its tenant's
 *    flow, one that went on at once joins the queue; a later wake-up lets it go again.
 * 3. `started` right after `Attempt.begin` (the worker's in-flight count holds it now), `hold`
 *    before the relay (the tenant's permit is held until that attempt settles), `end` when the
 *    proxy returns (everything not held is let go: a dispatch never started, the permit).
 *
 * One queue per served model (`plan.served`; null: a fleet whose models are unknown), created on
 * first use and dropped when empty: a request for one model must not wait behind another model's
 * requests, nor be woken by a slot it cannot use. A queue's capacity is the free slots of the
 * workers serving its model (`max_inflight − inflight` per worker that is up with a closed
 * breaker, Infinity without a cap, 1 for a breaker whose probe is free), less the requests other
 * queues have in transit when the free slots of the whole fleet are fewer (shared workers); the
 * queues share one `max_total` and displace across models. A wake-up (`freed`) goes to the queues
 * by the rank of their highest waiting class, so a slot of a worker serving two models goes to
 * the higher class; a request that loses the race anyway requeues.
 *
 * Wake-ups: an attempt settled (in-flight down), a breaker closed, a health check found a worker
 * up, a worker's models were learned, a reload, and a periodic tick ({@link TICK_MS}: a breaker's
 * cooldown ends without an event, nor does an engine's queue drain).
 *
 * The engines' own queue depth counts too (`flow.queue.engine_max_waiting`, default 5; 0 = off;
 * `engine_gate.ts`): a worker whose engine's fresh scraped figures (`health.scrape_metrics`) show
 * that many requests waiting has no free slot and is no candidate of a first attempt, so requests
 * wait here, in priority and fair order, rather than in the engine's FIFO. Stale or absent
 * figures are ignored: the worker counts by `max_inflight` alone.
 *
 * Cost with flow control on: a header read, one class lookup, one tenant-limit check and, when
 * nothing waits and a worker is free, nothing else; a wait is O(1) in the queue plus one
 * capacity scan over the workers per dispatch. With it off: nothing.
 *
 * @module
 */

import type { Registry } from "prom-client";
import type { Reply, ServerRequest } from "../http/types.ts";
import {
  type Admission,
  AdmissionQueue,
  classOf,
  type Dispatched,
  type FlowConfig,
  type FlowStats,
  OTHER_TENANT,
  realScheduler,
  type Scheduler,
  type Shed,
  tenantKey,
  TenantLimits,
  type TenantPermit,
  type TenantsConfig,
} from "../flow/mod.ts";
import { FlowMetrics } from "../metrics/flow_metrics.ts";
import { fnv1a64Hex } from "../prefix/mod.ts";
import type { HeaderList } from "../proxy/headers.ts";
import type { Clock } from "../util/clock.ts";
import { errorReply } from "../util/errors.ts";
import type { Attempt } from "./attempt.ts";
import { anyCandidate } from "./choose.ts";
import { engineSaturated, type Gate } from "./engine_gate.ts";
import { anyServes, servesModel } from "./models.ts";
import type { RequestPlan } from "./plan.ts";
import type { Backend } from "./pool.ts";
import { type RequestLog, round } from "./settle.ts";

/** Period of the wake-up tick while requests wait, ms. */
export const TICK_MS = 250;

/** What the proxy asks of flow control for one request; see the module comment. */
export interface FlowTicket {
  /** After parse: null to go on (a worker may be chosen now), or the router's refusal. */
  admit(
    req: ServerRequest,
    plan: RequestPlan,
    log: RequestLog,
  ): Reply | null | Promise<Reply | null>;
  /** Whether the request may still wait in the router queue (flow control on, not started). */
  readonly waits: boolean;
  /**
   * `choose` found no worker (another request took it, or raced it since `admit`): waits in the
   * queue (again: a dispatched request goes back to the front of its tenant's flow); null to
   * choose again, or the refusal.
   */
  wait(log: RequestLog): Promise<Reply | null>;
  /** The first attempt began: a dispatch is over, the request counted as admitted. */
  started(): void;
  /** The reply streams from `att`: the tenant's permit is given back when it settles. */
  hold(att: Attempt): void;
  /** The proxy returned: lets go of what is not held. Idempotent. */
  end(): void;
}

/** What flow control would do with a request (`FlowControl.dryRun`). */
export type FlowDryRun =
  | {
    readonly ok: true;
    readonly className: string;
    /** Whether it would wait in the router queue rather than go on at once. */
    readonly wait: boolean;
    /** Requests of its class or a higher one waiting for its model now. */
    readonly ahead: number;
  }
  | { readonly ok: false; readonly message: string; readonly param: string };

/** The ticket of a router without flow control. */
const OFF_TICKET: FlowTicket = {
  admit: () => null,
  waits: false,
  wait: () => Promise.resolve(null),
  started() {},
  hold() {},
  end() {},
};

/** Options of {@linkcode FlowControl}. */
export interface FlowControlOptions {
  /** The router's current workers (read at each capacity check). */
  readonly backends: () => readonly Backend[];
  /** Where the flow metrics are registered (when flow control is first turned on). */
  readonly registry: Registry;
  /** Clock of the tenant limits' buckets (the router's). */
  readonly clock: Clock;
  /** Time and timers of the queues; default `realScheduler()`. */
  readonly scheduler?: Scheduler;
}

/** The tenant id of a bearer key: `key:` and the FNV-1a 64 hash of the key, in hex. */
export function apiKeyTenant(key: string): string {
  return `key:${fnv1a64Hex(key)}`;
}

/** The tenant of `req` by `tenants.source` (see the module comment), bounded by `tenantKey`. */
export function tenantOf(req: ServerRequest, tenants: TenantsConfig): string {
  if (tenants.source === "header") return tenantKey(req.header(tenants.header) ?? "");
  const auth = req.header("authorization");
  const m = auth === null ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
  return m === null ? tenantKey("") : apiKeyTenant(m[1]);
}

/**
 * Free slots of `b` for the queue (see the module comment); none while `held` (the engine gate)
 * holds it back.
 */
export function freeSlots(b: Backend, held: Gate | null = null): number {
  if (!b.up || held?.(b)) return 0;
  const max = b.config.maxInflight;
  const room = max > 0 ? Math.max(0, max - b.inflight) : Infinity;
  if (b.breaker.state === "closed") return room;
  return b.breaker.canAdmit() ? Math.min(1, room) : 0;
}

/** The router's flow control: its queues (one per served model) and tenant limits. */
export class FlowControl {
  readonly #backends: () => readonly Backend[];
  readonly #registry: Registry;
  readonly #clock: Clock;
  readonly #sched: Scheduler;
  readonly #queues = new Map<string | null, AdmissionQueue>();
  /** Tickets whose permit is held until their relayed attempt settles. */
  readonly #held = new Map<Attempt, Ticket>();
  #config: FlowConfig | null = null;
  #limits: TenantLimits | null = null;
  #metrics: FlowMetrics | null = null;
  #gate: Gate | null = null;
  #tick: ReturnType<typeof setInterval> | undefined;

  constructor(config: FlowConfig | null, opts: FlowControlOptions) {
    this.#backends = opts.backends;
    this.#registry = opts.registry;
    this.#clock = opts.clock;
    this.#sched = opts.scheduler ?? realScheduler();
    this.update(config);
  }

  /** Whether flow control is on. */
  get enabled(): boolean {
    return this.#config !== null;
  }

  /**
   * The engine gate (`engine_gate.ts`) while flow control is on and `engine_max_waiting` > 0:
   * whether a worker's engine reports so many requests waiting that a new one should wait here.
   */
  get engineGate(): Gate | null {
    return this.#gate;
  }

  /** Requests waiting in every queue. */
  get depth(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.depth;
    return n;
  }

  /** Requests let go by a queue that have not reached a worker yet. */
  get inTransit(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.inTransit;
    return n;
  }

  /** Queues that exist now (one per served model that had to wait recently). */
  get queues(): number {
    return this.#queues.size;
  }

  /** A snapshot of each queue, for metrics and the operator. */
  stats(): FlowStats[] {
    return [...this.#queues.values()].map((q) => q.stats());
  }

  /** Each queue's served model (null: models unknown) and snapshot, for `/debug/workers`. */
  snapshot(): { model: string | null; stats: FlowStats }[] {
    return [...this.#queues].map(([model, q]) => ({ model, stats: q.stats() }));
  }

  /** A new request's ticket. */
  ticket(): FlowTicket {
    const config = this.#config;
    const limits = this.#limits;
    if (config === null || limits === null) return OFF_TICKET;
    return new Ticket(this, config, limits);
  }

  /** Capacity may have freed: wakes the queues, highest waiting class first. */
  freed(): void {
    if (this.#queues.size === 0) return;
    let waiting: AdmissionQueue[] | null = null;
    for (const q of this.#queues.values()) if (q.depth > 0) (waiting ??= []).push(q);
    if (waiting === null) return;
    if (waiting.length > 1) waiting.sort((a, b) => b.topRank - a.topRank);
    for (const q of waiting) q.onCapacity();
  }

  /** `Attempt.settle`'s call: a held permit is given back, and capacity freed. */
  settled(att: Attempt): void {
    if (this.#held.size > 0) {
      const t = this.#held.get(att);
      if (t !== undefined) {
        this.#held.delete(att);
        t.release();
      }
    }
    this.freed();
  }

  /**
   * Takes a reloaded `flow` section: queues and limits take the new bounds (a removed class's
   * waiting requests get 503); null turns flow control off for new requests, while those waiting
   * still wait their turn.
   */
  update(config: FlowConfig | null): void {
    this.#config = config;
    const max = config?.queue.engineMaxWaiting ?? 0;
    this.#gate = max > 0 ? (b) => engineSaturated(b, max, this.#clock.now()) : null;
    if (config === null) {
      this.#limits = null;
    } else {
      if (this.#limits === null) this.#limits = new TenantLimits(config.tenants, this.#clock);
      else this.#limits.update(config.tenants);
      for (const q of this.#queues.values()) q.update(config.queue);
      this.#metrics ??= new FlowMetrics(this.#registry, {
        queues: () => this.stats(),
        classes: () => this.#config?.queue.classes.map((c) => c.name) ?? [],
        tenants: () => this.#limits?.stats() ?? null,
      });
    }
    this.freed();
  }

  /** Starts the wake-up tick (it also drops empty queues). */
  start(): void {
    if (this.#tick !== undefined) return;
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
    Deno.unrefTimer(this.#tick);
  }

  /** Stops the tick; waiting requests are still woken by capacity events. */
  stop(): void {
    clearInterval(this.#tick);
    this.#tick = undefined;
  }

  /** Shutdown: every waiting request gets 503, and new ones cannot wait. Idempotent. */
  close(): void {
    this.stop();
    for (const q of this.#queues.values()) q.close();
  }

  #onTick(): void {
    this.freed();
    for (const [model, q] of this.#queues) {
      if (q.depth === 0 && q.inTransit === 0) {
        q.close();
        this.#queues.delete(model);
      }
    }
  }

  /**
   * Whether a request of `className` for `served` must wait: no candidate worker is free, or
   * requests of its class or a higher one wait or are in transit for that model.
   */
  mustWait(served: string | null, className: string): boolean {
    const q = this.#queues.get(served);
    if (q !== undefined && (q.inTransit > 0 || q.waitingAhead(className) > 0)) return true;
    return !anyCandidate(this.#backends(), NONE, served, this.#gate);
  }

  /**
   * `/debug/route`'s dry run: the request's class and whether it would wait in the router queue
   * now (see `mustWait`), or its 400 for an unknown priority; null while flow control is off.
   * Tenant limits are not consulted (that would spend the tenant's tokens).
   */
  dryRun(req: ServerRequest, plan: RequestPlan): FlowDryRun | null {
    const config = this.#config;
    if (config === null) return null;
    const q = config.queue;
    const header = q.classHeader === "" ? null : req.header(q.classHeader);
    const c = classOf(header ?? plan.classValue, q);
    if (!c.ok) {
      return {
        ok: false,
        message: c.message,
        param: header !== null ? q.classHeader : q.classField,
      };
    }
    const ahead = this.#queues.get(plan.served)?.waitingAhead(c.className) ?? 0;
    return {
      ok: true,
      className: c.className,
      wait: this.mustWait(plan.served, c.className),
      ahead,
    };
  }

  /** The queue of `served`, created when needed. */
  queueFor(served: string | null, config: FlowConfig): AdmissionQueue {
    let q = this.#queues.get(served);
    if (q !== undefined) return q;
    const metrics = this.#metrics;
    q = new AdmissionQueue({
      config: config.queue,
      scheduler: this.#sched,
      capacity: () => this.#capacityOf(served),
      weightOf: (t) => this.#limits?.weightOf(t) ?? 1,
      labelOf: (t) => this.#limits?.labelOf(t) ?? OTHER_TENANT,
      observer: metrics === null ? undefined : {
        dispatched: (c, _label, waitedMs) => metrics.dispatched(c, waitedMs),
        shed: (c, label, reason, waitedMs) => metrics.shed(c, label, reason, waitedMs),
      },
      shared: { depth: () => this.depth, displace: (c) => this.#displace(c) },
    });
    this.#queues.set(served, q);
    return q;
  }

  /** Holds `t`'s permit until `att` settles. */
  hold(att: Attempt, t: Ticket): void {
    this.#held.set(att, t);
  }

  /** Counts a request flow control let through (its first attempt began). */
  admitted(className: string, label: string, queued: boolean): void {
    this.#metrics?.admitted(className, label, queued);
  }

  /** Counts a request refused on arrival (tenant limits). */
  refused(className: string, shed: Shed, label: string): void {
    this.#metrics?.shed(className, label, shed.reason, 0);
  }

  #capacityOf(served: string | null): number {
    const backends = this.#backends();
    const known = anyServes(backends, served);
    let mine = 0;
    let all = 0;
    for (const b of backends) {
      const f = freeSlots(b, this.#gate);
      if (f === 0) continue;
      all += f;
      if (servesModel(b, served, known)) mine += f;
    }
    let others = 0;
    for (const [model, q] of this.#queues) if (model !== served) others += q.inTransit;
    return Math.min(mine, all - others);
  }

  /** Makes room in the shared bound: the lowest-ranked sheddable request below `className`. */
  #displace(className: string): boolean {
    let best: AdmissionQueue | null = null;
    let bestRank = Infinity;
    for (const q of this.#queues.values()) {
      const r = q.sheddableRank(className);
      if (r !== null && r < bestRank) {
        best = q;
        bestRank = r;
      }
    }
    return best !== null && best.displace(className);
  }
}

/** One request's way through flow control; see `FlowTicket`. */
class Ticket implements FlowTicket {
  readonly #flow: FlowControl;
  readonly #config: FlowConfig;
  readonly #limits: TenantLimits;
  #plan: RequestPlan | null = null;
  #signal: AbortSignal | null = null;
  #className = "";
  #tenant = "";
  #label = OTHER_TENANT;
  #permit: TenantPermit | null = null;
  #adm: Dispatched | null = null;
  #waited = false;
  #started = false;
  #held = false;

  constructor(flow: FlowControl, config: FlowConfig, limits: TenantLimits) {
    this.#flow = flow;
    this.#config = config;
    this.#limits = limits;
  }

  get waits(): boolean {
    return this.#plan !== null && !this.#started;
  }

  admit(
    req: ServerRequest,
    plan: RequestPlan,
    log: RequestLog,
  ): Reply | null | Promise<Reply | null> {
    const q = this.#config.queue;
    const header = q.classHeader === "" ? null : req.header(q.classHeader);
    const c = classOf(header ?? plan.classValue, q);
    if (!c.ok) {
      log.write(() => ({ status: 400, error: c.message }));
      return errorReply("bad_request", c.message, {
        param: header !== null ? q.classHeader : q.classField,
        code: "invalid_priority",
        headers: [["x-request-id", plan.requestId]],
      });
    }
    this.#plan = plan;
    this.#signal = req.signal;
    this.#className = c.className;
    this.#tenant = tenantOf(req, this.#config.tenants);
    this.#label = this.#limits.labelOf(this.#tenant);
    const lim = this.#limits.admit(this.#tenant);
    if (!lim.ok) {
      this.#plan = null; // refused: it does not wait
      this.#flow.refused(this.#className, lim, this.#label);
      return this.#shedReply(lim, plan.requestId, log);
    }
    this.#permit = lim.permit;
    return this.#flow.mustWait(plan.served, this.#className) ? this.wait(log) : null;
  }

  async wait(log: RequestLog): Promise<Reply | null> {
    const plan = this.#plan!;
    const adm = this.#adm;
    this.#adm = null;
    let a: Admission;
    if (adm !== null) {
      a = await adm.requeue();
    } else {
      const queue = this.#flow.queueFor(plan.served, this.#config);
      const cost = this.#config.queue.fairCost === "prompt_tokens"
        ? Math.max(1, Math.ceil(plan.promptTokens))
        : 1;
      const pending = queue.enqueue({
        class: this.#className,
        tenant: this.#tenant,
        cost,
        signal: this.#signal ?? undefined,
      });
      // A slot may be free already (the request only waited its turn behind others in transit).
      queue.onCapacity();
      a = await pending;
    }
    this.#waited = true;
    if (!a.ok) {
      this.#plan = null;
      return this.#shedReply(a, plan.requestId, log);
    }
    this.#adm = a;
    return null;
  }

  started(): void {
    if (this.#started || this.#plan === null) return;
    this.#started = true;
    this.#adm?.started();
    this.#adm = null;
    this.#flow.admitted(this.#className, this.#label, this.#waited);
  }

  hold(att: Attempt): void {
    if (this.#permit === null) return;
    this.#held = true;
    this.#flow.hold(att, this);
  }

  end(): void {
    this.#adm?.started();
    this.#adm = null;
    if (!this.#held) this.release();
  }

  /** Gives the tenant's permit back. Idempotent. */
  release(): void {
    this.#permit?.release();
    this.#permit = null;
  }

  #shedReply(s: Shed, requestId: string, log: RequestLog): Reply {
    this.release();
    log.write(() => ({
      status: s.status,
      error: s.message,
      flow_shed: s.reason,
      flow_class: this.#className,
      flow_tenant: this.#label,
      queue_wait_ms: round(s.waitedMs),
    }));
    const headers: HeaderList = [["x-request-id", requestId]];
    if (s.retryAfterS !== null) headers.push(["retry-after", String(s.retryAfterS)]);
    if (s.status === 429) return errorReply("rate_limited", s.message, { headers, code: s.reason });
    if (s.status === 503) {
      return errorReply("no_worker", s.message, { headers, code: "queue_closed" });
    }
    // 499: the client left; nobody reads this.
    return errorReply("bad_request", "Client closed request", { headers });
  }
}

const NONE: ReadonlySet<Backend> = new Set();
