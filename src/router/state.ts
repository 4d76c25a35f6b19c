/**
 * The router's mutable state, shared by the request stages: the configuration in force, the
 * workers, the strategy, the load tracker and the session pins, plus the process-wide
 * collaborators (clock, random source, metrics, logger). `Router` owns one and replaces its fields
 * on reload; a stage reads the fields it needs when it runs, so one attempt sees one consistent
 * set (deciding is synchronous).
 *
 * @module
 */

import type { RouterConfig } from "../config/types.ts";
import { RouterMetrics } from "../metrics/mod.ts";
import type { AttemptDeadlines } from "../proxy/deadlines.ts";
import { createStrategy } from "../strategies/mod.ts";
import type { Strategy } from "../strategies/types.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { type Rng, SeededRng } from "../util/rng.ts";
import { FlowControl } from "./admission.ts";
import { ApiKeyAuth } from "./auth.ts";
import { FaultMetrics } from "./fault_metrics.ts";
import { LoadTracker } from "./load_tracker.ts";
import { Logger } from "./logger.ts";
import { Backend } from "./pool.ts";
import { PreciseMode } from "./precise.ts";
import { createTracer, type Tracer } from "../telemetry/mod.ts";
import { ResponseOwners } from "./response_ids.ts";
import { SessionPins } from "./sessions.ts";

/** What the request stages read and update; see the module comment. */
export interface RouterState {
  readonly clock: Clock;
  readonly rng: Rng;
  readonly metrics: RouterMetrics;
  readonly faults: FaultMetrics;
  config: RouterConfig;
  logger: Logger;
  auth: ApiKeyAuth;
  /** The current workers, in config order (`Backend.index` is the position here). */
  backends: Backend[];
  strategy: Strategy;
  /** Per-worker load accounting and learned rates, for cost-model strategies and feedback. */
  tracker: LoadTracker;
  readonly sessions: SessionPins<Backend>;
  /** Workers a reload removed while requests were still in flight on them. */
  readonly retired: Set<Backend>;
  /** Deadlines of the attempts in flight, for `abortInflight`. */
  readonly attempts: Set<AttemptDeadlines>;
  /** Set when a shutdown began: `/readyz` answers 503 while requests are still served. */
  draining: boolean;
  /** Responses API: response id → the worker that made it (and holds it). */
  readonly responses: ResponseOwners<Backend>;
  /** Precise mode (`router.index: precise`), or null. */
  readonly precise: PreciseMode | null;
  /** Spans of requests and attempts (a no-op tracer when `tracing.endpoint` is ""). */
  readonly tracer: Tracer;
  /** Flow control (`flow:`): the router queue and tenant limits; does nothing while off. */
  readonly flow: FlowControl;
}

/** Injected collaborators of a router. */
export interface RouterDeps {
  readonly clock?: Clock;
  readonly rng?: Rng;
  readonly logger?: Logger;
  readonly metrics?: RouterMetrics;
}

/** A router's state for `config`: its workers built, nothing started. */
export function newRouterState(config: RouterConfig, deps: RouterDeps = {}): RouterState {
  const clock = deps.clock ?? systemClock;
  const metrics = deps.metrics ?? new RouterMetrics();
  const share = indexShare(config);
  const backends = config.workers.map((w, i) => new Backend(i, w, clock, share));
  const logger = deps.logger ?? new Logger(config.logging.level, config.logging.format);
  const precise = config.router.index === "precise" ? new PreciseMode(config, clock, logger) : null;
  precise?.attach(backends, logger);
  const state: RouterState = {
    clock,
    rng: deps.rng ??
      new SeededRng(config.router.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]),
    metrics,
    faults: new FaultMetrics(metrics.registry, clock),
    config,
    logger,
    auth: new ApiKeyAuth(config.auth.apiKeys, config.auth.protectMetrics),
    backends,
    strategy: strategyFor(config),
    tracker: new LoadTracker({ workers: Math.max(1, backends.length) }),
    sessions: new SessionPins<Backend>(),
    retired: new Set(),
    attempts: new Set(),
    draining: false,
    responses: new ResponseOwners<Backend>(),
    precise,
    tracer: createTracer(config.tracing),
    flow: new FlowControl(config.flow, {
      backends: () => state.backends,
      registry: metrics.registry,
      clock,
    }),
  };
  wireLoad(state);
  return state;
}

/** Hands the workers the tracker's figures when the strategy reads load (after any swap). */
export function wireLoad(state: RouterState): void {
  const tracker = state.tracker;
  const source = state.strategy.usesLoad ? (i: number) => tracker.load(i) : null;
  for (const b of state.backends) b.loadSource = source;
}

/** The strategy `config` names, built with its parameters. */
export function strategyFor(config: RouterConfig): Strategy {
  return createStrategy(config.router.strategy, {
    minMatchChunks: config.router.minMatchChunks,
    saturationInflight: config.router.saturationInflight,
    options: config.router.strategyOptions,
  });
}

/** Each worker's share of `router.index_max_bytes`, bytes. */
export function indexShare(config: RouterConfig): number {
  return config.router.indexMaxBytes / Math.max(1, config.workers.length);
}
