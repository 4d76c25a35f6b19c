import assert from "node:assert/strict";
import type { Rng } from "../util/rng.ts";
import { RoundRobinStrategy } from "./round_robin.ts";
import type { Candidate } from "./types.ts";

function cand(index: number, inflight = 0): Candidate {
  return { index, id: `w${index}`, inflight, match: 0, cachedChunks: 0, capacityChunks: 0 };
}

/** roundrobin must not draw random numbers. */
const noRng: Rng = {
  next: () => assert.fail("roundrobin drew from the rng"),
  int: () => assert.fail("roundrobin drew from the rng"),
};

/** Each step: the admitted worker indexes (in the order given), then the expected pick. */
const CASES: { name: string; steps: [number[], string][] }[] = [
  {
    name: "cycles over all workers by position",
    steps: [
      [[0, 1, 2], "w0"],
      [[0, 1, 2], "w1"],
      [[0, 1, 2], "w2"],
      [[0, 1, 2], "w0"],
      [[0, 1, 2], "w1"],
    ],
  },
  {
    name: "skips an excluded worker without shifting the cycle",
    steps: [
      [[0, 2, 3], "w0"],
      [[0, 2, 3], "w2"],
      [[0, 2, 3], "w3"],
      [[0, 2, 3], "w0"],
      [[0, 1, 2, 3], "w1"], // back in its turn
      [[0, 1, 2, 3], "w2"],
    ],
  },
  {
    // A counter modulo the candidate count would give 2 % 3 → w3 at step 3 and skip w2.
    name: "continues after the last picked index when the candidate set changes",
    steps: [
      [[0, 1, 2, 3], "w0"],
      [[0, 1, 2, 3], "w1"],
      [[1, 2, 3], "w2"],
      [[1, 2, 3], "w3"],
      [[1, 2, 3], "w1"],
      [[0, 1, 2, 3], "w2"],
    ],
  },
  {
    name: "wraps to the lowest index when the last picked is the highest admitted",
    steps: [
      [[0, 1, 2, 3], "w0"],
      [[0, 1, 2, 3], "w1"],
      [[0, 1, 2, 3], "w2"],
      [[0, 1], "w0"],
      [[1, 3], "w1"],
      [[1, 3], "w3"],
    ],
  },
  {
    name: "order of the candidates does not matter, only their index",
    steps: [
      [[3, 1, 2], "w1"],
      [[2, 3, 1], "w2"],
      [[1, 2, 3], "w3"],
      [[3, 2, 1], "w1"],
    ],
  },
  {
    name: "a single admitted worker is picked every time",
    steps: [
      [[2], "w2"],
      [[2], "w2"],
      [[0, 2], "w0"],
    ],
  },
];

for (const { name, steps } of CASES) {
  Deno.test(`roundrobin: ${name}`, () => {
    const s = new RoundRobinStrategy();
    steps.forEach(([admitted, want], step) => {
      const d = s.pick({
        candidates: admitted.map((i) => cand(i)),
        requestChunks: 1,
        chunkSize: 32,
        rng: noRng,
        now: step,
      });
      assert.equal(d?.candidate.id, want, `step ${step}`);
      assert.equal(d?.reason, "round-robin");
    });
  });
}

Deno.test("roundrobin: ignores load", () => {
  const s = new RoundRobinStrategy();
  const cs = [cand(0, 50), cand(1, 0), cand(2, 9)];
  const ids = [0, 1, 2, 3].map(() =>
    s.pick({ candidates: cs, requestChunks: 1, chunkSize: 32, rng: noRng, now: 0 })?.candidate.id
  );
  assert.deepEqual(ids, ["w0", "w1", "w2", "w0"]);
});

Deno.test("roundrobin: no candidates leaves the cycle where it was", () => {
  const s = new RoundRobinStrategy();
  const pick = (idx: number[]) =>
    s.pick({
      candidates: idx.map((i) => cand(i)),
      requestChunks: 1,
      chunkSize: 32,
      rng: noRng,
      now: 0,
    });
  assert.equal(pick([0, 1, 2])?.candidate.id, "w0");
  assert.equal(pick([]), undefined);
  assert.equal(pick([0, 1, 2])?.candidate.id, "w1");
});

Deno.test("roundrobin: instances keep separate cycles, does not use prefixes", () => {
  const a = new RoundRobinStrategy();
  const b = new RoundRobinStrategy();
  const cs = [cand(0), cand(1)];
  const c = { candidates: cs, requestChunks: 1, chunkSize: 32, rng: noRng, now: 0 };
  assert.equal(a.pick(c)?.candidate.id, "w0");
  assert.equal(a.pick(c)?.candidate.id, "w1");
  assert.equal(b.pick(c)?.candidate.id, "w0");
  assert.equal(a.usesPrefix, false);
  assert.equal(a.name, "roundrobin");
});
