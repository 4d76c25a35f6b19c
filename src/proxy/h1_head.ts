/**
 * The response head of the HTTP/1.1 client, checked byte by byte as RFC 9112 says, so that every
 * status line and field the client hands on is one that any writer downstream (Deno's HTTP server,
 * the router's own, `new Headers()`) accepts as it is. A head that breaks a rule is an
 * {@link H1ProtocolError}: the worker's failure, before its first byte.
 *
 * Rules:
 * - Status line `HTTP/1.<digit> SP 3DIGIT [SP reason]`, the status 100-599, the reason only HTAB,
 *   SP, visible ASCII and obs-text (0x80-0xFF). A line that ends right after the code (no SP) is
 *   taken as an empty reason, as hyper's parser (behind `fetch`) and h11 take it: it is not
 *   ambiguous.
 * - Field line `name ":" OWS value OWS`: the name a token (RFC 9110 §5.6.2), nothing between it and
 *   the colon (RFC 9112 §5.1: whitespace there is rejected, not trimmed away); the value without
 *   any control character but HTAB (0x00-0x08, 0x0A-0x1F, 0x7F: a bare CR or LF included), its
 *   leading and trailing SP/HTAB dropped (those two only: `String.prototype.trim` would also eat
 *   0xA0). A line that starts with SP or HTAB is obsolete line folding: rejected.
 * - obs-text is kept as bytes: each byte 0x80-0xFF becomes the one char of the same code
 *   (latin1), decoded here by hand. `TextDecoder("latin1")` is windows-1252 (WHATWG Encoding), which
 *   turns 0x80-0x9F into chars above 0xFF that no `Headers` accepts.
 * - One framing: `Transfer-Encoding` must be exactly `chunked` (the router sends no `TE`, so a
 *   worker may apply no other transfer coding; RFC 9112 §7.4), and is refused in an HTTP/1.0
 *   answer (§6.1). It overrides `Content-Length` (§6.3), and a connection that carried both is not
 *   reused. `Content-Length` values (several fields, or a list in one) must all be the same
 *   decimal number of at most 15 digits; any other is an error.
 *
 * Cost: one pass over the head's bytes with a 256-entry class table, one string per name and
 * value.
 *
 * @module
 */

/** The worker's answer broke HTTP/1.1 framing, or the connection ended early. */
export class H1ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "H1ProtocolError";
  }
}

/** What a response head says. */
export interface Head {
  status: number;
  statusText: string;
  /** In arrival order, names lower case, values one char a byte. */
  headers: [string, string][];
  /** The body's `Content-Length`; -1: none given, or `Transfer-Encoding` overrides it. */
  length: number;
  chunked: boolean;
  /** The connection ends with this answer (HTTP/1.0, `Connection: close`, a body to the close). */
  close: boolean;
}

export const CR = 13;
export const LF = 10;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** Byte classes: a token char (tchar), and a char of a field value or reason phrase. */
const TCHAR = 1;
const FIELD = 2;
const CLASS = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) CLASS[c] = FIELD;
for (let c = 0x80; c <= 0xff; c++) CLASS[c] = FIELD;
CLASS[SP] = CLASS[HTAB] = FIELD;
for (const ch of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  CLASS[ch.charCodeAt(0)] |= TCHAR;
}

/** Longest `Content-Length` accepted, in digits: every such number is exact in a double. */
const MAX_LENGTH_DIGITS = 15;

/**
 * `b[from, to)` as a string, one char a byte (latin1: 0x80-0xFF stay U+0080-U+00FF).
 * `String.fromCharCode` over the bytes, in pieces that keep the argument count small.
 */
export function latin1(b: Uint8Array, from: number, to: number): string {
  if (to - from <= 16) {
    let s = "";
    for (let i = from; i < to; i++) s += String.fromCharCode(b[i]);
    return s;
  }
  let s = "";
  for (let at = from; at < to; at += 4096) {
    const piece = b.subarray(at, Math.min(to, at + 4096));
    s += String.fromCharCode.apply(null, piece as unknown as number[]);
  }
  return s;
}

/** Index of the CRLFCRLF that ends a head in `b[from, to)`, or -1. */
export function headEnd(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (b[i] === CR && b[i + 1] === LF && b[i + 2] === CR && b[i + 3] === LF) return i;
  }
  return -1;
}

/** Index of the next CRLF in `b[from, to)`, or `to`. */
function lineEnd(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 1 < to; i++) if (b[i] === CR && b[i + 1] === LF) return i;
  return to;
}

