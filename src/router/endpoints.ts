/**
 * The endpoint table: one row per path the router serves. A proxied row says how the routing key
 * comes from the body, what the body is, whether answers may stream and what may be retried; a
 * local row names the router's own handler. Adding an endpoint is one row here plus, where needed,
 * one routing-key function in `src/prefix/endpoint_text.ts`. Paths in `router.passthrough_paths`
 * get a row made by {@link passthroughEndpoint}.
 *
 * Retry rules (what `attempt` failures another worker may take over, always only while no byte
 * reached the client; `failures.ts` has the rule):
 * - `before-first-byte`: connect failures, a status ≥ 500, and a body that broke before its first
 *   byte (timeouts after sending only with `router.retry_timeouts`). For endpoints whose work is
 *   wasted but harmless when run twice.
 * - `connect-only`: only failures where the worker cannot have started the request.
 *
 * @module
 */

import type { RequestKind } from "../prefix/mod.ts";

/** Which failures of an attempt may be retried on another worker. */
export type RetryRule = "before-first-byte" | "connect-only";

/**
 * What the request body is: `json` (parsed once: model, stream and routing key), `multipart`
 * (passed on as bytes; only the `model` field is read), `raw` (passed on as bytes; the model is
 * read when the body is JSON with a `model` field).
 */
export type BodyKind = "json" | "multipart" | "raw";

/** A path whose requests go through the proxy pipeline. */
export interface ProxyEndpoint {
  readonly serve: "proxy";
  readonly methods: readonly string[];
  /** How the routing key is read from a JSON body. */
  readonly kind: RequestKind;
  readonly body: BodyKind;
  /** Whether the answer may be an event stream (the body's `stream` field asks for it). */
  readonly streams: boolean;
  readonly retry: RetryRule;
  /** The route name for logs, metrics and spans (the path, or its pattern). */
  readonly name: string;
  /** A body without `model` goes to any worker even when several models are served. */
  readonly anyModel?: boolean;
}

/** The router's own handlers. */
export type LocalHandler =
  | "healthz"
  | "readyz"
  | "metrics"
  | "models"
  | "model"
  | "debug-workers"
  | "debug-route";

/** A path the router answers itself. */
export interface LocalEndpoint {
  readonly serve: LocalHandler;
  readonly methods: readonly string[];
  readonly name: string;
}

export type Endpoint = ProxyEndpoint | LocalEndpoint;

const POST = ["POST"] as const;
const GET = ["GET"] as const;

/** A proxied JSON endpoint's row. */
function json(
  name: string,
  kind: RequestKind,
  streams: boolean,
  retry: RetryRule = "before-first-byte",
): ProxyEndpoint {
  return { serve: "proxy", methods: POST, kind, body: "json", streams, retry, name };
}

/** A proxied multipart (audio upload) endpoint's row: no routing text, streamed answers. */
function multipart(name: string): ProxyEndpoint {
  return {
    serve: "proxy",
    methods: POST,
    kind: "none",
    body: "multipart",
    streams: true,
    retry: "before-first-byte",
    name,
  };
}

/** Every fixed path of the main listener. */
export const ENDPOINTS: Readonly<Record<string, Endpoint>> = {
  "/v1/chat/completions": json("/v1/chat/completions", "chat", true),
  "/v1/completions": json("/v1/completions", "completion", true),
  "/v1/responses": json("/v1/responses", "responses", true),
  "/v1/messages": json("/v1/messages", "messages", true),
  "/v1/embeddings": json("/v1/embeddings", "embeddings", false),
  "/v1/rerank": json("/v1/rerank", "rerank", false),
  "/rerank": json("/rerank", "rerank", false),
  "/v2/rerank": json("/v2/rerank", "rerank", false),
  "/v1/score": json("/v1/score", "score", false),
  "/score": json("/score", "score", false),
  "/pooling": json("/pooling", "pooling", false),
  "/tokenize": json("/tokenize", "none", false),
  "/detokenize": json("/detokenize", "none", false),
  "/v1/audio/transcriptions": multipart("/v1/audio/transcriptions"),
  "/v1/audio/translations": multipart("/v1/audio/translations"),
  "/v1/models": { serve: "models", methods: GET, name: "/v1/models" },
  "/healthz": { serve: "healthz", methods: GET, name: "/healthz" },
  "/readyz": { serve: "readyz", methods: GET, name: "/readyz" },
  "/metrics": { serve: "metrics", methods: GET, name: "/metrics" },
  // Served on the main listener only without an admin one and with auth on (`debug.ts`).
  "/debug/workers": { serve: "debug-workers", methods: GET, name: "/debug/workers" },
  "/debug/route": { serve: "debug-route", methods: POST, name: "/debug/route" },
};

/** `GET /v1/models/{id}`: one model of the router's view. */
const MODEL_ENDPOINT: LocalEndpoint = { serve: "model", methods: GET, name: "/v1/models/{id}" };
const MODEL_PREFIX = "/v1/models/";

/** Paths of the admin listener (`metrics.addr`): nothing there is proxied. */
export const ADMIN_ENDPOINTS: Readonly<Record<string, LocalEndpoint>> = {
  "/metrics": { serve: "metrics", methods: GET, name: "/metrics" },
  "/healthz": { serve: "healthz", methods: GET, name: "/healthz" },
  "/readyz": { serve: "readyz", methods: GET, name: "/readyz" },
  "/debug/workers": { serve: "debug-workers", methods: GET, name: "/debug/workers" },
  "/debug/route": { serve: "debug-route", methods: POST, name: "/debug/route" },
};

/** The row of a `router.passthrough_paths` path: its body passed on as it is. */
export function passthroughEndpoint(path: string): ProxyEndpoint {
  return {
    serve: "proxy",
    methods: ["GET", "POST", "PUT", "DELETE"],
    kind: "none",
    body: "raw",
    streams: true,
    retry: "connect-only",
    name: path,
    // Admin paths such as vLLM's /v1/load_lora_adapter take no model.
    anyModel: true,
  };
}

/**
 * The row for `path` in `table` (then `/v1/models/{id}` and the `passthrough` paths for the main
 * table), or undefined.
 */
export function endpointFor<E extends Endpoint>(
  table: Readonly<Record<string, E>>,
  path: string,
  passthrough: ReadonlyMap<string, ProxyEndpoint> | null = null,
): E | Endpoint | undefined {
  if (Object.hasOwn(table, path)) return table[path];
  if (table !== (ENDPOINTS as unknown)) return undefined;
  if (path.startsWith(MODEL_PREFIX) && path.length > MODEL_PREFIX.length) return MODEL_ENDPOINT;
  return passthrough?.get(path);
}
