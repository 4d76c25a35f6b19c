import assert from "node:assert/strict";
import { type Rng, SeededRng } from "../util/rng.ts";
import { LeastLoadedStrategy, pickLeastLoaded } from "./least_loaded.ts";
import type { Candidate, PickContext } from "./types.ts";

function cand(index: number, inflight: number, match = 0): Candidate {
  return { index, id: `w${index}`, inflight, match, cachedChunks: 0, capacityChunks: 0 };
}

function ctx(candidates: Candidate[], rng: Rng): PickContext {
  return { candidates, requestChunks: 1, chunkSize: 32, rng, now: 0 };
}

/** Fails if drawn from: a unique minimum needs no random number. */
const noRng: Rng = {
  next: () => assert.fail("drew from the rng"),
  int: () => assert.fail("drew from the rng"),
};

/** `int` answers `k` after checking it was asked for `bound` (the number of tied candidates). */
function intRng(k: number, bound: number): Rng {
  return {
    next: () => assert.fail("least-loaded should use int"),
    int: (n) => {
      assert.equal(n, bound, "rng bound should be the number of tied candidates");
      return k;
    },
  };
}

const CASES: { name: string; inflight: number[]; rng: Rng; want: string }[] = [
  { name: "unique minimum, first", inflight: [0, 3, 5], rng: noRng, want: "w0" },
  { name: "unique minimum, middle", inflight: [3, 1, 2], rng: noRng, want: "w1" },
  { name: "unique minimum, last", inflight: [4, 4, 2], rng: noRng, want: "w2" },
  { name: "tie of two, draw 0", inflight: [2, 5, 2], rng: intRng(0, 2), want: "w0" },
  {
    name: "tie of two, draw 1 → the later one",
    inflight: [2, 5, 2],
    rng: intRng(1, 2),
    want: "w2",
  },
  { name: "tie of three, draw 1", inflight: [7, 0, 0, 3, 0], rng: intRng(1, 3), want: "w2" },
  { name: "tie of three, draw 2", inflight: [7, 0, 0, 3, 0], rng: intRng(2, 3), want: "w4" },
  { name: "all tied, draw 3", inflight: [1, 1, 1, 1], rng: intRng(3, 4), want: "w3" },
];

for (const c of CASES) {
  Deno.test(`leastloaded: ${c.name}`, () => {
    const cs = c.inflight.map((f, i) => cand(i, f));
    const d = new LeastLoadedStrategy().pick(ctx(cs, c.rng));
    assert.equal(d?.candidate.id, c.want);
    assert.equal(d?.reason, "least-loaded");
  });
}

Deno.test("leastloaded: ignores prefix match", () => {
  const cs = [cand(0, 3, 50), cand(1, 1, 0)];
  assert.equal(new LeastLoadedStrategy().pick(ctx(cs, noRng))?.candidate.id, "w1");
});

Deno.test("leastloaded: ties are broken at random, not by position", () => {
  const s = new LeastLoadedStrategy();
  const cs = [cand(0, 1), cand(1, 4), cand(2, 1), cand(3, 1)];
  const counts = new Map<string, number>();
  for (let seed = 0; seed < 600; seed++) {
    const id = s.pick(ctx(cs, new SeededRng(seed)))!.candidate.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), ["w0", "w2", "w3"]);
  for (const [id, n] of counts) assert.ok(n > 120, `${id} picked only ${n} of 600`);
});

Deno.test("pickLeastLoaded: empty → undefined; name and usesPrefix", () => {
  assert.equal(pickLeastLoaded([], noRng), undefined);
  const s = new LeastLoadedStrategy();
  assert.equal(s.name, "leastloaded");
  assert.equal(s.usesPrefix, false);
});

// Engine signals: the engine's own queue, when fresh, counts on top of the router's in-flight.

function withEngine(c: Candidate, engine: Candidate["engine"]): Candidate {
  return { ...c, engine };
}

/** Scraped at 0, fresh for 5 s. */
function eng(waiting?: number, running?: number, at = 0): Candidate["engine"] {
  return { waiting, running, at, maxAgeMs: 5000 };
}

function ctxAt(candidates: Candidate[], rng: Rng, now: number): PickContext {
  return { candidates, requestChunks: 1, chunkSize: 32, rng, now };
}

const ENGINE_CASES: {
  name: string;
  cands: Candidate[];
  now?: number;
  rng: Rng;
  want: string;
}[] = [
  {
    name: "equal for the router, one engine queue deep: the other wins without a draw",
    cands: [withEngine(cand(0, 2), eng(6)), withEngine(cand(1, 2), eng(0))],
    rng: noRng,
    want: "w1",
  },
  {
    name: "a deep engine queue loses more than ties: 1 + 6 > 4 + 0",
    cands: [withEngine(cand(0, 1), eng(6)), withEngine(cand(1, 4), eng(0))],
    rng: noRng,
    want: "w1",
  },
  {
    name: "a shallow engine queue does not outweigh the router's count: 1 + 2 < 4",
    cands: [withEngine(cand(0, 1), eng(2)), cand(1, 4)],
    rng: noRng,
    want: "w0",
  },
  {
    name: "running requests alone do not count (the batch has room)",
    cands: [withEngine(cand(0, 1), eng(0, 50)), withEngine(cand(1, 1), eng(0, 0))],
    rng: intRng(0, 2),
    want: "w0",
  },
  {
    name: "stale signals are ignored: back to a plain tie",
    cands: [withEngine(cand(0, 2), eng(6)), withEngine(cand(1, 2), eng(0))],
    now: 5001,
    rng: intRng(0, 2),
    want: "w0",
  },
  {
    name: "a scrape that landed just after the pick's clock read still counts",
    cands: [withEngine(cand(0, 2), eng(6, undefined, 300)), cand(1, 2)],
    now: 100,
    rng: noRng,
    want: "w1",
  },
  {
    name: "NaN, negative and infinite queues read as absent",
    cands: [
      withEngine(cand(0, 2), eng(NaN)),
      withEngine(cand(1, 2), eng(-4)),
      withEngine(cand(2, 2), eng(Infinity)),
    ],
    rng: intRng(2, 3),
    want: "w2",
  },
  {
    name: "absent waiting figure (engine exports only KV usage) counts 0",
    cands: [withEngine(cand(0, 1), eng(undefined)), cand(1, 2)],
    rng: noRng,
    want: "w0",
  },
];

for (const c of ENGINE_CASES) {
  Deno.test(`leastloaded, engine signals: ${c.name}`, () => {
    const d = new LeastLoadedStrategy().pick(ctxAt(c.cands, c.rng, c.now ?? 1000));
    assert.equal(d?.candidate.id, c.want);
    assert.equal(d?.reason, "least-loaded");
  });
}

Deno.test("pickLeastLoaded without now ignores engine signals (prefixaware's fallback)", () => {
  const cs = [withEngine(cand(0, 1), eng(50)), cand(1, 2)];
  assert.equal(pickLeastLoaded(cs, noRng)?.id, "w0");
  assert.equal(pickLeastLoaded(cs, noRng, 0)?.id, "w1");
});
