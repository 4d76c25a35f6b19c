/**
 * One client connection of the HTTP/1.1 server: reads request heads, runs the handler for one
 * request at a time, writes its reply, and keeps the connection alive or closes it.
 *
 * Rules:
 * - Deadlines, one shared-queue entry per connection: the whole head within `headerTimeoutMs` of
 *   the accept or, on a kept-alive connection, of the next request's first byte; a kept-alive
 *   connection with no request closes after `idleTimeoutMs`; a `readBody` has its own deadline; a
 *   drain or a lingering close ends within its own bound. A missed head or idle deadline closes
 *   the connection without an answer (a client that sends one byte a second may not read either).
 * - While the handler runs and the request body has been read (or there was none), one read stays
 *   pending on the socket, as Go's `net/http` does: its end or failure means the client is gone,
 *   so the request's signal is aborted with `ClientGone` and the socket closed at once; bytes that
 *   arrive (a pipelined request) are kept for the next request, up to {@link PIPELINE_MAX}.
 * - The read buffer starts at {@link INITIAL_BUFFER} bytes (so thousands of idle connections cost
 *   little), grows for a large head, chunk line or pipelined requests up to `maxHeadBytes` plus a
 *   margin, and is replaced by a fresh small one as soon as it is empty (a read started then may
 *   stay pending as long as the connection idles). A `Content-Length` body is read straight into
 *   its own buffer, not through this one.
 * - After the response: an unread body is drained (up to {@link DRAIN_MAX}) or the connection
 *   closes; a close after an answer to a request whose body was not read shuts the write side and
 *   reads what still comes for a moment (bounded), so the client sees the answer rather than a
 *   reset.
 * - The connection counts as open until its socket is closed and no read or write of it is in
 *   flight, so a server that reports itself closed holds no pending operation.
 *
 * Cost per request: the head parse, one `IncomingRequest`, the handler, one write for a small
 * reply; no per-request timer (deadlines move one entry in the shared queue).
 *
 * @module
 */

import { errorMessage, RouterError } from "../util/errors.ts";
import type { TimerEntry, TimerQueue } from "../util/timer_queue.ts";
import { TimerQueue as Queue } from "../util/timer_queue.ts";
import { errorReply, type ReplySink, writeReply } from "./reply_writer.ts";
import {
  findHeadEnd,
  HEAD_BARE_LF,
  HeadError,
  latin1,
  parseRequestHead,
  type RequestHead,
} from "./request_head.ts";
import {
  BODY_BROKEN,
  BODY_READING,
  BODY_UNREAD,
  IncomingRequest,
  type RequestConn,
} from "./server_request.ts";
import {
  type BodySource,
  ClientGone,
  type Handler,
  type HttpLog,
  type Reply,
  ServerClosing,
} from "./types.ts";

/** Read buffer size of a new connection. */
export const INITIAL_BUFFER = 8 * 1024;
/** Bytes of pipelined requests buffered at most while a request is served. */
export const PIPELINE_MAX = 64 * 1024;
/** Unread body bytes drained at most after a response to keep the connection. */
export const DRAIN_MAX = 256 * 1024;
/** How long, and how many bytes, a lingering close reads. */
const LINGER_MS = 2000;
const LINGER_BYTES = 1024 * 1024;
/** Least free space a read is started with. */
const MIN_READ = 1024;

/** Counters the connections of one server share. */
export interface HttpServerStats {
  /** Connections accepted and served. */
  accepted: number;
  /** Connections closed at once because `maxConnections` were open. */
  refused: number;
  /** Accept calls that failed (EMFILE and the like). */
  acceptErrors: number;
  /** Connections closed because the head did not arrive in time. */
  headerTimeouts: number;
  /** Kept-alive connections closed after `idleTimeoutMs`. */
  idleTimeouts: number;
  /** Requests refused for a malformed head (4xx/5xx before the handler). */
  badRequests: number;
  /** Requests whose client went away while they were served. */
  clientGone: number;
}

/** What a connection needs of its server. */
export interface ConnectionContext {
  readonly handler: Handler;
  readonly timers: TimerQueue;
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeadBytes: number;
  readonly log: HttpLog;
  readonly stats: HttpServerStats;
  /** The server is shutting down: no new request on a kept-alive connection. */
  readonly draining: boolean;
  /** The connection is closed and has nothing in flight. */
  closed(conn: Connection): void;
}

// Phases of a connection.
const HEAD = 0;
const IDLE = 1;
const HANDLER = 2;
const WRITE = 3;
const DRAIN = 4;
const LINGER = 5;

