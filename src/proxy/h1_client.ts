/**
 * A keep-alive HTTP/1.1 client for one worker (`http://` only), used instead of `fetch` on the
 * proxy's request path. `fetch` runs every request through hyper's client pool, WebIDL
 * conversions and a JS body stream; on this project's 2-core machines that was the largest single
 * cost of a proxied request (docs/performance.md, ADR 0005). This client writes the request head
 * and body with one socket write and parses the response head in JS, so a request costs a few
 * `read`/`write` ops and nothing else.
 *
 * The pieces: `h1_head.ts` checks and parses a response head (RFC 9112, byte by byte),
 * `h1_body.ts` frames its body, `h1_conn.ts` holds one connection and its buffer,
 * `content_coding.ts` undoes a content coding the worker applied although asked not to. This file
 * is the pool and one request's exchange.
 *
 * Rules:
 * - Idle connections wait in a LIFO stack (the warmest first), at most `maxIdle` of them, and are
 *   not reused after `idleTtlMs` (below uvicorn's and llama-server's 5 s keep-alive, so the
 *   worker rarely closes one under us); expired ones are closed whenever a connection is taken or
 *   returned. An idle connection keeps a read pending (unref'd: it does not hold the process
 *   open), so one the worker closes, or sends anything on (a `408` before closing), is closed and
 *   dropped as soon as that read ends, not handed to the next request.
 * - A request that fails on a REUSED connection because the worker closed it (end of stream,
 *   `ECONNRESET`, `EPIPE`) before any byte of an answer came back is sent once more, on a fresh
 *   connection. That is the keep-alive race: the worker closed the idle connection (its keep-alive
 *   timer, or a worker that closes after every answer without saying `Connection: close`) while
 *   the request was on its way, and the close reached us after we took the connection. A worker
 *   that closes a connection has not read the request on it (uvicorn and cpp-httplib close only an
 *   idle connection; the kernel answers the request's bytes with a reset), so no GPU work runs
 *   twice. The residual risk: a worker that read the request, worked on it, and then closed the
 *   connection without a byte while it still accepts new ones; then the request runs twice on that
 *   worker (a dead worker refuses the fresh connection, so nothing runs twice). The router would
 *   have sent the same request to another worker anyway (a failure before the first byte is
 *   retried there), so this adds no new kind of replay; it keeps one worker's keep-alive race from
 *   being a 502 and a breaker failure. Never after a timeout or the caller's abort, never for a
 *   fresh connection, never after any byte of an answer (a `100 Continue` included), never twice.
 * - A worker that answers early (a `413`, say) and closes without reading the whole request makes
 *   the write fail; the answer that arrived is still read and handed over, and the connection is
 *   not reused.
 * - Heads are checked as `h1_head.ts` says (status line, token names, values without control
 *   characters, obs-text kept as bytes, one framing); 1xx heads are skipped, a `101` or a head
 *   over `maxHeadBytes` is an error. Bodies are framed as `h1_body.ts` says.
 * - A connection goes back to the pool only after its body was read to the end with nothing left
 *   over and neither side said `Connection: close`. A cancelled body, an abort or any error
 *   closes it.
 * - The caller's `signal` aborts the connect and closes the socket at any later point, which
 *   fails a pending read; the body stream then errors and the caller's deadline logic says why.
 * - `send` hands over the answer decoded from `gzip`, `deflate` or `br` (see `content_coding.ts`);
 *   any other content coding is passed on with its `Content-Encoding`.
 *
 * Cost: one `Deno.connect` per new connection; per request one encoded head, one write, and one
 * read for a small answer (more for long streams). `send` hands the answer over as a plain
 * {@link H1Answer} (status, header list, body), so the proxy builds no `Response` or `Headers`
 * for it; `request` wraps that in a `Response` for callers that want one.
 *
 * @module
 */

import type { BodySource } from "../http/types.ts";
import { bodySource, toStream } from "./h1_body.ts";
import { Conn } from "./h1_conn.ts";
import { decodeContent } from "./content_coding.ts";
import {
  CR,
  H1ProtocolError,
  type Head,
  headEnd,
  isNullBodyStatus,
  LF,
  parseHead,
} from "./h1_head.ts";

export type { BodySource };
export { H1ProtocolError, isNullBodyStatus };
export { toStream };

const encoder = new TextEncoder();

/** Settings of one pool. */
export interface H1PoolOptions {
  readonly hostname: string;
  readonly port: number;
  /** Idle connections kept at most (default 128). */
  readonly maxIdle?: number;
  /** An idle connection older than this is closed instead of reused, ms (default 2000). */
  readonly idleTtlMs?: number;
  /** Largest response head accepted, bytes (default 64 KiB). */
  readonly maxHeadBytes?: number;
}

