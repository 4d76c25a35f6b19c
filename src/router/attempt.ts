/**
 * The `attempt` stage: one upstream try of a request on its chosen worker.
 *
 * `Attempt.begin` does the bookkeeping of a try (the choice recorded in the worker's prefix index,
 * in-flight up, a breaker probe token, a load-tracker ticket, the deadlines started). `send` then
 * forwards the request and waits for the answer's head and first body byte, so that every failure
 * up to that byte is still retryable; it returns the answer, or the failure classified, or that
 * the client (or a shutdown) ended the request.
 *
 * Exactly once per attempt, whatever happened:
 * - one breaker verdict: `succeeded` (status < 500 at the first byte), `failed` (a failure before
 *   the first byte, or a status ≥ 500) or, when neither was given, a release of the probe token
 *   at `settle` (the client left, the router shut down: no word on the worker);
 * - `settle`: deadlines cleared, in-flight down, the load tracker and prediction feedback told,
 *   a retired worker let go when its last request ends, the router queue woken.
 *
 * @module
 */

import type { BodySource } from "../http/types.ts";
import { decodeContent } from "../proxy/content_coding.ts";
import { AttemptDeadlines } from "../proxy/deadlines.ts";
import { headerValue, withApiKey } from "../proxy/headers.ts";
import type { H1Answer } from "../proxy/h1_client.ts";
import type { ChunkHashes } from "../prefix/types.ts";
import type { Usage } from "../proxy/usage_tap.ts";
import { type Span, withTraceHeaders } from "../telemetry/mod.ts";
import type { Choice } from "./choose.ts";
import { record } from "./choose.ts";
import { classify, type Failure, RouterShutdown, statusFailure } from "./failures.ts";
import type { LoadTicket } from "./load_tracker.ts";
import type { RequestPlan } from "./plan.ts";
import type { Backend } from "./pool.ts";
import { NOOP_SPAN, settleLoad } from "./settle.ts";
import type { RouterState } from "./state.ts";

/** A worker's answer, held back until its first body byte arrived. */
export interface Answer {
  readonly upstream: H1Answer;
  /** The rest of the body; null when there is none or `whole` holds it. */
  readonly reader: BodySource | null;
  /** The first body bytes, or null when the body is empty. */
  readonly first: Uint8Array | null;
  /** Whether `first` is the whole body (it came with the head). */
  readonly whole: boolean;
  /** Whether the worker answered with an event stream. */
  readonly sse: boolean;
}

/** How `send` ended. */
export type Sent =
  | { readonly ok: true; readonly answer: Answer }
  | { readonly ok: false; readonly failure: Failure }
  /** The client left, or the router is shutting down, before the worker answered. */
  | { readonly ok: false; readonly failure: null; readonly gone: "client" | "shutdown" };

/** One upstream try; see the module comment. */
export class Attempt {
  readonly backend: Backend;
  readonly reason: string;
  readonly match: number;
  readonly deadlines: AttemptDeadlines;
  readonly ticket: LoadTicket;
  /** The router clock's time of dispatch. */
  readonly dispatchedAt: number;
  readonly tokensPerChunk: number;
  /** Chunks recorded on the worker for this attempt. */
  readonly recordedChunks: number;
  /** What was recorded on the worker (the request's chunk hashes). */
  readonly hashes: ChunkHashes;
  readonly #state: RouterState;
  readonly #client: AbortSignal;
  readonly #plan: RequestPlan;
  /** This attempt's span (a client-kind child of the request's); ended at `settle`. */
  readonly span: Span;
  /** The breaker's probe token of this attempt (0: not a probe). */
  readonly #probe: number;
  #judged = false;
  #settled = false;

  private constructor(
    state: RouterState,
    plan: RequestPlan,
    choice: Choice,
    client: AbortSignal,
    span: Span,
  ) {
    const backend = choice.backend;
    this.#state = state;
    this.#client = client;
    this.#plan = plan;
    this.span = span;
    this.backend = backend;
    this.reason = choice.reason;
    this.match = choice.match;
    this.tokensPerChunk = plan.tokensPerChunk;
    this.recordedChunks = recorded(state, plan) ? plan.hashes.length >>> 1 : 0;
    this.hashes = plan.hashes;
    backend.inflight++;
    this.#probe = backend.breaker.acquire();
    this.dispatchedAt = state.clock.now();
    this.ticket = state.tracker.onDispatch(
      backend.index,
      plan.promptTokens,
      choice.match * plan.tokensPerChunk,
    );
    this.deadlines = AttemptDeadlines.start(backend.deadlines, client);
    state.attempts.add(this.deadlines);
  }

  /** Records `choice` and starts its attempt; the caller must `settle` it. */
  static begin(
    state: RouterState,
    plan: RequestPlan,
    choice: Choice,
    client: AbortSignal,
    span: Span = NOOP_SPAN,
  ): Attempt {
    if (recorded(state, plan)) record(choice, plan.hashes);
    return new Attempt(state, plan, choice, client, span);
  }

  /** Whether the client went away (its signal aborted). */
  get clientGone(): boolean {
    return this.#client.aborted;
  }

