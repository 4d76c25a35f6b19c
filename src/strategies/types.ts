/**
 * Contracts of routing strategies. A strategy is a pure decision: it reads a snapshot of the
 * admitted workers and returns one of them with a reason. Recording the choice (prefix index
 * insert, in-flight counts, metrics) is the router layer's job, after the pick.
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";

/** One admitted worker as a strategy sees it. */
export interface Candidate {
  /** Position of the worker in the router's worker list (stable for a config). */
  readonly index: number;
  /** Worker id from the config (`workers[].id`). */
  readonly id: string;
  /** Requests the router has in flight on this worker. */
  readonly inflight: number;
  /** Longest prefix of the request the router believes this worker holds, in chunks (0 when the strategy does not use prefixes). */
  readonly match: number;
  /** Chunks in this worker's prefix index (its believed cache fill). */
  readonly cachedChunks: number;
  /** The worker's `kv_budget` in chunks; 0 = unbounded. */
  readonly capacityChunks: number;
  /** Learned or configured per-worker load figures, for cost-model strategies; absent when unknown. */
  readonly load?: WorkerLoad;
  /**
   * The engine's own load figures, scraped from its `/metrics`; absent when the router does not
   * scrape or has nothing usable. Unlike `load` (the router's accounting of what it sent), these
   * count every client of the engine, but lag by up to a scrape interval.
   */
  readonly engine?: EngineLoad;
}

/**
 * What a worker's engine reports about its load (`src/backends/engine_scraper.ts` fills it).
 * A strategy uses it only while `PickContext.now − at ≤ maxAgeMs` (`freshEngine`); a figure the
 * engine does not export is absent.
 */
export interface EngineLoad {
  /** Requests in the engine's running batch, from every client. */
  readonly running?: number;
  /** Requests queued in the engine, not yet scheduled, from every client. */
  readonly waiting?: number;
  /** KV cache in use, 0..1. */
  readonly kvUsage?: number;
  /**
   * Prompt tokens still to compute of a typical request there (mean prompt × share not served
   * from the prefix cache, from the engine's counters), to price requests queued by others;
   * absent: each is priced like the request being routed.
   */
  readonly queuedRequestTokens?: number;
  /** When the figures were read, ms, on the clock that gives `PickContext.now`. */
  readonly at: number;
  /** Age past which the figures no longer describe the engine, ms. */
  readonly maxAgeMs: number;
}

/** Per-worker figures a cost-model strategy may use. */
export interface WorkerLoad {
  /** Prompt tokens of in-flight requests not yet prefilled, as the router estimates them. */
  readonly pendingPrefillTokens: number;
  /** Requests in their decode phase. */
  readonly decoding: number;
  /** Estimated prefill rate, tokens per millisecond. */
  readonly prefillTokensPerMs: number;
  /** Estimated time per decode step in milliseconds. */
  readonly decodeStepMs: number;
  /**
   * Requests dispatched and not yet at their first token (those `pendingPrefillTokens` belongs
   * to); absent: taken as 1 when `pendingPrefillTokens` > 0, else 0.
   */
  readonly prefilling?: number;
  /** Fixed cost of one engine step, ms (weights read, launch); absent: the a100-7b prior. */
  readonly stepOverheadMs?: number;
  /** What each decoding sequence adds to a step, ms; absent: the a100-7b prior. */
  readonly decodeMsPerSeq?: number;
  /** Prompt tokens of all in-flight requests (their KV footprint as the router estimates it). */
  readonly activeTokens?: number;
}

/** What a strategy is given for one request. */
export interface PickContext {
  /** Admitted workers (breaker admits, under `max_inflight`, healthy). May be empty. */
  readonly candidates: readonly Candidate[];
  /** Chunks in the request's routing text. */
  readonly requestChunks: number;
  /** Bytes per chunk. */
  readonly chunkSize: number;
  /** Seeded random source. */
  readonly rng: Rng;
  /** Current time in ms from the injected clock (strategies must not read a clock themselves). */
  readonly now: number;
  /**
   * Prompt tokens of the request, when the caller knows them (a tokenizer count or an estimate);
   * absent: `requestChunks × chunkSize ÷ bytesPerToken`.
   */
  readonly requestTokens?: number;
  /** UTF-8 bytes per token for byte ↔ token conversions; absent: 4. */
  readonly bytesPerToken?: number;
}

/** A strategy's answer. */
export interface Decision {
  readonly candidate: Candidate;
  /** Reason for `X-Router-Reason`, e.g. `longest-prefix`, `fallback-least-loaded`. */
  readonly reason: string;
}

/** A routing strategy. */
export interface Strategy {
  /** Registry name, e.g. `prefixaware`. */
  readonly name: string;
  /** Whether the router must compute prefix matches for the candidates. */
  readonly usesPrefix: boolean;
  /** Whether the router must fill `Candidate.load` (cost-model figures); absent = false. */
  readonly usesLoad?: boolean;
  /** Picks one candidate; `undefined` only when there are no candidates. */
  pick(ctx: PickContext): Decision | undefined;
}

/** Strategy parameters from `router.*` config. */
export interface StrategyParams {
  readonly minMatchChunks: number;
  readonly saturationInflight: number;
  /**
   * Strategy-specific numeric options by their snake_case name (e.g. `cache_threshold` for
   * `sglang-cache-aware`), as a config's `router.strategy_options` would give them. A strategy
   * rejects names it does not know; absent names take the strategy's published defaults.
   */
  readonly options?: Readonly<Record<string, number>>;
}

/** Builds a strategy from its parameters. */
export type StrategyFactory = (params: StrategyParams) => Strategy;
