/**
 * Precise mode (`router.index: precise`): what each engine holds, from its own KV cache events,
 * indexed by token blocks (`src/precise/`, `src/kv_events/`), and each request's tokens exactly
 * as the engine computes them (`src/tokenize/`).
 *
 * - One `BlockIndex` for the router; each worker's `Backend.prefix` is the index's view of that
 *   worker (a `PrefixIndex`: `match` counts held or predicted blocks, `insert` predicts for
 *   `router.predict_ttl`, `truncate` drops predictions), so every strategy reads precise matches
 *   unchanged, and a chunk is a block of `router.block_size` tokens.
 * - One `KvEventSubscriber` per worker with `kv_events` (`{host}` is the worker URL's host),
 *   started and stopped with the router and re-made when a reload changes the endpoint; a
 *   removed worker's subscription stops and its blocks go. Gaps, replays, engine restarts and
 *   reconnects are the subscriber's (it never throws, never goes deaf: heartbeats).
 * - Tokens: the model's local tokenizer (`tokenizers:`) when it has one, else `POST /tokenize` on
 *   a worker serving the model that is up (a second one when the first fails). A LoRA adapter (a model listed with a `parent`) and the body's
 *   `cache_salt` enter the block key as the engine puts them in its hashes. A request that
 *   cannot be tokenized (an unsupported part, an engine that does not answer) is routed by its
 *   routing text instead, which matches no block: least-loaded, in effect; it is counted, and it
 *   records no prediction (`Attempt.begin`): text chunks are not blocks.
 *
 * @module
 */

import type { RouterConfig, TokenizerSpec } from "../config/types.ts";
import { KvEventSubscriber } from "../kv_events/mod.ts";
import type { PrefixIndex } from "../prefix/types.ts";
import { blockHashes, BlockIndex } from "../precise/mod.ts";
import { EngineTokenizer, loadLocalTokenizer, type RequestTokenizer } from "../tokenize/mod.ts";
import type { RequestKind } from "../prefix/mod.ts";
import type { Clock } from "../util/clock.ts";
import { errorMessage } from "../util/errors.ts";
import type { ChunkHashes } from "../prefix/types.ts";
import type { Logger } from "./logger.ts";
import type { Backend } from "./pool.ts";

/** What `tokensOf` needs of a request. */
export interface TokenizeInput {
  readonly kind: RequestKind;
  readonly body: Record<string, unknown>;
  /** The served model, or null. */
  readonly served: string | null;
  readonly signal: AbortSignal;
}

/** A request's block hashes in precise mode. */
export interface PreciseKey {
  readonly hashes: ChunkHashes;
  /** Tokens of the prompt. */
  readonly tokens: number;
}

/** Counters of precise mode, for metrics. */
export interface PreciseStats {
  tokenized: number;
  tokenizeFailures: number;
  tokenizeMs: number;
}

/** One worker's subscription. */
interface Subscription {
  readonly key: string;
  readonly sub: KvEventSubscriber;
}

/** See the module comment. */
export class PreciseMode {
  readonly index: BlockIndex;
  readonly blockSize: number;
  readonly stats: PreciseStats = { tokenized: 0, tokenizeFailures: 0, tokenizeMs: 0 };
  readonly #views = new Map<string, PrefixIndex>();
  readonly #subs = new Map<string, Subscription>();
  readonly #local = new Map<string, RequestTokenizer>();
  readonly #engine = new Map<string, EngineTokenizer>();
  #logger: Logger;
  #started = false;

  constructor(config: RouterConfig, clock: Clock, logger: Logger) {
    this.blockSize = config.router.blockSize;
    this.index = new BlockIndex({
      clock,
      predictTtlMs: config.router.predictTtlMs,
      blockSize: config.router.blockSize,
    });
    this.#logger = logger;
  }

