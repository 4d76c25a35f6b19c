/**
 * Test support for the HTTP/1.1 server: a raw TCP client that sends any bytes and reads responses
 * as they are on the wire (status, header list, body by its framing, or "closed"), with every wait
 * bounded, and a server started on 127.0.0.1 port 0 with short limits.
 *
 * @module
 */

import { type HttpServer, type HttpServerOptions, serveHttp } from "./server.ts";
import type { Handler } from "./types.ts";

const enc = new TextEncoder();

/** A response as read from the wire. */
export interface RawResponse {
  readonly status: number;
  readonly reason: string;
  /** Names lower case, in order. */
  readonly headers: [string, string][];
  /** The body as latin1 text (chunked framing removed). */
  readonly body: string;
  header(name: string): string | null;
}

/** Rejects if `p` has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** One raw client connection. */
export class RawClient {
  #buf = "";
  #closed = false;

  private constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(data: string | Uint8Array): Promise<void> {
    const b = typeof data === "string" ? latin1Bytes(data) : data;
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  /** Reads more bytes into the buffer; false at the end of the stream (or a reset). */
  async #more(): Promise<boolean> {
    if (this.#closed) return false;
    const chunk = new Uint8Array(65536);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch {
      n = null;
    }
    if (n === null) {
      this.#closed = true;
      return false;
    }
    this.#buf += String.fromCharCode(...chunk.subarray(0, n));
    return true;
  }

  /** The next response (1xx included), or null when the connection closed before one. */
  response(ms = 5000, opts: { head?: boolean } = {}): Promise<RawResponse | null> {
    return within(this.#response(opts.head ?? false), ms, "response");
  }

  async #response(head: boolean): Promise<RawResponse | null> {
    let end: number;
    while ((end = this.#buf.indexOf("\r\n\r\n")) < 0) {
      if (!await this.#more()) {
        if (this.#buf === "") return null;
        throw new Error(`connection closed inside a head: ${JSON.stringify(this.#buf)}`);
      }
    }
    const lines = this.#buf.slice(0, end).split("\r\n");
    this.#buf = this.#buf.slice(end + 4);
    const m = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(lines[0]);
    if (m === null) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
    const headers = lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(":");
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
    const get = (name: string) => headers.find(([n]) => n === name)?.[1] ?? null;
    const status = Number(m[1]);
    let body = "";
    if (status >= 200 && status !== 204 && status !== 304 && !head) {
      const length = get("content-length");
      if (get("transfer-encoding") === "chunked") body = await this.#chunked();
      else if (length !== null) body = await this.#take(Number(length));
      else body = await this.#rest();
    }
    return { status, reason: m[2], headers, body, header: get };
  }

  async #take(n: number): Promise<string> {
    while (this.#buf.length < n) {
      if (!await this.#more()) {
        throw new Error(`connection closed with ${n - this.#buf.length} body bytes missing`);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  async #chunked(): Promise<string> {
    let body = "";
    for (;;) {
      let at: number;
      while ((at = this.#buf.indexOf("\r\n")) < 0) {
        if (!await this.#more()) throw new Error("connection closed inside a chunked body");
      }
      const size = parseInt(this.#buf.slice(0, at), 16);
      this.#buf = this.#buf.slice(at + 2);
      if (size === 0) {
        await this.#take(2);
        return body;
      }
      body += await this.#take(size);
      await this.#take(2);
    }
  }

  async #rest(): Promise<string> {
    while (await this.#more());
    const out = this.#buf;
    this.#buf = "";
    return out;
  }

  /** Everything until the server closes the connection. */
  rest(ms = 5000): Promise<string> {
    return within(this.#rest(), ms, "close");
  }

  /** Resolves true when the server closed the connection within `ms`, false otherwise. */
  async closedWithin(ms: number): Promise<boolean> {
    try {
      await within(this.#rest(), ms, "close");
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** `s` one byte per char. */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A JSON reply. */
export function json(value: unknown, status = 200) {
  return {
    status,
    headers: [["content-type", "application/json"]] as [string, string][],
    body: enc.encode(JSON.stringify(value)),
  };
}

/** Starts `handler` on 127.0.0.1, any free port; errors go to `logs`. */
export function testServer(
  handler: Handler,
  opts: Partial<HttpServerOptions> = {},
): HttpServer & { logs: string[] } {
  const logs: string[] = [];
  const server = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    log: (_level, msg, fields) => logs.push(`${msg} ${JSON.stringify(fields)}`),
    ...opts,
    handler,
  });
  return Object.assign(server, { logs });
}
