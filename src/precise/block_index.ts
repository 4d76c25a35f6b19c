/**
 * The precise index: what each engine holds, learned from its KV cache events, keyed by the
 * router's own block hashes (`block_hash.ts`) so a request's tokens can be matched directly.
 *
 * Rules:
 * - BlockStored: the event's blocks chain from its parent. A root event (no parent) starts from
 *   the seed of its LoRA name (`lora_name`, else a LoRA extra key, else `lora_id` as `#id`) and
 *   its cache salt (a `cache_salt` extra key of block 0); a child event continues from the
 *   parent's own hash, found through the engine-hash map. A child whose parent is unknown (stored
 *   before the router listened, or evicted here by the cap) cannot be placed: its blocks are
 *   skipped and counted as orphans. Each block's tokens (and its multimodal or other extra keys)
 *   are absorbed, and the block is stored under engine hash → own hash on the event's tier
 *   (`medium` GPU or null → GPU, CPU → CPU, anything else or a REMOTE locality → other). An event
 *   without tokens (an offload tier) adds its tier to blocks already known by engine hash.
 * - BlockRemoved drops the tier from each block; AllBlocksCleared empties the worker (or the one
 *   tier it names).
 * - Events of another KV cache group than `groupIdx` (hybrid models publish one stream per
 *   group; a null group counts as 0) and, when `blockSize` is set, of another block size are
 *   skipped and counted: mixing them would let a sliding-window group's evictions remove blocks
 *   the full-attention group still holds, or match with the wrong block boundaries.
 * - `match(worker, hashes)` counts the leading blocks of `hashes` that the worker holds on any
 *   tier or has an unexpired prediction for; `matchTiers` splits that count by the best tier
 *   holding each block (GPU before CPU before other, then predicted), so a strategy can score
 *   lower tiers lower. Matching never changes recency.
 * - `predict(worker, hashes, ttlMs)` (default `predictTtlMs`, 2 s) leaves predicted entries for a
 *   request just routed, so a burst of the same prefix in the milliseconds before the engine's
 *   BlockStored arrives goes to the same worker; the store confirms them, the TTL drops them.
 *   Time comes only from the injected `clock`.
 * - Memory: at most `maxBlocksPerWorker` slots per worker (default 262 144: 4 M tokens at block
 *   size 16) and `maxBlocks` over all workers (default 2 097 152); past either, the least
 *   recently stored slot goes (of the worker itself, or of the largest worker for the router-wide
 *   cap). 49-98 bytes per slot (`worker_blocks.ts`), so the defaults bound the index at about
 *   200 MiB.
 *
 * Cost (`block_index_bench.ts`): storing and then removing a 93-block event about 22 µs (the
 * hash of its tokens, two table inserts and two deletes per block); a match is one table probe
 * per block: 93 blocks on 4 workers in about 3 µs.
 *
 * `view(worker)` adapts one worker to the `PrefixIndex` contract (`insert` = predict,
 * `truncate` = drop predictions past a prefix), so strategies read precise matches unchanged;
 * `sink(worker)` adapts one worker to a `KvEventSubscriber`'s sink.
 *
 * @module
 */

import type { ChunkHashes, PrefixIndex, PrefixIndexStats } from "../prefix/types.ts";
import type { ClearReason, KvEventSink } from "../kv_events/subscriber.ts";
import type { BlockStored, ExtraKey, KvEvent, KvEventBatch } from "../kv_events/types.ts";
import type { Clock } from "../util/clock.ts";
import { absorbExtra, absorbTokens, lanesHi, lanesLo, seedLanes, setLanes } from "./block_hash.ts";
import { PREDICTED, TIER_CPU, TIER_GPU, TIER_OTHER, WorkerBlocks } from "./worker_blocks.ts";

/** Settings of the index. */
export interface BlockIndexOptions {
  readonly clock: Clock;
  readonly maxBlocksPerWorker?: number;
  readonly maxBlocks?: number;
  /** Default lifetime of a prediction, ms; default 2000. */
  readonly predictTtlMs?: number;
  /** Predictions held per worker at most; default 16 384. */
  readonly maxPredictedPerWorker?: number;
  /** KV cache group indexed; default 0. */
  readonly groupIdx?: number;
  /** Expected block size; events of another are skipped. Default: any. */
  readonly blockSize?: number;
}

