/**
 * Precise against approximate mode over HTTP, with an engine cache small enough to evict (issue
 * 18). For each trace shape × strategy × sessions point × seed, each mode (`router.index:
 * approximate | precise`) runs on fresh servers: 4 sim workers (a100-7b, `capacityBlocks`
 * reduced, KV events published over ZMQ in both modes so the engines do the same work), a router
 * in that mode in front of them (precise: subscribed to each worker's events and replay socket,
 * tokens from the workers' `/tokenize`), and the trace replayed over HTTP (src/bench/replay.ts).
 * The two modes of a point alternate which goes first from seed to seed, since the machine is
 * shared and noisy.
 *
 * Per cell (seeds pooled):
 * - KV cached share: Σ engine `cached_tokens` ÷ Σ prompt tokens (the usage the client received),
 *   with a 95% bootstrap CI over requests; precise − approximate with its CI (each mode's
 *   requests resampled on their own);
 * - TTFT p50 and p95 (client side, wall ms; model time is wall ÷ time scale), 95% bootstrap CIs;
 * - prediction error per request, in 16-token blocks: (the router's access-log `match_chunks` ×
 *   tokens per chunk − the engine's `cached_tokens`) ÷ 16. A chunk is `chunk_size` bytes ÷ 4
 *   bytes a token (8 tokens at the default 32) in approximate mode and a `block_size`-token block
 *   in precise mode: the rule the router's own load tracker uses. Mean |error| with a CI, median,
 *   the share within one block, and the mean signed error (positive: the router believed more
 *   was cached);
 * - evicted blocks and preemptions, summed over the engines (the cell's total and its smallest
 *   run, which must be > 0 for the run to count as an eviction run), and precise mode's counters
 *   (tokenizer failures, event gaps, clears, reconnects) from the router's /metrics.
 *
 * `--probe` puts a pass-through proxy before each worker (both modes): for each chat request it
 * asks the engine what it holds of the prompt at the moment the request arrives
 * (`peekCachedTokens`), which splits the error into the index's own (at routing) and what the
 * engine evicted or stored between arrival and admission (queueing).
 *
 * Writes `report.md`, `results.json`, `records.jsonl` (client records), `access.jsonl` (router
 * access-log lines) and with `--probe` `probes.jsonl` to the output folder. Cost: about 8 s a run at time scale 0.5; the
 * default grid (2 shapes × 2 strategies × 3 points × 3 seeds × 2 modes, 72 runs) about 12 min.
 *
 * Usage: nice deno run -A bench/precise_compare.ts [--shapes multiturn,rag]
 *          [--strategies prefixaware,costaware] [--sessions 8,16,24] [--seeds 1,2,3]
 *          [--capacity-blocks 384] [--time-scale 0.5] [--turns 8] [--think-ms 1000]
 *          [--stagger-ms 2000] [--out bench/results/precise-DATE] [--probe] [--quick]
 *        nice deno run -A bench/precise_compare.ts --from DIR   # report.md, results.json again
 *        nice deno run -A bench/precise_compare.ts --from DIR1,DIR2 --out DIR3   # pooled
 *        deno run -A bench/precise_compare.ts --help   # every flag with its default
 *
 * @module
 */

import { flagHelp, type FlagTable, parseFlags } from "../src/util/cli_flags.ts";
import { configFromWorkers } from "../src/config/mod.ts";
import type { RouterConfig } from "../src/config/types.ts";
import { Logger, type RunningRouter, startRouter } from "../src/router/mod.ts";
import { type SimWorker, startSimWorker } from "../src/sim/server.ts";
import { recordsFromJsonl, recordsToJsonl, replayTrace } from "../src/bench/replay.ts";
import {
  bootstrapMany,
  cachedShare,
  cachedShareCI,
  type Estimate,
  mean,
  percentile,
  percentileCI,
  type TokenPair,
} from "../src/bench/stats.ts";
import { markdownTable as reportTable } from "../src/bench/report.ts";
import { generateTrace } from "../src/bench/traces.ts";
import { blockHashes, type BlockIndex } from "../src/precise/mod.ts";
import type { ChunkHashes } from "../src/prefix/types.ts";
import type { RequestRecord, Shape, TraceEntry } from "../src/bench/types.ts";

/** The router's index mode. */
export type Mode = "approximate" | "precise";

/** Both modes, in the order a point with an odd seed runs them. */
export const MODES: readonly Mode[] = ["approximate", "precise"];

/** Tokens in an engine block (vLLM's and the sim's default), the unit errors are given in. */
export const BLOCK_TOKENS = 16;

/** Bytes a token of the sim's pseudo tokenizer, as the router counts them. */
const BYTES_PER_TOKEN = 4;

/** The fields of a router access-log line (`msg: "request"`) this bench reads. */
export interface AccessLine {
  readonly request_id?: string;
  readonly backend: string | null;
  readonly reason: string | null;
  readonly match_chunks: number;
  readonly status: number;
  readonly prompt_tokens: number | null;
  readonly cached_tokens: number | null;
}

/** Precise mode's counters from the router's /metrics, summed over workers. */
export const ROUTER_COUNTERS = [
  "router_kv_events_total",
  "router_kv_event_gaps_total",
  "router_kv_event_replays_total",
  "router_kv_event_clears_total",
  "router_kv_event_reconnects_total",
  "router_kv_event_malformed_total",
  "router_tokenizer_requests_total",
  "router_tokenizer_failures_total",
] as const;

