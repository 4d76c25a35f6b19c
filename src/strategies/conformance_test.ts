/**
 * Conformance suite every registered strategy runs: picks only from the given candidates, is
 * reproducible from a seed, handles one and zero candidates, and always gives a reason. Also the
 * registry's contract (names, unknown name, plug-in).
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { SeededRng } from "../util/rng.ts";
import { createStrategy, registerStrategy, STRATEGY_NAMES } from "./registry.ts";
import type { Candidate, PickContext, Strategy, StrategyParams } from "./types.ts";

const PARAMS: StrategyParams = { minMatchChunks: 2, saturationInflight: 8 };
const WORKERS = 6;

function cand(index: number, inflight: number, match: number): Candidate {
  return { index, id: `w${index}`, inflight, match, cachedChunks: 0, capacityChunks: 0 };
}

function ctx(candidates: Candidate[], rng: SeededRng, now = 0): PickContext {
  return { candidates, requestChunks: 10, chunkSize: 32, rng, now };
}

/** A stream of candidate sets over WORKERS workers with some excluded, from `seed`. */
function scenarios(seed: number, count: number): Candidate[][] {
  const g = new SeededRng(seed);
  const out: Candidate[][] = [];
  for (let s = 0; s < count; s++) {
    const cs: Candidate[] = [];
    for (let i = 0; i < WORKERS; i++) {
      if (g.next() < 0.3) continue; // excluded: breaker open or at max_inflight
      cs.push(cand(i, g.int(12), g.int(6)));
    }
    if (cs.length === 0) cs.push(cand(g.int(WORKERS), g.int(12), g.int(6)));
    out.push(cs);
  }
  return out;
}

function run(strategy: Strategy, sets: Candidate[][], seed: number): string[] {
  const rng = new SeededRng(seed);
  return sets.map((cs, i) => {
    const d = strategy.pick(ctx(cs, rng, i));
    assert.ok(d !== undefined);
    return `${d.candidate.id}/${d.reason}`;
  });
}

Deno.test("registry lists the built-in strategies in order", () => {
  assert.deepEqual(STRATEGY_NAMES.slice(0, 4), [
    "roundrobin",
    "random",
    "leastloaded",
    "prefixaware",
  ]);
});

Deno.test("registry: unknown name is an error listing the valid names", () => {
  assert.throws(
    () => createStrategy("foo", PARAMS),
    { message: `unknown strategy "foo"; valid: ${STRATEGY_NAMES.join(", ")}` },
  );
  assert.throws(
    () => createStrategy("foo", PARAMS),
    /^Error: unknown strategy "foo"; valid: roundrobin, random, leastloaded, prefixaware/,
  );
});

Deno.test("registry: a registered strategy is built by name, duplicates are rejected", () => {
  const seen: StrategyParams[] = [];
  registerStrategy("conformance-first", (params) => {
    seen.push(params);
    return {
      name: "conformance-first",
      usesPrefix: false,
      pick: (c) =>
        c.candidates.length === 0 ? undefined : { candidate: c.candidates[0], reason: "first" },
    };
  });
  const s = createStrategy("conformance-first", PARAMS);
  assert.equal(s.name, "conformance-first");
  assert.deepEqual(seen, [PARAMS]);
  assert.ok(STRATEGY_NAMES.includes("conformance-first"));
  assert.throws(() => registerStrategy("roundrobin", () => s), /already registered/);
  assert.throws(() => registerStrategy("", () => s), /must not be empty/);
});

