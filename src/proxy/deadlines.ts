/**
 * Deadlines of one upstream attempt: connect, time to first byte, idle gap between body chunks,
 * and the whole request. One `AbortController` and at most one pending deadline per attempt.
 *
 * Phases and the deadlines that apply in each (all measured from the attempt's start except idle):
 *
 * | phase                      | connect | first byte | idle (since last chunk) | total |
 * | -------------------------- | ------- | ---------- | ----------------------- | ----- |
 * | waiting for headers        | yes     | yes        |                         | yes   |
 * | headers in, no body byte   |         | yes        |                         | yes   |
 * | body started               |         |            | yes                     | yes   |
 *
 * Connect: Deno's `fetch` exposes no connect phase (`Deno.createHttpClient` has no connect
 * timeout, and a streamed request body is read before the connection is up, so its first pull
 * says nothing). So when `connectMs` passes without response headers, the attempt dials the
 * worker's port itself, allowing it another `connectMs`: a dial that fails or hangs means the
 * worker cannot be reached, and the attempt is aborted as a connect failure; a dial that succeeds
 * means the worker is only slow to answer, and the other deadlines decide. Only attempts slower
 * than `connectMs` pay for this; a worker whose connections hang is given up after between one
 * and two `connectMs`.
 *
 * Cost: the attempt's earliest deadline is one entry in the process-wide `TimerQueue`
 * (`src/util/timer_queue.ts`), set at the start and moved only when it fires (it then recomputes
 * what is due) or when the idle deadline becomes the earliest; all attempts share one timer, so an
 * attempt that ends in time costs a heap insert and a removal, not a timer. Phase changes cost a
 * field write and a body chunk one `performance.now()`. The client's signal is linked with one
 * abort listener, removed at `end()`, rather than `AbortSignal.any`, whose dependent signals are
 * tracked through weak references. Time comes from `performance.now()`, not the router's injected
 * clock: these are real-time timers, and a test's manual clock must not stop them.
 *
 * @module
 */

import { deadlineTimers, TimerQueue } from "../util/timer_queue.ts";
import { errorMessage } from "../util/errors.ts";

/** Which deadline passed. */
export type TimeoutKind = "connect-timeout" | "ttfb-timeout" | "idle-timeout" | "timeout";

/** An attempt aborted because one of its deadlines passed. */
export class UpstreamTimeout extends Error {
  constructor(readonly kind: TimeoutKind, readonly ms: number, message: string) {
    super(message);
    this.name = "UpstreamTimeout";
  }
}

/** An attempt aborted because the connect check could not reach the worker at all. */
export class UpstreamUnreachable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamUnreachable";
  }
}

/** Limits of one attempt, ms; 0 turns a limit off. */
export interface DeadlineOptions {
  readonly connectMs: number;
  readonly ttfbMs: number;
  readonly idleMs: number;
  readonly totalMs: number;
  /** Host and port the connect check dials; null: no check (connect deadline off). */
  readonly dial: { readonly hostname: string; readonly port: number } | null;
  /** Names the worker in messages, e.g. `Worker w1`. */
  readonly label: string;
}

const WAIT_HEADERS = 0;
const WAIT_BODY = 1;
const STREAMING = 2;
const ENDED = 3;

/** Timers may fire a little early on a coarse clock; a deadline this close counts as reached. */
const SLACK_MS = 1;

/** The deadlines of one attempt; see the module comment. */
export class AttemptDeadlines {
  /** Aborts when the client goes away or a deadline passes (or `abort` is called). */
  readonly signal: AbortSignal;
  readonly #ctl = new AbortController();
  readonly #opts: DeadlineOptions;
  readonly #start: number;
  readonly #client: AbortSignal;
  /** Set when the client's signal aborted this attempt (then `reason` is undefined). */
  #byClient = false;
  #phase = WAIT_HEADERS;
  #lastByte = 0;
  /** The earliest deadline, in the shared queue (`entry.at` is Infinity when none is due). */
  readonly #entry = TimerQueue.entry(() => this.#fire());
  #probe: AbortController | null = null;
  #probeStart = 0;
  /** 0: not dialed, 1: dialing, 2: done (answered, or no longer needed). */
  #probeState = 0;