  /** Loads the configured local tokenizers (file reads and parsing: about 1 s for a large one). */
  async loadTokenizers(specs: readonly TokenizerSpec[]): Promise<void> {
    for (const t of specs) {
      if (this.#local.has(t.model)) continue;
      const tok = await loadLocalTokenizer(
        {
          tokenizerJson: t.tokenizerJson,
          tokenizerConfig: t.tokenizerConfig,
          chatTemplate: t.chatTemplate ?? undefined,
        },
        { cacheBytes: t.cacheBytes },
      );
      this.#local.set(t.model, tok);
    }
  }

  /** The tokenizers in use, for metrics: local ones by model, engine ones by URL and model. */
  tokenizers(): { name: string; tokenizer: RequestTokenizer }[] {
    return [
      ...[...this.#local].map(([model, tokenizer]) => ({ name: `local:${model}`, tokenizer })),
      ...[...this.#engine].map(([key, tokenizer]) => ({ name: `engine:${key}`, tokenizer })),
    ];
  }

  /** The subscriptions, for metrics and the debug view. */
  subscriptions(): { id: string; sub: KvEventSubscriber }[] {
    return [...this.#subs].map(([id, s]) => ({ id, sub: s.sub }));
  }

  /**
   * Points each backend's prefix index at its view of the block index and brings the
   * subscriptions in line with `backends` (start new or changed ones, stop removed ones).
   */
  attach(backends: readonly Backend[], logger: Logger): void {
    this.#logger = logger;
    const ids = new Set(backends.map((b) => b.id));
    for (const b of backends) {
      this.index.addWorker(b.id);
      let view = this.#views.get(b.id);
      if (view === undefined) {
        view = this.index.view(b.id);
        this.#views.set(b.id, view);
      }
      b.prefix = view;
      this.#subscribe(b);
    }
    for (const [id, s] of this.#subs) {
      if (ids.has(id)) continue;
      this.#subs.delete(id);
      s.sub.stop().catch(() => {});
    }
    for (const id of this.#views.keys()) {
      if (ids.has(id)) continue;
      this.#views.delete(id);
      this.index.removeWorker(id);
    }
  }

  #subscribe(b: Backend): void {
    const c = b.config;
    const host = new URL(b.url).hostname.replace(/^\[(.*)\]$/, "$1");
    const endpoint = c.kvEvents?.replaceAll("{host}", host) ?? null;
    const replay = c.kvEventsReplay?.replaceAll("{host}", host) ?? null;
    const key = `${endpoint} ${replay} ${c.kvEventsTopic}`;
    const old = this.#subs.get(b.id);
    if (old !== undefined && old.key === key) return;
    if (old !== undefined) {
      this.#subs.delete(b.id);
      old.sub.stop().catch(() => {});
      this.index.clearWorker(b.id);
    }
    if (endpoint === null) return;
    const sub = new KvEventSubscriber({
      endpoint,
      replayEndpoint: replay,
      topic: c.kvEventsTopic,
      sink: this.index.sink(b.id),
    });
    this.#subs.set(b.id, { key, sub });
    if (this.#started) sub.start();
  }

  /** Starts the subscriptions. */
  start(): void {
    this.#started = true;
    for (const s of this.#subs.values()) s.sub.start();
  }

  /** Stops every subscription; resolves when none has anything pending. */
  async stop(): Promise<void> {
    this.#started = false;
    await Promise.all([...this.#subs.values()].map((s) => s.sub.stop().catch(() => {})));
  }

  /**
   * The block hashes of a request, from its tokens; null when it cannot be tokenized (then it is
   * routed by its routing text). `backends` supply an engine `/tokenize` for a model without a
   * local tokenizer.
   */
  async keyOf(req: TokenizeInput, backends: readonly Backend[]): Promise<PreciseKey | null> {
    if (req.kind !== "chat" && req.kind !== "completion") return null;
    const tokenizers = this.#tokenizersFor(req.served, backends);
    // The engine knows the served name, not an alias of it.
    const body = req.served !== null && req.body.model !== req.served
      ? { ...req.body, model: req.served }
      : req.body;
    const t0 = performance.now();
    try {
      for (const [i, tok] of tokenizers.entries()) {
        try {
          const r = await tok.tokenize({ kind: req.kind, body, signal: req.signal });
          this.stats.tokenized++;
          const lora = req.served === null ? null : loraOf(req.served, backends);
          const salt = typeof body.cache_salt === "string" ? body.cache_salt : undefined;
          return {
            hashes: blockHashes(r.tokens, this.blockSize, {
              loraName: lora ?? undefined,
              cacheSalt: salt,
            }),
            tokens: r.tokens.length,
          };
        } catch (err) {
          const last = i === tokenizers.length - 1 || req.signal.aborted;
          this.#logger.debug(
            last ? "request not tokenized; routed by its text" : "tokenizer failed; trying another",
            {
              tokenizer: tok.name,
              error: errorMessage(err),
            },
          );
          if (last) break;
        }
      }
      if (tokenizers.length > 0) this.stats.tokenizeFailures++;
      return null;
    } finally {
      this.stats.tokenizeMs += performance.now() - t0;
    }
  }

  /**
   * The tokenizers to try, in order: the model's local one alone when it has one, else the
   * `/tokenize` of up to {@link ENGINE_TRIES} workers serving the model, those the strategy may be
   * offered first (a worker marked down or with an open breaker is not asked while another is).
   */
  #tokenizersFor(served: string | null, backends: readonly Backend[]): RequestTokenizer[] {
    if (served !== null) {
      const local = this.#local.get(served) ?? this.#local.get(baseOf(served, backends) ?? "");
      if (local !== undefined) return [local];
    } else if (this.#local.size === 1) return [this.#local.values().next().value!];
    const serving = backends.filter((x) => served === null || x.models?.has(served));
    const pool = serving.length > 0 ? serving : backends;
    const admitted = pool.filter((b) => b.admits());
    const ordered = [...admitted, ...pool.filter((b) => b.up && !admitted.includes(b))];
    return (ordered.length > 0 ? ordered : pool).slice(0, ENGINE_TRIES).map((b) =>
      this.#engineTokenizer(b, served)
    );
  }

  #engineTokenizer(b: Backend, served: string | null): RequestTokenizer {
    // One per worker and model: the model is what a body without one is tokenized as.
    const key = served === null ? b.url : `${b.url}|${served}`;
    let tok = this.#engine.get(key);
    if (tok === undefined) {
      tok = new EngineTokenizer({
        url: b.url,
        model: served ?? undefined,
        headers: b.config.apiKey ? { authorization: `Bearer ${b.config.apiKey}` } : undefined,
      });
      this.#engine.set(key, tok);
    }
    return tok;
  }
}

/** Workers whose `/tokenize` one request may ask, one after another when one fails. */
const ENGINE_TRIES = 2;

/** The adapter name of `served` when some worker lists it with a parent, else null. */
function loraOf(served: string, backends: readonly Backend[]): string | null {
  return baseOf(served, backends) === null ? null : served;
}

/** The parent (base model) of adapter `served`, or null. */
function baseOf(served: string, backends: readonly Backend[]): string | null {
  for (const b of backends) {
    const e = b.models?.get(served);
    if (e !== undefined) return e.parent;
  }
  return null;
}
