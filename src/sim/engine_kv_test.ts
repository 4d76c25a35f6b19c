import assert from "node:assert/strict";
import { blockHashes } from "../precise/block_hash.ts";
import { BlockIndex } from "../precise/block_index.ts";
import { ManualClock } from "../util/clock.ts";
import { TEST_ENGINE_PARAMS } from "./testing.ts";
import type { KvEvent } from "../kv_events/types.ts";
import { answerText, EngineModel } from "./engine.ts";
import { pseudoTokenIds } from "./token_ids.ts";
import type { EngineParams } from "./types.ts";

const BASE: EngineParams = { ...TEST_ENGINE_PARAMS, maxModelLen: 4096 };

function text(tag: string, n: number): string {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `${tag}-${i};`;
  return s.slice(0, n);
}

/** Runs the engine until idle, feeding every step's KV events to `sink`. */
function drain(e: EngineModel, sink: (evs: readonly KvEvent[]) => void, t = 0): number {
  for (let r = e.step(t); r !== undefined; r = e.step(t)) {
    sink(r.kvEvents);
    t = r.endMs;
  }
  return t;
}

function ids(prompt: string): Uint32Array {
  return pseudoTokenIds(new TextEncoder().encode(prompt));
}

Deno.test("kv events: an index fed the engine's events holds exactly what the engine caches", () => {
  const e = new EngineModel({ ...BASE, capacityBlocks: 120, maxModelLen: 1900 }, {
    kvEvents: true,
    seed: 3,
  });
  const index = new BlockIndex({ clock: new ManualClock(0) });
  const feed = (evs: readonly KvEvent[]) => index.apply("w", evs);
  const shared = text("sys", 1200);
  const prompts = Array.from({ length: 8 }, (_, i) => shared + text(`u${i}`, 600 + 40 * i));
  let t = 0;
  let removed = 0;
  for (const p of prompts) {
    e.submit({ prompt: p, maxTokens: 40 });
    t = drain(e, (evs) => {
      removed += evs.filter((x) => x.type === "BlockRemoved").length;
      feed(evs);
    }, t);
    // Every block the engine holds was announced, and nothing else.
    assert.equal(index.blocks("w"), e.stats().cachedBlocks);
  }
  assert.ok(removed > 0, "the small cache evicted, and each eviction was announced");
  assert.equal(removed, e.stats().evictedBlocks);
  assert.equal(index.stats().orphans, 0);
  for (const p of prompts) {
    const matched = index.match("w", blockHashes(ids(p), 16)) * 16;
    const n = ids(p).length;
    // The engine's own hit (capped for the last token) equals the index's match, capped alike.
    assert.equal(e.peekCachedTokens(p), Math.min(matched, Math.floor((n - 1) / 16) * 16));
  }
});

Deno.test("kv events: BlockStored carries token ids, parent, block size, medium; LoRA apart", () => {
  const e = new EngineModel(BASE, { kvEvents: true, answerLength: { kind: "fixed", tokens: 1 } });
  const p = text("p", 400); // 100 tokens: 6 full blocks
  e.submit({ prompt: p, maxTokens: 1 });
  const stored: KvEvent[] = [];
  drain(e, (evs) => stored.push(...evs));
  assert.equal(stored.length, 1);
  const s = stored[0];
  assert.ok(s.type === "BlockStored");
  assert.equal(s.blockHashes.length, 12);
  assert.equal(s.parentBlockHash, null);
  assert.equal(s.blockSize, 16);
  assert.equal(s.medium, "GPU");
  assert.equal(s.loraName, null);
  assert.deepEqual(s.tokenIds, Array.from(ids(p).subarray(0, 96)));

  const lora = { name: "sql", id: 1 };
  e.submit({ prompt: p, maxTokens: 1, lora });
  const more: KvEvent[] = [];
  drain(e, (evs) => more.push(...evs), 100);
  const l = more.find((x) => x.type === "BlockStored");
  assert.ok(l !== undefined && l.type === "BlockStored");
  assert.equal(l.loraName, "sql");
  assert.equal(l.loraId, 1);
  assert.notDeepEqual(Array.from(l.blockHashes), Array.from(s.blockHashes), "LoRA in the hash");
  const index = new BlockIndex({ clock: new ManualClock(0) });
  index.apply("w", [...stored, ...more]);
  assert.equal(index.match("w", blockHashes(ids(p), 16)), 6);
  assert.equal(index.match("w", blockHashes(ids(p), 16, { loraName: "sql" })), 6);
  assert.equal(index.match("w", blockHashes(ids(p), 16, { loraName: "other" })), 0);
});

Deno.test("kv events: a follow-up's BlockStored chains on the parent it extends", () => {
  const e = new EngineModel(BASE, { kvEvents: true, answerLength: { kind: "max" } });
  const index = new BlockIndex({ clock: new ManualClock(0) });
  const p1 = text("conversation", 700) + "assistant:";
  e.submit({ prompt: p1, maxTokens: 20 });
  let t = drain(e, (evs) => index.apply("w", evs));
  const p2 = p1 + answerText(20) + "\nuser:more\nassistant:";
  e.submit({ prompt: p2, maxTokens: 4 });
  t = drain(e, (evs) => index.apply("w", evs), t);
  assert.equal(index.stats().orphans, 0);
  assert.equal(index.blocks("w"), e.stats().cachedBlocks);
  const n = ids(p2).length;
  assert.equal(index.match("w", blockHashes(ids(p2), 16)), Math.floor(n / 16));
  // The second request reused the first's prompt and answer blocks (the answer's last token has
  // no KV), so it announced only the rest.
  assert.equal(
    e.peekCachedTokens(p1 + answerText(20)),
    Math.floor((ids(p1).length + 19) / 16) * 16,
  );
});

Deno.test("kv events: reset empties the cache with AllBlocksCleared, refused while blocks are in use", () => {
  const e = new EngineModel(BASE, { kvEvents: true, answerLength: { kind: "max" } });
  const index = new BlockIndex({ clock: new ManualClock(0) });
  e.submit({ prompt: text("a", 800), maxTokens: 50 });
  const r = e.step(0)!;
  index.apply("w", r.kvEvents);
  assert.ok(index.blocks("w") > 0);
  assert.equal(e.resetPrefixCache(), false, "a running sequence holds blocks");
  assert.deepEqual(e.takeKvEvents(), []);
  assert.equal(e.resetPrefixCache(true), true, "preempting the running sequences first");
  const cleared = e.takeKvEvents();
  assert.deepEqual(cleared, [{ type: "AllBlocksCleared", medium: null }]);
  index.apply("w", cleared);
  assert.equal(index.blocks("w"), 0);
  assert.equal(e.stats().cachedBlocks, 0);
  assert.equal(e.stats().preemptions, 1);
  drain(e, (evs) => index.apply("w", evs), r.endMs);
  assert.equal(index.blocks("w"), e.stats().cachedBlocks, "the recomputed blocks are announced");
  assert.equal(e.resetPrefixCache(), true);
  assert.equal(e.stats().cachedBlocks, 0);
});

Deno.test("kv events: nothing is collected unless asked for", () => {
  const e = new EngineModel(BASE);
  e.submit({ prompt: text("a", 400), maxTokens: 2 });
  for (let r = e.step(0), t = 0; r !== undefined; t = r.endMs, r = e.step(t)) {
    assert.deepEqual(r.kvEvents, []);
  }
  assert.equal(e.resetPrefixCache(), true);
  assert.deepEqual(e.takeKvEvents(), []);
});
