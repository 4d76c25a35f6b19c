import assert from "node:assert/strict";
import { type Rng, SeededRng } from "../util/rng.ts";
import { CostAwareStrategy } from "./cost_aware.ts";
import {
  A100_7B_PRIORS,
  assumedLoad,
  engineExtraMs,
  estimateTtftMs,
  futureDelayMs,
  kvPressureMs,
  queuedDelayMs,
} from "./cost_model.ts";
import { LoadTracker } from "../router/load_tracker.ts";
import { createStrategy } from "./registry.ts";
import type { Candidate, EngineLoad, PickContext, StrategyParams, WorkerLoad } from "./types.ts";

/** The literal costs below were written with the queued-prefill term at full weight. */
const PARAMS: StrategyParams = {
  minMatchChunks: 2,
  saturationInflight: 8,
  options: { others_weight: 1 },
};

/** Fails if drawn from: a unique minimum needs no random number. */
const noRng: Rng = {
  next: () => assert.fail("drew from the rng"),
  int: () => assert.fail("drew from the rng"),
};

/** `int` answers `k` after checking it was asked for `bound` (the number of near-ties). */
function intRng(k: number, bound: number): Rng {
  return {
    next: () => assert.fail("costaware should use int"),
    int: (n) => {
      assert.equal(n, bound, "rng bound should be the number of near-ties");
      return k;
    },
  };
}

/** An idle worker with round figures: 10 tokens/ms, 10 ms steps, 0.1 ms per decoding sequence. */
function load(over: Partial<WorkerLoad> = {}): WorkerLoad {
  return {
    pendingPrefillTokens: 0,
    decoding: 0,
    prefilling: 0,
    prefillTokensPerMs: 10,
    decodeStepMs: 10,
    stepOverheadMs: 10,
    decodeMsPerSeq: 0.1,
    activeTokens: 0,
    ...over,
  };
}

function cand(index: number, match: number, l?: WorkerLoad, inflight = 0): Candidate {
  return {
    index,
    id: `w${index}`,
    inflight,
    match,
    cachedChunks: 0,
    capacityChunks: 0,
    load: l,
  };
}

/** 32-byte chunks, 4 bytes per token: 8 tokens per chunk. */
function ctx(
  candidates: Candidate[],
  requestChunks: number,
  rng: Rng = noRng,
  now = 0,
): PickContext {
  return { candidates, requestChunks, chunkSize: 32, rng, now };
}

interface Case {
  name: string;
  options?: Record<string, number>;
  requestChunks: number;
  candidates: Candidate[];
  costs: number[];
  rng?: Rng;
  want: string;
}

