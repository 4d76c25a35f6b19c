/**
 * The router queue: requests that found every worker full wait here, bounded, by priority, fair
 * across tenants, until capacity frees; then they go back to choose a worker.
 *
 * Order. Strict priority between classes: a request of a lower rank is dispatched only when no
 * higher-ranked class has one waiting (a lower class can starve under sustained overload; its max
 * wait then sheds it, with a `Retry-After`). Within a class, deficit round robin across tenants
 * (`fair_queue.ts`): a tenant flooding the class gets its share of the dispatches and no more, so
 * another tenant's request waits for at most one round of the others, whatever their backlog.
 * Within one tenant's flow, FCFS, LIFO or adaptive (`order`, per class): adaptive is FCFS while
 * the class's oldest request has waited less than {@link ADAPTIVE_LIFO_AFTER} of its max wait and
 * LIFO once it has waited longer, so a burst that drains is served in arrival order and a standing
 * queue serves the requests that can still be on time (measured in `overload.ts`).
 * A request's DRR cost is 1 by default (`fair_cost: requests`): what the queue hands out is a
 * dispatch slot, and `max_inflight` counts requests, not tokens, so one request = one slot is the
 * fair unit. `fair_cost: prompt_tokens` charges the router's estimate of the prompt (bytes ÷ 4)
 * instead, for fleets where long prompts (prefill) dominate; its quantum should then be about a
 * typical prompt (4096).
 *
 * Bounds and sheds (each answered by the owner, see `Shed.status`):
 * - `queue_full`: the class holds `max_queue` requests (`max_queue: 0`: the class never waits, it
 *   is shed at once when saturated, as llm-d sheds its sheddable band), or the whole queue holds
 *   `max_total` and no lower-ranked sheddable request can make room;
 * - `displaced`: the whole queue is full and a request of a higher rank arrives: the newest waiting
 *   request of the lowest-ranked sheddable class gives up its place;
 * - `timeout`: still waiting `max_wait` after arrival (checked by one timer per class, armed for
 *   the oldest request: deadlines within a class fall in arrival order);
 * - `aborted`: the client's signal fired: removed at once, never dispatched;
 * - `closed`: `close()` (shutdown), or the class was removed by `update`.
 * `Retry-After` comes from `retry_after.ts`.
 *
 * Dispatch. The owner calls `onCapacity()` (or `wake(n)`) whenever capacity may have freed: an
 * attempt settled, a breaker closed, a worker came up, a reload added workers. `onCapacity` lets
 * requests go while `capacity() − in transit > 0`; "in transit" counts dispatched requests that
 * have not yet called `started()` (found a worker) or `requeue()` (lost the race, back to the
 * front of their tenant's flow, cost refunded). Neither ever dispatches by itself: a wake-up comes
 * only from the owner, and one call lets each waiting request go at most once, so a request that
 * keeps losing races cannot spin.
 *
 * Queues may share one `max_total` (`shared`: the router's queues per served model): the bound
 * counts them all, and room is made by displacing the lowest-ranked sheddable request of any.
 *
 * Both forms of waiting run the same code: `enqueue` (a promise, the router) and `submit` (a
 * callback called synchronously at dispatch or shed, the virtual-time simulator).
 *
 * Cost per request: O(1) to enqueue, dispatch, abort or expire (cost 1), plus one abort listener
 * and a few small objects. Memory: bounded by `max_total` (and `max_queue` per class); tenant
 * labels for stats are bounded too ({@link MAX_LABELS}).
 *
 * @module
 */

import { FairQueue, unlinked } from "./fair_queue.ts";
import type { FairEntry } from "./fair_queue.ts";
import { DecayingRate, retryAfterSeconds } from "./retry_after.ts";
import {
  type Admission,
  type ClassStats,
  type Dispatched,
  type FlowClassConfig,
  type FlowObserver,
  type FlowQueueConfig,
  type FlowStats,
  type FlowTimer,
  OTHER_TENANT,
  type QueueRequest,
  type Scheduler,
  type Shed,
  SHED_REASONS,
  type ShedReason,
  type TenantStats,
} from "./types.ts";

/** Tenant labels the stats keep at most; more are counted as `other`. */
export const MAX_LABELS = 1000;

/** Share of a class's max wait after which `order: adaptive` turns to LIFO. */
export const ADAPTIVE_LIFO_AFTER = 0.5;

