/**
 * PrefixSync: router replicas share their routing records through one Redis stream, so every
 * replica's per-worker prefix index converges on what all replicas sent to that worker.
 *
 * Rule:
 * - Publish: each local routing record (`insert` of a request's chunk-hash chain into worker W's
 *   index, or a `truncate`) is queued and written with `XADD <stream> MAXLEN ~ <maxLen> * …`.
 *   `publish` only appends to a local queue and schedules a flush on a microtask: the request path
 *   never waits for Redis. One pipeline is in flight at a time; records that arrive meanwhile ride
 *   in the next one, so batches grow with load (one round trip per batch, not per request).
 * - Apply: a second connection loops on `XREAD COUNT <n> BLOCK <ms> STREAMS <stream> <lastId>`.
 *   Records of this replica are skipped; others go to `indexFor(worker)` (a worker this replica
 *   does not know, or a record made with another chunk size, is counted as ignored).
 * - Start: the reader begins `catchUpMs` before Redis's clock (0 = only new records), so a replica
 *   that starts late can warm its trees from the stream's retained history.
 * - Redis away: routing goes on with local records only. Both connections retry with capped
 *   backoff (ioredis `retryStrategy`, never giving up). Local records wait in a bounded queue
 *   (`queueMax`; the oldest is dropped first and counted). On reconnect the queue is written and
 *   the reader resumes from the last entry it saw, so records published meanwhile by replicas that
 *   could still reach Redis are caught up (as far as `MAXLEN` kept them). A Redis that restarted
 *   empty simply has no history: trees re-converge from new traffic.
 * - State: `connected` is true while both connections are ready; every change is logged (warn on
 *   loss, info on recovery) and reported to `onStateChange`. `stats()` gives the numbers for
 *   metrics.
 *
 * Cost: publishing is one `Uint32Array` copy per request on the request path; encoding (base64,
 * 8 bytes per chunk) happens in the flush. Applying is one `PrefixIndex.insert` per remote record.
 * Redis memory: about `maxLen × (chunks × 10.7 + 60)` bytes.
 *
 * Ownership: nothing starts in the constructor; `start()` connects and `stop()` writes what is
 * queued (bounded by `stopFlushMs`), closes both connections and ends the read loop.
 *
 * @module
 */

import { Redis } from "ioredis";
import { HASH_SCHEME } from "../prefix/chunker.ts";
import type { ChunkHashes, PrefixIndex } from "../prefix/types.ts";
import { sleep } from "../util/sleep.ts";
import { parseRecord, recordFields } from "./codec.ts";
import { DEFAULT_STREAM } from "./section.ts";
import {
  type PrefixSyncStats,
  quietLogger,
  type SyncedRouter,
  type SyncLogger,
  type SyncRecord,
} from "./types.ts";
import { errorMessage } from "../util/errors.ts";
import { tapIndex, untap } from "./index_tap.ts";
import { Queue } from "./queue.ts";
import { closeClient, defaultReplicaId, redactRedisUrl } from "./redis_util.ts";

export { defaultReplicaId, redactRedisUrl };

export { DEFAULT_STREAM };