const CASES: Case[] = [
  {
    // 800 tokens. w0: 10 + 160/10. w1: 10 + 800/10. w2: busy 5 + 10 + 4 × 0.1 +
    // (1000 + 160)/10, plus 2 queued prefills delayed by 160/10 each.
    name: "idle worker holding the prefix wins; a congested holder does not",
    requestChunks: 100,
    candidates: [
      cand(0, 80, load()),
      cand(1, 0, load()),
      cand(2, 80, load({ pendingPrefillTokens: 1000, prefilling: 2, decoding: 4 })),
    ],
    costs: [26, 90, 163.4],
    want: "w0",
  },
  {
    // w0: 5 + 10 + 0.2 + (2000 + 160)/10 + 3 × 16 = 279.2 > w1's cold 90.
    name: "a long match behind a long queue loses to a cold idle worker",
    requestChunks: 100,
    candidates: [
      cand(0, 80, load({ pendingPrefillTokens: 2000, prefilling: 3, decoding: 2 })),
      cand(1, 0, load()),
    ],
    costs: [279.2, 90],
    want: "w1",
  },
  {
    // 1000 tokens: w0 10 + 800/10 = 90; w1 10 + 808/10 = 90.8 (within 2%); w2 10 + 840/10 = 94.
    name: "costs within 2% of the minimum are near-ties drawn at random (draw 1)",
    requestChunks: 125,
    candidates: [cand(0, 25, load()), cand(1, 24, load()), cand(2, 20, load())],
    costs: [90, 90.8, 94],
    rng: intRng(1, 2),
    want: "w1",
  },
  {
    name: "near-ties, draw 0",
    requestChunks: 125,
    candidates: [cand(0, 25, load()), cand(1, 24, load()), cand(2, 20, load())],
    costs: [90, 90.8, 94],
    rng: intRng(0, 2),
    want: "w0",
  },
  {
    name: "tie_epsilon 0: only the exact minimum",
    options: { tie_epsilon: 0 },
    requestChunks: 125,
    candidates: [cand(0, 25, load()), cand(1, 24, load()), cand(2, 20, load())],
    costs: [90, 90.8, 94],
    want: "w0",
  },
  {
    // w0 own TTFT 5 + 10 + (100 + 200)/10 = 45 < w1's 10 + 400/10 = 50, but w0's one queued
    // prefill would wait 200/10 = 20 ms longer: 65.
    name: "the delay added to queued prefills counts",
    requestChunks: 125,
    candidates: [
      cand(0, 100, load({ pendingPrefillTokens: 100, prefilling: 1 })),
      cand(1, 75, load()),
    ],
    costs: [65, 50],
    want: "w1",
  },
  {
    name: "others_weight 0: own TTFT only",
    options: { others_weight: 0 },
    requestChunks: 125,
    candidates: [
      cand(0, 100, load({ pendingPrefillTokens: 100, prefilling: 1 })),
      cand(1, 75, load()),
    ],
    costs: [45, 50],
    want: "w0",
  },
  {
    // a100-7b priors: 10 ms overhead, 0.09 ms per token. w1: 10 + 1000 × 0.09 = 100; w0 with
    // nothing in flight: 10 + 200 × 0.09 = 28.
    name: "without load: priors, an idle holder wins",
    requestChunks: 125,
    candidates: [cand(0, 100, undefined, 0), cand(1, 0, undefined, 0)],
    costs: [28, 100],
    want: "w0",
  },
  {
    // w0 with 2 in flight is assumed to hold 2 × 1000 pending tokens: 5 + 10 + 2 × 0.12 +
    // 2200 × 0.09 + 2 × 200 × 0.09 = 249.24.
    name: "without load: in-flight requests count as pending prefills, so it spreads",
    requestChunks: 125,
    candidates: [cand(0, 100, undefined, 2), cand(1, 0, undefined, 0)],
    costs: [249.24, 100],
    want: "w1",
  },
];

for (const c of CASES) {
  Deno.test(`costaware: ${c.name}`, () => {
    const s = new CostAwareStrategy({ ...PARAMS, options: { ...PARAMS.options, ...c.options } });
    const x = ctx(c.candidates, c.requestChunks, c.rng);
    const costs = s.costs(x);
    assert.equal(costs.length, c.costs.length);
    costs.forEach((v, i) => assert.ok(Math.abs(v - c.costs[i]) < 1e-9, `cost ${i}: ${v}`));
    const d = s.pick(x);
    assert.equal(d?.candidate.id, c.want);
    assert.equal(d?.reason, "min-cost");
  });
}

Deno.test("costaware: requestTokens from the context wins over chunks; matches cap at it", () => {
  const s = new CostAwareStrategy(PARAMS);
  // 500 tokens: w0 holds 25 chunks = 200 tokens → 10 + 300/10; w1 holds 100 chunks = 800 tokens,
  // more than the request: nothing left to prefill → 10.
  const x: PickContext = {
    ...ctx([cand(0, 25, load()), cand(1, 100, load())], 125),
    requestTokens: 500,
  };
  assert.deepEqual(s.costs(x), [40, 10]);
  // 2 bytes per token: 16 tokens per chunk, request = 125 × 16 = 2000, w0 covers 400.
  assert.deepEqual(s.costs({ ...ctx([cand(0, 25, load())], 125), bytesPerToken: 2 }), [170]);
});

