/**
 * The batch exporter: ended spans → OTLP/HTTP JSON requests, off the request path, in bounded
 * memory.
 *
 * - `add` is O(1) and never waits: a span goes into the queue, or is dropped and counted when the
 *   queue holds `maxQueueSize` (or the exporter is shut down).
 * - An export starts when the queue holds `maxBatchSize` spans (on the next turn of the event loop,
 *   never inside `add`), or `flushIntervalMs` after the first span entered an idle exporter; a
 *   timed flush sends what was queued when it fired, in batches of at most `maxBatchSize`. One
 *   request is in flight at a time; the timers run only while spans wait.
 * - Each request is cut after `exportTimeoutMs`. A retryable failure (HTTP 429, 502, 503, 504, a
 *   network error or time-out, as the OTLP spec lists them) is retried up to `maxRetries` times:
 *   after the collector's `Retry-After` (seconds or an HTTP date, at most 60 s) when it gave one,
 *   else after 1 s, 2 s, 4 s … (at most 30 s) with jitter (× 0.5-1). Other failures, and a batch
 *   whose retries are spent, are dropped and counted. While a batch waits to be retried, new spans
 *   queue up to the cap, then drop: a collector that is down costs at most `maxQueueSize` spans
 *   plus one batch of memory, and nothing on the request path.
 * - A batch is encoded 128 spans at a time, the event loop free between slices (`setTimeout` 0:
 *   the only yield measured to let sockets be served meanwhile; `setImmediate` and
 *   `MessageChannel` did not). A slice is 0.2-0.6 ms of work here; a whole 512-span batch held the
 *   loop for 1-4 ms. Slices are few because chained timers are clamped to 4 ms after five.
 * - `shutdown` stops the timers, cuts a retry wait short (one last try), exports what is queued
 *   and gives up at its deadline (the in-flight request aborted, the rest counted as failed).
 *
 * @module
 */

import { encodeRequest, encodeSpans, type ExportHead, type SpanRecord } from "./otlp_json.ts";

type Timer = ReturnType<typeof setTimeout>;

/** What one export request came to. */
export interface ExportResult {
  readonly ok: boolean;
  /** Whether the failure may pass if the batch is sent again. */
  readonly retryable: boolean;
  /** The collector's `Retry-After`, ms; null when it gave none. */
  readonly retryAfterMs: number | null;
  /** Spans the collector rejected in an accepted request (OTLP partial success). */
  readonly rejected: number;
}

/** Sends one JSON body to the collector; may throw (then a retryable failure). */
export type Transport = (body: string, signal: AbortSignal) => Promise<ExportResult>;

/** Settings of a {@link BatchExporter}. */
export interface ExporterOptions {
  readonly maxBatchSize: number;
  readonly maxQueueSize: number;
  readonly flushIntervalMs: number;
  readonly exportTimeoutMs: number;
  readonly maxRetries: number;
  readonly transport: Transport;
  readonly head: ExportHead;
  /** Jitter source in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/** First back-off after a retryable failure without `Retry-After`, ms. */
export const BACKOFF_BASE_MS = 1000;
/** Longest back-off, ms. */
export const BACKOFF_MAX_MS = 30_000;
/** Longest `Retry-After` honoured, ms; a longer one is cut to this. */
export const RETRY_AFTER_MAX_MS = 60_000;

/** Spans encoded in one go before the exporter yields to the event loop. */
export const ENCODE_SLICE = 128;

/** Counters of a {@link BatchExporter}. */
export interface ExporterCounters {
  exported: number;
  droppedQueueFull: number;
  droppedExportFailed: number;
  rejected: number;
  failedRequests: number;
}

/** See the module comment. */
export class BatchExporter {
  readonly counters: ExporterCounters = {
    exported: 0,
    droppedQueueFull: 0,
    droppedExportFailed: 0,
    rejected: 0,
    failedRequests: 0,
  };
  readonly #o: ExporterOptions;
  readonly #random: () => number;
  #queue: SpanRecord[] = [];
  #intervalTimer: Timer | null = null;
  #soonTimer: Timer | null = null;
  #running: Promise<void> | null = null;
  /** A timed flush fired while an export ran. */
  #flushPending = false;
  #closed = false;
  #shutdown: Promise<void> | null = null;
  /** Aborts the request in flight when the shutdown deadline passes. */
  readonly #stop = new AbortController();
  #wake: (() => void) | null = null;

