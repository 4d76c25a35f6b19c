import assert from "node:assert/strict";
import { answerText, EngineError, EngineModel, type EngineOptions } from "./engine.ts";
import { getProfile } from "./profiles.ts";
import { TEST_ENGINE_PARAMS } from "./testing.ts";
import type { EngineEvent, EngineParams } from "./types.ts";

const BASE: EngineParams = TEST_ENGINE_PARAMS;

/** Answers that run to max_tokens, for tests whose expectations count tokens. */
const FULL: EngineOptions = { answerLength: { kind: "max" } };

/** Runs steps back to back from `t` until idle; returns the events and the end time. */
function drain(engine: EngineModel, t = 0): { events: EngineEvent[]; end: number } {
  const events: EngineEvent[] = [];
  for (let i = 0; i < 100_000; i++) {
    const r = engine.step(t);
    if (r === undefined) return { events, end: t };
    events.push(...r.events);
    t = r.endMs;
  }
  throw new Error("engine did not go idle");
}

/** Submits one request, drains, returns its done event and first-token time. */
function run(engine: EngineModel, prompt: string, maxTokens = 4, t = 0) {
  const id = engine.submit({ prompt, maxTokens });
  const { events, end } = drain(engine, t);
  const mine = events.filter((e) => e.id === id);
  const first = mine.find((e) => e.kind === "first_token");
  const done = mine.find((e) => e.kind === "done");
  assert.ok(first && done, "request finished");
  return { first, done, ttft: first.timeMs - t, end, events: mine };
}

/** `n` ASCII bytes of deterministic text tagged by `tag`. */
function text(tag: string, n: number): string {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `${tag}-${i};`;
  return s.slice(0, n);
}

Deno.test("repeated prompt on an idle engine reuses every full block", () => {
  const e = new EngineModel(BASE, FULL);
  const prompt = text("p", 1000); // 250 tokens: 15 full blocks + 10 tokens
  const cold = run(e, prompt);
  assert.equal(cold.done.promptTokens, 250);
  assert.equal(cold.done.cachedTokens, 0);
  const warm = run(e, prompt, 4, cold.end);
  assert.equal(warm.done.cachedTokens, Math.floor(250 / 16) * 16); // 240
  assert.equal(warm.done.completionTokens, 4);
});

Deno.test("exact-multiple prompt: the last block is still computed, as vLLM does", () => {
  const e = new EngineModel(BASE, FULL);
  const prompt = text("x", 1024); // 256 tokens = 16 full blocks
  const cold = run(e, prompt);
  const warm = run(e, prompt, 4, cold.end);
  assert.equal(warm.done.promptTokens, 256);
  assert.equal(warm.done.cachedTokens, 15 * 16);
});

Deno.test("a different prompt shares only its common full blocks", () => {
  const e = new EngineModel(BASE, FULL);
  const common = text("shared", 650); // 10 full 64-byte blocks + 10 bytes
  const a = run(e, common + text("a", 400));
  const b = run(e, common + text("b", 400), 4, a.end);
  assert.equal(b.done.cachedTokens, 10 * 16);
  const c = run(e, text("other", 1000), 4, b.end);
  assert.equal(c.done.cachedTokens, 0);
});

