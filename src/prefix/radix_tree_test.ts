/**
 * RadixTree tests: literal table cases for each rule (property tests against a reference model:
 * radix_tree_property_test.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { chunkHashes } from "./chunker.ts";
import { RadixTree } from "./radix_tree.ts";
import type { ChunkHashes } from "./types.ts";
import { held, s, sizes } from "./radix_tree_testing.ts";

Deno.test("RadixTree: empty tree matches nothing", () => {
  const t = new RadixTree({ maxChunks: 0 });
  assert.equal(t.match(s(1, 2)), 0);
  assert.equal(t.match(s()), 0);
  assert.deepEqual(t.stats(), {
    chunks: 0,
    terminals: 0,
    maxChunks: 0,
    inserts: 0,
    queries: 2,
    evictions: 0,
  });
  assert.deepEqual(t.recount(), { chunks: 0, terminals: 0, nodes: 0, leaves: 0 });
});

Deno.test("RadixTree: longest match, including one that ends inside an edge", () => {
  const t = new RadixTree({ maxChunks: 0 });
  t.insert(s(1, 2, 3, 4));
  const cases: [ChunkHashes, number][] = [
    [s(1, 2, 3, 4), 4],
    [s(1, 2, 3, 4, 5, 6), 4],
    [s(1, 2, 9), 2], // inside the single edge
    [s(1), 1],
    [s(9, 1, 2), 0],
    [s(), 0],
  ];
  for (const [q, want] of cases) assert.equal(t.match(q), want, `match ${q}`);
  // Same hi, different lo: both halves are compared.
  const q = s(1, 2, 3);
  q[5] ^= 1;
  assert.equal(t.match(q), 2);
  assert.deepEqual(sizes(t), { chunks: 4, terminals: 1, evictions: 0, nodes: 1 });
});

Deno.test("RadixTree: insert splits an edge where sequences diverge", () => {
  const t = new RadixTree({ maxChunks: 0 });
  t.insert(s(1, 2, 3, 4));
  t.insert(s(1, 2, 5));
  assert.deepEqual(held(t), ["1,2,3,4", "1,2,5"]);
  // Nodes: [1,2] (branch), [3,4], [5].
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 2, evictions: 0, nodes: 3 });
  assert.equal(t.match(s(1, 2, 5, 6)), 3);
  assert.equal(t.match(s(1, 2, 3, 9)), 3);
  assert.equal(t.match(s(1, 2, 7)), 2);
});

Deno.test("RadixTree: inserting a prefix splits and marks a terminal; re-insert changes nothing", () => {
  const t = new RadixTree({ maxChunks: 0 });
  t.insert(s(1, 2, 3, 4));
  t.insert(s(1, 2));
  assert.deepEqual(held(t), ["1,2", "1,2,3,4"]);
  assert.deepEqual(sizes(t), { chunks: 4, terminals: 2, evictions: 0, nodes: 2 });
  t.insert(s(1, 2));
  t.insert(s(1, 2, 3, 4));
  t.insert(s());
  assert.deepEqual(sizes(t), { chunks: 4, terminals: 2, evictions: 0, nodes: 2 });
  assert.equal(t.stats().inserts, 5);
});

Deno.test("RadixTree: insert copies, so callers may reuse their buffer", () => {
  const t = new RadixTree({ maxChunks: 0 });
  const buf = s(1, 2, 3);
  t.insert(buf);
  buf.fill(7);
  assert.equal(t.match(s(1, 2, 3)), 3);
  assert.equal(t.match(buf), 0);
});

Deno.test("RadixTree: children whose first hashes share a map key are told apart", () => {
  // childKey(hi, lo) keeps 30 bits of lo ^ imul(hi, c); hi differing by 2^30 gives the same key.
  const a = Uint32Array.of(0, 5, 1, 1);
  const b = Uint32Array.of(0x40000000, 5, 2, 2);
  const c = Uint32Array.of(0x80000000, 5, 3, 3);
  const d = Uint32Array.of(0xc0000000, 5, 4, 4);
  const t = new RadixTree({ maxChunks: 6 });
  t.insert(a);
  t.insert(b);
  t.insert(c);
  for (const q of [a, b, c]) assert.equal(t.match(q), 2);
  assert.equal(t.match(d), 0);
  assert.deepEqual(sizes(t), { chunks: 6, terminals: 3, evictions: 0, nodes: 3 });
  t.insert(a); // refresh a: b is now the oldest, in the middle of the key's chain
  t.insert(d);
  assert.deepEqual([a, b, c, d].map((q) => t.match(q)), [2, 0, 2, 2]);
  assert.deepEqual(sizes(t), { chunks: 6, terminals: 3, evictions: 2, nodes: 3 });
  t.truncate(c, 1);
  assert.deepEqual([a, b, c, d].map((q) => t.match(q)), [2, 0, 1, 2]);
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 3, evictions: 3, nodes: 3 });
});

Deno.test("RadixTree: evicts least recently inserted leaves first", () => {
  const t = new RadixTree({ maxChunks: 6 });
  t.insert(s(1, 2, 3));
  t.insert(s(4, 5, 6));
  assert.deepEqual(sizes(t), { chunks: 6, terminals: 2, evictions: 0, nodes: 2 });
  t.insert(s(7, 8));
  assert.deepEqual(held(t), ["4,5,6", "7,8"]);
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 2, evictions: 3, nodes: 2 });
  t.insert(s(4, 5, 6)); // refresh: now 7,8 is the oldest
  t.insert(s(9, 10));
  assert.deepEqual(held(t), ["4,5,6", "9,10"]);
  assert.equal(t.stats().evictions, 5);
  // Inserting an extension refreshes the path, so 9,10 goes next.
  t.insert(s(4, 5, 6, 11, 12));
  assert.deepEqual(held(t), ["4,5,6", "4,5,6,11,12"]);
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 2, evictions: 7, nodes: 2 });
});

Deno.test("RadixTree: lookups do not refresh recency", () => {
  const t = new RadixTree({ maxChunks: 6 });
  t.insert(s(1, 2, 3));
  t.insert(s(4, 5, 6));
  for (let i = 0; i < 5; i++) assert.equal(t.match(s(1, 2, 3)), 3);
  t.insert(s(7));
  assert.deepEqual(held(t), ["4,5,6", "7"]);
  assert.equal(t.stats().queries, 5);
});

Deno.test("RadixTree: eviction merges a branch left with one child and prunes to empty", () => {
  const t = new RadixTree({ maxChunks: 5 });
  t.insert(s(1, 2, 3));
  t.insert(s(1, 2, 4, 5));
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 2, evictions: 0, nodes: 3 });
  t.insert(s(9)); // evicts leaf [3]; branch [1,2] merges into [4,5]
  assert.deepEqual(held(t), ["1,2,4,5", "9"]);
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 2, evictions: 1, nodes: 2 });
  assert.equal(t.match(s(1, 2, 3)), 2);
  assert.equal(t.match(s(1, 2, 4, 5)), 4);
  t.insert(s(8, 7, 6, 5)); // evicts [1,2,4,5] whole
  assert.deepEqual(held(t), ["8,7,6,5", "9"]);
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 2, evictions: 5, nodes: 2 });
  t.insert(s(1, 2, 3, 4, 5)); // evicts both others
  assert.deepEqual(held(t), ["1,2,3,4,5"]);
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 1, evictions: 10, nodes: 1 });
});

Deno.test("RadixTree: a terminal parent stays as a leaf with its own recency", () => {
  const t = new RadixTree({ maxChunks: 4 });
  t.insert(s(1, 2));
  t.insert(s(1, 2, 3, 4)); // touches [3,4] then [1,2]
  t.insert(s(7)); // 5 chunks: the leaf [3,4] goes, [1,2] remains
  assert.deepEqual(held(t), ["1,2", "7"]);
  assert.deepEqual(sizes(t), { chunks: 3, terminals: 2, evictions: 2, nodes: 2 });
  assert.equal(t.match(s(1, 2, 3, 4)), 2);
  t.insert(s(8, 9)); // [1,2] was touched before [7]
  assert.deepEqual(held(t), ["7", "8,9"]);
  assert.deepEqual(sizes(t), { chunks: 3, terminals: 2, evictions: 4, nodes: 2 });
});

Deno.test("RadixTree: a sequence longer than the budget keeps its longest prefix that fits", () => {
  const t = new RadixTree({ maxChunks: 3 });
  t.insert(s(1, 2, 3, 4, 5));
  assert.deepEqual(held(t), ["1,2,3"]);
  assert.deepEqual(sizes(t), { chunks: 3, terminals: 1, evictions: 0, nodes: 1 });
  t.insert(s(6, 7, 8, 9));
  assert.deepEqual(held(t), ["6,7,8"]);
  assert.deepEqual(sizes(t), { chunks: 3, terminals: 1, evictions: 3, nodes: 1 });
  t.insert(s(6, 7));
  assert.deepEqual(held(t), ["6,7", "6,7,8"]);
  assert.equal(t.stats().chunks, 3);
});

Deno.test("RadixTree: truncate drops what follows the kept prefix along the path", () => {
  const build = () => {
    const t = new RadixTree({ maxChunks: 0 });
    t.insert(s(1, 2, 3, 4, 5));
    t.insert(s(1, 2, 3, 6));
    t.insert(s(1, 7));
    // Nodes: [1] → {[2,3] → {[4,5], [6]}, [7]}.
    assert.deepEqual(sizes(t), { chunks: 7, terminals: 3, evictions: 0, nodes: 5 });
    return t;
  };

  // Cut inside the edge [2,3]: [3] and everything below go; [1,2] becomes a terminal leaf.
  let t = build();
  t.truncate(s(1, 2, 3, 4, 5), 2);
  assert.deepEqual(held(t), ["1,2", "1,7"]);
  assert.deepEqual(sizes(t), { chunks: 3, terminals: 2, evictions: 4, nodes: 3 });
  assert.equal(t.match(s(1, 2, 3, 4, 5)), 2);
  assert.equal(t.match(s(1, 7)), 2);

  // Cut at a node: only the branch along the path goes; the branch merges with [6].
  t = build();
  t.truncate(s(1, 2, 3, 4, 5), 3);
  assert.deepEqual(held(t), ["1,2,3,6", "1,7"]);
  assert.deepEqual(sizes(t), { chunks: 5, terminals: 2, evictions: 2, nodes: 3 });
  assert.equal(t.match(s(1, 2, 3, 4)), 3);

  // Cut inside a leaf edge.
  t = build();
  t.truncate(s(1, 2, 3, 4, 5), 4);
  assert.deepEqual(held(t), ["1,2,3,4", "1,2,3,6", "1,7"]);
  assert.deepEqual(sizes(t), { chunks: 6, terminals: 3, evictions: 1, nodes: 5 });

  // The path diverges at the cut, or the tree holds no more than kept: nothing changes.
  for (const [q, keep] of [[s(1, 2, 9, 9), 2], [s(1, 2, 3, 4, 5), 5], [s(1, 2, 3), 3], [s(5), 0]]) {
    t = build();
    t.truncate(q as ChunkHashes, keep as number);
    assert.deepEqual(sizes(t), { chunks: 7, terminals: 3, evictions: 0, nodes: 5 });
  }

  // Keep one chunk: the branch [2,3] goes and [1] merges with [7].
  t = build();
  t.truncate(s(1, 2), 1);
  assert.deepEqual(held(t), ["1,7"]);
  assert.deepEqual(sizes(t), { chunks: 2, terminals: 1, evictions: 5, nodes: 1 });

  // Keep nothing: the whole subtree under the first chunk goes.
  t = build();
  t.truncate(s(1, 2), 0);
  assert.deepEqual(held(t), []);
  assert.deepEqual(sizes(t), { chunks: 0, terminals: 0, evictions: 7, nodes: 0 });

  assert.throws(() => build().truncate(s(1), -1), RangeError);
  assert.throws(() => build().truncate(s(1), 1.5), RangeError);
});

Deno.test("RadixTree: clear forgets the contents and keeps the cumulative counters", () => {
  const t = new RadixTree({ maxChunks: 2 });
  t.insert(s(1, 2));
  t.insert(s(3));
  t.match(s(1));
  t.clear();
  assert.equal(t.match(s(3)), 0);
  assert.deepEqual(t.stats(), {
    chunks: 0,
    terminals: 0,
    maxChunks: 2,
    inserts: 2,
    queries: 2,
    evictions: 2,
  });
  t.insert(s(4, 5));
  assert.deepEqual(sizes(t), { chunks: 2, terminals: 1, evictions: 2, nodes: 1 });
});

Deno.test("RadixTree: rejects an invalid capacity", () => {
  assert.throws(() => new RadixTree({ maxChunks: -1 }), /maxChunks must be a non-negative integer/);
  assert.throws(() => new RadixTree({ maxChunks: 1.5 }), RangeError);
});

Deno.test("RadixTree: chained match finds a divergence deep inside a long edge", () => {
  const base = "0123456789abcdef".repeat(64); // 1 KiB: 32 chunks of 32 bytes
  for (const at of [1, 2, 17, 31]) {
    const tree = new RadixTree({ maxChunks: 0, chained: true });
    tree.insert(chunkHashes(base, 32));
    const query = base.slice(0, at * 32) + "#" + base.slice(at * 32 + 1);
    assert.equal(tree.match(chunkHashes(query, 32)), at);
    assert.equal(tree.match(chunkHashes(base.slice(0, at * 32 + 5), 32)), at);
  }
  const tree = new RadixTree({ maxChunks: 0, chained: true });
  tree.insert(chunkHashes(base, 32));
  assert.equal(tree.match(chunkHashes(base + "more text beyond the held prefix..", 32)), 32);
});

Deno.test("RadixTree: resize evicts least-recently-used leaves down to the new capacity", () => {
  const tree = new RadixTree({ maxChunks: 0 });
  tree.insert(s(1, 2, 3)); // oldest
  tree.insert(s(4, 5, 6));
  tree.insert(s(7, 8, 9)); // newest
  tree.match(s(1, 2, 3)); // lookups do not refresh recency
  tree.resize(6);
  assert.deepEqual(held(tree), ["4,5,6", "7,8,9"]);
  assert.deepEqual(sizes(tree), { chunks: 6, terminals: 2, evictions: 3, nodes: 2 });
  assert.equal(tree.stats().maxChunks, 6);
  // The new capacity holds for later inserts too.
  tree.insert(s(10, 11, 12));
  assert.deepEqual(held(tree), ["10,11,12", "7,8,9"]);
  tree.resize(0);
  tree.insert(s(1, 2, 3));
  assert.equal(tree.stats().chunks, 9);
  assert.throws(() => tree.resize(-1), RangeError);
});

Deno.test("RadixTree: prompts that differ only in their last chunk are bounded by maxNodes", () => {
  const tree = new RadixTree({ maxChunks: 1_000_000, maxNodes: 100, chained: true });
  const shared = Array.from({ length: 50 }, (_, i) => i + 1);
  for (let i = 0; i < 10_000; i++) tree.insert(s(...shared, 1_000 + i));
  assert.ok(tree.nodes <= 100, `${tree.nodes} nodes`);
  assert.ok(tree.bytes <= 100 * 340 + 8 * tree.chunks);
  assert.equal(tree.match(s(...shared, 1_000 + 9_999)), 51, "the latest insert is held");
  assert.throws(() => new RadixTree({ maxChunks: 0, maxNodes: -1 }), RangeError);
});
