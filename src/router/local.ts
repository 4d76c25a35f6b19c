/**
 * The endpoints the router answers itself: `/healthz` (the process is up), `/readyz` (some worker
 * is admitted), `/metrics` (Prometheus text; per-worker gauges read at scrape time, off the request
 * path), `/v1/models` and `/v1/models/{id}` (the router's view of the workers' models). The admin
 * views `/debug/*` are in `debug.ts`.
 *
 * @module
 */

import type { Reply } from "../http/types.ts";
import { errorReply } from "../util/errors.ts";
import { knownModels } from "./models.ts";
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

/** `/readyz`: 200 while some worker is admitted and no shutdown began, else 503. */
export function readyz(state: RouterState): Reply {
  if (state.draining) {
    return errorReply("no_worker", "Router is shutting down", { code: "draining" });
  }
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
  state.faults.keepOnly(current);
  for (const b of state.backends) {
    m.setInflight(b.id, b.inflight);
    m.setBackendUp(b.id, b.up);
    m.setBreakerState(b.id, b.breaker.state);
    m.setPrefixTreeStats(b.id, b.prefix.stats(), b.prefix);
  }
  m.engine.update(state.backends, state.clock.now());
  return {
    status: 200,
    headers: [["content-type", m.contentType]],
    body: encoder.encode(await m.render()),
  };
}

/**
 * The router's view of the models: every model and adapter a worker serves (its own `/v1/models`
 * entry, so `parent` stays), then each alias whose served model is there (as that entry, with the
 * alias's id and `root` the served name). From the workers' lists as last learned: no fan-out.
 */
export function modelView(state: RouterState): Record<string, unknown>[] {
  const known = knownModels(state.backends);
  const out: Record<string, unknown>[] = [];
  for (const e of known.values()) out.push({ object: "model", ...e.raw, id: e.id });
  for (const [alias, served] of Object.entries(state.config.router.modelAliases)) {
    const e = known.get(served);
    if (e !== undefined && !known.has(alias)) {
      out.push({ object: "model", ...e.raw, id: alias, root: served });
    }
  }
  return out;
}

/** `GET /v1/models`: the router's view. */
export function models(state: RouterState): Reply {
  return jsonReply({ object: "list", data: modelView(state) });
}

/** `GET /v1/models/{id}`: one model of the view (the id percent-decoded), or 404. */
export function model(state: RouterState, path: string): Reply {
  let id = path.slice("/v1/models/".length);
  try {
    id = decodeURIComponent(id);
  } catch { /* not percent-encoded: as given */ }
  const found = modelView(state).find((m) => m.id === id);
  return found !== undefined ? jsonReply(found) : errorReply(
    "not_found",
    `The model \`${id}\` does not exist or no worker serves it`,
    { param: "model", code: "model_not_found" },
  );
}
