/**
 * RadixTree's shrink and touch (issue 19): `resize` trims the least-recently-used leaf's tail
 * instead of whole branches, `touch` refreshes a held path without inserting.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { RadixTree } from "./radix_tree.ts";
import { held, s, sizes } from "./radix_tree_testing.ts";

Deno.test("RadixTree: resize trims the last leaf it needs in part, not the whole branch", () => {
  const tree = new RadixTree({ maxChunks: 0 });
  // A shared prefix 1..4 with three branches; the newest branch is 8..9.
  tree.insert(s(1, 2, 3, 4, 5, 6)); // oldest
  tree.insert(s(1, 2, 3, 4, 7));
  tree.insert(s(1, 2, 3, 4, 8, 9)); // newest
  assert.equal(tree.stats().chunks, 9);
  tree.resize(8); // one chunk too many: the oldest leaf loses its last chunk only
  assert.deepEqual(held(tree), ["1,2,3,4,5", "1,2,3,4,7", "1,2,3,4,8,9"]);
  assert.deepEqual(sizes(tree), { chunks: 8, terminals: 3, evictions: 1, nodes: 4 });
  tree.resize(6); // leaf 5 goes, then 7 goes: 4 + 2 = 6, the newest branch stays whole
  assert.deepEqual(held(tree), ["1,2,3,4,8,9"]);
  assert.deepEqual(sizes(tree), { chunks: 6, terminals: 1, evictions: 3, nodes: 1 });
  tree.resize(5); // the shared prefix merged into the newest branch: only its tail goes
  assert.deepEqual(held(tree), ["1,2,3,4,8"]);
  assert.equal(tree.match(s(1, 2, 3, 4, 8, 9)), 5);
});

Deno.test("RadixTree: touch refreshes a held path without inserting", () => {
  const tree = new RadixTree({ maxChunks: 0, chained: false });
  tree.insert(s(1, 2, 3)); // oldest
  tree.insert(s(4, 5, 6));
  tree.insert(s(7, 8, 9)); // newest
  const { inserts, queries } = tree.stats();
  tree.touch(s(1, 2, 3, 10)); // held in full, then a chunk the tree lacks: nothing inserted
  tree.touch(s(11)); // nothing held: nothing happens
  assert.equal(tree.stats().inserts, inserts);
  assert.equal(tree.stats().queries, queries);
  assert.equal(tree.stats().chunks, 9);
  tree.resize(6);
  assert.deepEqual(held(tree), ["1,2,3", "7,8,9"]);
  tree.recount();
});

Deno.test("RadixTree property: resize trims to exactly the new capacity, keeping prefixes", () => {
  const seq = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 8 });
  fc.assert(
    fc.property(
      fc.array(seq, { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat({ max: 40 }), { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      (seqs, caps, chained) => {
        const tree = new RadixTree({ maxChunks: 0, chained });
        for (const q of seqs) tree.insert(s(...q));
        const inserted = seqs.map((q) => q.join(","));
        for (const cap of caps) {
          const before = sizes(tree);
          tree.resize(cap);
          const after = sizes(tree); // counters agree with a recount
          // Leaves go whole and the last one in part: exactly the capacity, never below it.
          const want = cap === 0 ? before.chunks : Math.min(before.chunks, cap);
          assert.equal(after.chunks, want);
          assert.equal(after.evictions - before.evictions, before.chunks - want);
          for (const h of held(tree)) {
            const p = h + ",";
            assert.ok(inserted.some((q) => (q + ",").startsWith(p)), `${h} was never inserted`);
          }
        }
      },
    ),
    { numRuns: 400 },
  );
});
