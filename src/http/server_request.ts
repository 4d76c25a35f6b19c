/**
 * The {@link ServerRequest} a handler gets: the parsed head, a lazily made abort signal, and the
 * body, read whole (`readBody`) or piece by piece (`bodySource`) over the connection.
 *
 * Rules:
 * - `Expect: 100-continue` is answered with `100 Continue` when the handler starts reading the
 *   body, not before: a handler that answers without reading never invites the body.
 * - A `Content-Length` body is read straight into its final buffer (what was buffered with the
 *   head is copied first); a chunked one goes through the connection's buffer and
 *   {@link BodyDecoder}.
 * - `readBody`: a declared length over `maxBytes` fails before anything is read or invited; a
 *   chunked body fails as soon as it passes `maxBytes`; the deadline covers the whole read.
 * - The signal is made only when the handler asks for it (most requests end without one); an
 *   abort that came first is applied when it is made.
 * - After the response, an unread body is drained (at most `maxDrain` bytes) so the connection can
 *   carry the next request; a body read in part, or broken, closes the connection.
 *
 * Cost: one object per request; `readBody` adds one promise pair and a deadline on the shared
 * timer queue.
 *
 * @module
 */

import { RouterError } from "../util/errors.ts";
import { concatBytes } from "../util/bytes.ts";
import { BodyDecoder, type BodyInput, cutShort } from "./request_body.ts";
import type { RequestHead } from "./request_head.ts";
import type { BodySource, HeaderList, ServerRequest } from "./types.ts";

/** What a request needs of its connection. */
export interface RequestConn extends BodyInput {
  /** A read into the buffer is in flight. */
  readonly reading: boolean;
  /** Reads into `view` (nothing buffered, no read in flight); null when the client is gone. */
  readDirect(view: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<boolean>;
  startBodyTimer(ms: number): void;
  stopBodyTimer(): void;
  /** The body was read to its end: the connection may watch for the client leaving. */
  bodyDone(): void;
}

/** Body states. */
export const BODY_NONE = 0;
export const BODY_UNREAD = 1;
export const BODY_READING = 2;
export const BODY_DONE = 3;
export const BODY_BROKEN = 4;

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
/** Largest piece a streamed `Content-Length` body is read in. */
const PIECE_MAX = 64 * 1024;
const DONE: ReadableStreamReadResult<Uint8Array> = { done: true, value: undefined };
const EMPTY_SOURCE: BodySource = {
  read: () => Promise.resolve(DONE),
  cancel: () => Promise.resolve(),
};

/** A request on a connection; see the module comment. */
export class IncomingRequest implements ServerRequest {
  readonly method: string;
  readonly path: string;
  readonly search: string;
  readonly version: "1.0" | "1.1";
  readonly headers: HeaderList;
  readonly scheme: "http" | "https";
  readonly remote: { readonly hostname: string; readonly port: number };
  readonly hasBody: boolean;
  /** One of the `BODY_*` states. */
  bodyState: number;
  readonly #conn: RequestConn;
  readonly #head: RequestHead;
  #ctl: AbortController | null = null;
  #aborted = false;
  #reason: unknown = undefined;
  #continueSent = false;
  #decoder: BodyDecoder | null = null;
  /** `Content-Length` bytes not read yet. */
  #left: number;
  /** The pending `readBody`, rejected by the deadline. */
  #wait: PromiseWithResolvers<Uint8Array<ArrayBuffer>> | null = null;
  #failure: unknown = null;

  constructor(
    conn: RequestConn,
    head: RequestHead,
    scheme: "http" | "https",
    remote: { readonly hostname: string; readonly port: number },
  ) {
    this.#conn = conn;
    this.#head = head;
    this.method = head.method;
    this.path = head.path;
    this.search = head.search;
    this.version = head.version;
    this.headers = head.headers;
    this.scheme = scheme;
    this.remote = remote;
    this.hasBody = head.chunked || head.length > 0;
    this.bodyState = this.hasBody ? BODY_UNREAD : BODY_NONE;
    this.#left = head.length > 0 ? head.length : 0;
  }

  get signal(): AbortSignal {
    if (this.#ctl === null) {
      this.#ctl = new AbortController();
      if (this.#aborted) this.#ctl.abort(this.#reason);
    }
    return this.#ctl.signal;
  }

  /** Aborts the signal with `reason` (the first reason wins). */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#ctl?.abort(reason);
  }

  header(name: string): string | null {
    let out: string | null = null;
    const h = this.headers;
    for (let i = 0; i < h.length; i++) {
      if (h[i][0] === name) out = out === null ? h[i][1] : out + ", " + h[i][1];
    }
    return out;
  }

  /** Whether the client asked for a `100 Continue` that was not sent. */
  get continuePending(): boolean {
    return this.#head.expectContinue && !this.#continueSent;
  }

  /** The declared length of an unread body (-1: chunked or none). */
  get declaredLength(): number {
    return this.#head.length;
  }

  readBody(maxBytes: number, timeoutMs: number): Promise<Uint8Array<ArrayBuffer>> {
    if (this.bodyState === BODY_NONE) return Promise.resolve(new Uint8Array(0));
    if (this.bodyState !== BODY_UNREAD) {
      return Promise.reject(new TypeError("Request body was already read"));
    }
    if (this.#head.length > maxBytes) {
      return Promise.reject(
        new RouterError(
          "too_large",
          `Request body of ${this.#head.length} bytes exceeds the limit of ${maxBytes} bytes`,
        ),
      );
    }
    this.bodyState = BODY_READING;
    const wait = Promise.withResolvers<Uint8Array<ArrayBuffer>>();
    this.#wait = wait;
    this.#conn.startBodyTimer(timeoutMs);
    this.#readAll(maxBytes).then((bytes) => {
      if (this.#wait !== wait) return; // the deadline came first
      this.#wait = null;
      this.#conn.stopBodyTimer();
      this.bodyState = BODY_DONE;
      this.#conn.bodyDone();
      wait.resolve(bytes);
    }, (err) => {
      if (this.#wait !== wait) return;
      this.#wait = null;
      this.#conn.stopBodyTimer();
      this.bodyState = BODY_BROKEN;
      wait.reject(err);
    });
    return wait.promise;
  }

