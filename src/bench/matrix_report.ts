/**
 * Statistics and tables of the routing-quality matrix (`matrix.ts`).
 *
 * Per cell and strategy: p50, p95 and p99 TTFT over every request (a request without a first
 * token, i.e. an error, counts as +∞: a strategy does not look better by failing requests), the
 * KV-cached share (Σ cached ÷ Σ prompt tokens as the engine reported them), evicted KV blocks and
 * preemptions.
 *
 * CIs are 95% percentile-bootstrap intervals, paired: each of 1000 resamples draws the cell's
 * requests (seed, session, turn) with replacement and computes every strategy's p95 on the same
 * draw, so the ratio default ÷ other is resampled with both sides on the same requests (every
 * strategy ran the same trace). Requests are resampled one by one, as if independent; requests of
 * one session are correlated, so the intervals are somewhat narrow.
 *
 * The target (issue 19): default p95 ≤ 0.8 × leastloaded's and ≤ 1.05 × the best other
 * strategy's (the one with the lowest point p95 among the rest), on the point estimates.
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import { type Estimate, percentileSorted } from "./stats.ts";
import type { Cell, CellRecords } from "./matrix.ts";

/** Target ratios of the default's p95 TTFT. */
export const TARGET_VS_LEASTLOADED = 0.8;
export const TARGET_VS_BEST = 1.05;

/** One strategy in one cell. */
export interface StrategyStats {
  readonly strategy: string;
  readonly requests: number;
  readonly errors: number;
  readonly p50: number;
  readonly p95: Estimate;
  readonly p99: number;
  readonly kvCached: number;
  readonly evictedBlocks: number;
  readonly preemptions: number;
}

/** One cell's result. */
export interface CellResult {
  readonly cell: Cell;
  readonly strategies: readonly StrategyStats[];
  readonly defaultStrategy: string;
  /** default p95 ÷ leastloaded p95. */
  readonly vsLeastLoaded: Estimate;
  /** The other strategy with the lowest p95, and default p95 ÷ its p95. */
  readonly best: string;
  readonly vsBest: Estimate;
  readonly passes: boolean;
}

/** Statistics of every cell; see the module comment. */
export function matrixResults(
  cells: readonly CellRecords[],
  defaultStrategy: string,
  resamples = 1000,
): CellResult[] {
  return cells.map((c) => cellResult(c, defaultStrategy, resamples));
}

function cellResult(c: CellRecords, def: string, resamples: number): CellResult {
  const keys = [...c.runs[0].records.keys()].sort();
  const ttft = c.runs.map((run) =>
    Float64Array.from(keys, (k) => run.records.get(k)?.ttft_ms ?? Infinity)
  );
  const n = keys.length;
  const p95s = ttft.map((t) => p(t, 95));
  const di = c.runs.findIndex((r) => r.strategy === def);
  const li = c.runs.findIndex((r) => r.strategy === "leastloaded");
  let bi = -1;
  for (let i = 0; i < c.runs.length; i++) {
    if (i !== di && (bi === -1 || p95s[i] < p95s[bi])) bi = i;
  }
  // Paired bootstrap: the same drawn requests for every strategy.
  const rng = new SeededRng(1);
  const draws = c.runs.map(() => new Float64Array(resamples));
  const buf = new Float64Array(n);
  for (let r = 0; r < resamples; r++) {
    const idx = Array.from({ length: n }, () => rng.int(n));
    for (let s = 0; s < c.runs.length; s++) {
      for (let i = 0; i < n; i++) buf[i] = ttft[s][idx[i]];
      draws[s][r] = p(buf, 95);
    }
  }
  const ratio = (a: number, b: number): Estimate => {
    const rs = Float64Array.from(draws[a], (x, r) => x / draws[b][r]).sort();
    return {
      value: p95s[a] / p95s[b],
      lo: percentileSorted(rs, 2.5),
      hi: percentileSorted(rs, 97.5),
    };
  };
  const strategies = c.runs.map((run, s): StrategyStats => {
    const sorted = draws[s].slice().sort();
    let prompt = 0;
    let cached = 0;
    let errors = 0;
    for (const rec of run.records.values()) {
      prompt += rec.prompt_tokens;
      cached += rec.cached_tokens;
      if (rec.ttft_ms === null) errors++;
    }
    return {
      strategy: run.strategy,
      requests: run.records.size,
      errors,
      p50: p(ttft[s], 50),
      p95: {
        value: p95s[s],
        lo: percentileSorted(sorted, 2.5),
        hi: percentileSorted(sorted, 97.5),
      },
      p99: p(ttft[s], 99),
      kvCached: prompt > 0 ? cached / prompt : NaN,
      evictedBlocks: run.evictedBlocks,
      preemptions: run.preemptions,
    };
  });
  const vsLeastLoaded = ratio(di, li);
  const vsBest = ratio(di, bi);
  return {
    cell: c.cell,
    strategies,
    defaultStrategy: def,
    vsLeastLoaded,
    best: c.runs[bi].strategy,
    vsBest,
    passes: vsLeastLoaded.value <= TARGET_VS_LEASTLOADED && vsBest.value <= TARGET_VS_BEST,
  };
}

