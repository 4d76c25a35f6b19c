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
 *   worker rarely closes one under us); expired ones are closed whenever a connection is taken or
 *   returned. An idle connection keeps a read pending (unref'd: it does not hold the process
 *   open), so one the worker closes, or sends anything on (a `408` before closing), is closed and
 *   dropped as soon as that read ends, not handed to the next request.
 * - A request is sent once. If the connection fails after the whole request was written and
 *   before an answer, the worker may have run it (read it, worked, died), so it is not replayed:
 *   the failure goes to the caller, whose retry policy decides (the router's tries another
 *   worker). Go's `net/http` and nginx do not replay a sent POST either.
 * - A worker that answers early (a `413`, say) and closes without reading the whole request makes
 *   the write fail; the answer that arrived is still read and handed over, and the connection is
 *   not reused.
 * - Response framing as RFC 9112 §6.3 says: no body for 1xx, 204 and 304 (nor for 205, which has
 *   none and which hyper sends unframed on a kept connection); `Transfer-Encoding`
 *   overrides `Content-Length`: chunked last means chunked (extensions and trailers skipped, the
 *   CRLF after each chunk checked), any other coding last means up to the close; then
 *   `Content-Length`; otherwise up to the close. 1xx heads are skipped; a head over `maxHeadBytes`
 *   or with obsolete line folding (a line that starts with a space or tab) is an error.
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
  /** In the pool's idle stack now. */
  idle = false;
  /** The read started when the connection went idle; the next `fill` takes its result. */
  #ahead: Promise<number | null> | null = null;

  constructor(readonly sock: Deno.TcpConn) {}

  /**
   * Marks the connection idle and starts a read on it (into the empty buffer). If that read ends
   * while the connection is still idle (the worker closed it, failed it, or sent bytes nobody
   * asked for), `onWake` runs; if the connection was taken first, the read is its answer's first.
   */
  watch(onWake: (c: Conn) => void): void {
    this.start = this.end = 0;
    this.idle = true;
    this.sock.unref();
    const read = this.sock.read(this.buf);
    this.#ahead = read;
    const woke = () => {
      if (this.idle) onWake(this);
    };
    read.then(woke, woke);
  }

  /** Takes the connection out of the idle stack for a request. */
  wake(): void {
    this.idle = false;
    this.sock.ref();
  }

  /** Reads more bytes into the buffer; false at end of stream. */
  async fill(limit: number): Promise<boolean> {
    if (this.#ahead !== null) {
      // Started while idle, into the empty buffer (`watch`).
      const read = this.#ahead;
      this.#ahead = null;
      const n = await read;
      if (n === null) return false;
      this.end += n;
      return true;
    }
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
    const conn = this.#takeIdle() ?? await this.#connect(signal);
    return await this.#exchange(conn, wire, method, signal);
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
        if (parsed === null) {
          throw writeError ?? new H1ProtocolError("connection closed before the response head");
        }
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
    const body = this.#bodySource(conn, head, finish);
    return { status, statusText, headers, whole: null, body };
  }

  /** Parses one response head; null when the connection ended before any byte of it. */
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
    let coded = false; // a Transfer-Encoding was given: it overrides any Content-Length
    let close = m[1] === "0";
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const c0 = line.charCodeAt(0);
      if (c0 === 0x20 || c0 === 0x09) {
        // obs-fold (RFC 9112 §5.2): a gateway rejects it rather than guess the field's value.
        throw new H1ProtocolError(`obsolete line folding ${JSON.stringify(line.slice(0, 80))}`);
      }
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
        coded = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
        if (!chunked) close = true; // another coding last: the body runs to the close
      } else if (name === "connection") {
        const v = value.toLowerCase();
        if (v.includes("close")) close = true;
        else if (m[1] === "0" && v.includes("keep-alive")) close = false;
      }
      headers.push([name, value]);
    }
    if (coded) length = -1;
    if (!chunked && length < 0 && status >= 200 && !isNullBodyStatus(status)) close = true;
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
          if (conn.buf[conn.start] !== (crlfLeft === 2 ? CR : LF)) {
            throw new H1ProtocolError("chunk data not followed by CRLF");
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

/**
 * Statuses whose answer ends with its head, whatever it says: 204 and 304 (RFC 9112 §6.3), and
 * 205, which carries no content (RFC 9110 §15.3.6) and which hyper, behind `Deno.serve` and others,
 * sends without `Content-Length` on a connection it keeps open (read to the close, it would never
 * end). They are also Fetch's "null body statuses" (101 and 103 never reach a caller): a
 * `Response` with one must have a null body. Bytes a worker sends after such a head anyway keep
 * the connection out of the pool.
 */
export function isNullBodyStatus(status: number): boolean {
  return status === 204 || status === 205 || status === 304;
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

/** Index of the CRLFCRLF that ends a head in `b[from, to)`, or -1. */
function headEnd(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (b[i] === CR && b[i + 1] === LF && b[i + 2] === CR && b[i + 3] === LF) return i;
  }
  return -1;
}
