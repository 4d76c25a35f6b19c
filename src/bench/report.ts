/**
 * Aggregates sweep records into per-point results, tables and charts.
 *
 * A point is (strategy, sessions). For each point and metric the report gives:
 * - `value` and a 95% percentile-bootstrap CI over the per-request distribution pooled across
 *   seeds (TTFT p50/p95/p99/mean over successful requests; KV-cached share Σcached/Σprompt over
 *   successful requests, a null `cached_tokens` counting as 0 when the run reports cache hits at
 *   all, each request resampled as a pair);
 * - `seedMean ± seedStd`: mean and sample stddev of the metric computed per seed (the stddev is
 *   NaN, shown n/a, with one seed).
 * RPS (successful requests / wall span of the run) is one number per run, so it has no
 * per-request distribution: its CI is null and only the across-seed spread is given.
 *
 * Slope table, per strategy: p50 TTFT slope in ms per session from the first to the last sessions
 * point (with a bootstrap CI resampling both points' requests), least squares over all points,
 * and the mean ± stddev of the per-seed least-squares slopes.
 *
 * Comparison table, per sessions point: the reference strategy (`prefixaware`) against the
 * baseline with the lowest p50 TTFT at that point.
 *
 * Charts are SVG from ECharts' server-side renderer, drawn by `charts.ts`.
 *
 * @module
 */

import { SeededRng } from "../util/rng.ts";
import { bootstrap, bootstrapMany, cachedShare, mean, percentile, slope, stddev } from "./stats.ts";
import type { TokenPair } from "./stats.ts";
import type { BenchRecord } from "./types.ts";
import { recordsToJsonl } from "./replay.ts";
import { renderCharts } from "./charts.ts";

export { renderCharts };

/** One metric of one point. */
export interface Metric {
  /** On the pooled requests (RPS: mean over seeds). */
  value: number;
  /** 95% bootstrap CI over pooled requests; null where the metric has no per-request sample. */
  ciLo: number | null;
  ciHi: number | null;
  /** Per seed, in `seeds` order. */
  perSeed: number[];
  seedMean: number;
  seedStd: number;
}

/** Results of one (strategy, sessions) point. */
export interface PointResult {
  strategy: string;
  sessions: number;
  seeds: number[];
  requests: number;
  errors: number;
  /** KV-cached share in [0, 1]. */
  kvCached: Metric;
  ttftP50: Metric;
  ttftP95: Metric;
  ttftP99: Metric;
  ttftMean: Metric;
  rps: Metric;
}

/** p50 TTFT slope of one strategy, ms per session. */
export interface SlopeRow {
  strategy: string;
  fromSessions: number;
  toSessions: number;
  /** (p50 at last − p50 at first) / (last − first sessions), pooled requests. */
  firstLast: number;
  firstLastLo: number;
  firstLastHi: number;
  /** Least squares over all points' pooled p50. */
  leastSquares: number;
  /** Mean and stddev over seeds of the per-seed least-squares slope. */
  seedMean: number;
  seedStd: number;
  /**
   * This first→last slope minus the reference strategy's, with a 95% bootstrap CI (all four
   * pooled samples resampled); null for the reference itself or when the points differ. A CI
   * that holds 0 means the two slopes are not told apart at this sample size.
   */
  vsReference: { value: number; lo: number; hi: number } | null;
}

/** Reference strategy against the best baseline at one sessions point. */
export interface CompareRow {
  sessions: number;
  reference: string;
  referenceP50: Metric;
  referenceKv: Metric;
  baseline: string;
  baselineP50: Metric;
  baselineKv: Metric;
  /** (reference − baseline) / baseline p50, percent; negative = reference faster. */
  deltaP50Pct: number;
}

/** Empirical TTFT CDF of one strategy at one sessions point. */
export interface CdfSeries {
  strategy: string;
  sessions: number;
  /** [ttft ms, cumulative fraction], at most 200 points. */
  points: [number, number][];
  /** Requests the CDF is taken over (for its confidence band). */
  requests: number;
}

