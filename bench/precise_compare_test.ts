/**
 * The pure parts of bench/precise_compare.ts: the prediction error of access-log lines, the
 * tokens a chunk stands for in each mode, summing a metric family, pooling a cell's runs and the
 * issue's criteria.
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import type { RequestRecord } from "../src/bench/types.ts";
import {
  type AccessLine,
  criteria,
  markdownTable,
  type Mode,
  predictionErrors,
  renderReport,
  type RunData,
  splitErrors,
  splitTable,
  sumFamily,
  summarizeCell,
  tokensPerChunk,
} from "./precise_compare.ts";

function line(match: number, cached: number | null, status = 200, prompt: number | null = 1000) {
  return {
    backend: "w1",
    reason: "longest-prefix",
    match_chunks: match,
    status,
    prompt_tokens: prompt,
    cached_tokens: cached,
  } satisfies AccessLine;
}

function record(
  prompt: number | null,
  cached: number | null,
  ttft: number,
  error: string | null = null,
) {
  return {
    session_id: "s",
    pattern: "multiturn",
    turn: 0,
    start_ms: 0,
    ttft_ms: ttft,
    total_ms: ttft + 1,
    status: error === null ? 200 : 500,
    backend: "w1",
    reason: "longest-prefix",
    prompt_tokens: prompt,
    cached_tokens: cached,
    completion_tokens: 4,
    error,
  } satisfies RequestRecord;
}

function run(mode: Mode, o: Partial<RunData> = {}): RunData {
  return {
    shape: "multiturn",
    strategy: "prefixaware",
    sessions: 8,
    seed: 1,
    mode,
    tokensPerChunk: mode === "precise" ? 16 : 8,
    records: [],
    access: [],
    evictedBlocks: 10,
    preemptions: 0,
    evictedPerWorker: [10],
    router: {},
    warnings: {},
    wallMs: 1,
    ...o,
  };
}

Deno.test("prediction error: matched chunks × chunk tokens against the engine's cached tokens, in blocks", () => {
  const lines = [
    line(10, 64), // 80 predicted: one block over
    line(4, 96), // 32 predicted: four blocks under
    line(2, null), // usage without cached_tokens: nothing cached (vLLM leaves the details out)
    line(3, null, 200, null), // no usage: skipped
    line(9, 0, 502), // failed: skipped
  ];
  assert.deepEqual(predictionErrors(lines, 8), [1, -4, 1]);
  assert.deepEqual(predictionErrors(lines, 16), [6, -2, 2]);
});

Deno.test("tokens a chunk stands for: chunk_size ÷ 4 approximate, block_size precise", () => {
  const config = configFromWorkers(["http://127.0.0.1:1"], {
    router: { chunkSize: 64, blockSize: 32 },
  });
  assert.equal(tokensPerChunk("approximate", config), 16);
  assert.equal(tokensPerChunk("precise", config), 32);
  const defaults = configFromWorkers(["http://127.0.0.1:1"]);
  assert.equal(tokensPerChunk("approximate", defaults), 8);
  assert.equal(tokensPerChunk("precise", defaults), 16);
});

Deno.test("sumFamily sums every sample of one family and nothing of its look-alikes", () => {
  const text = [
    "# HELP router_kv_event_gaps_total Gaps",
    "# TYPE router_kv_event_gaps_total counter",
    'router_kv_event_gaps_total{backend="w1"} 2',
    'router_kv_event_gaps_total{backend="w2"} 3',
    "router_kv_event_gaps_totally 100",
    "router_kv_event_gaps 7",
    "router_tokenizer_failures_total 4",
  ].join("\n");
  assert.equal(sumFamily(text, "router_kv_event_gaps_total"), 5);
  assert.equal(sumFamily(text, "router_tokenizer_failures_total"), 4);
  assert.equal(sumFamily(text, "router_kv_event_clears_total"), 0);
});

Deno.test("summarizeCell pools seeds: KV share, errors, prediction error and evictions", () => {
  const a = run("precise", {
    records: [
      record(100, 50, 10),
      record(100, 30, 20),
      record(100, 0, 30, "boom"),
      record(100, null, 25), // nothing cached
      record(null, null, 35), // no usage
    ],
    access: [line(3, 48), line(2, 32), line(1, 0, 0)],
    evictedBlocks: 5,
    preemptions: 1,
    router: { router_tokenizer_failures_total: 1 },
  });
  const b = run("precise", {
    seed: 2,
    records: [record(200, 120, 40)],
    access: [line(10, 112), { ...line(0, 0), reason: "fallback-least-loaded" }],
    evictedBlocks: 7,
    router: { router_tokenizer_failures_total: 2 },
  });
  const c = summarizeCell([a, b], 200);
  assert.deepEqual(c.seeds, [1, 2]);
  assert.equal(c.requests, 6);
  assert.equal(c.errors, 1);
  assert.equal(c.kvShare.value, 200 / 500);
  assert.equal(c.ttftP50.value, 25);
  // Errors in blocks: 0, 0, +3, 0.
  assert.equal(c.predicted, 4);
  assert.equal(c.errBlocks.value, 0.75);
  assert.equal(c.biasBlocks, 0.75);
  assert.equal(c.errMedianBlocks, 0);
  assert.equal(c.within1, 0.75);
  assert.deepEqual(c.topReason, { reason: "longest-prefix", share: 0.75 });
  assert.equal(c.evictedBlocks, 12);
  assert.equal(c.evictedMinRun, 5);
  assert.equal(c.preemptions, 1);
  assert.deepEqual(c.router, { router_tokenizer_failures_total: 3 });
  assert.throws(() => summarizeCell([]), /at least one run/);
});

Deno.test("criteria: precise under a block where approximate is not, and its KV share at least approximate's", () => {
  const approx = run("approximate", {
    records: [record(100, 60, 10)],
    access: [line(10, 48)], // +32 tokens: 2 blocks
  });
  const good = run("precise", { records: [record(100, 70, 10)], access: [line(3, 48)] });
  const rows = criteria([summarizeCell([approx]), summarizeCell([good])], [approx, good], 100);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].approxErr, 2);
  assert.equal(rows[0].preciseErr, 0);
  assert.ok(rows[0].errHolds && rows[0].kvHolds && rows[0].evicted);
  assert.ok(Math.abs(rows[0].kvDiff.value - 0.1) < 1e-12);

  const bad = run("precise", {
    records: [record(100, 50, 10)],
    access: [line(5, 48)], // +32 tokens: 2 blocks
    evictedBlocks: 0,
  });
  const [r] = criteria([summarizeCell([approx]), summarizeCell([bad])], [approx, bad], 100);
  assert.ok(!r.errHolds && !r.kvHolds && !r.evicted);
  // A point with one mode only has no row.
  assert.deepEqual(criteria([summarizeCell([approx])], [approx]), []);
});

Deno.test("the report carries the setup, the criteria and every cell", () => {
  assert.equal(markdownTable(["a", "b"], [["1", "2"]]), "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
  const runs = [
    run("approximate", { records: [record(100, 60, 10)], access: [line(10, 48)] }),
    run("precise", { records: [record(100, 70, 10)], access: [line(3, 48)] }),
  ];
  const cells = runs.map((r) => summarizeCell([r], 50));
  const md = renderReport(
    {
      command: "nice deno run -A bench/precise_compare.ts",
      date: "2026-12-01",
      machine: "2 cores",
      workers: 4,
      profile: "a100-7b",
      timeScale: 0.5,
      capacityBlocks: 384,
      maxModelLen: 4096,
      shapes: ["multiturn"],
      strategies: ["prefixaware"],
      sessions: [8],
      seeds: [1],
      turns: 8,
      thinkMs: 1000,
      staggerMs: 2000,
      systemBytes: 6144,
      maxTokens: 64,
      probe: false,
    },
    cells,
    criteria(cells, runs, 50),
  );
  assert.match(md, /384 blocks \(6144 tokens/);
  assert.match(md, /\| multiturn \| prefixaware \| 8 \| 2\.00 → 0\.00 \| holds \|/);
  assert.match(md, /\| multiturn \| prefixaware \| 8 \| precise \| 1 \(0\) \| 70\.0 /);
});

Deno.test("splitErrors: the index's error at routing and the engine's change while queued, joined by request id", () => {
  const lines = [
    { ...line(6, 32), request_id: "a" }, // P 96, D 96, C 32: lost 4 blocks while queued
    { ...line(4, 64), request_id: "b" }, // P 64, D 32, C 64: index 2 over, then 2 stored
    { ...line(2, 32), request_id: "c" }, // no probe: not joined
    { ...line(2, null, 200, null), request_id: "d" }, // no usage: not joined
  ];
  const probes = [
    { request_id: "a", dispatch_cached: 96, prompt_tokens: 200 },
    { request_id: "b", dispatch_cached: 32, prompt_tokens: 200 },
    { request_id: "d", dispatch_cached: 0, prompt_tokens: 200 },
  ];
  const x = splitErrors(lines, probes, 16);
  assert.equal(x.n, 2);
  assert.equal(x.routingAbs, 1);
  assert.equal(x.routingBias, 1);
  assert.equal(x.routingOff, 0.5);
  assert.equal(x.queueAbs, 3);
  assert.equal(x.queueBias, 1);
  assert.equal(x.queueOff, 1);
  assert.equal(x.stale, null, "no door strings: approximate mode");
  // Precise mode: the blocks of the routing match the engine lacked at arrival, by index state.
  const doors = [
    { ...probes[0], door: "EEhhp-", stale_cleared_ms: 12, stale_left: 0 }, // P 6: 2 h, 1 p
    { ...probes[1], door: "EEpphh", stale_cleared_ms: 30, stale_left: 1 }, // P 4: 2 p
  ];
  const y = splitErrors(lines, doors, 16);
  assert.deepEqual(y.stale, {
    heldEvicted: 1,
    predictedOnly: 1.5,
    clearedMsP50: 21,
    clearedMsMax: 30,
    left: 1,
  });
  // Pooled over seeds, ids of different runs do not collide.
  const r1 = run("precise", { access: [lines[0]], probes: [probes[0]] });
  const r2 = run("precise", { seed: 2, access: [{ ...lines[1], request_id: "a" }], probes: [] });
  const c = summarizeCell([r1, r2], 10);
  assert.equal(c.split?.n, 1);
  assert.match(
    splitTable([c]),
    /\| multiturn \| prefixaware \| 8 \| precise \| 1 \| 0\.00 \(0\.00\) \| 0\.0 \| 4\.00 \(4\.00\) \| 100\.0 \|/,
  );
  assert.equal(summarizeCell([run("precise")]).split, null);
});
