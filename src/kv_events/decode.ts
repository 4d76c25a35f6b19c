/**
 * Decoding engine KV event payloads (msgpack) into {@link KvEventBatch}.
 *
 * Accepted shapes (KV-EVENTS.md):
 * - Batch: an array `[ts, events, data_parallel_rank?]` (trailing fields may be missing) or a map
 *   `{ts, events, data_parallel_rank}`.
 * - Event: a tagged array (element 0 is the type name, then the fields in declaration order,
 *   trailing ones omitted) or a map with a `type` key. Types: BlockStored, BlockRemoved,
 *   AllBlocksCleared, and TierBlocksCleared (an AllBlocksCleared for one medium).
 * - Block hashes: unsigned 64-bit (msgpack uint64 decodes to a BigInt, so values above 2^53 stay
 *   exact), signed 64-bit (SGLang) or bytes; normalised as `types.ts` says.
 * - `extra_keys`: vLLM's typed entries (maps tagged `lora`, `cache_salt`, `mm`, `prompt_embeds`,
 *   `legacy`) or the older bare values, classified as vLLM builds them: a string equal to the
 *   event's LoRA name is the LoRA (the first string, when only `lora_id` is given), any other
 *   string is the cache salt, `[string, int]` is a multimodal item, bytes are a prompt-embedding
 *   hash.
 *
 * Never throws. Unknown fields and unknown event types are skipped and counted; an event whose
 * known fields have the wrong types (or whose token count is not blocks × block size) is dropped
 * and counted in `malformedEvents`, the rest of its batch still applies; a payload that is not
 * msgpack, or not a batch, returns null and counts in `malformedBatches`.
 *
 * Limits: strings and byte strings over 1 MiB, arrays over 4 Mi entries and maps over 64 Ki
 * entries are refused by the msgpack decoder before it allocates them (the payload itself is
 * already bounded by the transport's message limit).
 *
 * Cost: one msgpack decode; then per event a field walk and, per block, one hash conversion
 * (BigInt arithmetic only for values that arrived as 64-bit); token ids are checked, not copied.
 *
 * @module
 */

import { Decoder } from "@msgpack/msgpack";
import type { BlockStored, EngineHashes, ExtraKey, KvEvent, KvEventBatch } from "./types.ts";

/** Counters of one decoder, for metrics. */
export interface DecodeStats {
  batches: number;
  events: number;
  malformedBatches: number;
  malformedEvents: number;
  unknownEvents: number;
  unknownFields: number;
}

const STORED_FIELDS = [
  "block_hashes",
  "parent_block_hash",
  "token_ids",
  "block_size",
  "lora_id",
  "medium",
  "lora_name",
  "extra_keys",
  "group_idx",
  "kv_cache_spec_kind",
  "kv_cache_spec_sliding_window",
] as const;
const REMOVED_FIELDS = ["block_hashes", "medium", "group_idx"] as const;
const CLEARED_FIELDS = ["medium"] as const;
/** Fields known in the map encoding beyond the array ones (ignored without counting). */
const KNOWN_MAP_EXTRAS = new Set(["type", "event_version", "locality", "ownership"]);

type Fields = Record<string, unknown>;

/** Thrown inside the decoder for a malformed event; never leaves this module. */
class Malformed extends Error {}