/** Everything a report holds; serialized as `results.json`. */
export interface Report {
  title: string;
  /** Lines about how the run was made (e.g. how engine caches were handled), printed first. */
  notes?: string[];
  strategies: string[];
  sessions: number[];
  seeds: number[];
  resamples: number;
  reference: string;
  points: PointResult[];
  slopes: SlopeRow[];
  comparison: CompareRow[];
  cdf: CdfSeries[];
}

/** Options of `buildReport`. */
export interface ReportOptions {
  title?: string;
  /** Lines printed under the title (see `Report.notes`). */
  notes?: string[];
  /** Bootstrap resamples (default 1000). */
  resamples?: number;
  /** Seed of the bootstrap RNG (default 1). */
  seed?: number;
  /** Strategy compared against the best baseline (default `prefixaware`). */
  reference?: string;
}

const ok = (r: BenchRecord) => r.status === 200 && r.error === null && r.ttft_ms !== null;

function ttfts(rs: readonly BenchRecord[]): number[] {
  return rs.filter(ok).map((r) => r.ttft_ms!);
}

/**
 * Prompt and cached tokens of successful requests. Engines report `cached_tokens: null` (or omit
 * it) when nothing was cached, so null counts as 0, if `reports`: some request of the whole run
 * reported cached tokens. If none did, the engine does not report cache hits and the share is
 * unknown (empty result). Deciding that per run, not per seed or point, keeps a seed or point
 * that had no hit at 0% instead of unknown.
 */
function tokenPairs(rs: readonly BenchRecord[], reports: boolean): TokenPair[] {
  if (!reports) return [];
  return rs.filter((r) => r.status === 200 && r.error === null && r.prompt_tokens)
    .map((r) => ({ prompt: r.prompt_tokens!, cached: r.cached_tokens ?? 0 }));
}

/** Successful requests per second of wall time of one run. */
function rpsOf(rs: readonly BenchRecord[]): number {
  if (rs.length === 0) return NaN;
  const start = Math.min(...rs.map((r) => r.start_ms));
  const end = Math.max(...rs.map((r) => r.start_ms + r.total_ms));
  return end > start ? rs.filter(ok).length / ((end - start) / 1000) : NaN;
}

function uniq<T>(xs: Iterable<T>): T[] {
  return [...new Set(xs)];
}

