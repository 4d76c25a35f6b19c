/**
 * The `parse` stage: a client request for a proxied endpoint → a {@link RequestPlan}, everything the
 * later stages need, computed once: upstream headers (the client's header block bounded by
 * `server.max_header_bytes`), the body (bounded by `server.max_body_bytes` and
 * `server.read_timeout`), the fields the router routes on (JSON parsed once with its nesting bounded
 * by `server.max_json_depth`; a multipart body's `model` field; a pass-through body's `model` when
 * it is JSON), the model resolved against the workers' served models (`models.ts`), the routing key
 * (text → chained chunk hashes, tagged with the served model so that prefixes never match across
 * models) and the session id.
 *
 * An alias (`router.model_aliases`) is resolved to its served name, and a JSON body's `model` (a
 * scanned pass-through body's too) is
 * rewritten to it (one `JSON.stringify`, only for aliased requests). A streamed chat or completion
 * request without `stream_options.include_usage` is sent with it (`usageAdded`), so that the
 * engine reports usage the router learns from; the relay drops that usage chunk from the client's
 * stream (`src/proxy/usage_strip.ts`). Without a `stream_options` key the field is spliced in
 * after the body's opening brace; otherwise the body is re-serialized once.
 *
 * Cost: one body read, one strict UTF-8 decode, one `JSON.parse`, one routing-text build and one
 * chunk hash pass over it (a 6 KB chat body: a few µs each, docs/performance.md).
 *
 * @module
 */

import type { ServerRequest } from "../http/types.ts";
import { type ChunkHashes, chunkHashes, fnv1a64Hex, parseRequest, utf8 } from "../prefix/mod.ts";
import { type HeaderList, upstreamHeaders } from "../proxy/headers.ts";
import { RouterError } from "../util/errors.ts";
import { decodeUtf8Strict } from "../util/utf8.ts";
import type { ProxyEndpoint } from "./endpoints.ts";
import { jsonTooDeep, SCAN_MIN_BYTES, tooDeepError, valueTooDeep } from "./limits.ts";
import { resolveModel } from "./models.ts";
import { multipartBoundary, multipartField } from "./multipart.ts";
import type { RouterState } from "./state.ts";

/** Bytes per token when the router estimates token counts from text (no tokenizer). */
export const BYTES_PER_TOKEN = 4;

/** What one proxied request is, as the later stages see it. */
export interface RequestPlan {
  readonly endpoint: ProxyEndpoint;
  readonly requestId: string;
  /** The method sent upstream (the client's). */
  readonly method: string;
  /** Path and query sent upstream, after the worker's base path. */
  readonly target: string;
  /** Upstream headers without worker credentials (`withApiKey` adds them per attempt). */
  readonly headers: HeaderList;
  /** The body sent upstream; null for a request without one. */
  readonly body: Uint8Array<ArrayBuffer> | null;
  /** The body's `model`, as the client named it. */
  readonly model: string | undefined;
  /** The served model the request goes to (after aliases); null when none is known. */
  readonly served: string | null;
  readonly stream: boolean;
  /** `stream_options.include_usage === true`. */
  readonly includeUsage: boolean;
  /** The router set `include_usage` in the upstream body; the client's stream must not show it. */
  readonly usageAdded: boolean;
  /** Chained chunk hashes of the routing text (tagged with the served model). */
  readonly hashes: ChunkHashes;
  /** Prompt tokens as the router estimates them (routing-text bytes ÷ {@link BYTES_PER_TOKEN}). */
  readonly promptTokens: number;
  /** Tokens one matched chunk stands for (`chunk_size ÷ BYTES_PER_TOKEN`, or a block's). */
  readonly tokensPerChunk: number;
  /** Bytes a chunk stands for, as strategies convert chunks to tokens (`chunk_size`). */
  readonly chunkSize: number;
  /** Whether `hashes` are the request's token blocks (precise mode) rather than text chunks. */
  readonly precise: boolean;
  /** Value of `router.session_header`, or null. */
  readonly sessionId: string | null;
  /** A Responses API follow-up's `previous_response_id`, or null. */
  readonly previousResponseId: string | null;
  /** The JSON body's `flow.queue.class_field` (a priority class, `admission.ts`), if given. */
  readonly classValue: unknown;
}

const REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;
const EMPTY = new Uint8Array(0);

/** The client's `X-Request-ID` when it is printable ASCII of at most 128 bytes, else a new one. */
export function requestIdOf(req: ServerRequest): string {
  const given = req.header("x-request-id");
  return given !== null && REQUEST_ID_RE.test(given) ? given : crypto.randomUUID();
}

/** What the router reads from a body, whatever its kind. */
interface Fields {
  readonly model: string | undefined;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly text: string;
  readonly previousResponseId: string | null;
  /** The parsed JSON body, when there is one (for a model rewrite). */
  readonly json: Record<string, unknown> | null;
  /** A pass-through body's JSON object, when its `model` was read (for an alias rewrite only). */
  readonly passJson?: Record<string, unknown>;
}

/**
 * Builds the plan of `req` for `endpoint` with the router's current `state`.
 * @throws RouterError 400 (headers too large, bad JSON, bad fields, model required), 404
 *   (`model_not_found`), 408, 413; or the request's `ClientGone` when its client left
 */
