/**
 * `router_upstream_failures_total{backend,kind}`: every failed upstream attempt, by what went
 * wrong. Failures up to the first body byte (and a status ≥ 500) also go to the worker's circuit
 * breaker; a failure after it (`stream-error`, `idle-timeout` mid-body) does not: the worker did
 * answer, and a hung stream is cut by its own deadline. With
 * `router_retries_total` (failures that were retried elsewhere) and `router_requests_total` (what
 * clients got) it tells the whole story of a fault.
 *
 * Kinds, a fixed set:
 * - `connect-error`: the connection failed or broke before response headers (refused, reset, DNS),
 *   or the connect check found the worker unreachable;
 * - `bad-response`: the worker's response head broke RFC 9112 (a control character, a bad status
 *   or field line, two framings, a head cut short or too large; `src/proxy/h1_head.ts`): it read
 *   the request, so this is retried only where the endpoint allows a retry after sending;
 * - `connect-timeout`: no connection within `connect_timeout` (see `src/proxy/deadlines.ts`);
 * - `ttfb-timeout`: no response byte within `ttfb_timeout`;
 * - `idle-timeout`: the body paused longer than `idle_timeout`;
 * - `timeout`: the whole request took longer than `timeout`;
 * - `stream-error`: the body broke after the headers (the worker died mid-stream);
 * - `status-5xx`: the worker answered with a status ≥ 500.
 *
 * It lives on the router's own registry (`RouterMetrics.registry`), registered once per registry.
 * The last failure of each worker is kept too (kind, message, when), for `/debug/workers`.
 *
 * @module
 */

import { Counter, type Registry } from "prom-client";
import { type Clock, systemClock } from "../util/clock.ts";

/** What went wrong with one upstream attempt. */
export type FailureKind =
  | "connect-error"
  | "bad-response"
  | "connect-timeout"
  | "ttfb-timeout"
  | "idle-timeout"
  | "timeout"
  | "stream-error"
  | "status-5xx"
  /** The router could not open a connection: out of file descriptors (not the worker's fault). */
  | "fd-exhausted";

const NAME = "router_upstream_failures_total";

/** The last failure of one worker. */
export interface LastFailure {
  readonly kind: FailureKind;
  readonly message: string;
  /** The router clock's time of the failure, ms. */
  readonly at: number;
}

/** The failure counter of one registry, with its children cached per label pair. */
export class FaultMetrics {
  readonly #counter: Counter<string>;
  readonly #children = new Map<string, Counter.Internal>();
  readonly #last = new Map<string, LastFailure>();
  readonly #clock: Clock;

  constructor(registry: Registry, clock: Clock = systemClock) {
    this.#clock = clock;
    const existing = registry.getSingleMetric(NAME);
    this.#counter = existing instanceof Counter ? existing : new Counter({
      name: NAME,
      help:
        "Failed upstream attempts by kind (connect and first-byte failures also count against the circuit breaker)",
      labelNames: ["backend", "kind"],
      registers: [registry],
    });
  }

  /** Counts one failure of `backend` and keeps it as its last one. */
  inc(backend: string, kind: FailureKind, message = ""): void {
    this.#last.set(backend, { kind, message: message.slice(0, 1024), at: this.#clock.now() });
    const key = backend + "\u001f" + kind;
    let c = this.#children.get(key);
    if (c === undefined) {
      c = this.#counter.labels(backend, kind);
      this.#children.set(key, c);
    }
    c.inc();
  }

  /** The last failure counted for `backend`, or null. */
  last(backend: string): LastFailure | null {
    return this.#last.get(backend) ?? null;
  }

  /** Drops the last failures of workers not in `current` (bounded by the workers there are). */
  keepOnly(current: ReadonlySet<string>): void {
    for (const id of this.#last.keys()) if (!current.has(id)) this.#last.delete(id);
  }
}
