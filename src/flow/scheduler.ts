/**
 * Schedulers for the admission queue: where its time and timers come from.
 *
 * - {@linkcode realScheduler}: the router's. `performance.now()` milliseconds (the router's
 *   `systemClock`), timers as entries of a {@linkcode TimerQueue} (one heap, one `setTimeout`
 *   armed for the earliest entry, unref'd: a waiting request is pending work that keeps the
 *   process alive by itself). The queue arms one timer per class, not one per request.
 * - {@linkcode VirtualScheduler}: virtual time for tests and the offline overload experiment. An
 *   event heap ordered by (time, order of scheduling); `advance`/`runUntil` move the clock and run
 *   what falls due, so a seed reproduces a run exactly. It also takes plain one-shot events
 *   (`at`), which lets the experiment drive arrivals, engine steps and queue timers on one clock.
 *
 * Cost: O(log n) per timer arming or event in both.
 *
 * @module
 */

import { deadlineTimers, TimerQueue } from "../util/timer_queue.ts";
import type { FlowTimer, Scheduler } from "./types.ts";

/** The scheduler of a live router: real time, timers on `timers` (the proxy's shared queue). */
export function realScheduler(timers: TimerQueue = deadlineTimers): Scheduler {
  return {
    now: () => performance.now(),
    // TimerQueue fires entries due within its slack (1 ms) early.
    slackMs: 1,
    timer(fire: () => void): FlowTimer {
      const entry = TimerQueue.entry(fire);
      return {
        schedule: (at) => timers.schedule(entry, at),
        cancel: () => timers.cancel(entry),
      };
    },
  };
}

interface Event {
  readonly t: number;
  readonly n: number;
  readonly fn: () => void;
}

/** Virtual time: nothing happens until `advance`, `runUntil` or `run` is called. */
export class VirtualScheduler implements Scheduler {
  readonly slackMs = 0;
  #now: number;
  #seq = 0;
  readonly #heap: Event[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Events pending (cancelled timers included until their time comes). */
  get pending(): number {
    return this.#heap.length;
  }

  /** Runs `fn` at time `t` (now if `t` is in the past). */
  at(t: number, fn: () => void): void {
    const h = this.#heap;
    h.push({ t: Math.max(t, this.#now), n: this.#seq++, fn });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  timer(fire: () => void): FlowTimer {
    // A generation number makes re-arming and cancelling O(log n) without removing heap entries:
    // a stale event finds its generation outdated and does nothing.
    let gen = 0;
    return {
      schedule: (at) => {
        const mine = ++gen;
        this.at(at, () => {
          if (gen === mine) fire();
        });
      },
      cancel: () => {
        gen++;
      },
    };
  }

  /** Runs every event due at or before `t`, in order, then sets the clock to `t`. */
  runUntil(t: number): void {
    const h = this.#heap;
    while (h.length > 0 && h[0].t <= t) {
      const e = this.#pop();
      this.#now = e.t;
      e.fn();
    }
    if (t > this.#now) this.#now = t;
  }

  /** Moves the clock forward by `ms`, running what falls due. */
  advance(ms: number): void {
    this.runUntil(this.#now + ms);
  }

  /** Runs events until none is left (or `limit` events ran); returns how many ran. */
  run(limit = Infinity): number {
    let n = 0;
    while (this.#heap.length > 0 && n < limit) {
      const e = this.#pop();
      this.#now = e.t;
      e.fn();
      n++;
    }
    return n;
  }

  #pop(): Event {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function less(x: Event, y: Event): boolean {
  return x.t < y.t || (x.t === y.t && x.n < y.n);
}
