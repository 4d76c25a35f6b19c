import assert from "node:assert/strict";
import fc from "fast-check";
import { ManualClock } from "../util/clock.ts";
import type { BlockRemoved, BlockStored, ExtraKey, KvEvent } from "../kv_events/types.ts";
import { BlockIndex } from "./block_index.ts";
import { blockHashes } from "./block_hash.ts";
import { PREDICTED, WorkerBlocks } from "./worker_blocks.ts";

const BS = 4;
const tokens = Array.from({ length: 40 }, (_, i) => 1000 + i); // 10 blocks

/** Engine hashes [0, n) as pairs (any values do: the index never reproduces them). */
function eng(...ids: number[]): Uint32Array {
  const out = new Uint32Array(ids.length * 2);
  ids.forEach((id, i) => {
    out[2 * i] = 0xe0000000;
    out[2 * i + 1] = id;
  });
  return out;
}

function stored(
  ids: number[],
  parent: number | null,
  toks: number[],
  more: Partial<BlockStored> = {},
): BlockStored {
  return {
    type: "BlockStored",
    blockHashes: eng(...ids),
    parentBlockHash: parent === null ? null : eng(parent),
    tokenIds: toks,
    blockSize: BS,
    loraId: null,
    medium: "GPU",
    loraName: null,
    extraKeys: null,
    groupIdx: null,
    locality: null,
    ...more,
  };
}

function removed(ids: number[], medium: string | null = "GPU"): BlockRemoved {
  return { type: "BlockRemoved", blockHashes: eng(...ids), medium, groupIdx: null };
}

function setup(opts: Partial<ConstructorParameters<typeof BlockIndex>[0]> = {}) {
  const clock = new ManualClock(1000);
  const index = new BlockIndex({ clock, ...opts });
  return { clock, index, req: blockHashes(tokens, BS) };
}

Deno.test("index: a root BlockStored matches the request's own block hashes", () => {
  const { index, req } = setup();
  index.apply("w", [stored([0, 1, 2], null, tokens.slice(0, 12))]);
  assert.equal(index.match("w", req), 3);
  assert.equal(index.match("other", req), 0);
  assert.equal(index.blocks("w"), 3);
});

Deno.test("index: child events chain from their parent (vLLM runs and SGLang single pages)", () => {
  const { index, req } = setup();
  index.apply("w", [
    stored([0, 1], null, tokens.slice(0, 8)),
    stored([2, 3], 1, tokens.slice(8, 16)),
  ]);
  for (let b = 4; b < 10; b++) {
    index.apply("w", [stored([b], b - 1, tokens.slice(b * BS, (b + 1) * BS))]);
  }
  assert.equal(index.match("w", req), 10);
});

Deno.test("index: a child whose parent is unknown is skipped and counted as orphans", () => {
  const { index, req } = setup();
  index.apply("w", [stored([5, 6], 4, tokens.slice(20, 28))]);
  assert.equal(index.blocks("w"), 0);
  assert.equal(index.stats().orphans, 2);
  assert.equal(index.match("w", req), 0);
});

Deno.test("index: eviction learned: BlockRemoved ends the match at the first missing block", () => {
  const { index, req } = setup();
  index.apply("w", [stored([0, 1, 2, 3, 4], null, tokens.slice(0, 20))]);
  assert.equal(index.match("w", req), 5);
  index.apply("w", [removed([4])]);
  assert.equal(index.match("w", req), 4);
  index.apply("w", [removed([1])]);
  assert.equal(index.match("w", req), 1);
  index.apply("w", [removed([99])]); // unknown: nothing happens
  assert.equal(index.stats().removed, 2);
});

