/**
 * The body of an HTTP/1.1 answer as a pull source, framed as its head says (RFC 9112 §6.3):
 * `Content-Length` bytes, chunked (extensions and trailers skipped, the CRLF after each chunk's
 * data checked, sizes of at most 12 hex digits), or up to the close. Each `read` hands over the
 * next piece as it arrives; nothing is collected.
 *
 * The connection is settled exactly once: reusable only when the body was read to its end and the
 * head allows it (`finish(true)`), closed on a cancel or any error (`finish(false)`). A
 * `Content-Length` body settles as its last piece is handed over, so its connection is back in the
 * pool before the caller has used that piece.
 *
 * @module
 */

import type { BodySource } from "../http/types.ts";
import type { Conn } from "./h1_conn.ts";
import { CR, H1ProtocolError, type Head, latin1, LF } from "./h1_head.ts";

export type { BodySource };

/** The end-of-body read result (shared: it is never mutated). */
export const DONE: ReadableStreamReadResult<Uint8Array> = { done: true, value: undefined };

const piece = (value: Uint8Array): ReadableStreamReadResult<Uint8Array> => ({
  done: false,
  value,
});

/** The value of hex digit `c`, or -1. */
function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * The size on a chunk-size line `b[from, to)` (`1*HEXDIG [BWS ";" ext]`); -1 when it is not one.
 */
function chunkSize(b: Uint8Array, from: number, to: number): number {
  let size = 0;
  let i = from;
  for (; i < to && i - from <= 12; i++) {
    const h = hex(b[i]);
    if (h < 0) break;
    size = size * 16 + h;
  }
  if (i === from || i - from > 12) return -1;
  while (i < to && (b[i] === 0x20 || b[i] === 0x09)) i++;
  return i === to || b[i] === 0x3b ? size : -1;
}

/**
 * The body of the answer whose `head` was just read from `conn`. Reads must not overlap.
 * `maxLine` bounds a chunk-size or trailer line (the head limit).
 */
export function bodySource(
  conn: Conn,
  head: Head,
  maxLine: number,
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
  const end = (reusable: boolean) => {
    ended = true;
    settle(reusable);
    return DONE;
  };
  /** Ensures a full line is buffered and returns its end. */
  const line = async (): Promise<number> => {
    let at: number;
    while ((at = conn.lineEnd(conn.start)) < 0) {
      if (!await conn.fill(maxLine)) {
        throw new H1ProtocolError("connection closed inside a chunked body");
      }
    }
    return at;
  };
  const next = async (): Promise<ReadableStreamReadResult<Uint8Array>> => {
    if (!head.chunked) {
      if (left === 0) return end(!head.close);
      if (conn.start === conn.end && !await conn.fill(maxLine)) {
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
        if (conn.start === conn.end && !await conn.fill(maxLine)) {
          throw new H1ProtocolError("connection closed inside a chunked body");
        }
        if (conn.buf[conn.start] !== (crlfLeft === 2 ? CR : LF)) {
          throw new H1ProtocolError("chunk data not followed by CRLF");
        }
        conn.start++;
        crlfLeft--;
      }
      if (chunkLeft > 0) {
        if (conn.start === conn.end && !await conn.fill(maxLine)) {
          throw new H1ProtocolError("connection closed inside a chunked body");
        }
        const n = Math.min(chunkLeft, conn.end - conn.start);
        const value = conn.take(n);
        chunkLeft -= n;
        if (chunkLeft === 0) crlfLeft = 2;
        return piece(value);
      }
      const at = await line();
      const size = chunkSize(conn.buf, conn.start, at);
      if (size < 0) {
        const text = latin1(conn.buf, conn.start, Math.min(at, conn.start + 20));
        throw new H1ProtocolError(`bad chunk size ${JSON.stringify(text)}`);
      }
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