/** One run: one mode on one point with one seed, on fresh servers. */
export interface RunData {
  readonly shape: Shape;
  readonly strategy: string;
  readonly sessions: number;
  readonly seed: number;
  readonly mode: Mode;
  /** Tokens a matched chunk stands for in this mode. */
  readonly tokensPerChunk: number;
  readonly records: readonly RequestRecord[];
  readonly access: readonly AccessLine[];
  /** Σ over the engines. */
  readonly evictedBlocks: number;
  readonly preemptions: number;
  readonly evictedPerWorker: readonly number[];
  /** {@link ROUTER_COUNTERS} (precise mode; zeros in approximate mode). */
  readonly router: Readonly<Record<string, number>>;
  /** Log lines other than access lines at warn or error, by message. */
  readonly warnings: Readonly<Record<string, number>>;
  /** With `--probe`: the engine's cache at each chat request's arrival. */
  readonly probes?: readonly DispatchProbe[];
  readonly wallMs: number;
}

/** What the engine held of a request's prompt when the router's request reached the worker. */
export interface DispatchProbe {
  /** The `X-Request-ID` the router sent upstream (its access line's `request_id`). */
  readonly request_id: string;
  /** `peekCachedTokens` at arrival: the `cached_tokens` of an admission at that moment. */
  readonly dispatch_cached: number;
  readonly prompt_tokens: number;
  /**
   * Precise mode: each full block of the prompt at arrival, one character: `E` the engine holds
   * it, `h` the index holds it but the engine does not (evicted, removal not yet seen), `p` the
   * index only predicts it, `-` neither.
   */
  door?: string;
  /** Precise mode, when some block was `h`: ms until the index had dropped them all (≤ 1000). */
  stale_cleared_ms?: number;
  /** Of the `h` blocks, those still held by the index after 1 s. */
  stale_left?: number;
}

/**
 * A cell's prediction error split at the moment the request reached its worker (P: the router's
 * prediction, D: what the engine held at arrival, C: the engine's `cached_tokens` at admission),
 * in blocks: P − D is the index's own error at routing, D − C what changed in the engine between
 * arrival and admission (evicted while queued: positive; stored by another request: negative).
 */
export interface ProbeSplit {
  /** Requests joined (access line and probe, both with counts). */
  readonly n: number;
  readonly routingAbs: number;
  readonly routingBias: number;
  /** Share with |P − D| ≥ 1 block. */
  readonly routingOff: number;
  readonly queueAbs: number;
  readonly queueBias: number;
  /** Share with |D − C| ≥ 1 block. */
  readonly queueOff: number;
  /**
   * Precise mode (null otherwise): of P − D, the mean blocks per request inside the routing match
   * that the index held but the engine had evicted (`h`) or that only other requests'
   * predictions covered (`p`) at arrival; and how long the index took to drop the `h` blocks
   * (median and largest ms over the requests that had some; `left`: still held after 1 s).
   */
  readonly stale: {
    readonly heldEvicted: number;
    readonly predictedOnly: number;
    readonly clearedMsP50: number;
    readonly clearedMsMax: number;
    readonly left: number;
  } | null;
}

/** What one cell (shape, strategy, sessions, mode; seeds pooled) came to. */
export interface CellSummary {
  readonly shape: Shape;
  readonly strategy: string;
  readonly sessions: number;
  readonly mode: Mode;
  readonly seeds: number[];
  readonly requests: number;
  readonly errors: number;
  readonly kvShare: Estimate;
  readonly ttftP50: Estimate;
  readonly ttftP95: Estimate;
  /** Mean |prediction error|, blocks. */
  readonly errBlocks: Estimate;
  readonly errMedianBlocks: number;
  /** Share of predicted requests within one block (|error| < 1). */
  readonly within1: number;
  /** Mean signed error, blocks (positive: the router believed more was cached). */
  readonly biasBlocks: number;
  /** Access lines with a prediction and an engine count. */
  readonly predicted: number;
  /** The most common `X-Router-Reason` and its share of the successful requests. */
  readonly topReason: { readonly reason: string; readonly share: number } | null;
  readonly evictedBlocks: number;
  /** The smallest Σ evicted blocks of one run of the cell. */
  readonly evictedMinRun: number;
  readonly preemptions: number;
  readonly router: Record<string, number>;
  readonly warnings: Record<string, number>;
  /** With `--probe`: where the error arises. */
  readonly split: ProbeSplit | null;
}

/**
 * The engine's cached tokens of a request that reported usage: a null `cached_tokens` is 0
 * (vLLM and the sim leave `prompt_tokens_details` out when nothing was cached); null without
 * usage.
 */
function cachedOf(prompt: number | null, cached: number | null): number | null {
  return prompt === null ? null : cached ?? 0;
}

/**
 * Signed prediction errors in blocks of the successful access lines that carry the engine's
 * usage: (match_chunks × tokensPerChunk − cached) ÷ blockTokens.
 */
export function predictionErrors(
  lines: readonly AccessLine[],
  tokensPerChunk: number,
  blockTokens = BLOCK_TOKENS,
): number[] {
  const out: number[] = [];
  for (const l of lines) {
    const cached = cachedOf(l.prompt_tokens, l.cached_tokens);
    if (l.status !== 200 || cached === null || !Number.isFinite(l.match_chunks)) continue;
    out.push((l.match_chunks * tokensPerChunk - cached) / blockTokens);
  }
  return out;
}

