/**
 * Prometheus metrics of flow control (the router queue and the per-tenant limits), registered on
 * the router's own registry (`RouterMetrics.registry`) when flow control is first turned on.
 *
 * - `router_flow_queue_depth{class}` gauge: requests waiting in the router queue (every model)
 * - `router_flow_queue_oldest_wait_seconds{class}` gauge: wait so far of the oldest one
 * - `router_flow_queue_in_transit` gauge: let go by the queue, not yet on a worker
 * - `router_flow_queue_wait_seconds{class,outcome}` histogram: time spent waiting, by
 *   `dispatched` (it went on to choose a worker) or `shed` (refused after waiting)
 * - `router_flow_admitted_total{class,path}` counter: requests flow control let through,
 *   `direct` (a worker was free) or `queued` (after a wait)
 * - `router_flow_shed_total{class,reason}` counter: refused, by reason (`queue_full`,
 *   `displaced`, `timeout`, `aborted`, `closed`, `rate_limited`, `concurrency_limited`)
 * - `router_flow_tenant_requests_total{tenant,outcome}` counter: `admitted` or `shed`, by tenant
 * - `router_flow_tenant_active_requests{tenant}` gauge: requests a tenant holds (waiting or in
 *   flight)
 * - `router_flow_tenant_queue_depth{tenant}` gauge: a tenant's requests waiting
 *
 * Labels stay bounded: `class` by the configured classes, `tenant` by the tenants listed in
 * `flow.tenants.limits` plus `other` for every one else, `reason`, `path` and `outcome` by code.
 * Gauges are read at scrape time (`collect`), counters and the histogram move on the events.
 *
 * @module
 */

import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { FlowStats, ShedReason, TenantLimitStats } from "../flow/mod.ts";
import { TTFB_BUCKETS_S } from "./metrics.ts";

/**
 * Buckets of `router_flow_queue_wait_seconds`: those of time to first byte, of which the queue
 * wait is a part (so the two read at the same resolution), and 120 s for a class's long max wait.
 */
export const QUEUE_WAIT_BUCKETS_S: readonly number[] = [...TTFB_BUCKETS_S, 120];

/** What the gauges read at scrape time. */
export interface FlowSources {
  /** One snapshot per router queue (one per served model). */
  queues(): readonly FlowStats[];
  /** The configured class names (their gauges read 0 while nothing waits). */
  classes(): readonly string[];
  /** The tenant limits' counters by label; null while flow control is off. */
  tenants(): Readonly<Record<string, TenantLimitStats>> | null;
}

/** The flow-control metric families of one router; see the module comment. */
export class FlowMetrics {
  readonly #wait: Histogram<"class" | "outcome">;
  readonly #admitted: Counter<"class" | "path">;
  readonly #shed: Counter<"class" | "reason">;
  readonly #tenant: Counter<"tenant" | "outcome">;

  constructor(registry: Registry, sources: FlowSources) {
    const registers = [registry];
    this.#wait = new Histogram({
      name: "router_flow_queue_wait_seconds",
      help: "Time requests waited in the router queue, by class and outcome (dispatched or shed)",
      labelNames: ["class", "outcome"],
      buckets: [...QUEUE_WAIT_BUCKETS_S],
      registers,
    });
    this.#admitted = new Counter({
      name: "router_flow_admitted_total",
      help: "Requests flow control let through, by class and path (direct or queued)",
      labelNames: ["class", "path"],
      registers,
    });
    this.#shed = new Counter({
      name: "router_flow_shed_total",
      help: "Requests flow control refused (429, or 503 at shutdown), by class and reason",
      labelNames: ["class", "reason"],
      registers,
    });
    this.#tenant = new Counter({
      name: "router_flow_tenant_requests_total",
      help: "Requests by tenant (configured ones, else other) and outcome (admitted or shed)",
      labelNames: ["tenant", "outcome"],
      registers,
    });
    new Gauge({
      name: "router_flow_queue_depth",
      help: "Requests waiting in the router queue, by class",
      labelNames: ["class"],
      registers,
      collect() {
        this.reset();
        for (const c of sources.classes()) this.set({ class: c }, 0);
        for (const [c, v] of perClass(sources.queues(), (s) => s.depth, sum)) {
          this.set({ class: c }, v);
        }
      },
    });
    new Gauge({
      name: "router_flow_queue_oldest_wait_seconds",
      help: "Wait so far of the oldest request in the router queue, by class",
      labelNames: ["class"],
      registers,
      collect() {
        this.reset();
        for (const c of sources.classes()) this.set({ class: c }, 0);
        for (const [c, v] of perClass(sources.queues(), (s) => s.oldestWaitMs, Math.max)) {
          this.set({ class: c }, v / 1000);
        }
      },
    });
    new Gauge({
      name: "router_flow_queue_in_transit",
      help: "Requests the router queue let go that have not reached a worker yet",
      registers,
      collect() {
        let n = 0;
        for (const q of sources.queues()) n += q.inTransit;
        this.set(n);
      },
    });
    new Gauge({
      name: "router_flow_tenant_active_requests",
      help: "Requests a tenant holds (waiting or in flight), configured tenants and other",
      labelNames: ["tenant"],
      registers,
      collect() {
        this.reset();
        for (const [t, s] of Object.entries(sources.tenants() ?? {})) {
          this.set({ tenant: t }, s.active);
        }
      },
    });
    new Gauge({
      name: "router_flow_tenant_queue_depth",
      help: "Requests of a tenant waiting in the router queue, configured tenants and other",
      labelNames: ["tenant"],
      registers,
      collect() {
        this.reset();
        const depth = new Map<string, number>();
        for (const q of sources.queues()) {
          for (const [t, s] of Object.entries(q.tenants)) {
            depth.set(t, (depth.get(t) ?? 0) + s.depth);
          }
        }
        for (const [t, v] of depth) this.set({ tenant: t }, v);
      },
    });
  }

  /** A request left the queue after `waitedMs` to choose a worker. */
  dispatched(className: string, waitedMs: number): void {
    this.#wait.observe({ class: className, outcome: "dispatched" }, waitedMs / 1000);
  }

  /** A request was refused (`waitedMs` > 0: after waiting in the queue). */
  shed(className: string, tenant: string, reason: ShedReason, waitedMs: number): void {
    this.#shed.inc({ class: className, reason });
    this.#tenant.inc({ tenant, outcome: "shed" });
    if (waitedMs > 0) this.#wait.observe({ class: className, outcome: "shed" }, waitedMs / 1000);
  }

  /** Flow control let a request through, at once or after a wait. */
  admitted(className: string, tenant: string, queued: boolean): void {
    this.#admitted.inc({ class: className, path: queued ? "queued" : "direct" });
    this.#tenant.inc({ tenant, outcome: "admitted" });
  }
}

/** `pick` of every class over `queues`, folded with `fold`. */
function perClass(
  queues: readonly FlowStats[],
  pick: (s: FlowStats["classes"][string]) => number,
  fold: (a: number, b: number) => number,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const q of queues) {
    for (const [c, s] of Object.entries(q.classes)) {
      const prev = out.get(c);
      out.set(c, prev === undefined ? pick(s) : fold(prev, pick(s)));
    }
  }
  return out;
}

function sum(a: number, b: number): number {
  return a + b;
}