/** Options of {@linkcode PrefixSync}. */
export interface PrefixSyncOptions {
  /** `redis://[:password@]host:port[/db]` (or `rediss://`). */
  readonly url: string;
  /** This replica's id, unique among replicas (records with it are skipped on read). */
  readonly replicaId: string;
  /** Where another replica's record for `workerId` is applied; `undefined`: worker unknown here. */
  indexFor(workerId: string): PrefixIndex | undefined;
  /** Stream key (default {@linkcode DEFAULT_STREAM}); replicas of one fleet share it. */
  readonly stream?: string;
  /** Chunk size of this router; records made with another one are ignored. 0 = do not check. */
  readonly chunkSize?: number;
  /**
   * Hash scheme this replica publishes and accepts, default {@linkcode HASH_SCHEME}: records made
   * with another rule (a replica of an older version during an upgrade) are ignored, not applied.
   */
  readonly hashScheme?: number;
  /** Approximate stream length kept by Redis (`MAXLEN ~`), default 50000. */
  readonly maxLen?: number;
  /** History read at start, ms before Redis's clock; default 0 (new records only). */
  readonly catchUpMs?: number;
  /** Local records kept while Redis is away; default 10000. */
  readonly queueMax?: number;
  /** Records per pipeline at most; default 512. */
  readonly batchMax?: number;
  /** Entries per XREAD at most; default 512. */
  readonly readCount?: number;
  /** XREAD block time, ms; also how often the reader looks for new backends. Default 1000. */
  readonly blockMs?: number;
  /** Longest wait between reconnect attempts, ms; default 2000. */
  readonly reconnectMaxMs?: number;
  /**
   * A Redis that keeps the connection open but answers nothing (a hung server, a blackholed path)
   * is given up after this long without a reply, ms, and reconnected: writes wait this long, a
   * blocking read `blockMs` more. Default 5000.
   */
  readonly commandTimeoutMs?: number;
  /** Time `stop()` gives the last flush, ms; default 1000. */
  readonly stopFlushMs?: number;
  /** Wall clock for the record's `time` (ms since the epoch); default `Date.now`. */
  readonly now?: () => number;
  readonly logger?: SyncLogger;
  /** Called on every change of `connected`. */
  readonly onStateChange?: (connected: boolean) => void;
}

/** The largest sequence number of a stream entry id (`<ms>-<seq>`, seq a 64-bit integer). */
const MAX_SEQ = "18446744073709551615";

/** Wait before writing again after a write failed, ms. */
const RETRY_WRITE_MS = 100;

/** A local record waiting to be written. */
interface Pending {
  readonly worker: string;
  readonly op: "insert" | "truncate";
  readonly hashes: ChunkHashes;
  readonly keepChunks: number;
  readonly time: number;
}

