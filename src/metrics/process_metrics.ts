/**
 * Process metrics under the names Prometheus' client libraries use (`process_*`, `nodejs_*`), read
 * from Deno's own APIs at scrape time, plus an event-loop lag sampler that its owner starts and
 * stops.
 *
 * Why not prom-client's `collectDefaultMetrics`: under Deno 2.9.6 it runs, but with the router's
 * permissions (`--allow-net --allow-read --allow-env`) Deno refuses every read of `/proc/self`
 * (it asks for `--allow-all`), so memory and open descriptors read 0 instead of failing; its
 * event-loop monitor (`perf_hooks.monitorEventLoopDelay`) missed a 300 ms block (it reported a
 * 4.5 ms maximum, measured), the GC histogram never fills and active handles are always empty. It
 * also starts a process-wide monitor nobody can stop. So the same names come from here:
 *
 * - CPU: `process.cpuUsage()` (`node:process`, no permission needed), counters in seconds;
 * - memory: `Deno.memoryUsage()` (rss, V8 heap total/used, external); no permission needed;
 * - start time: `performance.timeOrigin`;
 * - open and max file descriptors: `/proc/self/fd` and `/proc/self/limits`, only when Deno lets
 *   the process read them (`--allow-all`, checked once at registration: permissions do not
 *   change while the router runs); otherwise those two families are not registered (absent,
 *   never a false 0);
 * - event-loop lag: {@link EventLoopLag}, a timer every `intervalMs` (default 500 ms) that measures
 *   how late it fires. `nodejs_eventloop_lag_seconds` is the last sample,
 *   `nodejs_eventloop_lag_max_seconds` the largest of the last {@link LAG_WINDOW} samples (about
 *   10 s), so a short stall between two scrapes still shows.
 *
 * Cost: nothing on the request path; a scrape reads a few counters (and lists `/proc/self/fd` when
 * allowed: one directory entry per open descriptor). The lag timer runs one callback per interval.
 *
 * @module
 */

import process from "node:process";
import { Counter, Gauge, type Registry } from "prom-client";
import { VERSION as ROUTER_VERSION } from "../version.ts";

/** Samples kept for `nodejs_eventloop_lag_max_seconds`. */
export const LAG_WINDOW = 20;

/**
 * Measures event-loop lag with one timer: each tick is scheduled `intervalMs` ahead, and the time
 * by which it fires late is the lag. No timer until `start()`; `stop()` clears it.
 */
export class EventLoopLag {
  readonly intervalMs: number;
  readonly #samples: number[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  #last = 0;

  constructor(intervalMs = 500) {
    if (!(intervalMs > 0)) throw new RangeError(`lag interval must be > 0 ms, got ${intervalMs}`);
    this.intervalMs = intervalMs;
  }

  /** Whether the timer runs. */
  get running(): boolean {
    return this.#timer !== null;
  }

  /** Starts sampling; a second call does nothing. */
  start(): void {
    if (this.#timer !== null) return;
    this.#schedule();
  }

  /** Stops sampling; the last figures stay readable. */
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Last lag measured, seconds (0 before the first sample). */
  get lastSeconds(): number {
    return this.#last / 1000;
  }

  /** Largest lag among the last {@link LAG_WINDOW} samples, seconds. */
  get maxSeconds(): number {
    let max = 0;
    for (const s of this.#samples) if (s > max) max = s;
    return max / 1000;
  }

  /** Records one lag sample, ms (the timer's; exposed for tests). */
  record(lagMs: number): void {
    this.#last = Math.max(0, lagMs);
    this.#samples.push(this.#last);
    if (this.#samples.length > LAG_WINDOW) this.#samples.shift();
  }

  #schedule(): void {
    const due = performance.now() + this.intervalMs;
    this.#timer = setTimeout(() => {
      this.record(performance.now() - due);
      if (this.#timer !== null) this.#schedule();
    }, this.intervalMs);
    // Never the reason the process stays up.
    Deno.unrefTimer(this.#timer as unknown as number);
  }
}

/** Runs `read`, or returns null when Deno refuses it (permissions) or the file is missing. */
function tryRead<T>(read: () => T): T | null {
  try {
    return read();
  } catch {
    return null;
  }
}

/** Open file descriptors (entries of `/proc/self/fd`), or null when not readable. */
export function openFds(): number | null {
  return tryRead(() => {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  });
}

/** The soft limit on open file descriptors (`/proc/self/limits`), or null when not readable. */
export function maxFds(): number | null {
  const text = tryRead(() => Deno.readTextFileSync("/proc/self/limits"));
  const line = text?.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line === undefined
    ? NaN
    : Number(line.slice("Max open files".length).trim().split(/\s+/)[0]);
  return Number.isFinite(soft) ? soft : null;
}

/**
 * Registers the process metrics on `registry`, read at each scrape; `lag` supplies the event-loop
 * figures (its owner starts and stops it).
 */
export function registerProcessMetrics(registry: Registry, lag: EventLoopLag): void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  // CPU counters are set from the process totals: they only grow, as a counter must.
  const cpu = (name: string, help: string, read: (u: NodeJS.CpuUsage) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read(process.cpuUsage()) / 1e6);
      },
    });
  cpu("process_cpu_user_seconds_total", "User CPU time spent, seconds", (u) => u.user);
  cpu("process_cpu_system_seconds_total", "System CPU time spent, seconds", (u) => u.system);
  cpu(
    "process_cpu_seconds_total",
    "User and system CPU time spent, seconds",
    (u) => u.user + u.system,
  );
  const started = performance.timeOrigin / 1000;
  gauge(
    "process_start_time_seconds",
    "Start time of the process, seconds since the epoch",
    () => started,
  );
  gauge(
    "process_resident_memory_bytes",
    "Resident memory size, bytes",
    () => Deno.memoryUsage().rss,
  );
  gauge("nodejs_heap_size_total_bytes", "V8 heap size, bytes", () => Deno.memoryUsage().heapTotal);
  gauge("nodejs_heap_size_used_bytes", "V8 heap in use, bytes", () => Deno.memoryUsage().heapUsed);
  gauge(
    "nodejs_external_memory_bytes",
    "Memory of objects bound to V8 objects (buffers), bytes",
    () => Deno.memoryUsage().external,
  );
  if (openFds() !== null) {
    gauge("process_open_fds", "Open file descriptors", () => openFds() ?? 0);
  }
  if (maxFds() !== null) {
    gauge("process_max_fds", "Limit on open file descriptors", () => maxFds() ?? 0);
  }
  gauge(
    "nodejs_eventloop_lag_seconds",
    "Event-loop lag, last sample, seconds",
    () => lag.lastSeconds,
  );
  gauge(
    "nodejs_eventloop_lag_max_seconds",
    `Event-loop lag, largest of the last ${LAG_WINDOW} samples, seconds`,
    () => lag.maxSeconds,
  );
  new Gauge({
    name: "router_build_info",
    help: "1, with the router's and Deno's versions as labels",
    labelNames: ["version", "deno", "v8"],
    registers,
  }).set({ version: ROUTER_VERSION, deno: Deno.version.deno, v8: Deno.version.v8 }, 1);
}
