import assert from "node:assert/strict";
import { simulate } from "./offline.ts";
import { buildMultiTurnTrace } from "./testing.ts";

// A cache small enough to evict: 300 blocks (4 800 tokens) per worker for 8 sessions of ~2 k tokens.
const trace = buildMultiTurnTrace({ sessions: 8, turns: 4, seed: 8 });
const small = { trace, workers: 3, params: { capacityBlocks: 300 }, maxModelLen: 4096 };

Deno.test("offline precise: KV events keep the prediction error under a block where approximate's is not", () => {
  const approx = simulate({ ...small, strategy: "prefixaware", index: "approximate" });
  const precise = simulate({ ...small, strategy: "prefixaware", index: "precise" });
  assert.ok(
    approx.totals.evictedBlocks > 0 && precise.totals.evictedBlocks > 0,
    "the caches evict",
  );
  const a = approx.summary.predictionErrorBlocks;
  const p = precise.summary.predictionErrorBlocks;
  assert.ok(p < 1, `precise mean |error| ${p} blocks`);
  assert.ok(a >= 1, `approximate mean |error| ${a} blocks`);
  for (const r of precise.records) assert.equal(typeof r.predicted_cached_tokens, "number");
  // Deterministic for a seed.
  const again = simulate({ ...small, strategy: "prefixaware", index: "precise" });
  assert.deepEqual(again.records, precise.records);
});

Deno.test("offline precise: without evictions the index predicts every cached token", () => {
  const roomy = { trace, workers: 3, strategy: "prefixaware" };
  const precise = simulate({ ...roomy, index: "precise" });
  assert.equal(precise.totals.evictedBlocks, 0);
  assert.equal(precise.summary.errors, 0);
  for (const r of precise.records) assert.equal(r.predicted_cached_tokens, r.cached_tokens);
  assert.equal(precise.summary.predictionErrorBlocks, 0);
  // The index ends holding what the engines hold.
  for (const w of precise.workers) assert.equal(w.indexChunks, w.stats.cachedBlocks);
  // Approximate mode predicts from its own 32-byte chunks: close, not exact.
  const approx = simulate({ ...roomy, index: "approximate" });
  assert.ok(approx.summary.predictionErrorBlocks > 0);
});

Deno.test("offline precise: events that arrive late make the index wrong", () => {
  const on = (eventLagMs: number) =>
    simulate({ ...small, strategy: "prefixaware", index: "precise", eventLagMs }).summary
      .predictionErrorBlocks;
  assert.ok(on(2000) > on(20) + 1, `lag 2 s: ${on(2000)} blocks, lag 20 ms: ${on(20)}`);
});

Deno.test("offline: an unknown index mode or a negative lag is refused", () => {
  assert.throws(
    () => simulate({ trace, workers: 2, strategy: "roundrobin", index: "exact" as "precise" }),
    /index must be approximate or precise/,
  );
  assert.throws(
    () => simulate({ trace, workers: 2, strategy: "roundrobin", index: "precise", eventLagMs: -1 }),
    /event lag/,
  );
});