  constructor(options: ExporterOptions) {
    this.#o = options;
    this.#random = options.random ?? Math.random;
  }

  /** Spans waiting for export. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues an ended span, or drops it when the queue is full; never waits. */
  add(span: SpanRecord): void {
    if (this.#closed || this.#queue.length >= this.#o.maxQueueSize) {
      this.counters.droppedQueueFull++;
      return;
    }
    this.#queue.push(span);
    if (this.#running !== null) return; // the export loop, or its end, picks it up
    if (this.#queue.length >= this.#o.maxBatchSize) this.#soon();
    else if (this.#intervalTimer === null) this.#armInterval();
  }

  /** See the module comment; later calls return the first call's promise. */
  shutdown(timeoutMs: number): Promise<void> {
    this.#shutdown ??= this.#close(timeoutMs);
    return this.#shutdown;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    this.#clearTimers();
    this.#wake?.();
    const deadline = setTimeout(() => this.#stop.abort(), timeoutMs);
    try {
      if (this.#running !== null) await this.#running;
      while (this.#queue.length > 0 && !this.#stop.signal.aborted) {
        await this.#exportBatch(this.#queue.splice(0, this.#o.maxBatchSize));
      }
      this.counters.droppedExportFailed += this.#queue.length;
      this.#queue = [];
    } finally {
      clearTimeout(deadline);
    }
  }

  #armInterval(): void {
    this.#intervalTimer = setTimeout(() => {
      this.#intervalTimer = null;
      this.#start(true);
    }, this.#o.flushIntervalMs);
  }

  #soon(): void {
    if (this.#soonTimer !== null) return;
    this.#soonTimer = setTimeout(() => {
      this.#soonTimer = null;
      this.#start(false);
    }, 0);
  }

  #clearTimers(): void {
    if (this.#intervalTimer !== null) clearTimeout(this.#intervalTimer);
    if (this.#soonTimer !== null) clearTimeout(this.#soonTimer);
    this.#intervalTimer = this.#soonTimer = null;
  }

  /** Starts the export loop: full batches, and with `timed` whatever is queued now. */
  #start(timed: boolean): void {
    if (this.#closed) return;
    if (this.#running !== null) {
      this.#flushPending ||= timed;
      return;
    }
    if (timed && this.#intervalTimer !== null) {
      clearTimeout(this.#intervalTimer);
      this.#intervalTimer = null;
    }
    this.#running = this.#loop(timed ? this.#queue.length : 0).finally(() => {
      this.#running = null;
      this.#afterLoop();
    });
  }

  async #loop(budget: number): Promise<void> {
    const max = this.#o.maxBatchSize;
    while (!this.#closed && (this.#queue.length >= max || (budget > 0 && this.#queue.length > 0))) {
      const batch = this.#queue.splice(0, max);
      budget -= batch.length;
      await this.#exportBatch(batch);
    }
  }

  #afterLoop(): void {
    if (this.#closed) return;
    if (this.#flushPending) {
      this.#flushPending = false;
      this.#start(true);
    } else if (this.#queue.length >= this.#o.maxBatchSize) {
      this.#soon();
    } else if (this.#queue.length > 0 && this.#intervalTimer === null) {
      this.#armInterval();
    }
  }

  /** Sends `batch`, retrying as the module comment says; counts how it ended. */
  async #exportBatch(batch: SpanRecord[]): Promise<void> {
    const body = await this.#encode(batch);
    let lastTry = this.#closed;
    for (let n = 0;; n++) {
      const r = await this.#send(body);
      if (r.ok) {
        const rejected = Math.min(batch.length, r.rejected);
        this.counters.exported += batch.length - rejected;
        this.counters.rejected += rejected;
        return;
      }
      this.counters.failedRequests++;
      if (!r.retryable || n >= this.#o.maxRetries || lastTry || this.#stop.signal.aborted) {
        this.counters.droppedExportFailed += batch.length;
        return;
      }
      await this.#sleep(this.#delay(n, r.retryAfterMs));
      lastTry = this.#closed;
    }
  }