/** A reusable decoder with counters; see the module comment. */
export class KvEventDecoder {
  readonly #msgpack = new Decoder({
    useBigInt64: true,
    maxStrLength: 1 << 20,
    maxBinLength: 1 << 20,
    maxArrayLength: 1 << 22,
    maxMapLength: 1 << 16,
    maxExtLength: 1 << 16,
  });
  readonly stats: DecodeStats = {
    batches: 0,
    events: 0,
    malformedBatches: 0,
    malformedEvents: 0,
    unknownEvents: 0,
    unknownFields: 0,
  };

  /** Decodes one payload; null (counted) when it is not a batch. */
  decode(payload: Uint8Array): KvEventBatch | null {
    let raw: unknown;
    try {
      raw = this.#msgpack.decode(payload);
    } catch {
      this.stats.malformedBatches++;
      return null;
    }
    let ts: unknown, events: unknown, rank: unknown;
    if (Array.isArray(raw)) {
      [ts, events, rank] = raw;
      if (raw.length > 3) this.stats.unknownFields += raw.length - 3;
    } else if (isMap(raw)) {
      ({ ts, events, data_parallel_rank: rank } = raw);
      for (const k in raw) {
        if (k !== "ts" && k !== "events" && k !== "data_parallel_rank") {
          this.stats.unknownFields++;
        }
      }
    }
    const time = num(ts);
    if (time === null || !Array.isArray(events) || !(rank == null || int(rank) !== null)) {
      this.stats.malformedBatches++;
      return null;
    }
    const out: KvEvent[] = [];
    for (const e of events) {
      const ev = this.#event(e);
      if (ev !== null) out.push(ev);
    }
    this.stats.batches++;
    this.stats.events += out.length;
    return { ts: time, events: out, dataParallelRank: rank == null ? null : int(rank) };
  }

  #event(raw: unknown): KvEvent | null {
    const tag = Array.isArray(raw) ? raw[0] : isMap(raw) ? raw.type : undefined;
    const names = fieldNames(tag);
    if (names === null) return this.#unknown(tag);
    let fields: Fields;
    if (Array.isArray(raw)) {
      fields = {};
      for (let i = 0; i < names.length && i + 1 < raw.length; i++) fields[names[i]] = raw[i + 1];
      if (raw.length > names.length + 1) this.stats.unknownFields += raw.length - names.length - 1;
    } else {
      fields = raw as Fields;
      for (const k in fields) {
        if (!KNOWN_MAP_EXTRAS.has(k) && !names.includes(k)) this.stats.unknownFields++;
      }
    }
    try {
      switch (tag) {
        case "BlockStored":
          return storedEvent(fields);
        case "BlockRemoved":
          return {
            type: "BlockRemoved",
            blockHashes: hashList(fields.block_hashes),
            medium: optStr(fields.medium),
            groupIdx: optInt(fields.group_idx),
          };
        case "AllBlocksCleared":
        case "TierBlocksCleared":
          return { type: "AllBlocksCleared", medium: optStr(fields.medium) };
        default:
          return this.#unknown(tag);
      }
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      this.stats.malformedEvents++;
      return null;
    }
  }

  /** An event of a type we do not know (counted) or not an event at all (malformed). */
  #unknown(tag: unknown): null {
    if (typeof tag === "string") this.stats.unknownEvents++;
    else this.stats.malformedEvents++;
    return null;
  }
}

function fieldNames(tag: unknown): readonly string[] | null {
  switch (tag) {
    case "BlockStored":
      return STORED_FIELDS;
    case "BlockRemoved":
      return REMOVED_FIELDS;
    case "AllBlocksCleared":
    case "TierBlocksCleared":
      return CLEARED_FIELDS;
    default:
      return null;
  }
}

function storedEvent(f: Fields): BlockStored {
  const blockHashes = hashList(f.block_hashes);
  const blocks = blockHashes.length >>> 1;
  const blockSize = int(f.block_size);
  if (blockSize === null || blockSize < 1) throw new Malformed();
  const tokenIds = f.token_ids;
  if (!Array.isArray(tokenIds)) throw new Malformed();
  if (tokenIds.length !== 0 && tokenIds.length !== blocks * blockSize) throw new Malformed();
  for (const t of tokenIds) {
    if (typeof t !== "number" || !(t >= 0 && t <= 0xffffffff) || t !== Math.floor(t)) {
      throw new Malformed();
    }
  }
  const parent = f.parent_block_hash == null ? null : hashList([f.parent_block_hash]);
  const loraName = optStr(f.lora_name);
  const loraId = optInt(f.lora_id);
  return {
    type: "BlockStored",
    blockHashes,
    parentBlockHash: parent,
    tokenIds,
    blockSize,
    loraId,
    medium: optStr(f.medium),
    loraName,
    extraKeys: extraKeys(f.extra_keys, blocks, loraName, loraId),
    groupIdx: optInt(f.group_idx),
    locality: optStr(f.locality),
  };
}

function isMap(v: unknown): v is Fields {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function num(v: unknown): number | null {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "bigint") return Number(v);
  return null;
}

function int(v: unknown): number | null {
  if (typeof v === "number" && Number.isSafeInteger(v)) return v;
  if (
    typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) &&
    v <= BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    return Number(v);
  }
  return null;
}

