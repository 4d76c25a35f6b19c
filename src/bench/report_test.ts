import { assert, assertEquals } from "./test_util.ts";
import { buildReport, renderCharts, renderMarkdown, writeReport } from "./report.ts";
import { dkwEpsilon, sessionTicks, strategyStyles, timeBase } from "./charts.ts";
import type { BenchRecord } from "./types.ts";

/** Five sequential requests per run (0..500 ms → 10 RPS), constant TTFT and cache share. */
function run(strategy: string, sessions: number, seed: number, ttft: number, cached: number) {
  return Array.from({ length: 5 }, (_, i): BenchRecord => ({
    strategy,
    sessions,
    seed,
    session_id: `multiturn-${i}`,
    pattern: "multiturn",
    turn: 0,
    start_ms: i * 100,
    ttft_ms: ttft,
    total_ms: 100,
    status: 200,
    backend: "w0",
    reason: "x",
    prompt_tokens: 100,
    cached_tokens: cached,
    completion_tokens: 8,
    error: null,
  }));
}

function records(): BenchRecord[] {
  const failed: BenchRecord = {
    ...run("round-robin", 8, 1, 0, 0)[0],
    status: 503,
    ttft_ms: null,
    prompt_tokens: null,
    cached_tokens: null,
    error: "HTTP 503: no worker",
    start_ms: 50,
    total_ms: 1,
  };
  return [
    ...run("prefixaware", 4, 1, 10, 80),
    ...run("prefixaware", 4, 2, 20, 80),
    ...run("prefixaware", 8, 1, 30, 80),
    ...run("prefixaware", 8, 2, 40, 80),
    ...run("round-robin", 4, 1, 50, 20),
    ...run("round-robin", 4, 2, 50, 20),
    ...run("round-robin", 8, 1, 90, 20),
    failed,
    ...run("round-robin", 8, 2, 90, 20),
  ];
}

const close = (a: number, b: number, eps = 1e-9) =>
  assert(Math.abs(a - b) <= eps, `expected ${b}, got ${a}`);

Deno.test("per-point metrics: pooled values, CIs and across-seed spread", () => {
  const r = buildReport(records(), { resamples: 200 });
  assertEquals(r.strategies, ["prefixaware", "round-robin"]);
  assertEquals(r.sessions, [4, 8]);
  assertEquals(r.seeds, [1, 2]);
  const p = r.points.find((x) => x.strategy === "prefixaware" && x.sessions === 4)!;
  assertEquals(p.requests, 10);
  assertEquals(p.errors, 0);
  close(p.ttftP50.value, 15);
  assertEquals(p.ttftP50.perSeed, [10, 20]);
  close(p.ttftP50.seedStd, Math.sqrt(50));
  assert(p.ttftP50.ciLo! >= 10 && p.ttftP50.ciHi! <= 20 && p.ttftP50.ciLo! < p.ttftP50.ciHi!);
  close(p.kvCached.value, 0.8);
  assertEquals([p.kvCached.ciLo, p.kvCached.ciHi], [0.8, 0.8]);
  close(p.rps.value, 10);
  assertEquals(p.rps.ciLo, null);
  const rr = r.points.find((x) => x.strategy === "round-robin" && x.sessions === 8)!;
  assertEquals(rr.requests, 11);
  assertEquals(rr.errors, 1);
  close(rr.ttftP50.value, 90);
  close(rr.kvCached.value, 0.2);
});

