/**
 * Admin views of what the router knows and would do, for operators (docs/metrics.md has examples):
 *
 * - `GET /debug/workers`: per worker its url, models, health, breaker state and since when,
 *   in-flight count, the load tracker's estimates and learned rates, the engine's own scraped
 *   figures and their age (`health.scrape_metrics`), the prefix index's size and the last failure
 *   seen; and the router queue (flow control): depth per model, class and tenant, oldest wait.
 * - `POST /debug/route`: a dry run of the routing decision for a request body (chat/completions
 *   shape by default; `?path=/v1/completions` or a top-level `"path"` field chooses the endpoint
 *   kind; the session header of this request is the session): each worker's match, in-flight and
 *   load, the strategy's score where the strategy computes one (`costs`, `scores` or `logits` of
 *   costaware, llmd-weighted and dynamo-cost), and the decision with its reason; with flow control,
 *   whether the request would wait in the router queue (`would_answer.queued`) rather than be
 *   answered 503, or be refused for an unknown priority. Nothing is sent
 *   and nothing is recorded: no index insert, no session pin, no in-flight or load change. The
 *   strategy decides on a fresh instance with its own fixed-seed random source, so the live one's
 *   state (the round-robin position) and random sequence are untouched; for roundrobin the answer
 *   is therefore the rule's first pick, not the live cycle's next one, and a decision that a random
 *   tie-break settles may differ from the live one. The prefix lookups do count in
 *   `router_prefix_tree_queries_total` (they are lookups).
 *
 * Where they are served: on the admin listener (`metrics.addr`) when there is one (behind the API
 * key when auth is on); else on the main listener only when auth is on (behind the key), so that
 * the router's internals are never open on the port clients use. Otherwise they answer 404.
 *
 * Cost: only when asked; `/debug/route` runs one parse and one decision, like a request.
 *
 * @module
 */

import { RadixTree } from "../prefix/radix_tree.ts";
import { ClientGone, type Reply, type ServerRequest } from "../http/types.ts";
import type { PickContext, Strategy } from "../strategies/types.ts";
import { ERROR_KINDS, errorReply, RouterError } from "../util/errors.ts";
import { SeededRng } from "../util/rng.ts";
import type { FlowDryRun } from "./admission.ts";
import { candidates, PREVIOUS_RESPONSE_REASON, SESSION_REASON } from "./choose.ts";
import { type Endpoint, endpointFor, ENDPOINTS, type ProxyEndpoint } from "./endpoints.ts";
import { jsonReply } from "./local.ts";
import { anyServes, servesModel } from "./models.ts";
import { parse, requestIdOf, type RequestPlan } from "./plan.ts";
import type { Backend } from "./pool.ts";
import { candidatesFor } from "./select.ts";
import { type RouterState, strategyFor } from "./state.ts";

/** Whether `e` is one of the debug views. */
export function isDebug(e: Endpoint): boolean {
  return e.serve === "debug-workers" || e.serve === "debug-route";
}

/** Whether the main listener serves the debug views: no admin listener, and auth on. */
export function debugOnMain(state: RouterState): boolean {
  const m = state.config.metrics;
  return !(m.enabled && m.addr !== null) && state.auth.enabled;
}

/** A clock time (ms on the router's clock) as wall time, and how long ago it was. */
function when(state: RouterState, at: number): { at: string; ago_ms: number } {
  const ago = Math.max(0, state.clock.now() - at);
  return { at: new Date(Date.now() - ago).toISOString(), ago_ms: Math.round(ago) };
}

/** `snake_case` copy of a flat record of numbers (load figures), rounded for reading. */
function figures(o: object | undefined): Record<string, number> | null {
  if (o === undefined) return null;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) {
    if (typeof v !== "number") continue;
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = Math.round(v * 1e4) / 1e4;
  }
  return out;
}

/** The load tracker's figures of worker `i`, or null when it does not track that index. */
function trackerFigures(state: RouterState, i: number): Record<string, number> | null {
  try {
    return figures(state.tracker.figures(i));
  } catch {
    return null;
  }
}

/**
 * What the engine itself reports (`health.scrape_metrics`; null while off): the last good scrape's
 * figures, when it was, whether routing still reads them (`fresh`), whether flow control holds the
 * worker back for them (`held_back`), and the failures since.
 */