Deno.test("costaware: empty candidates, registry name, options errors", () => {
  const s = createStrategy("costaware", { minMatchChunks: 2, saturationInflight: 8 });
  assert.ok(s instanceof CostAwareStrategy);
  assert.equal(s.usesPrefix, true);
  assert.equal(s.pick(ctx([], 10)), undefined);
  assert.equal((s as CostAwareStrategy).tieEpsilon, 0.02);
  assert.equal((s as CostAwareStrategy).othersWeight, 0.5);
  assert.equal((s as CostAwareStrategy).futureWeight, 1);
  assert.throws(
    () => createStrategy("costaware", { ...PARAMS, options: { tie_eps: 0.1 } }),
    {
      message:
        'strategy costaware has no option "tie_eps"; valid: tie_epsilon, others_weight, future_weight',
    },
  );
  assert.throws(
    () => createStrategy("costaware", { ...PARAMS, options: { tie_epsilon: 2 } }),
    { message: "strategy costaware option tie_epsilon must be a number in [0, 1], got 2" },
  );
});

Deno.test("costaware: a burst of equal requests on idle equal workers spreads at random", () => {
  const s = new CostAwareStrategy(PARAMS);
  const rng = new SeededRng(5);
  const seen = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const d = s.pick(ctx([cand(0, 0, load()), cand(1, 0, load()), cand(2, 0, load())], 50, rng));
    seen.set(d!.candidate.id, (seen.get(d!.candidate.id) ?? 0) + 1);
  }
  for (const id of ["w0", "w1", "w2"]) {
    assert.ok((seen.get(id) ?? 0) > 100, `${id}: ${seen.get(id)}`);
  }
});

Deno.test("cost model: estimateTtftMs and queuedDelayMs by hand", () => {
  // Idle: overhead + tokens / rate. Busy through decoding alone: + half a step + the decode term.
  assert.equal(estimateTtftMs(load(), 100), 20);
  assert.equal(estimateTtftMs(load({ decoding: 3 }), 100), 5 + 10 + 0.30000000000000004 + 10);
  // prefilling absent: busy when pending > 0.
  const l = { ...load({ pendingPrefillTokens: 50 }), prefilling: undefined };
  assert.equal(estimateTtftMs(l, 100), 5 + 10 + 15);
  assert.equal(queuedDelayMs(l, 100), 10);
  assert.equal(queuedDelayMs(load({ prefilling: 4 }), 100), 40);
  assert.equal(queuedDelayMs(load({ prefilling: 4 }), 0), 0);
  // Missing or zero rates fall back to the priors.
  const noRates = load({ prefillTokensPerMs: 0, decodeStepMs: 0, decoding: 1 });
  assert.equal(
    estimateTtftMs({ ...noRates, stepOverheadMs: undefined, decodeMsPerSeq: undefined }, 0),
    A100_7B_PRIORS.decodeStepMs / 2 + A100_7B_PRIORS.stepOverheadMs +
      A100_7B_PRIORS.decodeMsPerSeq,
  );
  const a = assumedLoad(cand(0, 0, undefined, 3), 200);
  assert.equal(a.pendingPrefillTokens, 600);
  assert.equal(a.decoding, 3);
  assert.equal(a.prefilling, 3);
  assert.equal(a.prefillTokensPerMs, A100_7B_PRIORS.prefillTokensPerMs);
});

// Engine signals: what the engine's own /metrics adds beyond the router's accounting.

/** Scraped at 0, fresh for 5 s. */
function eng(over: Partial<EngineLoad> = {}): EngineLoad {
  return { waiting: 0, running: 0, kvUsage: 0, at: 0, maxAgeMs: 5000, ...over };
}

