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

/**
 * Copies `src` without hop-by-hop headers and those listed in its `Connection` header. With
 * `maxBytes`, throws a `RouterError` (400) when the header block (`name: value\r\n` each) of `src`
 * exceeds it.
 */
export function stripHopByHop(
  src: Headers,
  extraDrop?: ReadonlySet<string>,
  maxBytes = Infinity,
): Headers {
  const out = new Headers();
  let listed: Set<string> | undefined;
  const conn = src.get("connection");
  if (conn) {
    listed = new Set(conn.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
  }
  let size = 0;
  for (const [name, value] of src) {
    size += name.length + value.length + 4;
    if (HOP_BY_HOP.has(name) || listed?.has(name) || extraDrop?.has(name)) continue;
    out.append(name, value);
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

/** Client headers that never travel upstream as they are. */
const DROP_UPSTREAM = new Set([
  "host",
  "content-length",
  "accept-encoding",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "forwarded",
]);

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
}

/**
 * Headers for the upstream request, without any worker credentials (see {@link withApiKey}).
 * @throws RouterError `bad_request` when the client's headers exceed `opts.maxBytes`
 */
export function upstreamHeaders(client: Headers, opts: UpstreamHeaderOptions): Headers {
  const h = stripHopByHop(client, DROP_UPSTREAM, opts.maxBytes);
  if (!opts.forwardClientAuth) h.delete("authorization");
  h.set("x-forwarded-for", opts.clientIp);
  if (opts.host) h.set("x-forwarded-host", opts.host);
  h.set("x-forwarded-proto", opts.proto);
  h.set("x-request-id", opts.requestId);
  // The tap reads usage from the body; a compressed body would hide it.
  h.set("accept-encoding", "identity");
  if (!h.has("content-type")) h.set("content-type", "application/json");
  return h;
}

/** `base` as sent to a worker: with its bearer token when it has one (then a copy), else itself. */
export function withApiKey(base: Headers, apiKey: string | null): Headers {
  if (!apiKey) return base;
  const h = new Headers(base);
  h.set("authorization", `Bearer ${apiKey}`);
  return h;
}

/** Upstream response headers that do not describe the body we re-stream. */
const DROP_DOWNSTREAM = new Set(["content-length", "content-encoding"]);

/** Headers for the client response. */
export function downstreamHeaders(upstream: Headers): Headers {
  return stripHopByHop(upstream, DROP_DOWNSTREAM);
}
