import assert from "node:assert/strict";
import { absorbTokens, blockHashes, lanesHi, lanesLo, setLanes } from "./block_hash.ts";

const tokens = Array.from({ length: 100 }, (_, i) => (i * 7919) % 50000);

Deno.test("blockHashes: one pair per full block, the partial tail ignored", () => {
  assert.equal(blockHashes(tokens, 16).length, 2 * 6);
  assert.equal(blockHashes(tokens.slice(0, 15), 16).length, 0);
  assert.throws(() => blockHashes(tokens, 0), /block size must be a positive integer, got 0/);
});

Deno.test("blockHashes: chained: equal prefixes give equal hashes, a change moves every later one", () => {
  const a = blockHashes(tokens, 10);
  const b = blockHashes(tokens.slice(0, 55), 10);
  assert.deepEqual([...b], [...a.subarray(0, 10)]);
  const changed = tokens.slice();
  changed[25] += 1;
  const c = blockHashes(changed, 10);
  assert.deepEqual([...c.subarray(0, 4)], [...a.subarray(0, 4)]);
  for (let i = 2; i < 10; i++) {
    assert.notDeepEqual([c[2 * i], c[2 * i + 1]], [a[2 * i], a[2 * i + 1]], `block ${i}`);
  }
});

Deno.test("blockHashes: continuing from a block's hash equals hashing from the start", () => {
  const all = blockHashes(tokens, 10);
  setLanes(all[6], all[7]); // after block 3
  absorbTokens(tokens, 40, 50);
  assert.deepEqual([lanesHi(), lanesLo()], [all[8], all[9]]);
});

Deno.test("blockHashes: LoRA and cache salt enter every block's key, and are told apart", () => {
  const plain = blockHashes(tokens, 10);
  const keys = [
    { cacheSalt: "s" },
    { loraName: "s" },
    { loraName: "a", cacheSalt: "" },
    { loraName: "", cacheSalt: "a" },
    { loraName: "a", cacheSalt: "s" },
  ];
  const seen = new Set<string>([plain.join(",")]);
  for (const k of keys) {
    const h = blockHashes(tokens, 10, k);
    for (let i = 0; i < 10; i++) {
      assert.notDeepEqual([h[2 * i], h[2 * i + 1]], [plain[2 * i], plain[2 * i + 1]]);
    }
    seen.add(h.join(","));
  }
  assert.equal(seen.size, keys.length + 1);
  assert.deepEqual([...blockHashes(tokens, 10, { loraName: null, cacheSalt: null })], [...plain]);
});

Deno.test("blockHashes: number arrays and typed arrays hash alike", () => {
  assert.deepEqual([...blockHashes(Uint32Array.from(tokens), 16)], [...blockHashes(tokens, 16)]);
});