const HEAD_ERROR_CODE: Record<number, string> = {
  431: "request_header_fields_too_large",
  501: "not_implemented",
  505: "http_version_not_supported",
};

/** A client connection; see the module comment. `run()` serves it until it closes. */
export class Connection implements RequestConn, ReplySink {
  buf: Uint8Array = new Uint8Array(INITIAL_BUFFER);
  start = 0;
  end = 0;
  streaming: BodySource | null = null;
  readonly log: HttpLog;
  readonly #sock: Deno.TcpConn;
  readonly #ctx: ConnectionContext;
  readonly #remote: { readonly hostname: string; readonly port: number };
  readonly #timer: TimerEntry;
  readonly #cap: number;
  #phase = HEAD;
  /** The readBody deadline (ms) while it is armed, else -1. */
  #bodyTimer = -1;
  #reading: Promise<void> | null = null;
  /** Bytes read into the buffer so far. */
  #got = 0;
  #ops = 0;
  #ended = false;
  #gone = false;
  #closed = false;
  #reported = false;
  #watching = false;
  #req: IncomingRequest | null = null;

  constructor(sock: Deno.TcpConn, ctx: ConnectionContext) {
    this.#sock = sock;
    this.#ctx = ctx;
    this.log = ctx.log;
    const a = sock.remoteAddr;
    this.#remote = { hostname: a.hostname, port: a.port };
    this.#timer = Queue.entry(this.#onTimer);
    this.#cap = Math.max(ctx.maxHeadBytes + 4096, PIPELINE_MAX);
  }

  /** A read into the buffer is in flight. */
  get reading(): boolean {
    return this.#reading !== null;
  }

  /** Nothing more can be sent to the client. */
  get gone(): boolean {
    return this.#gone || this.#closed;
  }

