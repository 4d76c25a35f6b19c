/**
 * The request's way through the router, for a proxied endpoint: the stages wired together.
 *
 * ```
 * parse (plan.ts) → [ candidates + choose (choose.ts) → attempt (attempt.ts) ]* → relay (relay.ts)
 * ```
 *
 * `parse` turns the request into a plan once. Then up to `1 + router.max_retries` attempts: each
 * chooses a worker among the candidates not tried yet, begins (records the choice), and sends. An
 * answer goes to `relay`, which streams it back and settles the attempt when the body is over. A
 * failed attempt settles at once and the next one tries another worker, while the endpoint's retry
 * rule allows it and no byte reached the client (the router holds the reply back until the first
 * body byte). When no attempt answers, the router answers itself: 503 when no worker could be
 * tried, else the last failure's 502/504 naming the worker and reason of the last attempt.
 *
 * A request whose client left (or that a shutdown cut short) before the worker answered is never
 * retried, and gets no breaker verdict on the worker.
 *
 * Flow control (`admission.ts`, with `flow:` configured) sits between parse and the first attempt:
 * a request may be refused there (400 unknown priority, 429 with `Retry-After`) or wait in the
 * router queue until a worker serving its model is free, instead of the 503.
 *
 * @module
 */

import { ClientGone, type Reply, type ServerRequest } from "../http/types.ts";
import type { RouterConfig } from "../config/types.ts";
import type { HeaderList } from "../proxy/headers.ts";
import type { Span } from "../telemetry/mod.ts";
import { errorMessage, errorReply, replyForError } from "../util/errors.ts";
import type { FlowTicket } from "./admission.ts";
import { Attempt } from "./attempt.ts";
import { anyCandidate, type Choice, choose } from "./choose.ts";
import type { ProxyEndpoint } from "./endpoints.ts";
import { codeOf, type Failure, retryable } from "./failures.ts";
import { parse, requestIdOf, type RequestPlan } from "./plan.ts";
import type { Backend } from "./pool.ts";
import { relay } from "./relay.ts";
import { countRouterAnswer, modelLabel, NONE, type RouterAnswer } from "./request_metrics.ts";
import { NOOP_SPAN, RequestLog } from "./settle.ts";
import type { RouterState } from "./state.ts";

/** Serves one request for a proxied endpoint; never throws. */
export async function proxy(
  state: RouterState,
  req: ServerRequest,
  endpoint: ProxyEndpoint,
): Promise<Reply> {
  const flow = state.flow.ticket();
  try {
    return await proxyRequest(state, req, endpoint, flow);
  } finally {
    flow.end();
  }
}

/** One request's way through the pipeline: what every stage of it shares. */
class Exchange {
  readonly t0: number;
  /** One config for the whole request, even if a reload lands meanwhile. */
  readonly config: RouterConfig;
  readonly requestId: string;
  readonly log: RequestLog;
  readonly span: Span;

  constructor(
    readonly state: RouterState,
    readonly req: ServerRequest,
    readonly endpoint: ProxyEndpoint,
    readonly flow: FlowTicket,
  ) {
    this.t0 = state.clock.now();
    this.config = state.config;
    this.requestId = requestIdOf(req);
    this.log = new RequestLog(
      state.logger,
      state.clock,
      this.requestId,
      req.path,
      state.strategy.name,
      this.t0,
    );
    // Tracing off: its no-op span, without building the name and attributes it would drop.
    this.span = state.tracer.enabled
      ? state.tracer.startRequest(req, `${req.method} ${endpoint.name}`, {
        "http.request.method": req.method,
        "url.path": req.path,
      })
      : NOOP_SPAN;
    this.log.span = this.span;
  }

  /** Counts an answer the router made itself and ends the span (`relay` does for the workers'). */
  answered(status: number, plan: RequestPlan | null, last: RouterAnswer["last"]): void {
    countRouterAnswer(this.state, {
      endpoint: this.endpoint.name,
      plan,
      strategy: this.log.strategy,
      status,
      last,
      t0: this.t0,
    });
    this.span.end(status);
  }

  /** The answer to a request `parse` refused (or whose client left while sending its body). */
  refused(err: unknown): Reply {
    const res = replyForError(err, [["x-request-id", this.requestId]]);
    // A client that left while sending its body is not a bad request: 499, as nginx logs it.
    const gone = err instanceof ClientGone;
    const status = gone ? 499 : res.status; // nobody reads it when the client left
    this.answered(status, null, null);
    this.log.write(() => ({
      status,
      error: gone ? "client closed request while sending its body" : errorMessage(err),
    }));
    return res;
  }
}

async function proxyRequest(
  state: RouterState,
  req: ServerRequest,
  endpoint: ProxyEndpoint,
  flow: FlowTicket,
): Promise<Reply> {
  const ex = new Exchange(state, req, endpoint, flow);
  let plan: RequestPlan;
  try {
    plan = await parse(req, endpoint, state, ex.requestId);
  } catch (err) {
    return ex.refused(err);
  }
  // Bounded like the metric label (a known model, else `other`); the span keeps the name asked.
  const label = modelLabel(state.backends, plan);
  ex.log.model = label === NONE ? null : label;
  const asked = (plan.served ?? plan.model)?.slice(0, 256);
  if (asked !== undefined) ex.span.set("gen_ai.request.model", asked);
  // Flow control: priority class, tenant limits, a wait in the router queue while no worker can
  // take the request (admission.ts); null = go on (no await then: choose runs in this same turn).
  const admitted = flow.admit(req, plan, ex.log);
  const refused = admitted === null ? null : await admitted;
  if (refused !== null) {
    ex.answered(refused.status, plan, null);
    return refused;
  }
  return await attempts(ex, plan);
}

