/**
 * Request body framing over a connection's read buffer (RFC 9112 §6-§7): a `Content-Length`
 * body or a chunked one. The decoder never copies: it says how many body bytes lie at the front of
 * the buffer, the caller uses them and consumes them.
 *
 * Rules (chunked, RFC 9112 §7.1):
 * - A size line is hex digits (at most {@link MAX_HEX_DIGITS}), optional SP/HTAB, then optional
 *   extensions after `;`, which are skipped; the line ends with CRLF and holds no other control
 *   character; it may be at most `maxLine` bytes long.
 * - The CRLF after each chunk's data is checked, not assumed.
 * - Trailer fields after the last chunk are read and dropped, at most `maxTrailer` bytes in all.
 * - The input ending before the body does is a `ClientGone`; broken framing is a
 *   `RouterError("bad_request")`. Either way the connection cannot carry another request.
 *
 * Cost: a scan of each size line; data bytes are not touched.
 *
 * @module
 */

import { RouterError } from "../util/errors.ts";
import { ClientGone } from "./types.ts";

/** A read buffer with unread bytes in `buf[start, end)`, and a way to get more. */
export interface BodyInput {
  buf: Uint8Array;
  start: number;
  end: number;
  /** Reads more bytes into the buffer; false when the connection ended or failed. */
  fill(): Promise<boolean>;
}

/** Hex digits a chunk size may have at most (13: below 2^53). */
export const MAX_HEX_DIGITS = 13;

const CR = 13;
const LF = 10;

const SIZE = 0;
const DATA = 1;
const DATA_END = 2;
const TRAILER = 3;
const DONE = 4;

/** The end of a body that the client cut short. */
export function cutShort(): ClientGone {
  return new ClientGone("Client closed the connection before the request body ended");
}

function malformed(why: string): RouterError {
  return new RouterError("bad_request", `Malformed chunked request body: ${why}`);
}

/** Decodes one request body from a {@link BodyInput}; see the module comment. */
export class BodyDecoder {
  readonly #in: BodyInput;
  readonly #chunked: boolean;
  readonly #maxLine: number;
  readonly #maxTrailer: number;
  #state: number;
  /** Data bytes left: of the body (length mode) or of the current chunk. */
  #left: number;
  #trailerBytes = 0;

  /** `length` -1 means chunked. */
  constructor(input: BodyInput, length: number, maxLine = 4096, maxTrailer = 16 * 1024) {
    this.#in = input;
    this.#chunked = length < 0;
    this.#maxLine = maxLine;
    this.#maxTrailer = maxTrailer;
    this.#left = length < 0 ? 0 : length;
    this.#state = length < 0 ? SIZE : length === 0 ? DONE : DATA;
  }

  /** Whether the whole body was read. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /** Body bytes left in length mode (-1 in chunked mode, where it is not known). */
  get left(): number {
    return this.#chunked ? -1 : this.#left;
  }

  /**
   * Waits until body bytes lie at `input.buf[input.start]` and returns how many (all of them
   * may be consumed with {@link consume}); 0 at the end of the body.
   */
  async available(): Promise<number> {
    const input = this.#in;
    for (;;) {
      switch (this.#state) {
        case DONE:
          return 0;
        case DATA:
          if (input.start === input.end && !await input.fill()) throw cutShort();
          return Math.min(this.#left, input.end - input.start);
        case DATA_END:
          while (input.end - input.start < 2) {
            if (!await input.fill()) throw cutShort();
          }
          if (input.buf[input.start] !== CR || input.buf[input.start + 1] !== LF) {
            throw malformed("chunk data not followed by CRLF");
          }
          input.start += 2;
          this.#state = SIZE;
          break;
        case SIZE: {
          const at = await this.#line();
          this.#left = this.#sizeOf(at);
          input.start = at + 2;
          this.#state = this.#left === 0 ? TRAILER : DATA;
          break;
        }
        case TRAILER: {
          const at = await this.#line();
          const empty = at === input.start;
          this.#trailerBytes += at - input.start + 2;
          if (this.#trailerBytes > this.#maxTrailer) throw malformed("trailer section too large");
          input.start = at + 2;
          if (empty) this.#state = DONE;
          break;
        }
      }
    }
  }

  /** Consumes `n` of the bytes {@link available} reported. */
  consume(n: number): void {
    this.#in.start += n;
    this.#left -= n;
    if (this.#left === 0) this.#state = this.#chunked ? DATA_END : DONE;
  }

  /** Waits for a whole line at the front of the buffer; returns the index of its CR. */
  async #line(): Promise<number> {
    const input = this.#in;
    let seen = 0; // bytes from input.start already looked at (the buffer may move them)
    for (;;) {
      const buf = input.buf;
      for (let i = input.start + seen; i < input.end; i++) {
        const c = buf[i];
        if (c === LF) {
          if (i === input.start || buf[i - 1] !== CR) throw malformed("line without CR");
          if (i - 1 - input.start > this.#maxLine) throw malformed("line too long");
          return i - 1;
        }
        if (c === CR) {
          if (i + 1 < input.end && buf[i + 1] !== LF) throw malformed("CR without LF");
        } else if ((c < 0x20 && c !== 0x09) || c === 0x7f) {
          throw malformed("control character in a line");
        }
      }
      if (input.end - input.start > this.#maxLine) throw malformed("line too long");
      seen = Math.max(0, input.end - input.start - 1); // a CR at the end is looked at again
      if (!await input.fill()) throw cutShort();
    }
  }

  /** The chunk size in the line `buf[start, at)`. */
  #sizeOf(at: number): number {
    const buf = this.#in.buf;
    let i = this.#in.start;
    let size = 0;
    const first = i;
    for (; i < at; i++) {
      const c = buf[i];
      const d = c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
        ? c - 0x57
        : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : -1;
      if (d < 0) break;
      size = size * 16 + d;
    }
    if (i === first) throw malformed("missing chunk size");
    if (i - first > MAX_HEX_DIGITS) throw malformed("chunk size too large");
    while (i < at && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
    if (i < at && buf[i] !== 0x3b) throw malformed("bad chunk size"); // ";" starts extensions
    return size;
  }
}
