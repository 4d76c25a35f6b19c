/**
 * The router: its configuration, state and lifecycle (start, reload, health checks, shutdown), and
 * `handle`, which looks a request up in the endpoint table (`endpoints.ts`) and hands it to the
 * proxy pipeline (`proxy.ts`: parse → candidates → choose → attempt → relay, settled once) or to
 * one of the router's own handlers (`local.ts`).
 *
 * Reload: `reload(config)` swaps in a new configuration between two requests; see its comment.
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import { HealthChecker } from "../backends/mod.ts";
import { EngineScraper, type ScrapeTarget } from "../backends/engine_scraper.ts";
import type { Reply, ServerRequest } from "../http/types.ts";
import { RouterMetrics } from "../metrics/mod.ts";
import type { Strategy } from "../strategies/types.ts";
import type { Clock } from "../util/clock.ts";
import { errorReply, replyForError } from "../util/errors.ts";
import type { Rng } from "../util/rng.ts";
import { ApiKeyAuth } from "./auth.ts";
import {
  ADMIN_ENDPOINTS,
  type Endpoint,
  endpointFor,
  ENDPOINTS,
  passthroughEndpoint,
  type ProxyEndpoint,
} from "./endpoints.ts";
import { registerPreciseMetrics } from "../metrics/precise_metrics.ts";
import { registerTraceMetrics } from "../metrics/trace_metrics.ts";
import type { Tracer } from "../telemetry/mod.ts";
import { ModelRefresher } from "./model_refresh.ts";
import type { PreciseMode } from "./precise.ts";
import { RouterShutdown } from "./failures.ts";
import { debugOnMain, debugRoute, debugWorkers, isDebug } from "./debug.ts";
import { healthz, metrics, model, models, readyz } from "./local.ts";
import { Logger } from "./logger.ts";
import { Backend } from "./pool.ts";
import { proxy } from "./proxy.ts";
import { applyWorkers, type ReloadSummary, sameStrategy } from "./reload.ts";
import { causeOfStatus, countAnswer, NONE } from "./request_metrics.ts";
import {
  newRouterState,
  type RouterDeps,
  type RouterState,
  strategyFor,
  wireLoad,
} from "./state.ts";

export type { RouterDeps } from "./state.ts";

export { RouterShutdown } from "./failures.ts";
export type { ReloadSummary } from "./reload.ts";
export { SESSION_REASON } from "./choose.ts";

/** The request handler and the state it routes with. */
export class Router {
  readonly metrics: RouterMetrics;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly #state: RouterState;
  readonly #ownLogger: boolean;
  #health: HealthChecker | null = null;
  #models: ModelRefresher | null = null;
  #scraper: EngineScraper | null = null;
  /** Rows of `router.passthrough_paths`, rebuilt on reload. */
  #passthrough: Map<string, ProxyEndpoint>;
  #started = false;
  #reloading: Promise<unknown> = Promise.resolve();

