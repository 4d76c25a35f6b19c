/**
 * The tracer's metric families, read at scrape time from its exporter's counters (zero while
 * tracing is off): `router_trace_spans_exported_total`, `router_trace_spans_dropped_total{reason}`
 * (`queue_full`: the queue was at `tracing.max_queue_size`; `export_failed`: retries spent or not
 * retryable; `rejected`: the collector refused them) and `router_trace_queue_spans`.
 *
 * @module
 */

import { Counter, Gauge, type Registry } from "prom-client";
import type { Tracer } from "../telemetry/mod.ts";
import { counterDelta } from "./metrics.ts";

/** Registers the tracer's families on `registry`; they read `tracer()` when scraped. */
export function registerTraceMetrics(registry: Registry, tracer: () => Tracer): void {
  const last = { exported: 0, queue_full: 0, export_failed: 0, rejected: 0 };
  const advance = (c: Counter<string>, key: keyof typeof last, total: number, label?: string) => {
    const d = counterDelta(last[key], total);
    last[key] = total;
    if (d <= 0) return;
    if (label === undefined) c.inc(d);
    else c.labels(label).inc(d);
  };
  const exported = new Counter({
    name: "router_trace_spans_exported_total",
    help: "Spans the trace collector accepted",
    registers: [registry],
    collect() {
      const s = tracer().stats();
      advance(exported, "exported", s.exported);
      advance(dropped, "queue_full", s.droppedQueueFull, "queue_full");
      advance(dropped, "export_failed", s.droppedExportFailed, "export_failed");
      advance(dropped, "rejected", s.rejected, "rejected");
    },
  });
  const dropped = new Counter({
    name: "router_trace_spans_dropped_total",
    help: "Spans not exported, by reason (queue_full, export_failed, rejected)",
    labelNames: ["reason"],
    registers: [registry],
  });
  new Gauge({
    name: "router_trace_queue_spans",
    help: "Ended spans waiting for export",
    registers: [registry],
    collect() {
      this.set(tracer().stats().queued);
    },
  });
}
