import assert from "node:assert/strict";
import { type Rng, SeededRng } from "../util/rng.ts";
import { RandomStrategy } from "./random.ts";
import type { Candidate, PickContext } from "./types.ts";

function cand(index: number, inflight = 0, match = 0): Candidate {
  return { index, id: `w${index}`, inflight, match, cachedChunks: 0, capacityChunks: 0 };
}

function ctx(candidates: Candidate[], rng: Rng): PickContext {
  return { candidates, requestChunks: 1, chunkSize: 32, rng, now: 0 };
}

/** An rng whose `int` answers `k` and checks the bound it was asked for. */
function intRng(k: number, wantBound: number): Rng {
  return {
    next: () => assert.fail("random should use int"),
    int: (n) => {
      assert.equal(n, wantBound);
      return k;
    },
  };
}

const CASES: { name: string; candidates: Candidate[]; draw: number; want: string }[] = [
  { name: "draw 0 → first", candidates: [cand(0), cand(3), cand(5)], draw: 0, want: "w0" },
  { name: "draw 2 → third", candidates: [cand(0), cand(3), cand(5)], draw: 2, want: "w5" },
  {
    name: "load and match are ignored",
    candidates: [cand(1, 0, 9), cand(2, 99, 0)],
    draw: 1,
    want: "w2",
  },
  {
    name: "draws over the candidates, not the worker list",
    candidates: [cand(7)],
    draw: 0,
    want: "w7",
  },
];

for (const c of CASES) {
  Deno.test(`random: ${c.name}`, () => {
    const d = new RandomStrategy().pick(ctx(c.candidates, intRng(c.draw, c.candidates.length)));
    assert.equal(d?.candidate.id, c.want);
    assert.equal(d?.reason, "random");
  });
}

Deno.test("random: roughly uniform over the candidates", () => {
  const s = new RandomStrategy();
  const cs = [cand(0, 0), cand(1, 5), cand(4, 10)];
  const rng = new SeededRng(11);
  const counts = new Map<string, number>();
  const N = 6000;
  for (let i = 0; i < N; i++) {
    const id = s.pick(ctx(cs, rng))!.candidate.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), ["w0", "w1", "w4"]);
  for (const [id, n] of counts) {
    assert.ok(Math.abs(n / N - 1 / 3) < 0.03, `${id} picked ${n} of ${N}`);
  }
});

Deno.test("random: same seed → same sequence; name and usesPrefix", () => {
  const cs = [cand(0), cand(1), cand(2), cand(3)];
  const seq = (seed: number) => {
    const s = new RandomStrategy();
    const rng = new SeededRng(seed);
    return Array.from({ length: 20 }, () => s.pick(ctx(cs, rng))!.candidate.id);
  };
  assert.deepEqual(seq(5), seq(5));
  assert.notDeepEqual(seq(5), seq(6));
  const s = new RandomStrategy();
  assert.equal(s.name, "random");
  assert.equal(s.usesPrefix, false);
});
