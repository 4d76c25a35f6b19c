/**
 * Precise mode's metric families, read at scrape time from the KV-event subscriptions, the block
 * index and the tokenizers (nothing is counted on the request path):
 *
 * - `router_kv_events_total{backend}`, `router_kv_event_batches_total{backend}`: events and
 *   batches received from each engine;
 * - `router_kv_event_gaps_total`, `_replays_total`, `_replay_failures_total`, `_clears_total`
 *   (the worker's blocks forgotten: a gap that replay could not fill, an engine restart),
 *   `_reconnects_total`, `_malformed_total`, all `{backend}`;
 * - `router_kv_event_lag_seconds{backend}`: the last batch's age on arrival (engine clock to ours);
 * - `router_kv_subscription_connected{backend}`: 1 while subscribed;
 * - `router_precise_blocks{backend}`: blocks held per worker (held plus predicted chunks, as its
 *   view counts them); `router_precise_index_bytes`: the index's memory;
 * - `router_tokenizer_requests_total{tokenizer}`, `_failures_total`, `_cache_hits_total`,
 *   `_cache_misses_total`, and `router_tokenizer_seconds_total{tokenizer}` (render, encode and
 *   engine round trips).
 *
 * Counters advance by the difference from the last scrape, so a replaced subscription (a reload
 * changed its endpoint) starts its counts from zero without going backwards.
 *
 * @module
 */

import { Counter, Gauge, type Registry } from "prom-client";
import type { PreciseMode } from "../router/precise.ts";
import { counterDelta } from "./metrics.ts";

/** Registers precise mode's families on `registry`; they read `precise` when scraped. */
export function registerPreciseMetrics(registry: Registry, precise: PreciseMode): void {
  const last = new Map<string, number>();
  /** Advances `c{label}` to `total`; a smaller total (a new source) counts whole. */
  const advance = (c: Counter<string>, name: string, label: string, total: number) => {
    const key = `${name}\u001f${label}`;
    const before = last.get(key) ?? 0;
    const d = counterDelta(before, total);
    if (d > 0) c.labels(label).inc(d);
    last.set(key, total);
  };
  const counter = (name: string, help: string, label: string, collect?: () => void) =>
    new Counter({ name, help, labelNames: [label], registers: [registry], collect });
  const sub = {
    // The first family scraped brings every counter up to date (prom-client collects in order).
    events: counter(
      "router_kv_events_total",
      "KV cache events received, per worker",
      "backend",
      () => refresh(),
    ),
    batches: counter("router_kv_event_batches_total", "KV-event batches received", "backend"),
    gaps: counter(
      "router_kv_event_gaps_total",
      "Sequence gaps seen in a worker's events",
      "backend",
    ),
    replays: counter("router_kv_event_replays_total", "Replays asked of a worker", "backend"),
    replayFailures: counter(
      "router_kv_event_replay_failures_total",
      "Replays that could not fill a gap (the worker's blocks were then forgotten)",
      "backend",
    ),
    clears: counter(
      "router_kv_event_clears_total",
      "Times a worker's blocks were forgotten (unfillable gap, engine restart, cleared cache)",
      "backend",
    ),
    reconnects: counter("router_kv_event_reconnects_total", "Subscription reconnects", "backend"),
    malformed: counter(
      "router_kv_event_malformed_total",
      "Malformed KV-event messages dropped",
      "backend",
    ),
  };
  const tok = {
    requests: counter("router_tokenizer_requests_total", "Requests tokenized", "tokenizer"),
    failures: counter(
      "router_tokenizer_failures_total",
      "Requests that could not be tokenized (routed by their text)",
      "tokenizer",
    ),
    hits: counter(
      "router_tokenizer_cache_hits_total",
      "Sections of a prompt found in the tokenizer prefix cache",
      "tokenizer",
    ),
    misses: counter(
      "router_tokenizer_cache_misses_total",
      "Sections of a prompt tokenized anew",
      "tokenizer",
    ),
    seconds: counter(
      "router_tokenizer_seconds_total",
      "Time spent tokenizing (render, encode, engine round trips)",
      "tokenizer",
    ),
  };
  const refresh = () => {
    for (const { id, sub: s } of precise.subscriptions()) {
      const c = s.counters;
      advance(sub.events, "events", id, c.events);
      advance(sub.batches, "batches", id, c.batches);
      advance(sub.gaps, "gaps", id, c.gaps);
      advance(sub.replays, "replays", id, c.replays);
      advance(sub.replayFailures, "replayFailures", id, c.replayFailures);
      advance(sub.clears, "clears", id, c.clears);
      advance(sub.reconnects, "reconnects", id, c.reconnects);
      advance(sub.malformed, "malformed", id, c.malformed);
    }
    for (const { name, tokenizer } of precise.tokenizers()) {
      const t = tokenizer.stats();
      advance(tok.requests, "requests", name, t.requests);
      advance(tok.failures, "failures", name, t.failures);
      advance(tok.hits, "hits", name, t.cacheHits);
      advance(tok.misses, "misses", name, t.cacheMisses);
      advance(tok.seconds, "seconds", name, (t.renderMs + t.encodeMs + t.engineMs) / 1000);
    }
  };
  new Gauge({
    name: "router_kv_event_lag_seconds",
    help: "Age of a worker's last KV-event batch when it arrived",
    labelNames: ["backend"],
    registers: [registry],
    collect() {
      this.reset();
      for (const { id, sub: s } of precise.subscriptions()) {
        this.labels(id).set(s.counters.lagMs / 1000);
      }
    },
  });
  new Gauge({
    name: "router_kv_subscription_connected",
    help: "1 while the worker's KV-event subscription is connected",
    labelNames: ["backend"],
    registers: [registry],
    collect() {
      this.reset();
      for (const { id, sub: s } of precise.subscriptions()) {
        this.labels(id).set(s.state === "connected" ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: "router_precise_blocks",
    help: "Blocks the precise index holds for the worker (held and predicted)",
    labelNames: ["backend"],
    registers: [registry],
    collect() {
      this.reset();
      for (const { id } of precise.subscriptions()) {
        this.labels(id).set(precise.index.view(id).chunks);
      }
    },
  });
  new Gauge({
    name: "router_precise_index_bytes",
    help: "Memory the precise block index holds",
    registers: [registry],
    collect() {
      this.set(precise.index.stats().bytes);
    },
  });
}