/** Joins access lines and probes by request id and splits the error; see {@link ProbeSplit}. */
export function splitErrors(
  lines: readonly AccessLine[],
  probes: readonly DispatchProbe[],
  tokensPerChunk: number,
  blockTokens = BLOCK_TOKENS,
): ProbeSplit {
  const at = new Map(probes.map((p) => [p.request_id, p]));
  const routing: number[] = [];
  const queue: number[] = [];
  let held = 0, predicted = 0, left = 0, doors = 0;
  const cleared: number[] = [];
  for (const l of lines) {
    const p = l.request_id === undefined ? undefined : at.get(l.request_id);
    const cached = cachedOf(l.prompt_tokens, l.cached_tokens);
    if (p === undefined || l.status !== 200 || cached === null) continue;
    const d = p.dispatch_cached;
    routing.push((l.match_chunks * tokensPerChunk - d) / blockTokens);
    queue.push((d - cached) / blockTokens);
    if (p.door === undefined) continue;
    doors++;
    const inMatch = p.door.slice(0, l.match_chunks);
    held += inMatch.split("h").length - 1;
    predicted += inMatch.split("p").length - 1;
    if (p.stale_cleared_ms !== undefined) cleared.push(p.stale_cleared_ms);
    left += p.stale_left ?? 0;
  }
  const off = (xs: number[]) => xs.filter((x) => Math.abs(x) >= 1).length / xs.length;
  const stale = doors === 0 ? null : {
    heldEvicted: held / doors,
    predictedOnly: predicted / doors,
    clearedMsP50: cleared.length === 0 ? NaN : percentile(cleared, 50),
    clearedMsMax: cleared.length === 0 ? NaN : Math.max(...cleared),
    left,
  };
  return {
    stale,
    n: routing.length,
    routingAbs: mean(routing.map(Math.abs)),
    routingBias: mean(routing),
    routingOff: off(routing),
    queueAbs: mean(queue.map(Math.abs)),
    queueBias: mean(queue),
    queueOff: off(queue),
  };
}

/** Tokens a matched chunk stands for: `chunk_size ÷ 4` approximate, `block_size` precise. */
export function tokensPerChunk(mode: Mode, config: RouterConfig): number {
  return mode === "precise" ? config.router.blockSize : config.router.chunkSize / BYTES_PER_TOKEN;
}

/** The sum of every sample of metric family `name` in Prometheus text (0 when absent). */
export function sumFamily(text: string, name: string): number {
  let s = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) s += v;
  }
  return s;
}

/** Prompt and cached tokens of the successful records with usage (null cached: 0). */
export function tokenPairs(records: readonly RequestRecord[]): TokenPair[] {
  const out: TokenPair[] = [];
  for (const r of records) {
    if (r.error !== null || r.prompt_tokens === null) continue;
    out.push({ prompt: r.prompt_tokens, cached: r.cached_tokens ?? 0 });
  }
  return out;
}

function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function topReason(lines: readonly AccessLine[]): CellSummary["topReason"] {
  const n = new Map<string, number>();
  for (const l of lines) n.set(l.reason ?? "none", (n.get(l.reason ?? "none") ?? 0) + 1);
  let best: CellSummary["topReason"] = null;
  for (const [reason, k] of n) {
    if (best === null || k / lines.length > best.share) best = { reason, share: k / lines.length };
  }
  return best;
}

/** Pools the runs of one cell (all of the same shape, strategy, sessions and mode). */
export function summarizeCell(runs: readonly RunData[], resamples = 1000): CellSummary {
  if (runs.length === 0) throw new RangeError("a cell needs at least one run");
  const r0 = runs[0];
  const records = runs.flatMap((r) => r.records);
  const ttfts = records.filter((r) => r.error === null && r.ttft_ms !== null)
    .map((r) => r.ttft_ms!);
  const errs = runs.flatMap((r) => predictionErrors(r.access, r.tokensPerChunk));
  const abs = errs.map(Math.abs);
  const lines = runs.flatMap((r) => r.access).filter((l) => l.status === 200);
  const router: Record<string, number> = {};
  const warnings: Record<string, number> = {};
  for (const r of runs) {
    addCounts(router, r.router);
    addCounts(warnings, r.warnings);
  }
  const opts = { resamples };
  return {
    shape: r0.shape,
    strategy: r0.strategy,
    sessions: r0.sessions,
    mode: r0.mode,
    seeds: runs.map((r) => r.seed),
    requests: records.length,
    errors: records.filter((r) => r.error !== null).length,
    kvShare: cachedShareCI(tokenPairs(records), opts),
    ttftP50: percentileCI(ttfts, 50, opts),
    ttftP95: percentileCI(ttfts, 95, opts),
    errBlocks: bootstrapMany([abs], ([s]) => mean(s), opts),
    errMedianBlocks: abs.length === 0 ? NaN : percentile(abs, 50),
    within1: abs.length === 0 ? NaN : abs.filter((x) => x < 1).length / abs.length,
    biasBlocks: mean(errs),
    predicted: errs.length,
    topReason: topReason(lines),
    evictedBlocks: runs.reduce((s, r) => s + r.evictedBlocks, 0),
    evictedMinRun: Math.min(...runs.map((r) => r.evictedBlocks)),
    preemptions: runs.reduce((s, r) => s + r.preemptions, 0),
    router,
    warnings,
    split: runs.some((r) => r.probes !== undefined)
      ? splitErrors(
        runs.flatMap((r) =>
          r.access.map((l) => ({ ...l, request_id: `${r.seed}/${l.request_id}` }))
        ),
        runs.flatMap((r) =>
          (r.probes ?? []).map((p) => ({ ...p, request_id: `${r.seed}/${p.request_id}` }))
        ),
        r0.tokensPerChunk,
      )
      : null,
  };
}

/** One point of the criteria: approximate against precise on one trace point. */
export interface CriterionRow {
  readonly shape: Shape;
  readonly strategy: string;
  readonly sessions: number;
  readonly approxErr: number;
  readonly preciseErr: number;
  /** Precise's mean |error| < 1 block and approximate's ≥ 1. */
  readonly errHolds: boolean;
  readonly approxKv: number;
  readonly preciseKv: number;
  /** Precise − approximate KV cached share, with its CI. */
  readonly kvDiff: Estimate;
  /** Precise's KV cached share ≥ approximate's (point estimates). */
  readonly kvHolds: boolean;
  /** Both modes evicted in every run. */
  readonly evicted: boolean;
}