/** Aggregates tagged records into a report. */
export function buildReport(records: readonly BenchRecord[], opts: ReportOptions = {}): Report {
  const resamples = opts.resamples ?? 1000;
  const reference = opts.reference ?? "prefixaware";
  const bopts = () => ({ resamples, rng: new SeededRng(opts.seed ?? 1) });
  const reportsCached = records.some((r) => r.cached_tokens !== null);
  const strategies = uniq(records.map((r) => r.strategy));
  const sessions = uniq(records.map((r) => r.sessions)).sort((a, b) => a - b);
  const seeds = uniq(records.map((r) => r.seed)).sort((a, b) => a - b);

  const cell = new Map<string, BenchRecord[]>();
  const key = (st: string, s: number, seed?: number) => `${st}\u0000${s}\u0000${seed ?? "*"}`;
  for (const r of records) {
    for (const k of [key(r.strategy, r.sessions), key(r.strategy, r.sessions, r.seed)]) {
      let a = cell.get(k);
      if (!a) cell.set(k, a = []);
      a.push(r);
    }
  }

  const points: PointResult[] = [];
  for (const st of strategies) {
    for (const s of sessions) {
      const pooled = cell.get(key(st, s));
      if (!pooled) continue;
      const runSeeds = seeds.filter((sd) => cell.has(key(st, s, sd)));
      const perSeed = runSeeds.map((sd) => cell.get(key(st, s, sd))!);
      const t = ttfts(pooled);
      const metric = (
        sample: number[] | null,
        stat: ((xs: readonly number[]) => number) | null,
        per: (rs: BenchRecord[]) => number,
        ci?: { value: number; lo: number; hi: number },
      ): Metric => {
        const ps = perSeed.map(per);
        const est = ci ?? (sample && stat ? bootstrap(sample, stat, bopts()) : null);
        return {
          value: est ? est.value : mean(ps),
          ciLo: est ? est.lo : null,
          ciHi: est ? est.hi : null,
          perSeed: ps,
          seedMean: mean(ps),
          seedStd: seedSpread(ps),
        };
      };
      const pct = (p: number) => (xs: readonly number[]) => percentile(xs, p);
      const pairs = tokenPairs(pooled, reportsCached);
      points.push({
        strategy: st,
        sessions: s,
        seeds: runSeeds,
        requests: pooled.length,
        errors: pooled.filter((r) => !ok(r)).length,
        kvCached: metric(
          null,
          null,
          (rs) => cachedShare(tokenPairs(rs, reportsCached)),
          bootstrap(pairs, cachedShare, bopts()),
        ),
        ttftP50: metric(t, pct(50), (rs) => percentile(ttfts(rs), 50)),
        ttftP95: metric(t, pct(95), (rs) => percentile(ttfts(rs), 95)),
        ttftP99: metric(t, pct(99), (rs) => percentile(ttfts(rs), 99)),
        ttftMean: metric(t, mean, (rs) => mean(ttfts(rs))),
        rps: metric(null, null, rpsOf),
      });
    }
  }

  const slopes: SlopeRow[] = [];
  for (const st of strategies) {
    const ps = points.filter((p) => p.strategy === st && Number.isFinite(p.ttftP50.value));
    if (ps.length < 2) continue;
    const first = ps[0];
    const last = ps[ps.length - 1];
    const dx = last.sessions - first.sessions;
    const fl = bootstrapMany(
      [ttfts(cell.get(key(st, first.sessions))!), ttfts(cell.get(key(st, last.sessions))!)],
      ([a, b]) => (percentile(b, 50) - percentile(a, 50)) / dx,
      bopts(),
    );
    const perSeed = seeds.map((sd) => {
      const xs: number[] = [];
      const ys: number[] = [];
      for (const p of ps) {
        const rs = cell.get(key(st, p.sessions, sd));
        const t = rs ? ttfts(rs) : [];
        if (t.length) {
          xs.push(p.sessions);
          ys.push(percentile(t, 50));
        }
      }
      return xs.length >= 2 ? slope(xs, ys) : NaN;
    }).filter(Number.isFinite);
    const refPs = points.filter((p) =>
      p.strategy === reference && Number.isFinite(p.ttftP50.value)
    );
    let vsReference: SlopeRow["vsReference"] = null;
    if (
      st !== reference && refPs.length >= 2 && refPs[0].sessions === first.sessions &&
      refPs[refPs.length - 1].sessions === last.sessions
    ) {
      vsReference = bootstrapMany(
        [
          ttfts(cell.get(key(st, first.sessions))!),
          ttfts(cell.get(key(st, last.sessions))!),
          ttfts(cell.get(key(reference, first.sessions))!),
          ttfts(cell.get(key(reference, last.sessions))!),
        ],
        ([a, b, ra, rb]) =>
          (percentile(b, 50) - percentile(a, 50) - (percentile(rb, 50) - percentile(ra, 50))) / dx,
        bopts(),
      );
    }
    slopes.push({
      vsReference,
      strategy: st,
      fromSessions: first.sessions,
      toSessions: last.sessions,
      firstLast: fl.value,
      firstLastLo: fl.lo,
      firstLastHi: fl.hi,
      leastSquares: slope(ps.map((p) => p.sessions), ps.map((p) => p.ttftP50.value)),
      seedMean: mean(perSeed),
      seedStd: seedSpread(perSeed),
    });
  }

  const comparison: CompareRow[] = [];
  for (const s of sessions) {
    const ref = points.find((p) => p.strategy === reference && p.sessions === s);
    const others = points.filter((p) =>
      p.strategy !== reference && p.sessions === s && Number.isFinite(p.ttftP50.value)
    );
    if (!ref || others.length === 0) continue;
    const best = others.reduce((a, b) => (b.ttftP50.value < a.ttftP50.value ? b : a));
    comparison.push({
      sessions: s,
      reference,
      referenceP50: ref.ttftP50,
      referenceKv: ref.kvCached,
      baseline: best.strategy,
      baselineP50: best.ttftP50,
      baselineKv: best.kvCached,
      deltaP50Pct: 100 * (ref.ttftP50.value - best.ttftP50.value) / best.ttftP50.value,
    });
  }

  const cdf: CdfSeries[] = [];
  const top = sessions[sessions.length - 1];
  for (const st of strategies) {
    const rs = cell.get(key(st, top));
    if (!rs) continue;
    const t = Float64Array.from(ttfts(rs)).sort();
    const stride = Math.max(1, Math.ceil(t.length / 200));
    const pts: [number, number][] = [];
    for (let i = 0; i < t.length; i += stride) pts.push([t[i], (i + 1) / t.length]);
    if (t.length && pts[pts.length - 1][1] !== 1) pts.push([t[t.length - 1], 1]);
    cdf.push({ strategy: st, sessions: top, points: pts, requests: t.length });
  }

  return {
    title: opts.title ?? "Benchmark",
    ...(opts.notes && opts.notes.length > 0 ? { notes: [...opts.notes] } : {}),
    strategies,
    sessions,
    seeds,
    resamples,
    reference,
    points,
    slopes,
    comparison,
    cdf,
  };
}

