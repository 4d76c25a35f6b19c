/**
 * The request head of HTTP/1.1 (RFC 9112 §2-§3, §5, §6; RFC 9110 §5, §7.2), parsed from bytes.
 * The router's own server (`server.ts`) is the first thing a hostile client talks to, so the rules
 * are strict where leniency lets two parties read one message differently (request smuggling) and
 * lenient only where RFC 9112 says a server may be.
 *
 * Rules:
 * - Lines end with CRLF. A bare LF is refused (400) rather than taken as a line end: a proxy in
 *   front that reads it otherwise would see other requests than we do. Empty lines before the
 *   request line are skipped (RFC 9112 §2.2).
 * - Request line: `method SP target SP HTTP/x.y`, single spaces. The method is a token. The
 *   target is visible ASCII in origin form (`/path?query`), absolute form (`http://host/p?q`: its
 *   path and query are used, its scheme and authority are ignored, the listener's scheme stands),
 *   or `*` for `OPTIONS` only; anything else (authority form included) is a 400. Versions other
 *   than 1.0 and 1.1 are a 505.
 * - Fields: the name is a token right before the colon (a space before the colon is a 400,
 *   RFC 9112 §5.1); the value has no control character but HTAB (0x80-0xFF, obs-text, is kept as
 *   one char per byte, latin1); a line that starts with a space or tab (obs-fold) is a 400.
 *   Optional whitespace around the value is SP and HTAB only (not `trim()`, which would also eat
 *   0xA0). At most {@link MAX_FIELDS} fields (431 beyond).
 * - HTTP/1.1 needs exactly one `Host` (400 otherwise); HTTP/1.0 may have none but not two.
 * - Framing (RFC 9112 §6): `Content-Length` is digits only, repeated values must agree; a
 *   `Transfer-Encoding` must end with `chunked` (400 otherwise, and on HTTP/1.0); a coding other
 *   than `chunked` is a 501; both headers together are a 400 (the classic smuggling vector), as
 *   is `chunked` twice. No framing header: no body.
 * - `Connection: close` ends the connection after the answer; HTTP/1.0 keeps it only with
 *   `Connection: keep-alive`. `Expect: 100-continue` is noted on HTTP/1.1 only.
 *
 * Cost: one pass over the bytes to find the end of the head, one string for the whole head, a split
 * into lines and two regular expression tests per field: a few µs for a typical 300-byte head.
 *
 * @module
 */

import type { HeaderList } from "./types.ts";

/** Fields accepted in one head at most; more is a 431. */
export const MAX_FIELDS = 256;

/** What the head says; see {@link parseRequestHead}. */
export interface RequestHead {
  readonly method: string;
  readonly path: string;
  readonly search: string;
  readonly version: "1.0" | "1.1";
  readonly headers: HeaderList;
  /** Declared `Content-Length`; -1 when none (chunked, or no body). */
  readonly length: number;
  readonly chunked: boolean;
  /** The client asked to close the connection after this request (or spoke 1.0 without keep-alive). */
  readonly close: boolean;
  readonly expectContinue: boolean;
}

/** A request head the server must refuse: `status` (400, 431, 501, 505) and why. */
export class HeadError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "HeadError";
  }
}

const CR = 13;
const LF = 10;

/** {@link findHeadEnd}: the head is not complete yet. */
export const HEAD_INCOMPLETE = -1;
/** {@link findHeadEnd}: a LF without its CR. */
export const HEAD_BARE_LF = -2;

/**
 * Looks for the empty line that ends a head in `buf[start, end)`, resuming at `from` (bytes before
 * it were looked at already). Returns the index just past the empty line, {@link HEAD_INCOMPLETE}
 * or {@link HEAD_BARE_LF}. The caller resumes with `from = end` after an incomplete answer.
 */
export function findHeadEnd(buf: Uint8Array, start: number, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    if (buf[i] !== LF) continue;
    if (i === start || buf[i - 1] !== CR) return HEAD_BARE_LF;
    if (i - 3 >= start && buf[i - 2] === LF && buf[i - 3] === CR) return i + 1;
  }
  return HEAD_INCOMPLETE;
}

const utf8 = new TextDecoder();

/**
 * `buf[start, end)` as a string of one char per byte (ISO-8859-1). `TextDecoder("latin1")` is
 * windows-1252 (0x80-0x9F become other chars), so it is not used; ASCII takes the native decoder.
 */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  let high = false;
  for (let i = start; i < end; i++) {
    if (buf[i] > 0x7f) {
      high = true;
      break;
    }
  }
  if (!high) return utf8.decode(buf.subarray(start, end));
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(
      null,
      buf.subarray(i, Math.min(end, i + 4096)) as unknown as number[],
    );
  }
  return s;
}

/** A token (RFC 9110 §5.6.2), for methods and field names. */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A char a field value may not hold: a control character other than HTAB, or DEL. */
// deno-lint-ignore no-control-regex
const BAD_VALUE_RE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** A request target: visible ASCII. */
const TARGET_RE = /^[\x21-\x7e]+$/;
/** The start of an absolute-form target: `scheme://`. */
const ABSOLUTE_RE = /^[A-Za-z][A-Za-z0-9+.\-]*:\/\//;
/** An HTTP version (the name is case-sensitive). */
const VERSION_RE = /^HTTP\/(\d)\.(\d)$/;
/** A `Host` value: reg-name, IP literal and port characters, possibly empty (RFC 9110 §7.2). */
const HOST_RE = /^[A-Za-z0-9\-._~!$&'()*+,;=:%\[\]]*$/;
const DIGITS_RE = /^\d{1,15}$/;

/** `s` without leading and trailing SP and HTAB (RFC 9110 §5.6.3 OWS). */
export function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Splits a list value (`a, b ,c`) into its lower-case members, empty ones dropped. */
function listMembers(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(",")) {
    const m = trimOws(part).toLowerCase();
    if (m !== "") out.push(m);
  }
  return out;
}