/** Queues sharing one `max_total` (see the module comment). */
export interface SharedBound {
  /** Requests waiting in all the queues. */
  depth(): number;
  /** Displaces a request ranked below `className` in one of the queues; false when none can go. */
  displace(className: string): boolean;
}

/** Options of {@linkcode AdmissionQueue}. */
export interface AdmissionQueueOptions {
  readonly config: FlowQueueConfig;
  readonly scheduler: Scheduler;
  /**
   * Requests that could be dispatched now: Σ over admitted workers of free slots (`max_inflight −
   * inflight`, Infinity for a worker without a cap). Needed by `onCapacity` only.
   */
  readonly capacity?: () => number;
  /** DRR weight of a tenant (> 0); default 1. */
  readonly weightOf?: (tenant: string) => number;
  /** Metric label of a tenant (its id when configured, else `other`); default `other`. */
  readonly labelOf?: (tenant: string) => string;
  readonly observer?: FlowObserver;
  /** The bound this queue shares with others; default: its own depth against `max_total`. */
  readonly shared?: SharedBound;
}

interface ClassState {
  config: FlowClassConfig;
  readonly queue: FairQueue<Entry>;
  readonly timer: FlowTimer;
  armedAt: number;
  removed: boolean;
  enqueued: number;
  dispatched: number;
  requeued: number;
  readonly shed: Record<ShedReason, number>;
}

interface Entry extends FairEntry {
  cls: ClassState;
  readonly label: string;
  readonly signal: AbortSignal | undefined;
  onAdmission: (a: Admission) => void;
  onAbort: (() => void) | null;
  state: "waiting" | "transit" | "done";
}

interface LabelCounts {
  depth: number;
  dispatched: number;
  shed: number;
}

/** The router queue; see the module comment. */
export class AdmissionQueue {
  readonly #sched: Scheduler;
  readonly #capacity: (() => number) | undefined;
  readonly #weightOf: (tenant: string) => number;
  readonly #labelOf: (tenant: string) => string;
  readonly #observer: FlowObserver;
  readonly #shared: SharedBound;
  readonly #rate = new DecayingRate();
  readonly #labels = new Map<string, LabelCounts>();
  #config: FlowQueueConfig;
  /** Classes by rank, highest first. */
  #classes: ClassState[] = [];
  readonly #byName = new Map<string, ClassState>();
  #depth = 0;
  #inTransit = 0;
  #closed = false;

