/**
 * The endpoints the router answers itself: `/healthz` (the process is up), `/readyz` (some worker
 * is admitted), `/metrics` (Prometheus text; per-worker gauges read at scrape time, off the request
 * path) and `/v1/models` (the union of the workers' models).
 *
 * @module
 */

import type { Reply } from "../http/types.ts";
import { errorReply } from "../util/errors.ts";
import type { RouterState } from "./state.ts";

const encoder = new TextEncoder();

/** A JSON reply. */
export function jsonReply(value: unknown, status = 200): Reply {
  return {
    status,
    headers: [["content-type", "application/json"]],
    body: encoder.encode(JSON.stringify(value)),
  };
}

/** `/healthz`: the process answers. */
export function healthz(): Reply {
  return jsonReply({ status: "ok" });
}

/** `/readyz`: 200 while some worker is admitted, else 503. */
export function readyz(state: RouterState): Reply {
  let n = 0;
  for (const b of state.backends) if (b.admits()) n++;
  return n > 0
    ? jsonReply({ status: "ready", admitted: n })
    : errorReply("no_worker", "No worker is admitted");
}

/** `/metrics`: Prometheus text. A removed worker's gauges go (its counters stay). */
export async function metrics(state: RouterState): Promise<Reply> {
  const m = state.metrics;
  const current = new Set(state.backends.map((b) => b.id));
  for (const id of m.backendIds()) if (!current.has(id)) m.forgetBackendGauges(id);
  for (const b of state.backends) {
    m.setInflight(b.id, b.inflight);
    m.setBackendUp(b.id, b.up);
    m.setBreakerState(b.id, b.breaker.stateCode);
    m.setPrefixTreeStats(b.id, b.prefix.stats(), b.prefix);
  }
  return {
    status: 200,
    headers: [["content-type", m.contentType]],
    body: encoder.encode(await m.render()),
  };
}

/** `/v1/models`: the union of the workers' models; workers that do not answer are skipped. */
export async function models(state: RouterState): Promise<Reply> {
  const timeoutMs = state.config.health.timeoutMs;
  const lists = await Promise.all(state.backends.map(async (b) => {
    try {
      const headers = b.config.apiKey ? { authorization: `Bearer ${b.config.apiKey}` } : undefined;
      const res = await fetch(`${b.url}/v1/models`, {
        headers,
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return [];
      }
      const body = await res.json();
      return Array.isArray(body?.data) ? body.data as { id: string }[] : [];
    } catch {
      return [];
    }
  }));
  const byId = new Map<string, unknown>();
  for (const list of lists) {
    for (const m of list) if (m && typeof m.id === "string" && !byId.has(m.id)) byId.set(m.id, m);
  }
  return jsonReply({ object: "list", data: [...byId.values()] });
}
