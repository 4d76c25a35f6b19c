/**
 * Header rules of the proxy, both directions: hop-by-hop headers (RFC 9110 §7.6.1) and every header
 * named in `Connection` are dropped; `X-Forwarded-*` from the client are replaced, never trusted.
 *
 * @module
 */

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

/** Copies `src` without hop-by-hop headers and those listed in its `Connection` header. */
export function stripHopByHop(src: Headers, extraDrop?: ReadonlySet<string>): Headers {
  const out = new Headers();
  let listed: Set<string> | undefined;
  const conn = src.get("connection");
  if (conn) {
    listed = new Set(conn.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
  }
  for (const [name, value] of src) {
    if (HOP_BY_HOP.has(name) || listed?.has(name) || extraDrop?.has(name)) continue;
    out.append(name, value);
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
  /** Bearer token of the worker, replacing any client one. */
  readonly apiKey: string | null;
}

/** Headers for the upstream request. */
export function upstreamHeaders(client: Headers, opts: UpstreamHeaderOptions): Headers {
  const h = stripHopByHop(client, DROP_UPSTREAM);
  if (!opts.forwardClientAuth) h.delete("authorization");
  if (opts.apiKey) h.set("authorization", `Bearer ${opts.apiKey}`);
  h.set("x-forwarded-for", opts.clientIp);
  if (opts.host) h.set("x-forwarded-host", opts.host);
  h.set("x-forwarded-proto", opts.proto);
  h.set("x-request-id", opts.requestId);
  // The tap reads usage from the body; a compressed body would hide it.
  h.set("accept-encoding", "identity");
  if (!h.has("content-type")) h.set("content-type", "application/json");
  return h;
}

/** Upstream response headers that do not describe the body we re-stream. */
const DROP_DOWNSTREAM = new Set(["content-length", "content-encoding"]);

/** Headers for the client response. */
export function downstreamHeaders(upstream: Headers): Headers {
  return stripHopByHop(upstream, DROP_DOWNSTREAM);
}