Deno.test("index: AllBlocksCleared empties the worker; a tier clear keeps the other tiers", () => {
  const { index, req } = setup();
  index.apply("w", [
    stored([0, 1], null, tokens.slice(0, 8)),
    stored([0, 1], null, [], { medium: "CPU" }),
  ]);
  assert.deepEqual(index.matchTiers("w", req), {
    blocks: 2,
    gpu: 2,
    cpu: 0,
    other: 0,
    predicted: 0,
  });
  index.apply("w", [{ type: "AllBlocksCleared", medium: "GPU" }]);
  assert.deepEqual(index.matchTiers("w", req), {
    blocks: 2,
    gpu: 0,
    cpu: 2,
    other: 0,
    predicted: 0,
  });
  index.apply("w", [{ type: "AllBlocksCleared", medium: null }]);
  assert.equal(index.match("w", req), 0);
});

Deno.test("index: matchTiers splits by the best tier (GPU, CPU, other, predicted)", () => {
  const { index, req } = setup();
  index.apply("w", [stored([0, 1, 2, 3], null, tokens.slice(0, 16))]);
  index.apply("w", [stored([2, 3], null, [], { medium: "CPU" }), removed([2, 3], "GPU")]);
  index.apply("w", [stored([4], 3, tokens.slice(16, 20), { medium: "DISK" })]);
  index.predict("w", req);
  assert.deepEqual(index.matchTiers("w", req), {
    blocks: 10,
    gpu: 2,
    cpu: 2,
    other: 1,
    predicted: 5,
  });
  assert.equal(index.match("w", req), 10);
});

Deno.test("index: predictions count until the TTL, then drop", () => {
  const { index, req, clock } = setup({ predictTtlMs: 2000 });
  index.predict("w", req.subarray(0, 6));
  assert.equal(index.match("w", req), 3);
  clock.advance(1999);
  assert.equal(index.match("w", req), 3);
  clock.advance(1);
  assert.equal(index.match("w", req), 0);
  index.predict("w", req, 50); // the sweep frees the expired ones first
  assert.equal(index.stats().predicted, 10);
});

Deno.test("index: BlockStored confirms predictions: they stay after the TTL", () => {
  const { index, req, clock } = setup();
  index.predict("w", req);
  index.apply("w", [stored([0, 1, 2], null, tokens.slice(0, 12))]);
  assert.equal(index.stats().predicted, 7);
  clock.advance(10_000);
  assert.equal(index.match("w", req), 3);
  assert.deepEqual(index.matchTiers("w", req).predicted, 0);
});

Deno.test("index: salted and LoRA blocks never match an unsalted request, and vice versa", () => {
  const { index, req } = setup();
  const salt: ExtraKey[] = [{ kind: "cache_salt", salt: "tenant-a" }];
  index.apply("salted", [stored([0, 1], null, tokens.slice(0, 8), { extraKeys: [salt, null] })]);
  index.apply("lora", [stored([0, 1], null, tokens.slice(0, 8), { loraName: "adapter" })]);
  index.apply("loraId", [stored([0], null, tokens.slice(0, 4), { loraId: 3 })]);
  index.apply("plain", [stored([0, 1], null, tokens.slice(0, 8))]);
  for (const w of ["salted", "lora", "loraId"]) assert.equal(index.match(w, req), 0, w);
  assert.equal(index.match("salted", blockHashes(tokens, BS, { cacheSalt: "tenant-a" })), 2);
  assert.equal(index.match("salted", blockHashes(tokens, BS, { cacheSalt: "tenant-b" })), 0);
  assert.equal(index.match("lora", blockHashes(tokens, BS, { loraName: "adapter" })), 2);
  assert.equal(index.match("plain", blockHashes(tokens, BS, { loraName: "adapter" })), 0);
  assert.equal(index.match("plain", blockHashes(tokens, BS, { cacheSalt: "tenant-a" })), 0);
});

Deno.test("index: a block with multimodal extra keys stops a plain-token match there", () => {
  const { index, req } = setup();
  const mm: ExtraKey[] = [{ kind: "mm", hash: "img", offset: 0 }];
  index.apply("w", [stored([0, 1, 2], null, tokens.slice(0, 12), { extraKeys: [null, mm, null] })]);
  assert.equal(index.match("w", req), 1);
});

