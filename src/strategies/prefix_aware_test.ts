import assert from "node:assert/strict";
import fc from "fast-check";
import { type Rng, SeededRng, shuffle } from "../util/rng.ts";
import { pickLeastLoaded } from "./least_loaded.ts";
import { PrefixAwareStrategy } from "./prefix_aware.ts";
import type { Candidate, PickContext, StrategyParams } from "./types.ts";

/** A candidate from its id, match and inflight; the index is the position in the id (`w3` → 3). */
function cand(id: string, match: number, inflight: number): Candidate {
  return { index: Number(id.slice(1)), id, inflight, match, cachedChunks: 0, capacityChunks: 0 };
}

function ctx(candidates: readonly Candidate[], rng: Rng): PickContext {
  return { candidates, requestChunks: 16, chunkSize: 32, rng, now: 0 };
}

const DEFAULTS: StrategyParams = { minMatchChunks: 2, saturationInflight: 8 };

interface Case {
  name: string;
  params?: StrategyParams;
  /** [id, match, inflight] */
  workers: [string, number, number][];
  want: string;
  reason: string;
}

// No case has two candidates equal in (match, inflight) where it matters, so the answer is the same
// for every seed; each case runs under many seeds to show it.
const CASES: Case[] = [
  {
    name: "longest match wins over lower load",
    workers: [["w0", 3, 0], ["w1", 7, 5], ["w2", 1, 0], ["w3", 6, 1]],
    want: "w1",
    reason: "longest-prefix",
  },
  {
    name: "tie on match → lower inflight",
    workers: [["w0", 5, 4], ["w1", 5, 2], ["w2", 5, 3], ["w3", 1, 0]],
    want: "w1",
    reason: "longest-prefix",
  },
  {
    name: "match exactly at the minimum is used",
    workers: [["w0", 2, 6], ["w1", 1, 0], ["w2", 0, 0]],
    want: "w0",
    reason: "longest-prefix",
  },
  {
    name: "below the minimum → least-loaded over all candidates",
    workers: [["w0", 1, 3], ["w1", 0, 1], ["w2", 1, 2]],
    want: "w1",
    reason: "fallback-least-loaded",
  },
  {
    name: "higher minimum turns a match of 3 into a fallback",
    params: { minMatchChunks: 4, saturationInflight: 8 },
    workers: [["w0", 3, 5], ["w1", 0, 2], ["w2", 3, 4]],
    want: "w1",
    reason: "fallback-least-loaded",
  },
  {
    name: "inflight just below the valve is not saturated",
    workers: [["w0", 9, 7], ["w1", 4, 0]],
    want: "w0",
    reason: "longest-prefix",
  },
  {
    name: "saturated best → next in order with match ≥ min and inflight below the valve",
    workers: [["w0", 9, 8], ["w1", 4, 9], ["w2", 3, 2], ["w3", 6, 7], ["w4", 1, 0]],
    want: "w3",
    reason: "spilled-from-saturated",
  },
  {
    name: "spill target with equal match → lower inflight",
    workers: [["w0", 9, 12], ["w1", 5, 6], ["w2", 5, 3], ["w3", 2, 0]],
    want: "w2",
    reason: "spilled-from-saturated",
  },
  {
    name: "spill takes a match at the minimum, not a less-loaded one below it",
    workers: [["w0", 9, 8], ["w1", 2, 7], ["w2", 1, 0]],
    want: "w1",
    reason: "spilled-from-saturated",
  },
  {
    name: "saturated and none eligible → least-loaded",
    workers: [["w0", 9, 8], ["w1", 5, 8], ["w2", 1, 0], ["w3", 0, 3]],
    want: "w2",
    reason: "spilled-fallback-least-loaded",
  },
  {
    name: "all saturated → least-loaded among them",
    workers: [["w0", 9, 10], ["w1", 5, 8], ["w2", 7, 9]],
    want: "w1",
    reason: "spilled-fallback-least-loaded",
  },
  {
    name: "valve off (0): saturated best is still taken",
    params: { minMatchChunks: 2, saturationInflight: 0 },
    workers: [["w0", 9, 50], ["w1", 4, 0], ["w2", 0, 0]],
    want: "w0",
    reason: "longest-prefix",
  },
  {
    name: "minimum 0: no match still counts as a prefix hit, lowest load among equals",
    params: { minMatchChunks: 0, saturationInflight: 8 },
    workers: [["w0", 0, 3], ["w1", 0, 1], ["w2", 0, 2]],
    want: "w1",
    reason: "longest-prefix",
  },
];

for (const c of CASES) {
  Deno.test(`prefixaware: ${c.name}`, () => {
    const s = new PrefixAwareStrategy(c.params ?? DEFAULTS);
    const cs = c.workers.map(([id, m, f]) => cand(id, m, f));
    for (let seed = 0; seed < 50; seed++) {
      const d = s.pick(ctx(cs, new SeededRng(seed)));
      assert.equal(d?.candidate.id, c.want, `seed ${seed}`);
      assert.equal(d?.reason, c.reason, `seed ${seed}`);
    }
  });
}

