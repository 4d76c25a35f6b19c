/**
 * Engine signals: what an engine's own Prometheus `/metrics` says about its load, read into a
 * small `EngineSignals` record: requests running, requests waiting (its queue), KV cache usage
 * (0..1), preemptions, and its prefix cache figures.
 *
 * Names read (the first present of each row wins; anything else on the page is skipped unparsed):
 *
 * | field                | vLLM                                                           | SGLang                                 | llama-server                    |
 * | -------------------- | -------------------------------------------------------------- | -------------------------------------- | ------------------------------- |
 * | `running`            | `vllm:num_requests_running`                                    | `sglang:num_running_reqs`              | `llamacpp:requests_processing`  |
 * | `waiting`            | `vllm:num_requests_waiting`                                    | `sglang:num_queue_reqs`                | `llamacpp:requests_deferred`    |
 * | `kvUsage`            | `vllm:kv_cache_usage_perc`, then `vllm:gpu_cache_usage_perc`   | `sglang:token_usage`                   | `llamacpp:kv_cache_usage_ratio` |
 * | `preemptions`        | `vllm:num_preemptions_total`                                   | `sglang:num_retracted_requests_total`  |                                 |
 * | `prefixCacheHits`    | `vllm:prefix_cache_hits_total`, then `vllm:gpu_prefix_…`       |                                        |                                 |
 * | `prefixCacheQueries` | `vllm:prefix_cache_queries_total`, then `vllm:gpu_prefix_…`    |                                        |                                 |
 * | `prefixCacheHitRate` | `vllm:gpu_prefix_cache_hit_rate` (V0)                          | `sglang:cache_hit_rate`                |                                 |
 * | `promptTokens`       | `vllm:prompt_tokens_total`                                     | `sglang:prompt_tokens_total`           |                                 |
 * | `requests`           | `vllm:request_success_total` (all `finished_reason`s)          | `sglang:num_requests_total`            |                                 |
 *
 * vLLM's `*_usage_perc` gauges are fractions despite the name ("1 means 100 percent"); the
 * `gpu_`-prefixed names were deprecated in vLLM 0.9 and removed two releases later, so both are
 * read. llama-server exports nothing without `--metrics` and dropped `kv_cache_usage_ratio` in
 * 2025. An engine with none of these names gives empty signals (`engine: "unknown"`), never an
 * error.
 *
 * Several series of one name. Series are grouped by `model_name` (a worker may front several
 * models). Within a model, series that differ in `engine` (vLLM data-parallel engine index) or
 * `dp_rank` (SGLang) are separate schedulers and are summed (ratios are averaged); series that
 * differ only in other labels (`tp_rank`, `pp_rank`, …) are copies of one scheduler's view and the
 * largest is taken; `promptTokens` and `requests` are summed over every series (vLLM splits
 * finished requests by `finished_reason`). The worker's figures sum the models' counts and take the largest model's
 * ratio. At most `MAX_MODELS` models are kept apart; more are folded into the totals only.
 *
 * Bounds. The body is read as a stream and parsing stops at `maxBytes` (4 MiB by default: vLLM's
 * page with many histograms runs to hundreds of KiB); the family being read when the cap cut the
 * body is dropped (its series could be half read), every complete one is kept and the result says
 * `truncated`. A line over `MAX_LINE_CHARS` is skipped. Non-finite and negative values are
 * dropped; a ratio above 1 is read as 1. The whole fetch, body included, has one deadline.
 *
 * Cost: one pass over the bytes; a line is parsed only when its name is one of the table's
 * (histogram buckets, the bulk of the page, are skipped after reading their name).
 *
 * @module
 */

import { lineName, parseSample } from "./prom_text.ts";

/** Which engine's names were found. */
export type EngineKind = "vllm" | "sglang" | "llamacpp" | "unknown";