/**
 * Parses a request head: `text` is the head without its final empty line (from the request line
 * to the CRLF of the last field line, or without it). Throws a {@link HeadError}.
 */
export function parseRequestHead(text: string): RequestHead {
  const lines = text.split("\r\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const { method, path, search, version } = parseRequestLine(lines[0] ?? "");
  if (lines.length - 1 > MAX_FIELDS) {
    throw new HeadError(431, `Request has more than ${MAX_FIELDS} header fields`);
  }
  const headers: HeaderList = [];
  let length = -1;
  let lengthSeen = false;
  let codings: string[] | null = null;
  let hosts = 0;
  let close = version === "1.0";
  let expectContinue = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const c0 = line.charCodeAt(0);
    if (c0 === 0x20 || c0 === 0x09) throw new HeadError(400, "Obsolete line folding in header");
    const colon = line.indexOf(":");
    const rawName = colon < 0 ? "" : line.slice(0, colon);
    if (!TOKEN_RE.test(rawName)) {
      throw new HeadError(400, `Malformed header line ${JSON.stringify(line.slice(0, 40))}`);
    }
    const value = trimOws(line.slice(colon + 1));
    if (BAD_VALUE_RE.test(value)) {
      throw new HeadError(400, `Control character in header ${JSON.stringify(rawName)}`);
    }
    const name = rawName.toLowerCase();
    headers.push([name, value]);
    switch (name) {
      case "host":
        hosts++;
        if (!HOST_RE.test(value)) throw new HeadError(400, "Malformed Host header");
        break;
      case "content-length":
        for (const part of value.split(",")) {
          const v = trimOws(part);
          if (!DIGITS_RE.test(v)) {
            throw new HeadError(400, `Malformed Content-Length ${JSON.stringify(value)}`);
          }
          const n = Number(v);
          if (lengthSeen && n !== length) throw new HeadError(400, "Conflicting Content-Length");
          length = n;
          lengthSeen = true;
        }
        break;
      case "transfer-encoding":
        (codings ??= []).push(...listMembers(value));
        break;
      case "connection":
        for (const token of listMembers(value)) {
          if (token === "close") close = true;
          else if (token === "keep-alive" && version === "1.0") close = false;
        }
        break;
      case "expect":
        if (version === "1.1" && value.toLowerCase() === "100-continue") expectContinue = true;
        break;
    }
  }
  if (hosts > 1 || (hosts === 0 && version === "1.1")) {
    throw new HeadError(400, hosts > 1 ? "More than one Host header" : "Missing Host header");
  }
  let chunked = false;
  if (codings !== null) {
    if (version === "1.0") throw new HeadError(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (lengthSeen) throw new HeadError(400, "Both Content-Length and Transfer-Encoding");
    if (codings.length === 0 || codings[codings.length - 1] !== "chunked") {
      throw new HeadError(400, "Transfer-Encoding does not end with chunked");
    }
    if (codings.indexOf("chunked") !== codings.length - 1) {
      throw new HeadError(400, "Transfer-Encoding chunked twice");
    }
    if (codings.length > 1) {
      throw new HeadError(501, `Transfer coding ${JSON.stringify(codings[0])} is not supported`);
    }
    chunked = true;
    length = -1;
  }
  return { method, path, search, version, headers, length, chunked, close, expectContinue };
}

/** The request line's parts; throws a {@link HeadError}. */
function parseRequestLine(
  line: string,
): { method: string; path: string; search: string; version: "1.0" | "1.1" } {
  const a = line.indexOf(" ");
  const b = a < 0 ? -1 : line.indexOf(" ", a + 1);
  if (b < 0 || line.indexOf(" ", b + 1) >= 0) {
    throw new HeadError(400, `Malformed request line ${JSON.stringify(line.slice(0, 60))}`);
  }
  const method = line.slice(0, a);
  const target = line.slice(a + 1, b);
  const m = VERSION_RE.exec(line.slice(b + 1));
  if (m === null || !TOKEN_RE.test(method) || !TARGET_RE.test(target)) {
    throw new HeadError(400, `Malformed request line ${JSON.stringify(line.slice(0, 60))}`);
  }
  if (m[1] !== "1" || (m[2] !== "0" && m[2] !== "1")) {
    throw new HeadError(505, `HTTP version ${m[1]}.${m[2]} is not supported`);
  }
  const version = m[2] === "1" ? "1.1" : "1.0";
  let rest: string;
  if (target.charCodeAt(0) === 0x2f) { // "/": origin form
    rest = target;
  } else if (target === "*") {
    if (method !== "OPTIONS") throw new HeadError(400, "Target * is only for OPTIONS");
    return { method, path: "*", search: "", version };
  } else {
    const scheme = ABSOLUTE_RE.exec(target);
    if (scheme === null) {
      throw new HeadError(400, `Malformed request target ${JSON.stringify(target.slice(0, 60))}`);
    }
    // Absolute form: the authority runs to the first "/", "?" or "#"; only path and query count.
    let i = scheme[0].length;
    while (i < target.length) {
      const c = target.charCodeAt(i);
      if (c === 0x2f || c === 0x3f || c === 0x23) break;
      i++;
    }
    rest = target.slice(i);
    if (rest === "" || rest.charCodeAt(0) !== 0x2f) rest = "/" + rest;
  }
  const hash = rest.indexOf("#");
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf("?");
  if (q < 0) return { method, path: rest, search: "", version };
  return {
    method,
    path: rest.slice(0, q),
    search: q === rest.length - 1 ? "" : rest.slice(q),
    version,
  };
}