Deno.test("index: other KV cache groups and block sizes are skipped", () => {
  const { index, req } = setup({ blockSize: BS });
  index.apply("w", [
    stored([0, 1], null, tokens.slice(0, 8), { groupIdx: 1 }),
    stored([0], null, tokens.slice(0, 8), { blockSize: 8 }),
    { type: "BlockRemoved", blockHashes: eng(0), medium: "GPU", groupIdx: 1 },
  ] as KvEvent[]);
  assert.equal(index.match("w", req), 0);
  assert.equal(index.stats().skipped, 3);
  index.apply("w", [stored([0, 1], null, tokens.slice(0, 8), { groupIdx: 0 })]);
  assert.equal(index.match("w", req), 2);
});

Deno.test("index: the per-worker cap holds, dropping the least recently stored blocks", () => {
  const { index } = setup({ maxBlocksPerWorker: 100 });
  const long = Array.from({ length: 4000 }, (_, i) => i);
  let parent: number | null = null;
  for (let b = 0; b < 1000; b++) {
    index.apply("w", [stored([b], parent, long.slice(b * BS, (b + 1) * BS))]);
    parent = b;
  }
  assert.equal(index.blocks("w"), 100);
  assert.equal(index.stats().evictions, 900);
  const h = blockHashes(long, BS);
  assert.equal(index.match("w", h), 0); // the head of the chain went first
  assert.equal(index.match("w", h.subarray(2 * 900)), 100);
});

Deno.test("index: the router-wide cap holds by evicting from the largest worker", () => {
  const { index } = setup({ maxBlocks: 150, maxBlocksPerWorker: 1000 });
  const long = Array.from({ length: 1200 }, (_, i) => i);
  for (const w of ["a", "b", "c"]) {
    for (let b = 0; b < 100; b++) {
      index.apply(w, [stored([b], b === 0 ? null : b - 1, long.slice(b * BS, (b + 1) * BS))]);
    }
  }
  const s = index.stats();
  assert.equal(s.blocks, 150);
  assert.ok(
    index.blocks("a") >= 40 && index.blocks("c") >= 40,
    `${index.blocks("a")} ${index.blocks("c")}`,
  );
  index.removeWorker("c");
  assert.equal(
    index.stats().blocks,
    150 - index.blocks("c") - (150 - index.blocks("a") - index.blocks("b")),
  );
});

Deno.test("index: view() is a PrefixIndex (insert predicts, truncate drops predictions past a prefix)", () => {
  const { index, req } = setup();
  const v = index.view("w");
  assert.equal(index.view("w"), v);
  v.insert(req);
  assert.equal(v.match(req), 10);
  v.truncate!(req, 4);
  assert.equal(v.match(req), 4);
  index.apply("w", [stored([0, 1], null, tokens.slice(0, 8))]);
  assert.equal(v.chunks, 2);
  assert.deepEqual(v.stats(), {
    chunks: 2,
    terminals: 0,
    maxChunks: 262_144,
    inserts: 1,
    queries: 2,
    evictions: 0,
  });
  v.clear();
  assert.equal(v.match(req), 0);
});

Deno.test("index: sink() applies batches and clears the worker", () => {
  const { index, req } = setup();
  const sink = index.sink("w");
  sink.batch(
    { ts: 0, events: [stored([0, 1], null, tokens.slice(0, 8))], dataParallelRank: null },
    0,
  );
  assert.equal(index.match("w", req), 2);
  sink.clear("restart");
  assert.equal(index.match("w", req), 0);
  assert.equal(index.stats().clears, 1);
});

/** Best tier of lookup flags: 0 GPU, 1 CPU, 2 other, 3 predicted, 4 absent. */
function best(flags: number): number {
  if (flags === 0) return 4;
  if (flags === PREDICTED) return 3;
  return flags & 1 ? 0 : flags & 2 ? 1 : 2;
}

