/**
 * Header rules of the proxy, both directions: hop-by-hop headers (RFC 9110 §7.6.1) and every header
 * named in `Connection` are dropped; `X-Forwarded-*` from the client are replaced, never trusted.
 * The client's `Authorization` (the router's own API key, when auth is on) stays behind unless
 * `forward_client_auth` is set; a worker's `api_key` replaces it either way.
 *
 * The upstream headers are built once per request, before any attempt, and the same pass measures
 * the client's header block against `server.max_header_bytes`: a block the engine would refuse
 * (uvicorn stops at 16 KiB) is answered 400 here instead of failing upstream and counting against
 * the worker's breaker.
 *
 * @module
 */

import { RouterError } from "../util/errors.ts";

/** Headers that describe one connection, not the message. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Headers as `[name, value]` pairs, names lower case: what `fetch`, `Response` and the HTTP/1.1
 * client take without building a `Headers` object per request. */
export type HeaderList = [string, string][];

/**
 * The value of header `name` (lower case) in `list`, several fields joined with `, ` as
 * `Headers.get` joins them; null when absent.
 */
export function headerValue(list: HeaderList, name: string): string | null {
  let out: string | null = null;
  for (let i = 0; i < list.length; i++) {
    if (list[i][0] === name) out = out === null ? list[i][1] : `${out}, ${list[i][1]}`;
  }
  return out;
}

/** Names listed in a `Connection` header value, lower case; undefined when there is none. */
function connectionListed(src: Headers | HeaderList): Set<string> | undefined {
  const conn = src instanceof Headers ? src.get("connection") : headerValue(src, "connection");
  if (!conn) return undefined;
  return new Set(conn.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
}

/**
 * Copies `src` (a `Headers` object, or a list with lower-case names) without hop-by-hop headers,
 * those listed in its `Connection` header and those in `extraDrop`. With `maxBytes`, throws a
 * `RouterError` (400) when the header block (`name: value\r\n` each) of `src` exceeds it.
 */
export function stripHopByHop(
  src: Headers | HeaderList,
  extraDrop?: ReadonlySet<string>,
  maxBytes = Infinity,
): HeaderList {
  const out: HeaderList = [];
  const listed = connectionListed(src);
  let size = 0;
  for (const [name, value] of src) {
    size += name.length + value.length + 4;
    if (HOP_BY_HOP.has(name) || listed?.has(name) || extraDrop?.has(name)) continue;
    out.push([name, value]);
  }
  if (size > maxBytes) {
    throw new RouterError(
      "bad_request",
      `Request headers of ${size} bytes exceed the limit of ${maxBytes} bytes`,
      null,
      "headers_too_large",
    );
  }
  return out;
}

/**
 * Client headers that never travel upstream as they are. `content-type` among them: the router
 * parsed the body as JSON whatever the client called it, and the engine gets it as JSON (FastAPI,
 * behind vLLM and SGLang, reads a `text/plain` or form-encoded body as bytes and answers 422; `curl
 * -d` sends form encoding unless told otherwise).
 */
const DROP_UPSTREAM = new Set([
  "host",
  "content-length",
  "content-type",
  "accept-encoding",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "forwarded",
]);

/** The same, and the client's `Authorization` (unless `forward_client_auth`). */
const DROP_UPSTREAM_AUTH = new Set([...DROP_UPSTREAM, "authorization"]);

/** Options for {@link upstreamHeaders}. */
export interface UpstreamHeaderOptions {
  /** Client address for `X-Forwarded-For`. */
  readonly clientIp: string;
  /** Host the client asked for. */
  readonly host: string | null;
  /** `http` or `https`. */
  readonly proto: string;
  readonly requestId: string;
  /** Keep the client's `Authorization` header. */
  readonly forwardClientAuth: boolean;
  /** Largest client header block accepted, bytes; default unlimited. */
  readonly maxBytes?: number;
  /**
   * The body's content type upstream: default `application/json` (the router parsed the body as
   * JSON); a pass-through body (multipart audio) keeps the client's; null sends none.
   */
  readonly contentType?: string | null;
}

/**
 * Headers for the upstream request, without any worker credentials (see {@link withApiKey}).
 * @throws RouterError `bad_request` when the client's headers exceed `opts.maxBytes`
 */
export function upstreamHeaders(
  client: Headers | HeaderList,
  opts: UpstreamHeaderOptions,
): HeaderList {
  const h = stripHopByHop(
    client,
    opts.forwardClientAuth ? DROP_UPSTREAM : DROP_UPSTREAM_AUTH,
    opts.maxBytes,
  );
  for (let i = 0; i < h.length; i++) {
    if (h[i][0] === "x-request-id") h.splice(i--, 1);
  }
  h.push(["x-forwarded-for", opts.clientIp]);
  if (opts.host) h.push(["x-forwarded-host", opts.host]);
  h.push(["x-forwarded-proto", opts.proto]);
  h.push(["x-request-id", opts.requestId]);
  // Whatever the client accepts, the worker is asked for an uncompressed body: the router taps it
  // for the first token and `usage` (cache feedback, metrics), which a compressed body hides, and
  // then it sends it on as it came. A worker that compresses anyway is decoded by the HTTP/1.1
  // client (`content_coding.ts`). `fetch`, given this header, decodes nothing.
  h.push(["accept-encoding", "identity"]);
  const type = opts.contentType === undefined ? "application/json" : opts.contentType;
  if (type !== null) h.push(["content-type", type]);
  return h;
}

/**
 * `base` as sent to a worker: with its bearer token instead of any `Authorization` when it has
 * one (then a copy), else itself.
 */
export function withApiKey(base: HeaderList, apiKey: string | null): HeaderList {
  if (!apiKey) return base;
  const h = base.filter(([name]) => name !== "authorization");
  h.push(["authorization", `Bearer ${apiKey}`]);
  return h;
}

/**
 * Upstream response headers that do not describe the body we re-stream, and those the router sets
 * itself: a worker that echoes `X-Request-ID` (vLLM with `--enable-request-id-headers`) or a
 * router in front of the worker would otherwise double them (`abc, abc`). The body's framing is
 * the router's own (`content-length`). `content-encoding` stays: the body goes out as it arrived
 * here, so a header still present still describes it. The HTTP/1.1 client has already decoded
 * (and dropped the header of) `gzip`, `deflate` and `br`; what remains is a coding it does not
 * know, or anything on the `fetch` path, which decodes nothing since the router asks for
 * `identity`. Dropping it, as this list once did, sent coded bytes labelled as plain ones.
 */
const DROP_DOWNSTREAM = new Set([
  "content-length",
  "x-request-id",
  "x-router-backend",
  "x-router-reason",
]);

/** Headers for the client response, from the worker's (a list: names lower case). */
export function downstreamHeaders(upstream: Headers | HeaderList): HeaderList {
  return stripHopByHop(upstream, DROP_DOWNSTREAM);
}
