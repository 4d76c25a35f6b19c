/**
 * HTTP errors in OpenAI's shape, mapped in one place:
 * `{"error":{"message","type","param","code"}}`. A 429 (`rate_limited`: the router queue or a
 * tenant limit refused the request) carries `type: "rate_limit_error"`, as OpenAI's own 429s do,
 * so OpenAI clients retry it after its `Retry-After`.
 *
 * @module
 */

/** Kinds of error the router answers with, and their status and OpenAI `type`. */
export const ERROR_KINDS = {
  bad_request: { status: 400, type: "invalid_request_error" },
  unauthorized: { status: 401, type: "authentication_error" },
  not_found: { status: 404, type: "invalid_request_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  request_timeout: { status: 408, type: "invalid_request_error" },
  too_large: { status: 413, type: "invalid_request_error" },
  rate_limited: { status: 429, type: "rate_limit_error" },
  no_worker: { status: 503, type: "service_unavailable_error" },
  upstream_failed: { status: 502, type: "upstream_error" },
  timeout: { status: 504, type: "timeout_error" },
  internal: { status: 500, type: "server_error" },
} as const;

/** One of the error kinds above. */
export type ErrorKind = keyof typeof ERROR_KINDS;

/** An error the router turns into an OpenAI-shaped response. */
export class RouterError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "RouterError";
  }

  get status(): number {
    return ERROR_KINDS[this.kind].status;
  }
}

/** OpenAI error body for `kind`. */
export function errorBody(
  kind: ErrorKind,
  message: string,
  param: string | null = null,
  code: string | null = null,
): string {
  return JSON.stringify({
    error: { message, type: ERROR_KINDS[kind].type, param, code: code ?? kind },
  });
}

/** OpenAI-shaped error response. */
export function errorResponse(
  kind: ErrorKind,
  message: string,
  opts: { param?: string | null; code?: string | null; headers?: HeadersInit } = {},
): Response {
  const headers = new Headers(opts.headers);
  headers.set("content-type", "application/json");
  return new Response(errorBody(kind, message, opts.param ?? null, opts.code ?? null), {
    status: ERROR_KINDS[kind].status,
    headers,
  });
}

/** Response for a thrown value: a `RouterError` keeps its kind, anything else is a 500. */
export function responseForError(err: unknown, headers?: HeadersInit): Response {
  if (err instanceof RouterError) {
    return errorResponse(err.kind, err.message, { param: err.param, code: err.code, headers });
  }
  const message = errorMessage(err);
  return errorResponse("internal", `Internal error: ${message}`, { headers });
}

/** A reply in the shape of the router's own HTTP server (`src/http/types.ts`). */
export interface ErrorReply {
  readonly status: number;
  readonly headers: [string, string][];
  readonly body: Uint8Array;
}

const encoder = new TextEncoder();

/**
 * OpenAI-shaped error reply for the router's own server: the same body and status as
 * {@link errorResponse}, with `headers` (lower-case names) after `content-type`.
 */
export function errorReply(
  kind: ErrorKind,
  message: string,
  opts: { param?: string | null; code?: string | null; headers?: [string, string][] } = {},
): ErrorReply {
  const headers: [string, string][] = [["content-type", "application/json"]];
  if (opts.headers) { for (const h of opts.headers) headers.push(h); }
  return {
    status: ERROR_KINDS[kind].status,
    headers,
    body: encoder.encode(errorBody(kind, message, opts.param ?? null, opts.code ?? null)),
  };
}

/** Reply for a thrown value: a `RouterError` keeps its kind, anything else is a 500. */
export function replyForError(err: unknown, headers?: [string, string][]): ErrorReply {
  if (err instanceof RouterError) {
    return errorReply(err.kind, err.message, { param: err.param, code: err.code, headers });
  }
  return errorReply("internal", `Internal error: ${errorMessage(err)}`, { headers });
}

/** A thrown value's message for logs and error bodies: an `Error`'s message (its name when the
 * message is empty), anything else as a string. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
