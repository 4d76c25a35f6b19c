import assert from "node:assert/strict";
import { type Rng, SeededRng } from "../util/rng.ts";
import { DynamoCostStrategy } from "./dynamo_cost.ts";
import { createStrategy } from "./registry.ts";
import type { Candidate, PickContext, StrategyParams, WorkerLoad } from "./types.ts";

const PARAMS: StrategyParams = { minMatchChunks: 2, saturationInflight: 8 };

const noRng: Rng = {
  next: () => assert.fail("drew from the rng"),
  int: () => assert.fail("drew from the rng"),
};

function load(pending: number, active: number): WorkerLoad {
  return {
    pendingPrefillTokens: pending,
    decoding: 0,
    prefillTokensPerMs: 10,
    decodeStepMs: 10,
    activeTokens: active,
  };
}

function cand(index: number, match: number, l?: WorkerLoad, inflight = 0): Candidate {
  return { index, id: `w${index}`, inflight, match, cachedChunks: 0, capacityChunks: 0, load: l };
}

/** 20 chunks of 32 bytes = 160 tokens = 10 blocks of 16. */
function ctx(candidates: Candidate[], rng: Rng = noRng): PickContext {
  return { candidates, requestChunks: 20, chunkSize: 32, rng, now: 0 };
}

interface Case {
  name: string;
  options?: Record<string, number>;
  candidates: Candidate[];
  logits: number[];
  want: string;
}

const CASES: Case[] = [
  {
    // w0: prefill (0 + 160 − 128)/16 = 2, decode (0 + 160)/16 = 10 → 12.
    // w1: prefill 160/16 = 10, decode 10 → 20.
    name: "overlap lowers the prefill blocks",
    candidates: [cand(0, 16, load(0, 0)), cand(1, 0, load(0, 0))],
    logits: [12, 20],
    want: "w0",
  },
  {
    // w0: prefill (320 + 32)/16 = 22, decode (800 + 160)/16 = 60 → 82.
    // w1: prefill 10, decode (160 + 160)/16 = 20 → 30.
    name: "a loaded holder loses to a lightly loaded cold worker",
    candidates: [cand(0, 16, load(320, 800)), cand(1, 0, load(0, 160))],
    logits: [82, 30],
    want: "w1",
  },
  {
    // weight 0: only decode blocks: 10 + 50 = 60 vs 10 + 10 = 20.
    name: "overlap_score_weight 0 is pure load balancing",
    options: { overlap_score_weight: 0 },
    candidates: [cand(0, 20, load(0, 800)), cand(1, 0, load(0, 160))],
    logits: [60, 20],
    want: "w1",
  },
  {
    // weight 2 doubles the prefill blocks: w0 2 × 2 + 20 = 24, w1 2 × 10 + 10 = 30.
    name: "overlap_score_weight 2 favours the cache",
    options: { overlap_score_weight: 2 },
    candidates: [cand(0, 16, load(0, 160)), cand(1, 0, load(0, 0))],
    logits: [24, 30],
    want: "w0",
  },
  {
    // Without load: no pending prefill, each in-flight request holds 160 tokens.
    // w0: 2 + (3 × 160 + 160)/16 = 42; w1: 10 + 10 = 20.
    name: "without load the in-flight count stands in",
    candidates: [cand(0, 16, undefined, 3), cand(1, 0, undefined, 0)],
    logits: [42, 20],
    want: "w1",
  },
];

for (const c of CASES) {
  Deno.test(`dynamo-cost: ${c.name}`, () => {
    const s = new DynamoCostStrategy({ ...PARAMS, options: c.options });
    const x = ctx(c.candidates);
    assert.deepEqual(s.logits(x), c.logits);
    const d = s.pick(x);
    assert.equal(d?.candidate.id, c.want);
    assert.equal(d?.reason, "min-kv-cost");
  });
}

Deno.test("dynamo-cost: block_size is only the unit", () => {
  const cs = [cand(0, 16, load(100, 300)), cand(1, 4, load(0, 500)), cand(2, 0, load(50, 0))];
  const a = new DynamoCostStrategy(PARAMS);
  const b = new DynamoCostStrategy({ ...PARAMS, options: { block_size: 64 } });
  const la = a.logits(ctx(cs));
  const lb = b.logits(ctx(cs));
  la.forEach((v, i) => assert.ok(Math.abs(v / 4 - lb[i]) < 1e-9));
  assert.equal(a.pick(ctx(cs))?.candidate, b.pick(ctx(cs))?.candidate);
});

Deno.test("dynamo-cost: equal lowest logits are drawn at random", () => {
  const s = new DynamoCostStrategy(PARAMS);
  const rng = new SeededRng(11);
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const cs = [cand(0, 0, load(0, 0)), cand(1, 0, load(0, 0)), cand(2, 0, load(0, 16))];
    seen.add(s.pick(ctx(cs, rng))!.candidate.id);
  }
  assert.deepEqual([...seen].sort(), ["w0", "w1"]);
});

Deno.test("dynamo-cost: registry, defaults, option errors", () => {
  const s = createStrategy("dynamo-cost", PARAMS) as DynamoCostStrategy;
  assert.ok(s instanceof DynamoCostStrategy);
  assert.deepEqual([s.overlapScoreWeight, s.blockSize], [1, 16]);
  assert.equal(s.pick(ctx([])), undefined);
  assert.throws(
    () => createStrategy("dynamo-cost", { ...PARAMS, options: { block_size: 1.5 } }),
    /option block_size must be an integer ≥ 1, got 1.5/,
  );
  assert.throws(
    () => createStrategy("dynamo-cost", { ...PARAMS, options: { router_temperature: 0.5 } }),
    /has no option "router_temperature"/,
  );
});