/** The criteria rows of every (shape, strategy, sessions) that has both modes. */
export function criteria(
  cells: readonly CellSummary[],
  runs: readonly RunData[],
  resamples = 1000,
): CriterionRow[] {
  const out: CriterionRow[] = [];
  for (const p of cells) {
    if (p.mode !== "precise") continue;
    const a = cells.find((c) =>
      c.mode === "approximate" && c.shape === p.shape && c.strategy === p.strategy &&
      c.sessions === p.sessions
    );
    if (a === undefined) continue;
    const pairs = (mode: Mode) =>
      tokenPairs(
        runs.filter((r) =>
          r.mode === mode && r.shape === p.shape && r.strategy === p.strategy &&
          r.sessions === p.sessions
        ).flatMap((r) => r.records),
      );
    const kvDiff = bootstrapMany(
      [pairs("approximate"), pairs("precise")],
      ([x, y]) => cachedShare(y) - cachedShare(x),
      { resamples },
    );
    out.push({
      shape: p.shape,
      strategy: p.strategy,
      sessions: p.sessions,
      approxErr: a.errBlocks.value,
      preciseErr: p.errBlocks.value,
      errHolds: p.errBlocks.value < 1 && a.errBlocks.value >= 1,
      approxKv: a.kvShare.value,
      preciseKv: p.kvShare.value,
      kvDiff,
      kvHolds: p.kvShare.value >= a.kvShare.value,
      evicted: a.evictedMinRun > 0 && p.evictedMinRun > 0,
    });
  }
  return out;
}

const f1 = (x: number) => Number.isFinite(x) ? x.toFixed(1) : "–";
const f2 = (x: number) => Number.isFinite(x) ? x.toFixed(2) : "–";
const pct = (x: number) => Number.isFinite(x) ? (100 * x).toFixed(1) : "–";
const ci = (e: Estimate, f: (x: number) => string) => `${f(e.value)} [${f(e.lo)}, ${f(e.hi)}]`;

/** A markdown table (`src/bench/report.ts`' form), cells written as given, newline-ended. */
export function markdownTable(
  head: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  return reportTable(head, rows) + "\n";
}

/** The table of every cell. */
export function cellsTable(cells: readonly CellSummary[]): string {
  return markdownTable(
    [
      "shape",
      "strategy",
      "sessions",
      "mode",
      "requests (errors)",
      "KV cached % [95% CI]",
      "TTFT p50 ms [95% CI]",
      "TTFT p95 ms [95% CI]",
      "mean \\|err\\| blocks [95% CI]",
      "median \\|err\\|",
      "within 1 block %",
      "bias blocks",
      "top reason %",
      "evicted blocks (Σ; least run)",
      "preemptions",
    ],
    cells.map((c) => [
      c.shape,
      c.strategy,
      String(c.sessions),
      c.mode,
      `${c.requests} (${c.errors})`,
      ci({ value: c.kvShare.value, lo: c.kvShare.lo, hi: c.kvShare.hi }, pct),
      ci(c.ttftP50, f1),
      ci(c.ttftP95, f1),
      ci(c.errBlocks, f2),
      f2(c.errMedianBlocks),
      pct(c.within1),
      f2(c.biasBlocks),
      c.topReason === null ? "–" : `${c.topReason.reason} ${pct(c.topReason.share)}`,
      `${c.evictedBlocks}; ${c.evictedMinRun}`,
      String(c.preemptions),
    ]),
  );
}

/** The table of the criteria rows. */
export function criteriaTable(rows: readonly CriterionRow[]): string {
  return markdownTable(
    [
      "shape",
      "strategy",
      "sessions",
      "mean \\|err\\| approx → precise, blocks",
      "err criterion",
      "KV % approx → precise",
      "precise − approx KV, points [95% CI]",
      "KV criterion",
      "evicted in every run",
    ],
    rows.map((r) => [
      r.shape,
      r.strategy,
      String(r.sessions),
      `${f2(r.approxErr)} → ${f2(r.preciseErr)}`,
      r.errHolds ? "holds" : "fails",
      `${pct(r.approxKv)} → ${pct(r.preciseKv)}`,
      ci(
        { value: 100 * r.kvDiff.value, lo: 100 * r.kvDiff.lo, hi: 100 * r.kvDiff.hi },
        f1,
      ),
      r.kvHolds ? "holds" : "fails",
      r.evicted ? "yes" : "no",
    ]),
  );
}

/** The precise-mode counters of each precise cell. */
export function routerCountersTable(cells: readonly CellSummary[]): string {
  const precise = cells.filter((c) => c.mode === "precise");
  return markdownTable(
    ["shape", "strategy", "sessions", ...ROUTER_COUNTERS.map((n) => n.replace(/^router_/, ""))],
    precise.map((c) => [
      c.shape,
      c.strategy,
      String(c.sessions),
      ...ROUTER_COUNTERS.map((n) => String(c.router[n] ?? 0)),
    ]),
  );
}

/** The probe split of each cell that has one. */
export function splitTable(cells: readonly CellSummary[]): string {
  const probed = cells.filter((c) => c.split !== null);
  return markdownTable(
    [
      "shape",
      "strategy",
      "sessions",
      "mode",
      "joined",
      "routing: mean \\|P − D\\| (bias), blocks",
      "routing ≥ 1 block %",
      "queue: mean \\|D − C\\| (bias), blocks",
      "queue ≥ 1 block %",
      "in P at arrival: evicted but held / only predicted, blocks",
      "evicted ones dropped after ms p50 (max); left",
    ],
    probed.map((c) => {
      const x = c.split!;
      return [
        c.shape,
        c.strategy,
        String(c.sessions),
        c.mode,
        String(x.n),
        `${f2(x.routingAbs)} (${f2(x.routingBias)})`,
        pct(x.routingOff),
        `${f2(x.queueAbs)} (${f2(x.queueBias)})`,
        pct(x.queueOff),
        x.stale === null ? "–" : `${f2(x.stale.heldEvicted)} / ${f2(x.stale.predictedOnly)}`,
        x.stale === null
          ? "–"
          : `${f1(x.stale.clearedMsP50)} (${f1(x.stale.clearedMsMax)}); ${x.stale.left}`,
      ];
    }),
  );
}