// Snapshot taken at load time so the strategy registered by the test above does not join.
for (const name of [...STRATEGY_NAMES]) {
  Deno.test(`${name}: reports its registry name and builds fresh instances`, () => {
    const a = createStrategy(name, PARAMS);
    assert.equal(a.name, name);
    assert.notEqual(createStrategy(name, PARAMS), a);
  });

  Deno.test(`${name}: an option it does not know is an error, not ignored`, () => {
    assert.throws(
      () => createStrategy(name, { ...PARAMS, options: { no_such_option: 1 } }),
      new RegExp(`^RangeError: strategy ${name} has no option "no_such_option"`),
    );
  });

  Deno.test(`${name}: picks only from the given candidates, never an excluded worker`, () => {
    const s = createStrategy(name, PARAMS);
    const rng = new SeededRng(7);
    for (const cs of scenarios(1, 500)) {
      const d = s.pick(ctx(cs, rng));
      assert.ok(d !== undefined);
      assert.ok(cs.includes(d.candidate), `picked ${d.candidate.id} not in candidates`);
    }
  });

  Deno.test(`${name}: same seed and inputs give the same choices`, () => {
    const sets = scenarios(2, 300);
    const a = run(createStrategy(name, PARAMS), sets, 42);
    const b = run(createStrategy(name, PARAMS), sets, 42);
    assert.deepEqual(a, b);
  });

  Deno.test(`${name}: one candidate is always picked`, () => {
    const s = createStrategy(name, PARAMS);
    const rng = new SeededRng(3);
    // Covers every branch of prefixaware: long match, short match, saturated.
    for (const c of [cand(4, 0, 0), cand(2, 3, 9), cand(0, 20, 9), cand(5, 20, 1)]) {
      for (let i = 0; i < 3; i++) {
        const d = s.pick(ctx([c], rng));
        assert.equal(d?.candidate, c);
      }
    }
  });

  Deno.test(`${name}: no candidates gives undefined`, () => {
    const s = createStrategy(name, PARAMS);
    assert.equal(s.pick(ctx([], new SeededRng(1))), undefined);
    // and still works afterwards
    const only = cand(1, 0, 0);
    assert.equal(s.pick(ctx([only], new SeededRng(1)))?.candidate, only);
  });

  Deno.test(`${name}: property: any candidate set → a member, a reason, reproducible`, () => {
    const candidateSet = fc.uniqueArray(
      fc.record({
        index: fc.integer({ min: 0, max: 63 }),
        inflight: fc.integer({ min: 0, max: 16 }),
        match: fc.integer({ min: 0, max: 8 }),
      }),
      { minLength: 1, maxLength: 64, selector: (c) => c.index },
    ).map((xs) => xs.map((x) => cand(x.index, x.inflight, x.match)));
    // One instance reused across runs on both sides: stateful strategies must stay in step.
    const left = createStrategy(name, PARAMS);
    const right = createStrategy(name, PARAMS);
    fc.assert(
      fc.property(candidateSet, fc.integer(), (cs, seed) => {
        const a = left.pick(ctx(cs, new SeededRng(seed)));
        const b = right.pick(ctx(cs, new SeededRng(seed)));
        assert.ok(a !== undefined && b !== undefined);
        assert.ok(cs.includes(a.candidate));
        assert.equal(typeof a.reason, "string");
        assert.ok(a.reason.length > 0);
        assert.equal(a.candidate, b.candidate);
        assert.equal(a.reason, b.reason);
      }),
      { numRuns: 300 },
    );
  });
}

// Engine signals (`Candidate.engine`) in any shape, fresh or stale, never break the contract.
for (const name of [...STRATEGY_NAMES]) {
  if (name === "conformance-first") continue;
  Deno.test(`${name}: property: engine signals of any shape → a member, reproducible`, () => {
    const odd = fc.constantFrom(NaN, -1, Infinity, -Infinity, undefined, 0, 1e308);
    const num = fc.oneof(odd, fc.integer({ min: 0, max: 64 }), fc.double({ min: 0, max: 1 }));
    const candidateSet = fc.uniqueArray(
      fc.record({
        index: fc.integer({ min: 0, max: 63 }),
        inflight: fc.integer({ min: 0, max: 16 }),
        match: fc.integer({ min: 0, max: 8 }),
        engine: fc.option(
          fc.record({
            waiting: num,
            running: num,
            kvUsage: num,
            at: fc.oneof(fc.integer({ min: -10_000, max: 10_000 }), fc.constant(NaN)),
            maxAgeMs: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constant(Infinity)),
          }),
          { nil: undefined },
        ),
      }),
      { minLength: 1, maxLength: 32, selector: (c) => c.index },
    ).map((xs) =>
      xs.map((x): Candidate => ({ ...cand(x.index, x.inflight, x.match), engine: x.engine }))
    );
    const left = createStrategy(name, PARAMS);
    const right = createStrategy(name, PARAMS);
    fc.assert(
      fc.property(candidateSet, fc.integer(), (cs, seed) => {
        const a = left.pick(ctx(cs, new SeededRng(seed)));
        const b = right.pick(ctx(cs, new SeededRng(seed)));
        assert.ok(a !== undefined && b !== undefined);
        assert.ok(cs.includes(a.candidate));
        assert.equal(a.candidate, b.candidate);
        assert.equal(a.reason, b.reason);
      }),
      { numRuns: 200 },
    );
  });
}
