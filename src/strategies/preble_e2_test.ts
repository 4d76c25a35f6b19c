import assert from "node:assert/strict";
import { SeededRng } from "../util/rng.ts";
import { PrebleE2Strategy } from "./preble_e2.ts";
import { createStrategy } from "./registry.ts";
import type { Candidate, PickContext, StrategyParams } from "./types.ts";

const PARAMS: StrategyParams = { minMatchChunks: 2, saturationInflight: 8 };

/** [id, match, inflight] */
type W = [string, number, number];

function cand([id, match, inflight]: W): Candidate {
  return { index: Number(id.slice(1)), id, inflight, match, cachedChunks: 0, capacityChunks: 0 };
}

function ctx(workers: W[], requestChunks: number, seed: number, requestTokens?: number) {
  const c: PickContext = {
    candidates: workers.map(cand),
    requestChunks,
    chunkSize: 32,
    rng: new SeededRng(seed),
    now: 0,
    requestTokens,
  };
  return c;
}

interface Case {
  name: string;
  requestChunks: number;
  requestTokens?: number;
  workers: W[];
  want: string;
  reason: string;
}

// 8 tokens per chunk. No case leaves a choice to the rng; each runs under many seeds.
const CASES: Case[] = [
  {
    name: "cached 6 of 10 chunks (48 > 32 tokens new) → exploit despite load",
    requestChunks: 10,
    workers: [["w0", 6, 9], ["w1", 0, 0]],
    want: "w0",
    reason: "exploit-longest-prefix",
  },
  {
    name: "cached exactly half → not longer than the new part → explore",
    requestChunks: 10,
    workers: [["w0", 5, 9], ["w1", 0, 0], ["w2", 1, 2]],
    want: "w1",
    reason: "explore-least-loaded",
  },
  {
    name: "exploit among equal longest matches → the least loaded",
    requestChunks: 10,
    workers: [["w0", 8, 4], ["w1", 8, 1], ["w2", 3, 0]],
    want: "w1",
    reason: "exploit-longest-prefix",
  },
  {
    name: "explore ignores the short match",
    requestChunks: 10,
    workers: [["w0", 4, 3], ["w1", 2, 1], ["w2", 0, 2]],
    want: "w1",
    reason: "explore-least-loaded",
  },
  {
    // 100 tokens from the context: 6 chunks = 48 tokens < 52 new → explore.
    name: "request tokens from the context",
    requestChunks: 10,
    requestTokens: 100,
    workers: [["w0", 6, 3], ["w1", 0, 1]],
    want: "w1",
    reason: "explore-least-loaded",
  },
  {
    name: "nothing cached anywhere → explore",
    requestChunks: 0,
    workers: [["w0", 0, 3], ["w1", 0, 1]],
    want: "w1",
    reason: "explore-least-loaded",
  },
];

for (const c of CASES) {
  Deno.test(`preble-e2: ${c.name}`, () => {
    const s = new PrebleE2Strategy(PARAMS);
    for (let seed = 0; seed < 20; seed++) {
      const d = s.pick(ctx(c.workers, c.requestChunks, seed, c.requestTokens));
      assert.equal(d?.candidate.id, c.want);
      assert.equal(d?.reason, c.reason);
    }
  });
}

Deno.test("preble-e2: registry, no options", () => {
  const s = createStrategy("preble-e2", PARAMS);
  assert.ok(s instanceof PrebleE2Strategy);
  assert.equal(s.usesPrefix, true);
  assert.equal(s.pick(ctx([], 4, 1)), undefined);
  assert.throws(
    () => createStrategy("preble-e2", { ...PARAMS, options: { threshold: 1 } }),
    { message: 'strategy preble-e2 has no option "threshold"; valid: none' },
  );
});