function engineView(state: RouterState, b: Backend): Record<string, unknown> | null {
  const r = b.engineReading;
  if (r === undefined) return null;
  const sig = r.signals;
  const fresh = b.engine;
  return {
    kind: sig.engine,
    fresh: fresh !== undefined,
    held_back: state.flow.engineGate?.(b) ?? false,
    waiting: sig.waiting ?? null,
    running: sig.running ?? null,
    kv_usage: sig.kvUsage ?? null,
    queued_request_tokens: fresh?.queuedRequestTokens ?? null,
    max_age_ms: fresh?.maxAgeMs ?? null,
    scraped: r.at > -Infinity ? when(state, r.at) : null,
    scrapes: r.scrapes,
    failures: r.failures,
    last_error: r.lastError,
  };
}

/** The router queue (flow control; null while off): depth by model, class and tenant, oldest wait. */
function flowView(state: RouterState): Record<string, unknown> | null {
  const flow = state.flow;
  if (!flow.enabled && flow.queues === 0) return null;
  return {
    enabled: flow.enabled,
    depth: flow.depth,
    in_transit: flow.inTransit,
    engine_max_waiting: state.config.flow?.queue.engineMaxWaiting ?? 0,
    queues: flow.snapshot().map(({ model, stats }) => ({
      model,
      depth: stats.depth,
      in_transit: stats.inTransit,
      dispatch_rate_per_s: round(stats.dispatchRatePerS),
      classes: Object.fromEntries(
        Object.entries(stats.classes).map(([name, c]) => [name, {
          depth: c.depth,
          oldest_wait_ms: Math.round(c.oldestWaitMs),
          enqueued: c.enqueued,
          dispatched: c.dispatched,
          requeued: c.requeued,
          shed: c.shed,
        }]),
      ),
      tenants: stats.tenants,
    })),
  };
}

/** One worker as `/debug/workers` shows it. */
function workerView(state: RouterState, b: Backend): Record<string, unknown> {
  const stats = b.prefix.stats();
  const last = state.faults.last(b.id);
  return {
    id: b.id,
    url: b.url,
    index: b.index,
    models: b.models === null ? null : [...b.models.keys()],
    health: { up: b.up },
    admitted: b.admits(),
    breaker: {
      state: b.breaker.state,
      since: when(state, b.breaker.since),
      consecutive_failures: b.breaker.consecutiveFailures,
    },
    inflight: b.inflight,
    max_inflight: b.config.maxInflight,
    load: trackerFigures(state, b.index),
    engine: engineView(state, b),
    prefix_index: {
      chunks: stats.chunks,
      terminals: stats.terminals,
      max_chunks: stats.maxChunks,
      capacity_chunks: b.capacityChunks,
      // A radix tree's own sizes; precise mode's view counts blocks only.
      nodes: b.prefix instanceof RadixTree ? b.prefix.nodes : null,
      bytes: b.prefix instanceof RadixTree ? b.prefix.bytes : null,
      inserts: stats.inserts,
      queries: stats.queries,
      evictions: stats.evictions,
    },
    last_error: last === null
      ? null
      : { kind: last.kind, message: last.message, ...when(state, last.at) },
  };
}

/** `GET /debug/workers`. */
export function debugWorkers(state: RouterState): Reply {
  return jsonReply({
    strategy: state.strategy.name,
    draining: state.draining,
    pinned_sessions: state.sessions.size,
    retired_workers: state.retired.size,
    flow: flowView(state),
    workers: state.backends.map((b) => workerView(state, b)),
  });
}

/** Why `b` is not offered to the strategy for `served`, or null when it is. */
function exclusion(
  state: RouterState,
  b: Backend,
  served: string | null,
  known: boolean,
): string | null {
  if (!servesModel(b, served, known)) return "does not serve the model";
  if (!b.up) return "health check failing";
  if (b.config.maxInflight > 0 && b.inflight >= b.config.maxInflight) return "at max_inflight";
  if (!b.breaker.canAdmit()) return `breaker ${b.breaker.state}`;
  if (state.flow.engineGate?.(b)) {
    const max = state.config.flow?.queue.engineMaxWaiting ?? 0;
    return `engine queue at ${b.engine?.waiting} waiting (flow.queue.engine_max_waiting ${max})`;
  }
  return null;
}

/**
 * `would_answer` of the dry run: null when the request would go on at once; `queued` when flow
 * control would make it wait in the router queue; else the router's refusal (400 for an unknown
 * priority, 503 when no worker is available and nothing would queue it).
 */
