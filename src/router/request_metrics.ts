/**
 * The labels of an answer in `router_requests_total` and the latency histograms, chosen in one
 * place so that every way a request ends is counted once and the same way (docs/metrics.md).
 *
 * - `cause`: from the status of an answer the router made itself ({@link causeOfStatus}); a
 *   worker's answer is `proxied` (or `client_gone` when the client left mid-answer), the router's
 *   own endpoints are `local`.
 * - `model`: a model some worker is known to serve (from config or its `/v1/models`), `other` for
 *   any other name (hostile or mistyped names must not create series), `none` when the request
 *   named none or the router answered before reading it.
 * - `endpoint`: the endpoint table's route name, `none` for a path without a route.
 * - `backend`/`reason`: the worker of the last attempt and its routing reason, else `none`.
 *
 * Cost: one scan of the workers' model maps per proxied request (`anyServes`), map lookups in
 * `RouterMetrics`.
 *
 * @module
 */

import type { RequestCause } from "../metrics/mod.ts";
import { anyServes } from "./models.ts";
import type { RequestPlan } from "./plan.ts";
import type { Backend } from "./pool.ts";
import type { RouterState } from "./state.ts";

/** Label value for "no such thing" (no worker, no reason, no model, no route). */
export const NONE = "none";

/** Label value of a model no worker is known to serve. */
export const OTHER_MODEL = "other";

/** The `cause` of an answer the router made itself, from its status (see the metrics doc). */
export function causeOfStatus(status: number): RequestCause {
  switch (status) {
    case 401:
      return "auth";
    case 404:
      return "not_found";
    case 405:
      return "method";
    case 499:
      return "client_gone";
    case 500:
      return "internal";
  }
  return status >= 500 ? "router_error" : "limit";
}

/** The `model` label of a request: see the module comment. */
export function modelLabel(
  backends: readonly Backend[],
  plan: Pick<RequestPlan, "served" | "model"> | null,
): string {
  if (plan === null || (plan.served === null && plan.model === undefined)) return NONE;
  const served = plan.served ?? plan.model!;
  return anyServes(backends, served) ? served : OTHER_MODEL;
}

/**
 * Counts an answer outside the proxy pipeline (a denial, a local endpoint, an internal error):
 * no worker, no latency sample.
 */
export function countAnswer(
  state: RouterState,
  endpoint: string,
  status: number,
  cause: RequestCause,
): void {
  state.metrics.observeRequest({
    strategy: state.strategy.name,
    backend: NONE,
    reason: NONE,
    status,
    cause,
    endpoint,
    model: NONE,
    stream: false,
    durationS: null,
    ttfbS: null,
    ttftS: null,
    matchChunks: null,
    bytes: 0,
    cacheHit: null,
  });
}

/** What {@link countRouterAnswer} needs of a request the proxy pipeline answered itself. */
export interface RouterAnswer {
  readonly endpoint: string;
  /** The request's plan, null when parsing failed. */
  readonly plan: RequestPlan | null;
  readonly strategy: string;
  readonly status: number;
  /** The worker and routing reason of the last attempt, if one was made. */
  readonly last: { readonly backend: Backend; readonly reason: string } | null;
  /** The request's arrival on the router's clock. */
  readonly t0: number;
}

/**
 * Counts an answer of the proxy pipeline that no worker gave (a parse error, no worker, every
 * attempt failed, the client or a shutdown ended it before the answer): its duration is observed,
 * no first byte or token.
 */
export function countRouterAnswer(state: RouterState, a: RouterAnswer): void {
  state.metrics.observeRequest({
    strategy: a.strategy,
    backend: a.last?.backend.id ?? NONE,
    reason: a.last?.reason ?? NONE,
    status: a.status,
    cause: causeOfStatus(a.status),
    endpoint: a.endpoint,
    model: modelLabel(state.backends, a.plan),
    stream: a.plan?.stream ?? false,
    durationS: (state.clock.now() - a.t0) / 1000,
    ttfbS: null,
    ttftS: null,
    matchChunks: null,
    bytes: 0,
    cacheHit: null,
  });
}
