/**
 * One worker's KV event subscription: a SUB connection to the engine's publisher, sequence
 * tracking, replay over a DEALER, reconnects, and counters for metrics. Decoded batches go to a
 * sink, in sequence order; so does the order to forget everything known about the worker.
 *
 * Rules (seq = the publisher's 8-byte sequence number, `last` = the last one applied):
 * - Cold start (nothing applied yet, or just cleared): with a replay endpoint, the batches the
 *   engine still keeps are replayed from 0 and applied before the live one (starting from an
 *   empty index, applying a suffix of the history gives a subset of what the engine holds, never
 *   more). The worker is warm when what was applied starts at seq 0, else cold.
 * - seq = last + 1: applied. seq ≤ last: the sequence went back, so the engine restarted:
 *   `clear("restart")`, then a cold start from this message.
 * - seq > last + 1 (a gap: the PUB's high-water mark dropped batches): replay from last + 1 and
 *   apply what comes before seq. When there is no replay endpoint, the replay fails or times out,
 *   or its first batch is past last + 1 (the engine no longer keeps what we missed):
 *   `clear("gap")`, the worker turns cold, and what the replay did return is applied from the
 *   empty index.
 * - Reconnect (connection lost, or silent past the heartbeat timeout): a new connection may reach
 *   the same engine or a restarted one whose numbers happen to run past `last`. So continuity is
 *   proven by replaying from `last` itself: only when the first replayed batch is `last` with the
 *   very payload applied last is the engine the same; the rest of the replay is applied.
 *   Live messages of the new connection that the replay already applied are skipped once.
 *   Otherwise (or without replay) `clear("reconnect")` and a cold start.
 * - Connecting retries with exponential back-off: base × 2^(attempt-1), capped at `maxMs`, times
 *   a jitter factor in [0.5, 1); the attempt count resets once a message arrives.
 * - A gap at the end of a burst shows only when the next batch comes, which may be long on an
 *   idle engine: so with replay, after `tailCheckMs` (default 2 s) without a message following
 *   some traffic, one replay from last + 1 is made; what it returns is applied as for a gap.
 * - While a replay runs, live messages wait in a queue of at most `maxPending` (default 10 000);
 *   past it they are dropped (counted) and show up as a gap afterwards.
 * - A batch that does not decode is dropped and counted (`malformed`), and its seq still counts
 *   as applied. Messages that are not `[topic, 8-byte seq, payload]` are dropped and counted.
 * - Never throws into the caller: sink errors are counted. No timers or sockets exist before
 *   `start()`; `stop()` closes the connections, ends sleeps and waits for both loops.
 *
 * Lag is the wall-clock time between the engine stamping a batch (`ts`) and the sink getting it;
 * it includes any clock offset between the two machines.
 *
 * @module
 */

import { connectZmtp, hasPrefix, subscribe } from "./client.ts";
import type { ZmtpConnection } from "./connection.ts";
import { KvEventDecoder } from "./decode.ts";
import { readSeq, type ReplayedBatch, type ReplayResult, requestReplay } from "./replay.ts";
import type { KvEventBatch } from "./types.ts";
import type { FrameLimits } from "./zmtp.ts";
import { type Sleep, sleep } from "../util/sleep.ts";

/** Why a worker's index must be emptied. */
export type ClearReason = "restart" | "gap" | "reconnect";

/** Where a subscriber delivers. */
export interface KvEventSink {
  /** One decoded batch, in sequence order. */
  batch(batch: KvEventBatch, seq: number): void;
  /** Everything known about this worker is stale: empty its index. */
  clear(reason: ClearReason): void;
}

