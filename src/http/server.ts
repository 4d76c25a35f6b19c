/**
 * The router's own HTTP/1.1 server over `Deno.listen` (ADR 0007). `Deno.serve` has no header or
 * idle timeout, no connection limit, tells a handler late that its client left, lets the request
 * line choose the URL's scheme, and ends the process when `accept` fails with EMFILE; none of that
 * can be configured. This server keeps those limits itself; the parsing and writing rules are in
 * `request_head.ts`, `request_body.ts`, `reply_writer.ts` and `connection.ts`.
 *
 * Rules:
 * - The accept loop never dies of an accept error (EMFILE, ENFILE, ECONNABORTED…): the error is
 *   counted and logged at most once a second, and the loop waits 10 ms, doubling up to 1 s, before
 *   it accepts again; it serves again as soon as descriptors free up.
 * - At most `maxConnections` (4096) connections are open; one beyond is closed at once, counted
 *   in `stats.refused` and logged (a warning at most once a second, with how many since).
 * - `drain()` keeps accepting but closes each connection after its request (and idle ones now);
 *   `shutdown()` stops accepting, closes connections between requests at once and lets busy ones
 *   finish their response (sent with `Connection: close`); `closeAll(reason)` aborts every
 *   request's signal with `reason` and closes every socket. Both resolve once every connection is
 *   closed with nothing in flight, and the listener is closed: the server then holds nothing open.
 * - Deadlines live in one shared {@link TimerQueue} (`deadlineTimers` by default), one entry per
 *   connection, never a timer each.
 * - Only `http` (no TLS), HTTP/1.0 and 1.1 (no HTTP/2, no `Upgrade`).
 *
 * @module
 */

import { errorMessage } from "../util/errors.ts";
import { deadlineTimers, type TimerQueue } from "../util/timer_queue.ts";
import { Connection, type ConnectionContext, type HttpServerStats } from "./connection.ts";
import { type Handler, type HttpLog, ServerClosing } from "./types.ts";

export type { HttpServerStats } from "./connection.ts";

/** Settings of an {@link HttpServer}. */
export interface HttpServerOptions {
  /** Address to listen on (default `0.0.0.0`). */
  readonly hostname?: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  readonly port?: number;
  readonly handler: Handler;
  /** The whole request head must arrive within this, ms (default 10 000). */
  readonly headerTimeoutMs?: number;
  /** A kept-alive connection with no request is closed after this, ms (default 60 000). */
  readonly idleTimeoutMs?: number;
  /** Connections open at most; more are closed at once (default 4096). */
  readonly maxConnections?: number;
  /** Largest request head, bytes (default 64 KiB); a larger one is a 431. */
  readonly maxHeadBytes?: number;
  /** Errors without a client to tell (default: `console.error`). */
  readonly log?: HttpLog;
  /** Called once the listener is bound. */
  readonly onListen?: (addr: Deno.NetAddr) => void;
  /** Sets SO_REUSEPORT, so several processes can share the port. */
  readonly reusePort?: boolean;
  /** The queue the deadlines go in (default the process-wide `deadlineTimers`). */
  readonly timers?: TimerQueue;
}

/** Defaults of {@link HttpServerOptions}. */
export const HTTP_SERVER_DEFAULTS = {
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxConnections: 4096,
  maxHeadBytes: 64 * 1024,
} as const;

/** Accept errors, and refused connections, are logged at most this often, ms. */
const ACCEPT_LOG_EVERY_MS = 1000;
const BACKOFF_FIRST_MS = 10;
const BACKOFF_MAX_MS = 1000;

const defaultLog: HttpLog = (level, msg, fields) => console.error(level, msg, fields);

/** An HTTP/1.1 server; see the module comment. Construct, then `listen()`, or use {@link serveHttp}. */
export class HttpServer {
  readonly stats: HttpServerStats = {
    accepted: 0,
    refused: 0,
    acceptErrors: 0,
    headerTimeouts: 0,
    idleTimeouts: 0,
    badRequests: 0,
    clientGone: 0,
  };
  readonly #opts: HttpServerOptions;
  readonly #max: number;
  readonly #conns = new Set<Connection>();
  readonly #ctx: ConnectionContext & { draining: boolean };
  readonly #log: HttpLog;
  readonly #finished = Promise.withResolvers<void>();
  #listener: Deno.TcpListener | null = null;
  #addr: Deno.NetAddr | null = null;
  #closing = false;
  #acceptEnded = false;
  #pause: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | null = null;
  readonly #acceptLog = new LogThrottle(ACCEPT_LOG_EVERY_MS);
  readonly #refusedLog = new LogThrottle(ACCEPT_LOG_EVERY_MS);