/** How the bench was set up, for the report and results.json. */
export interface BenchSetup {
  readonly command: string;
  readonly date: string;
  readonly machine: string;
  readonly workers: number;
  readonly profile: string;
  readonly timeScale: number;
  readonly capacityBlocks: number;
  readonly maxModelLen: number;
  readonly shapes: readonly Shape[];
  readonly strategies: readonly string[];
  readonly sessions: readonly number[];
  readonly seeds: readonly number[];
  readonly turns: number;
  readonly thinkMs: number;
  readonly staggerMs: number;
  readonly systemBytes: number;
  readonly maxTokens: number;
  /** A pass-through proxy before each worker notes the engine's cache at arrival. */
  readonly probe: boolean;
}

/** The whole report.md. */
export function renderReport(
  setup: BenchSetup,
  cells: readonly CellSummary[],
  rows: readonly CriterionRow[],
): string {
  const s = setup;
  const warn = cells.filter((c) => Object.keys(c.warnings).length > 0);
  return [
    `# Precise and approximate mode, ${s.date}`,
    "",
    `Command: \`${s.command}\``,
    "",
    `Machine: ${s.machine}. ${s.workers} sim workers (${s.profile}, time scale ${s.timeScale}: ` +
    `wall ms ÷ ${s.timeScale} = model ms), each with a KV cache of ${s.capacityBlocks} blocks ` +
    `(${s.capacityBlocks * BLOCK_TOKENS} tokens; max_model_len ${s.maxModelLen}), KV events ` +
    `published in both modes. Traces: ${s.shapes.join(", ")}, ${s.turns} requests a session, ` +
    `${s.systemBytes}-byte system prompt, max_tokens ${s.maxTokens}, think ${s.thinkMs} ms and ` +
    `stagger ${s.staggerMs} ms (both × time scale). Strategies ${s.strategies.join(", ")}; ` +
    `sessions ${s.sessions.join(", ")}; seeds ${s.seeds.join(", ")} pooled per cell.` +
    (s.probe ? " With `--probe`: a pass-through proxy before each worker (both modes)." : ""),
    "",
    "Prediction error: (access-log `match_chunks` × tokens per chunk − engine `cached_tokens`) ÷ " +
    "16; a chunk is 32 bytes = 8 tokens approximate, a 16-token block precise.",
    "",
    "## Criteria (issue 18)",
    "",
    criteriaTable(rows),
    "## Every cell",
    "",
    cellsTable(cells),
    "## Precise mode's counters (Σ over the cell's runs)",
    "",
    routerCountersTable(cells),
    ...(cells.some((c) => c.split !== null)
      ? [
        "## Where the error arises (`--probe`)",
        "",
        "P: the router's prediction at routing; D: what the engine held of the prompt when the " +
        "request reached it (a pass-through proxy before each worker asks the engine, adding one " +
        "local hop in both modes); C: the engine's `cached_tokens` at admission. Bias > 0: " +
        "more predicted (or held at arrival) than found later. Precise mode: the blocks of the " +
        "routing match that the engine lacked at arrival, by what the index had for them then " +
        "(held: evicted, its BlockRemoved not yet applied; only predicted: another request's " +
        "prediction), and how long after arrival the index dropped the held ones.",
        "",
        splitTable(cells),
      ]
      : []),
    ...(warn.length === 0 ? [] : [
      "## Router warnings",
      "",
      ...warn.map((c) =>
        `- ${c.shape} ${c.strategy} ${c.sessions} ${c.mode}: ${JSON.stringify(c.warnings)}`
      ),
      "",
    ]),
  ].join("\n");
}

/** Options of one run. */
interface RunOptions {
  readonly workers: number;
  readonly profile: string;
  readonly timeScale: number;
  readonly capacityBlocks: number;
  readonly maxModelLen: number;
  readonly probe: boolean;
}

/** The index (precise mode) a probe reads and its block size, once the router runs. */
type IndexRef = () => { readonly index: BlockIndex; readonly blockSize: number } | null;

/** The door string of `tokens` on `sim` (see {@link DispatchProbe}) and its `h` blocks. */
function doorOf(sim: SimWorker, index: BlockIndex, tokens: Uint32Array, hashes: ChunkHashes) {
  let door = "";
  const stale: number[] = [];
  for (let i = 0; 2 * i < hashes.length; i++) {
    const m = index.matchTiers(sim.id, hashes.subarray(2 * i, 2 * i + 2));
    const held = m.gpu + m.cpu + m.other > 0;
    if (sim.engine.isBlockCached({ tokens }, i)) door += "E";
    else if (held) {
      door += "h";
      stale.push(i);
    } else door += m.predicted > 0 ? "p" : "-";
  }
  return { door, stale };
}

/** Polls until the index no longer holds blocks `stale` of `hashes` (at most 1 s). */
async function watchStale(
  sim: SimWorker,
  index: BlockIndex,
  hashes: ChunkHashes,
  stale: readonly number[],
  probe: DispatchProbe,
): Promise<void> {
  const t0 = performance.now();
  const left = new Set(stale);
  while (left.size > 0 && performance.now() - t0 < 1000) {
    await new Promise((r) => setTimeout(r, 2));
    for (const i of [...left]) {
      const m = index.matchTiers(sim.id, hashes.subarray(2 * i, 2 * i + 2));
      if (m.gpu + m.cpu + m.other === 0) left.delete(i);
    }
  }
  probe.stale_cleared_ms = performance.now() - t0;
  probe.stale_left = left.size;
}

