/**
 * The router's request handler: one `handle(req)` serving the OpenAI endpoints, health and metrics.
 *
 * A completion request goes: API key check (when auth is on) → upstream headers (bounded) → read
 * the body (bounded) → depth check and parse once → routing text → chunk hashes → admitted workers
 * → `strategy.pick` → record (index insert, in-flight) → forward with the client's abort signal
 * and the attempt's deadlines → wait for the first body byte → stream the upstream body straight
 * back through a tap → on the body's end, error or cancellation: in-flight back down, breaker
 * verdict, metrics, one access-log line.
 *
 * Retries: a failed attempt (connect error or timeout, a status ≥ 500, a deadline or a broken body
 * before its first byte) is retried on another admitted worker (the strategy picks again among
 * those not yet tried) up to `router.max_retries` times, with reason `retry-after-<reason>`. The
 * router holds the response back until the upstream's first body byte, so every failure up to
 * that byte is still retryable; once a byte went to the client nothing is retried: a failure then
 * ends the stream, with an SSE error event when the body is SSE (see `src/proxy/usage_tap.ts`).
 *
 * Reload: `reload(config)` swaps in a new configuration between two requests; see its comment.
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import { restartKeys } from "../config/mod.ts";
import { HealthChecker } from "../backends/mod.ts";
import { RouterMetrics } from "../metrics/mod.ts";
import { chunkHashes, parseRequest, utf8 } from "../prefix/mod.ts";
import { createStrategy } from "../strategies/mod.ts";
import type { Strategy } from "../strategies/types.ts";
import { AttemptDeadlines, UpstreamTimeout, UpstreamUnreachable } from "../proxy/deadlines.ts";
import {
  downstreamHeaders,
  type HeaderList,
  headerValue,
  upstreamHeaders,
  withApiKey,
} from "../proxy/headers.ts";
import { decodeUtf8Strict } from "../util/utf8.ts";
import { tapReader, type TapResult, tapWhole } from "../proxy/usage_tap.ts";
import {
  type BodySource,
  type H1Answer,
  type H1Pool,
  isNullBodyStatus,
} from "../proxy/h1_client.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import {
  errorBody,
  type ErrorKind,
  errorMessage,
  errorResponse,
  responseForError,
  RouterError,
} from "../util/errors.ts";
import { type Rng, SeededRng } from "../util/rng.ts";
import { ApiKeyAuth } from "./auth.ts";
import { type FailureKind, FaultMetrics } from "./fault_metrics.ts";
import { jsonTooDeep, readBody, SCAN_MIN_BYTES, tooDeepError, valueTooDeep } from "./limits.ts";
import { Logger } from "./logger.ts";
import { Backend } from "./pool.ts";
import { type LoadTicket, LoadTracker } from "./load_tracker.ts";
import { nextCapacity } from "./prediction_feedback.ts";
import { decide, recordDecision } from "./select.ts";

/** Injected collaborators of a router. */
export interface RouterDeps {
  readonly clock?: Clock;
  readonly rng?: Rng;
  readonly logger?: Logger;
  readonly metrics?: RouterMetrics;
}

/** Connection facts `Deno.serve` passes along. */
export interface ClientInfo {
  readonly remoteAddr?: { readonly hostname?: string };
}

/** What a reload changed, for its log line. */
export interface ReloadSummary {
  readonly added: string[];
  readonly removed: string[];
  /** Workers kept with their prefix index, breaker and in-flight count. */
  readonly kept: string[];
  /** State that had to be reset, e.g. `w1: prefix index (kv_budget changed)`. */
  readonly reset: string[];
  /** Changed keys that take effect only after a restart (listeners are bound once). */
  readonly needsRestart: string[];
  readonly strategy: string;
}

/** Abort reason of attempts cut short by `abortInflight` (shutdown deadline reached). */
export class RouterShutdown extends Error {
  constructor() {
    super("Router is shutting down");
    this.name = "RouterShutdown";
  }
}

type Kind = "chat" | "completion";

const ROUTES: Record<string, { methods: string[]; kind?: Kind }> = {
  "/v1/chat/completions": { methods: ["POST"], kind: "chat" },
  "/v1/completions": { methods: ["POST"], kind: "completion" },
  "/v1/models": { methods: ["GET"] },
  "/healthz": { methods: ["GET"] },
  "/readyz": { methods: ["GET"] },
  "/metrics": { methods: ["GET"] },
};

const REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;
/** Bytes per token when the router estimates token counts from text (no tokenizer). */
const BYTES_PER_TOKEN = 4;
/** Sessions pinned at most; the least recently used pin goes first. */
const MAX_SESSIONS = 65_536;
/** Reason of a request sent to its session's pinned worker. */
export const SESSION_REASON = "session-affinity";

/** A failed attempt, classified. */
interface Failure {
  readonly kind: FailureKind;
  /** How the client is answered when no retry follows. */
  readonly error: ErrorKind;
  readonly message: string;
  /** OpenAI `code` of that answer; default: the kind in snake case (`idle_timeout`). */
  readonly code?: string;
}

/** The request handler and the state it routes with. */
export class Router {
  readonly metrics: RouterMetrics;
  readonly clock: Clock;
  readonly rng: Rng;
  #config: RouterConfig;
  #backends: Backend[];
  #strategy: Strategy;
  #auth: ApiKeyAuth;
  #logger: Logger;
  readonly #ownLogger: boolean;
  readonly #faults: FaultMetrics;
  /** Removed by a reload while requests were still in flight on them. */
  readonly #retired = new Set<Backend>();
  /** Attempts in flight, for `abortInflight`. */
  readonly #attempts = new Set<AttemptDeadlines>();
  #health: HealthChecker | null = null;
  /** Per-worker load accounting and learned rates, for cost-model strategies and feedback. */
  #tracker: LoadTracker;
  /** Session id → pinned worker, in least-recently-used order. */
  readonly #sessions = new Map<string, Backend>();
  #started = false;
  #reloading: Promise<unknown> = Promise.resolve();

