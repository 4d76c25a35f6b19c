/**
 * `EngineScraper`: reads each worker's `/metrics` every `intervalMs` and keeps its latest
 * `EngineSignals` (engine_metrics.ts), so strategies can see load the router did not send: other
 * routers' and clients' requests on the same engine.
 *
 * Rules:
 * - Each target has its own loop: scrape, then wait `intervalMs` after the scrape ended. At most
 *   one scrape per target is in flight (`scrapeOnce()` joins a running one), and a slow or dead
 *   worker never delays another's scrape.
 * - A failed scrape (transport error, timeout, non-2xx) keeps the last good signals and their
 *   time; they turn stale when older than `maxAgeMs` (default: `staleAfterIntervals` (3) ×
 *   `intervalMs` + `timeoutMs`, so a normal scrape never makes them look old), and from then on
 *   `engineLoad` gives nothing for that worker: routing falls back to the router's own counts.
 * - A page without known names (an engine that does not export them, a 404 from a server without
 *   metrics) gives no figures and never affects routing beyond that.
 * - Time comes from the injected `Clock`; it must be the one whose `now()` the router puts in
 *   `PickContext.now`, since strategies compare the two.
 *
 * Lifecycle: the constructor starts nothing. `start()` scrapes every target at once and then on
 * its own timer; `stop()` clears the timers, aborts scrapes in flight (their result is dropped)
 * and resolves once they have settled. `setTargets` follows a config reload.
 *
 * The view strategies get (`engineLoad`, an `EngineLoad`) carries running, waiting, KV usage and
 * `queuedRequestTokens`, the engine's mean uncached prompt (`queuedRequestTokens` below), which
 * prices the requests others queued there.
 *
 * Cost per target and interval: one GET, its body streamed and capped (`maxBytes`), one small
 * frozen `EngineLoad` per good scrape; `engineLoad` is a map lookup and allocates nothing.
 *
 * @module
 */

import { type Clock, systemClock } from "../util/clock.ts";
import type { EngineLoad } from "../strategies/types.ts";
import {
  DEFAULT_MAX_METRICS_BYTES,
  EMPTY_SIGNALS,
  type EngineFigures,
  type EngineKind,
  type EngineSignals,
  fetchEngineSignals,
} from "./engine_metrics.ts";

/** One worker to scrape. */
export interface ScrapeTarget {
  readonly id: string;
  /** Base URL, `http(s)://host:port[/base]`, no trailing slash. */
  readonly url: string;
  /**
   * Path of its metrics page; absent: the scraper's `path`. `""` when `url` is already the whole
   * metrics URL (an engine that serves metrics on another port, as Dynamo's system port does).
   */
  readonly path?: string;
  /** Bearer token sent as `Authorization`, when set. */
  readonly apiKey?: string | null;
}

/** Options of an `EngineScraper`. */
export interface EngineScraperOptions {
  readonly targets: readonly ScrapeTarget[];
  /** Pause after each scrape of a target, ms; ≤ 0 turns `start()` off. */
  readonly intervalMs: number;
  /** Deadline of one scrape, body included, ms. */
  readonly timeoutMs: number;
  /** Default metrics path, starting with `/`; `/metrics`. */
  readonly path?: string;
  /** Body bytes read per scrape at most; 4 MiB. */
  readonly maxBytes?: number;
  /** Intervals without a good scrape after which the signals are stale; 3. */
  readonly staleAfterIntervals?: number;
  /** Overrides the derived staleness age, ms. */
  readonly maxAgeMs?: number;
  readonly clock?: Clock;
  /**
   * Called after every completed scrape (not for those `stop()` aborted); `err` when it failed.
   * Exceptions it throws are logged and otherwise ignored.
   */
  readonly onResult?: (id: string, reading: EngineReading, err?: Error) => void;
}

/** What the scraper knows of one worker's engine. */
export interface EngineReading {
  /** Signals of the last good scrape (`EMPTY_SIGNALS` before one). */
  readonly signals: EngineSignals;
  /** Clock time of the last good scrape, ms; `-Infinity` before one. */
  readonly at: number;
  /** Good scrapes so far. */
  readonly scrapes: number;
  /** Failed scrapes since the last good one. */
  readonly failures: number;
  /** Why the last scrape failed; null after a good one. */
  readonly lastError: string | null;
}

const NO_READING: EngineReading = Object.freeze({
  signals: EMPTY_SIGNALS,
  at: -Infinity,
  scrapes: 0,
  failures: 0,
  lastError: null,
});