/** A worker's answer as `send` hands it over. */
export interface H1Answer {
  readonly status: number;
  readonly statusText: string;
  /** In arrival order, names lower case, values one char a byte (obs-text as latin1). */
  readonly headers: [string, string][];
  /**
   * The whole body when it arrived with the head (a `Content-Length` answer that came in the
   * first reads): nothing was waited for, so using these bytes is not buffering. Null otherwise.
   */
  readonly whole: Uint8Array<ArrayBuffer> | null;
  /** The body as it arrives; null when there is none or `whole` holds it. */
  readonly body: BodySource | null;
}

/** The connection ended before any byte of the answer's head. */
class ClosedBeforeHead extends H1ProtocolError {
  constructor() {
    super("connection closed before the response head");
  }
}

/** `send` on a closed client: nothing was sent. */
class ClientClosed extends H1ProtocolError {
  constructor() {
    super("client is closed");
  }
}

/**
 * Whether `err` (from `send`) says the worker sent an answer head it got wrong (a bad status or
 * field line, two framings, a head cut short or too large): it read the request, and may have run
 * it. Not a connection that ended before any byte of a head, nor a closed client.
 */
export function isBadAnswer(err: unknown): boolean {
  return err instanceof H1ProtocolError && !(err instanceof ClosedBeforeHead) &&
    !(err instanceof ClientClosed);
}

/** Whether `err` says the worker closed the connection (and not that we did, or a deadline). */
function closedByPeer(err: unknown): boolean {
  return err instanceof ClosedBeforeHead || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe;
}

/** Keep-alive HTTP/1.1 connections to one `host:port`; see the module comment. */
export class H1Pool {
  readonly hostname: string;
  readonly port: number;
  readonly #maxIdle: number;
  readonly #idleTtlMs: number;
  readonly #maxHead: number;
  readonly #hostHeader: string;
  readonly #idle: Conn[] = [];
  /** Connections that carry a request now. */
  readonly #busy = new Set<Conn>();
  #closed = false;

  constructor(opts: H1PoolOptions) {
    this.hostname = opts.hostname;
    this.port = opts.port;
    this.#maxIdle = opts.maxIdle ?? 128;
    this.#idleTtlMs = opts.idleTtlMs ?? 2000;
    this.#maxHead = opts.maxHeadBytes ?? 64 * 1024;
    const host = opts.hostname.includes(":") ? `[${opts.hostname}]` : opts.hostname;
    this.#hostHeader = opts.port === 80 ? host : `${host}:${opts.port}`;
  }

  /** Idle connections held now. */
  get idle(): number {
    return this.#idle.length;
  }

  /** Connections carrying a request now. */
  get busy(): number {
    return this.#busy.size;
  }

  /** {@link send}, with the answer as a `Response`. */
  async request(
    method: string,
    path: string,
    headers: Iterable<[string, string]>,
    body: Uint8Array | null,
    signal: AbortSignal,
  ): Promise<Response> {
    const a = await this.send(method, path, headers, body, signal);
    if (isNullBodyStatus(a.status)) {
      await a.body?.cancel();
      return new Response(null, { status: a.status, statusText: a.statusText, headers: a.headers });
    }
    return new Response(a.whole ?? (a.body && toStream(a.body)), {
      status: a.status,
      statusText: a.statusText,
      headers: a.headers,
    });
  }

  /**
   * Sends one request and resolves with the answer once its head arrived; the body streams,
   * decoded from a content coding the worker applied (`content_coding.ts`). A reused connection
   * the worker closed before answering is retried once on a fresh one (module comment).
   * `headers` must not carry framing or connection headers (`host`, `content-length`,
   * `transfer-encoding`, `connection`): those are this client's, and are skipped if present.
   * @throws H1ProtocolError for a head or framing the worker got wrong, or a connection that
   *   ended before the head; the socket's error when it failed; the signal's reason on abort
   */
  async send(
    method: string,
    path: string,
    headers: Iterable<[string, string]>,
    body: Uint8Array | null,
    signal: AbortSignal,
  ): Promise<H1Answer> {
    if (this.#closed) throw new ClientClosed();
    signal.throwIfAborted();
    const wire = this.#encode(method, path, headers, body);
    const reused = this.#takeIdle();
    if (reused !== null) {
      try {
        return decodeContent(await this.#exchange(reused, wire, method, signal));
      } catch (err) {
        // The keep-alive race (module comment): once more on a fresh connection, and only then.
        if (!closedByPeer(err) || reused.heard || signal.aborted || this.#closed) throw err;
      }
    }
    const fresh = await this.#connect(signal);
    return decodeContent(await this.#exchange(fresh, wire, method, signal));
  }

  /** Closes idle connections now and busy ones when their request ends; later requests fail. */
  close(): void {
    this.#closed = true;
    for (const c of this.#idle) c.close();
    this.#idle.length = 0;
  }

  #takeIdle(): Conn | null {
    this.#sweep(performance.now());
    const c = this.#idle.pop();
    if (c === undefined) return null;
    c.wake();
    return c;
  }

  /** Closes the idle connections past their TTL: the oldest, at the bottom of the stack. */
  #sweep(now: number): void {
    const idle = this.#idle;
    let n = 0;
    while (n < idle.length && now - idle[n].idleSince > this.#idleTtlMs) idle[n++].close();
    if (n > 0) idle.splice(0, n);
  }

  /** An idle connection whose pending read ended: closed and dropped (see `Conn.watch`). */
  readonly #dropIdle = (c: Conn): void => {
    const at = this.#idle.indexOf(c);
    if (at >= 0) this.#idle.splice(at, 1);
    c.close();
  };

  async #connect(signal: AbortSignal): Promise<Conn> {
    const sock = await Deno.connect({ hostname: this.hostname, port: this.port, signal });
    try {
      sock.setNoDelay(true);
    } catch { /* not fatal */ }
    return new Conn(sock);
  }

  #encode(
    method: string,
    path: string,
    headers: Iterable<[string, string]>,
    body: Uint8Array | null,
  ): Uint8Array {
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.#hostHeader}\r\n`;
    for (const [name, value] of headers) {
      const n = name.toLowerCase();
      if (
        n === "host" || n === "content-length" || n === "transfer-encoding" || n === "connection"
      ) {
        continue;
      }
      head += `${name}: ${value}\r\n`;
    }
    if (body !== null) head += `content-length: ${body.length}\r\n`;
    head += "\r\n";
    const bodyLength = body === null ? 0 : body.length;
    // An ASCII head is encoded straight into the buffer that then takes the body: one allocation,
    // one copy. UTF-8 takes one byte a char exactly when the head is ASCII, which the counts tell.
    const out = new Uint8Array(head.length + bodyLength);
    const { read, written } = encoder.encodeInto(head, out);
    if (read !== head.length || written !== head.length) {
      // Header values are byte strings: a char above 0x7f is one byte, not UTF-8.
      for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i) & 0xff;
    }
    if (bodyLength > 0) out.set(body!, head.length);
    return out;
  }

