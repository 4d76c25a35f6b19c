/**
 * Active health checks: every `intervalMs`, GET `<url><path>` on each worker with a `timeoutMs`
 * deadline, mark it up or down, and feed the worker's circuit breaker.
 *
 * Up/down: a worker is up when its last probe answered 2xx. Before its first probe a worker counts
 * as up, so a router that has just started admits traffic at once.
 *
 * Breaker verdict of a probe follows the breaker's own rule for requests: a transport error, a
 * timeout or a status ≥ 500 is a failure; any other answer (2xx, but also 4xx, such as a wrong
 * path) is not. How a probe reaches the breaker depends on the breaker's state:
 *
 * | breaker                    | probe failed                      | probe passed              |
 * | -------------------------- | --------------------------------- | ------------------------- |
 * | closed                     | `failure()`: counts to threshold  | nothing                   |
 * | open, cooldown elapsed     | `acquire()`, `failure()`: reopens | `acquire()`, `success()`: |
 * |                            | for a new cooldown                | closes                    |
 * | open, cooling down         | nothing                           | nothing                   |
 * | half-open, request probing | nothing                           | nothing                   |
 *
 * Why: a passing health probe while closed says nothing about completions that keep failing, so it
 * does not reset the failure streak. Once the cooldown has elapsed the health probe takes the
 * breaker's single probe slot itself, so no client request has to be the one that finds out whether
 * the worker is back. Before that, and while a request's probe is out, the breaker's own rule
 * decides alone.
 *
 * Lifecycle: the constructor starts nothing. `start()` runs a round at once and then one round
 * `intervalMs` after the previous round ended (rounds never overlap); `stop()` clears the timer,
 * aborts in-flight probes (their result is dropped, not counted as a failure) and resolves when the
 * running round has settled. `checkOnce()` runs one round on demand.
 *
 * Cost per round: one GET per worker, all in parallel; the response body is never read.
 *
 * @module
 */

import type { CircuitBreaker } from "./circuit_breaker.ts";

/** One worker to probe. */
export interface HealthTarget {
  readonly id: string;
  /** Base URL, `http(s)://host:port`, no trailing slash. */
  readonly url: string;
  /** The worker's breaker, fed as described in the module comment. */
  readonly breaker: CircuitBreaker;
  /** Bearer token sent as `Authorization`, when set. */
  readonly apiKey?: string | null;
}

/** Options of a `HealthChecker`. */
export interface HealthCheckerOptions {
  readonly targets: readonly HealthTarget[];
  /** Pause between the end of one round and the start of the next, ms; ≤ 0 turns `start()` off. */
  readonly intervalMs: number;
  /** Deadline of one probe, ms. */
  readonly timeoutMs: number;
  /** Path probed, starting with `/` (`/health`, `/v1/models`). */
  readonly path: string;
  /**
   * Called after every completed probe (not for probes aborted by `stop()`), after the up/down mark
   * and the breaker have been updated. `err` says why a worker is down. Exceptions it throws are
   * logged and otherwise ignored.
   */
  readonly onResult?: (id: string, up: boolean, err?: Error) => void;
}

/** Abort reason used by `stop()`, to tell it from a probe timeout. */
const STOPPED = Symbol("health checker stopped");
/** Abort reason used by the per-probe deadline. */
const TIMED_OUT = Symbol("health probe timed out");

/** Periodic health prober for a set of workers. */
export class HealthChecker {
  readonly #targets: readonly HealthTarget[];
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #path: string;
  readonly #onResult: ((id: string, up: boolean, err?: Error) => void) | undefined;
  readonly #up = new Map<string, boolean>();
  readonly #inflight = new Set<AbortController>();
  #running = false;
  /** Bumped by every start and stop: a round of an earlier run never re-arms the timer. */
  #run = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round: Promise<void> | undefined;

