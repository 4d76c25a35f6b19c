/**
 * Keeps each worker's served-model list current: every period, each worker without configured
 * models is asked `GET /v1/models`; a good answer replaces its list, a failed one keeps the last
 * list (an engine that is briefly down still serves what it served). Answers are read with a cap
 * ({@link MAX_MODELS_BYTES}): a worker cannot make the router buffer more than that.
 *
 * Rounds: one at start, then every `intervalMs`; a round asks all workers at once, each with
 * `timeoutMs`. `stop()` ends the loop and aborts a round in flight; nothing is left pending.
 *
 * @module
 */

import { errorMessage } from "../util/errors.ts";
import { readCapped } from "../util/read_capped.ts";
import { modelEntries, type ModelEntry } from "./models.ts";

/** Largest `/v1/models` answer read from a worker, bytes. */
export const MAX_MODELS_BYTES = 1 << 20;

/** A worker whose models are learned. */
export interface ModelTarget {
  readonly id: string;
  readonly url: string;
  readonly apiKey: string | null;
  /** Where the learned list goes (null: never learned yet). */
  models: ReadonlyMap<string, ModelEntry> | null;
}

/** Options of {@link ModelRefresher}. */
export interface ModelRefresherOptions {
  readonly targets: readonly ModelTarget[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Told about each failed fetch (logged by the owner). */
  readonly onError?: (id: string, error: string) => void;
  /** Told when a worker's list changed (adapters loaded or unloaded). */
  readonly onChange?: (id: string, models: readonly string[]) => void;
}

/** The worker's models from its `/v1/models`, read with a size cap. */
export async function fetchModels(
  url: string,
  apiKey: string | null,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Map<string, ModelEntry>> {
  const sig = signal
    ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
    : AbortSignal.timeout(
      timeoutMs,
    );
  const res = await fetch(`${url}/v1/models`, {
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : undefined,
    signal: sig,
  });
  if (!res.ok || res.body === null) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`answered ${res.status}`);
  }
  const all = await readCapped(
    res,
    MAX_MODELS_BYTES,
    () => new Error(`answer is larger than ${MAX_MODELS_BYTES} bytes`),
  );
  const entries = modelEntries(JSON.parse(new TextDecoder().decode(all)));
  // Not a model list (a server that answers every path alike) or an empty one: nothing learned,
  // so the worker stays "unknown" and may still take any model's requests.
  if (entries.length === 0) throw new Error("answer lists no model");
  return new Map(entries.map((e) => [e.id, e]));
}

/** Refreshes the targets' model lists; see the module comment. */
export class ModelRefresher {
  readonly #o: ModelRefresherOptions;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** Every round in flight: the loop's and any `refresh()` called meanwhile. */
  readonly #rounds = new Map<AbortController, Promise<void>>();
  #stopped = true;

  constructor(options: ModelRefresherOptions) {
    this.#o = options;
  }

  /** Starts the rounds (the first at once). */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#tick();
  }

  /** Runs one round now; resolves when every worker answered or failed. */
  refresh(): Promise<void> {
    const ctl = new AbortController();
    const round = this.#refresh(ctl).finally(() => this.#rounds.delete(ctl));
    this.#rounds.set(ctl, round);
    return round;
  }

  async #refresh(ctl: AbortController): Promise<void> {
    await Promise.all(this.#o.targets.map(async (t) => {
      try {
        const models = await fetchModels(t.url, t.apiKey, this.#o.timeoutMs, ctl.signal);
        const before = t.models === null ? null : [...t.models.keys()].sort().join("\n");
        t.models = models;
        const after = [...models.keys()].sort();
        if (before !== after.join("\n")) this.#o.onChange?.(t.id, after);
      } catch (err) {
        if (!ctl.signal.aborted) this.#o.onError?.(t.id, errorMessage(err));
      }
    }));
  }

  #tick(): void {
    if (this.#stopped) return;
    this.refresh().finally(() => {
      if (!this.#stopped) this.#timer = setTimeout(() => this.#tick(), this.#o.intervalMs);
    });
  }

  /** Stops the rounds and aborts every one in flight; resolves when nothing is pending. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const ctl of this.#rounds.keys()) ctl.abort();
    await Promise.all(this.#rounds.values());
  }
}