Deno.test("eviction under a small capacity drops least-recently-used blocks", () => {
  // 352 bytes = 88 tokens: 5 full blocks hashed, 6 reserved with one output token.
  const params = { ...BASE, capacityBlocks: 16, maxModelLen: 256 };
  const [A, B, C, D] = ["A", "B", "C", "D"].map((t) => text(t, 352));
  {
    const e = new EngineModel(params, FULL);
    let t = 0;
    for (const p of [A, B, C, D]) t = run(e, p, 1, t).end;
    // A was the least recently used: D's reservation evicted all 5 of its blocks.
    assert.equal(e.peekCachedTokens(A), 0);
    assert.equal(e.peekCachedTokens(B), 80);
    assert.equal(e.stats().evictedBlocks, 5);
  }
  {
    // Same, but A is used again after B: B is now the least recently used.
    const e = new EngineModel(params, FULL);
    let t = 0;
    for (const p of [A, B]) t = run(e, p, 1, t).end;
    const again = run(e, A, 1, t);
    assert.equal(again.done.cachedTokens, 80);
    t = again.end;
    for (const p of [C, D]) t = run(e, p, 1, t).end;
    assert.equal(e.peekCachedTokens(B), 0);
    assert.equal(e.peekCachedTokens(A), 80);
  }
  {
    // Partial eviction takes a prefix's tail first, so its head stays reusable.
    const e = new EngineModel({ ...params, capacityBlocks: 14, maxModelLen: 224 }, FULL);
    let t = 0;
    for (const p of [A, B]) t = run(e, p, 1, t).end;
    // 10 hashed, 4 free; C needs 6: evicts A's last two blocks.
    t = run(e, C, 1, t).end;
    assert.equal(e.peekCachedTokens(A), 48);
    assert.ok(e.isBlockCached(A, 2));
    assert.ok(!e.isBlockCached(A, 3));
  }
});

Deno.test("pinned blocks of a running sequence are not evicted", () => {
  const e = new EngineModel({ ...BASE, capacityBlocks: 12, maxModelLen: 192 }, FULL);
  const A = text("A", 352);
  e.submit({ prompt: A, maxTokens: 8 }); // 6 blocks reserved
  let t = e.step(0)!.endMs; // A prefilled, its 5 blocks pinned
  e.submit({ prompt: text("B", 352), maxTokens: 8 });
  e.submit({ prompt: text("C", 352), maxTokens: 8 });
  const r = e.step(t)!; // B admitted (6 free), C must wait: A's blocks are pinned
  t = r.endMs;
  assert.equal(e.stats().running, 2);
  assert.equal(e.stats().waiting, 1);
  assert.equal(e.stats().evictedBlocks, 0);
  drain(e, t);
  assert.equal(e.stats().requestsFinished, 3);
});

Deno.test("TTFT of a cached prompt is lower than cold on the model's clock", () => {
  const e = new EngineModel(getProfile("a100-7b").params, FULL);
  const prompt = text("system", 6144) + "user: hello\nassistant:";
  const cold = run(e, prompt, 8);
  const warm = run(e, prompt, 8, cold.end + 1000);
  assert.ok(warm.done.cachedTokens > 1500);
  assert.ok(warm.ttft < cold.ttft / 3, `warm ${warm.ttft} ms vs cold ${cold.ttft} ms`);
});

Deno.test("chunked prefill spreads a long prompt over steps within the token budget", () => {
  const e = new EngineModel({ ...BASE, maxNumBatchedTokens: 256 }, FULL);
  const id = e.submit({ prompt: text("long", 4000), maxTokens: 2 }); // 1000 tokens
  const steps: number[] = [];
  let t = 0;
  for (;;) {
    const r = e.step(t);
    if (!r) break;
    assert.ok(r.batchedTokens <= 256);
    steps.push(r.batchedTokens);
    t = r.endMs;
    if (r.events.some((ev) => ev.id === id && ev.kind === "first_token")) break;
  }
  assert.deepEqual(steps, [256, 256, 256, 232]);
});

Deno.test("max_num_seqs queues requests until a sequence finishes", () => {
  const e = new EngineModel({ ...BASE, maxNumSeqs: 1 }, FULL);
  const a = e.submit({ prompt: text("a", 400), maxTokens: 3 });
  const b = e.submit({ prompt: text("b", 400), maxTokens: 3 });
  const { events } = drain(e);
  const doneA = events.find((ev) => ev.id === a && ev.kind === "done")!;
  const firstB = events.find((ev) => ev.id === b && ev.kind === "first_token")!;
  assert.ok(firstB.timeMs > doneA.timeMs);
  // Continuous batching with room: b joins while a decodes.
  const e2 = new EngineModel(BASE, FULL);
  const a2 = e2.submit({ prompt: text("a", 400), maxTokens: 3 });
  const b2 = e2.submit({ prompt: text("b", 400), maxTokens: 3 });
  const ev2 = drain(e2).events;
  assert.equal(
    ev2.find((ev) => ev.id === a2 && ev.kind === "first_token")!.timeMs,
    ev2.find((ev) => ev.id === b2 && ev.kind === "first_token")!.timeMs,
  );
});

