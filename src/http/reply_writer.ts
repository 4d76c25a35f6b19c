/**
 * Writes a handler's {@link Reply} as an HTTP/1.1 response (RFC 9112 §4, §6; RFC 9110 §6.6.1).
 *
 * Rules:
 * - Status line `HTTP/1.1 <status> <reason>` (the given reason when it is valid, else the
 *   standard one). A status outside 200-599 is the handler's bug: logged, answered as a 500.
 * - A `date` header, formatted once per second, unless the handler gave one.
 * - Header fields are checked, never trusted: a name that is not a token, or a value with CR, LF,
 *   NUL or another control character but HTAB, is dropped and logged (a header injection must not
 *   reach the wire, and the writer must not crash on it). A value with a char above 0xFF is
 *   written as UTF-8; otherwise each char is one byte (latin1).
 * - Hop-by-hop fields, `content-length` and `transfer-encoding` from the handler are ignored: the
 *   server frames the body. Bytes get `content-length`; a {@link BodySource} is chunked on
 *   HTTP/1.1 and delimited by the close on HTTP/1.0; no body for HEAD (the length is kept), 1xx,
 *   204 and 304. `Connection: close` from the handler closes the connection after the response.
 * - The head goes out with the body when the body is bytes of at most {@link COALESCE_MAX}, and
 *   with the first piece of a streamed body: one write for the common small answer. Every write is
 *   awaited (backpressure). Empty pieces of a stream are skipped (a zero-size chunk would end it).
 * - A stream that fails ends the response abruptly (chunked: without the last chunk), so the
 *   client sees a cut body, not a complete one; a stream that fails before its first piece is
 *   answered with a 500 instead. When the client goes away, the stream is cancelled (the
 *   connection does that, see `connection.ts`).
 *
 * Cost: one string for the head, one `encodeInto`, one buffer and one write per small answer; a
 * streamed answer adds one copy and one write per piece.
 *
 * @module
 */

import { errorBody, type ErrorKind } from "../util/errors.ts";
import { type BodySource, ClientGone, type HeaderList, type HttpLog, type Reply } from "./types.ts";

/** Bytes bodies up to this size are written together with the head, in one buffer. */
export const COALESCE_MAX = 64 * 1024;

/** Standard reason phrases (RFC 9110 §15). */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** What the writer writes to: a connection. */
export interface ReplySink {
  /** Writes all of `bytes`; false when the client is gone (the write failed). */
  write(bytes: Uint8Array): Promise<boolean>;
  /** The client is known to be gone: nothing more can be sent. */
  readonly gone: boolean;
  /** The body being streamed now; the sink cancels it if the client goes away meanwhile. */
  streaming: BodySource | null;
  readonly log: HttpLog;
}

const encoder = new TextEncoder();
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything but HTAB and printable ASCII: the value needs a closer look. */
const UNUSUAL_RE = /[^\t\x20-\x7e]/;
/** A char no field value or reason may carry: a control character but HTAB, or DEL. */
// deno-lint-ignore no-control-regex
const CTL_RE = /[\x00-\x08\x0a-\x1f\x7f]/;
// deno-lint-ignore no-control-regex
const WIDE_RE = /[^\x00-\xff]/;
const REASON_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Fields the server sets itself (hop-by-hop fields, RFC 9110 §7.6.1, and the framing). */
const SERVER_FIELDS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "content-length",
]);
const LAST_CHUNK = encoder.encode("0\r\n\r\n");

let dateText = "";
let dateUntil = 0;

/** The `date` header value for now (IMF-fixdate), recomputed once per second. */
export function httpDate(nowMs = Date.now()): string {
  if (nowMs >= dateUntil || nowMs < dateUntil - 1000) {
    dateText = new Date(nowMs).toUTCString();
    dateUntil = nowMs - (nowMs % 1000) + 1000;
  }
  return dateText;
}

/** The bytes of `s`, whose chars are all at most 0xFF, one byte each, then room for `extra`. */
export function latin1Bytes(s: string, extra = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(s.length + extra);
  const { read, written } = encoder.encodeInto(s, out);
  if (read !== s.length || written !== s.length) {
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  }
  return out;
}

