/**
 * Injected clock. Code that decides (strategies, prefix index, breaker) reads time only through a
 * `Clock`, so tests and the offline simulator can drive it.
 *
 * @module
 */

/** A source of time in milliseconds. */
export interface Clock {
  now(): number;
}

/** Wall clock backed by `performance.now()` (monotonic, milliseconds). */
export const systemClock: Clock = { now: () => performance.now() };

/** A clock that moves only when told to (tests, virtual time). */
export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  /** Moves time forward by `ms`. */
  advance(ms: number): void {
    this.t += ms;
  }
  /** Sets the time. */
  set(ms: number): void {
    this.t = ms;
  }
}