Deno.test("slope and comparison tables", () => {
  const r = buildReport(records(), { resamples: 200 });
  const pa = r.slopes.find((s) => s.strategy === "prefixaware")!;
  close(pa.firstLast, 5);
  close(pa.leastSquares, 5);
  close(pa.seedMean, 5);
  close(pa.seedStd, 0);
  const rr = r.slopes.find((s) => s.strategy === "round-robin")!;
  close(rr.firstLast, 10);
  assertEquals([rr.firstLastLo, rr.firstLastHi], [10, 10]);
  // round-robin's slope is 10, prefixaware's 5: 5 steeper; prefixaware's seeds differ, so the CI
  // has width, but it stays above 0 (the difference is resolved).
  assertEquals(pa.vsReference, null);
  close(rr.vsReference!.value, 5);
  assert(rr.vsReference!.lo > 0 && rr.vsReference!.lo <= 5 && 5 <= rr.vsReference!.hi);
  assertEquals(r.comparison.map((c) => [c.sessions, c.baseline]), [
    [4, "round-robin"],
    [8, "round-robin"],
  ]);
  close(r.comparison[0].deltaP50Pct, -70);
  close(r.comparison[1].deltaP50Pct, 100 * (35 - 90) / 90);
});

Deno.test("markdown tables carry the numbers", () => {
  const md = renderMarkdown(buildReport(records(), { resamples: 200, title: "Demo" }));
  assert(md.startsWith("# Demo\n"));
  assert(md.includes("| strategy | sessions | requests | errors | p50 |"), md);
  assert(
    /\| prefixaware \| 4 \| 10 \| 0 \| 15\.0 \[\d+\.\d, \d+\.\d\] \| 15\.0 ± 7\.1 \|/.test(md),
  );
  assert(md.includes("| round-robin | 8 | 11 | 1 | 90.0 [90.0, 90.0] | 90.0 ± 0.0 |"), md);
  assert(md.includes("| prefixaware | 4 | 80.0 [80.0, 80.0] | 80.0 ± 0.0 | 10.00 ± 0.00 |"), md);
  assert(
    /\| round-robin \| 4 → 8 \| 10\.00 \[10\.00, 10\.00\] \| 5\.00 \[\d\.\d\d, \d\.\d\d\] \| 10\.00 \| 10\.00 ± 0\.00 \|/
      .test(md),
    md,
  );
  assert(md.includes("| prefixaware | 4 → 8 | 5.00 ["), md);
  assert(md.includes("| 4 | 15.0 ["), md);
  assert(md.includes("| round-robin | 50.0 [50.0, 50.0] | -70.0 | 80.0 [80.0, 80.0] |"), md);
  assert(md.includes("![p50 TTFT vs concurrent sessions, 95% CI bands](ttft_p50.svg)"));
});

Deno.test("charts render as SVG with the series names", () => {
  const charts = renderCharts(buildReport(records(), { resamples: 50 }));
  assertEquals(Object.keys(charts).sort(), ["kv_cached.svg", "ttft_cdf.svg", "ttft_p50.svg"]);
  for (const [name, svg] of Object.entries(charts)) {
    assert(svg.startsWith("<svg"), name);
    assert(svg.trimEnd().endsWith("</svg>"), name);
    assert(svg.includes("prefixaware") && svg.includes("round-robin"), name);
  }
  assert(charts["ttft_p50.svg"].includes("p50 TTFT vs concurrent sessions"));
  assert(charts["ttft_cdf.svg"].includes("TTFT CDF at 8 concurrent sessions"));
});

Deno.test("charts: a CI band per strategy on every chart (the CDF's a 95% DKW band)", () => {
  const rep = buildReport(records(), { resamples: 50 });
  const charts = renderCharts(rep);
  for (const name of ["ttft_p50.svg", "kv_cached.svg", "ttft_cdf.svg"]) {
    assertEquals(charts[name].match(/fill-opacity="0.14"/g)?.length, 2, name);
  }
  assert(charts["ttft_cdf.svg"].includes("95% DKW band"), "the CDF's subtitle names its band");
  // The band is ε = √(ln(2/0.05) / 2n) around the empirical CDF, n the strategy's requests.
  for (const c of rep.cdf) {
    assert(c.requests > 0, c.strategy);
    const eps = dkwEpsilon(c.requests);
    assert(Math.abs(eps - Math.sqrt(Math.log(40) / (2 * c.requests))) < 1e-12);
  }
});