  private constructor(opts: DeadlineOptions, client: AbortSignal) {
    this.#opts = opts;
    this.#start = performance.now();
    this.#client = client;
    this.signal = this.#ctl.signal;
    if (client.aborted) this.#onClient();
    else client.addEventListener("abort", this.#onClient);
  }

  #onClient = (): void => {
    if (this.#ctl.signal.aborted) return;
    this.#byClient = true;
    this.#ctl.abort(this.#client.reason);
  };

  /** Starts the deadlines of an attempt beginning now; the caller must call `end()`. */
  static start(opts: DeadlineOptions, client: AbortSignal): AttemptDeadlines {
    const d = new AttemptDeadlines(opts, client);
    d.#arm();
    return d;
  }

  /** Why this attempt was aborted by a deadline or `abort()`; undefined otherwise. */
  get reason(): unknown {
    return this.#ctl.signal.aborted && !this.#byClient ? this.#ctl.signal.reason : undefined;
  }

  /** The response headers arrived: connect is settled. */
  headers(): void {
    if (this.#phase !== WAIT_HEADERS) return;
    this.#phase = WAIT_BODY;
    this.#stopProbe();
  }

  /** The first body byte arrived (or the body turned out empty): idle checks begin. */
  firstByte(): void {
    if (this.#phase >= STREAMING) return;
    this.#stopProbe();
    this.#phase = STREAMING;
    this.#lastByte = performance.now();
    const idle = this.#opts.idleMs;
    // The idle deadline may be the earliest now; every other change only removes deadlines.
    if (idle > 0 && this.#lastByte + idle < this.#entry.at) this.#arm();
  }

  /** A body chunk arrived. */
  chunk(): void {
    this.#lastByte = performance.now();
  }

  /** Aborts the attempt with `reason` (router shutdown) unless it is already aborted. */
  abort(reason: unknown): void {
    if (!this.#ctl.signal.aborted) this.#ctl.abort(reason);
  }

  /** Clears the timer and any connect check; call once the attempt is over, however it ended. */
  end(): void {
    this.#phase = ENDED;
    this.#stopProbe();
    deadlineTimers.cancel(this.#entry);
    this.#client.removeEventListener("abort", this.#onClient);
  }

  /** Puts the earliest deadline still to come in the queue, or takes the entry out if none. */
  #arm(): void {
    const o = this.#opts;
    let next = Infinity;
    if (o.totalMs > 0) next = this.#start + o.totalMs;
    if (this.#phase <= WAIT_BODY && o.ttfbMs > 0) next = Math.min(next, this.#start + o.ttfbMs);
    if (this.#phase === WAIT_HEADERS && o.connectMs > 0 && o.dial !== null) {
      if (this.#probeState === 0) next = Math.min(next, this.#start + o.connectMs);
      else if (this.#probeState === 1) next = Math.min(next, this.#probeStart + o.connectMs);
    }
    if (this.#phase === STREAMING && o.idleMs > 0) next = Math.min(next, this.#lastByte + o.idleMs);
    if (next === Infinity) deadlineTimers.cancel(this.#entry);
    else deadlineTimers.schedule(this.#entry, next);
  }

  #fire(): void {
    if (this.#phase === ENDED || this.#ctl.signal.aborted) return;
    const o = this.#opts;
    const now = performance.now() + SLACK_MS;
    const elapsed = now - this.#start;
    if (o.totalMs > 0 && elapsed >= o.totalMs) {
      return this.#timeout("timeout", o.totalMs, `timed out after ${o.totalMs} ms`);
    }
    if (this.#phase <= WAIT_BODY && o.ttfbMs > 0 && elapsed >= o.ttfbMs) {
      return this.#timeout("ttfb-timeout", o.ttfbMs, `sent no response byte within ${o.ttfbMs} ms`);
    }
    if (this.#phase === STREAMING && o.idleMs > 0 && now - this.#lastByte >= o.idleMs) {
      return this.#timeout("idle-timeout", o.idleMs, `sent nothing for ${o.idleMs} ms mid-body`);
    }
    if (this.#phase === WAIT_HEADERS && o.connectMs > 0 && o.dial !== null) {
      if (this.#probeState === 0 && elapsed >= o.connectMs) this.#dial(o.dial);
      else if (this.#probeState === 1 && now - this.#probeStart >= o.connectMs) {
        return this.#timeout(
          "connect-timeout",
          o.connectMs,
          `could not be connected to within ${o.connectMs} ms`,
        );
      }
    }
    this.#arm();
  }

  #timeout(kind: TimeoutKind, ms: number, what: string): void {
    this.#stopProbe();
    this.#ctl.abort(new UpstreamTimeout(kind, ms, `${this.#opts.label} ${what}`));
  }

  #dial(to: { hostname: string; port: number }): void {
    const probe = new AbortController();
    this.#probe = probe;
    this.#probeState = 1;
    this.#probeStart = performance.now();
    Deno.connect({ hostname: to.hostname, port: to.port, signal: probe.signal }).then(
      (conn) => {
        conn.close();
        if (this.#probe === probe) this.#stopProbe();
      },
      (err) => {
        if (this.#probe !== probe || probe.signal.aborted) return;
        this.#stopProbe();
        if (this.#phase !== WAIT_HEADERS || this.#ctl.signal.aborted) return;
        const why = errorMessage(err);
        this.#ctl.abort(new UpstreamUnreachable(`${this.#opts.label} cannot be reached: ${why}`));
      },
    );
  }

  #stopProbe(): void {
    const p = this.#probe;
    this.#probe = null;
    if (this.#probeState === 1) this.#probeState = 2;
    if (p !== null && !p.signal.aborted) p.abort();
  }
}

/** Host and port to dial for a worker base URL (brackets of an IPv6 host removed). */
export function dialTarget(url: string): { hostname: string; port: number } {
  const u = new URL(url);
  const port = u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return { hostname: u.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}
