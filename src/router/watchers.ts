/**
 * The router's background loops over its workers, started and stopped together (`Router.start`,
 * `stop`, and around a reload): health checks (`health.interval`), the model refresher for
 * workers without configured `models` (at the health interval), and the engine scraper
 * (`health.scrape_metrics`) whose load signals the workers read. Each reads the router state's
 * current workers when it starts, so a reload restarts them.
 *
 * @module
 */

import { HealthChecker } from "../backends/mod.ts";
import { EngineScraper, type ScrapeTarget } from "../backends/engine_scraper.ts";
import { ModelRefresher } from "./model_refresh.ts";
import type { Backend } from "./pool.ts";
import type { RouterState } from "./state.ts";

/** Health checks, model refresher and engine scraper of one router. */
export class WorkerWatch {
  readonly #s: RouterState;
  #health: HealthChecker | null = null;
  #models: ModelRefresher | null = null;
  #scraper: EngineScraper | null = null;

  constructor(state: RouterState) {
    this.#s = state;
  }

  /** Starts what is configured and not running yet. */
  start(): void {
    this.#startHealth();
    this.#startModels();
    this.#startScraper();
  }

  /** Stops all three; safe to call when they are not running. */
  async stop(): Promise<void> {
    await Promise.all([this.#stopHealth(), this.#stopModels(), this.#stopScraper()]);
  }

  /** Reads every worker's models now (tests, and the first answers after a start). */
  async refreshModels(): Promise<void> {
    await this.#models?.refresh();
  }

  /** Reads the engines' own load signals (`health.scrape_metrics`) and hands them to the workers. */
  #startScraper(): void {
    const s = this.#s;
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
    for (const b of this.#s.backends) b.engineSource = null;
    if (sc) await sc.stop();
  }

  /**
   * Learns the served models of the workers without `models` in their config, at the health
   * interval; with health checks off (`health.interval: 0s`) nothing is learned, and such workers
   * stay "unknown" (they take any model's requests).
   */
  #startModels(): void {
    const s = this.#s;
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

  #startHealth(): void {
    const s = this.#s;
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