Deno.test("events: first_token, tokens with index, done with usage; answer text is stable", () => {
  const e = new EngineModel(BASE, FULL);
  const r = run(e, text("q", 200), 5);
  assert.deepEqual(r.events.map((ev) => ev.kind), [
    "first_token",
    "token",
    "token",
    "token",
    "token",
    "done",
  ]);
  assert.equal(r.events.slice(0, 5).map((ev) => ev.text).join(""), answerText(5));
  assert.equal(r.done.finishReason, "length");
  assert.equal(r.done.completionTokens, 5);
});

Deno.test("the answer's blocks are cached under the prompt + answer chain", () => {
  const e = new EngineModel(BASE, FULL);
  const p1 = text("conv", 640) + "assistant:"; // 162 tokens
  const r1 = run(e, p1, 64);
  const p2 = p1 + answerText(64) + "\nuser:" + text("next", 300) + "\nassistant:";
  const r2 = run(e, p2, 4, r1.end);
  // Prompt blocks (10) plus answer blocks: (162 + 63) / 16 = 14 full blocks with KV.
  assert.equal(r2.done.cachedTokens, 14 * 16);
});

Deno.test("two sequences prefilling the same blocks in one step both get their answers cached", () => {
  for (const prefixSharing of ["v1", "v0"] as const) {
    const e = new EngineModel(BASE, { ...FULL, prefixSharing });
    const system = text("system", 1600);
    const pa = system + "user:" + text("question a", 200) + "\nassistant:";
    const pb = system + "user:" + text("question b", 200) + "\nassistant:";
    e.submit({ prompt: pa, maxTokens: 40 });
    e.submit({ prompt: pb, maxTokens: 40 }); // same step (v0: b's system blocks private copies)
    drain(e);
    const tokens = (p: string) => Math.floor(new TextEncoder().encode(p).length / 4);
    for (const p of [pa, pb]) {
      const next = p + answerText(40) + "\nuser:more\nassistant:";
      // Every full block with KV, the answer's included: (prompt + 39) / 16 blocks.
      assert.equal(e.peekCachedTokens(next), Math.floor((tokens(p) + 39) / 16) * 16, prefixSharing);
    }
  }
});

Deno.test("same-step prefix: v1 computes a new shared prefix once, v0 once per request", () => {
  const system = text("system", 1600); // 25 full blocks = 400 tokens
  const pa = system + text("question a", 200); // 450 tokens
  const pb = system + text("question b", 200);
  const cases = [
    { sharing: "v1", cachedB: 400, firstStepTokens: 450 + 50 },
    { sharing: "v0", cachedB: 0, firstStepTokens: 450 + 450 },
  ] as const;
  for (const c of cases) {
    const e = new EngineModel(BASE, { ...FULL, prefixSharing: c.sharing });
    const a = e.submit({ prompt: pa, maxTokens: 2 });
    const b = e.submit({ prompt: pb, maxTokens: 2 });
    const first = e.step(0)!;
    assert.equal(first.batchedTokens, c.firstStepTokens, c.sharing);
    const done = drain(e, first.endMs).events.filter((ev) => ev.kind === "done");
    assert.equal(done.find((ev) => ev.id === a)!.cachedTokens, 0, c.sharing);
    assert.equal(done.find((ev) => ev.id === b)!.cachedTokens, c.cachedB, c.sharing);
    assert.equal(e.stats().prefixCacheHits, c.cachedB, c.sharing);
  }
});

