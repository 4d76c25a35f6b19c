/**
 * Per-worker gauges of the engines' own load signals (`health.scrape_metrics`, issue 20), set at
 * scrape time of the router's `/metrics` from each worker's last engine reading:
 *
 * - `router_engine_waiting_requests{backend}`: requests queued in the engine (vLLM
 *   `vllm:num_requests_waiting`, SGLang `sglang:num_queue_reqs`, llama-server deferred requests)
 * - `router_engine_running_requests{backend}`: requests in the engine's running batch
 * - `router_engine_kv_usage_ratio{backend}`: KV cache in use, 0..1
 * - `router_engine_signal_age_seconds{backend}`: age of the last good scrape
 * - `router_engine_scrape_failures{backend}`: failed scrapes since the last good one
 *
 * The three figures are the ones routing reads: present only while fresh (and exported by the
 * engine), removed once stale, so a dead `/metrics` never reads as a current load; the age and the
 * failure count stay, to say why. Nothing is exported for a worker while scraping is off, and a
 * worker a reload removed loses its series. `backend` is bounded by the configured workers.
 *
 * Cost: a few gauge sets per worker per `/metrics` scrape; nothing on the request path.
 *
 * @module
 */

import { Gauge, type Registry } from "prom-client";
import type { EngineReading } from "../backends/engine_scraper.ts";
import type { EngineLoad } from "../strategies/types.ts";

/** What the gauges read of one worker. */
export interface EngineSignalSource {
  readonly id: string;
  /** The figures routing reads, while fresh; undefined when stale or absent. */
  readonly engine: EngineLoad | undefined;
  /** The scraper's last reading; undefined while scraping is off. */
  readonly engineReading: EngineReading | undefined;
}

/** The engine-signal families of one router; see the module comment. */
export class EngineSignalMetrics {
  readonly #waiting: Gauge<"backend">;
  readonly #running: Gauge<"backend">;
  readonly #kv: Gauge<"backend">;
  readonly #age: Gauge<"backend">;
  readonly #failures: Gauge<"backend">;
  /** Workers with series now. */
  #known = new Set<string>();

  constructor(registry: Registry) {
    const gauge = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: ["backend"], registers: [registry] });
    this.#waiting = gauge(
      "router_engine_waiting_requests",
      "Requests waiting in the backend's engine queue, as its metrics report them (fresh only)",
    );
    this.#running = gauge(
      "router_engine_running_requests",
      "Requests in the backend's engine running batch, as its metrics report them (fresh only)",
    );
    this.#kv = gauge(
      "router_engine_kv_usage_ratio",
      "KV cache in use in the backend's engine, 0..1, as its metrics report it (fresh only)",
    );
    this.#age = gauge(
      "router_engine_signal_age_seconds",
      "Age of the last good scrape of the backend's engine metrics",
    );
    this.#failures = gauge(
      "router_engine_scrape_failures",
      "Failed scrapes of the backend's engine metrics since the last good one",
    );
  }

  /** Sets the gauges of `workers` at clock time `now` (ms, the scraper's clock). */
  update(workers: readonly EngineSignalSource[], now: number): void {
    const seen = new Set<string>();
    for (const w of workers) {
      const r = w.engineReading;
      if (r === undefined) continue;
      seen.add(w.id);
      this.#failures.labels(w.id).set(r.failures);
      if (r.at > -Infinity) this.#age.labels(w.id).set(Math.max(0, now - r.at) / 1000);
      else this.#age.remove(w.id);
      const e = w.engine;
      this.#figure(this.#waiting, w.id, e?.waiting);
      this.#figure(this.#running, w.id, e?.running);
      this.#figure(this.#kv, w.id, e?.kvUsage);
    }
    for (const id of this.#known) if (!seen.has(id)) this.#forget(id);
    this.#known = seen;
  }

  #figure(g: Gauge<"backend">, id: string, v: number | undefined): void {
    if (v !== undefined && v >= 0 && v < Infinity) g.labels(id).set(v);
    else g.remove(id);
  }

  #forget(id: string): void {
    for (const g of [this.#waiting, this.#running, this.#kv, this.#age, this.#failures]) {
      g.remove(id);
    }
  }
}