  /**
   * The request body of `batch`, encoded {@link ENCODE_SLICE} spans at a time with a turn of the
   * event loop between slices: a 512-span batch would otherwise hold the loop for milliseconds,
   * and every request in flight with it.
   */
  async #encode(batch: SpanRecord[]): Promise<string> {
    const pieces: string[] = [];
    for (let i = 0; i < batch.length; i += ENCODE_SLICE) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      pieces.push(encodeSpans(batch.slice(i, i + ENCODE_SLICE)));
    }
    return encodeRequest(this.#o.head, pieces);
  }

  async #send(body: string): Promise<ExportResult> {
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    this.#stop.signal.addEventListener("abort", onStop);
    const timer = setTimeout(() => ctl.abort(), this.#o.exportTimeoutMs);
    try {
      return await this.#o.transport(body, ctl.signal);
    } catch {
      return { ok: false, retryable: true, retryAfterMs: null, rejected: 0 };
    } finally {
      clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", onStop);
    }
  }

  /** The wait before retry `n + 1`. */
  #delay(n: number, retryAfterMs: number | null): number {
    if (retryAfterMs !== null) return Math.min(Math.max(retryAfterMs, 0), RETRY_AFTER_MAX_MS);
    const base = Math.min(BACKOFF_BASE_MS * 2 ** n, BACKOFF_MAX_MS);
    return base * (0.5 + 0.5 * this.#random());
  }

  /** Waits `ms`, or less when the exporter shuts down meanwhile. */
  #sleep(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }
}

/** Statuses after which OTLP/HTTP clients may send the same request again. */
const RETRYABLE = new Set([429, 502, 503, 504]);

/** Most bytes of a collector's answer read (for its partial-success count). */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * The transport that POSTs to `url` (the collector's `/v1/traces`) with `fetch`, content type
 * `application/json` and `headers`.
 * @throws TypeError when `headers` holds a name or value `fetch` would refuse
 */
export function httpTransport(url: string, headers: Readonly<Record<string, string>>): Transport {
  const list: [string, string][] = [["content-type", "application/json"]];
  for (const [k, v] of Object.entries(headers)) list.push([k.toLowerCase(), v]);
  new Headers(list); // refuses a bad name or value now, not at every export
  return async (body, signal) => {
    const res = await fetch(url, { method: "POST", headers: list, body, signal });
    if (res.ok) {
      return {
        ok: true,
        retryable: false,
        retryAfterMs: null,
        rejected: rejectedOf(await head(res)),
      };
    }
    await res.body?.cancel().catch(() => {});
    const retryable = RETRYABLE.has(res.status);
    const retryAfterMs = retryable
      ? parseRetryAfter(res.headers.get("retry-after"), Date.now())
      : null;
    return { ok: false, retryable, retryAfterMs, rejected: 0 };
  };
}

/** The first {@link MAX_ANSWER_BYTES} of an answer's body as text; the rest is cancelled. */
async function head(res: Response): Promise<string> {
  if (res.body === null) return "";
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ANSWER_BYTES) {
      const r = await reader.read();
      if (r.done) break;
      parts.push(r.value);
      size += r.value.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder().decode(all);
}

/** `partialSuccess.rejectedSpans` of an OTLP JSON answer; 0 when absent or unreadable. */
export function rejectedOf(text: string): number {
  if (text === "") return 0;
  try {
    const n = Number(JSON.parse(text)?.partialSuccess?.rejectedSpans ?? 0);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

/**
 * A `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP date) in ms from `nowMs`
 * (epoch ms); null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  // All three HTTP date forms start with a day name; `Date.parse` alone reads "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(v)) return null;
  // asctime carries no zone, and means GMT: `Date.parse` would read it as local time.
  const at = Date.parse(/GMT$/.test(v) ? v : `${v} GMT`);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : null;
}
