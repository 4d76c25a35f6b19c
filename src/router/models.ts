/**
 * Which models each worker serves, and which workers a request's `model` may go to.
 *
 * A worker's models come from its config (`workers[].models`, fixed) or from its `/v1/models`
 * answer, refreshed periodically (`model_refresh.ts`); vLLM lists LoRA adapters there with a
 * `parent`, and loading an adapter at run time shows up at the next refresh. Until a worker's
 * list is known it is "unknown" (null).
 *
 * Resolving a request's model (aliases first: `router.model_aliases` maps public names to served
 * ones):
 * - given and served by some worker: those workers;
 * - given, served by none, and some worker's list is unknown: the unknown workers (one of them may
 *   serve it); none unknown: 404 `model_not_found`;
 * - absent: the only model when exactly one is known; every worker when none is known yet (a fleet
 *   whose lists are not in yet works as before); else 400 (`model` is required).
 * A known model whose workers are all unavailable is the pipeline's 503, not an error here.
 *
 * Cost: one map lookup per worker per request.
 *
 * @module
 */

import { RouterError } from "../util/errors.ts";

/** One model entry as `/v1/models` lists it. */
export interface ModelEntry {
  readonly id: string;
  /** The base model of a LoRA adapter (vLLM's `parent`), else null. */
  readonly parent: string | null;
  /** The worker's own object for it (kept for `/v1/models`), bounded in size by the fetch. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** What resolving needs of a worker. */
export interface ServesModels {
  /** Served models by id; null while unknown. */
  readonly models: ReadonlyMap<string, ModelEntry> | null;
}

/** A request's model, resolved. */
export interface ResolvedModel {
  /** The served name (after aliases), or null when the request named none and none is known. */
  readonly served: string | null;
}

/** Entries of a `/v1/models` answer (`{data: [{id, parent?, ...}]}`); malformed items skipped. */
export function modelEntries(body: unknown, maxEntries = 4096): ModelEntry[] {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return [];
  const out: ModelEntry[] = [];
  for (const item of data) {
    if (out.length >= maxEntries) break;
    if (typeof item !== "object" || item === null || Array.isArray(item)) continue;
    const m = item as Record<string, unknown>;
    if (typeof m.id !== "string" || m.id === "" || m.id.length > 512) continue;
    out.push({ id: m.id, parent: typeof m.parent === "string" ? m.parent : null, raw: m });
  }
  return out;
}

/** Entries for a configured list of model names. */
export function configuredEntries(names: readonly string[]): Map<string, ModelEntry> {
  return new Map(names.map((id) => [id, { id, parent: null, raw: { id, object: "model" } }]));
}

/** The union of the known models of `workers`, first seen first. */
export function knownModels(workers: readonly ServesModels[]): Map<string, ModelEntry> {
  const out = new Map<string, ModelEntry>();
  for (const w of workers) {
    if (w.models === null) continue;
    for (const [id, e] of w.models) if (!out.has(id)) out.set(id, e);
  }
  return out;
}

/**
 * Resolves `model` against `workers` (see the module comment).
 * @throws RouterError 404 `model_not_found`, or 400 when the model must be named
 */
export function resolveModel(
  model: string | undefined,
  workers: readonly ServesModels[],
  aliases: Readonly<Record<string, string>>,
): ResolvedModel {
  if (model !== undefined) {
    const served = Object.hasOwn(aliases, model) ? aliases[model] : model;
    for (const w of workers) if (w.models?.has(served)) return { served };
    if (workers.some((w) => w.models === null)) return { served };
    throw new RouterError(
      "not_found",
      `The model \`${model}\` does not exist or no worker serves it`,
      "model",
      "model_not_found",
    );
  }
  const known = knownModels(workers);
  if (known.size === 0) return { served: null };
  if (known.size === 1) return { served: known.keys().next().value! };
  throw new RouterError(
    "bad_request",
    `model is required: this router serves ${known.size} models (${
      [...known.keys()].slice(0, 8).join(", ")
    }${known.size > 8 ? ", ..." : ""})`,
    "model",
    "model_required",
  );
}

/**
 * Whether a worker may take a request for `served`: it serves it, or its list is unknown and no
 * worker is known to serve it.
 */
export function servesModel(
  w: ServesModels,
  served: string | null,
  anyKnownServer: boolean,
): boolean {
  if (served === null) return true;
  if (w.models === null) return !anyKnownServer;
  return w.models.has(served);
}

/** Whether some worker's known list has `served`. */
export function anyServes(workers: readonly ServesModels[], served: string | null): boolean {
  if (served === null) return false;
  for (const w of workers) if (w.models?.has(served)) return true;
  return false;
}