/** Notes a {@link DispatchProbe} of a chat body arriving at `sim`; `watches` gets its polls. */
function probeOf(
  sim: SimWorker,
  req: Request,
  body: Uint8Array,
  indexOf: IndexRef,
  watches: Promise<void>[],
): DispatchProbe | null {
  let tokens: Uint32Array;
  try {
    tokens = sim.tokenizer.chat(JSON.parse(new TextDecoder().decode(body))).tokens;
  } catch {
    return null; // the worker answers a body it cannot take
  }
  const probe: DispatchProbe = {
    request_id: req.headers.get("x-request-id") ?? "",
    dispatch_cached: sim.engine.peekCachedTokens({ tokens }),
    prompt_tokens: tokens.length,
  };
  const precise = indexOf();
  if (precise !== null) {
    const hashes = blockHashes(tokens, precise.blockSize);
    const { door, stale } = doorOf(sim, precise.index, tokens, hashes);
    probe.door = door;
    if (stale.length > 0) watches.push(watchStale(sim, precise.index, hashes, stale, probe));
  }
  return probe;
}

/** Pass-through proxies, one before each worker, recording a {@link DispatchProbe} per chat request. */
function startProbes(sims: readonly SimWorker[], into: DispatchProbe[], indexOf: IndexRef) {
  const watches: Promise<void>[] = [];
  const servers = sims.map((sim) =>
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const url = new URL(req.url);
      const body = req.body === null ? null : new Uint8Array(await req.arrayBuffer());
      if (url.pathname === "/v1/chat/completions" && body !== null) {
        const p = probeOf(sim, req, body, indexOf, watches);
        if (p !== null) into.push(p);
      }
      const headers = new Headers(req.headers);
      for (const h of ["host", "content-length", "connection"]) headers.delete(h);
      const res = await fetch(sim.url + url.pathname + url.search, {
        method: req.method,
        headers,
        body,
        signal: req.signal,
      });
      return new Response(res.body, { status: res.status, headers: res.headers });
    })
  );
  return {
    urls: servers.map((s) => `http://127.0.0.1:${s.addr.port}`),
    /** Waits for the polls, then closes. */
    close: async () => {
      await Promise.all(watches);
      await Promise.all(servers.map((s) => s.shutdown()));
    },
  };
}

