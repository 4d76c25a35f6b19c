/**
 * A KV event publisher that behaves like vLLM's ZMQ publisher, for the simulated engine and tests.
 *
 * Rules (vLLM's `ZmqEventPublisher`, KV-EVENTS.md):
 * - PUB at `endpoint`; each batch goes out as `[topic, seq (8-byte big-endian), payload]`, `seq`
 *   counting from `startSeq` (default 0) per publisher.
 * - The last `bufferSteps` (default 10 000) batches are kept for replay. A ROUTER at
 *   `replayEndpoint` reads `[empty, start_seq (8 bytes)]` from a DEALER (the ROUTER sees the
 *   identity in front) and answers `[empty, seq, payload]` for every kept batch with seq ≥ start,
 *   then `[empty, -1 (8-byte signed), empty]`. Other requests are ignored, as vLLM ignores them.
 * - A replay to a slow peer waits for its queue to drain once it holds half its message or byte
 *   bound, instead of dropping batches; a peer that goes away ends its replay.
 * - `publish(..., {lose: true})` numbers and keeps a batch without sending it, as if the PUB's
 *   high-water mark had dropped it: how tests make a gap.
 *
 * @module
 */

import { encodeBatch, type EncodeOptions, type WireEvent } from "./encode.ts";
import { seqBytes } from "./replay.ts";
import { PubServer, RouterServer } from "./server.ts";

/** Settings of a publisher. */
export interface KvEventPublisherOptions {
  /** PUB endpoint to bind, e.g. `tcp://*:5557` (`tcp://127.0.0.1:0` in tests). */
  readonly endpoint: string;
  /** ROUTER endpoint for replay; none when absent. */
  readonly replayEndpoint?: string;
  /** Topic frame; default "". */
  readonly topic?: string;
  /** Batches kept for replay; default 10 000. */
  readonly bufferSteps?: number;
  readonly encoding?: EncodeOptions;
  readonly dataParallelRank?: number | null;
  /** First sequence number; default 0. */
  readonly startSeq?: number;
  /** Per-subscriber bounds and heartbeats (see `ZmtpOptions`). */
  readonly sendHwm?: number;
  readonly sendHwmBytes?: number;
  readonly heartbeatIntervalMs?: number;
  /** Wall clock for batch `ts`, seconds; default `Date.now() / 1000`. */
  readonly wallClock?: () => number;
}

/** Options of one publish. */
export interface PublishOptions {
  /** Keep and number the batch but do not send it (a simulated drop). */
  readonly lose?: boolean;
}

const EMPTY = new Uint8Array(0);
const END_SEQ = new Uint8Array(8).fill(0xff);

/** A vLLM-like KV event publisher; `start()` binds, `stop()` closes everything. */
export class KvEventPublisher {
  readonly #opts: KvEventPublisherOptions;
  readonly #pub: PubServer;
  readonly #router: RouterServer | null;
  readonly #topic: Uint8Array;
  readonly #bufferSteps: number;
  #buffer: { seq: number; payload: Uint8Array }[] = [];
  #bufHead = 0;
  #seq: number;
  #replays = new Set<Promise<void>>();
  #stopped = false;
  /** Replay requests served. */
  replaysServed = 0;

  constructor(options: KvEventPublisherOptions) {
    this.#opts = options;
    const conn = {
      sendHwm: options.sendHwm,
      sendHwmBytes: options.sendHwmBytes,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
    };
    this.#pub = new PubServer({ endpoint: options.endpoint, ...conn });
    this.#router = options.replayEndpoint === undefined
      ? null
      : new RouterServer({ endpoint: options.replayEndpoint, ...conn }, (id, frames) =>
        this.#onReplay(id, frames));
    this.#topic = new TextEncoder().encode(options.topic ?? "");
    this.#bufferSteps = options.bufferSteps ?? 10_000;
    this.#seq = options.startSeq ?? 0;
  }

  /** Binds both sockets; returns their ports (`replayPort` null without replay). */
  start(): { port: number; replayPort: number | null } {
    const port = this.#pub.start();
    const replayPort = this.#router?.start() ?? null;
    return { port, replayPort };
  }

  /** Closes both sockets and ends running replays. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([this.#pub.stop(), this.#router?.stop()]);
    await Promise.all([...this.#replays]);
  }

  /** The sequence number the next batch gets. */
  get nextSeq(): number {
    return this.#seq;
  }

  /** The PUB socket (subscriber count, queued bytes, drops). */
  get pub(): PubServer {
    return this.#pub;
  }

  /** Encodes and publishes one batch of events; returns its sequence number. */
  publish(events: readonly WireEvent[], options: PublishOptions = {}): number {
    const ts = this.#opts.wallClock?.() ?? Date.now() / 1000;
    const payload = encodeBatch(
      ts,
      events,
      this.#opts.encoding,
      this.#opts.dataParallelRank ?? null,
    );
    return this.publishPayload(payload, options);
  }

  /** Publishes an already encoded payload (any bytes: tests send malformed ones). */
  publishPayload(payload: Uint8Array, options: PublishOptions = {}): number {
    const seq = this.#seq++;
    this.#buffer.push({ seq, payload });
    if (this.#buffer.length - this.#bufHead > this.#bufferSteps) this.#bufHead++;
    if (this.#bufHead > 1024 && this.#bufHead * 2 > this.#buffer.length) {
      this.#buffer = this.#buffer.slice(this.#bufHead);
      this.#bufHead = 0;
    }
    if (!options.lose) this.#pub.publish([this.#topic, seqBytes(seq), payload]);
    return seq;
  }

  #onReplay(identity: Uint8Array, frames: Uint8Array[]): void {
    if (this.#stopped || frames.length !== 2 || frames[1].length !== 8) return;
    const start = Number(new DataView(frames[1].buffer, frames[1].byteOffset, 8).getBigUint64(0));
    const task = this.#serve(identity, start).finally(() => this.#replays.delete(task));
    this.#replays.add(task);
  }

  async #serve(identity: Uint8Array, start: number): Promise<void> {
    const router = this.#router!;
    this.replaysServed++;
    const kept = this.#buffer.slice(this.#bufHead).filter((b) => b.seq >= start);
    for (const b of kept) {
      const peer = router.peer(identity);
      if (peer === undefined || this.#stopped) return;
      const full = peer.queuedBytes > (this.#opts.sendHwmBytes ?? 16 * 1024 * 1024) / 2 ||
        peer.queuedMessages >= (this.#opts.sendHwm ?? 1000) / 2;
      if (full) await peer.whenDrained(0);
      router.send(identity, [EMPTY, seqBytes(b.seq), b.payload]);
    }
    router.send(identity, [EMPTY, END_SEQ, EMPTY]);
  }
}
