/**
 * One TCP connection of the HTTP/1.1 client and its read buffer. While the connection waits in the
 * pool it keeps one read pending (unref'd, so it does not hold the process open): a worker that
 * closes it, or sends anything on it, is noticed at once instead of by the next request.
 *
 * Cost: one 16 KiB buffer a connection, grown (up to the head limit) only for a head that does not
 * fit; reads go straight into it.
 *
 * @module
 */

import { CR, H1ProtocolError, LF } from "./h1_head.ts";

/** One TCP connection and its read buffer (`buf[start, end)` holds unread bytes). */
export class Conn {
  buf = new Uint8Array(16 * 1024);
  start = 0;
  end = 0;
  closed = false;
  idleSince = 0;
  /** In the pool's idle stack now. */
  idle = false;
  /** Some byte arrived since the connection was last taken from the pool (or opened). */
  heard = false;
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
    this.heard = false;
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
      this.heard = true;
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
    this.heard = true;
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