  /** Serves requests until the connection closes; never rejects. */
  async run(): Promise<void> {
    try {
      this.#arm(HEAD, this.#ctx.headerTimeoutMs);
      for (;;) {
        const head = await this.#nextHead();
        if (head === null) return;
        if (head instanceof HeadError) {
          await this.#refuse(head);
          return;
        }
        if (!await this.#serve(head)) return;
      }
    } catch (err) {
      this.log("error", "Connection failed", { error: errorMessage(err) });
    } finally {
      this.close();
    }
  }

  /** Closes the connection if it is between requests (shutdown). */
  closeIfIdle(): void {
    if (this.#phase === IDLE || (this.#phase === HEAD && this.#got === 0)) this.close();
  }

  /** Aborts the request in progress with `reason` and closes the connection (force close). */
  abort(reason: unknown): void {
    this.#req?.abort(reason);
    this.#cancelStream(reason);
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true;
    this.#watching = false;
    this.#ctx.timers.cancel(this.#timer);
    this.#req?.abort(new ServerClosing());
    this.#cancelStream(new ServerClosing());
    try {
      this.#sock.close();
    } catch { /* already closed */ }
    this.#settle();
  }

  // --- reading -------------------------------------------------------------------------------

  async fill(): Promise<boolean> {
    if (this.#ended) return false;
    if (this.#reading === null) this.#startRead();
    const before = this.#got;
    await this.#reading;
    return this.#got > before;
  }

  async readDirect(view: Uint8Array): Promise<number | null> {
    if (this.#ended) return null;
    this.#ops++;
    try {
      const n = await this.#sock.read(view);
      if (n === null) this.#peerEnded(false);
      return n;
    } catch {
      this.#peerEnded(true);
      return null;
    } finally {
      this.#ops--;
      this.#settle();
    }
  }

  #startRead(): void {
    let buf = this.buf;
    const used = this.end - this.start;
    if (used === 0) {
      this.start = this.end = 0;
      // A buffer grown for a large head or chunk line goes back to its first size as soon as it
      // is empty: the read started now may stay pending for the whole idle time.
      if (buf.length > INITIAL_BUFFER) buf = this.buf = new Uint8Array(INITIAL_BUFFER);
    } else if (buf.length - this.end < MIN_READ) {
      if (buf.length - used >= MIN_READ || buf.length >= this.#cap) {
        buf.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(
          Math.min(this.#cap, Math.max(buf.length * 2, used + MIN_READ)),
        );
        grown.set(buf.subarray(this.start, this.end));
        buf = this.buf = grown;
      }
      this.start = 0;
      this.end = used;
    }
    if (this.end === buf.length) throw new Error("Read buffer is full");
    this.#ops++;
    this.#reading = this.#sock.read(buf.subarray(this.end)).then(this.#onRead, this.#onReadError);
  }

  readonly #onRead = (n: number | null): void => {
    this.#reading = null;
    this.#ops--;
    if (n === null) {
      this.#peerEnded(false);
    } else {
      this.end += n;
      this.#got += n;
      if (this.#watching) this.#watchMore();
    }
    this.#settle();
  };

  readonly #onReadError = (): void => {
    this.#reading = null;
    this.#ops--;
    this.#peerEnded(true);
    this.#settle();
  };

  /**
   * The client closed its side (`failed` false) or the socket failed (or we closed it). Mid-request
   * either means the client is gone, as Go's `net/http` reads it: the handler is told. A failed
   * socket, or an end while a body streams (cancelled now, so it must not end as if complete), is
   * closed at once; after a plain end the answer is still tried (the client may have only shut its
   * write side) and the connection closes after it.
   */
  #peerEnded(failed: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    if (failed) this.#gone = true;
    const req = this.#req;
    if (req === null) return;
    this.#ctx.stats.clientGone++;
    req.abort(new ClientGone());
    if (this.streaming !== null) {
      this.#gone = true;
      this.#cancelStream(new ClientGone());
    }
    if (this.#gone) this.close();
  }

  /** Keeps one read pending while the handler runs (see the module comment). */
  #watch(): void {
    this.#watching = true;
    this.#watchMore();
  }

  #watchMore(): void {
    if (this.#reading !== null || this.#ended) return;
    const used = this.end - this.start;
    if (used >= PIPELINE_MAX || used + MIN_READ > this.#cap) return;
    this.#startRead();
  }

  bodyDone(): void {
    if (this.#req !== null && (this.#phase === HANDLER || this.#phase === WRITE)) this.#watch();
  }

  // --- writing -------------------------------------------------------------------------------

  async write(bytes: Uint8Array): Promise<boolean> {
    if (this.gone) return false;
    this.#ops++;
    try {
      let off = 0;
      while (off < bytes.length) {
        off += await this.#sock.write(off === 0 ? bytes : bytes.subarray(off));
      }
      return true;
    } catch {
      this.#gone = true;
      this.#peerEnded(true);
      return false;
    } finally {
      this.#ops--;
      this.#settle();
    }
  }

  #cancelStream(reason: unknown): void {
    const s = this.streaming;
    if (s === null) return;
    this.streaming = null;
    s.cancel(reason).catch(() => {});
  }

  // --- deadlines -----------------------------------------------------------------------------

  #arm(phase: number, ms: number): void {
    this.#phase = phase;
    this.#bodyTimer = -1;
    if (!this.#closed) this.#ctx.timers.schedule(this.#timer, performance.now() + ms);
  }

  startBodyTimer(ms: number): void {
    if (this.#closed || !(ms < Infinity)) return; // no deadline
    this.#bodyTimer = Math.max(0, ms);
    this.#ctx.timers.schedule(this.#timer, performance.now() + this.#bodyTimer);
  }

  stopBodyTimer(): void {
    if (this.#bodyTimer < 0) return;
    this.#bodyTimer = -1;
    this.#ctx.timers.cancel(this.#timer);
  }

  readonly #onTimer = (): void => {
    if (this.#bodyTimer >= 0) {
      const ms = this.#bodyTimer;
      this.#bodyTimer = -1;
      this.#req?.bodyTimedOut(ms);
      return;
    }
    if (this.#phase === HEAD) this.#ctx.stats.headerTimeouts++;
    else if (this.#phase === IDLE) this.#ctx.stats.idleTimeouts++;
    this.close();
  };

  /** Reports the connection closed once nothing of it is in flight. */
  #settle(): void {
    if (this.#closed && this.#ops === 0 && !this.#reported) {
      this.#reported = true;
      this.#ctx.closed(this);
    }
  }

  // --- requests ------------------------------------------------------------------------------

  /** The next request head; null when the connection ended or timed out first. */
  async #nextHead(): Promise<RequestHead | HeadError | null> {
    let seen = 0; // bytes after `start` already looked at
    for (;;) {
      if (seen === 0) {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        while (
          this.end - this.start >= 2 && this.buf[this.start] === 13 &&
          this.buf[this.start + 1] === 10
        ) this.start += 2;
      }
      const buffered = this.end - this.start;
      if (buffered > 0) {
        if (this.#phase === IDLE) this.#arm(HEAD, this.#ctx.headerTimeoutMs);
        const at = findHeadEnd(this.buf, this.start, this.start + seen, this.end);
        if (at - this.start > this.#ctx.maxHeadBytes) {
          return new HeadError(431, "Request head is too large");
        }
        if (at >= 0) {
          this.#ctx.timers.cancel(this.#timer);
          const text = latin1(this.buf, this.start, at - 2);
          this.start = at;
          try {
            return parseRequestHead(text);
          } catch (err) {
            if (err instanceof HeadError) return err;
            throw err;
          }
        }
        if (at === HEAD_BARE_LF) {
          return new HeadError(400, "Line ending without CR in request head");
        }
        if (buffered > this.#ctx.maxHeadBytes) {
          return new HeadError(431, "Request head is too large");
        }
        seen = buffered;
      }
      if (!await this.fill()) return null;
    }
  }

  /** Serves one request; true when the connection may carry the next one. */
  async #serve(head: RequestHead): Promise<boolean> {
    const ctx = this.#ctx;
    const req = new IncomingRequest(this, head, "http", this.#remote);
    this.#req = req;
    this.#phase = HANDLER;
    if (!req.hasBody) this.#watch();
    let reply: Reply | null;
    try {
      const r = ctx.handler(req);
      reply = r instanceof Promise ? await r : r;
      if (reply === null || typeof reply !== "object") throw new TypeError("Handler gave no reply");
    } catch (err) {
      reply = this.#replyForError(err);
    }
    if (reply === null || this.gone) {
      if (reply !== null) await cancel(reply.body, new ClientGone());
      return false;
    }
    this.#phase = WRITE;
    const unread = req.bodyState === BODY_UNREAD;
    const close = head.close || ctx.draining || this.#ended ||
      req.bodyState === BODY_READING || req.bodyState === BODY_BROKEN ||
      (unread && (req.continuePending || req.declaredLength > DRAIN_MAX));
    const keep = await writeReply(
      this,
      { method: head.method, version: head.version, close },
      reply,
    );
    this.#watching = false;
    this.#req = null;
    if (this.gone) return false;
    if (!keep) {
      if (req.bodyState === BODY_UNREAD) await this.#linger();
      return false;
    }
    if (req.bodyState === BODY_UNREAD) {
      this.#arm(DRAIN, ctx.headerTimeoutMs);
      if (!await req.drain(DRAIN_MAX)) return false;
    }
    if (ctx.draining || this.#ended) return false;
    if (this.end > this.start) this.#arm(HEAD, ctx.headerTimeoutMs);
    else this.#arm(IDLE, ctx.idleTimeoutMs);
    return true;
  }

  /** The reply for a handler that threw; null when there is no one to answer. */
  #replyForError(err: unknown): Reply | null {
    if (err instanceof ClientGone || err instanceof ServerClosing || this.gone) return null;
    if (err instanceof RouterError) {
      return errorReply(err.status, err.kind, err.message, err.code);
    }
    this.log("error", "Handler failed", { error: errorMessage(err) });
    return errorReply(500, "internal", `Internal error: ${errorMessage(err)}`);
  }

  /** Answers a head the server refuses, then closes. */
  async #refuse(err: HeadError): Promise<void> {
    this.#ctx.stats.badRequests++;
    this.#phase = WRITE;
    const code = HEAD_ERROR_CODE[err.status] ?? null;
    const reply = errorReply(err.status, "bad_request", err.message, code);
    await writeReply(this, { method: "GET", version: "1.1", close: true }, reply);
    await this.#linger();
  }

  /**
   * Closes the write side and reads (and drops) what the client still sends, for at most
   * {@link LINGER_MS} and {@link LINGER_BYTES}: closing with unread bytes would send a reset,
   * which can destroy the answer before the client reads it.
   */
  async #linger(): Promise<void> {
    if (this.gone) return;
    this.#arm(LINGER, LINGER_MS);
    this.#ops++;
    try {
      await this.#sock.closeWrite();
    } catch {
      return;
    } finally {
      this.#ops--;
      this.#settle();
    }
    let total = 0;
    while (total < LINGER_BYTES) {
      this.start = this.end;
      const before = this.#got;
      if (!await this.fill()) return;
      total += this.#got - before;
    }
  }
}

async function cancel(body: Reply["body"], reason: unknown): Promise<void> {
  if (body === null || body instanceof Uint8Array) return;
  try {
    await body.cancel(reason);
  } catch { /* nothing to add */ }
}
