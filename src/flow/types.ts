/**
 * Contracts of flow control: the resolved config the queue and the tenant limits take, the
 * outcome of a queued request (dispatched or shed), the scheduler that gives the queue its time
 * and timers, and the metric hooks.
 *
 * @module
 */

import type { Clock } from "../util/clock.ts";

/** Order of one tenant's waiting requests in a class; see `FlowClassConfig.order`. */
export type ClassOrder = "fcfs" | "lifo" | "adaptive";

/** One priority class (`flow.queue.classes[]`). */
export interface FlowClassConfig {
  /** Name, used in metrics labels and messages. */
  readonly name: string;
  /** Higher rank dispatches first (strict priority between classes). */
  readonly rank: number;
  /** Requests of this class waiting at most; 0 = never queued (shed at once when saturated). */
  readonly maxQueue: number;
  /** Longest wait in the queue, ms; a request still waiting then is shed (`timeout`). */
  readonly maxWaitMs: number;
  /**
   * Whether a waiting request of this class may be displaced (shed as `displaced`) to make room
   * for a request of a higher-ranked class when the whole queue is full.
   */
  readonly sheddable: boolean;
  /** Header or body values naming this class besides its name (compared case-insensitively). */
  readonly values: readonly string[];
  /**
   * Order of one tenant's waiting requests: `fcfs` (oldest first), `lifo` (newest first: under
   * sustained overload the requests sent can still be on time, the oldest reach max wait), or
   * `adaptive` (the default: FCFS while the class's oldest request has waited less than half its
   * max wait, LIFO once it has waited longer, i.e. while the queue stands instead of draining).
   */
  readonly order: ClassOrder;
}

/** What the DRR cost of one request counts. */
export type FairCost = "requests" | "prompt_tokens";

/** The router queue (`flow.queue`). */
export interface FlowQueueConfig {
  /** Requests waiting in all classes together at most. */
  readonly maxTotal: number;
  /** Classes, highest rank first (the resolver sorts them). */
  readonly classes: readonly FlowClassConfig[];
  /** Class of a request that names none. */
  readonly defaultClass: string;
  /** Request header (lower case) naming the class; "" = none. */
  readonly classHeader: string;
  /** Top-level body field naming the class; "" = none. The header wins when both are given. */
  readonly classField: string;
  /** What a request costs in the DRR round (see `admission_queue.ts`). */
  readonly fairCost: FairCost;
  /** DRR quantum per unit of tenant weight, in cost units (requests or prompt tokens). */
  readonly quantum: number;
  /** Largest `Retry-After` the queue answers, seconds. */
  readonly maxRetryAfterS: number;
  /**
   * A worker whose engine reports this many requests waiting (fresh scraped figures,
   * `health.scrape_metrics`) takes no new request: it waits in the router queue instead; 0 = off.
   */
  readonly engineMaxWaiting: number;
}

/** Limits of one tenant (`flow.tenants.default`, `flow.tenants.limits.<id>`). */
export interface TenantLimitConfig {
  /** Sustained requests per second; 0 = no rate limit. */
  readonly rps: number;
  /** Bucket size: requests that may arrive at once after a quiet period (≥ 1 when `rps` > 0). */
  readonly burst: number;
  /** Requests held by the router at once (waiting or in flight); 0 = no cap. */
  readonly maxConcurrent: number;
  /** Share of the DRR round relative to other tenants of the same class (> 0). */
  readonly weight: number;
}

/** Per-tenant limits (`flow.tenants`). */
export interface TenantsConfig {
  /** Where the tenant id comes from: the API key's fingerprint or a request header. */
  readonly source: "api_key" | "header";
  /** The header (lower case) when `source` is `header`. */
  readonly header: string;
  /** Limits of a tenant not listed in `limits`. */
  readonly default: TenantLimitConfig;
  /** Limits by tenant id; listed tenants also get their own metric label. */
  readonly limits: Readonly<Record<string, TenantLimitConfig>>;
  /** Unlisted tenants tracked at most (least recently seen forgotten first). */
  readonly maxTracked: number;
}

/** The resolved `flow:` section; `null` in the router config = flow control off. */
export interface FlowConfig {
  readonly queue: FlowQueueConfig;
  readonly tenants: TenantsConfig;
}

/** Why a request was refused. */
export type ShedReason =
  | "queue_full"
  | "displaced"
  | "timeout"
  | "aborted"
  | "closed"
  | "rate_limited"
  | "concurrency_limited";

