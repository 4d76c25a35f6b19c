/**
 * Encoding KV event batches as engines publish them (msgspec's msgpack layout), for the simulated
 * engine and for tests.
 *
 * Layout:
 * - Batch: array `[ts, events]` plus `data_parallel_rank` when it is set (vLLM's array-like
 *   `EventBatch`), or a map `{ts, events, data_parallel_rank}`. `ts` is always a float64, as a
 *   Python float is, even when it has no fraction.
 * - Events, `events: "array"` (older vLLM): `["BlockStored", block_hashes, parent_block_hash,
 *   token_ids, block_size, lora_id, medium, lora_name, extra_keys, group_idx]` with trailing
 *   fields that hold their default (None) omitted; `["BlockRemoved", block_hashes, medium,
 *   group_idx]`; `["AllBlocksCleared"]`.
 * - Events, `events: "map"` (vLLM since mid-2026, SGLang): the tag first as `type`, then the
 *   fields without defaults always, and those with defaults only when set.
 * - Hashes: `u64` (vLLM: unsigned integer), `i64` (SGLang: the same bits as a signed integer) or
 *   `bytes` (8 bytes big-endian, or the raw bytes given). Integers use msgpack's smallest format,
 *   as msgspec does.
 *
 * @module
 */

import { Encoder } from "@msgpack/msgpack";
import { concatBytes } from "../util/bytes.ts";

/** An engine block hash before encoding. */
export type WireHash = bigint | Uint8Array;

/** BlockStored to encode; omitted optionals are None. */
export interface WireBlockStored {
  readonly type: "BlockStored";
  readonly blockHashes: readonly WireHash[];
  readonly parentBlockHash: WireHash | null;
  readonly tokenIds: readonly number[];
  readonly blockSize: number;
  readonly loraId?: number | null;
  readonly medium?: string | null;
  readonly loraName?: string | null;
  /** Per block: a tuple of raw or typed (`{type: "cache_salt", salt}`) keys, or null. */
  readonly extraKeys?: readonly (readonly unknown[] | null)[] | null;
  readonly groupIdx?: number | null;
}

/** BlockRemoved to encode. */
export interface WireBlockRemoved {
  readonly type: "BlockRemoved";
  readonly blockHashes: readonly WireHash[];
  readonly medium?: string | null;
  readonly groupIdx?: number | null;
}

/** AllBlocksCleared to encode. */
export interface WireAllBlocksCleared {
  readonly type: "AllBlocksCleared";
}

/** An event to encode. */
export type WireEvent = WireBlockStored | WireBlockRemoved | WireAllBlocksCleared;

/** How to encode. */
export interface EncodeOptions {
  /** Event encoding; default "array". */
  readonly events?: "array" | "map";
  /** Batch encoding; default "array". */
  readonly batch?: "array" | "map";
  /** Hash encoding; default "u64". */
  readonly hashes?: "u64" | "i64" | "bytes";
}

const msgpack = new Encoder({ useBigInt64: true });
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

function toBig(h: WireHash): bigint {
  if (typeof h === "bigint") return BigInt.asUintN(64, h);
  let v = 0n;
  for (let i = Math.max(0, h.length - 8); i < h.length; i++) v = (v << 8n) | BigInt(h[i]);
  return v;
}

/** A bigint as a number when exact (so msgpack picks the smallest integer format). */
function small(v: bigint): bigint | number {
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

function hash(h: WireHash, mode: "u64" | "i64" | "bytes"): unknown {
  if (mode === "bytes") {
    if (h instanceof Uint8Array) return h;
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, h));
    return out;
  }
  const u = toBig(h);
  return small(mode === "i64" ? BigInt.asIntN(64, u) : u);
}

/** Drops trailing null fields (msgspec's omit_defaults for array-like structs). */
function trimmed(fields: unknown[], required: number): unknown[] {
  let end = fields.length;
  while (end > required && fields[end - 1] == null) end--;
  return fields.slice(0, end);
}

function eventValue(e: WireEvent, o: Required<EncodeOptions>): unknown {
  const hs = (list: readonly WireHash[]) => list.map((h) => hash(h, o.hashes));
  if (e.type === "BlockStored") {
    const required: [string, unknown][] = [
      ["block_hashes", hs(e.blockHashes)],
      ["parent_block_hash", e.parentBlockHash === null ? null : hash(e.parentBlockHash, o.hashes)],
      ["token_ids", e.tokenIds],
      ["block_size", e.blockSize],
      ["lora_id", e.loraId ?? null],
      ["medium", e.medium ?? null],
      ["lora_name", e.loraName ?? null],
    ];
    const optional: [string, unknown][] = [
      ["extra_keys", e.extraKeys ?? null],
      ["group_idx", e.groupIdx ?? null],
    ];
    return shape(e.type, required, optional, o);
  }
  if (e.type === "BlockRemoved") {
    const required: [string, unknown][] = [
      ["block_hashes", hs(e.blockHashes)],
      ["medium", e.medium ?? null],
    ];
    return shape(e.type, required, [["group_idx", e.groupIdx ?? null]], o);
  }
  return shape(e.type, [], [], o);
}

function shape(
  tag: string,
  required: [string, unknown][],
  optional: [string, unknown][],
  o: Required<EncodeOptions>,
): unknown {
  if (o.events === "array") {
    return trimmed(
      [tag, ...required.map((f) => f[1]), ...optional.map((f) => f[1])],
      1 + required.length,
    );
  }
  const m: Record<string, unknown> = { type: tag };
  for (const [k, v] of required) m[k] = v;
  for (const [k, v] of optional) if (v != null) m[k] = v;
  return m;
}

function float64(ts: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = 0xcb;
  new DataView(out.buffer).setFloat64(1, ts);
  return out;
}

/** Encodes one batch; see the module comment for the layout. */
export function encodeBatch(
  ts: number,
  events: readonly WireEvent[],
  options: EncodeOptions = {},
  dataParallelRank: number | null = null,
): Uint8Array {
  const o: Required<EncodeOptions> = {
    events: options.events ?? "array",
    batch: options.batch ?? "array",
    hashes: options.hashes ?? "u64",
  };
  const evs = msgpack.encode(events.map((e) => eventValue(e, o)));
  const rank = dataParallelRank === null ? null : msgpack.encode(dataParallelRank);
  if (o.batch === "array") {
    const head = Uint8Array.of(rank === null ? 0x92 : 0x93);
    return concatBytes(rank === null ? [head, float64(ts), evs] : [head, float64(ts), evs, rank]);
  }
  const key = (k: string) => msgpack.encode(k);
  const parts = [
    Uint8Array.of(rank === null ? 0x82 : 0x83),
    key("ts"),
    float64(ts),
    key("events"),
    evs,
  ];
  if (rank !== null) parts.push(key("data_parallel_rank"), rank);
  return concatBytes(parts);
}
