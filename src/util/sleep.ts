/**
 * An interruptible sleep: a wait that a `stop()` can end early.
 *
 * @module
 */

/** A pending sleep: {@linkcode Sleep.promise} resolves after the delay or at `wake()`. */
export interface Sleep {
  /** Resolves once, after the delay or at the first `wake()`, whichever comes first. */
  readonly promise: Promise<void>;
  /** Ends the sleep now and clears its timer; later calls do nothing. */
  wake(): void;
}

/** Starts a sleep of `ms` milliseconds that `wake()` can end early. */
export function sleep(ms: number): Sleep {
  const { promise, resolve } = Promise.withResolvers<void>();
  const timer = setTimeout(wake, ms);
  function wake(): void {
    clearTimeout(timer);
    resolve();
  }
  return { promise, wake };
}