function withEngine(c: Candidate, engine: EngineLoad): Candidate {
  return { ...c, engine };
}

function ctxAt(candidates: Candidate[], requestChunks: number, now: number, rng = noRng) {
  return { ...ctx(candidates, requestChunks, rng), now };
}

interface EngineCase {
  name: string;
  candidates: Candidate[];
  costs: number[];
  now?: number;
  rng?: Rng;
  want: string;
}

const ENGINE_CASES: EngineCase[] = [
  {
    // 800 tokens, both idle for the router: 10 + 800/10 = 90. w1's engine has 4 requests queued
    // by someone else: 4 × 800/10 = 320, plus half a step (it is busy after all): 415.
    name: "equal for the router, one engine queue deep: it is avoided",
    candidates: [
      withEngine(cand(0, 0, load()), eng()),
      withEngine(cand(1, 0, load()), eng({ waiting: 4 })),
    ],
    costs: [90, 415],
    want: "w0",
  },
  {
    // The engine's counters say its requests have 2000 uncached prompt tokens on average:
    // 4 × 2000/10 + 5 = 805 on top of 90.
    name: "queued requests are priced at the engine's own mean size when it gives one",
    candidates: [
      withEngine(cand(0, 0, load()), eng({ waiting: 1, queuedRequestTokens: 100 })),
      withEngine(cand(1, 0, load()), eng({ waiting: 4, queuedRequestTokens: 2000 })),
    ],
    costs: [105, 895],
    want: "w0",
  },
  {
    // The router's own 3 requests before their first token explain the engine's 3 waiting, and
    // its 3 in flight the 2 running: nothing added. 5 + 10 + 1100/10 + 3 × 80 = 365.
    name: "an engine queue no deeper than the router's own adds nothing",
    candidates: [
      withEngine(cand(0, 0, load()), eng()),
      withEngine(
        cand(1, 0, load({ pendingPrefillTokens: 300, prefilling: 3 }), 3),
        eng({ waiting: 3, running: 2 }),
      ),
    ],
    costs: [90, 365],
    want: "w0",
  },
  {
    // 0.95 is half-way from 0.9 to full: half the prefill again, 0.5 × 80 = 40.
    name: "KV usage near 1 prices the preemption risk",
    candidates: [
      withEngine(cand(0, 0, load()), eng({ kvUsage: 0.5 })),
      withEngine(cand(1, 0, load()), eng({ kvUsage: 0.95 })),
      withEngine(cand(2, 0, load()), eng({ kvUsage: 1 })),
    ],
    costs: [90, 130, 170],
    want: "w0",
  },
  {
    // 20 sequences the router did not send: 20 × 0.1 + half a step = 7.
    name: "others' running sequences add their decode cost and the wait for the step",
    candidates: [
      withEngine(cand(0, 0, load()), eng()),
      withEngine(cand(1, 0, load()), eng({ running: 20 })),
    ],
    costs: [90, 97],
    want: "w0",
  },
  {
    // w0 holds 80 of 100 chunks (10 + 160/10 = 26) but another client queued 3 there:
    // + 3 × 80 + 5 = 271 > w1's cold 90.
    name: "a cached prefix behind another client's queue loses to a cold idle worker",
    candidates: [
      withEngine(cand(0, 80, load()), eng({ waiting: 3 })),
      withEngine(cand(1, 0, load()), eng()),
    ],
    costs: [271, 90],
    want: "w1",
  },
  {
    name: "stale signals are ignored: the plain costs, a near-tie drawn",
    candidates: [
      withEngine(cand(0, 0, load()), eng()),
      withEngine(cand(1, 0, load()), eng({ waiting: 40, kvUsage: 1 })),
    ],
    now: 5001,
    costs: [90, 90],
    rng: intRng(1, 2),
    want: "w1",
  },
  {
    // a100-7b priors: 0.09 ms per token. w0 10 + 72 = 82; w1 + 2 × 72 + 5 = 231.
    name: "without load (assumed figures) the engine queue still counts",
    candidates: [
      withEngine(cand(0, 0), eng()),
      withEngine(cand(1, 0), eng({ waiting: 2 })),
    ],
    costs: [82, 231],
    want: "w0",
  },
  {
    name: "NaN, negative and infinite figures read as absent",
    candidates: [
      withEngine(cand(0, 0, load()), eng({ waiting: NaN, running: -3, kvUsage: Infinity })),
      withEngine(cand(1, 0, load()), eng({ waiting: undefined, kvUsage: NaN })),
    ],
    costs: [90, 90],
    rng: intRng(0, 2),
    want: "w0",
  },
];