/** Counts picks per id over `seeds` seeds. */
function tally(cs: Candidate[], params: StrategyParams, seeds: number): Map<string, number> {
  const s = new PrefixAwareStrategy(params);
  const counts = new Map<string, number>();
  for (let seed = 0; seed < seeds; seed++) {
    const id = s.pick(ctx(cs, new SeededRng(seed)))!.candidate.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

Deno.test("prefixaware: tie on (match, inflight) is broken at random, not by position", () => {
  const cs = [cand("w0", 5, 2), cand("w1", 5, 2), cand("w2", 5, 3), cand("w3", 1, 0)];
  for (const order of [cs, [...cs].reverse()]) {
    const counts = tally(order, DEFAULTS, 400);
    assert.deepEqual([...counts.keys()].sort(), ["w0", "w1"]);
    for (const [id, n] of counts) assert.ok(n > 140, `${id} picked only ${n} of 400`);
  }
});

Deno.test("prefixaware: spill tie is broken at random too", () => {
  const cs = [cand("w0", 9, 8), cand("w1", 4, 1), cand("w2", 4, 1), cand("w3", 4, 2)];
  const counts = tally(cs, DEFAULTS, 400);
  assert.deepEqual([...counts.keys()].sort(), ["w1", "w2"]);
  for (const [id, n] of counts) assert.ok(n > 140, `${id} picked only ${n} of 400`);
});

Deno.test("prefixaware: fallback ties are broken at random", () => {
  const cs = [cand("w0", 1, 0), cand("w1", 1, 0), cand("w2", 0, 4)];
  const counts = tally(cs, DEFAULTS, 400);
  assert.deepEqual([...counts.keys()].sort(), ["w0", "w1"]);
});

/** DESIGN.md's rule written out literally: shuffle, stable sort, then scan. */
function reference(cs: readonly Candidate[], p: StrategyParams, rng: Rng) {
  const sorted = shuffle([...cs], rng).sort((a, b) => b.match - a.match || a.inflight - b.inflight);
  const best = sorted[0];
  if (best.match < p.minMatchChunks) {
    return { id: pickLeastLoaded(cs, rng)!.id, reason: "fallback-least-loaded" };
  }
  if (p.saturationInflight > 0 && best.inflight >= p.saturationInflight) {
    for (let i = 1; i < sorted.length; i++) {
      const c = sorted[i];
      if (c.match >= p.minMatchChunks && c.inflight < p.saturationInflight) {
        return { id: c.id, reason: "spilled-from-saturated" };
      }
    }
    return { id: pickLeastLoaded(cs, rng)!.id, reason: "spilled-fallback-least-loaded" };
  }
  return { id: best.id, reason: "longest-prefix" };
}

Deno.test("prefixaware: same choice as shuffle + stable sort for the same rng (property)", () => {
  const params = fc.record({
    minMatchChunks: fc.integer({ min: 0, max: 4 }),
    saturationInflight: fc.integer({ min: 0, max: 6 }),
  });
  const workers = fc.array(
    fc.record({ match: fc.integer({ min: 0, max: 5 }), inflight: fc.integer({ min: 0, max: 8 }) }),
    { minLength: 1, maxLength: 64 },
  );
  // Instances are reused across runs so the scratch array sees shrinking and growing sets.
  const instances = new Map<string, PrefixAwareStrategy>();
  fc.assert(
    fc.property(params, workers, fc.integer(), (p, ws, seed) => {
      const cs = ws.map((w, i) => cand(`w${i}`, w.match, w.inflight));
      const key = `${p.minMatchChunks}/${p.saturationInflight}`;
      let s = instances.get(key);
      if (s === undefined) instances.set(key, s = new PrefixAwareStrategy(p));
      const d = s.pick(ctx(cs, new SeededRng(seed)))!;
      assert.deepEqual(
        { id: d.candidate.id, reason: d.reason },
        reference(cs, p, new SeededRng(seed)),
      );
    }),
    { numRuns: 2000 },
  );
});

Deno.test("prefixaware: uses prefixes; rejects bad parameters", () => {
  const s = new PrefixAwareStrategy(DEFAULTS);
  assert.equal(s.name, "prefixaware");
  assert.equal(s.usesPrefix, true);
  assert.throws(
    () => new PrefixAwareStrategy({ minMatchChunks: -1, saturationInflight: 8 }),
    { name: "RangeError", message: "minMatchChunks must be a non-negative integer, got -1" },
  );
  assert.throws(
    () => new PrefixAwareStrategy({ minMatchChunks: 2, saturationInflight: 1.5 }),
    { name: "RangeError", message: "saturationInflight must be a non-negative integer, got 1.5" },
  );
});
