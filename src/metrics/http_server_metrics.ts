/**
 * The HTTP server's own counters (`src/http/server.ts`, `HttpServerStats`) as Prometheus counters,
 * one series per listener (`listener`: `main` for `server.addr`, `admin` for `metrics.addr`):
 *
 * - `router_http_connections_accepted_total`: connections accepted and served;
 * - `router_http_connections_refused_total`: connections closed at once because
 *   `server.max_connections` were open;
 * - `router_http_accept_errors_total`: accept calls that failed (EMFILE, ENFILE, ECONNABORTED);
 *   the server backs off and goes on;
 * - `router_http_header_timeouts_total`: connections closed because a head did not arrive within
 *   `server.header_timeout`;
 * - `router_http_idle_timeouts_total`: kept-alive connections closed after `server.idle_timeout`;
 * - `router_http_client_gone_total`: requests whose client went away while they were served.
 *
 * The server counts in plain numbers on its hot paths; these are read at scrape time (each
 * counter advanced by what its number grew since the last scrape), so they cost nothing per
 * request. Registered at most once per registry.
 *
 * @module
 */

import { Counter, type Registry } from "prom-client";
import type { HttpServerStats } from "../http/server.ts";
import { counterDelta } from "./metrics.ts";

/** One listener whose counters are exported. */
export interface HttpServerSource {
  /** The `listener` label: `main` or `admin`. */
  readonly listener: string;
  readonly stats: Readonly<HttpServerStats>;
}

/** The exported families: name, the `HttpServerStats` field it reads, help. */
const FAMILIES: readonly (readonly [string, keyof HttpServerStats, string])[] = [
  ["router_http_connections_accepted_total", "accepted", "Client connections accepted"],
  [
    "router_http_connections_refused_total",
    "refused",
    "Client connections closed at once because server.max_connections were open",
  ],
  [
    "router_http_accept_errors_total",
    "acceptErrors",
    "Accept calls that failed (EMFILE, ENFILE, ECONNABORTED); the server backs off and goes on",
  ],
  [
    "router_http_header_timeouts_total",
    "headerTimeouts",
    "Client connections closed because a request head did not arrive within server.header_timeout",
  ],
  [
    "router_http_idle_timeouts_total",
    "idleTimeouts",
    "Kept-alive client connections closed after server.idle_timeout",
  ],
  [
    "router_http_client_gone_total",
    "clientGone",
    "Requests whose client went away while they were served",
  ],
];

/** Registers the families on `registry` (once); they read `sources` when scraped. */
export function registerHttpServerMetrics(
  registry: Registry,
  sources: readonly HttpServerSource[],
): void {
  if (registry.getSingleMetric(FAMILIES[0][0]) !== undefined) return;
  for (const [name, field, help] of FAMILIES) {
    const last = new Map<string, number>();
    new Counter({
      name,
      help,
      labelNames: ["listener"],
      registers: [registry],
      collect() {
        for (const s of sources) {
          const total = s.stats[field];
          const before = last.get(s.listener) ?? 0;
          last.set(s.listener, total);
          // Zero-valued series show too, so a rate() has a start.
          this.labels(s.listener).inc(counterDelta(before, total));
        }
      },
    });
  }
}