/** `[text, x, y]` of every SVG text element (its translate, or matrix offset). */
function texts(svg: string): [string, number, number][] {
  const out: [string, number, number][] = [];
  for (const m of svg.matchAll(/<text ([^>]*)>([^<]*)<\/text>/g)) {
    const at =
      /translate\(([-\d.]+) ([-\d.]+)\)|matrix\([^,]+,[^,]+,[^,]+,[^,]+,([-\d.]+),([-\d.]+)\)/
        .exec(m[1]);
    if (at) out.push([m[2], Number(at[1] ?? at[3]), Number(at[2] ?? at[4])]);
  }
  return out;
}

Deno.test("charts: legend right of the plot, integer session ticks, units and time base", () => {
  const rep = buildReport(records(), {
    resamples: 50,
    title: "t: multiturn trace, 4 × sim a100-7b (time scale 0.5), think 1000 ms",
  });
  const charts = renderCharts(rep);
  for (const [name, svg] of Object.entries(charts)) {
    const all = texts(svg);
    const legend = all.filter(([t]) => rep.strategies.includes(t));
    assertEquals(legend.length, 2, name);
    // Every other label (ticks, axis names, title) lies left of the legend column or above it.
    const plotRight = Math.max(...all.filter(([t]) => /^\d+$/.test(t)).map(([, x]) => x));
    const titleBottom = Math.max(...all.filter(([t]) => t.startsWith("t:")).map(([, , y]) => y));
    for (const [t, x, y] of legend) {
      assert(x > plotRight, `${name}: legend ${t} at x=${x}, plot ends at ${plotRight}`);
      assert(y > titleBottom, `${name}: legend ${t} at y=${y}, title ends at ${titleBottom}`);
    }
    assert(svg.includes("Times: wall clock at time scale 0.5"), name);
  }
  // The x axis's labels: the numbers lowest on the chart.
  const ticks = (svg: string) => {
    const nums = texts(svg).filter(([t]) => /^[\d.]+$/.test(t));
    const bottom = Math.max(...nums.map(([, , y]) => y));
    return nums.filter(([, , y]) => y === bottom).map(([t]) => t);
  };
  assertEquals(ticks(charts["ttft_p50.svg"]), ["4", "5", "6", "7", "8"]);
  assertEquals(ticks(charts["kv_cached.svg"]), ["4", "5", "6", "7", "8"]);
  assert(charts["ttft_p50.svg"].includes("p50 TTFT (ms)"));
  assert(charts["kv_cached.svg"].includes("KV cached (% of prompt tokens)"));
  assert(charts["ttft_cdf.svg"].includes("TTFT (ms)"));
});

Deno.test("strategy styles: fixed per name, no colour or marker shared in a report", () => {
  const nine = [
    "roundrobin",
    "random",
    "leastloaded",
    "prefixaware",
    "costaware",
    "sglang-cache-aware",
    "llmd-weighted",
    "dynamo-cost",
    "preble-e2",
  ];
  const styles = strategyStyles(nine);
  assertEquals(new Set(styles.map((s) => s.color)).size, 9);
  assertEquals(new Set(styles.map((s) => s.symbol)).size, 9);
  // The same name looks the same in a report of other strategies, in any order.
  assertEquals(strategyStyles(["dynamo-cost", "roundrobin"]), [styles[7], styles[0]]);
  assertEquals(styles.slice(0, 3).map((s) => s.line), ["dashed", "dashed", "dashed"]);
  // Names outside the table: stable, and never a style another strategy of the report has.
  const other = ["mine-a", "mine-b", "mine-c", ...nine];
  const os = strategyStyles(other);
  assertEquals(os, strategyStyles(other));
  assertEquals(new Set(os.map((s) => `${s.color} ${s.symbol}`)).size, other.length);
  assertEquals(strategyStyles(["mine-a"]), [os[0]]);
});