/** A match split by tier. */
export interface BlockMatch {
  /** Leading blocks held or predicted (`gpu + cpu + other + predicted`). */
  readonly blocks: number;
  readonly gpu: number;
  readonly cpu: number;
  readonly other: number;
  /** Blocks matched only through predictions. */
  readonly predicted: number;
}

/** Counters of the whole index. */
export interface BlockIndexStats {
  readonly workers: number;
  /** Blocks held over all workers (not predictions). */
  readonly blocks: number;
  readonly predicted: number;
  /** Typed-array bytes held. */
  readonly bytes: number;
  readonly stored: number;
  readonly removed: number;
  /** Blocks skipped because their parent was unknown. */
  readonly orphans: number;
  /** Slots freed by the caps. */
  readonly evictions: number;
  /** Events skipped for another group or block size. */
  readonly skipped: number;
  readonly clears: number;
}

const NO_MATCH: BlockMatch = { blocks: 0, gpu: 0, cpu: 0, other: 0, predicted: 0 };

/** Tier of a medium name and locality. */
export function tierOf(medium: string | null, locality: string | null = null): number {
  if (locality !== null && locality.toUpperCase() === "REMOTE") return TIER_OTHER;
  if (medium === null) return TIER_GPU;
  const m = medium.toUpperCase();
  return m === "GPU" ? TIER_GPU : m === "CPU" ? TIER_CPU : TIER_OTHER;
}

interface Worker {
  readonly blocks: WorkerBlocks;
  inserts: number;
  queries: number;
}

/** The router-wide precise index; see the module comment. */
export class BlockIndex {
  readonly #clock: Clock;
  readonly #perWorker: number;
  readonly #maxBlocks: number;
  readonly #ttl: number;
  readonly #maxPredicted: number;
  readonly #group: number;
  readonly #blockSize: number | null;
  readonly #workers = new Map<string, Worker>();
  readonly #views = new Map<string, PrefixIndex>();
  #total = 0;
  #stored = 0;
  #removed = 0;
  #orphans = 0;
  #skipped = 0;
  #clears = 0;

  constructor(options: BlockIndexOptions) {
    this.#clock = options.clock;
    this.#perWorker = options.maxBlocksPerWorker ?? 262_144;
    this.#maxBlocks = options.maxBlocks ?? 2_097_152;
    this.#ttl = options.predictTtlMs ?? 2000;
    this.#maxPredicted = options.maxPredictedPerWorker ?? 16_384;
    this.#group = options.groupIdx ?? 0;
    this.#blockSize = options.blockSize ?? null;
  }

  /** Creates the worker's store when missing (workers are also created on first event). */
  addWorker(worker: string): void {
    this.#worker(worker);
  }

  /** Forgets a worker and frees its memory. */
  removeWorker(worker: string): void {
    const w = this.#workers.get(worker);
    if (w === undefined) return;
    w.blocks.clear();
    this.#workers.delete(worker);
    this.#views.delete(worker);
  }