for (const c of ENGINE_CASES) {
  Deno.test(`costaware, engine signals: ${c.name}`, () => {
    const s = new CostAwareStrategy(PARAMS);
    const x = ctxAt(c.candidates, 100, c.now ?? 1000, c.rng);
    const costs = s.costs(x);
    costs.forEach((v, i) => assert.ok(Math.abs(v - c.costs[i]) < 1e-9, `cost ${i}: ${v}`));
    const d = s.pick(x);
    assert.equal(d?.candidate.id, c.want);
    assert.equal(d?.reason, "min-cost");
  });
}

Deno.test("costaware: without engine signals the costs are exactly the plain ones", () => {
  const s = new CostAwareStrategy(PARAMS);
  const base = [
    cand(0, 80, load({ pendingPrefillTokens: 500, prefilling: 2, decoding: 3 }), 5),
    cand(1, 10, undefined, 2),
  ];
  const plain = s.costs(ctxAt(base, 100, 1000));
  // Signals that agree with the router's count add nothing either.
  const agreeing = [
    withEngine(base[0], eng({ waiting: 2, running: 5, kvUsage: 0.9 })),
    withEngine(base[1], eng({ waiting: 1, running: 1 })),
  ];
  assert.deepEqual(s.costs(ctxAt(agreeing, 100, 1000)), plain);
});

Deno.test("engineExtraMs: by hand", () => {
  const l = load();
  assert.equal(engineExtraMs(l, eng(), 0, 800), 0);
  assert.equal(engineExtraMs(l, eng({ waiting: 1 }), 0, 800), 80 + 5);
  // Busy already (decoding): no extra half step.
  assert.equal(engineExtraMs(load({ decoding: 1 }), eng({ waiting: 1 }), 1, 800), 80);
  assert.equal(engineExtraMs(l, eng({ kvUsage: 0.9 }), 0, 800), 0);
  assert.ok(Math.abs(engineExtraMs(l, eng({ kvUsage: 0.99 }), 0, 800) - 72) < 1e-9);
  assert.equal(engineExtraMs(l, eng({ waiting: 5 }), 0, 0), 5, "no tokens: only the half step");
});

Deno.test("costaware: the delay a large prefill adds to requests about to arrive there", () => {
  // W = 200 ms pending there, D = 2000 tokens ÷ 10 = 200 ms: λ · D · (W + D / 2).
  const l = load({ pendingPrefillTokens: 2000, prefilling: 1 });
  assert.equal(futureDelayMs(l, 2000, 0.01), 0.01 * 200 * (200 + 100));
  assert.equal(futureDelayMs(l, 0, 0.01), 0);
  assert.equal(futureDelayMs(l, 2000, 0), 0);
});

