/**
 * Contracts of the KV event layer: engine cache events after decoding, in one shape whatever the
 * engine (vLLM, SGLang) and whichever encoding (tagged arrays or tagged maps) it used.
 *
 * Engine block hashes arrive as unsigned 64-bit integers (vLLM), signed 64-bit integers (SGLang)
 * or raw bytes; they are normalised to one key type, a 64-bit value kept as `[hi, lo]` unsigned
 * 32-bit halves (the same layout as the router's own `ChunkHashes`). A signed value is taken as
 * its two's complement bits; bytes as the big-endian value of their last 8 bytes (the low 64 bits
 * of a digest, which is what vLLM sends as an integer).
 *
 * @module
 */

/** Engine hashes: `[hi0, lo0, hi1, lo1, ...]`, two words per block. */
export type EngineHashes = Uint32Array;

/** One typed entry of a block's `extra_keys` (vLLM's published schema, or classified legacy). */
export type ExtraKey =
  | { readonly kind: "lora"; readonly name: string }
  | { readonly kind: "cache_salt"; readonly salt: string }
  | { readonly kind: "mm"; readonly hash: string; readonly offset: number }
  | { readonly kind: "prompt_embeds"; readonly hash: string }
  | { readonly kind: "other"; readonly repr: string };

/** Blocks the engine now holds. */
export interface BlockStored {
  readonly type: "BlockStored";
  readonly blockHashes: EngineHashes;
  /** Hash of the block before the first one here; null at the root. */
  readonly parentBlockHash: EngineHashes | null;
  /** `blockHashes` blocks × `blockSize` ids, or empty (an offload tier may send none). */
  readonly tokenIds: readonly number[];
  readonly blockSize: number;
  readonly loraId: number | null;
  /** "GPU", "CPU", ...; null means GPU (older engines). */
  readonly medium: string | null;
  readonly loraName: string | null;
  /** One entry per block, or null. */
  readonly extraKeys: readonly (readonly ExtraKey[] | null)[] | null;
  /** KV cache group (hybrid models); null for single-group engines. */
  readonly groupIdx: number | null;
  /** "LOCAL" / "REMOTE" relative to the publisher; null when not said. */
  readonly locality: string | null;
}

/** Blocks the engine dropped from one medium. */
export interface BlockRemoved {
  readonly type: "BlockRemoved";
  readonly blockHashes: EngineHashes;
  readonly medium: string | null;
  readonly groupIdx: number | null;
}

/** The engine emptied its cache (`medium` null) or one tier of it (vLLM's TierBlocksCleared). */
export interface AllBlocksCleared {
  readonly type: "AllBlocksCleared";
  readonly medium: string | null;
}

/** A decoded cache event. */
export type KvEvent = BlockStored | BlockRemoved | AllBlocksCleared;

/** One published batch. */
export interface KvEventBatch {
  /** Engine wall-clock time of the batch, seconds since the epoch. */
  readonly ts: number;
  readonly events: readonly KvEvent[];
  readonly dataParallelRank: number | null;
}