/** `s` as its UTF-8 bytes, one char per byte. */
function utf8Binary(s: string): string {
  const b = encoder.encode(s);
  let out = "";
  for (let i = 0; i < b.length; i += 4096) {
    out += String.fromCharCode.apply(null, b.subarray(i, i + 4096) as unknown as number[]);
  }
  return out;
}

/** What {@link encodeHead} found in the handler's fields. */
export interface HeadFacts {
  /** The handler's `Connection` asked to close. */
  close: boolean;
}

/**
 * The start of a response head as a string of one char per byte: the status line, the handler's
 * checked fields and `date`, each line with its CRLF; the server's own fields and the empty line
 * follow. Dropped fields are logged; a `Connection: close` among them is noted in `facts`.
 */
export function encodeHead(
  status: number,
  statusText: string | undefined,
  headers: HeaderList,
  log: HttpLog,
  facts: HeadFacts,
): string {
  const reason = statusText !== undefined && statusText !== "" && REASON_RE.test(statusText)
    ? statusText
    : STATUS_TEXT[status] ?? "";
  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  let date = false;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    let value = headers[i][1];
    if (typeof name !== "string" || !TOKEN_RE.test(name)) {
      log("warn", "Reply header dropped: bad name", { name: String(name).slice(0, 60) });
      continue;
    }
    const lower = name.toLowerCase();
    if (SERVER_FIELDS.has(lower)) {
      if (lower === "connection" && /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i.test(String(value))) {
        facts.close = true;
      }
      continue;
    }
    if (typeof value !== "string") value = String(value);
    if (UNUSUAL_RE.test(value)) {
      if (CTL_RE.test(value)) {
        log("warn", "Reply header dropped: control character in value", { name });
        continue;
      }
      if (WIDE_RE.test(value)) value = utf8Binary(value);
    }
    if (lower === "date") date = true;
    head += name + ": " + value + "\r\n";
  }
  if (!date) head += "date: " + httpDate() + "\r\n";
  return head;
}

/** `piece` framed as one chunk, after `prefix` (a head, or ""), in one buffer. */
export function chunkBytes(prefix: string, piece: Uint8Array): Uint8Array<ArrayBuffer> {
  const start = prefix + piece.length.toString(16) + "\r\n";
  const out = latin1Bytes(start, piece.length + 2);
  out.set(piece, start.length);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

/** A reply in OpenAI's error shape; `code` overrides the kind as the error's code. */
export function errorReply(
  status: number,
  kind: ErrorKind,
  message: string,
  code: string | null = null,
): Reply {
  return {
    status,
    headers: [["content-type", "application/json"]],
    body: encoder.encode(errorBody(kind, message, null, code)),
  };
}

/** What {@link writeReply} needs to know of the request. */
export interface ReplyContext {
  readonly method: string;
  readonly version: "1.0" | "1.1";
  /** Close the connection after this response (the server or the request decided so). */
  readonly close: boolean;
}

/**
 * Writes `reply`; resolves true when the response went out whole and the connection may carry
 * another request, false when it must close (asked to, close-delimited, or broken).
 */
export async function writeReply(
  sink: ReplySink,
  req: ReplyContext,
  reply: Reply,
): Promise<boolean> {
  const status = reply.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    sink.log("error", "Handler replied with an invalid status", { status: String(status) });
    await cancelBody(reply.body);
    reply = errorReply(500, "internal", "Internal error: invalid status");
  }
  const facts: HeadFacts = { close: req.close };
  const bodiless = reply.status === 204 || reply.status === 304;
  const noBody = bodiless || req.method === "HEAD";
  const body = reply.body;
  if (body === null || body instanceof Uint8Array) {
    const length = body === null ? 0 : body.length;
    const framing = bodiless ? "" : `content-length: ${length}\r\n`;
    const head = headWith(reply, framing, req, facts, sink.log);
    if (noBody || body === null || length === 0) {
      return await sink.write(latin1Bytes(head)) && !facts.close;
    }
    if (length > COALESCE_MAX) {
      return await sink.write(latin1Bytes(head)) && await sink.write(body) && !facts.close;
    }
    const out = latin1Bytes(head, length);
    out.set(body, head.length);
    return await sink.write(out) && !facts.close;
  }
  if (noBody || sink.gone) {
    await cancelBody(body);
    if (sink.gone) return false;
    return await sink.write(latin1Bytes(headWith(reply, "", req, facts, sink.log))) && !facts.close;
  }
  return await writeStream(sink, req, reply, body, facts);
}