  constructor(config: RouterConfig, deps: RouterDeps = {}) {
    this.clock = deps.clock ?? systemClock;
    this.rng = deps.rng ??
      new SeededRng(config.router.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]);
    this.#ownLogger = deps.logger === undefined;
    this.#logger = deps.logger ?? new Logger(config.logging.level, config.logging.format);
    this.metrics = deps.metrics ?? new RouterMetrics();
    this.#faults = new FaultMetrics(this.metrics.registry);
    this.#config = config;
    this.#strategy = strategyFor(config);
    this.#auth = new ApiKeyAuth(config.auth.apiKeys, config.auth.protectMetrics);
    this.#backends = config.workers.map((w, i) => new Backend(i, w, this.clock));
    this.#tracker = this.#wireLoad();
  }

  /** `tracker` (default: a new one) wired into the current workers when the strategy reads load. */
  #wireLoad(
    tracker = new LoadTracker({ workers: Math.max(1, this.#backends.length) }),
  ): LoadTracker {
    const source = this.#strategy.usesLoad ? (i: number) => tracker.load(i) : null;
    for (const b of this.#backends) b.loadSource = source;
    return tracker;
  }

  /** Sessions pinned to a worker now. */
  get pinnedSessions(): number {
    return this.#sessions.size;
  }

  /** The configuration in force (the latest one reloaded). */
  get config(): RouterConfig {
    return this.#config;
  }

  /** The current workers, in config order. */
  get backends(): readonly Backend[] {
    return this.#backends;
  }

  get strategy(): Strategy {
    return this.#strategy;
  }

  get logger(): Logger {
    return this.#logger;
  }

  /** Starts active health checks (when configured). */
  start(): void {
    this.#started = true;
    this.#startHealth();
  }

  /** Stops health checks. In-flight requests are not touched. */
  async stop(): Promise<void> {
    this.#started = false;
    await this.#stopHealth();
  }

  #startHealth(): void {
    if (this.#config.health.intervalMs <= 0 || this.#health) return;
    const backends = this.#backends;
    const health = new HealthChecker({
      targets: backends.map((b) => ({
        id: b.id,
        url: b.url,
        breaker: b.breaker,
        apiKey: b.config.apiKey ?? undefined,
      })),
      intervalMs: this.#config.health.intervalMs,
      timeoutMs: this.#config.health.timeoutMs,
      path: this.#config.health.path,
      onResult: (id, up, err) => {
        const b = backends.find((x) => x.id === id);
        if (!b) return;
        if (b.up !== up) {
          this.#logger.warn(up ? "worker is up" : "worker is down", {
            backend: id,
            error: err === undefined ? undefined : String(err),
          });
        }
        b.up = up;
      },
    });
    this.#health = health;
    health.start();
  }

  async #stopHealth(): Promise<void> {
    const h = this.#health;
    this.#health = null;
    if (h) await h.stop();
  }

  /**
   * Closes the workers' upstream connections: idle ones now, busy ones when their request ends.
   * The router's last step, after its listener drained.
   */
  dispose(): void {
    for (const b of this.#backends) b.dispose();
    for (const b of this.#retired) b.dispose();
  }

  /** Workers a reload removed while they had requests in flight: held until the last one ends. */
  get retiredWorkers(): number {
    return this.#retired.size;
  }

  /** Requests in flight over all workers, including workers a reload removed. */
  get inflight(): number {
    let n = 0;
    for (const b of this.#backends) n += b.inflight;
    for (const b of this.#retired) n += b.inflight;
    return n;
  }

  /** Workers the strategy may be offered now. */
  admitted(): Backend[] {
    return this.#backends.filter((b) => b.admits());
  }

  /**
   * Aborts every upstream attempt in flight: streams end (SSE ones with an error event), requests
   * still waiting for a worker are answered 503. For the end of a shutdown's grace period.
   */
  abortInflight(): void {
    const reason = new RouterShutdown();
    for (const d of this.#attempts) d.abort(reason);
  }

  /**
   * Replaces the configuration. Workers are matched by id and url: a kept worker keeps its prefix
   * index, breaker, health mark and in-flight count (its other settings apply from the next
   * request; see `Backend.update`); a new one starts empty; a removed one takes no new request,
   * and its requests in flight finish normally. A changed strategy (name or parameters) is built
   * anew, an unchanged one kept with its state (round-robin position); a changed `chunk_size`
   * empties every prefix index, since the old hashes no longer match. Auth, limits, retries,
   * timeouts and logging apply at once; health checks restart with the new workers. Listener
   * addresses cannot change without a restart: such changes are kept in the new config but listed
   * in `needsRestart`.
   *
   * Everything that can fail (building the strategy) happens before anything changes, so a failed
   * reload leaves the router as it was. Reloads run one at a time.
   *
   * @throws Error when the new config cannot be applied (unknown strategy); nothing changed then.
   */
  reload(next: RouterConfig): Promise<ReloadSummary> {
    const run = this.#reloading.then(() => this.#reload(next));
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(next: RouterConfig): Promise<ReloadSummary> {
    const prev = this.#config;
    const sameStrategy = prev.router.strategy === next.router.strategy &&
      prev.router.minMatchChunks === next.router.minMatchChunks &&
      prev.router.saturationInflight === next.router.saturationInflight &&
      JSON.stringify(prev.router.strategyOptions) === JSON.stringify(next.router.strategyOptions);
    const strategy = sameStrategy ? this.#strategy : strategyFor(next);

    // From here on nothing throws.
    const old = new Map(this.#backends.map((b) => [b.id, b]));
    const summary: ReloadSummary = {
      added: [],
      removed: [],
      kept: [],
      reset: [],
      needsRestart: [],
      strategy: strategy.name,
    };
    const chunkSizeChanged = prev.router.chunkSize !== next.router.chunkSize;
    /** Each new worker's index before the reload (null: a new worker), for the load tracker. */
    const from: (number | null)[] = [];
    const backends = next.workers.map((w, i) => {
      const b = old.get(w.id);
      from.push(b !== undefined && b.url === w.url ? b.index : null);
      if (b !== undefined && b.url === w.url) {
        old.delete(w.id);
        b.index = i;
        for (const what of b.update(w)) summary.reset.push(`${w.id}: ${what}`);
        if (chunkSizeChanged) {
          b.prefix.clear();
          summary.reset.push(`${w.id}: prefix index (chunk_size changed)`);
        }
        summary.kept.push(w.id);
        return b;
      }
      summary.added.push(w.id);
      return new Backend(i, w, this.clock);
    });
    for (const b of old.values()) {
      summary.removed.push(b.id);
      if (b.inflight > 0) this.#retired.add(b);
      b.dispose(); // its requests in flight keep their connections to the end
    }
    summary.needsRestart.push(...restartKeys(prev, next));

    this.#config = next;
    this.#backends = backends;
    this.#strategy = strategy;
    // Indices changed: kept workers keep their load and learned rates under their new index.
    this.#tracker = this.#wireLoad(this.#tracker.remap(from.length > 0 ? from : [null]));
    for (const [id, b] of this.#sessions) if (backends[b.index] !== b) this.#sessions.delete(id);
    this.#auth = new ApiKeyAuth(next.auth.apiKeys, next.auth.protectMetrics);
    if (
      this.#ownLogger &&
      (prev.logging.level !== next.logging.level || prev.logging.format !== next.logging.format)
    ) {
      this.#logger = new Logger(next.logging.level, next.logging.format, this.#logger.sink);
    }
    if (this.#started) {
      await this.#stopHealth();
      // A reload may have raced a stop(); only restart checks that are still wanted.
      if (this.#started) this.#startHealth();
    }
    return summary;
  }

  /** Handles one HTTP request. Never throws. */
  handle = async (req: Request, info: ClientInfo = {}): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    const auth = this.#auth;
    if (auth.enabled && auth.guards(path) && !auth.accepts(req.headers.get("authorization"))) {
      return ApiKeyAuth.unauthorized();
    }
    const route = ROUTES[path];
    if (!route || (path === "/metrics" && !this.#metricsOnMain())) {
      return errorResponse("not_found", `No route for ${req.method} ${path}`);
    }
    if (!route.methods.includes(req.method)) {
      return errorResponse(
        "method_not_allowed",
        `Method ${req.method} is not allowed on ${path}; use ${route.methods.join(", ")}`,
        { headers: { allow: route.methods.join(", ") } },
      );
    }
    try {
      if (route.kind) return await this.#proxy(route.kind, req, url, info);
      switch (path) {
        case "/healthz":
          return Response.json({ status: "ok" });
        case "/readyz":
          return this.readyResponse();
        case "/metrics":
          return await this.metricsResponse();
        default:
          return await this.#models();
      }
    } catch (err) {
      return responseForError(err);
    }
  };

  /**
   * The admin listener's handler: `/metrics` (auth per `auth.protect_metrics`), `/healthz` and
   * `/readyz`; nothing is proxied there.
   */
  handleAdmin = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (path !== "/metrics" && path !== "/healthz" && path !== "/readyz") {
      return errorResponse("not_found", `No route for ${req.method} ${path}`);
    }
    if (req.method !== "GET") {
      return errorResponse(
        "method_not_allowed",
        `Method ${req.method} is not allowed on ${path}; use GET`,
        { headers: { allow: "GET" } },
      );
    }
    const auth = this.#auth;
    if (auth.enabled && auth.guards(path) && !auth.accepts(req.headers.get("authorization"))) {
      return ApiKeyAuth.unauthorized();
    }
    if (path === "/healthz") return Response.json({ status: "ok" });
    if (path === "/readyz") return this.readyResponse();
    try {
      return await this.metricsResponse();
    } catch (err) {
      return responseForError(err);
    }
  };

  #metricsOnMain(): boolean {
    return this.#config.metrics.enabled && this.#config.metrics.addr === null;
  }

  /** 200 while some worker is admitted, else 503. */
  readyResponse(): Response {
    const n = this.admitted().length;
    return n > 0
      ? Response.json({ status: "ready", admitted: n })
      : errorResponse("no_worker", "No worker is admitted");
  }

  /** Prometheus text; per-worker gauges are read at scrape time, off the request path. */
  async metricsResponse(): Promise<Response> {
    // A removed worker's gauges would repeat their last value forever: they go; counters stay.
    const current = new Set(this.#backends.map((b) => b.id));
    for (const id of this.metrics.backendIds()) {
      if (!current.has(id)) this.metrics.forgetBackendGauges(id);
    }
    for (const b of this.#backends) {
      this.metrics.setInflight(b.id, b.inflight);
      this.metrics.setBackendUp(b.id, b.up);
      this.metrics.setBreakerState(b.id, b.breaker.stateCode);
      this.metrics.setPrefixTreeStats(b.id, b.prefix.stats(), b.prefix);
    }
    return new Response(await this.metrics.render(), {
      headers: { "content-type": this.metrics.contentType },
    });
  }

  /** The union of the workers' models; workers that do not answer are skipped. */
  async #models(): Promise<Response> {
    const timeoutMs = this.#config.health.timeoutMs;
    const lists = await Promise.all(this.#backends.map(async (b) => {
      try {
        const headers = b.config.apiKey
          ? { authorization: `Bearer ${b.config.apiKey}` }
          : undefined;
        const res = await fetch(`${b.url}/v1/models`, {
          headers,
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (!res.ok) {
          await res.body?.cancel();
          return [];
        }
        const body = await res.json();
        return Array.isArray(body?.data) ? body.data as { id: string }[] : [];
      } catch {
        return [];
      }
    }));
    const byId = new Map<string, unknown>();
    for (const list of lists) {
      for (const m of list) if (m && typeof m.id === "string" && !byId.has(m.id)) byId.set(m.id, m);
    }
    return Response.json({ object: "list", data: [...byId.values()] });
  }

  async #proxy(kind: Kind, req: Request, url: URL, info: ClientInfo): Promise<Response> {
    const t0 = this.clock.now();
    // One config for the whole request, even if a reload lands meanwhile.
    const config = this.#config;
    const given = req.headers.get("x-request-id");
    const requestId = given && REQUEST_ID_RE.test(given) ? given : crypto.randomUUID();
    const idHeader = { "x-request-id": requestId };
    let strategyName = this.#strategy.name;
    const logger = this.#logger;
    const log = (fields: () => Record<string, unknown>) => {
      // The access log is at info: with it off, build nothing (measured: about 6 µs a request).
      if (!logger.enabled("info")) return;
      logger.info("request", {
        request_id: requestId,
        path: url.pathname,
        strategy: strategyName,
        ...fields(),
        total_ms: round(this.clock.now() - t0),
      });
    };

    let headers: HeaderList;
    let body: Uint8Array<ArrayBuffer>;
    let parsed: ReturnType<typeof parseRequest>;
    try {
      headers = upstreamHeaders(req.headers, {
        clientIp: info.remoteAddr?.hostname ?? "unknown",
        host: req.headers.get("host"),
        proto: url.protocol.replace(":", ""),
        requestId,
        forwardClientAuth: config.auth.forwardClientAuth,
        maxBytes: config.server.maxHeaderBytes,
      });
      body = await readBody(req, config.server.maxBodyBytes, config.server.readTimeoutMs);
      const maxDepth = config.server.maxJsonDepth;
      const scanned = body.length > SCAN_MIN_BYTES;
      if (scanned && jsonTooDeep(body, maxDepth)) throw tooDeepError(maxDepth);
      let json: unknown;
      try {
        json = JSON.parse(decodeUtf8Strict(body));
      } catch (err) {
        throw new RouterError(
          "bad_request",
          err instanceof SyntaxError
            ? `Request body is not valid JSON: ${err.message}`
            : "Request body is not valid UTF-8",
        );
      }
      if (!scanned && valueTooDeep(json, maxDepth)) throw tooDeepError(maxDepth);
      parsed = parseRequest(kind, json);
    } catch (err) {
      const res = responseForError(err, idHeader);
      log(() => ({ status: res.status, error: errorMessage(err) }));
      return res;
    }

    const text = utf8(parsed.text);
    const promptTokens = text.length / BYTES_PER_TOKEN;
    const hashes = chunkHashes(text, config.router.chunkSize);
    const tokensPerChunk = config.router.chunkSize / BYTES_PER_TOKEN;
    const sessionHeader = config.router.sessionHeader;
    const sessionId = sessionHeader === "" ? null : req.headers.get(sessionHeader);
    const maxRetries = config.router.maxRetries;
    const tried = new Set<Backend>();
    let last: Failure | null = null;
    // Set by `failed` (a closure), so declared without narrowing.
    let retryFrom = null as Backend | null;
    /** The worker and reason of the last attempt: named on the router's error answer. */
    let lastBackend: string | null = null;
    let lastReason = "";

    for (let attempt = 0; attempt <= maxRetries; attempt++) {
      // Deciding is synchronous: the list, the strategy and the indices belong to one config.
      const backends = this.#backends;
      const strategy = this.#strategy;
      const tracker = this.#tracker;
      strategyName = strategy.name;
      let backend: Backend;
      let decided: string;
      let match: number;
      const pinned = sessionId === null ? undefined : this.#sessions.get(sessionId);
      if (
        pinned !== undefined && backends[pinned.index] === pinned && !tried.has(pinned) &&
        pinned.admits()
      ) {
        // Session affinity: the pinned worker while it is admitted, whatever the strategy says.
        backend = pinned;
        decided = SESSION_REASON;
        match = pinned.prefix.match(hashes);
      } else {
        const targets = backends.filter((b) => !tried.has(b) && b.admits());
        const decision = decide({
          strategy,
          targets,
          hashes,
          chunkSize: config.router.chunkSize,
          rng: this.rng,
          now: t0,
        });
        if (!decision) break;
        backend = backends[decision.candidate.index];
        decided = decision.reason;
        match = strategy.usesPrefix ? decision.candidate.match : backend.prefix.match(hashes);
      }
      if (sessionId !== null) this.#pin(sessionId, backend);
      // A retry is counted once it actually happens, against the worker that failed.
      if (retryFrom !== null && last !== null) this.metrics.incRetry(retryFrom.id, last.kind);
      retryFrom = null;
      const reason = attempt === 0 ? decided : `retry-after-${decided}`;
      tried.add(backend);
      lastBackend = backend.id;
      lastReason = reason;
      recordDecision(backend, hashes);
      backend.inflight++;
      const probe = backend.breaker.acquire();
      const dispatchedAt = this.clock.now();
      const ticket = tracker.onDispatch(backend.index, promptTokens, match * tokensPerChunk);

      const wc = backend.config;
      const deadlines = AttemptDeadlines.start(backend.deadlines, req.signal);
      this.#attempts.add(deadlines);
      const release = () => {
        deadlines.end();
        this.#attempts.delete(deadlines);
        backend.inflight--;
        tracker.onDone(ticket); // no-op when the response path already settled it
        // A worker a reload removed (and disposed) is held only while its requests run.
        if (this.#retired.size > 0 && backend.inflight === 0) this.#retired.delete(backend);
      };

      /** Records a failed attempt against the worker; a retry may follow. */
      const failed = (f: Failure): Failure => {
        backend.breaker.failure();
        this.#faults.inc(backend.id, f.kind);
        retryFrom = backend;
        this.#logger.warn("upstream failed", {
          request_id: requestId,
          backend: backend.id,
          error: f.message,
        });
        return f;
      };

      let upstream: H1Answer | null = null;
      let reader: BodySource | null = null;
      let first: Uint8Array | null = null;
      let whole = false;
      let sse = false;
      try {
        const h1: H1Pool | null = config.router.upstreamClient === "native" ? backend.h1() : null;
        upstream = h1 !== null
          ? await h1.send(
            "POST",
            backend.basePath + url.pathname,
            withApiKey(headers, wc.apiKey),
            body,
            deadlines.signal,
          )
          : fromFetch(
            await fetch(backend.url + url.pathname, {
              method: "POST",
              headers: withApiKey(headers, wc.apiKey),
              body,
              signal: deadlines.signal,
            }),
          );
        deadlines.headers();
        if (
          upstream.status >= 500 && attempt < maxRetries &&
          this.#backends.some((b) => !tried.has(b) && b.admits())
        ) {
          await upstream.body?.cancel().catch(() => {});
          release();
          last = failed({
            kind: "status-5xx",
            error: "upstream_failed",
            message: `Worker ${backend.id} answered ${upstream.status}`,
          });
          continue;
        }
        sse = isSse(upstream);
        if (upstream.whole !== null && !sse) {
          first = upstream.whole; // complete already: answered below without a JS stream
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
        deadlines.firstByte();
      } catch (err) {
        if (reader) reader.cancel().catch(() => {});
        else upstream?.body?.cancel().catch(() => {});
        const why = deadlines.reason;
        release();
        if (req.signal.aborted || why instanceof RouterShutdown) {
          // The client went away (or the router is closing) before the worker answered: no
          // verdict on the worker.
          backend.breaker.release(probe);
          const gone = req.signal.aborted;
          log(() => ({
            backend: backend.id,
            reason,
            match_chunks: match,
            status: gone ? 499 : 503,
            error: gone ? "client closed request" : "router shutting down",
          }));
          return gone
            ? errorResponse("bad_request", "Client closed request", { headers: idHeader })
            : errorResponse("no_worker", "Router is shutting down", {
              headers: idHeader,
              code: "shutting_down",
            });
        }
        last = failed(classify(why, err, upstream !== null, backend.id));
        continue;
      }

      return this.#respond(upstream, reader, first, whole, sse, {
        backend,
        strategyName,
        reason,
        match,
        t0,
        idHeader,
        release,
        probe,
        deadlines,
        log,
        clientGone: () => req.signal.aborted,
        tracker,
        ticket,
        dispatchedAt,
        tokensPerChunk,
        recordedChunks: hashes.length >>> 1,
      });
    }

    const res = last === null
      ? errorResponse("no_worker", "No worker is available to serve this request", {
        headers: idHeader,
      })
      : errorResponse(last.error, last.message, {
        headers: lastBackend === null ? idHeader : {
          ...idHeader,
          "x-router-backend": lastBackend,
          "x-router-reason": lastReason,
        },
        code: codeOf(last),
      });
    log(() => ({ status: res.status, error: last?.message ?? "no worker admitted" }));
    return res;
  }

  /** Pins `sessionId` to `backend`, most recently used last; the oldest pin goes past the cap. */
  #pin(sessionId: string, backend: Backend): void {
    this.#sessions.delete(sessionId);
    this.#sessions.set(sessionId, backend);
    if (this.#sessions.size > MAX_SESSIONS) {
      this.#sessions.delete(this.#sessions.keys().next().value!);
    }
  }

  /**
   * Settles a finished request in the load tracker, and compares the engine's `cached_tokens`
   * with the router's prediction: the error goes to `router_prefix_prediction_error_tokens`
   * (positive = the router believed more was cached), and a large shortfall shrinks the worker's
   * tree (see `prediction_feedback.ts`).
   */
  #settleLoad(
    ctx: {
      backend: Backend;
      tracker: LoadTracker;
      ticket: LoadTicket;
      dispatchedAt: number;
      tokensPerChunk: number;
      recordedChunks: number;
    },
    r: TapResult,
  ): void {
    const { backend, tracker, ticket } = ctx;
    const usage = r.usage;
    if (usage !== null && usage.cachedTokens !== null) {
      const err = tracker.onUsage(ticket, usage.promptTokens, usage.cachedTokens);
      if (Number.isFinite(err)) {
        this.metrics.observePredictionError(-err);
        const predicted = ticket.predictedCachedTokens;
        const tree = backend.prefix;
        const stats = tree.stats();
        const capacity = nextCapacity(
          {
            capacity: stats.maxChunks,
            configured: backend.config.kvBudget,
            chunks: stats.chunks,
            recorded: ctx.recordedChunks,
          },
          predicted,
          predicted + err,
          ctx.tokensPerChunk,
        );
        if (capacity !== null) {
          tree.resize(capacity);
          this.#logger.debug("prefix tree resized from engine feedback", {
            backend: backend.id,
            predicted_cached: Math.round(predicted),
            reported_cached: Math.round(predicted + err),
            max_chunks: capacity,
          });
        }
      }
    }
    tracker.onDone(ticket, {
      elapsedMs: this.clock.now() - ctx.dispatchedAt,
      completionTokens: usage?.completionTokens,
    });
  }

  #respond(
    upstream: H1Answer,
    reader: BodySource | null,
    first: Uint8Array | null,
    whole: boolean,
    sse: boolean,
    ctx: {
      backend: Backend;
      strategyName: string;
      reason: string;
      match: number;
      t0: number;
      idHeader: Record<string, string>;
      release: () => void;
      /** The breaker's probe token of this attempt (0: not a probe), for `breaker.release`. */
      probe: number;
      deadlines: AttemptDeadlines;
      log: (fields: () => Record<string, unknown>) => void;
      clientGone: () => boolean;
      tracker: LoadTracker;
      ticket: LoadTicket;
      dispatchedAt: number;
      tokensPerChunk: number;
      recordedChunks: number;
    },
  ): Response {
    const { backend, reason, match, t0, deadlines } = ctx;
    const status = upstream.status;
    const headers = downstreamHeaders(upstream.headers);
    headers.push(
      ["x-router-backend", backend.id],
      ["x-router-reason", reason],
      ["x-request-id", ctx.idHeader["x-request-id"]],
    );
    if (status < 500) backend.breaker.success();

    const done = (tapped: TapResult) => {
      this.#settleLoad(ctx, tapped);
      ctx.release();
      const shutdown = deadlines.reason instanceof RouterShutdown;
      // A client that disconnects aborts the upstream fetch too; count that as the client's doing.
      const r: TapResult = ctx.clientGone() && tapped.outcome === "error"
        ? { ...tapped, outcome: "cancelled" }
        : tapped;
      if (r.outcome === "cancelled" || (shutdown && r.outcome === "error")) {
        backend.breaker.release(ctx.probe);
      } else if (r.outcome === "error") {
        backend.breaker.failure();
        this.#faults.inc(backend.id, classify(deadlines.reason, r.error, true, backend.id).kind);
      } else if (status >= 500) {
        backend.breaker.failure();
        this.#faults.inc(backend.id, "status-5xx");
      }
      const cachedTokens = r.usage?.cachedTokens ?? null;
      if (r.usage) {
        this.metrics.addUpstreamTokens(backend.id, r.usage.promptTokens, cachedTokens ?? 0);
      }
      const totalS = (this.clock.now() - t0) / 1000;
      this.metrics.observeRequest({
        strategy: ctx.strategyName,
        backend: backend.id,
        reason,
        status: r.outcome === "cancelled" ? 499 : status,
        durationS: totalS,
        ttfbS: r.firstByteMs === null ? null : r.firstByteMs / 1000,
        matchChunks: match,
        bytes: r.bytes,
        cacheHit: match > 0,
      });
      ctx.log(() => ({
        backend: backend.id,
        reason,
        match_chunks: match,
        status: r.outcome === "cancelled" ? 499 : status,
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
    };

    if (isNullBodyStatus(status) || first === null || (reader === null && !whole)) {
      // No body, or a status Fetch gives none (a 205 may still come framed with
      // `content-length: 0`): whatever the worker sent for it is dropped.
      reader?.cancel().catch(() => {});
      done({
        outcome: "done",
        bytes: 0,
        firstByteMs: null,
        firstTokenMs: null,
        usage: null,
        error: null,
      });
      return new Response(null, { status, statusText: upstream.statusText, headers });
    }
    if (whole || reader === null) {
      // The whole non-SSE answer came with its head: the same accounting, no stream either side.
      done(tapWhole(first, {
        now: () => this.clock.now(),
        start: t0,
        onFirstToken: () =>
          ctx.tracker.onFirstToken(ctx.ticket, this.clock.now() - ctx.dispatchedAt),
      }));
      return new Response(first as Uint8Array<ArrayBuffer>, {
        status,
        statusText: upstream.statusText,
        headers,
      });
    }
    const body = tapReader(reader, first, {
      now: () => this.clock.now(),
      start: t0,
      sse,
      onChunk: () => deadlines.chunk(),
      onFirstToken: () => ctx.tracker.onFirstToken(ctx.ticket, this.clock.now() - ctx.dispatchedAt),
      errorEvent: (err) => {
        const f = midStreamFailure(deadlines.reason, err, backend.id);
        return errorBody(f.error, f.message, null, codeOf(f));
      },
      onDone: done,
    });
    try {
      return new Response(body, { status, statusText: upstream.statusText, headers });
    } catch (err) {
      // The client validates the worker's head, so this should not happen; if it does, the tap's
      // cancel settles the attempt (in-flight, deadlines, connection) before the error surfaces.
      body.cancel(err).catch(() => {});
      throw err;
    }
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

/** Whether the worker answered with an event stream. */
function isSse(a: H1Answer): boolean {
  return headerValue(a.headers, "content-type")?.startsWith("text/event-stream") ?? false;
}

function strategyFor(config: RouterConfig): Strategy {
  return createStrategy(config.router.strategy, {
    minMatchChunks: config.router.minMatchChunks,
    saturationInflight: config.router.saturationInflight,
    options: config.router.strategyOptions,
  });
}

/** Classifies a failed attempt from its deadline's abort reason and the error thrown. */
function classify(reason: unknown, err: unknown, gotHeaders: boolean, id: string): Failure {
  if (reason instanceof UpstreamTimeout) {
    return { kind: reason.kind, error: "timeout", message: reason.message };
  }
  if (reason instanceof UpstreamUnreachable) {
    return { kind: "connect-error", error: "upstream_failed", message: reason.message };
  }
  if (reason instanceof RouterShutdown) {
    return {
      kind: "stream-error",
      error: "no_worker",
      message: reason.message,
      code: "shutting_down",
    };
  }
  return gotHeaders
    ? {
      kind: "stream-error",
      error: "upstream_failed",
      message: `Worker ${id} failed before its first byte: ${errorMessage(err)}`,
    }
    : {
      kind: "connect-error",
      error: "upstream_failed",
      message: `Worker ${id} failed: ${errorMessage(err)}`,
    };
}

/** Classifies a body that broke after the response started. */
function midStreamFailure(reason: unknown, err: unknown, id: string): Failure {
  if (reason instanceof UpstreamTimeout || reason instanceof RouterShutdown) {
    return classify(reason, err, true, id);
  }
  return {
    kind: "stream-error",
    error: "upstream_failed",
    message: `Worker ${id} failed mid-stream: ${errorMessage(err)}`,
  };
}

/** OpenAI `code` of a failure's answer. */
function codeOf(f: Failure): string {
  return f.code ?? f.kind.replaceAll("-", "_");
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
