import assert from "node:assert/strict";
import { cellsOf, type MatrixSpec, runMatrix } from "./matrix.ts";
import { matrixResults, renderFull, renderSummary } from "./matrix_report.ts";
import { matrixSpec } from "./matrix_cli.ts";

const SPEC: MatrixSpec = {
  shapes: ["multiturn", "fork"],
  profiles: ["a100-7b"],
  workers: [2],
  loops: ["closed", "open"],
  strategies: ["leastloaded", "prefixaware", "costaware"],
  defaultStrategy: "costaware",
  sessionsPerWorker: { multiturn: 2, fork: 2 },
  requestsPerCell: 24,
  turns: 3,
  thinkMs: 200,
  staggerMs: 500,
  maxTokens: 16,
  outputTokens: { kind: "fixed", tokens: 8 },
  firstSeed: 5,
};

Deno.test("matrix: cells, seeds enough for the requests, open loop replaying leastloaded's times", () => {
  const cells = cellsOf(SPEC);
  assert.deepEqual(cells.map((c) => `${c.shape}/${c.loop}/${c.sessions}/${c.seeds.join(",")}`), [
    "multiturn/closed/4/5,6",
    "multiturn/open/4/5,6",
    "fork/closed/4/5,6",
    "fork/open/4/5,6",
  ]);
  const done: number[] = [];
  const runs = runMatrix({ ...SPEC, onCell: (_c, n) => done.push(n) });
  assert.deepEqual(done, [1, 2, 3, 4]);
  for (const c of runs) {
    for (const r of c.runs) assert.equal(r.records.size, 24, `${c.cell.shape} ${r.strategy}`);
  }
  // leastloaded open loop = its closed loop (the open loop replays its issue times).
  const ttfts = (i: number) =>
    [...runs[i].runs.find((r) => r.strategy === "leastloaded")!.records.entries()]
      .map(([k, r]) => `${k}=${r.start_ms}/${r.ttft_ms}`).sort();
  assert.deepEqual(ttfts(1), ttfts(0));
  assert.ok(runs[1].cell.rate! > 0);
  const results = matrixResults(runs, "costaware", 50);
  for (const r of results) {
    assert.ok(
      r.vsLeastLoaded.lo <= r.vsLeastLoaded.value && r.vsLeastLoaded.value <= r.vsLeastLoaded.hi,
    );
    assert.notEqual(r.best, "costaware");
    assert.equal(r.passes, r.vsLeastLoaded.value <= 0.8 && r.vsBest.value <= 1.05);
  }
  assert.match(renderSummary(results), /of 4 cells meet both targets/);
  assert.match(renderFull(results), /### fork a100-7b 2w open/);
});

Deno.test("matrix: flags become a spec, or every problem at once", () => {
  const ok = matrixSpec(
    { workers: "4,8", "sessions-per-worker": "rag:3", loops: "open" },
    "prefixaware",
  );
  assert.ok(ok.spec !== null);
  assert.deepEqual(ok.spec.workers, [4, 8]);
  assert.equal(ok.spec.defaultStrategy, "prefixaware");
  assert.ok(ok.spec.strategies.includes("leastloaded"));
  assert.deepEqual((ok.spec.sessionsPerWorker as Record<string, number>).rag, 3);
  assert.equal(ok.spec.turns, 16);
  const bad = matrixSpec(
    { workers: "4,x", shapes: "rag,nope", default: "fastest", loops: "half" },
    "costaware",
  );
  assert.equal(bad.spec, null);
  assert.equal(bad.problems.length, 4, bad.problems.join("\n"));
});
