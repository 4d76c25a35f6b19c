/**
 * Prometheus metrics of replica sync, read from `PrefixSync.stats()` at scrape time (nothing on
 * the request path). Registered on the router's own registry (`RouterMetrics.registry`):
 *
 * - `router_sync_connected` gauge: 1 while both Redis connections are ready, else 0
 * - `router_sync_records_total{result}` counter: `published`, `applied`, `ignored`, `dropped`
 * - `router_sync_queue_records` gauge: local records waiting for Redis
 * - `router_sync_disconnects_total` counter
 * - `router_sync_apply_lag_seconds` gauge: age of the last applied record when applied
 *
 * @module
 */

import { Counter, Gauge, type Registry } from "prom-client";
import type { PrefixSyncStats } from "./types.ts";

const RESULTS = ["published", "applied", "ignored", "dropped"] as const;

/**
 * Registers the sync metrics on `registry`, reading `stats()` at each scrape. `stats` may return
 * null (sync off or not started yet): the gauges then read 0 and the counters do not move.
 */
export function registerSyncMetrics(
  registry: Registry,
  stats: () => PrefixSyncStats | null,
): void {
  const registers = [registry];
  new Gauge({
    name: "router_sync_connected",
    help: "1 while this replica's Redis sync is connected, else 0",
    registers,
    collect() {
      this.set(stats()?.connected ? 1 : 0);
    },
  });
  new Gauge({
    name: "router_sync_queue_records",
    help: "Routing records waiting to be written to Redis",
    registers,
    collect() {
      this.set(stats()?.queued ?? 0);
    },
  });
  new Gauge({
    name: "router_sync_apply_lag_seconds",
    help: "Age of the last applied record when it was applied (publisher clock)",
    registers,
    collect() {
      this.set((stats()?.lastLagMs ?? 0) / 1000);
    },
  });
  // Counters move by the difference since the last scrape; a new PrefixSync (counts from 0)
  // starts a new baseline instead of moving them backwards.
  const last: Record<string, number> = {};
  const advance = (c: Counter<string>, key: string, value: number, labels?: object) => {
    const prev = last[key] ?? 0;
    if (value > prev) {
      if (labels) c.inc(labels as Record<string, string>, value - prev);
      else c.inc(value - prev);
    }
    last[key] = value;
  };
  new Counter({
    name: "router_sync_records_total",
    help: "Routing records by result: published, applied (from other replicas), ignored, dropped",
    labelNames: ["result"],
    registers,
    collect() {
      const s = stats();
      if (s) { for (const r of RESULTS) advance(this, r, s[r], { result: r }); }
    },
  });
  new Counter({
    name: "router_sync_disconnects_total",
    help: "Times this replica's Redis sync went from connected to disconnected",
    registers,
    collect() {
      const s = stats();
      if (s) advance(this, "disconnects", s.disconnects);
    },
  });
}