/** Every shed reason, for metric label sets. */
export const SHED_REASONS: readonly ShedReason[] = [
  "queue_full",
  "displaced",
  "timeout",
  "aborted",
  "closed",
  "rate_limited",
  "concurrency_limited",
];

/** Metric label of tenants without one of their own (not listed in `flow.tenants.limits`). */
export const OTHER_TENANT = "other";

/** A refused request: the router answers it itself. */
export interface Shed {
  readonly ok: false;
  readonly reason: ShedReason;
  /**
   * HTTP status to answer: 429 for queue full, displaced, timeout and tenant limits; 499 for a
   * client that left (it reads nothing); 503 for a queue closed by shutdown.
   */
  readonly status: 429 | 499 | 503;
  /** `Retry-After` in whole seconds (≥ 1), or null when none applies (aborted). */
  readonly retryAfterS: number | null;
  /** Sentence-case message for the error body. */
  readonly message: string;
  /** Time spent waiting before the shed, ms. */
  readonly waitedMs: number;
}

/** A request the queue let go: it may now choose a worker. */
export interface Dispatched {
  readonly ok: true;
  readonly className: string;
  readonly tenant: string;
  /** Time spent waiting, ms (0 when it never waited). */
  readonly waitedMs: number;
  /**
   * The request found its worker (its attempt began, so the worker's in-flight count holds it),
   * or gave up. Ends its "in transit" state, which `onCapacity` counts against free capacity.
   * Idempotent. Exactly one of `started` and `requeue` must follow every dispatch.
   */
  started(): void;
  /**
   * No worker was free after all (another request took the slot): back to the front of its
   * tenant's queue with its original arrival time, to be dispatched again by a later wake-up.
   */
  requeue(): Promise<Admission>;
  /** `requeue` with a callback instead of a promise (the virtual-time simulator). */
  requeueThen(onAdmission: (a: Admission) => void): void;
}

/** How a queued request ended. */
export type Admission = Dispatched | Shed;

/** A request asking to wait for capacity. */
export interface QueueRequest {
  /** Class name, from `classOf`; an unknown name throws `RangeError` (a caller bug). */
  readonly class: string;
  /** Tenant id (API key fingerprint or header value). */
  readonly tenant: string;
  /** DRR cost (≥ 1): 1 per request, or estimated prompt tokens with `fair_cost: prompt_tokens`. */
  readonly cost?: number;
  /** The client's signal: an abort removes the request at once. */
  readonly signal?: AbortSignal;
}

/** A one-shot timer the queue re-arms; times are on the scheduler's clock. */
export interface FlowTimer {
  /** Fires at `at` (or up to `slackMs` before), replacing any earlier arming. */
  schedule(at: number): void;
  cancel(): void;
}

/**
 * Time and timers of a queue: real time for the router (`realScheduler`), virtual time for the
 * offline simulator and tests (`VirtualScheduler`).
 */
export interface Scheduler extends Clock {
  /** A new, unarmed timer calling `fire`. */
  timer(fire: () => void): FlowTimer;
  /** Timers may fire this many ms early; deadlines within it count as due. */
  readonly slackMs: number;
}

/** Callbacks for metrics; each is optional and must not throw. */
export interface FlowObserver {
  /** A waiting request was let go after `waitedMs`. */
  dispatched?(className: string, tenantLabel: string, waitedMs: number): void;
  /** A request was refused after `waitedMs` (0 when refused on arrival). */
  shed?(className: string, tenantLabel: string, reason: ShedReason, waitedMs: number): void;
}

/** Counters of one class. */
export interface ClassStats {
  readonly depth: number;
  readonly enqueued: number;
  readonly dispatched: number;
  readonly requeued: number;
  readonly shed: Readonly<Record<ShedReason, number>>;
  /** Wait so far of the oldest waiting request, ms (0 when none waits). */
  readonly oldestWaitMs: number;
}

/** Counters of one tenant label (a configured tenant, or `other`). */
export interface TenantStats {
  readonly depth: number;
  readonly dispatched: number;
  readonly shed: number;
}

/** A snapshot of the queue for gauges and the operator page. */
export interface FlowStats {
  readonly depth: number;
  /** Dispatched requests that have not called `started` or `requeue` yet. */
  readonly inTransit: number;
  /** Recent dispatch rate, requests per second (decayed over about 10 s). */
  readonly dispatchRatePerS: number;
  readonly classes: Readonly<Record<string, ClassStats>>;
  readonly tenants: Readonly<Record<string, TenantStats>>;
}