/** Shares routing records between router replicas through a Redis stream. */
export class PrefixSync {
  readonly replicaId: string;
  readonly stream: string;
  readonly #o: PrefixSyncOptions;
  readonly #log: SyncLogger;
  readonly #now: () => number;
  readonly #queue = new Queue<Pending>();
  #writer: Redis | null = null;
  #reader: Redis | null = null;
  #readLoop: Promise<void> | null = null;
  #started = false;
  #stopped = false;
  #connected = false;
  #flushing: Promise<void> | null = null;
  #flushScheduled = false;
  /** Timer of the retry after a failed write (see `#flush`). */
  #retry: ReturnType<typeof setTimeout> | null = null;
  /** This process's incarnation, written into every record (see `SyncRecord.incarnation`). */
  readonly #incarnation = crypto.randomUUID().slice(0, 8);
  /** A command timed out: Redis holds the connection but answers nothing (see `#hungUp`). */
  #hung = false;
  /** Last stream id read; null until the reader first connected. */
  #lastId: string | null = null;
  /** Set while a remote record is applied, so the `attach` taps do not publish it again. */
  #applying = false;
  /** Wakes the read loop when it waits for the reader to be ready. */
  #wake: (() => void) | null = null;
  /** Set by `attach`: looks for backends added since the last look. */
  #refresh: (() => void) | null = null;
  /** Set by `attach`: removes the wrappers from the router's backends. */
  #untapAll: (() => void) | null = null;
  #stats = {
    published: 0,
    applied: 0,
    dropped: 0,
    ignored: 0,
    disconnects: 0,
    lastLagMs: 0,
  };

  constructor(options: PrefixSyncOptions) {
    if (options.replicaId === "") throw new RangeError("replica id must not be empty");
    this.#o = options;
    this.replicaId = options.replicaId;
    this.stream = options.stream ?? DEFAULT_STREAM;
    this.#log = options.logger ?? quietLogger;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Makes `router`'s backends publish through a new `PrefixSync`: each backend's prefix index gets
   * its `insert` (and `truncate`) wrapped so that, after the local change, the record is published.
   * Other replicas' records are applied to the backend with the same worker id. Backends added
   * later (a config reload, discovery) are picked up by `refresh()` and, at the latest, one
   * `blockMs` later by the read loop. `stop()` removes the wrappers.
   */
  static attach(
    router: SyncedRouter,
    options: Omit<PrefixSyncOptions, "indexFor">,
  ): PrefixSync {
    let byId = new Map<string, PrefixIndex>();
    const sync = new PrefixSync({ ...options, indexFor: (id) => byId.get(id) });
    const refresh = () => {
      const next = new Map<string, PrefixIndex>();
      for (const b of router.backends) {
        sync.tap(b.id, b.prefix);
        next.set(b.id, b.prefix);
      }
      byId = next;
    };
    sync.#refresh = refresh;
    sync.#untapAll = () => {
      for (const b of router.backends) untap(b.prefix);
    };
    refresh();
    return sync;
  }

  /** Re-reads the attached router's backends (call after a reload); no-op without `attach`. */
  refresh(): void {
    this.#refresh?.();
  }

  /**
   * Wraps `index` so that its inserts and truncates are published as `workerId`'s. Idempotent per
   * index. The wrapper calls the original first, so the local index never waits on the sync.
   */
  tap(workerId: string, index: PrefixIndex): void {
    if (this.#stopped) return;
    tapIndex(index, this, workerId, {
      insert: (hashes) => {
        if (!this.#applying) this.publish(workerId, hashes);
      },
      truncate: (hashes, keepChunks) => {
        if (!this.#applying) this.publishTruncate(workerId, hashes, keepChunks);
      },
    });
  }

  /** Whether both Redis connections are ready. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Counters for metrics. */
  stats(): PrefixSyncStats {
    return { ...this.#stats, connected: this.#connected, queued: this.#queue.length };
  }

  /**
   * Queues the record "this replica sent `hashes` to `workerId`". Never waits for Redis; copies
   * `hashes` (callers may reuse the buffer).
   */
  publish(workerId: string, hashes: ChunkHashes): void {
    if (hashes.length < 2) return;
    this.#enqueue({ worker: workerId, op: "insert", hashes: hashes.slice(), keepChunks: 0 });
  }

  /** Queues "`workerId` holds `hashes` only up to `keepChunks` chunks". */
  publishTruncate(workerId: string, hashes: ChunkHashes, keepChunks: number): void {
    this.#enqueue({ worker: workerId, op: "truncate", hashes: hashes.slice(), keepChunks });
  }

  #enqueue(p: Omit<Pending, "time">): void {
    if (this.#stopped) return;
    const max = this.#queueMax;
    while (this.#queue.length >= max) {
      this.#queue.shift();
      this.#stats.dropped++;
    }
    this.#queue.push({ ...p, time: this.#now() });
    this.#scheduleFlush();
  }

  /** Connects both connections (in the background) and starts the read loop. */
  start(): void {
    if (this.#started || this.#stopped) return; // after stop(): stays stopped
    this.#started = true;
    const maxWait = this.#o.reconnectMaxMs ?? 2000;
    const common = {
      lazyConnect: true,
      // Commands fail at once while disconnected: the queue here is the only buffer, bounded.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), maxWait),
      connectionName: `llm-cache-router:${this.replicaId}`,
      // RESP2: the reply shapes parsed here, and servers without HELLO (Redis < 6) work too.
      protocol: 2 as const,
    };
    const timeout = this.#o.commandTimeoutMs ?? 5000;
    this.#writer = new Redis(this.#o.url, { ...common, commandTimeout: timeout });
    this.#reader = new Redis(this.#o.url, {
      ...common,
      commandTimeout: (this.#o.blockMs ?? 1000) + timeout,
    });
    for (const c of [this.#writer, this.#reader]) {
      c.on("ready", () => {
        this.#hung = false;
        this.#onStatus();
      });
      c.on("close", () => this.#onStatus());
      c.on("end", () => this.#onStatus());
      // ioredis emits "error" for every failed connect; the state change says it once.
      c.on("error", (err: Error) => this.#log.debug("redis sync error", { error: err.message }));
      c.connect().catch(() => {/* retried by retryStrategy */});
    }
    this.#readLoop = this.#read();
    this.#log.info("redis sync starting", {
      url: redactRedisUrl(this.#o.url),
      stream: this.stream,
      replica: this.replicaId,
    });
  }

  /** Writes what is queued (bounded by `stopFlushMs`), closes the connections, ends the loop. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    if (!this.#started) {
      this.#untapAll?.();
      return;
    }
    if (this.#connected && this.#queue.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#flush(),
        new Promise<void>((r) => timer = setTimeout(r, this.#o.stopFlushMs ?? 1000)),
      ]);
      clearTimeout(timer);
    }
    await Promise.all([this.#writer, this.#reader].map((c) => c && closeClient(c)));
    this.#wake?.();
    await this.#readLoop;
    await this.#flushing;
    // After the read loop ended: it re-reads the backends (and taps new ones) after each read.
    this.#untapAll?.();
    this.#setConnected(false, true);
  }

  #onStatus(): void {
    // The reader counts once it knows where to read from, so nothing published after
    // `connected` turned true can be missed.
    const up = this.#writer?.status === "ready" && this.#reader?.status === "ready" &&
      this.#lastId !== null && !this.#hung;
    this.#setConnected(up, false);
    if (this.#reader?.status === "ready") this.#wake?.();
  }

  #setConnected(up: boolean, quiet: boolean): void {
    if (up === this.#connected) return;
    this.#connected = up;
    if (up) {
      this.#log.info("redis sync connected", {
        stream: this.stream,
        queued: this.#queue.length,
      });
      this.#scheduleFlush();
    } else if (!quiet && !this.#stopped) {
      this.#stats.disconnects++;
      {
        this.#log.warn("redis sync lost; routing on this replica's records only until it returns", {
          url: redactRedisUrl(this.#o.url),
        });
      }
    }
    try {
      this.#o.onStateChange?.(up);
    } catch (err) {
      this.#log.error("redis sync state listener failed", { error: String(err) });
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushing || this.#retry !== null || !this.#connected) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      void this.#flush();
    });
  }

  /** Writes queued records, one pipeline at a time, until the queue is empty or Redis is away. */
  #flush(): Promise<void> {
    // `.finally` runs on a later microtask, so `#flushing` is cleared after it was assigned even
    // when the writing finishes without awaiting anything.
    let failed = false;
    this.#flushing ??= this.#write().then((ok) => {
      failed = !ok;
    }, (err) => {
      failed = true;
      this.#log.error("redis sync write failed", { error: errorMessage(err) });
    }).finally(() => {
      this.#flushing = null;
      if (this.#queue.length === 0 || !this.#connected || this.#stopped) return;
      if (!failed) {
        this.#scheduleFlush();
        return;
      }
      // A write that failed at once (a connection going down, not yet reported closed) must not
      // be retried on the next microtask: that loop would starve the event loop that reports it.
      this.#retry = setTimeout(() => {
        this.#retry = null;
        this.#scheduleFlush();
      }, RETRY_WRITE_MS);
      Deno.unrefTimer(this.#retry);
    });
    return this.#flushing;
  }

  /** Writes queued records; false when a batch failed (the rest wait for the next flush). */
  async #write(): Promise<boolean> {
    const writer = this.#writer;
    const batchMax = this.#o.batchMax ?? 512;
    const maxLen = String(this.#o.maxLen ?? 50_000);
    const chunkSize = this.#o.chunkSize ?? 0;
    const hashScheme = this.#o.hashScheme ?? HASH_SCHEME;
    while (this.#queue.length > 0 && writer?.status === "ready") {
      const batch = this.#queue.take(batchMax);
      const pipe = writer.pipeline();
      for (const p of batch) {
        const fields = recordFields({
          ...p,
          replica: this.replicaId,
          incarnation: this.#incarnation,
          chunkSize,
          hashScheme,
        });
        pipe.call("XADD", this.stream, "MAXLEN", "~", maxLen, "*", ...fields);
      }
      let results: [Error | null, unknown][] | null;
      try {
        results = await pipe.exec();
      } catch (err) {
        this.#hungUp(writer, err);
        results = null;
      }
      for (const r of results ?? []) this.#hungUp(writer, r[0]);
      const failed = results === null ? batch : batch.filter((_, i) => results![i]?.[0] != null);
      this.#stats.published += batch.length - failed.length;
      if (failed.length > 0) {
        this.#requeue(failed);
        return false;
      }
    }
    return true;
  }

  /** Records kept at most: at least one, the record itself waits here until the flush. */
  get #queueMax(): number {
    return Math.max(1, this.#o.queueMax ?? 10_000);
  }

  /** Puts failed records back in front, keeping the bound (the oldest go first). */
  #requeue(failed: Pending[]): void {
    const max = this.#queueMax;
    const room = Math.max(0, max - this.#queue.length);
    const keep = failed.length > room ? failed.slice(failed.length - room) : failed;
    this.#stats.dropped += failed.length - keep.length;
    this.#queue.unshift(keep);
  }

  async #read(): Promise<void> {
    const reader = this.#reader!;
    const count = String(this.#o.readCount ?? 512);
    const block = String(this.#o.blockMs ?? 1000);
    while (!this.#stopped) {
      if (reader.status !== "ready") {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          if (reader.status === "ready" || this.#stopped) resolve();
        });
        this.#wake = null;
        continue;
      }
      try {
        if (this.#lastId === null) {
          const [sec, usec] = await reader.time();
          const ms = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
          // XREAD returns entries after the id given. `<from>-0` would skip an entry that Redis
          // numbered `<from>-0`: one published in the very millisecond this replica read the clock.
          // Starting after the last id of the millisecond before takes all of `from`.
          const from = Math.max(0, ms - (this.#o.catchUpMs ?? 0));
          this.#lastId = from > 0 ? `${from - 1}-${MAX_SEQ}` : "0-0";
          this.#onStatus();
        }
        const res = await reader.call(
          "XREAD",
          "COUNT",
          count,
          "BLOCK",
          block,
          "STREAMS",
          this.stream,
          this.#lastId,
        ) as [string, [string, string[]][]][] | null;
        // Picks up backends a reload added (to publish their records and apply others' to
        // them) before the batch is applied; also on every empty block, at least once a block.
        this.#refresh?.();
        if (res === null) continue;
        for (const [, entries] of res) {
          for (const [id, fields] of entries) {
            this.#lastId = id;
            this.#apply(fields);
          }
        }
      } catch (err) {
        if (this.#stopped) break;
        this.#hungUp(reader, err);
        this.#log.debug("redis sync read failed", {
          error: errorMessage(err),
          last_id: this.#lastId,
        });
        // A failed command on a live connection (e.g. a wrong type at the key): do not spin.
        if (reader.status === "ready") await this.#pause(Math.min(1000, Number(block)));
      }
    }
  }

  /**
   * After a command timed out (ioredis `commandTimeout`): Redis holds the connection open but
   * answers nothing (a hung server, a blackholed path), which ioredis still calls ready. The sync
   * counts as disconnected from now (warning, `router_sync_connected` 0, no writes) and drops the
   * connection to reconnect; the next `ready` ends it.
   */
  #hungUp(client: Redis, err: unknown): void {
    if (!(err instanceof Error && /timed out/i.test(err.message)) || this.#stopped) return;
    this.#hung = true;
    this.#onStatus();
    if (client.status === "ready") client.disconnect(true);
  }

  /** Waits `ms`, or less when `stop()` wakes the loop. */
  #pause(ms: number): Promise<void> {
    const pause = sleep(ms);
    this.#wake = pause.wake;
    return pause.promise.finally(() => this.#wake = null);
  }

  #apply(fields: string[]): void {
    let rec: SyncRecord;
    try {
      rec = parseRecord(fields);
    } catch (err) {
      this.#stats.ignored++;
      this.#log.debug("redis sync record ignored", { error: errorMessage(err) });
      return;
    }
    // The own echo; a record of this id from an earlier process (a restart) is history to apply.
    if (
      rec.replica === this.replicaId &&
      (rec.incarnation === "" || rec.incarnation === this.#incarnation)
    ) return;
    const chunkSize = this.#o.chunkSize ?? 0;
    const index = this.#o.indexFor(rec.worker);
    if (
      index === undefined || (chunkSize > 0 && rec.chunkSize > 0 && rec.chunkSize !== chunkSize) ||
      rec.hashScheme !== (this.#o.hashScheme ?? HASH_SCHEME)
    ) {
      this.#stats.ignored++;
      return;
    }
    this.#applying = true;
    try {
      if (rec.op === "insert") index.insert(rec.hashes);
      else index.truncate?.(rec.hashes, rec.keepChunks);
    } finally {
      this.#applying = false;
    }
    this.#stats.applied++;
    this.#stats.lastLagMs = Math.max(0, this.#now() - rec.time);
  }
}
