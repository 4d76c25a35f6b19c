import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { registerSyncMetrics } from "./metrics.ts";
import type { PrefixSyncStats } from "./types.ts";

const base: PrefixSyncStats = {
  connected: true,
  published: 5,
  applied: 9,
  ignored: 1,
  dropped: 0,
  queued: 2,
  disconnects: 1,
  lastLagMs: 1500,
};

function value(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  assert.ok(line, `no series ${series} in\n${text}`);
  return Number(line.slice(series.length + 1));
}

Deno.test("registerSyncMetrics exposes the sync's numbers at scrape time", async () => {
  const registry = new Registry();
  let stats: PrefixSyncStats | null = null;
  registerSyncMetrics(registry, () => stats);
  let text = await registry.metrics();
  assert.equal(value(text, "router_sync_connected"), 0, "sync off");

  stats = base;
  text = await registry.metrics();
  assert.equal(value(text, "router_sync_connected"), 1);
  assert.equal(value(text, "router_sync_queue_records"), 2);
  assert.equal(value(text, "router_sync_apply_lag_seconds"), 1.5);
  assert.equal(value(text, 'router_sync_records_total{result="published"}'), 5);
  assert.equal(value(text, 'router_sync_records_total{result="applied"}'), 9);
  assert.equal(value(text, "router_sync_disconnects_total"), 1);

  stats = { ...base, connected: false, published: 7 };
  text = await registry.metrics();
  assert.equal(value(text, "router_sync_connected"), 0);
  assert.equal(value(text, 'router_sync_records_total{result="published"}'), 7);
  assert.equal(value(text, 'router_sync_records_total{result="applied"}'), 9);

  // A new PrefixSync counts from 0 again: the counters hold, then move on from there.
  stats = { ...base, published: 2 };
  text = await registry.metrics();
  assert.equal(value(text, 'router_sync_records_total{result="published"}'), 7);
  stats = { ...base, published: 3 };
  text = await registry.metrics();
  assert.equal(value(text, 'router_sync_records_total{result="published"}'), 8);
});
