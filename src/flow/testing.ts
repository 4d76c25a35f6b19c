/**
 * Test helpers for flow control: a queue config with two classes, and a fake fleet that serves
 * requests the way the router will use the queue (go straight to a free worker when nobody of the
 * same or higher class waits, else wait; on dispatch take a worker or requeue; on completion wake
 * the queue), all in virtual time.
 *
 * @module
 */

import { AdmissionQueue, type AdmissionQueueOptions } from "./admission_queue.ts";
import type { VirtualScheduler } from "./scheduler.ts";
import type { Admission, FlowClassConfig, FlowQueueConfig, ShedReason } from "./types.ts";

/** `interactive` (rank 10) and `batch` (rank 0, sheddable), unbounded waits unless overridden. */
export function queueConfig(
  over: Partial<FlowQueueConfig> = {},
  classes: Partial<Record<"interactive" | "batch", Partial<FlowClassConfig>>> = {},
): FlowQueueConfig {
  return {
    maxTotal: 10_000,
    defaultClass: "interactive",
    classHeader: "x-priority",
    classField: "priority",
    fairCost: "requests",
    quantum: 1,
    maxRetryAfterS: 60,
    engineMaxWaiting: 5,
    classes: [
      {
        name: "interactive",
        rank: 10,
        maxQueue: 10_000,
        maxWaitMs: Infinity,
        sheddable: false,
        values: ["high"],
        order: "fcfs",
        ...classes.interactive,
      },
      {
        name: "batch",
        rank: 0,
        maxQueue: 10_000,
        maxWaitMs: Infinity,
        sheddable: true,
        values: ["low"],
        order: "fcfs",
        ...classes.batch,
      },
    ],
    ...over,
  };
}

/** What happened to one request of the fake fleet. */
export interface Served {
  readonly id: number;
  readonly className: string;
  readonly tenant: string;
  readonly arrivedAt: number;
  /** When it began on a worker; null when shed. */
  readonly startedAt: number | null;
  readonly shed: ShedReason | null;
  /** Order of dispatch out of the queue (−1: never queued or shed). */
  readonly queuedOrder: number;
}

/** Workers with `maxInflight` slots each serving every request for `serviceMs`. */
export class FakeFleet {
  readonly inflight: number[];
  readonly queue: AdmissionQueue;
  readonly served: Served[] = [];
  readonly #sched: VirtualScheduler;
  readonly #max: number;
  readonly #serviceMs: number;
  #ids = 0;
  #order = 0;
  /** Lose this many dispatch races: a request that wakes finds its slot taken by another. */
  stealNext = 0;

  constructor(
    sched: VirtualScheduler,
    opts: {
      workers: number;
      maxInflight: number;
      serviceMs: number;
      queue: Omit<AdmissionQueueOptions, "scheduler" | "capacity">;
    },
  ) {
    this.#sched = sched;
    this.#max = opts.maxInflight;
    this.#serviceMs = opts.serviceMs;
    this.inflight = new Array(opts.workers).fill(0);
    this.queue = new AdmissionQueue({
      ...opts.queue,
      scheduler: sched,
      capacity: () => this.free(),
    });
  }

  /** Free slots over all workers. */
  free(): number {
    let n = 0;
    for (const i of this.inflight) n += this.#max - i;
    return n;
  }

  /** Schedules a request's arrival at `t`. */
  arrive(t: number, className: string, tenant: string, signal?: AbortSignal): void {
    this.#sched.at(t, () => void this.#request(className, tenant, signal));
  }

  async #request(className: string, tenant: string, signal?: AbortSignal): Promise<void> {
    const id = this.#ids++;
    const arrivedAt = this.#sched.now();
    if (this.queue.waitingAhead(className) === 0 && this.#start()) {
      this.served.push({
        id,
        className,
        tenant,
        arrivedAt,
        startedAt: arrivedAt,
        shed: null,
        queuedOrder: -1,
      });
      return;
    }
    let adm: Admission = await this.queue.enqueue({ class: className, tenant, signal });
    for (;;) {
      if (!adm.ok) {
        this.served.push({
          id,
          className,
          tenant,
          arrivedAt,
          startedAt: null,
          shed: adm.reason,
          queuedOrder: -1,
        });
        return;
      }
      if (this.stealNext > 0) {
        // Another request takes the slot first (it is not recorded).
        this.stealNext--;
        this.#start();
      }
      if (this.#start()) break;
      adm = await adm.requeue();
    }
    adm.started();
    this.served.push({
      id,
      className,
      tenant,
      arrivedAt,
      startedAt: this.#sched.now(),
      shed: null,
      queuedOrder: this.#order++,
    });
  }

  /** Takes a slot on the least-loaded worker with one free; false when none. */
  #start(): boolean {
    let best = -1;
    for (let w = 0; w < this.inflight.length; w++) {
      if (this.inflight[w] < this.#max && (best < 0 || this.inflight[w] < this.inflight[best])) {
        best = w;
      }
    }
    if (best < 0) return false;
    this.inflight[best]++;
    this.#sched.at(this.#sched.now() + this.#serviceMs, () => {
      this.inflight[best]--;
      this.queue.onCapacity();
    });
    return true;
  }
}

/** Runs `sched` to the end, letting promise continuations run after every event. */
export async function drive(sched: VirtualScheduler, limit = 1_000_000): Promise<void> {
  await settle();
  for (let n = 0; sched.pending > 0 && n < limit; n++) {
    sched.run(1);
    await settle();
  }
}

/** Lets pending promise continuations run (a few dozen microtask turns). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 32; i++) await null;
}
