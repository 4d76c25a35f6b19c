/**
 * A keep-alive HTTP/1.1 client for one worker (`http://` only), used instead of `fetch` on the
 * proxy's request path. `fetch` runs every request through hyper's client pool, WebIDL
 * conversions and a JS body stream; on this project's 2-core machines that was the largest single
 * cost of a proxied request (docs/performance.md, ADR 0005). This client writes the request head
 * and body with one socket write and parses the response head in JS, so a request costs a few
 * `read`/`write` ops and nothing else.
 *
 * Rules:
 * - Idle connections wait in a LIFO stack (the warmest first), at most `maxIdle` of them, and are
 *   not reused after `idleTtlMs` (below uvicorn's and llama-server's 5 s keep-alive, so the
 *   worker rarely closes one under us).
 * - A reused connection that fails before any byte of the answer arrived (the worker closed it
 *   while it sat idle) is retried once on a new connection. Nothing of the answer was seen, and
 *   engines close idle connections without reading what was sent, so the request was not run.
 * - Response framing as RFC 9112 §6.3 says: no body for 1xx, 204 and 304; `Transfer-Encoding:
 *   chunked` (extensions and trailers skipped); `Content-Length`; otherwise up to the close. 1xx
 *   heads are skipped; a head over `maxHeadBytes` is an error.
 * - A connection goes back to the pool only after its body was read to the end with nothing left
 *   over and neither side said `Connection: close`. A cancelled body, an abort or any error
 *   closes it.
 * - The caller's `signal` aborts the connect and closes the socket at any later point, which
 *   fails a pending read; the body stream then errors and the caller's deadline logic says why.
 *
 * Cost: one `Deno.connect` per new connection; per request one encoded head, one write, and one
 * read for a small answer (more for long streams). `send` hands the answer over as a plain
 * {@link H1Answer} (status, header list, body), so the proxy builds no `Response` or `Headers`
 * for it; `request` wraps that in a `Response` for callers that want one.
 *
 * @module
 */

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

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
  /** In arrival order, names lower case. */
  readonly headers: [string, string][];
  /**
   * The whole body when it arrived with the head (a `Content-Length` answer that came in the
   * first reads): nothing was waited for, so using these bytes is not buffering. Null otherwise.
   */
  readonly whole: Uint8Array<ArrayBuffer> | null;
  /** The body as it arrives; null when there is none or `whole` holds it. */
  readonly body: BodySource | null;
}

/** The worker's answer broke HTTP/1.1 framing, or the connection ended early. */
export class H1ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "H1ProtocolError";
  }
}

const CR = 13;
const LF = 10;
/** The end-of-body read result (shared: it is never mutated). */
const DONE: ReadableStreamReadResult<Uint8Array> = { done: true, value: undefined };
/** A header name (RFC 9110 §5.1 token). */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Characters a header value may not hold (what `Headers` refuses). */
const BAD_VALUE_RE = /[\0\r\n]/;
/** A reason phrase (RFC 9112 §4): tab, space, visible ASCII, obs-text. */
const REASON_RE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** One TCP connection and its read buffer (`buf[start, end)` holds unread bytes). */
class Conn {
  buf = new Uint8Array(16 * 1024);
  start = 0;
  end = 0;
  closed = false;
  idleSince = 0;

  constructor(readonly sock: Deno.TcpConn) {}

  /** Reads more bytes into the buffer; false at end of stream. */
  async fill(limit: number): Promise<boolean> {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.end === this.buf.length) {
      if (this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        if (this.buf.length >= limit) throw new H1ProtocolError("response head is too large");
        const grown = new Uint8Array(Math.min(this.buf.length * 2, limit));
        grown.set(this.buf);
        this.buf = grown;
      }
    }
    const n = await this.sock.read(this.buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    return true;
  }

  /** Copies out and consumes `n` buffered bytes. */
  take(n: number): Uint8Array<ArrayBuffer> {
    const out = this.buf.slice(this.start, this.start + n);
    this.start += n;
    return out;
  }

  /** Index of the next CRLF at or after `from`, or -1. */
  lineEnd(from: number): number {
    const b = this.buf;
    for (let i = from; i + 1 < this.end; i++) if (b[i] === CR && b[i + 1] === LF) return i;
    return -1;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.sock.close();
    } catch { /* already closed */ }
  }
}

