/**
 * The `relay` stage: a worker's answer → the client's reply, streamed through the usage tap; when
 * the body is over (ended, failed, or cancelled by the client) the attempt settles and the request
 * is counted and logged, once.
 *
 * Headers: the worker's, without hop-by-hop fields and those the router sets itself, plus
 * `X-Router-Backend`, `X-Router-Reason` and `X-Request-ID`.
 *
 * Body: nothing for a status that has none (or an empty body); the bytes themselves when the whole
 * answer came with its head (no stream either side); else a tapped source the server pulls from.
 * A body that fails after the reply started ends the stream: SSE bodies with an OpenAI-shaped
 * error event (`usage_tap.ts`), others cut short.
 *
 * Verdicts: a status below 500 is a success for the worker's breaker as soon as the head and first
 * byte arrived; a status ≥ 500 that nobody retried is a failure. A failure after the first byte
 * gives no breaker verdict (the worker answered; a hung stream is caught by the idle deadline) but
 * is counted in `router_upstream_failures_total`.
 *
 * @module
 */

import type { BodySource, Reply } from "../http/types.ts";
import { downstreamHeaders, type HeaderList, headerValue } from "../proxy/headers.ts";
import { isNullBodyStatus } from "../proxy/h1_client.ts";
import { dropUsageEvents } from "../proxy/usage_strip.ts";
import { type TapResult, tapSource, tapWhole } from "../proxy/usage_tap.ts";
import { errorBody } from "../util/errors.ts";
import type { Answer, Attempt } from "./attempt.ts";
import { codeOf, midStreamFailure, RouterShutdown, statusFailure } from "./failures.ts";
import type { RequestPlan } from "./plan.ts";
import { modelLabel } from "./request_metrics.ts";
import { ResponseIdScan } from "./response_ids.ts";
import { RequestLog, round } from "./settle.ts";
import type { RouterState } from "./state.ts";

/** Builds the client's reply from `answer`; see the module comment. */
export function relay(
  state: RouterState,
  plan: RequestPlan,
  att: Attempt,
  answer: Answer,
  log: RequestLog,
  t0: number,
): Reply {
  const { backend, reason, deadlines } = att;
  const { upstream, reader, first, whole, sse } = answer;
  const status = upstream.status;
  const headers = downstreamHeaders(upstream.headers);
  headers.push(
    ["x-router-backend", backend.id],
    ["x-router-reason", reason],
    ["x-request-id", plan.requestId],
  );
  if (status < 500) att.succeeded();
  att.span.set("router.attempt.outcome", "answered");
  // The engine refused it (or failed): it holds nothing of this request.
  if (status >= 400) att.unrecord();
  const now = () => state.clock.now();
  const onFirstToken = () => state.tracker.onFirstToken(att.ticket, now() - att.dispatchedAt);

  const done = (tapped: TapResult) => relayEnded(state, plan, att, log, status, tapped, t0);

  if (status >= 400 && !isNullBodyStatus(status) && !speaksJson(upstream.headers)) {
    // A worker's own error page (an nginx HTML 502, a plain-text 404) in OpenAI's shape, so that
    // OpenAI clients raise a readable error instead of failing to parse it.
    reader?.cancel().catch(() => {});
    done({ ...EMPTY_TAP, bytes: first?.length ?? 0 });
    const wrapped = errorPageReply(backend.id, status, upstream.statusText, first);
    for (const [n, v] of headers) if (n !== "content-type") wrapped.headers.push([n, v]);
    return wrapped;
  }
  if (isNullBodyStatus(status) || first === null || (reader === null && !whole)) {
    // No body, or a status that has none (a 205 may still come framed with `content-length: 0`):
    // whatever the worker sent for it is dropped.
    reader?.cancel().catch(() => {});
    done(EMPTY_TAP);
    return { status, statusText: upstream.statusText, headers, body: null };
  }
  const learn = plan.endpoint.kind === "responses" && status < 300 ? new ResponseIdScan() : null;
  if (learn !== null && first !== null) noteResponseId(state, att, learn, first);
  if (whole || reader === null) {
    done(tapWhole(first, { now, start: t0, onFirstToken }));
    return { status, statusText: upstream.statusText, headers, body: first };
  }
  const source = learn === null
    ? reader
    : scanned(reader, (c) => noteResponseId(state, att, learn, c));
  const tapped: BodySource = tapSource(source, first, {
    now,
    start: t0,
    sse,
    onChunk: () => deadlines.chunk(),
    onFirstToken,
    errorEvent: (err) => {
      const f = midStreamFailure(deadlines.reason, err, backend.id);
      return errorBody(f.error, f.message, null, codeOf(f));
    },
    onDone: done,
  });
  // The router asked for the usage chunk (plan.ts): the client gets the stream it asked for.
  const body = plan.usageAdded && sse && status < 300 && !encoded(upstream.headers)
    ? dropUsageEvents(tapped)
    : tapped;
  return { status, statusText: upstream.statusText, headers, body };
}