/** Load figures of one model's engine (or of a whole worker). Absent: not exported. */
export interface EngineFigures {
  /** Requests the engine is running (in its batch), from every client. */
  readonly running?: number;
  /** Requests queued in the engine, not yet scheduled. */
  readonly waiting?: number;
  /** KV cache in use, 0..1. */
  readonly kvUsage?: number;
  /** Preemptions (SGLang: retractions) since the engine started; a counter. */
  readonly preemptions?: number;
  /** Prompt tokens found in the prefix cache since start; a counter. */
  readonly prefixCacheHits?: number;
  /** Prompt tokens looked up in the prefix cache since start; a counter. */
  readonly prefixCacheQueries?: number;
  /** A hit-rate gauge, 0..1, where the engine exports one instead of counters. */
  readonly prefixCacheHitRate?: number;
  /** Prompt tokens of the requests it has prefilled since start; a counter. */
  readonly promptTokens?: number;
  /** Requests it has finished since start; a counter. */
  readonly requests?: number;
}

/** What one `/metrics` page said. */
export interface EngineSignals extends EngineFigures {
  readonly engine: EngineKind;
  /** Figures per `model_name` (`""`: series without one); at most `MAX_MODELS` entries. */
  readonly models: ReadonlyMap<string, EngineFigures>;
  /** Whether the body was cut at the byte cap (the family being read then was dropped). */
  readonly truncated: boolean;
  /** Lines of the table's names that could not be read. */
  readonly malformedLines: number;
  /** Body bytes read. */
  readonly bytes: number;
}

/** Signals of a page with none of the known names. */
export const EMPTY_SIGNALS: EngineSignals = Object.freeze({
  engine: "unknown",
  models: new Map(),
  truncated: false,
  malformedLines: 0,
  bytes: 0,
});

/** Default byte cap of a `/metrics` body. */
export const DEFAULT_MAX_METRICS_BYTES = 4 * 1024 * 1024;
/** Models kept apart in `EngineSignals.models`; more are counted in the totals only. */
export const MAX_MODELS = 64;
/** Longest line looked at; a longer one (a hostile label) is skipped. */
export const MAX_LINE_CHARS = 64 * 1024;

type Field = keyof EngineFigures;
/** Fields that are ratios (averaged over schedulers, maximum over models, capped at 1). */
const RATIOS: ReadonlySet<Field> = new Set(["kvUsage", "prefixCacheHitRate"]);

interface Source {
  readonly field: Field;
  /** Lower wins when several names of one field are present. */
  readonly rank: number;
  /** Sum over every series (the family is split by a category, e.g. `finished_reason`). */
  readonly sumAll: boolean;
  readonly engine: EngineKind;
  /** Family name: the sample name without a counter's `_total`. */
  readonly family: string;
}

function src(name: string, field: Field, rank: number, sumAll = false): [string, Source] {
  const engine = name.slice(0, name.indexOf(":")) as EngineKind;
  return [name, { field, rank, sumAll, engine, family: name.replace(/_total$/, "") }];
}

/** Sample names read, by engine (see the module table). */
const SOURCES: ReadonlyMap<string, Source> = new Map([
  src("vllm:num_requests_running", "running", 0),
  src("vllm:num_requests_waiting", "waiting", 0),
  src("vllm:kv_cache_usage_perc", "kvUsage", 0),
  src("vllm:gpu_cache_usage_perc", "kvUsage", 1),
  src("vllm:num_preemptions_total", "preemptions", 0),
  src("vllm:prefix_cache_hits_total", "prefixCacheHits", 0),
  src("vllm:gpu_prefix_cache_hits_total", "prefixCacheHits", 1),
  src("vllm:prefix_cache_queries_total", "prefixCacheQueries", 0),
  src("vllm:gpu_prefix_cache_queries_total", "prefixCacheQueries", 1),
  src("vllm:gpu_prefix_cache_hit_rate", "prefixCacheHitRate", 0),
  src("vllm:prompt_tokens_total", "promptTokens", 0, true),
  src("vllm:request_success_total", "requests", 0, true),
  src("sglang:num_running_reqs", "running", 0),
  src("sglang:num_queue_reqs", "waiting", 0),
  src("sglang:token_usage", "kvUsage", 0),
  src("sglang:num_retracted_requests_total", "preemptions", 0),
  src("sglang:cache_hit_rate", "prefixCacheHitRate", 0),
  src("sglang:prompt_tokens_total", "promptTokens", 0, true),
  src("sglang:num_requests_total", "requests", 0, true),
  src("llamacpp:requests_processing", "running", 0),
  src("llamacpp:requests_deferred", "waiting", 0),
  src("llamacpp:kv_cache_usage_ratio", "kvUsage", 0),
]);

