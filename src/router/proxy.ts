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
import type { HeaderList } from "../proxy/headers.ts";
import { errorMessage, errorReply, replyForError } from "../util/errors.ts";
import type { FlowTicket } from "./admission.ts";
import { Attempt } from "./attempt.ts";
import { anyCandidate, choose } from "./choose.ts";
import type { ProxyEndpoint } from "./endpoints.ts";
import { codeOf, type Failure, retryable } from "./failures.ts";
import { parse, requestIdOf, type RequestPlan } from "./plan.ts";
import type { Backend } from "./pool.ts";
import { relay } from "./relay.ts";
import { countRouterAnswer, type RouterAnswer } from "./request_metrics.ts";
import { RequestLog } from "./settle.ts";
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

async function proxyRequest(
  state: RouterState,
  req: ServerRequest,
  endpoint: ProxyEndpoint,
  flow: FlowTicket,
): Promise<Reply> {
  const t0 = state.clock.now();
  // One config for the whole request, even if a reload lands meanwhile.
  const config = state.config;
  const requestId = requestIdOf(req);
  const log = new RequestLog(
    state.logger,
    state.clock,
    requestId,
    req.path,
    state.strategy.name,
    t0,
  );
  const span = state.tracer.startRequest(req, `${req.method} ${endpoint.name}`, {
    "http.request.method": req.method,
    "url.path": req.path,
  });
  log.span = span;
  // Counts an answer the router made itself and ends its span (`relay` does for the workers').
  const answered = (status: number, p: RequestPlan | null, last: RouterAnswer["last"]) => {
    countRouterAnswer(state, {
      endpoint: endpoint.name,
      plan: p,
      strategy: log.strategy,
      status,
      last,
      t0,
    });
    span.end(status);
  };
  let plan: RequestPlan;
  try {
    plan = await parse(req, endpoint, state, requestId);
  } catch (err) {
    const res = replyForError(err, [["x-request-id", requestId]]);
    // A client that left while sending its body is not a bad request: 499, as nginx logs it.
    const gone = err instanceof ClientGone;
    const status = gone ? 499 : res.status; // nobody reads it when the client left
    answered(status, null, null);
    log.write(() => ({
      status,
      error: gone ? "client closed request while sending its body" : errorMessage(err),
    }));
    return res;
  }
  log.model = (plan.served ?? plan.model)?.slice(0, 256) ?? null;
  if (log.model !== null) span.set("gen_ai.request.model", log.model);
  // Flow control: priority class, tenant limits, a wait in the router queue while no worker can
  // take the request (admission.ts); null = go on (no await then: choose runs in this same turn).
  const admitted = flow.admit(req, plan, log);
  const refused = admitted === null ? null : await admitted;
  if (refused !== null) {
    answered(refused.status, plan, null);
    return refused;
  }

  const maxRetries = config.router.maxRetries;
  const tried = new Set<Backend>();
  let last: Failure | null = null;
  let lastChoice: { backend: Backend; reason: string } | null = null;
  for (let n = 0; n <= maxRetries; n++) {
    log.strategy = state.strategy.name;
    let choice = choose(state, plan, tried, n > 0, t0);
    // No worker after all (another request took the free one): wait in the router queue.
    while (choice === null && flow.waits) {
      const shed = await flow.wait(log);
      if (shed !== null) {
        answered(shed.status, plan, null);
        return shed;
      }
      choice = choose(state, plan, tried, n > 0, t0);
    }
    if (choice === null) break;
    // A retry is counted once it actually happens, against the worker that failed.
    if (last !== null && lastChoice !== null) {
      state.metrics.incRetry(lastChoice.backend.id, last.kind);
    }
    tried.add(choice.backend);
    lastChoice = choice;
    span.set("router.strategy", log.strategy);
    span.set("router.worker", choice.backend.id);
    span.set("router.reason", choice.reason);
    span.set("router.match_chunks", choice.match);
    span.set("router.attempts", n + 1);
    const att = Attempt.begin(
      state,
      plan,
      choice,
      req.signal,
      span.child(`attempt ${n}`, {
        "router.worker": choice.backend.id,
        "server.address": choice.backend.dial.hostname,
        "router.attempt": n,
      }),
    );
    flow.started();
    const retry5xx = endpoint.retry === "before-first-byte";
    const sent = await att.send(
      plan,
      () => retry5xx && n < maxRetries && anyCandidate(state.backends, tried, plan.served),
    );
    if (sent.ok) {
      flow.hold(att);
      return relay(state, plan, att, sent.answer, log, t0);
    }
    if (sent.failure === null) {
      att.settle();
      answered(sent.gone === "client" ? 499 : 503, plan, att);
      return goneReply(sent.gone, att, log, requestId);
    }
    att.failed(sent.failure, requestId);
    att.unrecord();
    att.settle();
    last = sent.failure;
    // A follow-up whose previous response lives on that worker cannot succeed elsewhere.
    const rule = plan.previousResponseId !== null ? "connect-only" : endpoint.retry;
    if (!retryable(last, rule, config.router.retryTimeouts)) break;
  }
  const res = routerError(last, lastChoice, log, requestId);
  if (last !== null) span.error(last.kind, last.message);
  answered(res.status, plan, lastChoice);
  return res;
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
