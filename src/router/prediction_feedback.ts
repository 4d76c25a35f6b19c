/**
 * Prediction feedback: keeps a worker's prefix tree no larger than what the engine really caches,
 * without letting one report wipe it.
 *
 * Rule: the router predicts `match × chunk_size ÷ bytes_per_token` cached tokens for a request;
 * the engine reports `cached_tokens`. A report short of the prediction by at least
 * `minMissTokens` (64) and by at least `minMissRatio` (25%) of it is a miss:
 * - A cold start on a busy worker is not an eviction. llama-server keeps one cache per slot
 *   (`--parallel N`): a request for a prefix whose slot is busy starts cold in another slot and
 *   reports 0, while the worker still holds the prefix. So a report of (almost) nothing, less
 *   than one chunk, for a request sent while the router had other requests in flight there
 *   (`othersInflight` > 0) changes nothing.
 * - Otherwise the engine evicted part of what the tree holds, and the capacity drops in
 *   proportion to the miss: by the missed chunks, but by at most `maxShrink` (25%) of the tree
 *   times the missed share of the prediction, so a single full miss takes a quarter of the tree
 *   at most and the tree converges over several reports instead of collapsing on one. Never below
 *   the request just recorded (the engine computed and cached it), nor below one chunk.
 * Each accurate report (short by less than one chunk) lets the capacity grow back by `growth`
 * (1%) of itself (at least one chunk), up to the configured `kv_budget`, or without limit when
 * that is 0.
 *
 * The tree applies the new capacity by trimming chunks from its least-recently-used leaves
 * (`RadixTree.resize`), not whole branches, and the router refreshes the path just recorded first
 * (`RadixTree.touch`, in `settle.ts`), so the request that reported stays whole.
 *
 * Cost: O(1) per report, plus the evictions a shrink causes.
 *
 * @module
 */

/** Thresholds of the feedback rule. */
export interface FeedbackPolicy {
  /** A miss smaller than this many tokens is noise (engine block rounding, tokenizer). */
  readonly minMissTokens: number;
  /** A miss smaller than this share of the prediction is noise. */
  readonly minMissRatio: number;
  /** Growth per accurate report, as a share of the current capacity. */
  readonly growth: number;
  /** Largest shrink one report can cause, as a share of the tree (times the missed share). */
  readonly maxShrink: number;
}

/** The defaults stated in the module comment. */
export const DEFAULT_FEEDBACK: FeedbackPolicy = {
  minMissTokens: 64,
  minMissRatio: 0.25,
  growth: 0.01,
  maxShrink: 0.25,
};

/** What the rule needs to know of one worker's tree. */
export interface TreeCapacity {
  /** Capacity in force, chunks; 0 = unbounded. */
  readonly capacity: number;
  /** `kv_budget` from the config, chunks; 0 = unbounded. */
  readonly configured: number;
  /** Chunks held now. */
  readonly chunks: number;
  /** Chunks of the request just recorded: the engine holds them now, so the capacity keeps room for them. */
  readonly recorded: number;
  /**
   * Other requests the router had in flight on the worker when this one was sent; absent: 0.
   * With any, a report of nothing cached is read as a busy slot, not an eviction.
   */
  readonly othersInflight?: number;
}

/** What one report says, as {@link classifyReport} reads it. */
export type ReportKind = "accurate" | "noise" | "busy-slot" | "miss";

/**
 * How a report compares with the prediction; see the module comment.
 * @param predicted cached tokens the router predicted
 * @param reported cached tokens the engine reported, in the router's token units
 * @param tokensPerChunk `chunk_size ÷ bytes_per_token`
 */
export function classifyReport(
  tree: Pick<TreeCapacity, "othersInflight">,
  predicted: number,
  reported: number,
  tokensPerChunk: number,
  policy: FeedbackPolicy = DEFAULT_FEEDBACK,
): ReportKind {
  const miss = predicted - reported;
  if (miss < tokensPerChunk) return "accurate";
  if (miss < policy.minMissTokens || miss < policy.minMissRatio * predicted) return "noise";
  if (reported < tokensPerChunk && (tree.othersInflight ?? 0) > 0) return "busy-slot";
  return "miss";
}

/**
 * The capacity the tree should have after one report, or null to leave it as it is.
 * @param predicted cached tokens the router predicted
 * @param reported cached tokens the engine reported, in the router's token units
 * @param tokensPerChunk `chunk_size ÷ bytes_per_token`
 */
export function nextCapacity(
  tree: TreeCapacity,
  predicted: number,
  reported: number,
  tokensPerChunk: number,
  policy: FeedbackPolicy = DEFAULT_FEEDBACK,
): number | null {
  if (!Number.isFinite(predicted) || !Number.isFinite(reported) || tokensPerChunk <= 0) return null;
  const kind = classifyReport(tree, predicted, reported, tokensPerChunk, policy);
  if (kind === "miss") {
    const miss = predicted - reported;
    const missedChunks = Math.ceil(miss / tokensPerChunk);
    const share = Math.min(1, miss / predicted);
    const cut = Math.min(missedChunks, Math.ceil(tree.chunks * policy.maxShrink * share));
    const next = Math.max(1, tree.recorded, tree.chunks - cut);
    const current = tree.capacity === 0 ? Infinity : tree.capacity;
    return next < current ? next : null;
  }
  if (kind === "accurate" && tree.capacity > 0 && tree.capacity !== tree.configured) {
    const grown = tree.capacity + Math.max(1, Math.floor(tree.capacity * policy.growth));
    return tree.configured > 0 ? Math.min(tree.configured, grown) : grown;
  }
  return null;
}
