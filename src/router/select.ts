/**
 * The routing step shared by the live router, the offline simulator and the benchmarks:
 * snapshot the admitted workers into a `PickContext`, let the strategy pick, then record the
 * choice in the chosen worker's prefix index. Deciding and recording are separate so that a caller
 * can retry on another worker without recording a choice that never ran.
 *
 * Cost: one `PrefixIndex.match` per admitted worker when the strategy uses prefixes, none otherwise.
 *
 * @module
 */

import type { ChunkHashes, PrefixIndex } from "../prefix/types.ts";
import { chunkCount } from "../prefix/types.ts";
import type { Candidate, Decision, EngineLoad, Strategy, WorkerLoad } from "../strategies/types.ts";
import type { Rng } from "../util/rng.ts";

/** A worker as the routing step needs it. */
export interface RouteTarget {
  /** Position in the worker list. */
  readonly index: number;
  readonly id: string;
  /** What the router believes this worker caches. */
  readonly prefix: PrefixIndex;
  /** `kv_budget` in chunks, 0 = unbounded. */
  readonly capacityChunks: number;
  /** Requests in flight now. */
  readonly inflight: number;
  /** Cost-model figures, when known. */
  readonly load?: WorkerLoad;
  /** The engine's own load signals, when scraped and fresh. */
  readonly engine?: EngineLoad;
}

/** Inputs of one routing decision. */
export interface RouteInput {
  readonly strategy: Strategy;
  /** Admitted workers only. */
  readonly targets: readonly RouteTarget[];
  readonly hashes: ChunkHashes;
  readonly chunkSize: number;
  readonly rng: Rng;
  readonly now: number;
  /** Prompt tokens of the request, when the caller knows them. */
  readonly requestTokens?: number;
}

/** Builds the candidate snapshot for `input.targets`. */
export function candidatesFor(input: RouteInput): Candidate[] {
  const usesPrefix = input.strategy.usesPrefix;
  const out: Candidate[] = new Array(input.targets.length);
  for (let i = 0; i < input.targets.length; i++) {
    const t = input.targets[i];
    out[i] = {
      index: t.index,
      id: t.id,
      inflight: t.inflight,
      match: usesPrefix ? t.prefix.match(input.hashes) : 0,
      cachedChunks: t.prefix.chunks,
      capacityChunks: t.capacityChunks,
      load: t.load,
      engine: t.engine,
    };
  }
  return out;
}

/** Runs the strategy over the admitted targets; `undefined` when there are none. */
export function decide(input: RouteInput): Decision | undefined {
  if (input.targets.length === 0) return undefined;
  return input.strategy.pick({
    candidates: candidatesFor(input),
    requestChunks: chunkCount(input.hashes),
    chunkSize: input.chunkSize,
    rng: input.rng,
    now: input.now,
    requestTokens: input.requestTokens,
  });
}

/** Records that `target` will now hold the request's prefix. */
export function recordDecision(target: RouteTarget, hashes: ChunkHashes): void {
  if (hashes.length > 0) target.prefix.insert(hashes);
}