  /**
   * Forwards the request and waits for the first body byte. A status ≥ 500 is a failure (its body
   * cancelled) when `retry5xx()` says another worker may take over; otherwise it is the answer.
   */
  async send(plan: RequestPlan, retry5xx: () => boolean): Promise<Sent> {
    const b = this.backend;
    const d = this.deadlines;
    let upstream: H1Answer | null = null;
    let reader: BodySource | null = null;
    let first: Uint8Array | null = null;
    let whole = false;
    let sse = false;
    try {
      // The attempt's span is the engine's parent (replacing the client's traceparent).
      const headers = withTraceHeaders(withApiKey(plan.headers, b.config.apiKey), this.span);
      const h1 = this.#state.config.router.upstreamClient === "native" ? b.h1() : null;
      upstream = h1 !== null
        ? await h1.send(plan.method, b.basePath + plan.target, headers, plan.body, d.signal)
        : decodeContent(fromFetch(
          await fetch(b.url + plan.target, {
            // The client's method: a passthrough path also takes GET, PUT and DELETE.
            method: plan.method,
            headers,
            body: plan.method === "GET" ? null : plan.body, // fetch refuses a GET with a body
            signal: d.signal,
          }),
        ));
      d.headers();
      this.span.set("http.response.status_code", upstream.status);
      if (upstream.status >= 500 && retry5xx()) {
        await upstream.body?.cancel().catch(() => {});
        return { ok: false, failure: statusFailure(b.id, upstream.status) };
      }
      sse = headerValue(upstream.headers, "content-type")?.startsWith("text/event-stream") ??
        false;
      if (upstream.whole !== null && !sse) {
        first = upstream.whole; // complete already: answered without a JS stream
        whole = true;
      } else if (upstream.whole !== null) {
        // A complete event stream (rare: engines stream chunked): still tapped as a stream.
        reader = ENDED_SOURCE;
        if (upstream.whole.length > 0) first = upstream.whole;
      } else if (upstream.body) {
        reader = upstream.body;
        const r = await reader.read();
        if (!r.done) first = r.value;
      }
      d.firstByte();
      return { ok: true, answer: { upstream, reader, first, whole, sse } };
    } catch (err) {
      if (reader) reader.cancel().catch(() => {});
      else upstream?.body?.cancel().catch(() => {});
      const why = d.reason;
      if (this.#client.aborted) {
        this.span.set("router.attempt.outcome", "client_gone");
        return { ok: false, failure: null, gone: "client" };
      }
      if (why instanceof RouterShutdown) {
        this.span.set("router.attempt.outcome", "shutdown");
        return { ok: false, failure: null, gone: "shutdown" };
      }
      return { ok: false, failure: classify(why, err, upstream !== null, b.id) };
    }
  }

  /**
   * Takes back what `begin` recorded beyond what the worker already held: for an attempt the
   * engine refused (a 4xx), or that failed before the engine could have computed the prefix, so
   * the router does not believe the worker holds what it never computed.
   */
  unrecord(): void {
    if (!recorded(this.#state, this.#plan)) return;
    const hashes = this.#plan.hashes;
    if (this.match < hashes.length >>> 1) this.backend.prefix.truncate?.(hashes, this.match);
  }

  /** The worker answered below 500: a success for its breaker. */
  succeeded(): void {
    if (this.#judged) return;
    this.#judged = true;
    const closing = this.backend.breaker.state !== "closed";
    this.backend.breaker.success();
    if (closing) this.#state.flow.freed(); // a closed breaker takes max_inflight again
  }

  /**
   * The attempt failed on the worker: a failure for its breaker, counted, and logged as `upstream
   * failed` when `requestId` is given (a failure the client does not see as such: a retry follows
   * or the router answers for it).
   */
  failed(f: Failure, requestId: string | null): void {
    if (this.#judged) return;
    this.#judged = true;
    // Out of descriptors is the router's own trouble: the worker's breaker hears nothing.
    if (f.kind === "fd-exhausted") this.backend.breaker.release(this.#probe);
    else this.backend.breaker.failure();
    this.span.set("router.attempt.outcome", "failed");
    this.span.error(f.kind, f.message);
    this.#state.faults.inc(this.backend.id, f.kind, f.message);
    if (requestId === null) return;
    this.#state.logger.warn("upstream failed", {
      request_id: requestId,
      backend: this.backend.id,
      error: f.message,
    });
  }

  /**
   * Ends the attempt (see the module comment): with the engine's usage when the body carried it.
   * Later calls do nothing.
   */
  settle(usage: Usage | null = null): void {
    if (this.#settled) return;
    this.#settled = true;
    this.span.end();
    const state = this.#state;
    const b = this.backend;
    this.deadlines.end();
    state.attempts.delete(this.deadlines);
    settleLoad(state, this, usage);
    b.inflight--;
    if (!this.#judged) {
      this.#judged = true;
      b.breaker.release(this.#probe);
    }
    // A worker a reload removed (and disposed) is held only while its requests run.
    if (state.retired.size > 0 && b.inflight === 0) state.retired.delete(b);
    state.flow.settled(this); // a slot is free: the router queue may send a waiting request
  }
}

/** A `fetch` answer in the shape the HTTP/1.1 client hands over. */
function fromFetch(res: Response): H1Answer {
  return {
    status: res.status,
    statusText: res.statusText,
    headers: [...res.headers],
    whole: null,
    body: res.body && res.body.getReader(),
  };
}

/** A body source with nothing (more) to read. */
const ENDED_SOURCE: BodySource = {
  read: () => Promise.resolve({ done: true, value: undefined }),
  cancel: () => Promise.resolve(),
};

/**
 * Whether an attempt records its request's prefix on the worker: always, except a request that
 * precise mode routed by its text (text chunks are not the engine's blocks).
 */
function recorded(state: RouterState, plan: RequestPlan): boolean {
  return state.precise === null || plan.precise;
}