  constructor(opts: HttpServerOptions) {
    const d = HTTP_SERVER_DEFAULTS;
    const positive = (name: string, v: number | undefined, def: number): number => {
      const n = v ?? def;
      if (!(n > 0)) throw new RangeError(`${name} must be above 0, got ${n}`);
      return n;
    };
    this.#opts = opts;
    this.#log = opts.log ?? defaultLog;
    this.#max = positive("maxConnections", opts.maxConnections, d.maxConnections);
    this.#ctx = {
      handler: opts.handler,
      timers: opts.timers ?? deadlineTimers,
      headerTimeoutMs: positive("headerTimeoutMs", opts.headerTimeoutMs, d.headerTimeoutMs),
      idleTimeoutMs: positive("idleTimeoutMs", opts.idleTimeoutMs, d.idleTimeoutMs),
      maxHeadBytes: positive("maxHeadBytes", opts.maxHeadBytes, d.maxHeadBytes),
      log: this.#log,
      stats: this.stats,
      draining: false,
      closed: (c) => {
        this.#conns.delete(c);
        this.#checkFinished();
      },
    };
  }

  /** Binds the listener and starts accepting; throws what `Deno.listen` throws. */
  listen(): Deno.NetAddr {
    if (this.#listener !== null || this.#closing) throw new Error("Server was already started");
    const listener = Deno.listen({
      hostname: this.#opts.hostname ?? "0.0.0.0",
      port: this.#opts.port ?? 0,
      transport: "tcp",
      reusePort: this.#opts.reusePort,
    });
    this.#listener = listener;
    this.#addr = listener.addr;
    this.#acceptLoop(listener);
    this.#opts.onListen?.(listener.addr);
    return listener.addr;
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    if (this.#addr === null) throw new Error("Server is not listening");
    return this.#addr;
  }

  get port(): number {
    return this.addr.port;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#conns.size;
  }

  /** Resolves when the server has shut down and every connection is closed. */
  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  /**
   * Keeps accepting, but ends every connection after its current request (sent with `Connection:
   * close`) and closes idle ones now, so clients reconnect: for the drain delay of a rolling
   * update, while a load balancer takes this server out of rotation, before `shutdown()`.
   */
  drain(): void {
    this.#ctx.draining = true;
    for (const c of [...this.#conns]) c.closeIfIdle();
  }

  /** Stops accepting, closes idle connections, lets busy ones finish; see the module comment. */
  shutdown(): Promise<void> {
    this.#stopAccepting();
    for (const c of [...this.#conns]) c.closeIfIdle();
    this.#checkFinished();
    return this.#finished.promise;
  }

  /** Aborts every request with `reason` (default a `ServerClosing`) and closes every connection. */
  closeAll(reason: unknown = new ServerClosing()): Promise<void> {
    this.#stopAccepting();
    for (const c of [...this.#conns]) c.abort(reason);
    this.#checkFinished();
    return this.#finished.promise;
  }

  #stopAccepting(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#ctx.draining = true;
    if (this.#listener === null) this.#acceptEnded = true;
    try {
      this.#listener?.close();
    } catch { /* already closed */ }
    const p = this.#pause;
    if (p !== null) {
      clearTimeout(p.timer);
      p.resolve();
    }
  }

  #checkFinished(): void {
    if (this.#closing && this.#acceptEnded && this.#conns.size === 0) this.#finished.resolve();
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    let backoff = 0;
    try {
      while (!this.#closing) {
        let sock: Deno.TcpConn;
        try {
          sock = await listener.accept();
        } catch (err) {
          if (this.#closing) break;
          if (err instanceof Deno.errors.BadResource) {
            this.#log("error", "Listener closed unexpectedly", { error: errorMessage(err) });
            break;
          }
          this.#acceptFailed(err);
          backoff = backoff === 0 ? BACKOFF_FIRST_MS : Math.min(BACKOFF_MAX_MS, backoff * 2);
          await this.#sleep(backoff);
          continue;
        }
        backoff = 0;
        if (this.#closing || this.#conns.size >= this.#max) {
          if (!this.#closing) this.#refused();
          try {
            sock.close();
          } catch { /* already closed */ }
          continue;
        }
        this.stats.accepted++;
        try {
          sock.setNoDelay(true);
        } catch { /* the socket may already be dead; its first read says so */ }
        const conn = new Connection(sock, this.#ctx);
        this.#conns.add(conn);
        conn.run();
      }
    } finally {
      this.#acceptEnded = true;
      this.#checkFinished();
    }
  }

  /** Counts a connection refused over `maxConnections`; a warning at most once a second. */
  #refused(): void {
    this.stats.refused++;
    const suppressed = this.#refusedLog.pass();
    if (suppressed === null) return;
    this.#log("warn", "Connection refused: max_connections open", {
      open: this.#conns.size,
      max_connections: this.#max,
      suppressed,
    });
  }

  #acceptFailed(err: unknown): void {
    this.stats.acceptErrors++;
    const suppressed = this.#acceptLog.pass();
    if (suppressed === null) return;
    const code = (err as { code?: unknown }).code;
    this.#log("error", "Accept failed; backing off", {
      error: errorMessage(err),
      code: typeof code === "string" ? code : undefined,
      open: this.#conns.size,
      suppressed,
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pause = null;
        resolve();
      }, ms);
      this.#pause = { timer, resolve };
    });
  }
}

/** Starts an {@link HttpServer} on `opts.hostname:opts.port` and returns it. */
export function serveHttp(opts: HttpServerOptions): HttpServer {
  const server = new HttpServer(opts);
  server.listen();
  return server;
}

/** Lets a log line out at most once per `everyMs`, counting the ones it holds back. */
class LogThrottle {
  readonly #everyMs: number;
  #last = -Infinity;
  #quiet = 0;

  constructor(everyMs: number) {
    this.#everyMs = everyMs;
  }

  /** Lines held back since the last one let out, when this one may go out; else null. */
  pass(): number | null {
    const now = performance.now();
    if (now - this.#last < this.#everyMs) {
      this.#quiet++;
      return null;
    }
    this.#last = now;
    const held = this.#quiet;
    this.#quiet = 0;
    return held;
  }
}