function wouldAnswer(flow: FlowDryRun | null, decided: boolean): Record<string, unknown> | null {
  if (flow !== null && !flow.ok) {
    return {
      status: 400,
      error: {
        message: flow.message,
        type: ERROR_KINDS.bad_request.type,
        param: flow.param,
        code: "invalid_priority",
      },
    };
  }
  if (flow !== null && flow.wait) {
    return {
      status: null,
      queued: true,
      class: flow.className,
      ahead: flow.ahead,
      message: decided
        ? `Requests of class ${flow.className} or higher wait for this model: it would wait its turn in the router queue`
        : "No worker can take the request now: it would wait in the router queue",
    };
  }
  if (decided) return null;
  return { status: 503, error: { message: "No worker is available to serve this request" } };
}

/** Per-candidate scores a strategy computes (`costs`, `scores`, `logits`), if it has one. */
function scoresOf(
  strategy: Strategy,
  ctx: PickContext,
): { kind: string; better: "lower" | "higher"; values: number[] } | null {
  const s = strategy as unknown as Record<string, unknown>;
  const call = (name: string) => (s[name] as (c: PickContext) => number[]).call(strategy, ctx);
  if (typeof s.costs === "function") {
    return { kind: "cost_ms", better: "lower", values: call("costs") };
  }
  if (typeof s.scores === "function") {
    return { kind: "score", better: "higher", values: call("scores") };
  }
  if (typeof s.logits === "function") {
    return { kind: "logit", better: "lower", values: call("logits") };
  }
  return null;
}

/** The endpoint the dry run routes as: a JSON row of the fixed table. */
function routeEndpoint(path: string): ProxyEndpoint {
  const e = endpointFor(ENDPOINTS, path);
  if (e === undefined || e.serve !== "proxy" || e.body !== "json") {
    const valid = Object.entries(ENDPOINTS)
      .filter(([, r]) => r.serve === "proxy" && r.body === "json").map(([p]) => p);
    throw new RouterError(
      "bad_request",
      `path must be a JSON endpoint of the router (${valid.join(", ")}), got "${
        path.slice(0, 200)
      }"`,
      "path",
    );
  }
  return e;
}

/** `req` as a request for `path` with `body` (already read). */
function asRequest(req: ServerRequest, path: string, body: Uint8Array<ArrayBuffer>): ServerRequest {
  return {
    method: "POST",
    path,
    search: "",
    version: req.version,
    headers: req.headers,
    header: (name) => req.header(name),
    scheme: req.scheme,
    remote: req.remote,
    signal: req.signal,
    hasBody: body.length > 0,
    readBody: () => Promise.resolve(body),
    bodySource: () => {
      throw new Error("a dry run has no streamed body");
    },
  };
}

/** The dry-run request: its path (query or body field) and body without that field. */
function dryRunInput(req: ServerRequest, raw: Uint8Array<ArrayBuffer>) {
  let path = new URLSearchParams(req.search).get("path");
  let body = raw;
  try {
    const json = JSON.parse(new TextDecoder().decode(raw));
    if (json !== null && typeof json === "object" && !Array.isArray(json) && "path" in json) {
      if (path === null && typeof json.path === "string") path = json.path;
      delete json.path;
      body = new TextEncoder().encode(JSON.stringify(json));
    }
  } catch { /* not JSON: parse reports it as the real request would get it */ }
  return { path: path ?? "/v1/chat/completions", body };
}

/**
 * `POST /debug/route`: the decision the router would take for the body; see the module comment.
 * A body the real request would be refused for is answered 200 with `would_answer` (its status
 * and OpenAI error); a body this endpoint cannot read at all (too large, too slow) is its error.
 */
export async function debugRoute(state: RouterState, req: ServerRequest): Promise<Reply> {
  const config = state.config;
  let raw: Uint8Array<ArrayBuffer>;
  try {
    raw = await req.readBody(config.server.maxBodyBytes, config.server.readTimeoutMs);
  } catch (err) {
    if (err instanceof ClientGone) return errorReply("bad_request", "Client closed request");
    throw err;
  }
  const input = dryRunInput(req, raw);
  let plan: RequestPlan;
  try {
    const endpoint = routeEndpoint(input.path);
    plan = await parse(asRequest(req, input.path, input.body), endpoint, state, requestIdOf(req));
  } catch (err) {
    if (!(err instanceof RouterError)) throw err;
    return jsonReply({
      path: input.path,
      decision: null,
      would_answer: {
        status: err.status,
        error: {
          message: err.message,
          type: ERROR_KINDS[err.kind].type,
          param: err.param,
          code: err.code ?? err.kind,
        },
      },
    });
  }
  return jsonReply(explain(state, plan, input.path, state.flow.dryRun(req, plan)));
}

