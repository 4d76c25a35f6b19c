/**
 * One ZMTP 3.x connection over a Deno TCP connection: handshake (greeting, NULL mechanism,
 * READY with `Socket-Type` and `Identity`), reading messages, a bounded send queue and
 * heartbeats. Both ends use it: the router's SUB and DEALER, the simulated engine's PUB and
 * ROUTER peers.
 *
 * Rules:
 * - `start()` sends our greeting at once, reads the peer's, then sends READY; it resolves when
 *   the peer's READY names a compatible socket type, and rejects (closing the socket) on a bad
 *   greeting, an ERROR command, an incompatible or missing type, a protocol error, or no READY
 *   within `handshakeTimeoutMs` (default 5 s).
 * - Send queue: `send()` encodes a message once and queues it; one writer drains the queue.
 *   When `sendHwm` messages or `sendHwmBytes` bytes are queued, a new message is dropped (counted)
 *   and `send()` returns false: a slow peer never makes us buffer without bound (libzmq's PUB
 *   drops at its high-water mark the same way). PING/PONG skip the message bound but not the
 *   byte bound: a peer that floods PINGs without reading is closed.
 * - Heartbeats (ZMTP 3.1 peers only, as 3.0 has no PING): every `heartbeatIntervalMs` we send
 *   PING with a TTL of `heartbeatTimeoutMs`; when nothing at all arrived from the peer for
 *   `heartbeatTimeoutMs` (default 3 intervals) the connection is closed, so a peer that died
 *   without a FIN (power loss, a partition) is noticed. PING from the peer is answered with PONG.
 * - Closing is idempotent: timers are cleared, the socket is closed, `closed` resolves with the
 *   reason and the `closed` handler runs once. Handlers that throw are counted, never propagated
 *   into the read loop.
 *
 * Cost: one 64 KiB read buffer per connection, one copy per frame body, one encode per sent
 * message (a PUB encodes once for all its peers via `sendEncoded`); small queued messages are
 * coalesced into one socket write of up to 64 KiB.
 *
 * @module
 */

import {
  compatible,
  DEFAULT_LIMITS,
  encodeMessage,
  encodePing,
  encodeReady,
  type FrameLimits,
  FrameParser,
  greeting,
  parseCommand,
  parseGreeting,
  parseMetadata,
  pongFor,
  type SocketType,
} from "./zmtp.ts";

/** Settings of one connection. */
export interface ZmtpOptions {
  readonly socketType: SocketType;
  /** Our identity (DEALER/ROUTER/REQ send it in READY); empty by default. */
  readonly identity?: Uint8Array;
  /** The as-server greeting byte (informational under NULL). */
  readonly asServer?: boolean;
  readonly limits?: FrameLimits;
  /** Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** PING period, ms; 0 turns heartbeats off. Default 0. */
  readonly heartbeatIntervalMs?: number;
  /** Silence after which the peer is taken for dead, ms; default 3 × the interval. */
  readonly heartbeatTimeoutMs?: number;
  /** Messages queued at most before new ones are dropped; default 1000. */
  readonly sendHwm?: number;
  /** Bytes queued at most before new messages are dropped; default 16 MiB. */
  readonly sendHwmBytes?: number;
}

/** Callbacks of one connection. */
export interface ZmtpHandlers {
  /** The handshake completed (called before any message is handed over). */
  ready?(peer: PeerInfo): void;
  /** A complete message after the handshake. */
  message?(frames: Uint8Array[]): void;
  /** A command other than READY, PING, PONG and ERROR (SUBSCRIBE, CANCEL, unknown ones). */
  command?(name: string, data: Uint8Array): void;
  /** The connection closed, with why. */
  closed?(reason: string): void;
}

/** What the peer said about itself. */
export interface PeerInfo {
  readonly socketType: string;
  readonly identity: Uint8Array;
  readonly minor: number;
}

/** Thrown by `start()` when the handshake fails. */
export class ZmtpError extends Error {
  override name = "ZmtpError";
}

interface DrainWaiter {
  readonly bytes: number;
  readonly resolve: () => void;
}

const READ_BYTES = 64 * 1024;
const COALESCE_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A ZMTP connection; see the module comment for the rules. */
export class ZmtpConnection {
  readonly #conn: Deno.Conn;
  readonly #opts: ZmtpOptions;
  readonly #handlers: ZmtpHandlers;
  readonly #parser: FrameParser;
  readonly #hwm: number;
  readonly #hwmBytes: number;
  #peer: PeerInfo | null = null;
  #peerMinor = 0;
  #ready = Promise.withResolvers<void>();
  #closedP = Promise.withResolvers<string>();
  #closedReason: string | null = null;
  #handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #lastRecv = 0;
  #queue: Uint8Array[] = [];
  #qHead = 0;
  #queuedBytes = 0;
  #writing = false;
  #readP: Promise<void> = Promise.resolve();
  #writeP: Promise<void> = Promise.resolve();
  #drainWaiters: DrainWaiter[] = [];
  #started = false;
  /** Messages dropped at the high-water mark. */
  dropped = 0;
  /** Messages queued for sending (not counting drops). */
  sent = 0;
  /** Messages received. */
  received = 0;
  /** Handler calls that threw. */
  handlerErrors = 0;

