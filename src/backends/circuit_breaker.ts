/**
 * Per-worker circuit breaker with a single-probe half-open state.
 *
 * Rule: transport errors and upstream status ≥ 500 are failures; the caller reports each request's
 * verdict with `success()` or `failure()`. `threshold` consecutive failures while closed open the
 * breaker for `cooldownMs`. Once the cooldown has elapsed exactly one request (the probe) is let
 * through: its success closes the breaker, its failure reopens it for another full cooldown.
 *
 * States, and what moves between them (every transition happens inside a method call, so
 * `onChange` fires exactly once per real transition and never from a timer):
 *
 * ```
 * closed ──threshold consecutive failure()──▶ open
 * open ──acquire() after the cooldown──────▶ half-open   (the probe is out)
 * half-open ──success()────────────────────▶ closed
 * half-open ──failure()────────────────────▶ open        (cooldown restarts now)
 * half-open ──release(the probe's token)───▶ open        (cooldown stays elapsed)
 * ```
 *
 * "Open with the cooldown elapsed" is still reported as `open`: the breaker is half-open only while
 * its probe is actually in flight, so the exported state says what is happening, not what may.
 *
 * Admission is split in two so the router can build its candidate list without spending the probe:
 * `canAdmit()` is a pure query, `acquire()` is called for the one worker actually picked.
 *
 * Verdicts that arrive while `open` are ignored: they belong to requests admitted before the
 * breaker opened, and must neither close it (a stale success) nor extend the cooldown (a stale
 * failure). While half-open, the breaker cannot tell the probe from a straggler admitted before it
 * opened; the first verdict decides. That is harmless: a straggler's verdict is as recent evidence
 * about the worker as the probe's. Freeing the slot is different: `acquire()` hands the probe a
 * token, and only `release(token)` with it frees the slot, so a straggler that ends without a
 * verdict (its client went away) cannot let a second probe out while the first is still running.
 *
 * No timers: time is read from the injected `Clock` only when asked. Cost: O(1) per call.
 *
 * @module
 */

import type { Clock } from "../util/clock.ts";

/** Breaker states. */
export type BreakerState = "closed" | "open" | "half-open";

/** Numeric codes of the states as exported by `router_breaker_state`. */
export const BREAKER_STATE_CODE: Readonly<Record<BreakerState, number>> = {
  closed: 0,
  open: 1,
  "half-open": 2,
};

/** Options of a `CircuitBreaker`. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker; an integer ≥ 1. */
  readonly threshold: number;
  /** Time the breaker stays open before one probe is let through, ms; ≥ 0. */
  readonly cooldownMs: number;
  /** Time source. */
  readonly clock: Clock;
  /** Called after every state transition with the new and the previous state. */
  readonly onChange?: (to: BreakerState, from: BreakerState) => void;
}

/** Circuit breaker for one worker. See the module comment for the state machine. */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #cooldownMs: number;
  readonly #clock: Clock;
  readonly #onChange: ((to: BreakerState, from: BreakerState) => void) | undefined;
  #state: BreakerState = "closed";
  #failures = 0;
  #openedAt = 0;
  /** Token of the probe now or last out (0: none yet). */
  #probe = 0;
  /** Clock time of the last transition (of the breaker's creation before the first). */
  #since: number;

  constructor(opts: CircuitBreakerOptions) {
    if (!Number.isInteger(opts.threshold) || opts.threshold < 1) {
      throw new RangeError(`Breaker threshold must be an integer ≥ 1, got ${opts.threshold}`);
    }
    if (!Number.isFinite(opts.cooldownMs) || opts.cooldownMs < 0) {
      throw new RangeError(
        `Breaker cooldown must be a finite number ≥ 0 ms, got ${opts.cooldownMs}`,
      );
    }
    this.#threshold = opts.threshold;
    this.#cooldownMs = opts.cooldownMs;
    this.#clock = opts.clock;
    this.#onChange = opts.onChange;
    this.#since = opts.clock.now();
  }

  /** Clock time (ms) the breaker entered its current state; its creation time before any change. */
  get since(): number {
    return this.#since;
  }

  /** Current state. */
  get state(): BreakerState {
    return this.#state;
  }

  /** Current state as a number for metrics: 0 closed, 1 open, 2 half-open. */
  get stateCode(): number {
    return BREAKER_STATE_CODE[this.#state];
  }

  /** Consecutive failures counted while closed (reset by a success or by opening). */
  get consecutiveFailures(): number {
    return this.#failures;
  }

  /**
   * Whether a request may be sent now: true when closed, or when open with the cooldown elapsed
   * (the probe slot is free). Pure: reads the clock, changes nothing.
   */
  canAdmit(): boolean {
    if (this.#state === "closed") return true;
    if (this.#state === "half-open") return false;
    return this.#cooldownElapsed();
  }

  /**
   * Called for the worker actually picked. When the breaker is open with the cooldown elapsed,
   * takes the probe slot (→ half-open) and returns the probe's token (> 0), for `release`. Else 0:
   * a no-op when closed, and when nothing may be admitted (the caller should have asked
   * `canAdmit()` first).
   */
  acquire(): number {
    if (this.#state !== "open" || !this.#cooldownElapsed()) return 0;
    this.#probe++;
    this.#move("half-open");
    return this.#probe;
  }

  /**
   * Frees the probe slot of a request that ended without a verdict (for example the client went
   * away before the upstream answered): `token` is what `acquire()` returned for it. The cooldown
   * stays elapsed, so the next request may probe. A no-op unless half-open with that very probe
   * out: any other request's token (0, or an earlier probe's) changes nothing.
   */
  release(token: number): void {
    if (this.#state === "half-open" && token !== 0 && token === this.#probe) this.#move("open");
  }

  /** Reports a request that the worker answered (status < 500). */
  success(): void {
    if (this.#state === "closed") {
      this.#failures = 0;
    } else if (this.#state === "half-open") {
      this.#failures = 0;
      this.#move("closed");
    }
    // open: a straggler admitted before the breaker opened; ignored (see module comment).
  }

  /** Reports a transport error or a status ≥ 500. */
  failure(): void {
    if (this.#state === "closed") {
      this.#failures++;
      if (this.#failures >= this.#threshold) this.#open();
    } else if (this.#state === "half-open") {
      this.#open();
    }
    // open: ignored, so stragglers do not extend the cooldown.
  }

  #open(): void {
    this.#failures = 0;
    this.#openedAt = this.#clock.now();
    this.#move("open");
  }

  #cooldownElapsed(): boolean {
    return this.#clock.now() - this.#openedAt >= this.#cooldownMs;
  }

  #move(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#since = this.#clock.now();
    this.#onChange?.(to, from);
  }
}
