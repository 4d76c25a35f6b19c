import assert from "node:assert/strict";
import { type Rng, SeededRng } from "../util/rng.ts";
import { createStrategy } from "./registry.ts";
import { SglangCacheAwareStrategy } from "./sglang_cache_aware.ts";
import type { Candidate, PickContext, StrategyParams } from "./types.ts";

const PARAMS: StrategyParams = { minMatchChunks: 2, saturationInflight: 8 };

/** [id, match, inflight, cachedChunks] */
type W = [string, number, number, number?];

function cand([id, match, inflight, cachedChunks]: W): Candidate {
  const index = Number(id.slice(1));
  return { index, id, inflight, match, cachedChunks: cachedChunks ?? 0, capacityChunks: 0 };
}

function ctx(workers: W[], requestChunks: number, rng: Rng): PickContext {
  return { candidates: workers.map(cand), requestChunks, chunkSize: 32, rng, now: 0 };
}

interface Case {
  name: string;
  options?: Record<string, number>;
  requestChunks: number;
  workers: W[];
  want: string;
  reason: string;
}

// No case leaves a choice to the rng; each runs under many seeds to show it.
const CASES: Case[] = [
  {
    name: "balanced, match rate 0.8 > 0.5 → longest match despite higher load",
    requestChunks: 10,
    workers: [["w0", 8, 20], ["w1", 2, 0], ["w2", 0, 5]],
    want: "w0",
    reason: "cache-match",
  },
  {
    name: "match rate exactly 0.5 is not above the threshold → least loaded",
    requestChunks: 10,
    workers: [["w0", 5, 3], ["w1", 0, 1], ["w2", 4, 2]],
    want: "w1",
    reason: "cache-miss-least-loaded",
  },
  {
    name: "match rate 0.6 → the match",
    requestChunks: 10,
    workers: [["w0", 6, 3], ["w1", 0, 1]],
    want: "w0",
    reason: "cache-match",
  },
  {
    name: "max − min = 32 is not above the abs threshold: still balanced",
    requestChunks: 10,
    workers: [["w0", 9, 40], ["w1", 0, 8]],
    want: "w0",
    reason: "cache-match",
  },
  {
    name: "max − min = 33 and 41 > 8 × 1.1 → imbalanced → shortest queue",
    requestChunks: 10,
    workers: [["w0", 9, 41], ["w1", 0, 8], ["w2", 3, 20]],
    want: "w1",
    reason: "shortest-queue",
  },
  {
    name: "difference above 32 but max ≤ min × 1.1 → balanced",
    requestChunks: 10,
    workers: [["w0", 9, 400], ["w1", 0, 365]],
    want: "w0",
    reason: "cache-match",
  },
  {
    name: "equal longest matches → the less loaded of them",
    requestChunks: 10,
    workers: [["w0", 7, 5], ["w1", 7, 2], ["w2", 1, 0]],
    want: "w1",
    reason: "cache-match",
  },
  {
    name: "fallback is least-loaded, not smallest tree",
    requestChunks: 10,
    workers: [["w0", 1, 4, 0], ["w1", 0, 1, 900], ["w2", 2, 3, 10]],
    want: "w1",
    reason: "cache-miss-least-loaded",
  },
  {
    name: "a request shorter than one chunk has match rate 0",
    requestChunks: 0,
    workers: [["w0", 0, 2], ["w1", 0, 1]],
    want: "w1",
    reason: "cache-miss-least-loaded",
  },
  {
    name: "the gateway CLI defaults (0.3 / 64 / 1.5): 0.4 is a match, a gap of 40 is balanced",
    options: { cache_threshold: 0.3, balance_abs_threshold: 64, balance_rel_threshold: 1.5 },
    requestChunks: 10,
    workers: [["w0", 4, 50], ["w1", 0, 10]],
    want: "w0",
    reason: "cache-match",
  },
];

for (const c of CASES) {
  Deno.test(`sglang-cache-aware: ${c.name}`, () => {
    const s = new SglangCacheAwareStrategy({ ...PARAMS, options: c.options });
    for (let seed = 0; seed < 20; seed++) {
      const d = s.pick(ctx(c.workers, c.requestChunks, new SeededRng(seed)));
      assert.equal(d?.candidate.id, c.want);
      assert.equal(d?.reason, c.reason);
    }
  });
}

Deno.test("sglang-cache-aware: ties among least-loaded are drawn at random", () => {
  const s = new SglangCacheAwareStrategy(PARAMS);
  const rng = new SeededRng(9);
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) {
    seen.add(s.pick(ctx([["w0", 0, 1], ["w1", 0, 1], ["w2", 0, 3]], 10, rng))!.candidate.id);
  }
  assert.deepEqual([...seen].sort(), ["w0", "w1"]);
});

Deno.test("sglang-cache-aware: registry, defaults, option errors", () => {
  const s = createStrategy("sglang-cache-aware", PARAMS) as SglangCacheAwareStrategy;
  assert.ok(s instanceof SglangCacheAwareStrategy);
  assert.deepEqual(
    [s.cacheThreshold, s.balanceAbsThreshold, s.balanceRelThreshold, s.usesPrefix],
    [0.5, 32, 1.1, true],
  );
  assert.equal(s.pick(ctx([], 10, new SeededRng(1))), undefined);
  assert.throws(
    () => createStrategy("sglang-cache-aware", { ...PARAMS, options: { cache_threshold: 1.5 } }),
    /option cache_threshold must be a number in \[0, 1\], got 1.5/,
  );
  assert.throws(
    () => createStrategy("sglang-cache-aware", { ...PARAMS, options: { policy: 1 } }),
    /has no option "policy"; valid: cache_threshold, balance_abs_threshold, balance_rel_threshold/,
  );
});