/** Settings of one subscription. */
export interface KvEventSubscriberOptions {
  /** The engine's PUB endpoint, `tcp://host:port`. */
  readonly endpoint: string;
  /** The engine's replay ROUTER endpoint; null or absent when it has none. */
  readonly replayEndpoint?: string | null;
  /** Topic prefix to subscribe to; default "" (everything). */
  readonly topic?: string;
  readonly sink: KvEventSink;
  /** Default 1000 ms; the timeout defaults to 3 intervals. */
  readonly heartbeatIntervalMs?: number;
  readonly heartbeatTimeoutMs?: number;
  /** Default 3000 ms. */
  readonly connectTimeoutMs?: number;
  /** Back-off base and cap; defaults 100 ms and 5000 ms. */
  readonly reconnectBaseMs?: number;
  readonly reconnectMaxMs?: number;
  /** Whole replay exchange; default 5000 ms. */
  readonly replayTimeoutMs?: number;
  readonly maxReplayBatches?: number;
  readonly maxPending?: number;
  /**
   * With replay: after this long without a message (following some), replay from last + 1 once
   * to find batches the PUB dropped at the end of a burst; 0 turns it off. Default 2000 ms.
   */
  readonly tailCheckMs?: number;
  readonly limits?: FrameLimits;
  /** Wall clock in ms, for lag; default `Date.now`. */
  readonly wallClock?: () => number;
  /** Uniform [0, 1) for jitter; default `Math.random`. */
  readonly random?: () => number;
}

/** Counters of one subscription (monotonic unless said otherwise). */
export interface SubscriberCounters {
  batches: number;
  events: number;
  gaps: number;
  replays: number;
  replayFailures: number;
  clears: number;
  reconnects: number;
  malformed: number;
  /** Live messages dropped while a replay ran. */
  dropped: number;
  sinkErrors: number;
  /** Lag of the last batch, ms (a gauge). */
  lagMs: number;
}

/** The state of a subscription. */
export type SubscriberState = "stopped" | "connecting" | "connected";

type Pending =
  | { readonly frames: Uint8Array[] }
  | { readonly reconnected: true }
  | { readonly tailCheck: true };

/** One worker's subscription; see the module comment. */
export class KvEventSubscriber {
  readonly #o: KvEventSubscriberOptions;
  readonly #topic: Uint8Array;
  readonly #decoder = new KvEventDecoder();
  readonly counters: SubscriberCounters = {
    batches: 0,
    events: 0,
    gaps: 0,
    replays: 0,
    replayFailures: 0,
    clears: 0,
    reconnects: 0,
    malformed: 0,
    dropped: 0,
    sinkErrors: 0,
    lagMs: 0,
  };
  #running = false;
  #state: SubscriberState = "stopped";
  #conn: ZmtpConnection | null = null;
  #abort = new AbortController();
  #sleep: Sleep | null = null;
  #loops: Promise<void>[] = [];
  #pending: Pending[] = [];
  #wakeProcessor: (() => void) | null = null;
  #attempt = 0;
  #last: number | null = null;
  #lastPayload: Uint8Array | null = null;
  #warm = false;
  /** Live seqs in (floor, ceiling] were applied by a reconnect's replay: skip them once. */
  #dup: { floor: number; ceiling: number } | null = null;
  #tailTimer: ReturnType<typeof setInterval> | undefined;
  /** Live messages since the last tail check was queued (0 = quiet). */
  #heard = 0;
  #tailQueued = true;

  constructor(options: KvEventSubscriberOptions) {
    this.#o = options;
    this.#topic = new TextEncoder().encode(options.topic ?? "");
  }

  /** Connection state. */
  get state(): SubscriberState {
    return this.#state;
  }

  /** Whether everything the engine published since its start was applied. */
  get warm(): boolean {
    return this.#warm;
  }

  /** Sequence number of the last batch applied; null before any (or right after a clear). */
  get lastSeq(): number | null {
    return this.#last;
  }

  /** Decoder counters (unknown fields and event types, malformed events). */
  get decodeStats(): KvEventDecoder["stats"] {
    return this.#decoder.stats;
  }