interface TargetState {
  target: ScrapeTarget;
  reading: EngineReading;
  /** Candidate views of the last good scrape: worker totals, and per model on demand. */
  load: EngineLoad | undefined;
  modelLoads: Map<string, EngineLoad | undefined>;
  inflight: Promise<void> | undefined;
  ctl: AbortController | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Run of the loop that owns `timer`: a loop of an earlier start never re-arms. */
  run: number;
}

/** Periodic `/metrics` reader for a set of workers. */
export class EngineScraper {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Age past which a worker's signals are stale, ms. */
  readonly maxAgeMs: number;
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  readonly #onResult: EngineScraperOptions["onResult"];
  #targets = new Map<string, TargetState>();
  #running = false;
  #run = 0;

  /** Throws a RangeError on a bad path, timeout, interval count or duplicate id. */
  constructor(opts: EngineScraperOptions) {
    const path = opts.path ?? "/metrics";
    if (!path.startsWith("/")) {
      throw new RangeError(`Metrics path must start with "/", got "${path}"`);
    }
    if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) {
      throw new RangeError(`Scrape timeout must be a positive number of ms, got ${opts.timeoutMs}`);
    }
    const n = opts.staleAfterIntervals ?? 3;
    if (!Number.isFinite(n) || n < 1) {
      throw new RangeError(`Stale-after interval count must be at least 1, got ${n}`);
    }
    this.intervalMs = opts.intervalMs;
    this.timeoutMs = opts.timeoutMs;
    this.maxAgeMs = opts.maxAgeMs ??
      n * (opts.intervalMs > 0 ? opts.intervalMs : opts.timeoutMs) + opts.timeoutMs;
    this.#path = path;
    this.#maxBytes = opts.maxBytes ?? DEFAULT_MAX_METRICS_BYTES;
    this.#clock = opts.clock ?? systemClock;
    this.#onResult = opts.onResult;
    this.setTargets(opts.targets);
  }

  /** Whether periodic scraping is running. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Timers armed and scrapes in flight, over all targets (0 after `stop()` has resolved). For
   * tests: Deno's test sanitizers do not report a pending timer.
   */
  get pending(): { timers: number; scrapes: number } {
    let timers = 0;
    let scrapes = 0;
    for (const t of this.#targets.values()) {
      if (t.timer !== undefined) timers++;
      if (t.inflight !== undefined) scrapes++;
    }
    return { timers, scrapes };
  }

  /** What is known of worker `id`; undefined for an unknown id. */
  reading(id: string): EngineReading | undefined {
    return this.#targets.get(id)?.reading;
  }

  /** Whether worker `id`'s signals are missing or older than `maxAgeMs` now. */
  isStale(id: string): boolean {
    const r = this.#targets.get(id)?.reading;
    return r === undefined || !(this.#clock.now() - r.at <= this.maxAgeMs);
  }

  /**
   * The view strategies read (`Candidate.engine`): the figures of `model` when the page has them
   * apart, else the worker's; undefined when there is no good scrape, it is stale, or the engine
   * exports none of running, waiting and KV usage. No allocation after the first call per model.
   */
  engineLoad(id: string, model?: string): EngineLoad | undefined {
    const t = this.#targets.get(id);
    if (t === undefined || this.isStale(id)) return undefined;
    if (model === undefined || !t.reading.signals.models.has(model)) return t.load;
    if (t.modelLoads.has(model)) return t.modelLoads.get(model);
    const signals = t.reading.signals;
    const l = this.#view(signals.models.get(model)!, t.reading.at, signals.engine);
    t.modelLoads.set(model, l);
    return l;
  }

  /**
   * Replaces the target list (a config reload). A target with the same id and url keeps its
   * reading and loop; a new one starts scraping now when the scraper runs; a removed one stops
   * (its scrape in flight is aborted).
   */
  setTargets(targets: readonly ScrapeTarget[]): void {
    const next = new Map<string, TargetState>();
    for (const target of targets) {
      if (next.has(target.id)) throw new RangeError(`Duplicate scrape target id "${target.id}"`);
      const old = this.#targets.get(target.id);
      if (old !== undefined && old.target.url === target.url) {
        old.target = target;
        next.set(target.id, old);
        continue;
      }
      next.set(target.id, {
        target,
        reading: NO_READING,
        load: undefined,
        modelLoads: new Map(),
        inflight: undefined,
        ctl: undefined,
        timer: undefined,
        run: 0,
      });
    }
    for (const [id, t] of this.#targets) if (next.get(id) !== t) this.#halt(t);
    this.#targets = next;
    if (this.#running) { for (const t of next.values()) if (t.run !== this.#run) this.#loop(t); }
  }

  /** Starts periodic scraping: every target now, then every `intervalMs`. Idempotent. */
  start(): void {
    if (this.#running || this.intervalMs <= 0) return;
    this.#running = true;
    this.#run++;
    for (const t of this.#targets.values()) this.#loop(t);
  }

  /** Stops scraping and aborts scrapes in flight; resolves once they have settled. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#run++;
    const pending: Promise<void>[] = [];
    for (const t of this.#targets.values()) {
      if (t.inflight) pending.push(t.inflight);
      this.#halt(t);
    }
    await Promise.all(pending);
  }

  /** Scrapes every target once (joining scrapes already in flight); resolves when all are in. */
  async scrapeOnce(): Promise<void> {
    await Promise.all([...this.#targets.values()].map((t) => this.#scrape(t)));
  }

  #loop(t: TargetState): void {
    const run = t.run = this.#run;
    t.timer = undefined;
    this.#scrape(t).finally(() => {
      if (this.#running && t.run === run && this.#targets.get(t.target.id) === t) {
        t.timer = setTimeout(() => this.#loop(t), this.intervalMs);
      }
    });
  }

  #halt(t: TargetState): void {
    t.run = -1;
    if (t.timer !== undefined) clearTimeout(t.timer);
    t.timer = undefined;
    t.ctl?.abort(STOPPED);
  }

  #scrape(t: TargetState): Promise<void> {
    if (t.inflight) return t.inflight;
    const ctl = t.ctl = new AbortController();
    const p = this.#fetch(t, ctl).finally(() => {
      if (t.inflight === p) {
        t.inflight = undefined;
        t.ctl = undefined;
      }
    });
    return t.inflight = p;
  }

  async #fetch(t: TargetState, ctl: AbortController): Promise<void> {
    const target = t.target;
    const url = target.url + (target.path ?? this.#path);
    let err: Error | undefined;
    try {
      const signals = await fetchEngineSignals(url, {
        timeoutMs: this.timeoutMs,
        maxBytes: this.#maxBytes,
        apiKey: target.apiKey,
        signal: ctl.signal,
      });
      if (ctl.signal.aborted) return;
      const at = this.#clock.now();
      t.reading = Object.freeze({
        signals,
        at,
        scrapes: t.reading.scrapes + 1,
        failures: 0,
        lastError: null,
      });
      t.load = this.#view(signals, at, signals.engine);
      t.modelLoads = new Map();
    } catch (e) {
      if (ctl.signal.aborted) return; // stopped or removed: not the worker's fault
      err = e instanceof Error ? e : new Error(String(e));
      t.reading = Object.freeze({
        ...t.reading,
        failures: t.reading.failures + 1,
        lastError: err.message,
      });
    }
    if (this.#onResult) {
      try {
        this.#onResult(target.id, t.reading, err);
      } catch (cbErr) {
        console.error(`Scrape result callback failed for worker "${target.id}":`, cbErr);
      }
    }
  }

  /** The strategies' view of some figures read at `at`; undefined when none is usable. */
  #view(f: EngineFigures, at: number, engine: EngineKind): EngineLoad | undefined {
    // llama-server's ratio counts the prompts idle slots keep cached, and it never preempts (a
    // request without a free slot is deferred, which `waiting` shows): no risk to price there.
    const kvUsage = engine === "llamacpp" ? undefined : f.kvUsage;
    if (f.running === undefined && f.waiting === undefined && kvUsage === undefined) {
      return undefined;
    }
    return Object.freeze({
      running: f.running,
      waiting: f.waiting,
      kvUsage,
      queuedRequestTokens: queuedRequestTokens(f),
      at,
      maxAgeMs: this.maxAgeMs,
    });
  }
}

/**
 * Prompt tokens a typical request still has to compute on this engine: its mean prompt since
 * start (`promptTokens ÷ requests`) times the share the prefix cache did not serve (`1 − hits ÷
 * queries`, else `1 − hitRate`). Undefined until the engine has finished a request or when it does
 * not export the counters (llama-server). These are the engine's tokens, not the router's
 * bytes ÷ 4 estimate; for English text with BPE vocabularies the two are close.
 */
export function queuedRequestTokens(f: EngineFigures): number | undefined {
  if (f.promptTokens === undefined || f.requests === undefined || !(f.requests > 0)) {
    return undefined;
  }
  const mean = f.promptTokens / f.requests;
  let hit = 0;
  if (f.prefixCacheQueries !== undefined && f.prefixCacheQueries > 0) {
    hit = Math.min(1, (f.prefixCacheHits ?? 0) / f.prefixCacheQueries);
  } else if (f.prefixCacheHitRate !== undefined) {
    hit = f.prefixCacheHitRate;
  }
  return mean * (1 - hit);
}

/** Abort reason of `stop()` and of a removed target. */
const STOPPED = Symbol("engine scraper stopped");
