import assert from "node:assert/strict";
import { configFromWorkers } from "../config/mod.ts";
import { chunkHashes, RadixTree } from "../prefix/mod.ts";
import { systemClock } from "../util/clock.ts";
import { Backend, indexBudget } from "./pool.ts";
import { indexShare } from "./state.ts";

Deno.test("case 5: a worker's index stays within its share of router.index_max_bytes, whatever the prompts", () => {
  const config = configFromWorkers(["http://127.0.0.1:1", "http://127.0.0.1:2"], {
    router: { indexMaxBytes: 4 * 1024 * 1024 },
    worker: { kvBudget: 0 },
  });
  const share = indexShare(config);
  assert.equal(share, 2 * 1024 * 1024);
  const b = new Backend(0, config.workers[0], systemClock, share);
  const tree = b.prefix as RadixTree;
  // 24 distinct 3 MiB prompts (the case), then prompts that differ only in their end.
  const big = "x".repeat(3 * 1024 * 1024);
  for (let i = 0; i < 24; i++) tree.insert(chunkHashes(`${i}:${big}`, 32));
  assert.ok(tree.bytes <= share, `${tree.bytes} bytes over ${share}`);
  const shared = "shared prefix ".repeat(200);
  for (let i = 0; i < 20_000; i++) {
    tree.insert(chunkHashes(`${shared}${i}`.padEnd(3000, "."), 32));
  }
  assert.ok(tree.bytes <= share + 64 * 340, `${tree.bytes} bytes over ${share}`);
});

Deno.test("indexBudget: kv_budget when it is the smaller bound, the byte share otherwise", () => {
  assert.deepEqual(indexBudget(131_072, Infinity), { chunks: 131_072, nodes: 0 });
  assert.deepEqual(indexBudget(0, 1_600_000), { chunks: 100_000, nodes: 2352 });
  assert.deepEqual(indexBudget(50_000, 1_600_000), { chunks: 50_000, nodes: 2352 });
  assert.equal(indexBudget(0, 10).chunks, 1, "never 0 (which would mean unbounded)");
});