  constructor(opts: HealthCheckerOptions) {
    if (!opts.path.startsWith("/")) {
      throw new RangeError(`Health path must start with "/", got "${opts.path}"`);
    }
    if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) {
      throw new RangeError(`Health timeout must be a positive number of ms, got ${opts.timeoutMs}`);
    }
    for (const t of opts.targets) {
      if (this.#up.has(t.id)) throw new RangeError(`Duplicate health target id "${t.id}"`);
      this.#up.set(t.id, true);
    }
    this.#targets = opts.targets;
    this.#intervalMs = opts.intervalMs;
    this.#timeoutMs = opts.timeoutMs;
    this.#path = opts.path;
    this.#onResult = opts.onResult;
  }

  /** Whether the last probe answered 2xx; true before the first probe, false for unknown ids. */
  up(id: string): boolean {
    return this.#up.get(id) ?? false;
  }

  /** Whether periodic checking is running. */
  get running(): boolean {
    return this.#running;
  }

  /** Starts periodic checking: one round now, then one every `intervalMs`. Idempotent. */
  start(): void {
    if (this.#running || this.#intervalMs <= 0) return;
    this.#running = true;
    this.#run++;
    this.#tick(this.#run);
  }

  /**
   * Stops periodic checking and aborts in-flight probes. Resolves once the round in progress, if
   * any, has settled, so no probe outlives the returned promise.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#run++;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    for (const ctl of this.#inflight) ctl.abort(STOPPED);
    await this.#round;
  }

  /** Probes every target once, in parallel, and resolves when all results are recorded. */
  async checkOnce(): Promise<void> {
    await Promise.all(this.#targets.map((t) => this.#probe(t)));
  }

  #tick(run: number): void {
    this.#timer = undefined;
    const round = this.checkOnce().finally(() => {
      if (this.#round === round) this.#round = undefined;
      // Only the current run re-arms: after stop() then start(), the old round's end must not
      // start a second loop (probing twice as often, one timer lost to the next stop()).
      if (this.#running && run === this.#run) {
        this.#timer = setTimeout(() => this.#tick(run), this.#intervalMs);
      }
    });
    this.#round = round;
  }

  async #probe(target: HealthTarget): Promise<void> {
    const url = target.url + this.#path;
    const ctl = new AbortController();
    this.#inflight.add(ctl);
    const deadline = setTimeout(() => ctl.abort(TIMED_OUT), this.#timeoutMs);
    const headers: Record<string, string> = {};
    if (target.apiKey) headers["authorization"] = `Bearer ${target.apiKey}`;
    let up: boolean;
    let serverFault: boolean;
    let err: Error | undefined;
    try {
      const res = await fetch(url, { method: "GET", headers, signal: ctl.signal });
      // Only the status matters; dropping the body frees the connection without waiting for it.
      await res.body?.cancel();
      up = res.ok;
      serverFault = res.status >= 500;
      if (!up) err = new Error(`Health probe GET ${url} answered ${res.status}`);
    } catch (e) {
      if (ctl.signal.reason === STOPPED) return;
      up = false;
      serverFault = true;
      err = ctl.signal.reason === TIMED_OUT
        ? new Error(`Health probe GET ${url} timed out after ${this.#timeoutMs} ms`)
        : new Error(`Health probe GET ${url} failed: ${e instanceof Error ? e.message : e}`, {
          cause: e,
        });
    } finally {
      clearTimeout(deadline);
      this.#inflight.delete(ctl);
    }
    this.#up.set(target.id, up);
    feedBreaker(target.breaker, serverFault);
    if (this.#onResult) {
      try {
        this.#onResult(target.id, up, err);
      } catch (cbErr) {
        console.error(`Health result callback failed for worker "${target.id}":`, cbErr);
      }
    }
  }
}

/** Applies one probe verdict to a breaker, per the table in the module comment. */
function feedBreaker(breaker: CircuitBreaker, failed: boolean): void {
  if (breaker.state === "closed") {
    if (failed) breaker.failure();
    return;
  }
  if (!breaker.canAdmit()) return; // cooling down, or a request's probe is out
  breaker.acquire();
  if (failed) breaker.failure();
  else breaker.success();
}
