/**
 * Contracts of worker discovery: a source of the current worker list (static, DNS, Kubernetes)
 * that reports the whole list whenever it changes.
 *
 * A discovery knows nothing of the router: its output is meant to go through the same path as a
 * config reload (`Router.reload` with the workers replaced), so a worker that stays keeps its
 * prefix tree and one that leaves or changes URL loses it.
 *
 * @module
 */

/** One worker found by discovery. */
export interface DiscoveredWorker {
  /** Stable id, `[A-Za-z0-9._-]+` (a pod name, `host-port`). */
  readonly id: string;
  /** Base URL, `http(s)://host:port`, no trailing slash. */
  readonly url: string;
}

/** Called with the full, id-sorted list each time it changes (also once after the first look). */
export type WorkersListener = (workers: readonly DiscoveredWorker[]) => void;

/** A source of workers. Nothing runs until `start`; `stop` ends every timer and connection. */
export interface Discovery {
  /** `static`, `dns` or `kubernetes`. */
  readonly kind: string;
  /**
   * Starts watching. Resolves after the first look: when it found workers, `onChange` has been
   * called with them. A failed first look is logged and retried; it does not reject.
   */
  start(onChange: WorkersListener): Promise<void>;
  /** Stops watching; no `onChange` call follows. */
  stop(): Promise<void>;
  /** The last list reported (empty before the first). */
  current(): readonly DiscoveredWorker[];
}

/** A structured logger; the router's `Logger` fits. */
export interface DiscoveryLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger that writes nothing. */
export const quietLogger: DiscoveryLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
