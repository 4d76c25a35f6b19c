import assert from "node:assert/strict";
import { answerText, EngineError, EngineModel } from "./engine.ts";
import { getProfile } from "./profiles.ts";
import type { EngineEvent, EngineParams } from "./types.ts";

const BASE: EngineParams = {
  blockSize: 16,
  bytesPerToken: 4,
  capacityBlocks: 10_000,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 8192,
  maxModelLen: 32_768,
  stepOverheadMs: 10,
  prefillMsPerToken: 0.1,
  prefillMsPerTokenContext: 0,
  decodeMsPerSeq: 0.1,
  decodeMsPerContextToken: 0,
};

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
  const e = new EngineModel(BASE);
  const prompt = text("p", 1000); // 250 tokens: 15 full blocks + 10 tokens
  const cold = run(e, prompt);
  assert.equal(cold.done.promptTokens, 250);
  assert.equal(cold.done.cachedTokens, 0);
  const warm = run(e, prompt, 4, cold.end);
  assert.equal(warm.done.cachedTokens, Math.floor(250 / 16) * 16); // 240
  assert.equal(warm.done.completionTokens, 4);
});

Deno.test("exact-multiple prompt: the last block is still computed, as vLLM does", () => {
  const e = new EngineModel(BASE);
  const prompt = text("x", 1024); // 256 tokens = 16 full blocks
  const cold = run(e, prompt);
  const warm = run(e, prompt, 4, cold.end);
  assert.equal(warm.done.promptTokens, 256);
  assert.equal(warm.done.cachedTokens, 15 * 16);
});

Deno.test("a different prompt shares only its common full blocks", () => {
  const e = new EngineModel(BASE);
  const common = text("shared", 650); // 10 full 64-byte blocks + 10 bytes
  const a = run(e, common + text("a", 400));
  const b = run(e, common + text("b", 400), 4, a.end);
  assert.equal(b.done.cachedTokens, 10 * 16);
  const c = run(e, text("other", 1000), 4, b.end);
  assert.equal(c.done.cachedTokens, 0);
});

Deno.test("eviction under a small capacity drops least-recently-used blocks", () => {
  // 352 bytes = 88 tokens: 5 full blocks hashed, 6 reserved with one output token.
  const params = { ...BASE, capacityBlocks: 16 };
  const [A, B, C, D] = ["A", "B", "C", "D"].map((t) => text(t, 352));
  {
    const e = new EngineModel(params);
    let t = 0;
    for (const p of [A, B, C, D]) t = run(e, p, 1, t).end;
    // A was the least recently used: D's reservation evicted all 5 of its blocks.
    assert.equal(e.peekCachedTokens(A), 0);
    assert.equal(e.peekCachedTokens(B), 80);
    assert.equal(e.stats().evictedBlocks, 5);
  }
  {
    // Same, but A is used again after B: B is now the least recently used.
    const e = new EngineModel(params);
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
    const e = new EngineModel({ ...params, capacityBlocks: 14 });
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
  const e = new EngineModel({ ...BASE, capacityBlocks: 12 });
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
  const e = new EngineModel(getProfile("a100-7b").params);
  const prompt = text("system", 6144) + "user: hello\nassistant:";
  const cold = run(e, prompt, 8);
  const warm = run(e, prompt, 8, cold.end + 1000);
  assert.ok(warm.done.cachedTokens > 1500);
  assert.ok(warm.ttft < cold.ttft / 3, `warm ${warm.ttft} ms vs cold ${cold.ttft} ms`);
});

Deno.test("chunked prefill spreads a long prompt over steps within the token budget", () => {
  const e = new EngineModel({ ...BASE, maxNumBatchedTokens: 256 });
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
  const e = new EngineModel({ ...BASE, maxNumSeqs: 1 });
  const a = e.submit({ prompt: text("a", 400), maxTokens: 3 });
  const b = e.submit({ prompt: text("b", 400), maxTokens: 3 });
  const { events } = drain(e);
  const doneA = events.find((ev) => ev.id === a && ev.kind === "done")!;
  const firstB = events.find((ev) => ev.id === b && ev.kind === "first_token")!;
  assert.ok(firstB.timeMs > doneA.timeMs);
  // Continuous batching with room: b joins while a decodes.
  const e2 = new EngineModel(BASE);
  const a2 = e2.submit({ prompt: text("a", 400), maxTokens: 3 });
  const b2 = e2.submit({ prompt: text("b", 400), maxTokens: 3 });
  const ev2 = drain(e2).events;
  assert.equal(
    ev2.find((ev) => ev.id === a2 && ev.kind === "first_token")!.timeMs,
    ev2.find((ev) => ev.id === b2 && ev.kind === "first_token")!.timeMs,
  );
});

Deno.test("events: first_token, tokens with index, done with usage; answer text is stable", () => {
  const e = new EngineModel(BASE);
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
  const e = new EngineModel(BASE);
  const p1 = text("conv", 640) + "assistant:"; // 162 tokens
  const r1 = run(e, p1, 64);
  const p2 = p1 + answerText(64) + "\nuser:" + text("next", 300) + "\nassistant:";
  const r2 = run(e, p2, 4, r1.end);
  // Prompt blocks (10) plus answer blocks: (162 + 63) / 16 = 14 full blocks with KV.
  assert.equal(r2.done.cachedTokens, 14 * 16);
});

Deno.test("two sequences prefilling the same blocks in one step both get their answers cached", () => {
  const e = new EngineModel(BASE);
  const system = text("system", 1600);
  const pa = system + "user:" + text("question a", 200) + "\nassistant:";
  const pb = system + "user:" + text("question b", 200) + "\nassistant:";
  e.submit({ prompt: pa, maxTokens: 40 });
  e.submit({ prompt: pb, maxTokens: 40 }); // same step: b's system blocks stay private copies
  drain(e);
  const tokens = (p: string) => Math.floor(new TextEncoder().encode(p).length / 4);
  for (const p of [pa, pb]) {
    const next = p + answerText(40) + "\nuser:more\nassistant:";
    // Every full block with KV, the answer's included: (prompt + 39) / 16 blocks.
    assert.equal(e.peekCachedTokens(next), Math.floor((tokens(p) + 39) / 16) * 16);
  }
});

Deno.test("cancel frees a sequence's blocks; requests that can never fit are rejected", () => {
  const e = new EngineModel({ ...BASE, capacityBlocks: 64, maxModelLen: 2048 });
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