Deno.test("costaware: with frequent arrivals, a long session stays on its busy worker rather than moving", () => {
  // The request: 4000 tokens, 3600 of them cached on w0, where 3000 tokens are pending for 4
  // requests. Staying: 355 ms own TTFT + 4 × 40 ms of delay to those queued there = 515 ms;
  // moving to idle w1: 410 ms, but a 400 ms prefill there.
  const mk = (opts: Record<string, number>) =>
    new CostAwareStrategy({ ...PARAMS, options: { ...PARAMS.options, ...opts } });
  const cands = () => [
    cand(0, 450, load({ pendingPrefillTokens: 3000, prefilling: 4, decoding: 2 }), 6),
    cand(1, 0, load()),
  ];
  // Without the future term the others queued on w0 tip it.
  const greedy = mk({ future_weight: 0 });
  const first = greedy.pick(ctx(cands(), 500, noRng, 0))!;
  assert.equal(first.candidate.id, "w1");
  // With it, and a pick every 100 ms, half of them to each worker (sessions live on both; about equal rates), moving
  // lands a 400 ms prefill where requests are about to come back: λ · 400 · 200 against
  // λ · 40 · (300 + 20) for staying.
  const s = mk({});
  const idle = (m0: number, m1: number) => [cand(0, m0, load()), cand(1, m1, load())];
  for (let t = 0; t < 2000; t += 100) {
    s.pick(ctx(t % 200 === 0 ? idle(500, 0) : idle(0, 500), 500, noRng, t));
  }
  const [stay, move] = s.costs(ctx(cands(), 500, noRng, 2000));
  assert.ok(stay > 515.2 && move > 410, `${stay} ${move}`);
  const lambda = (stay - 515.2) / (40 * 320);
  const moveLambda = (move - 410) / (400 * 200);
  assert.ok(Math.abs(moveLambda / lambda - 1) < 0.2, `arrival rates ${lambda} and ${moveLambda}`);
  assert.equal(s.pick(ctx(cands(), 500, noRng, 2000))!.candidate.id, "w0");
});

Deno.test("costaware: a prefix recorded but not yet prefilled counts as pending work there, not as cached", () => {
  // The first of two requests with one new 3600-token prefix went to w0 and is still prefilling:
  // its tokens are pending there until its first token.
  const tracker = new LoadTracker({ workers: 2 });
  const first = tracker.onDispatch(0, 4000, 0);
  const s = new CostAwareStrategy({ ...PARAMS, options: { others_weight: 1, future_weight: 0 } });
  const pick = () =>
    s.pick(ctx([cand(0, 450, tracker.load(0), 1), cand(1, 0, tracker.load(1))], 500, noRng))!;
  // The follower would wait for the whole 4000-token prefill on w0, then its own 400: the idle
  // worker, prefilling all 4000 itself, is faster.
  assert.equal(pick().candidate.id, "w1");
  // Once the first token came, the prefix is cached: the follower joins it.
  tracker.onFirstToken(first, 400);
  assert.equal(pick().candidate.id, "w0");
});

Deno.test("costaware: a worker whose known KV budget the request would fill pays the preemption risk", () => {
  // 1000 chunks of 8 tokens = 8000 tokens of KV. w0 has 7500 prompt tokens in flight: 800 more
  // make 104% (risk 1: the whole 800-token prefill again, 80 ms); w1 has 1000 (22%: none).
  const busy = load({ activeTokens: 7500, decoding: 1 });
  const light = load({ activeTokens: 1000, decoding: 1 });
  assert.equal(kvPressureMs(busy, 8000, 800), 80);
  assert.equal(kvPressureMs(light, 8000, 800), 0);
  assert.equal(kvPressureMs(busy, 0, 800), 0, "no budget, no figure");
  const withBudget = (c: Candidate) => ({ ...c, capacityChunks: 1000 });
  const s = new CostAwareStrategy(PARAMS);
  // w0 holds 20 of the 100 chunks: 160 tokens (16 ms) cheaper, but 80 ms of risk.
  const d = s.pick(ctx([withBudget(cand(0, 20, busy, 1)), withBudget(cand(1, 0, light, 1))], 100));
  assert.equal(d!.candidate.id, "w1");
  // Unbounded workers (kv_budget 0): no risk priced, the cache wins.
  assert.equal(s.pick(ctx([cand(0, 20, busy, 1), cand(1, 0, light, 1)], 100))!.candidate.id, "w0");
});
