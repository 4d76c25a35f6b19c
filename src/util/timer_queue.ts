/**
 * Many deadlines on one timer. The proxy gives every request a body-read deadline and every
 * attempt a set of upstream deadlines, almost all of which end without firing; a `setTimeout` and
 * `clearTimeout` pair for each cost measurable time per request (docs/performance.md). Here the
 * deadlines sit in a binary min-heap by due time and a single timer is armed for the earliest.
 *
 * Rules:
 * - `schedule(entry, at)` adds the entry or moves it to its new time; `cancel(entry)` removes it.
 *   Both are O(log n) in the entries pending, and an entry remembers its heap slot, so nothing
 *   cancelled lingers (a proxy with long total timeouts would otherwise pile up millions of dead
 *   entries).
 * - The timer is re-armed only when the earliest due time moves earlier. Requests started later
 *   under the same limits are due later, so under load the timer is armed about once per earliest
 *   deadline, not once per request. A cancelled earliest entry leaves the timer as it is: it then
 *   fires early, finds nothing due and re-arms for the next one.
 * - The timer is unref'd (`Deno.unrefTimer`): a deadline never keeps the process alive by itself.
 *   What it guards (a socket read, a body read) is pending work that does.
 * - When the timer fires, every entry due within `slackMs` is removed, then its callback runs (a
 *   callback may schedule again). An entry that an earlier callback of the same firing cancelled
 *   or moved is skipped: cancel removes it and schedule moves it, whenever they are called. A callback that throws goes to `reportError`, as an uncaught
 *   error in a timer callback would (Deno ends the process unless an `error` listener prevents
 *   it); when it is prevented, the other callbacks still run.
 * - Times are `performance.now()` milliseconds, as real-time timers need; a test's manual clock
 *   must not stop them.
 *
 * @module
 */

/** One deadline; create with {@link TimerQueue.entry} and reuse it for re-arming. */
export interface TimerEntry {
  /** Due time, `performance.now()` ms; Infinity while not scheduled. */
  at: number;
  /** Slot in the heap; -1 while not scheduled; -2 while due, in a firing, not fired yet. */
  pos: number;
  readonly fire: () => void;
}

/** `TimerEntry.pos` of an entry taken from the heap by a firing and not fired yet. */
const TAKEN = -2;

/** The longest delay `setTimeout` honours, ms. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** Deadlines due within this many ms of now count as due (timers may fire a little early). */
const DEFAULT_SLACK_MS = 1;

/** A min-heap of deadlines behind one timer; see the module comment. */
export class TimerQueue {
  readonly #heap: TimerEntry[] = [];
  readonly #slackMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedAt = Infinity;

  constructor(slackMs = DEFAULT_SLACK_MS) {
    this.#slackMs = slackMs;
  }

  /** A new, unscheduled entry that calls `fire` when due. */
  static entry(fire: () => void): TimerEntry {
    return { at: Infinity, pos: -1, fire };
  }

  /** Entries pending. */
  get size(): number {
    return this.#heap.length;
  }

  /** Due time of the earliest pending entry; Infinity when none. */
  get nextAt(): number {
    return this.#heap.length > 0 ? this.#heap[0].at : Infinity;
  }

  /** Schedules `e` at `at` (ms, `performance.now()` clock), moving it if already scheduled. */
  schedule(e: TimerEntry, at: number): void {
    const h = this.#heap;
    if (e.pos < 0) {
      e.at = at;
      e.pos = h.length;
      h.push(e);
      this.#up(e.pos);
    } else {
      const was = e.at;
      e.at = at;
      if (at < was) this.#up(e.pos);
      else this.#down(e.pos);
    }
    if (h[0].at < this.#armedAt) this.#arm(h[0].at);
  }

  /** Removes `e` if it is scheduled. */
  cancel(e: TimerEntry): void {
    const i = e.pos;
    if (i < 0) {
      if (i === TAKEN) e.pos = -1; // due in this firing: it will not fire now
      return;
    }
    const h = this.#heap;
    const last = h.pop()!;
    e.pos = -1;
    e.at = Infinity;
    if (last === e) return;
    h[i] = last;
    last.pos = i;
    this.#down(i);
    this.#up(last.pos);
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedAt = at;
    // setTimeout takes at most 2^31 − 1 ms (about 24.8 days; more fires at once): a farther
    // deadline is reached in steps.
    const timer = setTimeout(
      this.#run,
      Math.min(MAX_DELAY_MS, Math.max(0, at - performance.now())),
    );
    this.#timer = timer;
    try {
      Deno.unrefTimer(timer);
    } catch { /* a fake timer from a test clock: nothing to unref */ }
  }

  #run = (): void => {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const h = this.#heap;
    const due: TimerEntry[] = [];
    const limit = performance.now() + this.#slackMs;
    while (h.length > 0 && h[0].at <= limit) {
      const e = h[0];
      this.cancel(e);
      e.pos = TAKEN;
      due.push(e);
    }
    for (const e of due) {
      if (e.pos !== TAKEN) continue; // cancelled, or scheduled again, by an earlier callback
      e.pos = -1;
      try {
        e.fire();
      } catch (err) {
        reportError(err);
      }
    }
    if (h.length > 0 && h[0].at < this.#armedAt) this.#arm(h[0].at);
  };

  #up(i: number): void {
    const h = this.#heap;
    const e = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= e.at) break;
      h[i] = h[p];
      h[i].pos = i;
      i = p;
    }
    h[i] = e;
    e.pos = i;
  }

  #down(i: number): void {
    const h = this.#heap;
    const n = h.length;
    const e = h[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1].at < h[c].at) c++;
      if (h[c].at >= e.at) break;
      h[i] = h[c];
      h[i].pos = i;
      i = c;
    }
    h[i] = e;
    e.pos = i;
  }
}

/** The process-wide queue the proxy's deadlines share. */
export const deadlineTimers = new TimerQueue();