  /** Known workers. */
  workers(): string[] {
    return [...this.#workers.keys()];
  }

  /** Empties one worker (engine restarted, events lost). */
  clearWorker(worker: string): void {
    const w = this.#workers.get(worker);
    if (w === undefined) return;
    this.#clears++;
    w.blocks.clear();
  }

  /** Applies one worker's events, in order. */
  apply(worker: string, events: readonly KvEvent[]): void {
    const w = this.#worker(worker).blocks;
    for (const e of events) {
      if (e.type === "BlockStored") this.#stored1(w, e);
      else if (e.type === "BlockRemoved") {
        if ((e.groupIdx ?? 0) !== this.#group) {
          this.#skipped++;
          continue;
        }
        const tier = tierOf(e.medium);
        const h = e.blockHashes;
        for (let i = 0; i < h.length; i += 2) if (w.remove(h[i], h[i + 1], tier)) this.#removed++;
      } else if (e.medium === null) {
        this.#clears++;
        w.clear();
      } else {
        w.clearTier(tierOf(e.medium));
      }
    }
  }

  #stored1(w: WorkerBlocks, e: BlockStored): void {
    if (
      (e.groupIdx ?? 0) !== this.#group ||
      (this.#blockSize !== null && e.blockSize !== this.#blockSize)
    ) {
      this.#skipped++;
      return;
    }
    const tier = tierOf(e.medium, e.locality);
    const h = e.blockHashes;
    const n = h.length >>> 1;
    if (e.tokenIds.length === 0) {
      for (let i = 0; i < n; i++) if (!w.addTier(h[2 * i], h[2 * i + 1], tier)) this.#orphans++;
      return;
    }
    if (e.parentBlockHash !== null) {
      const p = w.engineSlot(e.parentBlockHash[0], e.parentBlockHash[1]);
      if (p < 0) {
        this.#orphans += n;
        return;
      }
      setLanes(w.ownHiOf(p), w.ownLoOf(p));
    } else {
      seedLanes(rootKey(e));
    }
    const bs = e.blockSize;
    for (let i = 0; i < n; i++) {
      absorbTokens(e.tokenIds, i * bs, (i + 1) * bs);
      const extra = otherExtras(e.extraKeys?.[i] ?? null);
      if (extra !== null) absorbExtra(extra);
      const oHi = lanesHi();
      const oLo = lanesLo();
      w.store(h[2 * i], h[2 * i + 1], oHi, oLo, tier);
      this.#stored++;
    }
  }

  /** Leaves predicted entries for `hashes` on `worker` for `ttlMs`. */
  predict(worker: string, hashes: ChunkHashes, ttlMs = this.#ttl): void {
    const wk = this.#worker(worker);
    wk.inserts++;
    const now = this.#clock.now();
    wk.blocks.sweep(now);
    for (let i = 0; i + 1 < hashes.length; i += 2) {
      wk.blocks.predict(hashes[i], hashes[i + 1], now + ttlMs);
    }
  }

  /** Drops predictions for the blocks of `hashes` past the first `keep`. */
  unpredict(worker: string, hashes: ChunkHashes, keep: number): void {
    const w = this.#workers.get(worker);
    if (w === undefined) return;
    for (let i = Math.max(0, keep) * 2; i + 1 < hashes.length; i += 2) {
      w.blocks.unpredict(hashes[i], hashes[i + 1]);
    }
  }

  /** Leading blocks of `hashes` that `worker` holds or is predicted to hold. */
  match(worker: string, hashes: ChunkHashes): number {
    const wk = this.#workers.get(worker);
    if (wk === undefined) return 0;
    wk.queries++;
    const w = wk.blocks;
    const now = this.#clock.now();
    let n = 0;
    for (let i = 0; i + 1 < hashes.length; i += 2, n++) {
      if (w.lookup(hashes[i], hashes[i + 1], now) === 0) break;
    }
    return n;
  }

  /** `match`, split by the best tier holding each block. */
  matchTiers(worker: string, hashes: ChunkHashes): BlockMatch {
    const wk = this.#workers.get(worker);
    if (wk === undefined) return NO_MATCH;
    wk.queries++;
    const w = wk.blocks;
    const now = this.#clock.now();
    let gpu = 0, cpu = 0, other = 0, predicted = 0;
    for (let i = 0; i + 1 < hashes.length; i += 2) {
      const f = w.lookup(hashes[i], hashes[i + 1], now);
      if (f === 0) break;
      if (f === PREDICTED) predicted++;
      else if ((f & (1 << TIER_GPU)) !== 0) gpu++;
      else if ((f & (1 << TIER_CPU)) !== 0) cpu++;
      else other++;
    }
    return { blocks: gpu + cpu + other + predicted, gpu, cpu, other, predicted };
  }

  /** Blocks `worker` holds (not predictions). */
  blocks(worker: string): number {
    return this.#workers.get(worker)?.blocks.blocks ?? 0;
  }

  /** Counters over all workers. */
  stats(): BlockIndexStats {
    let blocks = 0, predicted = 0, bytes = 0, evictions = 0;
    for (const w of this.#workers.values()) {
      blocks += w.blocks.blocks;
      predicted += w.blocks.predicted;
      bytes += w.blocks.bytes;
      evictions += w.blocks.evictions;
    }
    return {
      workers: this.#workers.size,
      blocks,
      predicted,
      bytes,
      stored: this.#stored,
      removed: this.#removed,
      orphans: this.#orphans,
      evictions,
      skipped: this.#skipped,
      clears: this.#clears,
    };
  }

  /** One worker as a `PrefixIndex` (cached; the same object for the same worker). */
  view(worker: string): PrefixIndex {
    let v = this.#views.get(worker);
    if (v === undefined) {
      v = new WorkerView(this, worker, this.#perWorker, () => this.#workers.get(worker));
      this.#views.set(worker, v);
    }
    return v;
  }

  /** One worker as a subscriber's sink: batches are applied, clears empty the worker. */
  sink(worker: string): KvEventSink {
    return {
      batch: (batch: KvEventBatch) => this.apply(worker, batch.events),
      clear: (_reason: ClearReason) => this.clearWorker(worker),
    };
  }

  #worker(id: string): Worker {
    let w = this.#workers.get(id);
    if (w === undefined) {
      const budget = {
        reserve: () => {
          if (this.#total >= this.#maxBlocks) this.#evictLargest();
        },
        change: (d: number) => {
          this.#total += d;
        },
      };
      w = {
        blocks: new WorkerBlocks(this.#perWorker, this.#maxPredicted, budget),
        inserts: 0,
        queries: 0,
      };
      this.#workers.set(id, w);
    }
    return w;
  }

  #evictLargest(): void {
    let best: WorkerBlocks | null = null;
    for (const w of this.#workers.values()) {
      if (best === null || w.blocks.used > best.used) best = w.blocks;
    }
    best?.evictOne();
  }
}

/** The seed key of a root BlockStored: LoRA and cache salt, as the module comment says. */
function rootKey(e: BlockStored): { loraName: string | null; cacheSalt: string | null } | null {
  let lora = e.loraName;
  let salt: string | null = null;
  const first = e.extraKeys?.[0];
  if (first) {
    for (const k of first) {
      if (k.kind === "cache_salt" && salt === null) salt = k.salt;
      else if (k.kind === "lora" && lora === null) lora = k.name;
    }
  }
  if (lora === null && e.loraId !== null) lora = `#${e.loraId}`;
  return lora === null && salt === null ? null : { loraName: lora, cacheSalt: salt };
}

/** The extra keys of one block that are not LoRA or salt, as stable text; null when none. */
function otherExtras(keys: readonly ExtraKey[] | null): string | null {
  if (keys === null) return null;
  let out: string | null = null;
  for (const k of keys) {
    if (k.kind === "lora" || k.kind === "cache_salt") continue;
    const part = k.kind === "mm"
      ? `mm:${k.hash}:${k.offset}`
      : k.kind === "prompt_embeds"
      ? `pe:${k.hash}`
      : `x:${k.repr}`;
    out = out === null ? part : `${out}|${part}`;
  }
  return out;
}

/** One worker of a {@link BlockIndex} as a `PrefixIndex`. */
class WorkerView implements PrefixIndex {
  readonly #index: BlockIndex;
  readonly #worker: string;
  readonly #max: number;
  readonly #get: () => Worker | undefined;

  constructor(index: BlockIndex, worker: string, max: number, get: () => Worker | undefined) {
    this.#index = index;
    this.#worker = worker;
    this.#max = max;
    this.#get = get;
  }

  match(hashes: ChunkHashes): number {
    return this.#index.match(this.#worker, hashes);
  }

  insert(hashes: ChunkHashes): void {
    this.#index.predict(this.#worker, hashes);
  }

  truncate(hashes: ChunkHashes, keepChunks: number): void {
    this.#index.unpredict(this.#worker, hashes, keepChunks);
  }

  clear(): void {
    this.#index.clearWorker(this.#worker);
  }

  get chunks(): number {
    return this.#get()?.blocks.blocks ?? 0;
  }

  stats(): PrefixIndexStats {
    const w = this.#get();
    return {
      chunks: w?.blocks.blocks ?? 0,
      terminals: 0,
      maxChunks: this.#max,
      inserts: w?.inserts ?? 0,
      queries: w?.queries ?? 0,
      evictions: w?.blocks.evictions ?? 0,
    };
  }
}
