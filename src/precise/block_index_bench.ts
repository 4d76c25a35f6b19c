/**
 * Micro-benchmarks of precise mode: the router's block hash over a request's tokens (against the
 * approximate mode's chunker over the same prompt's bytes, as a baseline in the same run), one
 * `match` per worker, applying BlockStored events, and the index's memory per block.
 *
 * Run: `deno bench src/precise/block_index_bench.ts` (memory: printed once at load).
 *
 * @module
 */

import { chunkHashes } from "../prefix/chunker.ts";
import type { BlockStored } from "../kv_events/types.ts";
import { ManualClock } from "../util/clock.ts";
import { SeededRng } from "../util/rng.ts";
import { BlockIndex } from "./block_index.ts";
import { blockHashes } from "./block_hash.ts";
import { WorkerBlocks } from "./worker_blocks.ts";

const BS = 16;
const rng = new SeededRng(7);
/** A 6 KB prompt is about 1 500 tokens. */
const tokens = Array.from({ length: 1500 }, () => rng.int(150_000));
const text6k = "x".repeat(6 * 1024);

Deno.bench(
  "chunkHashes 6 KB (approximate mode, baseline)",
  { group: "hash", baseline: true },
  () => {
    chunkHashes(text6k, 32);
  },
);

Deno.bench("blockHashes 1 500 tokens, block 16", { group: "hash" }, () => {
  blockHashes(tokens, BS);
});

Deno.bench("blockHashes 1 500 tokens, salted", { group: "hash" }, () => {
  blockHashes(tokens, BS, { cacheSalt: "tenant-42" });
});

/** A root BlockStored for `toks`, engine hashes from `base`. */
function stored(toks: number[], base: number): BlockStored {
  const n = Math.floor(toks.length / BS);
  const h = new Uint32Array(2 * n);
  for (let i = 0; i < n; i++) {
    h[2 * i] = base;
    h[2 * i + 1] = i;
  }
  return {
    type: "BlockStored",
    blockHashes: h,
    parentBlockHash: null,
    tokenIds: toks.slice(0, n * BS),
    blockSize: BS,
    loraId: null,
    medium: "GPU",
    loraName: null,
    extraKeys: null,
    groupIdx: null,
    locality: null,
  };
}

// Four workers; "w0" holds the whole prompt, the others only part of it, plus unrelated blocks.
const index = new BlockIndex({ clock: new ManualClock(0) });
const req = blockHashes(tokens, BS);
for (let w = 0; w < 4; w++) {
  index.apply(`w${w}`, [stored(tokens.slice(0, 1500 - w * 400), 1000 + w)]);
  for (let k = 0; k < 2000; k++) {
    index.apply(`w${w}`, [
      stored(Array.from({ length: 64 }, () => rng.int(150_000)), 100_000 + w * 10_000 + k),
    ]);
  }
}

Deno.bench("match 93 blocks on 4 workers (one decision)", { group: "match" }, () => {
  for (let w = 0; w < 4; w++) index.match(`w${w}`, req);
});

Deno.bench("matchTiers 93 blocks on 4 workers", { group: "match" }, () => {
  for (let w = 0; w < 4; w++) index.matchTiers(`w${w}`, req);
});

// Steady state of a busy engine: 256 distinct prompts, each stored then evicted again.
const prompts = Array.from(
  { length: 256 },
  (_, p) => stored(Array.from({ length: 1500 }, () => rng.int(150_000)), p),
);
const removals = prompts.map((e) => ({
  type: "BlockRemoved" as const,
  blockHashes: e.blockHashes,
  medium: "GPU",
  groupIdx: null,
}));
const fresh = new BlockIndex({ clock: new ManualClock(0) });
let round = 0;
Deno.bench("apply BlockStored of 93 blocks, then their BlockRemoved", { group: "apply" }, () => {
  const p = round++ & 255;
  fresh.apply("w", [prompts[p]]);
  fresh.apply("w", [removals[p]]);
});

/**
 * Bytes per block held: the store's own count of its typed arrays, and the process's ArrayBuffer
 * growth after GCs as a check (run with `--v8-flags=--expose-gc`; without it the check includes
 * garbage).
 */
async function bytesPerBlock(blocks: number): Promise<string> {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await settle();
  const before = Deno.memoryUsage().external;
  const w = new WorkerBlocks(4 * blocks, 1024);
  for (let i = 0; i < blocks; i++) w.store(i, i * 7, i * 13, i * 17, 0);
  await settle();
  const grown = (Deno.memoryUsage().external - before) / blocks;
  return `${blocks} blocks: ${(w.bytes / blocks).toFixed(1)} B/block counted, ${
    grown.toFixed(1)
  } measured`;
}
// 2^20 blocks fill the arrays exactly; 2^19 + 1 is just past a doubling (the worst case).
console.log(`precise index memory: ${await bytesPerBlock(1 << 20)}`);
console.log(`precise index memory: ${await bytesPerBlock((1 << 19) + 1)}`);