  constructor(opts: AdmissionQueueOptions) {
    this.#sched = opts.scheduler;
    this.#capacity = opts.capacity;
    this.#weightOf = opts.weightOf ?? (() => 1);
    this.#labelOf = opts.labelOf ?? (() => OTHER_TENANT);
    this.#observer = opts.observer ?? {};
    this.#shared = opts.shared ?? {
      depth: () => this.#depth,
      displace: (className) => this.displace(className),
    };
    this.#config = opts.config;
    this.update(opts.config);
  }

  /** Requests waiting in all classes. */
  get depth(): number {
    return this.#depth;
  }

  /** Dispatched requests that have not called `started` or `requeue` yet. */
  get inTransit(): number {
    return this.#inTransit;
  }

  /** Rank of the highest-ranked class with a request waiting; -Infinity when none waits. */
  get topRank(): number {
    for (const c of this.#classes) if (c.queue.size > 0) return c.config.rank;
    return -Infinity;
  }

  /** Rank of the class `displace(className)` would take a request from; null when none. */
  sheddableRank(className: string): number | null {
    return this.#victimClass(this.#classOf(className))?.config.rank ?? null;
  }

  /** Sheds (`displaced`) the newest request of the lowest sheddable class below `className`. */
  displace(className: string): boolean {
    const cls = this.#classOf(className);
    const low = this.#victimClass(cls);
    if (low === null) return false;
    this.#shed(
      low.queue.newest!,
      "displaced",
      `Request of class ${low.config.name} gave up its place in the full router queue to ` +
        `class ${cls.config.name}`,
    );
    return true;
  }

  /**
   * Requests waiting in classes ranked at or above `className`'s. When it is above 0, a new
   * request of that class should queue even if a worker is free, so it does not overtake them.
   */
  waitingAhead(className: string): number {
    const rank = this.#classOf(className).config.rank;
    let n = 0;
    for (const c of this.#classes) if (c.config.rank >= rank) n += c.queue.size;
    return n;
  }

  /** Waits for capacity; resolves dispatched or shed, never rejects. */
  enqueue(req: QueueRequest): Promise<Admission> {
    const { promise, resolve } = Promise.withResolvers<Admission>();
    this.submit(req, resolve);
    return promise;
  }

  /**
   * `enqueue` with a callback, called exactly once, synchronously at dispatch or shed (possibly
   * before `submit` returns). Throws `RangeError` for an unknown class or a bad cost.
   */
  submit(req: QueueRequest, onAdmission: (a: Admission) => void): void {
    const cls = this.#classOf(req.class);
    const cost = req.cost ?? 1;
    if (!(cost >= 1) || !Number.isFinite(cost)) {
      throw new RangeError(`cost must be a finite number ≥ 1, got ${cost}`);
    }
    const now = this.#sched.now();
    const e: Entry = {
      ...unlinked(),
      tenant: req.tenant,
      cost,
      enqueuedAt: now,
      cls,
      label: this.#label(req.tenant),
      signal: req.signal,
      onAdmission,
      onAbort: null,
      state: "waiting",
    };
    if (this.#closed) return this.#refuse(e, "closed", "Router queue is closed");
    if (req.signal?.aborted) return this.#refuse(e, "aborted", ABORTED_MESSAGE);
    const c = cls.config;
    if (cls.queue.size >= c.maxQueue) {
      return this.#refuse(
        e,
        "queue_full",
        c.maxQueue === 0
          ? `No worker is free and class ${c.name} does not wait in the router queue`
          : `Router queue for class ${c.name} is full: ${cls.queue.size} requests waiting`,
      );
    }
    const total = this.#shared.depth();
    if (total >= this.#config.maxTotal && !this.#shared.displace(c.name)) {
      return this.#refuse(e, "queue_full", `Router queue is full: ${total} requests waiting`);
    }
    cls.enqueued++;
    cls.queue.push(e);
    this.#waiting(e);
    this.#arm(cls);
  }

  /** Lets up to `n` waiting requests go, in order; returns how many went. */
  wake(n = 1): number {
    let sent = 0;
    while (sent < n && this.#dispatchOne()) sent++;
    return sent;
  }

  /**
   * Lets waiting requests go while `capacity() − inTransit > 0`, each at most once per call;
   * returns how many went. Needs the `capacity` option.
   */
  onCapacity(): number {
    const capacity = this.#capacity;
    if (capacity === undefined) throw new Error("onCapacity needs the capacity option");
    let budget = this.#depth;
    let sent = 0;
    while (budget-- > 0 && capacity() - this.#inTransit > 0 && this.#dispatchOne()) sent++;
    return sent;
  }

  /**
   * Takes a new config: classes kept by name get their new bounds and max wait (deadlines of
   * waiting requests move with it), removed classes shed their requests as `closed`, new ones
   * start empty. `max_total` and `quantum` apply to requests that arrive afterwards.
   */
  update(config: FlowQueueConfig): void {
    const names = new Set<string>();
    for (const c of config.classes) {
      if (names.has(c.name)) throw new RangeError(`priority class ${c.name} is listed twice`);
      names.add(c.name);
    }
    this.#config = config;
    const next: ClassState[] = [];
    for (const c of config.classes) {
      let cls = this.#byName.get(c.name);
      if (cls === undefined) {
        cls = this.#newClass(c);
        this.#byName.set(c.name, cls);
      }
      cls.config = c;
      cls.queue.lifo = c.order === "lifo";
      next.push(cls);
    }
    next.sort((a, b) => b.config.rank - a.config.rank);
    for (const cls of this.#classes) {
      if (next.includes(cls)) continue;
      cls.removed = true;
      cls.timer.cancel();
      this.#byName.delete(cls.config.name);
      for (const e of [...cls.queue.entries()]) {
        this.#shed(e, "closed", `Priority class ${cls.config.name} was removed by a reload`);
      }
    }
    this.#classes = next;
    for (const cls of next) {
      cls.timer.cancel();
      cls.armedAt = Infinity;
      this.#arm(cls);
    }
  }

  /** Sheds every waiting request as `closed` and refuses new ones (shutdown); stops the timers. */
  close(): void {
    this.#closed = true;
    for (const cls of this.#classes) {
      cls.timer.cancel();
      cls.armedAt = Infinity;
      for (const e of [...cls.queue.entries()]) this.#shed(e, "closed", "Router queue is closed");
    }
  }

  /** A snapshot of depths and counters. */
  stats(): FlowStats {
    const now = this.#sched.now();
    const classes: Record<string, ClassStats> = {};
    for (const cls of this.#classes) {
      const oldest = cls.queue.oldest;
      classes[cls.config.name] = {
        depth: cls.queue.size,
        enqueued: cls.enqueued,
        dispatched: cls.dispatched,
        requeued: cls.requeued,
        shed: { ...cls.shed },
        oldestWaitMs: oldest === null ? 0 : now - oldest.enqueuedAt,
      };
    }
    const tenants: Record<string, TenantStats> = {};
    for (const [label, t] of this.#labels) tenants[label] = { ...t };
    return {
      depth: this.#depth,
      inTransit: this.#inTransit,
      dispatchRatePerS: this.#rate.perSecond(now),
      classes,
      tenants,
    };
  }

  #classOf(name: string): ClassState {
    const cls = this.#byName.get(name);
    if (cls === undefined) {
      throw new RangeError(
        `unknown priority class ${JSON.stringify(name)}, valid: ${
          this.#classes.map((c) => c.config.name).join(", ")
        }`,
      );
    }
    return cls;
  }

  #newClass(config: FlowClassConfig): ClassState {
    const shed = {} as Record<ShedReason, number>;
    for (const r of SHED_REASONS) shed[r] = 0;
    const cls: ClassState = {
      config,
      queue: new FairQueue<Entry>(
        (t) => this.#config.quantum * this.#weightOf(t),
        config.order === "lifo",
      ),
      timer: this.#sched.timer(() => {
        cls.armedAt = Infinity;
        this.#expire(cls);
      }),
      armedAt: Infinity,
      removed: false,
      enqueued: 0,
      dispatched: 0,
      requeued: 0,
      shed,
    };
    return cls;
  }

  #label(tenant: string): string {
    const label = this.#labelOf(tenant);
    if (this.#labels.has(label)) return label;
    if (this.#labels.size >= MAX_LABELS) return OTHER_TENANT;
    this.#labels.set(label, { depth: 0, dispatched: 0, shed: 0 });
    return label;
  }

  #counts(label: string): LabelCounts {
    let t = this.#labels.get(label);
    if (t === undefined) {
      t = { depth: 0, dispatched: 0, shed: 0 };
      this.#labels.set(label, t);
    }
    return t;
  }

  /** Bookkeeping of an entry that starts (or resumes) waiting. */
  #waiting(e: Entry): void {
    this.#depth++;
    this.#counts(e.label).depth++;
    const signal = e.signal;
    if (signal !== undefined) {
      const onAbort = () => this.#shed(e, "aborted", ABORTED_MESSAGE);
      e.onAbort = onAbort;
      signal.addEventListener("abort", onAbort, { once: true });
    }
  }

  /** Undoes `#waiting`: the entry leaves the queue (dispatched or shed). */
  #leave(e: Entry): void {
    e.cls.queue.remove(e);
    this.#depth--;
    this.#counts(e.label).depth--;
    if (e.onAbort !== null) {
      e.signal!.removeEventListener("abort", e.onAbort);
      e.onAbort = null;
    }
  }

  /** The lowest-ranked sheddable class below `cls` with a request waiting; null when none. */
  #victimClass(cls: ClassState): ClassState | null {
    for (let i = this.#classes.length - 1; i >= 0; i--) {
      const low = this.#classes[i];
      if (low.config.rank >= cls.config.rank) return null;
      if (low.config.sheddable && low.queue.size > 0) return low;
    }
    return null;
  }

  #dispatchOne(): boolean {
    let cls: ClassState | undefined;
    for (const c of this.#classes) {
      if (c.queue.size > 0) {
        cls = c;
        break;
      }
    }
    if (cls === undefined) return false;
    const now = this.#sched.now();
    if (cls.config.order === "adaptive") {
      cls.queue.lifo = now - cls.queue.oldest!.enqueuedAt >=
        cls.config.maxWaitMs * ADAPTIVE_LIFO_AFTER;
    }
    const e = cls.queue.pick()!;
    // pick() took it out of the class queue; #leave's remove is then a no-op.
    this.#leave(e);
    e.state = "transit";
    this.#inTransit++;
    cls.dispatched++;
    this.#counts(e.label).dispatched++;
    this.#rate.note(now);
    const waitedMs = now - e.enqueuedAt;
    this.#observe(() => this.#observer.dispatched?.(cls.config.name, e.label, waitedMs));
    e.onAdmission(this.#dispatched(e, waitedMs));
    return true;
  }

  #dispatched(e: Entry, waitedMs: number): Dispatched {
    const started = () => {
      if (e.state !== "transit") return;
      e.state = "done";
      this.#inTransit--;
    };
    const requeueThen = (onAdmission: (a: Admission) => void) => {
      if (e.state !== "transit") throw new Error("requeue after started or requeue");
      this.#inTransit--;
      e.state = "waiting";
      e.onAdmission = onAdmission;
      const cls = e.cls;
      if (this.#closed || cls.removed) return this.#refuse(e, "closed", "Router queue is closed");
      if (e.signal?.aborted) return this.#refuse(e, "aborted", ABORTED_MESSAGE);
      cls.requeued++;
      cls.queue.pushFront(e);
      this.#waiting(e);
      this.#arm(cls);
    };
    return {
      ok: true,
      className: e.cls.config.name,
      tenant: e.tenant,
      waitedMs,
      started,
      requeueThen,
      requeue: () => {
        const { promise, resolve } = Promise.withResolvers<Admission>();
        requeueThen(resolve);
        return promise;
      },
    };
  }

  /** Sheds a waiting entry. */
  #shed(e: Entry, reason: ShedReason, message: string): void {
    if (e.state !== "waiting") return;
    this.#leave(e);
    this.#refuse(e, reason, message);
  }

  /** Answers an entry that is not (or no longer) in the queue with a shed. */
  #refuse(e: Entry, reason: ShedReason, message: string): void {
    e.state = "done";
    const cls = e.cls;
    const now = this.#sched.now();
    const waitedMs = now - e.enqueuedAt;
    cls.shed[reason]++;
    this.#counts(e.label).shed++;
    this.#observe(() => this.#observer.shed?.(cls.config.name, e.label, reason, waitedMs));
    e.onAdmission(this.#shedOutcome(cls, reason, message, waitedMs, now));
  }

  #shedOutcome(
    cls: ClassState,
    reason: ShedReason,
    message: string,
    waitedMs: number,
    now: number,
  ): Shed {
    if (reason === "aborted") {
      return { ok: false, reason, status: 499, retryAfterS: null, message, waitedMs };
    }
    const maxS = this.#config.maxRetryAfterS;
    const fallbackMs = Number.isFinite(cls.config.maxWaitMs) ? cls.config.maxWaitMs : maxS * 1000;
    const retryAfterS = cls.removed ? 1 : retryAfterSeconds(
      this.waitingAhead(cls.config.name),
      this.#rate.perSecond(now),
      fallbackMs,
      maxS,
    );
    return {
      ok: false,
      reason,
      status: reason === "closed" ? 503 : 429,
      retryAfterS,
      message,
      waitedMs,
    };
  }

  /** Runs a metrics hook; one that throws must not leave a request unanswered. */
  #observe(hook: () => void): void {
    try {
      hook();
    } catch { /* a broken metrics hook loses its sample, not the request */ }
  }

  /** Arms the class timer for its oldest request's deadline when that is earlier than armed. */
  #arm(cls: ClassState): void {
    const oldest = cls.queue.oldest;
    if (oldest === null || this.#closed) return;
    const at = oldest.enqueuedAt + cls.config.maxWaitMs;
    if (!(at < cls.armedAt) || !Number.isFinite(at)) return;
    cls.armedAt = at;
    cls.timer.schedule(at);
  }

  /** Sheds the requests of `cls` that waited `max_wait`, then re-arms for the next one. */
  #expire(cls: ClassState): void {
    const maxWait = cls.config.maxWaitMs;
    const due = this.#sched.now() + this.#sched.slackMs;
    for (
      let e = cls.queue.oldest;
      e !== null && e.enqueuedAt + maxWait <= due;
      e = cls.queue.oldest
    ) {
      this.#shed(
        e,
        "timeout",
        `Request waited ${Math.round(this.#sched.now() - e.enqueuedAt)} ms in the router queue ` +
          `(class ${cls.config.name}, max wait ${maxWait} ms) and no worker became free`,
      );
    }
    this.#arm(cls);
  }
}

const ABORTED_MESSAGE = "Client closed request while it waited in the router queue";
