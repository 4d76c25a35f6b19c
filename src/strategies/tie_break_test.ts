import assert from "node:assert/strict";
import type { Rng } from "../util/rng.ts";
import { pickLeastLoadedWithMatch, pickNearMin, scratch } from "./tie_break.ts";
import type { Candidate } from "./types.ts";

const noRng: Rng = {
  next: () => assert.fail("drew from the rng"),
  int: () => assert.fail("drew from the rng"),
};

function intRng(k: number, bound: number): Rng {
  return {
    next: () => assert.fail("should use int"),
    int: (n) => {
      assert.equal(n, bound);
      return k;
    },
  };
}

function cand(index: number, match: number, inflight: number): Candidate {
  return { index, id: `w${index}`, inflight, match, cachedChunks: 0, capacityChunks: 0 };
}

const NEAR_MIN: {
  name: string;
  costs: number[];
  n?: number;
  eps: number;
  rng: Rng;
  want: number;
}[] = [
  { name: "unique minimum", costs: [3, 1, 2], eps: 0, rng: noRng, want: 1 },
  { name: "exact tie, draw 1", costs: [1, 5, 1], eps: 0, rng: intRng(1, 2), want: 2 },
  { name: "within 10%, draw 0", costs: [10.5, 10, 12], eps: 0.1, rng: intRng(0, 2), want: 0 },
  { name: "12 is outside 10% of 10", costs: [12, 10], eps: 0.1, rng: noRng, want: 1 },
  { name: "only the first n count", costs: [4, 3, 1], n: 2, eps: 0, rng: noRng, want: 1 },
  {
    name: "negative costs: margin on |min|",
    costs: [-10, -9.5],
    eps: 0.1,
    rng: intRng(1, 2),
    want: 1,
  },
  { name: "empty", costs: [], eps: 0, rng: noRng, want: -1 },
  // A NaN cost (a bad load figure) counts as +∞: it never wins, and never leaves no pick.
  { name: "NaN first, the finite one wins", costs: [NaN, 2, 3], eps: 0.1, rng: noRng, want: 1 },
  { name: "a single NaN candidate is still picked", costs: [NaN], eps: 0, rng: noRng, want: 0 },
  {
    name: "all NaN or ∞: every one ties",
    costs: [NaN, Infinity],
    eps: 0.1,
    rng: intRng(1, 2),
    want: 1,
  },
];

for (const c of NEAR_MIN) {
  Deno.test(`pickNearMin: ${c.name}`, () => {
    assert.equal(pickNearMin(c.costs, c.n ?? c.costs.length, c.eps, c.rng), c.want);
  });
}

Deno.test("pickLeastLoadedWithMatch: least loaded among the given match, else undefined", () => {
  const cs = [cand(0, 5, 3), cand(1, 5, 1), cand(2, 7, 0), cand(3, 5, 1)];
  assert.equal(pickLeastLoadedWithMatch(cs, 5, intRng(1, 2)), cs[3]);
  assert.equal(pickLeastLoadedWithMatch(cs, 7, noRng), cs[2]);
  assert.equal(pickLeastLoadedWithMatch(cs, 9, noRng), undefined);
});

Deno.test("scratch: reuses a large enough buffer, grows otherwise", () => {
  const a = new Float64Array(8);
  assert.equal(scratch(a, 8), a);
  const b = scratch(a, 9);
  assert.ok(b.length >= 16);
});
