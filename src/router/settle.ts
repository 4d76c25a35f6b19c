/**
 * What happens when an attempt or a request is over.
 *
 * - {@link settleLoad}: the attempt leaves the load tracker, and the engine's `cached_tokens` is
 *   compared with the router's prediction: the error goes to
 *   `router_prefix_prediction_error_tokens` (positive = the router believed more was cached), and
 *   a large shortfall shrinks the worker's tree (`prediction_feedback.ts`: in proportion, never
 *   for a cold start on a busy worker; the path just recorded is refreshed first, so it stays).
 * - {@link RequestLog}: one access-log line per request, written once however the request ended,
 *   and nothing built when the log is off (measured: about 6 µs a request).
 *
 * @module
 */

import type { ChunkHashes } from "../prefix/types.ts";
import type { Usage } from "../proxy/usage_tap.ts";
import type { Clock } from "../util/clock.ts";
import type { LoadTicket } from "./load_tracker.ts";
import type { Logger } from "./logger.ts";
import { NOOP_TRACER, type Span } from "../telemetry/mod.ts";
import type { Backend } from "./pool.ts";
import { nextCapacity } from "./prediction_feedback.ts";
import { RadixTree } from "../prefix/radix_tree.ts";
import type { RouterState } from "./state.ts";

/** The span of a request, or of an attempt, when tracing is off (it does nothing). */
export const NOOP_SPAN: Span = NOOP_TRACER.startRequest({ header: () => null }, "");

/** What {@link settleLoad} needs of the attempt. */
export interface LoadSettlement {
  readonly backend: Backend;
  readonly ticket: LoadTicket;
  readonly dispatchedAt: number;
  readonly tokensPerChunk: number;
  /** Chunks the attempt recorded on its worker. */
  readonly recordedChunks: number;
  /** What it recorded (refreshed before a shrink, so the shrink never takes it); absent: not refreshed. */
  readonly hashes?: ChunkHashes;
}

/**
 * Settles a finished attempt in the load tracker, with the engine's usage when it reported one;
 * see the module comment. The tracker ignores a second settlement of the same ticket.
 */
export function settleLoad(state: RouterState, a: LoadSettlement, usage: Usage | null): void {
  const tracker = state.tracker;
  if (usage !== null && usage.cachedTokens !== null) {
    const err = tracker.onUsage(a.ticket, usage.promptTokens, usage.cachedTokens);
    if (Number.isFinite(err)) {
      state.metrics.observePredictionError(-err);
      const predicted = a.ticket.predictedCachedTokens;
      const tree = a.backend.prefix;
      // Precise mode's index is the engine's own account: nothing to correct.
      if (!(tree instanceof RadixTree)) return settleDone(state, a, usage);
      const stats = tree.stats();
      const capacity = nextCapacity(
        {
          capacity: stats.maxChunks,
          configured: a.backend.capacityChunks,
          chunks: stats.chunks,
          recorded: a.recordedChunks,
          othersInflight: a.ticket.othersInflight,
        },
        predicted,
        predicted + err,
        a.tokensPerChunk,
      );
      if (capacity !== null) {
        if (capacity < stats.chunks && a.hashes !== undefined) tree.touch(a.hashes);
        tree.resize(capacity);
        state.logger.debug("prefix tree resized from engine feedback", {
          backend: a.backend.id,
          predicted_cached: Math.round(predicted),
          reported_cached: Math.round(predicted + err),
          max_chunks: capacity,
        });
      }
    }
  }
  settleDone(state, a, usage);
}

function settleDone(state: RouterState, a: LoadSettlement, usage: Usage | null): void {
  state.tracker.onDone(a.ticket, {
    elapsedMs: state.clock.now() - a.dispatchedAt,
    completionTokens: usage?.completionTokens,
  });
}

/** The access-log line of one request: written at most once. */
export class RequestLog {
  /** The strategy named on the line (the one that decided the last attempt). */
  strategy: string;
  /** The request's model once parsed, bounded as the metric label (a known model, else `other`). */
  model: string | null = null;
  /** The request's span: its trace id goes on the line. */
  span: Span = NOOP_SPAN;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #requestId: string;
  readonly #path: string;
  readonly #t0: number;
  #written = false;

  constructor(
    logger: Logger,
    clock: Clock,
    requestId: string,
    path: string,
    strategy: string,
    t0: number,
  ) {
    this.#logger = logger;
    this.#clock = clock;
    this.#requestId = requestId;
    this.#path = path;
    this.strategy = strategy;
    this.#t0 = t0;
  }

  /** Whether the line was written. */
  get written(): boolean {
    return this.#written;
  }

  /** Writes the line with `fields()` (called only when the log is on); later calls do nothing. */
  write(fields: () => Record<string, unknown>): void {
    if (this.#written) return;
    this.#written = true;
    if (!this.#logger.enabled("info")) return;
    const traceId = this.span.traceId;
    this.#logger.info("request", {
      request_id: this.#requestId,
      ...(traceId === null ? {} : { trace_id: traceId }),
      path: this.#path,
      strategy: this.strategy,
      model: this.model,
      ...fields(),
      total_ms: round(this.#clock.now() - this.#t0),
    });
  }
}

/** `ms` to two decimals. */
export function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
