/**
 * Precise mode: the router's own token-block hash and the per-worker index of what engines hold,
 * fed by KV cache events and read through the `PrefixIndex` contract.
 *
 * @module
 */

export { BLOCK_HASH_SCHEME, blockHashes, type BlockKey } from "./block_hash.ts";
export {
  BlockIndex,
  type BlockIndexOptions,
  type BlockIndexStats,
  type BlockMatch,
  tierOf,
} from "./block_index.ts";
export { TIER_COUNT, TIER_CPU, TIER_GPU, TIER_OTHER } from "./worker_blocks.ts";