  /** The `readBody` deadline passed (called by the connection's timer). */
  bodyTimedOut(timeoutMs: number): void {
    const wait = this.#wait;
    if (wait === null) return;
    this.#wait = null;
    this.bodyState = BODY_BROKEN;
    wait.reject(
      new RouterError("request_timeout", `Request body was not received within ${timeoutMs} ms`),
    );
  }

  bodySource(): BodySource {
    if (this.bodyState === BODY_NONE) return EMPTY_SOURCE;
    if (this.bodyState !== BODY_UNREAD) throw new TypeError("Request body was already read");
    this.bodyState = BODY_READING;
    return {
      read: () => this.#readPiece(),
      cancel: () => {
        if (this.bodyState === BODY_READING) this.bodyState = BODY_BROKEN;
        return Promise.resolve();
      },
    };
  }

  /**
   * Reads and drops an unread body after the response; true when it ended within `maxDrain`
   * bytes (the connection may carry another request).
   */
  async drain(maxDrain: number): Promise<boolean> {
    if (this.bodyState !== BODY_UNREAD || this.continuePending) return false;
    if (this.#head.length > maxDrain) return false;
    this.bodyState = BODY_READING;
    const decoder = new BodyDecoder(this.#conn, this.#head.length);
    let total = 0;
    try {
      for (;;) {
        const n = await decoder.available();
        if (n === 0) break;
        total += n;
        if (total > maxDrain) return false;
        decoder.consume(n);
      }
    } catch {
      this.bodyState = BODY_BROKEN;
      return false;
    }
    this.bodyState = BODY_DONE;
    return true;
  }

  async #sendContinue(): Promise<void> {
    if (!this.continuePending) return;
    this.#continueSent = true;
    if (!await this.#conn.write(CONTINUE)) throw cutShort();
  }

  async #readAll(maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
    await this.#sendContinue();
    const conn = this.#conn;
    if (this.#head.chunked) {
      const decoder = new BodyDecoder(conn, -1);
      const parts: Uint8Array<ArrayBuffer>[] = [];
      let total = 0;
      for (;;) {
        const n = await decoder.available();
        if (n === 0) break;
        total += n;
        if (total > maxBytes) {
          throw new RouterError("too_large", `Request body exceeds the limit of ${maxBytes} bytes`);
        }
        parts.push(conn.buf.slice(conn.start, conn.start + n));
        decoder.consume(n);
      }
      if (parts.length === 1) return parts[0];
      return concatBytes(parts);
    }
    if (conn.end - conn.start >= this.#left) {
      // The whole body came with the head (the common small request): one copy out.
      const whole = conn.buf.slice(conn.start, conn.start + this.#left);
      conn.start += this.#left;
      this.#left = 0;
      return whole;
    }
    const out = new Uint8Array(this.#left);
    let got = 0;
    while (got < out.length) {
      const buffered = conn.end - conn.start;
      if (buffered > 0) {
        const n = Math.min(buffered, out.length - got);
        out.set(conn.buf.subarray(conn.start, conn.start + n), got);
        conn.start += n;
        got += n;
      } else if (conn.reading) {
        if (!await conn.fill()) throw cutShort();
      } else {
        const n = await conn.readDirect(out.subarray(got));
        if (n === null) throw cutShort();
        got += n;
      }
    }
    this.#left = 0;
    return out;
  }

  async #readPiece(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (this.#failure !== null) throw this.#failure;
    if (this.bodyState !== BODY_READING) return DONE;
    try {
      await this.#sendContinue();
      const value = this.#head.chunked ? await this.#chunkedPiece() : await this.#lengthPiece();
      if (value !== null) return { done: false, value };
      this.bodyState = BODY_DONE;
      this.#conn.bodyDone();
      return DONE;
    } catch (err) {
      this.#failure = err;
      this.bodyState = BODY_BROKEN;
      throw err;
    }
  }

  async #chunkedPiece(): Promise<Uint8Array | null> {
    const conn = this.#conn;
    const decoder = this.#decoder ??= new BodyDecoder(conn, -1);
    const n = await decoder.available();
    if (n === 0) return null;
    const piece = conn.buf.slice(conn.start, conn.start + n);
    decoder.consume(n);
    return piece;
  }

  async #lengthPiece(): Promise<Uint8Array | null> {
    const conn = this.#conn;
    for (;;) {
      if (this.#left === 0) return null;
      const buffered = conn.end - conn.start;
      if (buffered > 0) {
        const n = Math.min(buffered, this.#left);
        const piece = conn.buf.slice(conn.start, conn.start + n);
        conn.start += n;
        this.#left -= n;
        return piece;
      }
      if (conn.reading) {
        if (!await conn.fill()) throw cutShort();
        continue;
      }
      const into = new Uint8Array(Math.min(this.#left, PIECE_MAX));
      const n = await conn.readDirect(into);
      if (n === null) throw cutShort();
      this.#left -= n;
      return into.subarray(0, n);
    }
  }
}