/** The end of a relayed answer (`tapped`): the attempt's failure if any, settled once, logged. */
function relayEnded(
  state: RouterState,
  plan: RequestPlan,
  att: Attempt,
  log: RequestLog,
  status: number,
  tapped: TapResult,
  t0: number,
): void {
  const { backend, deadlines } = att;
  // A client that disconnects aborts the upstream read too; count that as the client's doing.
  const r: TapResult = att.clientGone && tapped.outcome === "error"
    ? { ...tapped, outcome: "cancelled" }
    : tapped;
  if (r.outcome === "error" && !(deadlines.reason instanceof RouterShutdown)) {
    const f = midStreamFailure(deadlines.reason, r.error, backend.id);
    if (status >= 500) att.failed(f, null);
    else state.faults.inc(backend.id, f.kind, f.message); // the breaker already heard a success
  } else if (r.outcome === "done" && status >= 500) {
    att.failed(statusFailure(backend.id, status), null);
  }
  att.settle(r.usage);
  finishRequest(state, plan, att, log, status, r, t0);
}

/** Whether the worker's body is content-coded (then its events cannot be read to drop one). */
function encoded(headers: HeaderList): boolean {
  const coding = headerValue(headers, "content-encoding")?.trim().toLowerCase() ?? "";
  return coding !== "" && coding !== "identity";
}

/** Whether a worker's answer is JSON or an event stream (by its content type). */
function speaksJson(headers: HeaderList): boolean {
  const type = headerValue(headers, "content-type")?.split(";")[0].trim().toLowerCase() ?? "";
  return type === "application/json" || type.endsWith("+json") || type === "text/event-stream";
}

/** OpenAI error types by the worker's status; anything else ≥ 500 is the worker's failure. */
const TYPE_OF_STATUS: Record<number, string> = {
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  429: "rate_limit_error",
};

/** Longest excerpt of a worker's error page put in the message, characters. */
const EXCERPT_CHARS = 200;

/**
 * The OpenAI-shaped reply for a worker's non-JSON error answer: the worker's status, and a short
 * excerpt of its first body bytes (tags and control characters dropped) in the message.
 */
export function errorPageReply(
  id: string,
  status: number,
  statusText: string,
  first: Uint8Array | null,
): { status: number; statusText: string; headers: HeaderList; body: Uint8Array } {
  const text = first === null ? "" : new TextDecoder().decode(first.subarray(0, 4 * EXCERPT_CHARS));
  // deno-lint-ignore no-control-regex -- control characters are what the excerpt drops
  const excerpt = text.replace(/<[^>]*>/g, " ").replace(/[\x00-\x1f\x7f\s]+/g, " ").trim()
    .slice(0, EXCERPT_CHARS);
  const type = TYPE_OF_STATUS[status] ??
    (status >= 500 ? "upstream_error" : "invalid_request_error");
  const head = `Worker ${id} answered ${status}${statusText ? ` ${statusText}` : ""}`;
  const body = JSON.stringify({
    error: {
      message: excerpt === "" ? head : `${head}: ${excerpt}`,
      type,
      param: null,
      code: "upstream_error_page",
    },
  });
  return {
    status,
    statusText,
    headers: [["content-type", "application/json"]],
    body: new TextEncoder().encode(body),
  };
}

/** Remembers the response id in `chunk` (if the scan finds it there) as made by `att`'s worker. */
function noteResponseId(state: RouterState, att: Attempt, scan: ResponseIdScan, chunk: Uint8Array) {
  const id = scan.push(chunk);
  if (id !== null) state.responses.set(id, att.backend);
}

/** `src` with `see` called on each chunk it yields. */
function scanned(src: BodySource, see: (chunk: Uint8Array) => void): BodySource {
  return {
    read: async () => {
      const r = await src.read();
      if (!r.done) see(r.value);
      return r;
    },
    cancel: (reason) => src.cancel(reason),
  };
}

/** The tap result of an answer without a body. */
const EMPTY_TAP: TapResult = {
  outcome: "done",
  bytes: 0,
  firstByteMs: null,
  firstTokenMs: null,
  usage: null,
  error: null,
};

/** Counts and logs a proxied request whose reply is over. */
function finishRequest(
  state: RouterState,
  plan: RequestPlan,
  att: Attempt,
  log: RequestLog,
  status: number,
  r: TapResult,
  t0: number,
): void {
  const { backend, reason, match, deadlines } = att;
  const cachedTokens = r.usage?.cachedTokens ?? null;
  if (r.usage) state.metrics.addUpstreamTokens(backend.id, r.usage.promptTokens, cachedTokens ?? 0);
  const shown = r.outcome === "cancelled" ? 499 : status;
  state.metrics.observeRequest({
    strategy: log.strategy,
    backend: backend.id,
    reason,
    status: shown,
    cause: shown === 499 ? "client_gone" : "proxied",
    endpoint: plan.endpoint.name,
    model: modelLabel(state.backends, plan),
    stream: plan.stream,
    durationS: (state.clock.now() - t0) / 1000,
    ttfbS: r.firstByteMs === null ? null : r.firstByteMs / 1000,
    ttftS: r.firstTokenMs === null ? null : r.firstTokenMs / 1000,
    matchChunks: match,
    bytes: r.bytes,
    cacheHit: match > 0,
  });
  if (r.outcome === "error") log.span.error("stream-error", String(r.error));
  log.span.end(shown);
  log.write(() => ({
    backend: backend.id,
    reason,
    match_chunks: match,
    status: shown,
    ttft_ms: r.firstTokenMs === null ? null : round(r.firstTokenMs),
    ttfb_ms: r.firstByteMs === null ? null : round(r.firstByteMs),
    bytes: r.bytes,
    prompt_tokens: r.usage?.promptTokens ?? null,
    cached_tokens: cachedTokens,
    error: r.outcome === "done"
      ? null
      : r.outcome === "cancelled"
      ? "client closed request"
      : midStreamFailure(deadlines.reason, r.error, backend.id).message,
  }));
}