/** Percentile of unsorted values (copied, sorted). */
function p(xs: Float64Array, q: number): number {
  return percentileSorted(xs.slice().sort(), q);
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : "∞");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "∞");
const ci0 = (e: Estimate) => `${f0(e.value)} [${f0(e.lo)}, ${f0(e.hi)}]`;
const ci2 = (e: Estimate) => `${f2(e.value)} [${f2(e.lo)}, ${f2(e.hi)}]`;

/** A cell's name: shape, profile, workers, loop. */
export function cellName(c: Cell): string {
  return `${c.shape} ${c.profile} ${c.workers}w ${c.loop}`;
}

/**
 * The summary table: per cell, the default's and leastloaded's p95, their ratio, the best other
 * strategy's p95 and the ratio to it, all with 95% CIs, and whether the cell meets the target.
 */
export function renderSummary(results: readonly CellResult[]): string {
  const def = results[0]?.defaultStrategy ?? "default";
  const lines = [
    `| cell | requests | ${def} p95 ms | leastloaded p95 ms | ÷ leastloaded | best other | its p95 ms | ÷ best other | target |`,
    "| --- | --: | --: | --: | --: | --- | --: | --: | :-: |",
  ];
  for (const r of results) {
    const d = r.strategies.find((s) => s.strategy === r.defaultStrategy)!;
    const l = r.strategies.find((s) => s.strategy === "leastloaded")!;
    const b = r.strategies.find((s) => s.strategy === r.best)!;
    lines.push(
      `| ${cellName(r.cell)} | ${d.requests} | ${ci0(d.p95)} | ${ci0(l.p95)} | ${
        ci2(r.vsLeastLoaded)
      } | ${r.best} | ${ci0(b.p95)} | ${ci2(r.vsBest)} | ${r.passes ? "yes" : "no"} |`,
    );
  }
  const met = results.filter((r) => r.passes).length;
  lines.push("", `${met} of ${results.length} cells meet both targets.`);
  return lines.join("\n");
}

/** Every strategy of every cell: p50, p95 [CI], p99, KV-cached share, evictions, preemptions. */
export function renderFull(results: readonly CellResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    const c = r.cell;
    const seeds = `seeds ${c.seeds[0]}–${c.seeds.at(-1)}`;
    const rate = c.rate === undefined ? "" : `, ${c.rate.toFixed(2)} req/s`;
    out.push(`### ${cellName(c)} (${c.sessions} sessions, ${seeds}${rate})`, "");
    out.push(
      "| strategy | p50 ms | p95 ms [95% CI] | p99 ms | KV cached % | errors | evicted blocks | preemptions |",
    );
    out.push("| --- | --: | --: | --: | --: | --: | --: | --: |");
    const sorted = [...r.strategies].sort((a, b) => a.p95.value - b.p95.value);
    for (const s of sorted) {
      out.push(
        `| ${s.strategy} | ${f0(s.p50)} | ${ci0(s.p95)} | ${f0(s.p99)} | ${
          (100 * s.kvCached).toFixed(1)
        } | ${s.errors} | ${s.evictedBlocks} | ${s.preemptions} |`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}

/** The results as JSON-ready data (no records). */
export function resultsJson(results: readonly CellResult[]): unknown {
  return results.map((r) => {
    const { arrivals: _, ...cell } = r.cell;
    return { ...r, cell: { ...cell, name: cellName(r.cell) } };
  });
}