function optInt(v: unknown): number | null {
  if (v == null) return null;
  const n = int(v);
  if (n === null) throw new Malformed();
  return n;
}

function optStr(v: unknown): string | null {
  if (v == null) return null;
  if (typeof v !== "string") throw new Malformed();
  return v;
}

const TWO32 = 0x100000000;

/** Engine hashes as `[hi, lo]` pairs; throws Malformed for a value of another type. */
function hashList(v: unknown): EngineHashes {
  if (!Array.isArray(v)) throw new Malformed();
  const out = new Uint32Array(v.length * 2);
  for (let i = 0; i < v.length; i++) {
    const h = v[i];
    if (typeof h === "number") {
      if (!Number.isSafeInteger(h)) throw new Malformed();
      out[2 * i] = Math.floor(h / TWO32); // two's complement hi for negatives, stored mod 2^32
      out[2 * i + 1] = h >>> 0;
    } else if (typeof h === "bigint") {
      const u = BigInt.asUintN(64, h);
      out[2 * i] = Number(u >> 32n);
      out[2 * i + 1] = Number(u & 0xffffffffn);
    } else if (h instanceof Uint8Array) {
      let hi = 0, lo = 0;
      for (let b = Math.max(0, h.length - 8); b < h.length; b++) {
        hi = ((hi << 8) | (lo >>> 24)) >>> 0;
        lo = ((lo << 8) | h[b]) >>> 0;
      }
      out[2 * i] = hi;
      out[2 * i + 1] = lo;
    } else {
      throw new Malformed();
    }
  }
  return out;
}

function extraKeys(
  v: unknown,
  blocks: number,
  loraName: string | null,
  loraId: number | null,
): (ExtraKey[] | null)[] | null {
  if (v == null) return null;
  if (!Array.isArray(v) || v.length > blocks) throw new Malformed();
  return v.map((entry) => {
    if (entry == null) return null;
    if (!Array.isArray(entry)) throw new Malformed();
    let sawLora = false;
    return entry.map((item): ExtraKey => {
      const key = typedKey(item) ?? legacyKey(item, loraName, loraId !== null && !sawLora);
      if (key.kind === "lora") sawLora = true;
      return key;
    });
  });
}

function typedKey(item: unknown): ExtraKey | null {
  if (!isMap(item) || typeof item.type !== "string") return null;
  switch (item.type) {
    case "lora":
      return typeof item.name === "string" ? { kind: "lora", name: item.name } : other(item);
    case "cache_salt":
      return typeof item.salt === "string" ? { kind: "cache_salt", salt: item.salt } : other(item);
    case "mm":
      return typeof item.hash === "string"
        ? { kind: "mm", hash: item.hash, offset: int(item.block_offset) ?? 0 }
        : other(item);
    case "prompt_embeds":
      return { kind: "prompt_embeds", hash: repr(item.hash) };
    case "legacy":
      return { kind: "other", repr: repr(item.value) };
    default:
      return other(item);
  }
}

function legacyKey(item: unknown, loraName: string | null, firstLora: boolean): ExtraKey {
  if (typeof item === "string") {
    if (item === loraName || (loraName === null && firstLora)) return { kind: "lora", name: item };
    return { kind: "cache_salt", salt: item };
  }
  if (
    Array.isArray(item) && item.length === 2 && typeof item[0] === "string" && int(item[1]) !== null
  ) {
    return { kind: "mm", hash: item[0], offset: int(item[1])! };
  }
  if (item instanceof Uint8Array) return { kind: "prompt_embeds", hash: repr(item) };
  return other(item);
}

function other(item: unknown): ExtraKey {
  return { kind: "other", repr: repr(item) };
}

/** A stable text form of any decoded value (hex for bytes), cut at 4 KiB. */
function repr(v: unknown): string {
  const s = JSON.stringify(v, (_k, x) => {
    if (typeof x === "bigint") return `${x}n`;
    if (x instanceof Uint8Array) {
      return Array.from(x, (b) => b.toString(16).padStart(2, "0")).join("");
    }
    return x;
  }) ?? "null";
  return s.length > 4096 ? s.slice(0, 4096) : s;
}
