import { assert, assertEquals } from "./test_util.ts";
import { buildReport, renderCharts, renderMarkdown, writeReport } from "./report.ts";
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
  assert(md.includes("![p50 TTFT vs sessions, 95% CI bands](ttft_p50.svg)"));
});

Deno.test("charts render as SVG with the series names", () => {
  const charts = renderCharts(buildReport(records(), { resamples: 50 }));
  assertEquals(Object.keys(charts).sort(), ["kv_cached.svg", "ttft_cdf.svg", "ttft_p50.svg"]);
  for (const [name, svg] of Object.entries(charts)) {
    assert(svg.startsWith("<svg"), name);
    assert(svg.trimEnd().endsWith("</svg>"), name);
    assert(svg.includes("prefixaware") && svg.includes("round-robin"), name);
  }
  assert(charts["ttft_p50.svg"].includes("p50 TTFT vs sessions"));
  // The CI bands: one translucent filled area per strategy.
  assertEquals(charts["ttft_p50.svg"].match(/fill-opacity="0.18"/g)?.length, 2);
  assert(charts["ttft_cdf.svg"].includes("TTFT CDF at 8 sessions"));
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