Deno.test("answer lengths: end of sequence below max_tokens, per-request lengths honoured", () => {
  const cases: Array<{
    name: string;
    opts: EngineOptions;
    req: { maxTokens: number; outputTokens?: number; ignoreEos?: boolean; minTokens?: number };
    lengths: (n: number[]) => void;
    reason: "stop" | "length" | "mixed";
  }> = [
    {
      name: "geometric:50, max 1000",
      opts: { answerLength: { kind: "geometric", mean: 50 } },
      req: { maxTokens: 1000 },
      lengths: (n) => {
        const mean = n.reduce((x, y) => x + y, 0) / n.length;
        assert.ok(mean > 35 && mean < 65, `mean ${mean}`);
        assert.ok(new Set(n).size > 20, "lengths vary");
      },
      reason: "stop",
    },
    {
      name: "default model, max 4000: well below the cap",
      opts: {},
      req: { maxTokens: 4000 },
      lengths: (n) => assert.ok(n.reduce((x, y) => x + y, 0) / n.length < 400),
      reason: "mixed",
    },
    {
      name: "capped at max_tokens",
      opts: { answerLength: { kind: "fixed", tokens: 500 } },
      req: { maxTokens: 30 },
      lengths: (n) => assert.ok(n.every((x) => x === 30)),
      reason: "length",
    },
    {
      name: "outputTokens from the trace",
      opts: { answerLength: { kind: "geometric", mean: 5 } },
      req: { maxTokens: 100, outputTokens: 17 },
      lengths: (n) => assert.ok(n.every((x) => x === 17)),
      reason: "stop",
    },
    {
      name: "outputTokens over max_tokens",
      opts: {},
      req: { maxTokens: 12, outputTokens: 5000 },
      lengths: (n) => assert.ok(n.every((x) => x === 12)),
      reason: "length",
    },
    {
      name: "ignore_eos",
      opts: { answerLength: { kind: "fixed", tokens: 3 } },
      req: { maxTokens: 21, ignoreEos: true },
      lengths: (n) => assert.ok(n.every((x) => x === 21)),
      reason: "length",
    },
    {
      name: "min_tokens",
      opts: { answerLength: { kind: "fixed", tokens: 3 } },
      req: { maxTokens: 100, minTokens: 9 },
      lengths: (n) => assert.ok(n.every((x) => x === 9)),
      reason: "stop",
    },
  ];
  for (const c of cases) {
    const e = new EngineModel(BASE, c.opts);
    const ids = new Set<number>();
    for (let i = 0; i < 200; i++) ids.add(e.submit({ prompt: text(`q${i}`, 200), ...c.req }));
    const done = drain(e).events.filter((ev) => ev.kind === "done" && ids.has(ev.id));
    assert.equal(done.length, 200, c.name);
    const n = done.map((ev) => ev.completionTokens);
    assert.ok(n.every((x) => x >= 1 && x <= c.req.maxTokens), c.name);
    c.lengths(n);
    for (const ev of done) {
      const expected = ev.completionTokens === c.req.maxTokens ? "length" : "stop";
      assert.equal(ev.finishReason, expected, c.name);
      if (c.reason !== "mixed") assert.equal(ev.finishReason, c.reason, c.name);
    }
  }
});