// ---------------------------------------------------------------------------------------------
// Markdown

/** Sample stddev over seeds; NaN (shown n/a) with one seed, where there is no spread to show. */
function seedSpread(xs: readonly number[]): number {
  return xs.length < 2 ? NaN : stddev(xs);
}

function num(x: number | null, digits = 1): string {
  return x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(digits);
}

function withCi(m: Metric, scale = 1, digits = 1): string {
  const v = num(m.value * scale, digits);
  if (m.ciLo === null || m.ciHi === null || !Number.isFinite(m.ciLo)) return v;
  return `${v} [${num(m.ciLo * scale, digits)}, ${num(m.ciHi * scale, digits)}]`;
}

function spread(m: Metric, scale = 1, digits = 1): string {
  return `${num(m.seedMean * scale, digits)} ± ${num(m.seedStd * scale, digits)}`;
}

/** A markdown table, cells written as given; no trailing newline. */
export function markdownTable(
  head: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The report as markdown: method notes, per-point tables, slope table, comparison, charts. */
export function renderMarkdown(r: Report): string {
  const out: string[] = [];
  out.push(`# ${r.title}`, "");
  for (const n of r.notes ?? []) out.push(n, "");
  out.push(
    `Strategies: ${r.strategies.join(", ")}. Sessions: ${r.sessions.join(", ")}. ` +
      `Seeds: ${r.seeds.join(", ")}.`,
    "",
    `Brackets: 95% percentile-bootstrap CI (B=${r.resamples}) over per-request values pooled ` +
      "across seeds. `±`: mean ± sample stddev of the per-seed values. TTFT is the time to the " +
      "first streamed token of output (content, reasoning or a tool call), successful requests only. KV cached = Σ cached / Σ prompt " +
      "tokens as the engine reported them (a null `cached_tokens` counts as 0). RPS = successful requests / wall span of a run (one " +
      "value per run, so no bootstrap CI).",
    "",
  );
  out.push("## TTFT per point (ms)", "");
  out.push(
    markdownTable(
      ["strategy", "sessions", "requests", "errors", "p50", "p50 seeds", "p95", "p99", "mean"],
      r.points.map((p) => [
        p.strategy,
        String(p.sessions),
        String(p.requests),
        String(p.errors),
        withCi(p.ttftP50),
        spread(p.ttftP50),
        withCi(p.ttftP95),
        withCi(p.ttftP99),
        withCi(p.ttftMean),
      ]),
    ),
    "",
  );
  out.push("## KV cached and throughput per point", "");
  out.push(
    markdownTable(
      ["strategy", "sessions", "KV cached %", "KV cached % seeds", "RPS seeds"],
      r.points.map((p) => [
        p.strategy,
        String(p.sessions),
        withCi(p.kvCached, 100),
        spread(p.kvCached, 100),
        spread(p.rps, 1, 2),
      ]),
    ),
    "",
  );
  if (r.slopes.length) {
    out.push("## p50 TTFT slope (ms per session)", "");
    out.push(
      markdownTable(
        [
          "strategy",
          "from → to sessions",
          "first→last [95% CI]",
          `minus ${r.reference}'s [95% CI]`,
          "least squares",
          "per-seed LS",
        ],
        r.slopes.map((s) => [
          s.strategy,
          `${s.fromSessions} → ${s.toSessions}`,
          `${num(s.firstLast, 2)} [${num(s.firstLastLo, 2)}, ${num(s.firstLastHi, 2)}]`,
          s.vsReference === null
            ? "–"
            : `${num(s.vsReference.value, 2)} [${num(s.vsReference.lo, 2)}, ${
              num(s.vsReference.hi, 2)
            }]`,
          num(s.leastSquares, 2),
          `${num(s.seedMean, 2)} ± ${num(s.seedStd, 2)}`,
        ]),
      ),
      "",
      `"minus ${r.reference}'s": this strategy's first→last slope minus ${r.reference}'s, CI from ` +
        "resampling all four points' requests. Above 0 (whole CI): this slope is steeper; below 0: " +
        "gentler; a CI that holds 0: the two slopes are not told apart by this run.",
      "",
    );
  }
  if (r.comparison.length) {
    out.push(`## ${r.reference} vs best baseline per point`, "");
    out.push(
      markdownTable(
        [
          "sessions",
          `${r.reference} p50 ms`,
          "best baseline",
          "baseline p50 ms",
          "Δ p50 %",
          `${r.reference} KV %`,
          "baseline KV %",
        ],
        r.comparison.map((c) => [
          String(c.sessions),
          withCi(c.referenceP50),
          c.baseline,
          withCi(c.baselineP50),
          num(c.deltaP50Pct, 1),
          withCi(c.referenceKv, 100),
          withCi(c.baselineKv, 100),
        ]),
      ),
      "",
    );
  }
  out.push("## Charts", "");
  for (const [file, caption] of CHART_CAPTIONS) out.push(`![${caption}](${file})`, "");
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Charts (drawn in charts.ts)

const CHART_CAPTIONS: [string, string][] = [
  ["ttft_p50.svg", "p50 TTFT vs concurrent sessions, 95% CI bands"],
  ["kv_cached.svg", "KV cached share vs concurrent sessions, 95% CI bands"],
  ["ttft_cdf.svg", "TTFT CDF at the largest sessions point, p50/p90/p99 marked, 95% DKW band"],
];

/**
 * Writes `report.md`, `results.json`, `records.jsonl` and the chart SVGs into `dir` (created if
 * missing) and returns the report.
 */
export async function writeReport(
  dir: string,
  records: readonly BenchRecord[],
  opts: ReportOptions = {},
): Promise<Report> {
  const report = buildReport(records, opts);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/report.md`, renderMarkdown(report));
  await Deno.writeTextFile(`${dir}/results.json`, JSON.stringify(report, null, 2) + "\n");
  await Deno.writeTextFile(
    `${dir}/records.jsonl`,
    recordsToJsonl(records),
  );
  for (const [file, svg] of Object.entries(renderCharts(report))) {
    await Deno.writeTextFile(`${dir}/${file}`, svg);
  }
  return report;
}
