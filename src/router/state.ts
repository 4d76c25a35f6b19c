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
import type { RouterMetrics } from "../metrics/mod.ts";
import type { AttemptDeadlines } from "../proxy/deadlines.ts";
import type { Strategy } from "../strategies/types.ts";
import type { Clock } from "../util/clock.ts";
import type { Rng } from "../util/rng.ts";
import type { ApiKeyAuth } from "./auth.ts";
import type { FaultMetrics } from "./fault_metrics.ts";
import type { LoadTracker } from "./load_tracker.ts";
import type { Logger } from "./logger.ts";
import type { Backend } from "./pool.ts";
import type { SessionPins } from "./sessions.ts";

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
}