Deno.test("WorkerBlocks: random stores, removals and predictions agree with a plain model", () => {
  // Few distinct hashes and a tiny table so that probe chains collide and deletions shift.
  const op = fc.oneof(
    fc.record({
      k: fc.constant("store"),
      e: fc.integer({ min: 0, max: 40 }),
      o: fc.integer({ min: 0, max: 25 }),
      t: fc.integer({ min: 0, max: 2 }),
    }),
    fc.record({
      k: fc.constant("remove"),
      e: fc.integer({ min: 0, max: 40 }),
      t: fc.integer({ min: 0, max: 2 }),
    }),
    fc.record({
      k: fc.constant("predict"),
      o: fc.integer({ min: 0, max: 25 }),
      d: fc.integer({ min: 1, max: 30 }),
    }),
    fc.record({ k: fc.constant("tick"), d: fc.integer({ min: 0, max: 10 }) }),
    fc.record({ k: fc.constant("clearTier"), t: fc.integer({ min: 0, max: 2 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const w = new WorkerBlocks(70, 70); // a 256-bucket table: probe chains meet
      const real = new Map<number, { own: number; tiers: number }>();
      const pred = new Map<number, number>();
      let now = 0;
      const hiOf = (x: number) => (x * 2654435761) >>> 0;
      for (const o of ops) {
        if (o.k === "store") {
          const cur = real.get(o.e);
          if (cur !== undefined && cur.own === o.o) cur.tiers |= 1 << o.t;
          else {
            real.set(o.e, { own: o.o, tiers: 1 << o.t });
            pred.delete(o.o);
          }
          w.store(hiOf(o.e + 100), o.e, hiOf(o.o), o.o, o.t);
        } else if (o.k === "remove") {
          const cur = real.get(o.e);
          if (cur !== undefined) {
            cur.tiers &= ~(1 << o.t);
            if (cur.tiers === 0) real.delete(o.e);
          }
          w.remove(hiOf(o.e + 100), o.e, o.t);
        } else if (o.k === "predict") {
          const held = [...real.values()].some((r) => r.own === o.o);
          const p = pred.get(o.o);
          if (!held) pred.set(o.o, p !== undefined && p > now ? Math.max(p, now + o.d) : now + o.d);
          w.sweep(now);
          w.predict(hiOf(o.o), o.o, now + o.d);
        } else if (o.k === "tick") {
          now += o.d;
        } else {
          for (const [e, r] of real) {
            r.tiers &= ~(1 << o.t);
            if (r.tiers === 0) real.delete(e);
          }
          w.clearTier(o.t);
        }
        for (let own = 0; own <= 25; own++) {
          let tiers = 0;
          for (const r of real.values()) if (r.own === own) tiers |= r.tiers;
          const p = pred.get(own);
          const want = tiers !== 0 ? tiers : p !== undefined && p > now ? PREDICTED : 0;
          assert.equal(
            best(w.lookup(hiOf(own), own, now)),
            best(want),
            `own ${own} after ${JSON.stringify(o)}`,
          );
        }
        assert.equal(w.blocks, real.size);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("WorkerBlocks: one own hash keeps at most 4 engine hashes (no unbounded probe chain)", () => {
  const w = new WorkerBlocks(1000, 10);
  for (let e = 0; e < 50; e++) w.store(9, e, 7, 7, 0);
  assert.equal(w.blocks, 4);
  assert.equal(w.lookup(7, 7, 0), 1);
  for (let e = 46; e < 50; e++) assert.ok(w.remove(9, e, 0));
  assert.equal(w.lookup(7, 7, 0), 0);
});

Deno.test("WorkerBlocks: clear() gives the memory back", () => {
  const w = new WorkerBlocks(100_000, 100);
  for (let i = 0; i < 50_000; i++) w.store(1, i, 2, i, 0);
  assert.ok(w.bytes > 50_000 * 49);
  w.clear();
  assert.equal(w.used, 0);
  assert.ok(w.bytes < 2000);
});
