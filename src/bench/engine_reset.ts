/**
 * Emptying a real engine's prefix cache between benchmark cells, so that no cell inherits what
 * the one before it cached (`bench --workers-url`).
 *
 * What each engine offers (tried in this order; the first that answers 2xx is remembered per URL):
 * - vLLM: `POST /reset_prefix_cache` (served when the server runs with `VLLM_SERVER_DEV_MODE=1`);
 *   the simulated worker answers it too;
 * - SGLang: `POST /flush_cache`;
 * - llama.cpp's llama-server: `GET /slots` lists the slots, `POST /slots/{id}?action=erase`
 *   empties each (the slots endpoint must not be disabled with `--no-slots`).
 * An engine that offers none of them keeps its cache; the sweep then interleaves strategies
 * instead (`sweep.ts`), and the report says which happened.
 *
 * Cost: a few small HTTP requests per engine per cell, each bounded by `timeoutMs`; the `/slots`
 * list is read up to `maxSlotsBytes` (default 16 MiB: llama-server lists each slot's settings and
 * prompt), a longer one counts as no llama-server.
 *
 * @module
 */

import { readCapped } from "../util/read_capped.ts";

/** How an engine's cache was emptied, or null when it offers no way. */
export type ResetMethod = "vllm" | "sglang" | "llama-server";

/** `fetch`-like function (injectable for tests that use their own client). */
export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/** Options of {@link CacheResetter}. */
export interface ResetOptions {
  /** Per-request timeout, ms (default 10 000). */
  readonly timeoutMs?: number;
  /** Largest `GET /slots` answer read, bytes (default 16 MiB). */
  readonly maxSlotsBytes?: number;
  readonly fetch?: Fetch;
}

/** Empties engines' prefix caches; remembers which method each URL answered. */
export class CacheResetter {
  readonly #known = new Map<string, ResetMethod | null>();
  readonly #timeoutMs: number;
  readonly #maxSlotsBytes: number;
  readonly #fetch: Fetch;

  constructor(opts: ResetOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#maxSlotsBytes = opts.maxSlotsBytes ?? 16 << 20;
    this.#fetch = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  /** Empties `url`'s cache; the method that did it, or null when the engine offers none. */
  async reset(url: string): Promise<ResetMethod | null> {
    const base = url.replace(/\/+$/, "");
    const known = this.#known.get(base);
    if (known === null) return null;
    const order: ResetMethod[] = known !== undefined ? [known] : ["vllm", "sglang", "llama-server"];
    for (const m of order) {
      if (await this.#try(base, m)) {
        this.#known.set(base, m);
        return m;
      }
    }
    this.#known.set(base, null);
    return null;
  }

  /** Empties every URL's cache; the methods, in order. */
  resetAll(urls: readonly string[]): Promise<(ResetMethod | null)[]> {
    return Promise.all(urls.map((u) => this.reset(u)));
  }

  async #try(base: string, m: ResetMethod): Promise<boolean> {
    if (m === "vllm") return await this.#ok(`${base}/reset_prefix_cache`, "POST");
    if (m === "sglang") return await this.#ok(`${base}/flush_cache`, "POST");
    const slots = await this.#json(`${base}/slots`);
    if (!Array.isArray(slots) || slots.length === 0) return false;
    for (const s of slots) {
      const id = s !== null && typeof s === "object" ? (s as { id?: unknown }).id : undefined;
      if (!Number.isSafeInteger(id)) return false;
      if (!(await this.#ok(`${base}/slots/${id}?action=erase`, "POST"))) return false;
    }
    return true;
  }

  async #ok(url: string, method: string): Promise<boolean> {
    try {
      const res = await this.#fetch(url, { method, signal: AbortSignal.timeout(this.#timeoutMs) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  async #json(url: string): Promise<unknown> {
    try {
      const res = await this.#fetch(url, { signal: AbortSignal.timeout(this.#timeoutMs) });
      if (!res.ok) {
        await res.body?.cancel();
        return null;
      }
      const body = await readCapped(res, this.#maxSlotsBytes, () => new Error("too large"));
      return JSON.parse(new TextDecoder().decode(body));
    } catch {
      return null;
    }
  }
}

/** The report's line about cache state: what was reset, or that strategies were interleaved. */
export function cacheNote(methods: readonly (ResetMethod | null)[], interleaved: boolean): string {
  if (!interleaved) {
    const by = [...new Set(methods)].join(", ");
    return `Engine caches: emptied before every cell (${by}), so every cell starts cold.`;
  }
  const none = methods.filter((m) => m === null).length;
  return `Engine caches: ${none} of ${methods.length} engines offer no cache reset ` +
    "(vLLM POST /reset_prefix_cache, SGLang POST /flush_cache, llama-server slot erase), so " +
    "caches carry over between cells; strategies were interleaved (each sessions × seed point " +
    "runs every strategy in turn, the order rotated from point to point) so that none always " +
    "follows the same one.";
}