  async #exchange(
    conn: Conn,
    wire: Uint8Array,
    method: string,
    signal: AbortSignal,
  ): Promise<H1Answer> {
    this.#busy.add(conn);
    const onAbort = () => conn.close();
    signal.addEventListener("abort", onAbort, { once: true });
    const finish = (reusable: boolean) => {
      signal.removeEventListener("abort", onAbort);
      this.#busy.delete(conn);
      if (
        reusable && !this.#closed && !conn.closed && conn.start === conn.end
      ) {
        const now = performance.now();
        this.#sweep(now);
        if (this.#idle.length < this.#maxIdle) {
          conn.idleSince = now;
          this.#idle.push(conn);
          conn.watch(this.#dropIdle);
          return;
        }
      }
      conn.close();
    };
    let head: Head;
    try {
      let writeError: unknown = null;
      try {
        let sent = 0;
        while (sent < wire.length) sent += await conn.sock.write(wire.subarray(sent));
      } catch (err) {
        // The worker may have answered early and closed without reading all of the request:
        // read what it said before giving up.
        if (signal.aborted) throw err;
        writeError = err;
      }
      for (;;) {
        let parsed: Head | null;
        try {
          parsed = await this.#readHead(conn);
        } catch (err) {
          throw writeError !== null && !(err instanceof H1ProtocolError) ? writeError : err;
        }
        if (parsed === null) throw writeError ?? new ClosedBeforeHead();
        if (parsed.status >= 200) {
          head = parsed;
          if (writeError !== null) head.close = true; // the rest of the request is still unsent
          break;
        }
        if (parsed.status === 101) throw new H1ProtocolError("unexpected protocol switch");
      }
    } catch (err) {
      finish(false);
      throw err;
    }

    const { status, statusText, headers } = head;
    const noBody = method === "HEAD" || isNullBodyStatus(status);
    if (noBody) {
      finish(!head.close);
      return { status, statusText, headers, whole: null, body: null };
    }
    if (!head.chunked && head.length >= 0 && head.length <= conn.end - conn.start) {
      // The whole body is already here (a small JSON answer): hand it over as bytes.
      const whole = conn.take(head.length);
      finish(!head.close);
      return { status, statusText, headers, whole, body: null };
    }
    const body = bodySource(conn, head, this.#maxHead, finish);
    return { status, statusText, headers, whole: null, body };
  }

  /** Reads and parses one response head; null when the connection ended before any byte of it. */
  async #readHead(conn: Conn): Promise<Head | null> {
    let end: number;
    for (;;) {
      // Stray empty lines before a head may be ignored (RFC 9112 §2.2).
      while (
        conn.end - conn.start >= 2 && conn.buf[conn.start] === CR && conn.buf[conn.start + 1] === LF
      ) conn.start += 2;
      end = headEnd(conn.buf, conn.start, conn.end);
      if (end >= 0) break;
      const before = conn.end - conn.start;
      if (!await conn.fill(this.#maxHead)) {
        if (before === 0) return null;
        throw new H1ProtocolError("connection closed inside the response head");
      }
    }
    const head = parseHead(conn.buf, conn.start, end);
    conn.start = end + 4;
    return head;
  }
}