/** The attempts of a request, until one answers or none may follow (see the module comment). */
async function attempts(ex: Exchange, plan: RequestPlan): Promise<Reply> {
  const { state, endpoint, log, requestId } = ex;
  const maxRetries = ex.config.router.maxRetries;
  const tried = new Set<Backend>();
  let last: Failure | null = null;
  let lastChoice: { backend: Backend; reason: string } | null = null;
  // A follow-up whose previous response lives on a known worker cannot succeed elsewhere: that
  // worker's 5xx is the answer. An id the router never saw has no owner: retried as usual.
  const owner = plan.previousResponseId === null
    ? undefined
    : state.responses.get(plan.previousResponseId);
  let rule = endpoint.retry;
  for (let n = 0; n <= maxRetries; n++) {
    ex.log.strategy = state.strategy.name;
    // Choosing and beginning the attempt run in one turn (no await between them): otherwise two
    // requests could both be told a worker is free and take its one slot.
    let choice = choose(state, plan, tried, n > 0, ex.t0);
    // No worker after all (another request took the free one): wait in the router queue, and
    // choose in the turn it wakes the request in.
    while (choice === null && ex.flow.waits) {
      const shed = await ex.flow.wait(log);
      if (shed !== null) {
        ex.answered(shed.status, plan, null);
        return shed;
      }
      choice = choose(state, plan, tried, n > 0, ex.t0);
    }
    if (choice === null) break;
    // A retry is counted once it actually happens, against the worker that failed.
    if (last !== null && lastChoice !== null) {
      state.metrics.incRetry(lastChoice.backend.id, last.kind);
    }
    tried.add(choice.backend);
    lastChoice = choice;
    rule = choice.backend === owner ? "connect-only" : endpoint.retry;
    const att = begin(ex, plan, choice, n);
    const retry5xx = rule === "before-first-byte";
    const sent = await att.send(
      plan,
      () => retry5xx && n < maxRetries && anyCandidate(state.backends, tried, plan.served),
    );
    if (sent.ok) {
      ex.flow.hold(att);
      return relay(state, plan, att, sent.answer, log, ex.t0);
    }
    if (sent.failure === null) {
      att.settle();
      ex.answered(sent.gone === "client" ? 499 : 503, plan, att);
      return goneReply(sent.gone, att, log, requestId);
    }
    att.failed(sent.failure, requestId);
    att.unrecord();
    att.settle();
    last = sent.failure;
    if (!retryable(last, rule, ex.config.router.retryTimeouts)) break;
  }
  const res = routerError(last, lastChoice, log, requestId);
  if (last !== null) ex.span.error(last.kind, last.message);
  ex.answered(res.status, plan, lastChoice);
  return res;
}

/** Begins attempt `n` on `choice`: its span, its bookkeeping, and the queue told it started. */
function begin(ex: Exchange, plan: RequestPlan, choice: Choice, n: number): Attempt {
  const span = ex.span;
  let child = NOOP_SPAN;
  if (span !== NOOP_SPAN) {
    span.set("router.strategy", ex.log.strategy);
    span.set("router.worker", choice.backend.id);
    span.set("router.reason", choice.reason);
    span.set("router.match_chunks", choice.match);
    span.set("router.attempts", n + 1);
    child = span.child(`attempt ${n}`, {
      "router.worker": choice.backend.id,
      "server.address": choice.backend.dial.hostname,
      "router.attempt": n,
    });
  }
  const att = Attempt.begin(ex.state, plan, choice, ex.req.signal, child);
  ex.flow.started();
  return att;
}

/** The answer to a request the client left (it will not read it) or a shutdown cut short. */
function goneReply(
  gone: "client" | "shutdown",
  att: Attempt,
  log: RequestLog,
  requestId: string,
): Reply {
  const client = gone === "client";
  log.write(() => ({
    backend: att.backend.id,
    reason: att.reason,
    match_chunks: att.match,
    status: client ? 499 : 503,
    error: client ? "client closed request" : "router shutting down",
  }));
  const headers: HeaderList = [["x-request-id", requestId]];
  return client
    ? errorReply("bad_request", "Client closed request", { headers })
    : errorReply("no_worker", "Router is shutting down", { headers, code: "shutting_down" });
}

/** The router's own answer when no attempt answered: 503 with none tried, else the last failure. */
function routerError(
  last: Failure | null,
  lastChoice: { backend: Backend; reason: string } | null,
  log: RequestLog,
  requestId: string,
): Reply {
  const headers: HeaderList = [["x-request-id", requestId]];
  const res = last === null
    ? errorReply("no_worker", "No worker is available to serve this request", { headers })
    : errorReply(last.error, last.message, {
      headers: lastChoice === null ? headers : [
        ...headers,
        ["x-router-backend", lastChoice.backend.id],
        ["x-router-reason", lastChoice.reason],
      ],
      code: codeOf(last),
    });
  log.write(() => ({ status: res.status, error: last?.message ?? "no worker admitted" }));
  return res;
}