Deno.test("session ticks: integer steps of 1, 2, 4, 5, 10, ... with at most 8 intervals", () => {
  assertEquals(sessionTicks([4, 8, 12, 16, 24]), { min: 4, max: 24, interval: 4 });
  assertEquals(sessionTicks([4, 8]), { min: 4, max: 8, interval: 1 });
  assertEquals(sessionTicks([1, 3, 17]), { min: 0, max: 18, interval: 2 });
  assertEquals(sessionTicks([10, 100]), { min: 0, max: 100, interval: 20 });
  assertEquals(sessionTicks([16]), { min: 15, max: 17, interval: 1 });
});

Deno.test("time base: virtual, scaled wall clock or real engines, from the report title", () => {
  assertEquals(
    timeBase("x: multiturn trace, offline simulator, think 1000 ms"),
    "Times: virtual (the offline simulator's model time, ms)",
  );
  assertEquals(
    timeBase("x: 4 × sim a100-7b (time scale 0.5), think 1000 ms"),
    "Times: wall clock at time scale 0.5 (every model duration × 0.5)",
  );
  assertEquals(
    timeBase("x: 4 × sim a100-7b (time scale 1), think"),
    "Times: wall clock, simulated workers in real time",
  );
  assertEquals(
    timeBase("x: rag trace, 2 engines, think"),
    "Times: wall clock against real engines",
  );
  assertEquals(timeBase("Benchmark"), "");
});

Deno.test("writeReport writes the report files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const recs = records();
    await writeReport(dir, recs, { resamples: 50 });
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names.sort(), [
      "kv_cached.svg",
      "records.jsonl",
      "report.md",
      "results.json",
      "ttft_cdf.svg",
      "ttft_p50.svg",
    ]);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
    assertEquals(json.points.length, 4);
    const lines = (await Deno.readTextFile(`${dir}/records.jsonl`)).trim().split("\n");
    assertEquals(lines.length, recs.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("null cached tokens count as 0; no report at all means unknown", () => {
  const recs = run("p", 4, 1, 10, 50).map((r, i) => ({ ...r, cached_tokens: i < 3 ? null : 50 }));
  close(buildReport(recs, { resamples: 20 }).points[0].kvCached.value, 100 / 500);
  const none = recs.map((r) => ({ ...r, cached_tokens: null }));
  const p = buildReport(none, { resamples: 20 }).points[0];
  assert(Number.isNaN(p.kvCached.value));
  assert(renderMarkdown(buildReport(none, { resamples: 20 })).includes("| p | 4 | n/a |"));
});

Deno.test("a seed or a point with no cache hit reads 0%, not unknown, when the run reports hits", () => {
  // Seed 1 hits (50 of 100 tokens), seed 2 never does; the engine sends null when nothing hit.
  const recs = [
    ...run("p", 4, 1, 10, 50),
    ...run("p", 4, 2, 10, 0).map((r) => ({ ...r, cached_tokens: null })),
    ...run("p", 8, 1, 10, 0).map((r) => ({ ...r, cached_tokens: null })),
  ];
  const rep = buildReport(recs, { resamples: 20 });
  const [four, eight] = rep.points;
  close(four.kvCached.value, 250 / 1000);
  assertEquals(four.kvCached.perSeed, [0.5, 0]);
  close(four.kvCached.seedMean, 0.25);
  assertEquals(eight.kvCached.value, 0);
  assert(Number.isNaN(eight.kvCached.seedStd), "one seed: no spread (n/a), not 0");
  const md = renderMarkdown(rep);
  assert(/\| p \| 8 \| 0\.0 /.test(md), "the point with no hit reads 0.0, not n/a");
  assert(md.includes("| p | 4 | 25.0 [") && md.includes("25.0 ± 35.4"), "per-seed spread known");
});