export async function parse(
  req: ServerRequest,
  endpoint: ProxyEndpoint,
  state: RouterState,
  requestId: string,
): Promise<RequestPlan> {
  const config = state.config;
  const headers = upstreamHeaders(req.headers, {
    clientIp: req.remote.hostname,
    host: req.header("host"),
    proto: req.scheme,
    requestId,
    forwardClientAuth: config.auth.forwardClientAuth,
    maxBytes: config.server.maxHeaderBytes,
    contentType: endpoint.body === "json" ? undefined : req.header("content-type"),
  });
  const raw = endpoint.body === "raw" && !req.hasBody
    ? null
    : await req.readBody(config.server.maxBodyBytes, config.server.readTimeoutMs);
  const fields = fieldsOf(req, endpoint, raw ?? EMPTY, config.server.maxJsonDepth);
  const aliases = config.router.modelAliases;
  const served = fields.model === undefined && endpoint.anyModel === true
    ? null
    : resolveModel(fields.model, state.backends, aliases).served;
  const named = fields.json ?? fields.passJson ?? null;
  const aliased = named !== null && fields.model !== undefined && served !== fields.model;
  const usageAdded = fields.stream && !fields.includeUsage && fields.json !== null &&
    (endpoint.kind === "chat" || endpoint.kind === "completion");
  const body = usageAdded || aliased
    ? rewrite(raw!, named!, aliased ? served : null, usageAdded)
    : raw;
  const key = state.precise === null || fields.json === null ? null : await state.precise.keyOf(
    { kind: endpoint.kind, body: fields.json, served, signal: req.signal },
    state.backends,
  );
  const sessionHeader = config.router.sessionHeader;
  const classField = config.flow?.queue.classField ?? "";
  const common = {
    endpoint,
    requestId,
    method: req.method,
    target: endpoint.body === "raw" ? req.path + req.search : req.path,
    headers,
    body,
    model: fields.model,
    served,
    stream: fields.stream,
    includeUsage: fields.includeUsage,
    sessionId: sessionHeader === "" ? null : req.header(sessionHeader),
    previousResponseId: fields.previousResponseId,
    classValue: classField !== "" && fields.json !== null && Object.hasOwn(fields.json, classField)
      ? fields.json[classField]
      : undefined,
    usageAdded,
  };
  if (key !== null) {
    // Precise mode: a chunk is a block of `block_size` tokens, told to strategies in bytes.
    const block = state.precise!.blockSize;
    return {
      ...common,
      hashes: key.hashes,
      promptTokens: key.tokens,
      tokensPerChunk: block,
      chunkSize: block * BYTES_PER_TOKEN,
      precise: true,
    };
  }
  const text = utf8(served === null ? fields.text : `${modelTag(served)}${fields.text}`);
  const chunkSize = config.router.chunkSize;
  return {
    ...common,
    hashes: chunkHashes(text, chunkSize),
    promptTokens: text.length / BYTES_PER_TOKEN,
    tokensPerChunk: chunkSize / BYTES_PER_TOKEN,
    chunkSize,
    precise: false,
  };
}

const USAGE_OPTION = new TextEncoder().encode('"stream_options":{"include_usage":true},');

/**
 * The upstream body: `json` with `model` set to `served` (when given) and, with `addUsage`,
 * `stream_options.include_usage` true. Only the usage, and no `stream_options` key yet: spliced
 * in after the opening brace of `raw` (the client's bytes otherwise unchanged).
 */
function rewrite(
  raw: Uint8Array<ArrayBuffer>,
  json: Record<string, unknown>,
  served: string | null,
  addUsage: boolean,
): Uint8Array<ArrayBuffer> {
  const brace = raw.indexOf(0x7b);
  if (served === null && !Object.hasOwn(json, "stream_options") && brace !== -1) {
    const out = new Uint8Array(raw.length + USAGE_OPTION.length);
    out.set(raw.subarray(0, brace + 1), 0);
    out.set(USAGE_OPTION, brace + 1);
    out.set(raw.subarray(brace + 1), brace + 1 + USAGE_OPTION.length);
    return out;
  }
  const next: Record<string, unknown> = { ...json };
  if (served !== null) next.model = served;
  if (addUsage) {
    const given = json.stream_options;
    const options = given !== null && typeof given === "object" && !Array.isArray(given)
      ? given
      : {};
    next.stream_options = { ...options, include_usage: true };
  }
  return new TextEncoder().encode(JSON.stringify(next));
}

/**
 * The start of a routing text for `model`: a NUL, its 64-bit hash, a newline (18 bytes, so one
 * 32-byte chunk already names the model, and chained chunks after it differ between models).
 */
export function modelTag(model: string): string {
  return `\0${fnv1a64Hex(model)}\n`;
}

/** The routing fields of a body of the endpoint's kind. */
function fieldsOf(
  req: ServerRequest,
  endpoint: ProxyEndpoint,
  body: Uint8Array,
  maxDepth: number,
): Fields {
  if (endpoint.body === "json") {
    const json = parseJson(body, maxDepth);
    return { ...parseRequest(endpoint.kind, json), json: json as Record<string, unknown> };
  }
  let model: string | undefined;
  let passJson: Record<string, unknown> | undefined;
  if (endpoint.body === "multipart") {
    const boundary = multipartBoundary(req.header("content-type"));
    if (boundary === null) {
      throw new RouterError(
        "bad_request",
        "Request body must be multipart/form-data with a boundary",
        null,
        "invalid_content_type",
      );
    }
    model = multipartField(body, boundary, "model") ?? undefined;
  } else if (body.length > 0 && body.length <= SCAN_MIN_BYTES && body[0] === 0x7b) {
    // A pass-through body: its model when it is a small JSON object that names one.
    try {
      const obj = JSON.parse(new TextDecoder().decode(body)) as Record<string, unknown>;
      const m = obj?.model;
      if (typeof m === "string") [model, passJson] = [m, obj];
    } catch { /* not JSON: routed without a model */ }
  }
  return {
    model,
    stream: false,
    includeUsage: false,
    text: "",
    previousResponseId: null,
    json: null,
    passJson,
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
