/**
 * The `parse` stage: a client request for a proxied endpoint → a {@link RequestPlan}, everything the
 * later stages need, computed once: upstream headers (the client's header block bounded by
 * `server.max_header_bytes`), the body (bounded by `server.max_body_bytes` and
 * `server.read_timeout`), JSON parsed once with its nesting bounded (`server.max_json_depth`), the
 * routing key (text → chained chunk hashes) and the session id.
 *
 * Cost: one body read, one strict UTF-8 decode, one `JSON.parse`, one routing-text build and one
 * chunk hash pass over it (a 6 KB chat body: a few µs each, docs/performance.md).
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import type { ServerRequest } from "../http/types.ts";
import { type ChunkHashes, chunkHashes, parseRequest, utf8 } from "../prefix/mod.ts";
import { type HeaderList, upstreamHeaders } from "../proxy/headers.ts";
import { RouterError } from "../util/errors.ts";
import { decodeUtf8Strict } from "../util/utf8.ts";
import type { ProxyEndpoint } from "./endpoints.ts";
import { jsonTooDeep, SCAN_MIN_BYTES, tooDeepError, valueTooDeep } from "./limits.ts";

/** Bytes per token when the router estimates token counts from text (no tokenizer). */
export const BYTES_PER_TOKEN = 4;

/** What one proxied request is, as the later stages see it. */
export interface RequestPlan {
  readonly endpoint: ProxyEndpoint;
  readonly requestId: string;
  /** Path sent upstream, after the worker's base path (the query is not forwarded). */
  readonly target: string;
  /** Upstream headers without worker credentials (`withApiKey` adds them per attempt). */
  readonly headers: HeaderList;
  readonly body: Uint8Array<ArrayBuffer>;
  /** The body's `model`, when given. */
  readonly model: string | undefined;
  readonly stream: boolean;
  /** `stream_options.include_usage === true`. */
  readonly includeUsage: boolean;
  /** Chained chunk hashes of the routing text. */
  readonly hashes: ChunkHashes;
  /** Prompt tokens as the router estimates them (routing-text bytes ÷ {@link BYTES_PER_TOKEN}). */
  readonly promptTokens: number;
  /** `chunk_size ÷ BYTES_PER_TOKEN`: tokens one matched chunk stands for. */
  readonly tokensPerChunk: number;
  /** Value of `router.session_header`, or null. */
  readonly sessionId: string | null;
}

const REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;

/** The client's `X-Request-ID` when it is printable ASCII of at most 128 bytes, else a new one. */
export function requestIdOf(req: ServerRequest): string {
  const given = req.header("x-request-id");
  return given !== null && REQUEST_ID_RE.test(given) ? given : crypto.randomUUID();
}

/**
 * Builds the plan of `req` for `endpoint` under `config`.
 * @throws RouterError 400 (headers too large, bad JSON, bad fields), 408, 413
 */
export async function parse(
  req: ServerRequest,
  endpoint: ProxyEndpoint,
  config: RouterConfig,
  requestId: string,
): Promise<RequestPlan> {
  const headers = upstreamHeaders(req.headers, {
    clientIp: req.remote.hostname,
    host: req.header("host"),
    proto: req.scheme,
    requestId,
    forwardClientAuth: config.auth.forwardClientAuth,
    maxBytes: config.server.maxHeaderBytes,
  });
  const body = await req.readBody(config.server.maxBodyBytes, config.server.readTimeoutMs);
  const parsed = parseRequest(endpoint.kind, parseJson(body, config.server.maxJsonDepth));
  const text = utf8(parsed.text);
  const chunkSize = config.router.chunkSize;
  const sessionHeader = config.router.sessionHeader;
  return {
    endpoint,
    requestId,
    target: req.path,
    headers,
    body,
    model: parsed.model,
    stream: parsed.stream,
    includeUsage: parsed.includeUsage,
    hashes: chunkHashes(text, chunkSize),
    promptTokens: text.length / BYTES_PER_TOKEN,
    tokensPerChunk: chunkSize / BYTES_PER_TOKEN,
    sessionId: sessionHeader === "" ? null : req.header(sessionHeader),
  };
}

/**
 * The JSON value of `body`, nesting at most `maxDepth` containers: large bodies are scanned before
 * parsing, small ones walked after (see `limits.ts`).
 * @throws RouterError 400 when the body is not UTF-8, not JSON, or too deep
 */
export function parseJson(body: Uint8Array, maxDepth: number): unknown {
  const scanned = body.length > SCAN_MIN_BYTES;
  if (scanned && jsonTooDeep(body, maxDepth)) throw tooDeepError(maxDepth);
  let json: unknown;
  try {
    json = JSON.parse(decodeUtf8Strict(body));
  } catch (err) {
    throw new RouterError(
      "bad_request",
      err instanceof SyntaxError
        ? `Request body is not valid JSON: ${err.message}`
        : "Request body is not valid UTF-8",
    );
  }
  if (!scanned && valueTooDeep(json, maxDepth)) throw tooDeepError(maxDepth);
  return json;
}