  constructor(conn: Deno.Conn, options: ZmtpOptions, handlers: ZmtpHandlers = {}) {
    this.#conn = conn;
    this.#opts = options;
    this.#handlers = handlers;
    this.#parser = new FrameParser(options.limits ?? DEFAULT_LIMITS);
    this.#hwm = options.sendHwm ?? 1000;
    this.#hwmBytes = options.sendHwmBytes ?? 16 * 1024 * 1024;
    this.#ready.promise.catch(() => {});
  }

  /** Runs the handshake; see the module comment. Call once. */
  start(): Promise<void> {
    if (this.#started) return this.#ready.promise;
    this.#started = true;
    const timeout = this.#opts.handshakeTimeoutMs ?? 5000;
    this.#handshakeTimer = setTimeout(() => this.close("handshake timed out"), timeout);
    this.#enqueue(greeting(this.#opts.asServer ?? false));
    this.#readP = this.#readLoop();
    return this.#ready.promise;
  }

  /** The peer's READY metadata; null before the handshake completed. */
  get peer(): PeerInfo | null {
    return this.#peer;
  }

  /** Resolves with the reason once the connection closed. */
  get closed(): Promise<string> {
    return this.#closedP.promise;
  }

  /** Resolves once closed and both socket loops have ended (no read or write op left). */
  async finished(): Promise<void> {
    await this.closed;
    await Promise.all([this.#readP, this.#writeP]);
  }

  /** Whether the connection was closed. */
  get isClosed(): boolean {
    return this.#closedReason !== null;
  }

  /** Bytes waiting in the send queue. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Messages waiting in the send queue. */
  get queuedMessages(): number {
    return this.#queue.length - this.#qHead;
  }

  /** Queues a multipart message; false when it was dropped (closed, not ready, or at the HWM). */
  send(frames: readonly Uint8Array[]): boolean {
    return this.sendEncoded(encodeMessage(frames));
  }

  /** Queues an already encoded message (`encodeMessage`), so one encoding serves many peers. */
  sendEncoded(bytes: Uint8Array): boolean {
    if (this.#closedReason !== null || this.#peer === null) return false;
    if (this.queuedMessages >= this.#hwm || this.#queuedBytes + bytes.length > this.#hwmBytes) {
      this.dropped++;
      return false;
    }
    this.sent++;
    return this.#enqueue(bytes);
  }

  /** Queues a command frame (`encodeCommand`) after the handshake; false when closed. */
  sendCommand(bytes: Uint8Array): boolean {
    if (this.#closedReason !== null || this.#peer === null) return false;
    return this.#enqueue(bytes);
  }

  /** Resolves once at most `bytes` are queued, or the connection closed. */
  whenDrained(bytes = 0): Promise<void> {
    if (this.#queuedBytes <= bytes || this.#closedReason !== null) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drainWaiters.push({ bytes, resolve });
    return promise;
  }

  /** Closes the connection (idempotent). */
  close(reason = "closed"): void {
    if (this.#closedReason !== null) return;
    this.#closedReason = reason;
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#heartbeatTimer);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#queue = [];
    this.#qHead = 0;
    this.#queuedBytes = 0;
    this.#wakeDrainWaiters();
    this.#ready.reject(new ZmtpError(reason));
    this.#closedP.resolve(reason);
    this.#call(() => this.#handlers.closed?.(reason));
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch {
      this.handlerErrors++;
    }
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(READ_BYTES);
    const sink = {
      greeting: (g: Uint8Array) => this.#onGreeting(g),
      command: (body: Uint8Array) => this.#onCommand(body),
      message: (frames: Uint8Array[]) => this.#onMessage(frames),
    };
    try {
      while (this.#closedReason === null) {
        const n = await this.#conn.read(buf);
        if (n === null) return this.close("peer closed the connection");
        this.#lastRecv = performance.now();
        const err = this.#parser.push(buf.subarray(0, n), sink);
        if (err !== null) return this.close(`protocol error: ${err}`);
      }
    } catch (e) {
      this.close(`read failed: ${reasonOf(e)}`);
    }
  }

  #onGreeting(g: Uint8Array): string | null {
    const parsed = parseGreeting(g);
    if (typeof parsed === "string") return parsed;
    this.#peerMinor = parsed.major > 3 ? 1 : parsed.minor;
    const props: Record<string, Uint8Array | string> = { "Socket-Type": this.#opts.socketType };
    const t = this.#opts.socketType;
    if (t === "DEALER" || t === "ROUTER" || t === "REQ") {
      props["Identity"] = this.#opts.identity ?? EMPTY;
    }
    this.#enqueue(encodeReady(props));
    return null;
  }

  #onCommand(body: Uint8Array): string | null {
    if (this.#closedReason !== null) return "closed";
    const cmd = parseCommand(body);
    if (cmd === null) return "malformed command";
    if (this.#peer === null) return this.#onHandshakeCommand(cmd.name, cmd.data);
    switch (cmd.name) {
      case "PING": {
        const pong = pongFor(cmd.data);
        if (pong === null) return "malformed PING";
        if (this.#queuedBytes + pong.length > this.#hwmBytes) return "peer does not read";
        this.#enqueue(pong);
        return null;
      }
      case "PONG":
        return null;
      case "ERROR":
        return `peer sent ERROR: ${new TextDecoder().decode(cmd.data.subarray(1))}`;
      case "READY":
        return "second READY";
      default:
        this.#call(() => this.#handlers.command?.(cmd.name, cmd.data));
        return null;
    }
  }

  #onHandshakeCommand(name: string, data: Uint8Array): string | null {
    if (name === "ERROR") {
      return `peer refused the handshake: ${new TextDecoder().decode(data.subarray(1))}`;
    }
    if (name !== "READY") return `expected READY, got ${JSON.stringify(name)}`;
    const meta = parseMetadata(data);
    if (meta === null) return "malformed READY metadata";
    const typeBytes = meta.get("socket-type");
    if (typeBytes === undefined) return "READY without Socket-Type";
    const socketType = new TextDecoder().decode(typeBytes);
    if (!compatible(this.#opts.socketType, socketType)) {
      return `peer socket type ${socketType} cannot talk to ${this.#opts.socketType}`;
    }
    this.#peer = {
      socketType,
      identity: meta.get("identity")?.slice() ?? EMPTY,
      minor: this.#peerMinor,
    };
    clearTimeout(this.#handshakeTimer);
    this.#startHeartbeat();
    this.#ready.resolve();
    const peer = this.#peer;
    this.#call(() => this.#handlers.ready?.(peer));
    return this.#closedReason === null ? null : "closed";
  }

  #onMessage(frames: Uint8Array[]): string | null {
    if (this.#closedReason !== null) return "closed";
    if (this.#peer === null) return "message before the handshake completed";
    this.received++;
    this.#call(() => this.#handlers.message?.(frames));
    return null;
  }

  #startHeartbeat(): void {
    const ivl = this.#opts.heartbeatIntervalMs ?? 0;
    if (ivl <= 0 || this.#peerMinor < 1) return;
    const timeout = this.#opts.heartbeatTimeoutMs ?? 3 * ivl;
    this.#heartbeatTimer = setInterval(() => {
      const silent = performance.now() - this.#lastRecv;
      if (silent > timeout) {
        this.close(`heartbeat timed out: nothing from the peer for ${Math.round(silent)} ms`);
        return;
      }
      const ping = encodePing(timeout);
      if (this.#queuedBytes + ping.length > this.#hwmBytes) return;
      this.#enqueue(ping);
    }, ivl);
  }

  #enqueue(bytes: Uint8Array): boolean {
    if (this.#closedReason !== null) return false;
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#writing) this.#writeP = this.#writeLoop();
    return true;
  }

  /** Takes the next write off the queue, merging small messages up to `COALESCE_BYTES`. */
  #take(): Uint8Array {
    const q = this.#queue;
    let first = q[this.#qHead++];
    if (first.length < COALESCE_BYTES && this.#qHead < q.length) {
      let total = first.length;
      let end = this.#qHead;
      while (end < q.length && total + q[end].length <= COALESCE_BYTES) total += q[end++].length;
      if (end > this.#qHead) {
        const merged = new Uint8Array(total);
        merged.set(first, 0);
        let off = first.length;
        for (; this.#qHead < end; this.#qHead++) {
          merged.set(q[this.#qHead], off);
          off += q[this.#qHead].length;
        }
        first = merged;
      }
    }
    if (this.#qHead === q.length) {
      this.#queue = [];
      this.#qHead = 0;
    } else if (this.#qHead > 1024 && this.#qHead * 2 > q.length) {
      this.#queue = q.slice(this.#qHead);
      this.#qHead = 0;
    }
    return first;
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#closedReason === null && this.#qHead < this.#queue.length) {
        const chunk = this.#take();
        let off = 0;
        while (off < chunk.length) off += await this.#conn.write(chunk.subarray(off));
        if (this.#closedReason !== null) return;
        this.#queuedBytes -= chunk.length;
        this.#wakeDrainWaiters();
      }
    } catch (e) {
      this.close(`write failed: ${reasonOf(e)}`);
    } finally {
      this.#writing = false;
    }
  }

  #wakeDrainWaiters(): void {
    if (this.#drainWaiters.length === 0) return;
    const closed = this.#closedReason !== null;
    const keep: DrainWaiter[] = [];
    for (const w of this.#drainWaiters) {
      if (closed || this.#queuedBytes <= w.bytes) w.resolve();
      else keep.push(w);
    }
    this.#drainWaiters = keep;
  }
}