  constructor(config: RouterConfig, deps: RouterDeps = {}) {
    this.#ownLogger = deps.logger === undefined;
    this.#state = newRouterState(config, deps);
    this.#passthrough = passthroughOf(config);
    this.clock = this.#state.clock;
    this.rng = this.#state.rng;
    this.metrics = this.#state.metrics;
    if (this.#state.precise !== null) {
      registerPreciseMetrics(this.metrics.registry, this.#state.precise);
    }
    if (this.metrics.registry.getSingleMetric("router_trace_spans_exported_total") === undefined) {
      registerTraceMetrics(this.metrics.registry, () => this.#state.tracer);
    }
  }

  /** Sessions pinned to a worker now. */
  get pinnedSessions(): number {
    return this.#state.sessions.size;
  }

  /** The configuration in force (the latest one reloaded). */
  get config(): RouterConfig {
    return this.#state.config;
  }

  /** The current workers, in config order. */
  get backends(): readonly Backend[] {
    return this.#state.backends;
  }

  get strategy(): Strategy {
    return this.#state.strategy;
  }

  get logger(): Logger {
    return this.#state.logger;
  }

  /** Workers a reload removed while they had requests in flight: held until the last one ends. */
  get retiredWorkers(): number {
    return this.#state.retired.size;
  }

  /** Requests in flight over all workers, including workers a reload removed. */
  get inflight(): number {
    let n = 0;
    for (const b of this.#state.backends) n += b.inflight;
    for (const b of this.#state.retired) n += b.inflight;
    return n;
  }

  /** Workers the strategy may be offered now. */
  admitted(): Backend[] {
    return this.#state.backends.filter((b) => b.admits());
  }

  /**
   * What must be ready before the first request: precise mode's local tokenizers (file reads and
   * parsing). `startRouter` awaits it before it listens.
   * @throws Error when a configured tokenizer cannot be loaded
   */
  async init(): Promise<void> {
    await this.#state.precise?.loadTokenizers(this.#state.config.tokenizers);
  }

  /**
   * Starts health checks (when configured), the model refresher, the engine scraper, KV-event
   * subscriptions, the event-loop lag sampler and the router queue's tick.
   */
  start(): void {
    this.#started = true;
    this.#state.metrics.start();
    this.#startHealth();
    this.#startModels();
    this.#startScraper();
    this.#state.precise?.start();
    this.#state.flow.start();
  }

  /**
   * Stops what `start` started. In-flight requests are not touched; requests waiting in the
   * router queue still go as workers free up.
   */
  async stop(): Promise<void> {
    this.#started = false;
    this.#state.metrics.stop();
    this.#state.flow.stop();
    await Promise.all([
      this.#stopHealth(),
      this.#stopModels(),
      this.#stopScraper(),
      this.#state.precise?.stop(),
    ]);
  }

  /** Reads the engines' own load signals (`health.scrape_metrics`) and hands them to the workers. */
  #startScraper(): void {
    const s = this.#state;
    if (!s.config.health.scrapeMetrics || this.#scraper !== null) return;
    const scraper = new EngineScraper({
      targets: scrapeTargets(s.backends),
      intervalMs: s.config.health.scrapeIntervalMs,
      timeoutMs: s.config.health.timeoutMs,
      clock: s.clock,
    });
    this.#scraper = scraper;
    for (const b of s.backends) b.engineSource = scraper;
    scraper.start();
  }

  async #stopScraper(): Promise<void> {
    const sc = this.#scraper;
    this.#scraper = null;
    for (const b of this.#state.backends) b.engineSource = null;
    if (sc) await sc.stop();
  }

  /** The tracer of requests and attempts (a no-op one while `tracing.endpoint` is ""). */
  get tracer(): Tracer {
    return this.#state.tracer;
  }

  /** Precise mode's index, subscriptions and tokenizers; null in approximate mode. */
  get precise(): PreciseMode | null {
    return this.#state.precise;
  }

  /**
   * Learns the served models of the workers without `models` in their config, at the health
   * interval; with health checks off (`health.interval: 0s`) nothing is learned, and such workers
   * stay "unknown" (they take any model's requests).
   */
  #startModels(): void {
    const s = this.#state;
    const targets = s.backends.filter((b) => b.config.models === null);
    if (targets.length === 0 || this.#models || s.config.health.intervalMs <= 0) return;
    this.#models = new ModelRefresher({
      targets,
      intervalMs: s.config.health.intervalMs,
      timeoutMs: s.config.health.timeoutMs,
      onError: (id, error) => s.logger.debug("worker models not read", { backend: id, error }),
      onChange: (id, models) => {
        s.logger.info("worker models", { backend: id, models });
        s.flow.freed(); // requests for a model this worker now serves may go
      },
    });
    this.#models.start();
  }

  async #stopModels(): Promise<void> {
    const m = this.#models;
    this.#models = null;
    if (m) await m.stop();
  }

  /** Reads every worker's models now (tests, and the first answers after a start). */
  async refreshModels(): Promise<void> {
    await this.#models?.refresh();
  }

  #startHealth(): void {
    const s = this.#state;
    if (s.config.health.intervalMs <= 0 || this.#health) return;
    const backends = s.backends;
    const health = new HealthChecker({
      targets: backends.map((b) => ({
        id: b.id,
        url: b.url,
        breaker: b.breaker,
        apiKey: b.config.apiKey ?? undefined,
      })),
      intervalMs: s.config.health.intervalMs,
      timeoutMs: s.config.health.timeoutMs,
      path: s.config.health.path,
      onResult: (id, up, err) => {
        const b = backends.find((x) => x.id === id);
        if (!b) return;
        if (b.up !== up) {
          s.logger.warn(up ? "worker is up" : "worker is down", {
            backend: id,
            error: err === undefined ? undefined : String(err),
          });
        }
        b.up = up;
        if (up) s.flow.freed(); // a worker back up takes requests from the router queue
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
    this.#state.flow.close();
    for (const b of this.#state.backends) b.dispose();
    for (const b of this.#state.retired) b.dispose();
  }

  /** Starts a shutdown's drain: `/readyz` answers 503 from now on; requests are still served. */
  drain(): void {
    this.#state.draining = true;
  }

  /**
   * Aborts every upstream attempt in flight: streams end (SSE ones with an error event), requests
   * still waiting for a worker (or in the router queue) are answered 503. For the end of a
   * shutdown's grace period.
   */
  abortInflight(): void {
    this.#state.flow.close();
    const reason = new RouterShutdown();
    for (const d of this.#state.attempts) d.abort(reason);
  }

  /**
   * Replaces the configuration (workers as `reload.ts` says). A changed strategy (name or
   * parameters) is built anew, an unchanged one kept with its state (round-robin position). Auth,
   * limits, retries, timeouts and logging apply at once; health checks restart with the new
   * workers. Listener addresses cannot change without a restart: such changes are kept in the new
   * config but listed in `needsRestart`.
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
    const s = this.#state;
    const prev = s.config;
    const strategy = sameStrategy(prev, next) ? s.strategy : strategyFor(next);
    // From here on nothing throws.
    const summary = applyWorkers(s, next, strategy);
    wireLoad(s);
    s.flow.update(next.flow); // new bounds and limits; workers added may take queued requests
    s.auth = new ApiKeyAuth(next.auth.apiKeys, next.auth.protectMetrics);
    if (
      this.#ownLogger &&
      (prev.logging.level !== next.logging.level || prev.logging.format !== next.logging.format)
    ) {
      s.logger = new Logger(next.logging.level, next.logging.format, s.logger.sink);
    }
    this.#passthrough = passthroughOf(next);
    if (this.#started) {
      await Promise.all([this.#stopHealth(), this.#stopModels(), this.#stopScraper()]);
      // A reload may have raced a stop(); only restart checks that are still wanted.
      if (this.#started) {
        this.#startHealth();
        this.#startModels();
        this.#startScraper();
      }
    }
    return summary;
  }

  /** Handles one request of the main listener. Never throws. */
  handle = (req: ServerRequest): Promise<Reply> => {
    const endpoint = endpointFor(ENDPOINTS, req.path, this.#passthrough);
    return this.#answer(req, endpoint, false);
  };

  /**
   * The admin listener's handler: `/metrics` (auth per `auth.protect_metrics`), `/healthz` and
   * `/readyz`; nothing is proxied there.
   */
  handleAdmin = (req: ServerRequest): Promise<Reply> => {
    const endpoint = endpointFor(ADMIN_ENDPOINTS, req.path);
    return this.#answer(req, endpoint, true);
  };

  /**
   * Denies or serves `req`; every answer but the proxy pipeline's (which counts its own when it is
   * over) is counted here, once.
   */
  async #answer(req: ServerRequest, endpoint: Endpoint | undefined, admin: boolean) {
    const s = this.#state;
    const denied = this.#deny(req, endpoint, admin);
    if (denied !== null) {
      const route = denied.status === 404 ? NONE : endpoint?.name ?? NONE;
      countAnswer(s, route, denied.status, causeOfStatus(denied.status));
      return denied;
    }
    try {
      const reply = await this.#serve(endpoint!, req);
      if (endpoint!.serve !== "proxy") countAnswer(s, endpoint!.name, reply.status, "local");
      return reply;
    } catch (err) {
      const reply = replyForError(err);
      countAnswer(s, endpoint!.name, reply.status, causeOfStatus(reply.status));
      return reply;
    }
  }

  /** The answer to a request that may not go further (auth, unknown path, method), or null. */
  #deny(req: ServerRequest, endpoint: Endpoint | undefined, admin = false): Reply | null {
    const s = this.#state;
    const path = req.path;
    // The admin listener checks the path and method first: its paths are few and never secret.
    const known = endpoint !== undefined &&
      (admin || path !== "/metrics" ||
        (s.config.metrics.enabled && s.config.metrics.addr === null)) &&
      (admin || !isDebug(endpoint) || debugOnMain(s));
    if (
      !admin && s.auth.enabled && s.auth.guards(path) &&
      !s.auth.accepts(req.header("authorization"))
    ) {
      return ApiKeyAuth.unauthorized();
    }
    if (!known || endpoint === undefined) {
      return errorReply("not_found", `No route for ${req.method} ${path}`);
    }
    if (!endpoint.methods.includes(req.method)) {
      const allow = endpoint.methods.join(", ");
      return errorReply(
        "method_not_allowed",
        `Method ${req.method} is not allowed on ${path}; use ${allow}`,
        { headers: [["allow", allow]] },
      );
    }
    if (
      admin && s.auth.enabled && s.auth.guards(path) && !s.auth.accepts(req.header("authorization"))
    ) {
      return ApiKeyAuth.unauthorized();
    }
    return null;
  }

  #serve(endpoint: Endpoint, req: ServerRequest): Reply | Promise<Reply> {
    const s = this.#state;
    switch (endpoint.serve) {
      case "proxy":
        return proxy(s, req, endpoint);
      case "healthz":
        return healthz();
      case "readyz":
        return readyz(s);
      case "metrics":
        return metrics(s);
      case "models":
        return models(s);
      case "model":
        return model(s, req.path);
      case "debug-workers":
        return debugWorkers(s);
      case "debug-route":
        return debugRoute(s, req);
    }
  }
}

/** What the engine scraper reads: each worker's `metrics_url`, else `<url>/metrics`. */
function scrapeTargets(backends: readonly Backend[]): ScrapeTarget[] {
  return backends.map((b) => ({
    id: b.id,
    url: b.config.metricsUrl ?? b.url,
    path: b.config.metricsUrl === null ? "/metrics" : "",
    apiKey: b.config.apiKey,
  }));
}

/** The rows of `config`'s `router.passthrough_paths` (a fixed endpoint's path is never one). */
function passthroughOf(config: RouterConfig): Map<string, ProxyEndpoint> {
  const out = new Map<string, ProxyEndpoint>();
  for (const p of config.router.passthroughPaths) {
    if (!Object.hasOwn(ENDPOINTS, p)) out.set(p, passthroughEndpoint(p));
  }
  return out;
}