async function startWorkers(o: RunOptions): Promise<SimWorker[]> {
  const started = await Promise.allSettled(
    Array.from({ length: o.workers }, (_, i) =>
      startSimWorker({
        id: `w${i + 1}`,
        profile: o.profile,
        timeScale: o.timeScale,
        params: { capacityBlocks: o.capacityBlocks },
        maxModelLen: o.maxModelLen,
        kvEvents: { endpoint: "tcp://127.0.0.1:0", replayEndpoint: "tcp://127.0.0.1:0" },
      })),
  );
  const ok = started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  const failed = started.find((s) => s.status === "rejected");
  if (failed !== undefined) {
    await Promise.all(ok.map((w) => w.shutdown()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return ok;
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** A log sink that keeps access lines and counts warnings by message. */
function capture() {
  const access: AccessLine[] = [];
  const warnings: Record<string, number> = {};
  const sink = (line: string) => {
    const j = JSON.parse(line);
    if (j.msg === "request") {
      access.push({
        request_id: j.request_id,
        backend: j.backend ?? null,
        reason: j.reason ?? null,
        match_chunks: Number(j.match_chunks ?? NaN),
        status: Number(j.status ?? 0),
        prompt_tokens: j.prompt_tokens ?? null,
        cached_tokens: j.cached_tokens ?? null,
      });
    } else if (j.level === "warn" || j.level === "error") {
      warnings[j.msg] = (warnings[j.msg] ?? 0) + 1;
    }
  };
  return { access, warnings, logger: new Logger("info", "json", sink) };
}

/** Runs one mode on one trace with fresh workers and router; see the module comment. */
async function runOnce(
  trace: readonly TraceEntry[],
  mode: Mode,
  strategy: string,
  seed: number,
  o: RunOptions,
): Promise<Omit<RunData, "shape" | "sessions" | "seed" | "strategy">> {
  const t0 = performance.now();
  const sims = await startWorkers(o);
  const log = capture();
  const probes: DispatchProbe[] = [];
  const proxies = o.probe ? startProbes(sims, probes, () => running?.router.precise ?? null) : null;
  let running: RunningRouter | null = null;
  try {
    const config = configFromWorkers(
      sims.map((w, i) => ({
        id: w.id,
        url: proxies?.urls[i] ?? w.url,
        ...(mode === "precise"
          ? {
            kvEvents: `tcp://127.0.0.1:${w.kvEventsPort}`,
            kvEventsReplay: `tcp://127.0.0.1:${w.kvEventsReplayPort}`,
          }
          : {}),
      })),
      { router: { index: mode, strategy, seed } },
    );
    running = await startRouter(config, { port: 0, hostname: "127.0.0.1", logger: log.logger });
    const precise = running.router.precise;
    if (precise !== null) {
      const up = await waitFor(
        () => precise.subscriptions().every((s) => s.sub.state === "connected"),
        10_000,
      );
      if (!up) throw new Error("KV event subscriptions did not connect within 10 s");
    }
    const records = await replayTrace(trace, { url: running.url, timeoutMs: 120_000 });
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    const router: Record<string, number> = {};
    for (const n of ROUTER_COUNTERS) router[n] = sumFamily(metrics, n);
    const stats = sims.map((w) => w.engine.stats());
    return {
      mode,
      tokensPerChunk: tokensPerChunk(mode, config),
      records,
      access: log.access,
      evictedBlocks: stats.reduce((s, x) => s + x.evictedBlocks, 0),
      preemptions: stats.reduce((s, x) => s + x.preemptions, 0),
      evictedPerWorker: stats.map((x) => x.evictedBlocks),
      router,
      warnings: log.warnings,
      ...(proxies === null ? {} : { probes }),
      wallMs: performance.now() - t0,
    };
  } finally {
    if (running !== null) await running.shutdown();
    await proxies?.close();
    await Promise.all(sims.map((w) => w.shutdown()));
  }
}

function list(v: string | undefined, dflt: number[]): number[] {
  return v === undefined ? dflt : v.split(",").map((x) => Number(x.trim()));
}

/** The flags (the help lists them from here). */
export const FLAGS = {
  shapes: {
    type: "string",
    value: "A,B",
    shown: "multiturn,rag",
    help: "trace shapes (src/bench/traces.ts)",
  },
  strategies: {
    type: "string",
    value: "A,B",
    shown: "prefixaware,costaware",
    help: "strategies, each run in both index modes",
  },
  sessions: {
    type: "string",
    value: "N,...",
    shown: "8,16,24; 4 with --quick",
    help: "concurrent sessions per cell",
  },
  seeds: { type: "string", value: "N,...", shown: "1,2,3; 1 with --quick", help: "trace seeds" },
  "capacity-blocks": {
    type: "string",
    value: "N",
    shown: "384",
    help: "KV blocks per simulated engine (must hold max_model_len 4096 tokens)",
  },
  "time-scale": {
    type: "string",
    value: "X",
    shown: "0.5",
    help: "time scale of the simulated engines (as sim-worker --time-scale)",
  },
  turns: { type: "string", value: "N", shown: "8; 3 with --quick", help: "turns per session" },
  "think-ms": { type: "string", value: "MS", shown: "1000", help: "pause between turns" },
  "stagger-ms": {
    type: "string",
    value: "MS",
    shown: "2000",
    help: "sessions' first turns spread over [0, MS]",
  },
  out: {
    type: "string",
    value: "DIR",
    shown: "bench/results/precise-DATE",
    help: "output folder (report.md, results.json, logs)",
  },
  quick: { type: "boolean", help: "a small run: 4 sessions, 1 seed, 3 turns" },
  probe: {
    type: "boolean",
    help: "a pass-through proxy before each worker records what each request found cached",
  },
  from: {
    type: "string",
    value: "DIR[,DIR]",
    shown: "none",
    help: "write report.md and results.json again from earlier runs (several: pooled into --out)",
  },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagTable;

const USAGE = `Usage: nice deno run -A bench/precise_compare.ts [options]

Approximate vs precise index on the simulated fleet over HTTP, alternating modes per cell.

Options:
${flagHelp(FLAGS)}`;

function parseSetup(args: string[]): BenchSetup & { out: string; from?: string } {
  const values = parseFlags(FLAGS, args);
  const quick = values.quick === true;
  const date = new Date().toISOString().slice(0, 10);
  const cpu = (() => {
    try {
      const m = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/);
      return m?.[1] ?? "unknown CPU";
    } catch {
      return "unknown CPU";
    }
  })();
  const mem = Math.round(Deno.systemMemoryInfo().total / 2 ** 30);
  const setup = {
    command: `nice deno run -A bench/precise_compare.ts ${args.join(" ")}`.trim(),
    date,
    machine:
      `${navigator.hardwareConcurrency} cores (${cpu}), ${mem} GiB, Deno ${Deno.version.deno}`,
    workers: 4,
    profile: "a100-7b",
    timeScale: Number(values["time-scale"] ?? 0.5),
    capacityBlocks: Number(values["capacity-blocks"] ?? 384),
    maxModelLen: 4096,
    shapes: (values.shapes ?? "multiturn,rag").split(",") as Shape[],
    strategies: (values.strategies ?? "prefixaware,costaware").split(","),
    sessions: list(values.sessions, quick ? [4] : [8, 16, 24]),
    seeds: list(values.seeds, quick ? [1] : [1, 2, 3]),
    turns: Number(values.turns ?? (quick ? 3 : 8)),
    thinkMs: Number(values["think-ms"] ?? 1000),
    staggerMs: Number(values["stagger-ms"] ?? 2000),
    systemBytes: 6144,
    maxTokens: 64,
    probe: values.probe === true,
  };
  if (setup.capacityBlocks * BLOCK_TOKENS < setup.maxModelLen) {
    throw new RangeError(
      `--capacity-blocks must hold max_model_len ${setup.maxModelLen} tokens, got ${setup.capacityBlocks}`,
    );
  }
  return { ...setup, out: values.out ?? `bench/results/precise-${date}`, from: values.from };
}

/** One short unrecorded run per mode: JIT and first allocations land on neither mode's cells. */
async function warmup(s: BenchSetup, o: RunOptions): Promise<void> {
  const trace = generateTrace({ shape: "multiturn", sessions: 2, turns: 2, seed: 0 });
  for (const mode of MODES) await runOnce(trace, mode, s.strategies[0], 0, o);
}

async function main(): Promise<void> {
  let s;
  try {
    if (parseFlags(FLAGS, Deno.args).help) {
      console.log(USAGE);
      return;
    }
    s = parseSetup(Deno.args);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    Deno.exit(2);
  }
  if (s.from !== undefined) {
    const dirs = s.from.split(",");
    const { setup, runs } = pool(await Promise.all(dirs.map(loadRuns)));
    const out = dirs.length === 1 ? dirs[0] : s.out;
    await writeReport(setup, runs, out);
    console.error(`wrote ${out}/report.md and results.json from the JSONL files of ${s.from}`);
    return;
  }
  const o: RunOptions = s;
  await warmup(s, o);
  const runs: RunData[] = [];
  for (const shape of s.shapes) {
    for (const strategy of s.strategies) {
      for (const sessions of s.sessions) {
        for (const seed of s.seeds) {
          const trace = generateTrace({
            shape,
            sessions,
            turns: s.turns,
            seed,
            systemBytes: s.systemBytes,
            maxTokens: s.maxTokens,
            thinkMs: s.thinkMs * s.timeScale,
            staggerMs: s.staggerMs * s.timeScale,
          });
          const order = seed % 2 === 1 ? MODES : [...MODES].reverse();
          for (const mode of order) {
            const r = await runOnce(trace, mode, strategy, seed, o);
            const run: RunData = { ...r, shape, strategy, sessions, seed };
            runs.push(run);
            const err = mean(predictionErrors(run.access, run.tokensPerChunk).map(Math.abs));
            console.error(
              `${shape} ${strategy} sessions=${sessions} seed=${seed} ${mode}: ` +
                `KV ${pct(cachedShare(tokenPairs(run.records)))}% |err| ${f2(err)} blocks, ` +
                `evicted ${run.evictedBlocks}, ${(run.wallMs / 1000).toFixed(1)} s`,
            );
          }
        }
      }
    }
  }
  const { out, from: _, ...setup } = s;
  await writeReport(setup, runs, out);
  await writeRaw(runs, out);
  console.error(`wrote ${out}/report.md, results.json and the JSONL files`);
}

/** The cells, criteria and report of `runs`: writes report.md and results.json to `dir`. */
async function writeReport(setup: BenchSetup, runs: readonly RunData[], dir: string) {
  const key = (r: RunData) => `${r.shape}|${r.strategy}|${r.sessions}|${r.mode}`;
  const keys = [...new Set(runs.map(key))];
  const cells = keys.map((k) => summarizeCell(runs.filter((r) => key(r) === k)));
  const rows = criteria(cells, runs);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/report.md`, renderReport(setup, cells, rows));
  const meta = runs.map(({ records: _r, access: _a, probes: _p, ...m }) => m);
  await Deno.writeTextFile(
    `${dir}/results.json`,
    JSON.stringify({ setup, criteria: rows, cells, runs: meta }, null, 2) + "\n",
  );
}

/** A run's tag on its lines in the JSONL files. */
function tagOf(r: Pick<RunData, "shape" | "strategy" | "sessions" | "seed" | "mode">) {
  return { shape: r.shape, strategy: r.strategy, sessions: r.sessions, seed: r.seed, mode: r.mode };
}

function tagKey(r: Pick<RunData, "shape" | "strategy" | "sessions" | "seed" | "mode">): string {
  return `${r.shape}|${r.strategy}|${r.sessions}|${r.seed}|${r.mode}`;
}

/** Writes records.jsonl, access.jsonl and (with probes) probes.jsonl to `dir`. */
async function writeRaw(runs: readonly RunData[], dir: string): Promise<void> {
  const lines = (pick: (r: RunData) => readonly object[]) =>
    recordsToJsonl(runs.flatMap((r) => pick(r).map((x) => ({ ...x, ...tagOf(r) }))));
  await Deno.writeTextFile(`${dir}/records.jsonl`, lines((r) => r.records));
  await Deno.writeTextFile(`${dir}/access.jsonl`, lines((r) => r.access));
  if (runs.some((r) => r.probes !== undefined)) {
    await Deno.writeTextFile(`${dir}/probes.jsonl`, lines((r) => r.probes ?? []));
  }
}

/** Several folders' runs as one: seeds and shapes joined, the commands listed. */
function pool(parts: { setup: BenchSetup; runs: RunData[] }[]): {
  setup: BenchSetup;
  runs: RunData[];
} {
  if (parts.length === 1) return parts[0];
  const union = <T>(xs: readonly T[]) => [...new Set(xs)];
  const first = parts[0].setup;
  return {
    setup: {
      ...first,
      command: parts.map((p) => p.setup.command).join(" + "),
      shapes: union(parts.flatMap((p) => p.setup.shapes)),
      strategies: union(parts.flatMap((p) => p.setup.strategies)),
      sessions: union(parts.flatMap((p) => p.setup.sessions)).sort((a, b) => a - b),
      seeds: union(parts.flatMap((p) => p.setup.seeds)).sort((a, b) => a - b),
    },
    runs: parts.flatMap((p) => p.runs),
  };
}

/** The setup and runs of a results folder written by this script (`--from`). */
async function loadRuns(dir: string): Promise<{ setup: BenchSetup; runs: RunData[] }> {
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
  const setup: BenchSetup = { probe: false, ...saved.setup };
  const grouped = async (file: string) => {
    const m = new Map<string, Record<string, unknown>[]>();
    let text: string;
    try {
      text = await Deno.readTextFile(`${dir}/${file}`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    for (const x of recordsFromJsonl<Record<string, unknown>>(text)) {
      const k = tagKey(x as unknown as RunData);
      const { shape: _s, strategy: _t, sessions: _n, seed: _d, mode: _m, ...rest } = x;
      m.set(k, [...(m.get(k) ?? []), rest]);
    }
    return m;
  };
  const [records, access, probes] = await Promise.all(
    ["records.jsonl", "access.jsonl", "probes.jsonl"].map(grouped),
  );
  const runs = (saved.runs as Omit<RunData, "records" | "access">[]).map((m) => ({
    ...m,
    records: (records?.get(tagKey(m)) ?? []) as unknown as RequestRecord[],
    access: (access?.get(tagKey(m)) ?? []) as unknown as AccessLine[],
    ...(probes === null ? {} : {
      probes: (probes.get(tagKey(m)) ?? []) as unknown as DispatchProbe[],
    }),
  }));
  return { setup, runs };
}

if (import.meta.main) await main();