/** The decision `choose` would take, by its rules, without pinning or recording anything. */
function decisionOf(
  state: RouterState,
  plan: RequestPlan,
  offered: readonly Backend[],
  strategy: Strategy,
  ctx: PickContext,
) {
  const owner = plan.previousResponseId === null
    ? undefined
    : state.responses.get(plan.previousResponseId);
  const pinned = plan.sessionId === null ? undefined : state.sessions.get(plan.sessionId);
  const usable = (b: Backend | undefined): b is Backend =>
    b !== undefined && state.backends[b.index] === b && offered.includes(b);
  let decision: { backend: string; reason: string; rule: string } | null = null;
  if (usable(owner)) {
    decision = { backend: owner.id, reason: PREVIOUS_RESPONSE_REASON, rule: "previous-response" };
  } else if (usable(pinned)) {
    decision = { backend: pinned.id, reason: SESSION_REASON, rule: "session-affinity" };
  } else if (ctx.candidates.length > 0) {
    const d = strategy.pick(ctx);
    if (d !== undefined) decision = { backend: d.candidate.id, reason: d.reason, rule: "strategy" };
  }
  return { decision, owner, pinned };
}

/** The dry run's answer for a parsed request. */
function explain(
  state: RouterState,
  plan: RequestPlan,
  path: string,
  flow: FlowDryRun | null,
): Record<string, unknown> {
  const backends = state.backends;
  const offered = candidates(backends, new Set(), plan.served, state.flow.engineGate);
  const strategy = strategyFor(state.config);
  const chunkSize = state.config.router.chunkSize;
  const rng = new SeededRng(state.config.router.seed ?? 1);
  const now = state.clock.now();
  const input = { strategy, targets: offered, hashes: plan.hashes, chunkSize, rng, now };
  const cands = candidatesFor(input);
  const ctx: PickContext = {
    candidates: cands,
    requestChunks: plan.hashes.length >>> 1,
    chunkSize,
    rng,
    now,
  };
  // Scores before the pick, on the same context: the figures the pick then sees.
  const scores = cands.length > 0 ? scoresOf(strategy, ctx) : null;
  const { decision, owner, pinned } = decisionOf(state, plan, offered, strategy, ctx);
  const known = anyServes(backends, plan.served);
  const byIndex = new Map(cands.map((c, i) => [c.index, i]));
  const row = (b: Backend) => {
    const i = byIndex.get(b.index);
    const c = i === undefined ? undefined : cands[i];
    return {
      id: b.id,
      offered: c !== undefined,
      excluded_because: c !== undefined ? null : exclusion(state, b, plan.served, known),
      match_chunks: c !== undefined && strategy.usesPrefix ? c.match : b.prefix.match(plan.hashes),
      inflight: b.inflight,
      cached_chunks: b.prefix.chunks,
      capacity_chunks: b.capacityChunks,
      load: trackerFigures(state, b.index),
      score: i === undefined || scores === null ? null : round(scores.values[i]),
    };
  };
  return {
    path,
    endpoint: plan.endpoint.name,
    model: { requested: plan.model ?? null, served: plan.served },
    stream: plan.stream,
    request_chunks: plan.hashes.length >>> 1,
    prompt_tokens_estimate: Math.round(plan.promptTokens),
    session: plan.sessionId === null
      ? null
      : { id: plan.sessionId.slice(0, 128), pinned_to: pinned?.id ?? null },
    previous_response: plan.previousResponseId === null
      ? null
      : { id: plan.previousResponseId.slice(0, 128), owner: owner?.id ?? null },
    strategy: strategy.name,
    score: scores === null ? null : { kind: scores.kind, better: scores.better },
    candidates: backends.map(row),
    decision,
    flow: flow === null || !flow.ok ? null : { class: flow.className, would_wait: flow.wait },
    would_answer: wouldAnswer(flow, decision !== null),
  };
}

/** `x` to 4 decimals (JSON has no Infinity: null then). */
function round(x: number | undefined): number | null {
  return x === undefined || !Number.isFinite(x) ? null : Math.round(x * 1e4) / 1e4;
}