Deno.test("blocks grow as decoding proceeds, not reserved for max_tokens up front", () => {
  const e = new EngineModel(BASE, FULL);
  const id = e.submit({ prompt: text("g", 400), maxTokens: 4000 }); // 100 tokens
  let t = e.step(0)!.endMs;
  assert.equal(e.blocksOf(id), 7); // ceil(100 / 16), not ceil(4100 / 16)
  const seen: number[] = [];
  for (let i = 0; i < 60; i++) {
    t = e.step(t)!.endMs;
    seen.push(e.blocksOf(id));
  }
  // After 60 more tokens, 160 tokens have KV (the 61st sampled has none yet): 10 blocks.
  assert.equal(seen.at(-1), 10);
  assert.deepEqual([...new Set(seen)], [7, 8, 9, 10]);
  // A 1 k-token request behind it starts at once (vLLM V1), not after 4 000 tokens of reservation.
  const e2 = new EngineModel({ ...BASE, capacityBlocks: 300, maxModelLen: 4800 }, FULL);
  e2.submit({ prompt: text("long", 400), maxTokens: 4000 });
  e2.step(0);
  const late = e2.submit({ prompt: text("short", 4000), maxTokens: 1 });
  const r = e2.step(1000)!;
  assert.ok(r.events.some((ev) => ev.id === late && ev.kind === "first_token"));
});

Deno.test("preemption by recompute: the newest running sequence goes back, then completes", () => {
  // 20 blocks (320 tokens); two 64-token prompts with 200-token answers need 17 blocks each.
  const params = { ...BASE, capacityBlocks: 20, maxModelLen: 320 };
  const e = new EngineModel(params, FULL);
  const old = e.submit({ prompt: text("old", 256), maxTokens: 200 });
  const young = e.submit({ prompt: text("young", 256), maxTokens: 200 });
  const { events } = drain(e);
  const done = (id: number) => events.find((ev) => ev.id === id && ev.kind === "done")!;
  assert.ok(e.stats().preemptions >= 1, "a preemption happened");
  assert.equal(done(old).preemptions, 0, "the oldest is never the victim here");
  assert.ok(done(young).preemptions >= 1, "the newest was preempted");
  for (const id of [old, young]) {
    assert.equal(done(id).completionTokens, 200);
    // Each token reaches the client once, in order, although the young one was recomputed.
    const idx = events.filter((ev) => ev.id === id && ev.kind !== "done").map((ev) => ev.index);
    assert.deepEqual(idx, Array.from({ length: 200 }, (_, i) => i));
  }
  assert.equal(done(young).cachedTokens, 0, "cached_tokens is the first admission's");
  const s = e.stats();
  assert.equal(s.requestsFinished, 2);
  assert.equal(s.usedBlocks, 0);
  // The recompute looked its prompt + answer up again (a second query of the young sequence).
  assert.ok(s.prefixCacheQueries > 2 * 64, `queries ${s.prefixCacheQueries}`);
  // Without the pressure nothing is preempted.
  const roomy = new EngineModel({ ...params, capacityBlocks: 40, maxModelLen: 640 }, FULL);
  roomy.submit({ prompt: text("old", 256), maxTokens: 200 });
  roomy.submit({ prompt: text("young", 256), maxTokens: 200 });
  drain(roomy);
  assert.equal(roomy.stats().preemptions, 0);
});

Deno.test("max model len above what the cache holds is refused at construction", () => {
  assert.throws(
    () => new EngineModel({ ...BASE, capacityBlocks: 10, maxModelLen: 161 }),
    /max model len 161 is larger than .* KV cache \(160\)/,
  );
  assert.throws(() => new EngineModel(BASE, { prefixSharing: "v2" as "v1" }), /v0 or v1/);
});

Deno.test("cancel frees a sequence's blocks; requests that can never fit are rejected", () => {
  const e = new EngineModel({ ...BASE, capacityBlocks: 128, maxModelLen: 2048 }, FULL);
  const id = e.submit({ prompt: text("c", 800), maxTokens: 100 });
  e.step(0);
  assert.ok(e.stats().usedBlocks > 0);
  assert.ok(e.cancel(id));
  assert.equal(e.stats().usedBlocks, 0);
  assert.equal(e.hasWork(), false);
  assert.equal(e.cancel(id), false);
  assert.throws(() => e.submit({ prompt: text("big", 9000), maxTokens: 1 }), EngineError);
  assert.throws(
    () => e.submit({ prompt: text("ctx", 8000), maxTokens: 100 }),
    /maximum context length is 2048 tokens/,
  );
});