/** The head with the server's framing and connection fields. */
function headWith(
  reply: Reply,
  framing: string,
  req: ReplyContext,
  facts: HeadFacts,
  log: HttpLog,
): string {
  // The handler's own fields are read first: its `Connection: close` must reach the head.
  const fields = encodeHead(reply.status, reply.statusText, reply.headers, log, facts);
  const connection = facts.close
    ? "connection: close\r\n"
    : req.version === "1.0"
    ? "connection: keep-alive\r\n"
    : "";
  return fields + framing + connection + "\r\n";
}

/** Streams `body`: chunked on HTTP/1.1, up to the close on HTTP/1.0. */
async function writeStream(
  sink: ReplySink,
  req: ReplyContext,
  reply: Reply,
  body: BodySource,
  facts: HeadFacts,
): Promise<boolean> {
  const chunked = req.version === "1.1";
  if (!chunked) facts.close = true;
  sink.streaming = body;
  /** Whether the source reached its end (or failed): else it is cancelled on the way out. */
  let over = false;
  try {
    let first: ReadableStreamReadResult<Uint8Array>;
    try {
      do first = await body.read(); while (!first.done && first.value.length === 0);
    } catch (err) {
      over = true;
      if (sink.gone) return false;
      // Nothing was sent yet: the client can still be told.
      sink.log("error", "Reply body failed before its first byte", { error: String(err) });
      const failed = errorReply(502, "upstream_failed", "Reply body failed");
      const bytes = failed.body as Uint8Array;
      facts.close = true;
      const head = headWith(failed, `content-length: ${bytes.length}\r\n`, req, facts, sink.log);
      await sink.write(joined(head, bytes));
      return false;
    }
    if (sink.gone) return false;
    const head = headWith(
      reply,
      chunked ? "transfer-encoding: chunked\r\n" : "",
      req,
      facts,
      sink.log,
    );
    if (first.done) {
      over = true;
      const end = chunked ? head + "0\r\n\r\n" : head;
      return await sink.write(latin1Bytes(end)) && !facts.close;
    }
    let ok = chunked
      ? await sink.write(chunkBytes(head, first.value))
      : await sink.write(joined(head, first.value));
    while (ok) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await body.read();
      } catch (err) {
        over = true;
        if (!sink.gone) sink.log("warn", "Reply body failed", { error: String(err) });
        return false; // chunked: no last chunk, so the client sees the body cut short
      }
      if (r.done) over = true;
      if (sink.gone) return false;
      if (r.done) return (!chunked || await sink.write(LAST_CHUNK)) && !facts.close;
      if (r.value.length === 0) continue;
      ok = await sink.write(chunked ? chunkBytes("", r.value) : r.value);
    }
    return false;
  } finally {
    sink.streaming = null;
    // A write that failed, or a client gone between reads: the source must still hear of it, or
    // whatever it holds (an upstream stream, an in-flight count) stays held.
    if (!over) await cancelBody(body, new ClientGone());
  }
}

/** `head` and `piece` in one buffer. */
function joined(head: string, piece: Uint8Array): Uint8Array {
  const out = latin1Bytes(head, piece.length);
  out.set(piece, head.length);
  return out;
}

async function cancelBody(body: Reply["body"], reason?: unknown): Promise<void> {
  if (body === null || body instanceof Uint8Array) return;
  try {
    await body.cancel(reason);
  } catch { /* the source's own failure: nothing to add */ }
}