/** What the response head says. */
interface Head {
  status: number;
  statusText: string;
  headers: [string, string][];
  /** -1: none given. */
  length: number;
  chunked: boolean;
  close: boolean;
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
    return new Response(a.whole ?? (a.body && toStream(a.body)), {
      status: a.status,
      statusText: a.statusText,
      headers: a.headers,
    });
  }

  /**
   * Sends one request and resolves with the answer once its head arrived; the body streams.
   * `headers` must not carry framing or connection headers (`host`, `content-length`,
   * `transfer-encoding`, `connection`): those are this client's, and are skipped if present.
   */
  async send(
    method: string,
    path: string,
    headers: Iterable<[string, string]>,
    body: Uint8Array | null,
    signal: AbortSignal,
  ): Promise<H1Answer> {
    if (this.#closed) throw new H1ProtocolError("client is closed");
    signal.throwIfAborted();
    const wire = this.#encode(method, path, headers, body);
    const idle = this.#takeIdle();
    const reused = idle !== null;
    try {
      return await this.#exchange(idle ?? await this.#connect(signal), wire, method, signal);
    } catch (err) {
      // Only a reused connection that died before answering earns one more try, on a fresh one.
      if (!reused || signal.aborted || !(err instanceof StaleConnection)) throw unwrap(err);
    }
    const fresh = await this.#connect(signal);
    try {
      return await this.#exchange(fresh, wire, method, signal);
    } catch (err) {
      throw unwrap(err);
    }
  }

  /** Closes idle connections now and busy ones when their request ends; later requests fail. */
  close(): void {
    this.#closed = true;
    for (const c of this.#idle) c.close();
    this.#idle.length = 0;
  }

  #takeIdle(): Conn | null {
    const now = performance.now();
    while (this.#idle.length > 0) {
      const c = this.#idle.pop()!;
      if (now - c.idleSince <= this.#idleTtlMs) return c;
      c.close();
    }
    return null;
  }

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
        reusable && !this.#closed && !conn.closed && conn.start === conn.end &&
        this.#idle.length < this.#maxIdle
      ) {
        conn.start = conn.end = 0;
        conn.idleSince = performance.now();
        this.#idle.push(conn);
      } else conn.close();
    };
    let head: Head;
    try {
      let sent = 0;
      let got = false;
      try {
        while (sent < wire.length) sent += await conn.sock.write(wire.subarray(sent));
        for (;;) {
          const parsed = await this.#readHead(conn, () => got = true);
          if (parsed === null) {
            throw new StaleConnection(
              new H1ProtocolError("connection closed before the response head"),
            );
          }
          if (parsed.status >= 200) {
            head = parsed;
            break;
          }
          if (parsed.status === 101) throw new H1ProtocolError("unexpected protocol switch");
        }
      } catch (err) {
        // Nothing of the answer arrived and the socket broke: possibly a stale idle connection.
        if (err instanceof StaleConnection) throw err;
        if (!got && !(err instanceof H1ProtocolError) && !signal.aborted) {
          throw new StaleConnection(err);
        }
        throw err;
      }
    } catch (err) {
      finish(false);
      throw err;
    }

    const { status, statusText, headers } = head;
    const noBody = method === "HEAD" || status === 204 || status === 304;
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
    const body = this.#bodySource(conn, head, finish);
    return { status, statusText, headers, whole: null, body };
  }

  /** Parses one response head; null when the connection ended before any byte of it. */
  async #readHead(conn: Conn, onByte: () => void): Promise<Head | null> {
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
      onByte();
    }
    const text = latin1.decode(conn.buf.subarray(conn.start, end));
    conn.start = end + 4;
    const lines = text.split("\r\n");
    const statusLine = lines[0];
    const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(statusLine);
    if (!m) throw new H1ProtocolError(`bad status line ${JSON.stringify(statusLine.slice(0, 80))}`);
    const status = Number(m[2]);
    // What a `Response` would refuse is refused here, inside the attempt, so that a malformed head
    // is the worker's failure (retried, counted) and not an error after the attempt ended.
    if (status < 100 || status > 599) throw new H1ProtocolError(`bad status ${status}`);
    const statusText = m[3] ?? "";
    if (!REASON_RE.test(statusText)) {
      throw new H1ProtocolError(`bad reason phrase ${JSON.stringify(statusText.slice(0, 80))}`);
    }
    const headers: [string, string][] = [];
    let length = -1;
    let chunked = false;
    let close = m[1] === "0";
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(":");
      if (colon <= 0) {
        throw new H1ProtocolError(`bad header line ${JSON.stringify(line.slice(0, 80))}`);
      }
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (!TOKEN_RE.test(name) || BAD_VALUE_RE.test(value)) {
        throw new H1ProtocolError(`bad header line ${JSON.stringify(line.slice(0, 80))}`);
      }
      if (name === "content-length") {
        if (!/^\d+$/.test(value) || (length >= 0 && Number(value) !== length)) {
          throw new H1ProtocolError(`bad content-length ${JSON.stringify(value)}`);
        }
        length = Number(value);
      } else if (name === "transfer-encoding") {
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
        if (!chunked) close = true; // another coding last: the body runs to the close
      } else if (name === "connection") {
        const v = value.toLowerCase();
        if (v.includes("close")) close = true;
        else if (m[1] === "0" && v.includes("keep-alive")) close = false;
      }
      headers.push([name, value]);
    }
    if (chunked) length = -1;
    else if (length < 0 && status >= 200 && status !== 204 && status !== 304) close = true;
    return { status, statusText, headers, length, chunked, close };
  }

  /**
   * The body as a pull source: each `read` returns the next piece as it arrives (no JS stream in
   * between; {@link toStream} makes one for callers that want it). Reads must not overlap.
   */
  #bodySource(
    conn: Conn,
    head: Head,
    finish: (reusable: boolean) => void,
  ): BodySource {
    let left = head.length; // Content-Length mode; -1: to the close
    let chunkLeft = 0; // chunked mode: data bytes left in the current chunk
    let crlfLeft = 0; // chunked mode: the CRLF after the chunk's data still to skip
    let settled = false;
    let ended = false;
    const settle = (reusable: boolean) => {
      if (settled) return;
      settled = true;
      finish(reusable);
    };
    const max = this.#maxHead;
    const end = (reusable: boolean) => {
      ended = true;
      settle(reusable);
      return DONE;
    };
    const piece = (value: Uint8Array): ReadableStreamReadResult<Uint8Array> => ({
      done: false,
      value,
    });
    /** Ensures a full line is buffered and returns its end. */
    const line = async (): Promise<number> => {
      let at: number;
      while ((at = conn.lineEnd(conn.start)) < 0) {
        if (!await conn.fill(max)) {
          throw new H1ProtocolError("connection closed inside a chunked body");
        }
      }
      return at;
    };
    const next = async (): Promise<ReadableStreamReadResult<Uint8Array>> => {
      if (!head.chunked) {
        if (left === 0) return end(!head.close);
        if (conn.start === conn.end && !await conn.fill(max)) {
          if (left < 0) return end(false);
          throw new H1ProtocolError(`connection closed with ${left} body bytes missing`);
        }
        const have = conn.end - conn.start;
        const n = left < 0 ? have : Math.min(left, have);
        const value = conn.take(n);
        if (left > 0) {
          left -= n;
          // Settled at once, so the connection is back in the pool before the last piece is used.
          if (left === 0) settle(!head.close);
        }
        return piece(value);
      }
      for (;;) {
        while (crlfLeft > 0) {
          if (conn.start === conn.end && !await conn.fill(max)) {
            throw new H1ProtocolError("connection closed inside a chunked body");
          }
          conn.start++;
          crlfLeft--;
        }
        if (chunkLeft > 0) {
          if (conn.start === conn.end && !await conn.fill(max)) {
            throw new H1ProtocolError("connection closed inside a chunked body");
          }
          const n = Math.min(chunkLeft, conn.end - conn.start);
          const value = conn.take(n);
          chunkLeft -= n;
          if (chunkLeft === 0) crlfLeft = 2;
          return piece(value);
        }
        const at = await line();
        const sizeLine = latin1.decode(conn.buf.subarray(conn.start, at));
        const semi = sizeLine.indexOf(";"); // chunk extensions follow a ';'
        const sizeText = (semi < 0 ? sizeLine : sizeLine.slice(0, semi)).trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) {
          throw new H1ProtocolError(`bad chunk size ${JSON.stringify(sizeText.slice(0, 20))}`);
        }
        const size = parseInt(sizeText, 16);
        conn.start = at + 2;
        if (size === 0) {
          // Trailer fields up to an empty line; skipped.
          for (;;) {
            const t = await line();
            const empty = t === conn.start;
            conn.start = t + 2;
            if (empty) break;
          }
          return end(!head.close);
        }
        chunkLeft = size;
      }
    };
    let failure: unknown = null;
    return {
      read: async () => {
        if (failure !== null) throw failure; // a broken body stays broken
        if (ended || settled) {
          // Ended, cancelled, or a Content-Length body whose last piece went out (its connection
          // may already carry another request): nothing more to read.
          ended = true;
          return DONE;
        }
        try {
          return await next();
        } catch (err) {
          ended = true;
          failure = err;
          settle(false);
          throw err;
        }
      },
      cancel: () => {
        ended = true;
        settle(false);
        return Promise.resolve();
      },
    };
  }
}

/**
 * A body read piece by piece: what `ReadableStreamDefaultReader` offers, without a stream behind
 * it. `read` resolves `{ done: true }` at the end and rejects if the body broke; `cancel` gives
 * the rest up.
 */
export interface BodySource {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  cancel(reason?: unknown): Promise<void>;
}

/** `src` as a byte stream, pulled only as the consumer reads. */
export function toStream(src: BodySource): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    pull: async (ctl) => {
      const r = await src.read();
      if (r.done) ctl.close();
      else ctl.enqueue(r.value);
    },
    cancel: (reason) => src.cancel(reason),
  }, { highWaterMark: 0 });
}

/** A failure that may come from a connection the worker closed while it sat idle. */
class StaleConnection extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** Index of the CRLFCRLF that ends a head in `b[from, to)`, or -1. */
function headEnd(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (b[i] === CR && b[i + 1] === LF && b[i + 2] === CR && b[i + 3] === LF) return i;
  }
  return -1;
}

/** The error a `StaleConnection` wraps; any other error itself. */
function unwrap(err: unknown): unknown {
  return err instanceof StaleConnection ? err.cause : err;
}