/** A line quoted for an error message (its first 80 bytes). */
function quote(b: Uint8Array, from: number, to: number): string {
  return JSON.stringify(latin1(b, from, Math.min(to, from + 80)));
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * Parses and checks the head in `b[from, to)`, where `to` is the index of the CRLFCRLF that ends
 * it (see {@link headEnd}).
 * @throws H1ProtocolError for any status line, field line or framing the module comment refuses
 */
export function parseHead(b: Uint8Array, from: number, to: number): Head {
  let eol = lineEnd(b, from, to);
  if (
    eol - from < 12 || b[from] !== 0x48 || b[from + 1] !== 0x54 || b[from + 2] !== 0x54 ||
    b[from + 3] !== 0x50 || b[from + 4] !== 0x2f || b[from + 5] !== 0x31 ||
    b[from + 6] !== 0x2e || !isDigit(b[from + 7]) || b[from + 8] !== SP ||
    !isDigit(b[from + 9]) || !isDigit(b[from + 10]) || !isDigit(b[from + 11]) ||
    (eol > from + 12 && b[from + 12] !== SP)
  ) {
    throw new H1ProtocolError(`bad status line ${quote(b, from, eol)}`);
  }
  const http10 = b[from + 7] === 0x30;
  const status = (b[from + 9] - 0x30) * 100 + (b[from + 10] - 0x30) * 10 + b[from + 11] - 0x30;
  if (status < 100 || status > 599) throw new H1ProtocolError(`bad status ${status}`);
  for (let i = from + 13; i < eol; i++) {
    if ((CLASS[b[i]] & FIELD) === 0) {
      throw new H1ProtocolError(`bad reason phrase ${quote(b, from + 13, eol)}`);
    }
  }
  const statusText = eol > from + 13 ? latin1(b, from + 13, eol) : "";

  const headers: [string, string][] = [];
  let length = -1;
  let lengthSeen = false;
  let te: string | null = null;
  let close = http10;
  for (let at = eol + 2; at < to; at = eol + 2) {
    eol = lineEnd(b, at, to);
    if (b[at] === SP || b[at] === HTAB) {
      // obs-fold (RFC 9112 §5.2): a gateway rejects it rather than guess the field's value.
      throw new H1ProtocolError(`obsolete line folding ${quote(b, at, eol)}`);
    }
    let colon = at;
    while (colon < eol && (CLASS[b[colon]] & TCHAR) !== 0) colon++;
    if (colon === at || colon === eol || b[colon] !== COLON) {
      throw new H1ProtocolError(`bad header line ${quote(b, at, eol)}: the name is not a token`);
    }
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (b[vs] === SP || b[vs] === HTAB)) vs++;
    while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
    for (let i = vs; i < ve; i++) {
      if ((CLASS[b[i]] & FIELD) === 0) {
        throw new H1ProtocolError(
          `bad header line ${quote(b, at, eol)}: a control character in the value`,
        );
      }
    }
    const name = latin1(b, at, colon).toLowerCase();
    const value = latin1(b, vs, ve);
    if (name === "content-length") {
      const n = contentLength(value);
      if (n < 0 || (lengthSeen && n !== length)) {
        throw new H1ProtocolError(`bad content-length ${JSON.stringify(value.slice(0, 80))}`);
      }
      length = n;
      lengthSeen = true;
    } else if (name === "transfer-encoding") {
      if (http10) throw new H1ProtocolError("transfer-encoding in an HTTP/1.0 answer");
      te = te === null ? value : `${te}, ${value}`;
    } else if (name === "connection") {
      for (const token of value.split(",")) {
        const t = token.trim().toLowerCase();
        if (t === "close") close = true;
        else if (http10 && t === "keep-alive") close = false;
      }
    }
    headers.push([name, value]);
  }
  let chunked = false;
  if (te !== null) {
    const codings = te.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new H1ProtocolError(`unsupported transfer-encoding ${JSON.stringify(te.slice(0, 80))}`);
    }
    chunked = true;
    if (lengthSeen) close = true; // both framings: do not trust this connection further
    length = -1;
  }
  if (!chunked && length < 0 && status >= 200 && !isNullBodyStatus(status)) close = true;
  return { status, statusText, headers, length, chunked, close };
}

/** A `Content-Length` value (one number, or a list of one number repeated); -1 when bad. */
function contentLength(value: string): number {
  let out = -1;
  let at = 0;
  for (;;) {
    let end = value.indexOf(",", at);
    if (end < 0) end = value.length;
    let s = at;
    let e = end;
    while (s < e && (value.charCodeAt(s) === SP || value.charCodeAt(s) === HTAB)) s++;
    while (e > s && (value.charCodeAt(e - 1) === SP || value.charCodeAt(e - 1) === HTAB)) e--;
    if (e === s || e - s > MAX_LENGTH_DIGITS) return -1;
    let n = 0;
    for (let i = s; i < e; i++) {
      const c = value.charCodeAt(i);
      if (!isDigit(c)) return -1;
      n = n * 10 + c - 0x30;
    }
    if (out >= 0 && n !== out) return -1;
    out = n;
    if (end === value.length) return out;
    at = end + 1;
  }
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