  /** Starts connecting (idempotent). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#loops = [this.#connectLoop(), this.#processLoop()];
    const tailMs = this.#o.tailCheckMs ?? 2000;
    if (this.#o.replayEndpoint && tailMs > 0) {
      this.#tailTimer = setInterval(() => {
        // Quiet for a whole period after some traffic: ask once whether the tail was dropped.
        if (this.#heard === 0 && !this.#tailQueued) {
          this.#tailQueued = true;
          this.#enqueue({ tailCheck: true }, true);
        }
        this.#heard = 0;
      }, tailMs);
    }
  }

  /** Stops and waits until no socket, timer or loop is left. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#tailTimer);
    this.#sleep?.wake();
    this.#abort.abort();
    this.#conn?.close("subscriber stopped");
    this.#wakeProcessor?.();
    await Promise.all(this.#loops);
    this.#loops = [];
    this.#pending = [];
    this.#state = "stopped";
  }

  async #connectLoop(): Promise<void> {
    let connectedBefore = false;
    while (this.#running) {
      this.#state = "connecting";
      let conn: ZmtpConnection;
      try {
        conn = await connectZmtp(this.#o.endpoint, {
          socketType: "SUB",
          limits: this.#o.limits,
          connectTimeoutMs: this.#o.connectTimeoutMs ?? 3000,
          handshakeTimeoutMs: this.#o.connectTimeoutMs ?? 3000,
          heartbeatIntervalMs: this.#o.heartbeatIntervalMs ?? 1000,
          heartbeatTimeoutMs: this.#o.heartbeatTimeoutMs,
          signal: this.#abort.signal,
        }, {
          message: (frames) => {
            this.#heard++;
            this.#tailQueued = false;
            this.#enqueue({ frames });
          },
        });
      } catch {
        await this.#backoff();
        continue;
      }
      if (!this.#running) {
        conn.close("subscriber stopped");
        await conn.finished();
        break;
      }
      this.#conn = conn;
      this.#state = "connected";
      if (connectedBefore) {
        this.counters.reconnects++;
        this.#enqueue({ reconnected: true }, true);
      }
      connectedBefore = true;
      subscribe(conn, this.#topic);
      await conn.finished();
      this.#conn = null;
      if (this.#running) await this.#backoff();
    }
  }

  async #backoff(): Promise<void> {
    if (!this.#running) return;
    this.#attempt++;
    const delay = reconnectDelay(
      this.#attempt,
      this.#o.reconnectBaseMs ?? 100,
      this.#o.reconnectMaxMs ?? 5000,
      (this.#o.random ?? Math.random)(),
    );
    this.#sleep = sleep(delay);
    await this.#sleep.promise;
    this.#sleep = null;
  }

  #enqueue(item: Pending, always = false): void {
    if (!always && this.#pending.length >= (this.#o.maxPending ?? 10_000)) {
      this.counters.dropped++;
      return;
    }
    this.#pending.push(item);
    this.#wakeProcessor?.();
  }

  async #processLoop(): Promise<void> {
    while (this.#running) {
      const item = this.#pending.shift();
      if (item === undefined) {
        const { promise, resolve } = Promise.withResolvers<void>();
        this.#wakeProcessor = resolve;
        await promise;
        this.#wakeProcessor = null;
        continue;
      }
      try {
        if ("reconnected" in item) await this.#resync();
        else if ("tailCheck" in item) await this.#tailCheck();
        else await this.#handle(item.frames);
      } catch {
        this.counters.sinkErrors++; // a defect here must not end the loop
      }
    }
  }

  async #handle(frames: Uint8Array[]): Promise<void> {
    if (frames.length < 1 || !hasPrefix(frames[0], this.#topic)) return;
    const seq = frames.length === 3 ? readSeq(frames[1]) : null;
    if (seq === null || seq < 0) {
      this.counters.malformed++;
      return;
    }
    this.#attempt = 0;
    if (this.#dup !== null) {
      if (seq > this.#dup.floor && seq <= this.#dup.ceiling) return; // already replayed
      this.#dup = null;
    }
    const payload = frames[2];
    const last = this.#last;
    if (last === null) return await this.#coldStart(seq, payload);
    if (seq === last + 1) return this.#apply(seq, payload);
    if (seq <= last) {
      this.#clear("restart");
      return await this.#coldStart(seq, payload);
    }
    this.counters.gaps++;
    const r = await this.#replay(last + 1);
    const got = r.ok ? r.batches.filter((b) => b.seq < seq) : [];
    if (got.length > 0 && got[0].seq === last + 1 && contiguous(got)) {
      for (const b of got) this.#apply(b.seq, b.payload);
    } else {
      this.#clear("gap");
      for (const b of contiguous(got) ? got : []) this.#apply(b.seq, b.payload);
    }
    this.#apply(seq, payload);
  }

  /** Applies what the engine still keeps before `seq` (from an empty index), then `seq`. */
  async #coldStart(seq: number, payload: Uint8Array): Promise<void> {
    let from = seq;
    if (seq > 0 && this.#o.replayEndpoint) {
      const r = await this.#replay(0);
      const got = r.ok ? r.batches.filter((b) => b.seq < seq) : [];
      if (got.length > 0 && contiguous(got) && got[got.length - 1].seq === seq - 1) {
        from = got[0].seq;
        for (const b of got) this.#apply(b.seq, b.payload);
      }
    }
    this.#warm = from === 0;
    this.#apply(seq, payload);
  }

  /** After a reconnect: prove the engine is the same one (module comment), else clear. */
  async #resync(): Promise<void> {
    const last = this.#last;
    const lastPayload = this.#lastPayload;
    if (last === null || lastPayload === null) return;
    if (this.#o.replayEndpoint) {
      const r = await this.#replay(last);
      if (r.ok && r.batches.length > 0 && r.batches[0].seq === last && contiguous(r.batches)) {
        if (sameBytes(r.batches[0].payload, lastPayload)) {
          this.#applyAhead(last, r.batches.slice(1));
          return;
        }
      }
    }
    this.#clear("reconnect");
  }

  /** When quiet (module comment): replay from last + 1 to find a dropped tail. */
  async #tailCheck(): Promise<void> {
    const last = this.#last;
    if (last === null) return;
    const r = await this.#replay(last + 1);
    if (!r.ok || r.batches.length === 0 || this.#last !== last) return;
    this.counters.gaps++;
    if (r.batches[0].seq === last + 1 && contiguous(r.batches)) {
      this.#applyAhead(last, r.batches);
    } else {
      this.#clear("gap");
      if (contiguous(r.batches)) this.#applyAhead(last, r.batches);
    }
  }

  /**
   * Applies replayed batches beyond what live messages brought; the live stream may still
   * deliver some of them (they were in flight), so seqs in (floor, last applied] are skipped once.
   */
  #applyAhead(floor: number, batches: readonly ReplayedBatch[]): void {
    for (const b of batches) this.#apply(b.seq, b.payload);
    if (batches.length > 0) this.#dup = { floor, ceiling: batches[batches.length - 1].seq };
  }

  async #replay(start: number): Promise<ReplayResult> {
    const endpoint = this.#o.replayEndpoint;
    if (!endpoint || !this.#running) return { ok: false, reason: "no replay endpoint" };
    this.counters.replays++;
    const r = await requestReplay(endpoint, start, {
      timeoutMs: this.#o.replayTimeoutMs ?? 5000,
      maxBatches: this.#o.maxReplayBatches,
      limits: this.#o.limits,
      signal: this.#abort.signal,
    });
    if (!r.ok) this.counters.replayFailures++;
    return r;
  }

  #clear(reason: ClearReason): void {
    this.counters.clears++;
    this.#dup = null;
    this.#last = null;
    this.#lastPayload = null;
    this.#warm = false;
    try {
      this.#o.sink.clear(reason);
    } catch {
      this.counters.sinkErrors++;
    }
  }

  #apply(seq: number, payload: Uint8Array): void {
    this.#last = seq;
    this.#lastPayload = payload;
    const batch = this.#decoder.decode(payload);
    if (batch === null) {
      this.counters.malformed++;
      return;
    }
    this.counters.batches++;
    this.counters.events += batch.events.length;
    this.counters.lagMs = Math.max(0, (this.#o.wallClock ?? Date.now)() - batch.ts * 1000);
    try {
      this.#o.sink.batch(batch, seq);
    } catch {
      this.counters.sinkErrors++;
    }
  }
}

/**
 * Wait before connect attempt `attempt` (1 = the first retry): `base × 2^(attempt-1)` capped at
 * `max`, times a jitter factor `0.5 + r / 2` for `r` uniform in [0, 1), so replicas that lost the
 * same engine do not reconnect in step.
 */
export function reconnectDelay(attempt: number, baseMs: number, maxMs: number, r: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30)) * (0.5 + r / 2);
}

function contiguous(batches: readonly ReplayedBatch[]): boolean {
  for (let i = 1; i < batches.length; i++) {
    if (batches[i].seq !== batches[i - 1].seq + 1) return false;
  }
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
