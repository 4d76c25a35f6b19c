/**
 * `Retry-After` for a request the queue refused (full, displaced, waited too long): about the time
 * the queue needs to drain the work that would go before a retry of it.
 *
 * Rule: `ceil((ahead + 1) / rate)` seconds, where `ahead` is the number of requests waiting in
 * classes ranked at or above the request's, and `rate` the recent dispatch rate: an exponentially
 * decayed count of dispatches with a time constant of {@link RATE_TAU_MS} (10 s), so one burst
 * weighs for about 10 s and an idle queue forgets. Clamped to `[1, max]`. When the rate is below
 * one dispatch per time constant (nothing is flowing: every worker down, or a cold start), the
 * estimate falls back to the class's max wait, since that is how long a queued request would have
 * waited anyway; a client told "1" would only come back into the same wall.
 *
 * Cost: one `Math.exp` per dispatch and per estimate.
 *
 * @module
 */

/** Time constant of the decayed dispatch rate, ms. */
export const RATE_TAU_MS = 10_000;

/** A rate of events, exponentially decayed; times in ms on the caller's clock. */
export class DecayingRate {
  readonly #tauMs: number;
  /** Decayed count of events, as of `#at`. */
  #count = 0;
  #at = -Infinity;

  constructor(tauMs = RATE_TAU_MS) {
    this.#tauMs = tauMs;
  }

  /** Notes one event at `now`. */
  note(now: number): void {
    this.#count = this.#decayed(now) + 1;
    this.#at = now;
  }

  /** Events per second around `now` (the decayed count over the time constant). */
  perSecond(now: number): number {
    return (this.#decayed(now) / this.#tauMs) * 1000;
  }

  #decayed(now: number): number {
    if (this.#count === 0) return 0;
    const dt = Math.max(0, now - this.#at);
    return this.#count * Math.exp(-dt / this.#tauMs);
  }
}

/**
 * Seconds a refused request should wait before retrying (integer in `[1, maxS]`).
 * @param ahead requests that would dispatch before a retry of this one
 * @param ratePerS recent dispatches per second
 * @param fallbackMs wait to suggest when nothing is flowing (the class's max wait)
 * @param maxS largest value to answer
 */
export function retryAfterSeconds(
  ahead: number,
  ratePerS: number,
  fallbackMs: number,
  maxS: number,
): number {
  const cap = Math.max(1, Math.floor(maxS));
  const minRate = 1000 / RATE_TAU_MS;
  const s = ratePerS >= minRate ? (ahead + 1) / ratePerS : fallbackMs / 1000;
  if (!Number.isFinite(s)) return cap;
  return Math.min(cap, Math.max(1, Math.ceil(s)));
}