/** Labels whose values name separate schedulers of one model (summed, not maximised). */
const SHARD_LABELS = ["engine", "dp_rank"] as const;

/** Values of one sample name: model → scheduler → largest value seen. */
type Series = Map<string, Map<string, number>>;

/**
 * Incremental reader of one `/metrics` body: `push` text as it arrives, then `finish`. Holds at
 * most one partial line (≤ `MAX_LINE_CHARS`) and the values of the table's names.
 */
export class EngineMetricsParser {
  #partial = "";
  #skipping = false; // inside an over-long line, until its newline
  #series = new Map<string, Series>();
  #models = new Set<string>();
  #malformed = 0;
  /** Sample name of the table whose family is the last one seen (dropped if the body is cut). */
  #open: string | undefined;

  /** Feeds decoded text; lines are processed as their newline arrives. */
  push(text: string): void {
    let from = 0;
    for (;;) {
      const nl = text.indexOf("\n", from);
      if (nl < 0) break;
      const piece = text.slice(from, nl);
      if (this.#skipping) this.#skipping = false;
      else this.#line(this.#partial.length > 0 ? this.#partial + piece : piece);
      this.#partial = "";
      from = nl + 1;
    }
    if (from < text.length && !this.#skipping) {
      this.#partial += text.slice(from);
      if (this.#partial.length > MAX_LINE_CHARS) {
        this.#partial = "";
        this.#skipping = true;
        this.#malformed++;
      }
    }
  }

  /**
   * Ends the body. `truncated`: it was cut at the cap, so the partial last line and the family
   * being read are dropped; otherwise a last line without a newline counts.
   */
  finish(truncated: boolean, bytes: number): EngineSignals {
    if (truncated) {
      if (this.#open !== undefined) this.#series.delete(this.#open);
    } else if (this.#partial.length > 0 && !this.#skipping) {
      this.#line(this.#partial);
    }
    this.#partial = "";
    return this.#result(truncated, bytes);
  }

  #line(line: string): void {
    const { kind, name } = lineName(line);
    if (kind === "blank" || kind === "comment") return;
    // A new family ends the one in progress: its series are complete from here on.
    if (this.#open !== undefined && !name.startsWith(SOURCES.get(this.#open)!.family)) {
      this.#open = undefined;
    }
    if (kind !== "sample") return;
    const source = SOURCES.get(name);
    if (source === undefined) return;
    this.#open = name;
    const s = parseSample(line);
    if (s === undefined) {
      this.#malformed++;
      return;
    }
    let v = s.value;
    if (!Number.isFinite(v) || v < 0) return;
    if (RATIOS.has(source.field) && v > 1) v = 1;
    let model = s.labels.get("model_name") ?? "";
    let shard = "";
    if (source.sumAll) { for (const [k, v] of s.labels) shard += k + "=" + v + "\0"; }
    else for (const l of SHARD_LABELS) shard += (s.labels.get(l) ?? "") + "\0";
    if (!this.#models.has(model)) {
      if (this.#models.size < MAX_MODELS) this.#models.add(model);
      else {
        // Folded into one bucket, each model still its own scheduler (summed, not maximised).
        // Bounded by the byte cap: one entry per line at most.
        shard = model + "\0" + shard;
        model = OVERFLOW;
      }
    }
    let series = this.#series.get(name);
    if (series === undefined) this.#series.set(name, series = new Map());
    let shards = series.get(model);
    if (shards === undefined) series.set(model, shards = new Map());
    const prev = shards.get(shard);
    if (prev === undefined || v > prev) shards.set(shard, v);
  }

  #result(truncated: boolean, bytes: number): EngineSignals {
    // The best-ranked name present per field.
    const chosen = new Map<Field, [Source, Series]>();
    let engine: EngineKind = "unknown";
    for (const [name, series] of this.#series) {
      const source = SOURCES.get(name)!;
      if (engine === "unknown") engine = source.engine;
      const have = chosen.get(source.field);
      if (have === undefined || source.rank < have[0].rank) {
        chosen.set(source.field, [source, series]);
      }
    }
    const perModel = new Map<string, Record<string, number>>();
    const total: Record<string, number> = {};
    for (const [field, [, series]] of chosen) {
      const ratio = RATIOS.has(field);
      for (const [model, shards] of series) {
        let sum = 0;
        for (const v of shards.values()) sum += v;
        const v = ratio ? sum / shards.size : sum;
        if (model !== OVERFLOW) {
          let m = perModel.get(model);
          if (m === undefined) perModel.set(model, m = {});
          m[field] = v;
        }
        const t = total[field];
        total[field] = t === undefined ? v : ratio ? Math.max(t, v) : t + v;
      }
    }
    const models = new Map<string, EngineFigures>();
    for (const [model, figures] of perModel) models.set(model, Object.freeze(figures));
    return Object.freeze({
      ...total,
      engine,
      models,
      truncated,
      malformedLines: this.#malformed,
      bytes,
    });
  }
}

/** Model key of series beyond `MAX_MODELS` (never a real model name: NUL is not allowed there). */
const OVERFLOW = "\0overflow";

/** Reads a whole exposition text (tests, one-off use); `maxBytes` is not applied. */
export function parseEngineMetrics(text: string): EngineSignals {
  const p = new EngineMetricsParser();
  p.push(text);
  return p.finish(false, new TextEncoder().encode(text).length);
}

/**
 * The figures of `model` when the page has them apart, else the worker's totals. The router
 * passes the request's model so a worker fronting several engines is judged by the right one.
 */
export function figuresFor(signals: EngineSignals, model?: string): EngineFigures {
  if (model !== undefined) {
    const m = signals.models.get(model);
    if (m !== undefined) return m;
  }
  return signals;
}

/** Options of `fetchEngineSignals`. */
export interface FetchSignalsOptions {
  /** Deadline of the whole fetch, body included, ms. */
  readonly timeoutMs: number;
  /** Body bytes read at most; default `DEFAULT_MAX_METRICS_BYTES`. */
  readonly maxBytes?: number;
  /** Bearer token sent as `Authorization`, when set. */
  readonly apiKey?: string | null;
  /** Aborts the fetch (the scraper's stop). */
  readonly signal?: AbortSignal;
}

/** Abort reason of the deadline, to tell it from the caller's abort. */
const TIMED_OUT = Symbol("metrics scrape timed out");

/**
 * GETs `url` (a worker's `/metrics`) and reads its signals. Rejects on a transport error, a
 * timeout, a non-2xx status or the caller's abort; an unknown page resolves to empty signals.
 */
export async function fetchEngineSignals(
  url: string,
  opts: FetchSignalsOptions,
): Promise<EngineSignals> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_METRICS_BYTES;
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const deadline = setTimeout(() => ctl.abort(TIMED_OUT), opts.timeoutMs);
  // The text format; an exporter that honours Accept would otherwise be free to pick OpenMetrics.
  const headers: Record<string, string> = { accept: "text/plain;version=0.0.4;q=1,*/*;q=0.1" };
  if (opts.apiKey) headers["authorization"] = `Bearer ${opts.apiKey}`;
  try {
    const res = await fetch(url, { headers, signal: ctl.signal });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`Metrics scrape GET ${url} answered ${res.status}`);
    }
    return await readCapped(res.body, maxBytes);
  } catch (e) {
    if (ctl.signal.reason === TIMED_OUT) {
      throw new Error(`Metrics scrape GET ${url} timed out after ${opts.timeoutMs} ms`);
    }
    if (e instanceof Error && e.message.startsWith("Metrics scrape")) throw e;
    throw new Error(`Metrics scrape GET ${url} failed: ${e instanceof Error ? e.message : e}`, {
      cause: e,
    });
  } finally {
    clearTimeout(deadline);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** Streams `body` through a parser, stopping (and cancelling the body) at `maxBytes`. */
export async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<EngineSignals> {
  const parser = new EngineMetricsParser();
  if (body === null) return parser.finish(false, 0);
  const decoder = new TextDecoder(); // invalid UTF-8 becomes U+FFFD, never an error
  const reader = body.getReader();
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (bytes + value.length > maxBytes) {
        const keep = value.subarray(0, maxBytes - bytes);
        bytes += keep.length;
        parser.push(decoder.decode(keep, { stream: true }));
        await reader.cancel().catch(() => {});
        return parser.finish(true, bytes);
      }
      bytes += value.length;
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
    return parser.finish(false, bytes);
  } finally {
    reader.releaseLock();
  }
}
