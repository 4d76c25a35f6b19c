import assert from "node:assert/strict";
import { type Rng, SeededRng } from "../util/rng.ts";
import { kvUsage, LlmdWeightedStrategy } from "./llmd_weighted.ts";
import { createStrategy } from "./registry.ts";
import type { Candidate, PickContext, StrategyParams, WorkerLoad } from "./types.ts";

const PARAMS: StrategyParams = { minMatchChunks: 2, saturationInflight: 8 };

const noRng: Rng = {
  next: () => assert.fail("drew from the rng"),
  int: () => assert.fail("drew from the rng"),
};

function cand(
  index: number,
  match: number,
  inflight: number,
  extra: Partial<Candidate> = {},
): Candidate {
  return { index, id: `w${index}`, inflight, match, cachedChunks: 0, capacityChunks: 0, ...extra };
}

function ctx(candidates: Candidate[], requestChunks: number, rng: Rng = noRng): PickContext {
  return { candidates, requestChunks, chunkSize: 32, rng, now: 0 };
}

function active(tokens: number): WorkerLoad {
  return {
    pendingPrefillTokens: 0,
    decoding: 0,
    prefillTokensPerMs: 10,
    decodeStepMs: 10,
    activeTokens: tokens,
  };
}

interface Case {
  name: string;
  options?: Record<string, number>;
  requestChunks: number;
  candidates: Candidate[];
  scores: number[];
  want: string;
}

const CASES: Case[] = [
  {
    // queue: (4 − q) / 4 → 1, 0.5, 0; kv: unbounded → 1; prefix: 0, 0.5, 1.
    // 2q + 2 + 3p: 4, 4.5, 5.
    name: "prefix weight 3 outweighs queue weight 2 at full match",
    requestChunks: 10,
    candidates: [cand(0, 0, 0), cand(1, 5, 2), cand(2, 10, 4)],
    scores: [4, 4.5, 5],
    want: "w2",
  },
  {
    // prefix 0.2 vs 0: 2 × 0 + 2 + 0.6 = 2.6 against 2 + 2 + 0 = 4.
    name: "a short match does not beat an empty queue",
    requestChunks: 10,
    candidates: [cand(0, 2, 6), cand(1, 0, 0)],
    scores: [2.6, 4],
    want: "w1",
  },
  {
    // Equal queues score 1 each. KV usage from activeTokens over capacity (1000 chunks ×
    // 8 tokens): 0.75 and 0.25 → kv scores 0.25 and 0.75.
    name: "equal queues all score 1; KV-cache utilisation decides",
    requestChunks: 10,
    candidates: [
      cand(0, 0, 3, { capacityChunks: 1000, load: active(6000) }),
      cand(1, 0, 3, { capacityChunks: 1000, load: active(2000) }),
    ],
    scores: [2.5, 3.5],
    want: "w1",
  },
  {
    // Without load: the prefix index fill, 900 / 1000 and 100 / 1000.
    name: "without load the KV usage is the prefix index fill",
    requestChunks: 10,
    candidates: [
      cand(0, 0, 1, { capacityChunks: 1000, cachedChunks: 900 }),
      cand(1, 0, 1, { capacityChunks: 1000, cachedChunks: 100 }),
    ],
    scores: [2.2, 3.8],
    want: "w1",
  },
  {
    name: "weights are options: queue only",
    options: { queue_weight: 1, kv_cache_weight: 0, prefix_weight: 0 },
    requestChunks: 10,
    candidates: [cand(0, 10, 4), cand(1, 0, 0)],
    scores: [0, 1],
    want: "w1",
  },
];

for (const c of CASES) {
  Deno.test(`llmd-weighted: ${c.name}`, () => {
    const s = new LlmdWeightedStrategy({ ...PARAMS, options: c.options });
    const x = ctx(c.candidates, c.requestChunks);
    const scores = s.scores(x);
    scores.forEach((v, i) => assert.ok(Math.abs(v - c.scores[i]) < 1e-9, `score ${i}: ${v}`));
    const d = s.pick(x);
    assert.equal(d?.candidate.id, c.want);
    assert.equal(d?.reason, "max-score");
  });
}

Deno.test("llmd-weighted: equal top scores are drawn at random", () => {
  const s = new LlmdWeightedStrategy(PARAMS);
  const rng = new SeededRng(3);
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) {
    seen.add(s.pick(ctx([cand(0, 4, 1), cand(1, 4, 1), cand(2, 0, 3)], 10, rng))!.candidate.id);
  }
  assert.deepEqual([...seen].sort(), ["w0", "w1"]);
});

Deno.test("llmd-weighted: kvUsage is clamped to [0, 1] and 0 for unbounded workers", () => {
  const x = ctx([], 1);
  assert.equal(kvUsage(cand(0, 0, 0, { capacityChunks: 10, load: active(1000) }), x), 1);
  assert.equal(kvUsage(cand(0, 0, 0, { capacityChunks: 0, cachedChunks: 50 }), x), 0);
  assert.equal(kvUsage(cand(0, 0, 0, { capacityChunks: 10, load: active(40) }), x), 0.5);
});

Deno.test("llmd-weighted: registry, defaults, option errors", () => {
  const s = createStrategy("llmd-weighted", PARAMS) as LlmdWeightedStrategy;
  assert.ok(s instanceof LlmdWeightedStrategy);
  assert.deepEqual([s.queueWeight, s.kvCacheWeight, s.prefixWeight], [2, 2, 3]);
  assert.equal(s.pick(ctx([], 10)), undefined);
  assert.throws(
    () => createStrategy("llmd-weighted", { ...PARAMS, options: { prefix_weight: -1 } }),
    /option prefix_weight must be a number ≥ 0, got -1/,
  );
});
