/**
 * Sampling: parent-based, with a ratio for root spans (OpenTelemetry's
 * `ParentBased(root = TraceIdRatioBased(ratio))`).
 *
 * - A request whose `traceparent` is valid follows its caller: recorded when the caller's
 *   `sampled` flag is set, not recorded otherwise. Attempt spans follow their request.
 * - A new trace is recorded when the trace id's low 56 bits, read as a number R, are at least
 *   (1 − ratio) · 2^56: the threshold rule of OpenTelemetry's consistent probability sampling.
 *   The decision depends on the trace id alone, so every replica (and any other service applying
 *   the same rule) decides the same for one trace. Ratio 1 records all, 0 none.
 *
 * Cost: one `parseInt` of 14 hex digits per new trace.
 *
 * @module
 */

import { FLAG_SAMPLED, type ParentContext } from "./trace_context.ts";

/** 2^56. */
const TWO_POW_56 = 2 ** 56;

/** Whether a new trace with `traceId` is recorded at `ratio` (0..1). */
export function sampledByRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (!(ratio > 0)) return false;
  const r = parseInt(traceId.slice(18, 32), 16);
  return r >= (1 - ratio) * TWO_POW_56;
}

/** The sampling decision of a request span: its parent's flag, or the ratio for a new trace. */
export function shouldSample(
  parent: ParentContext | null,
  traceId: string,
  ratio: number,
): boolean {
  return parent !== null ? (parent.flags & FLAG_SAMPLED) !== 0 : sampledByRatio(traceId, ratio);
}
