/**
 * Prediction feedback: keeps a worker's prefix tree no larger than what the engine really caches.
 *
 * Rule: the router predicts `match × chunk_size ÷ bytes_per_token` cached tokens for a request;
 * the engine reports `cached_tokens`. A report short of the prediction by at least
 * `minMissTokens` (64) and by at least `minMissRatio` (25%) of it means the engine evicted what
 * the tree still holds, so the tree's capacity drops to its current size less the missed chunks:
 * the least-recently-used leaves go, never below the request just recorded (the engine computed
 * and cached it). Each accurate
 * report (short by less than one chunk) lets the capacity grow back by 1% of itself (at least one
 * chunk), up to the configured `kv_budget`, or without limit when that is 0.
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
}

/** The defaults stated in the module comment. */
export const DEFAULT_FEEDBACK: FeedbackPolicy = {
  minMissTokens: 64,
  minMissRatio: 0.25,
  growth: 0.01,
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
  const miss = predicted - reported;
  if (miss >= policy.minMissTokens && miss >= policy.minMissRatio * predicted) {
    const missedChunks = Math.ceil(miss / tokensPerChunk);
    const next = Math.max(1, tree.recorded, tree.chunks - missedChunks);
    const current = tree.capacity === 0 ? Infinity : tree.capacity;
    return next < current ? next : null;
  }
  if (miss < tokensPerChunk && tree.capacity > 0 && tree.capacity !== tree.configured) {
    const grown = tree.capacity + Math.max(1, Math.floor(tree.capacity * policy.growth));
    return tree.configured > 0 ? Math.min(tree.configured, grown) : grown;
  }
  return null;
}
