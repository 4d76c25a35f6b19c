/**
 * RadixTree tests: literal table cases for each rule, then property tests against a slow, obvious
 * reference model (a set of held sequences with per-insert timestamps) and against a full recount.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { chunkHashes, utf8 } from "./chunker.ts";
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

// ---------------------------------------------------------------------------------------------
// Property tests against a reference model.

/**
 * Symbols 0..3 as hash pairs. 0/1 and 2/3 share `lo` and differ in `hi` by 2^30, so they share a
 * child-map key and exercise the collision chains.
 */
function toHashes(seq: readonly number[]): ChunkHashes {
  const out = new Uint32Array(seq.length * 2);
  seq.forEach((sym, i) => {
    out[2 * i] = (sym & 1) * 0x40000000;
    out[2 * i + 1] = sym >> 1;
  });
  return out;
}

function isPrefix(p: readonly number[], s: readonly number[]): boolean {
  if (p.length > s.length) return false;
  for (let i = 0; i < p.length; i++) if (p[i] !== s[i]) return false;
  return true;
}

function lcp(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Slow, obvious model: the set of inserted sequences still held, the history of inserts with
 * timestamps, and chunks as the number of distinct non-empty prefixes. A leaf's recency is the
 * last insert that had it as a prefix; eviction removes the held leaf with the oldest recency.
 */
class Reference {
  held: number[][] = [];
  history: { seq: number[]; time: number }[] = [];
  time = 0;
  evictions = 0;
  constructor(readonly max: number) {}

  chunks(): number {
    const prefixes = new Set<string>();
    for (const h of this.held) {
      for (let i = 1; i <= h.length; i++) prefixes.add(h.slice(0, i).join());
    }
    return prefixes.size;
  }

  match(q: readonly number[]): number {
    let best = 0;
    for (const h of this.held) best = Math.max(best, lcp(q, h));
    return best;
  }

  insert(seq: number[]): void {
    if (this.max > 0) seq = seq.slice(0, this.max);
    if (seq.length === 0) return;
    this.time++;
    this.history.push({ seq, time: this.time });
    if (!this.held.some((h) => h.join() === seq.join())) this.held.push(seq);
    while (this.max > 0 && this.chunks() > this.max) {
      const leaves = this.held.filter((h) =>
        !this.held.some((o) => o.length > h.length && isPrefix(h, o))
      );
      const recency = (h: number[]) =>
        Math.max(...this.history.filter((e) => isPrefix(h, e.seq)).map((e) => e.time));
      leaves.sort((a, b) => recency(a) - recency(b));
      const before = this.chunks();
      this.held = this.held.filter((h) => h !== leaves[0]);
      this.evictions += before - this.chunks();
    }
  }

  /** Drops every held sequence continuing `q` past `keep`; the stem becomes held if orphaned. */
  truncate(q: number[], keep: number): void {
    if (keep >= q.length) return;
    const cut = q.slice(0, keep + 1);
    if (!this.held.some((h) => isPrefix(cut, h))) return;
    const before = this.chunks();
    const kept = this.held.filter((h) => !isPrefix(cut, h));
    const stem = q.slice(0, keep);
    if (keep > 0 && !kept.some((h) => isPrefix(stem, h))) kept.push(stem);
    this.held = kept;
    this.evictions += before - this.chunks();
  }
}

type Op =
  | { op: "insert"; seq: number[] }
  | { op: "match"; seq: number[] }
  | { op: "truncate"; seq: number[]; keep: number };

const symbols = fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 8 });
/** Mostly prefixes of a few shared bases plus a short random tail, so that paths overlap. */
const seqArb = fc.oneof(
  symbols,
  fc.tuple(
    fc.constantFrom([0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 3, 3, 3], [0, 1, 0, 1, 0, 1], [2, 2, 2, 2]),
    fc.integer({ min: 0, max: 8 }),
    fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
  ).map(([base, n, tail]) => [...base.slice(0, n), ...tail]),
);
const insertOrMatch: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: seqArb.map((seq) => ({ op: "insert" as const, seq })) },
  { weight: 2, arbitrary: seqArb.map((seq) => ({ op: "match" as const, seq })) },
);
const truncateOp: fc.Arbitrary<Op> = fc.record({
  op: fc.constant("truncate" as const),
  seq: seqArb,
  keep: fc.integer({ min: 0, max: 8 }),
});

function checkAgainst(tree: RadixTree, ref: Reference): void {
  const st = tree.stats();
  const re = tree.recount();
  assert.equal(st.chunks, re.chunks);
  assert.equal(st.terminals, re.terminals);
  assert.equal(st.chunks, ref.chunks());
  assert.equal(st.terminals, ref.held.length);
  assert.equal(st.evictions, ref.evictions);
  const treeHeld = [...tree.sequences()].map((h) => h.join()).sort();
  assert.deepEqual(treeHeld, ref.held.map((h) => toHashes(h).join()).sort());
  if (ref.max > 0) assert.ok(st.chunks <= ref.max, `chunks ${st.chunks} > budget ${ref.max}`);
}

Deno.test("RadixTree property: bounded insert/match agree with the LRU reference", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12 }),
      fc.array(insertOrMatch, { maxLength: 40 }),
      (max, ops) => {
        const tree = new RadixTree({ maxChunks: max });
        const ref = new Reference(max);
        for (const o of ops) {
          if (o.op === "insert") {
            tree.insert(toHashes(o.seq));
            ref.insert(o.seq);
            checkAgainst(tree, ref);
          } else {
            assert.equal(tree.match(toHashes(o.seq)), ref.match(o.seq));
          }
        }
        checkAgainst(tree, ref);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("RadixTree property: unbounded insert/match/truncate agree with the reference", () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(insertOrMatch, truncateOp), { maxLength: 40 }),
      (ops) => {
        const tree = new RadixTree({ maxChunks: 0 });
        const ref = new Reference(0);
        for (const o of ops) {
          if (o.op === "insert") {
            tree.insert(toHashes(o.seq));
            ref.insert(o.seq);
          } else if (o.op === "truncate") {
            tree.truncate(toHashes(o.seq), o.keep);
            ref.truncate(o.seq, o.keep);
          } else {
            assert.equal(tree.match(toHashes(o.seq)), ref.match(o.seq));
          }
          checkAgainst(tree, ref);
        }
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("RadixTree property: bounded trees with truncate keep budget and counters", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12 }),
      fc.array(fc.oneof(insertOrMatch, truncateOp), { maxLength: 40 }),
      (max, ops) => {
        const tree = new RadixTree({ maxChunks: max });
        for (const o of ops) {
          const h = toHashes(o.seq);
          if (o.op === "insert") {
            tree.insert(h);
            assert.equal(tree.match(h), Math.min(o.seq.length, max), "just inserted is held");
          } else if (o.op === "truncate") {
            tree.truncate(h, o.keep);
            assert.ok(tree.match(h) <= o.keep);
          } else {
            tree.match(h);
          }
          const st = tree.stats();
          const re = tree.recount();
          assert.ok(st.chunks <= max);
          assert.equal(st.chunks, re.chunks);
          assert.equal(st.terminals, re.terminals);
        }
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("RadixTree property: the held set does not depend on insert order when unbounded", () => {
  fc.assert(
    fc.property(
      fc.array(seqArb, { maxLength: 12 }).chain((seqs) =>
        fc.tuple(fc.constant(seqs), fc.shuffledSubarray(seqs, { minLength: seqs.length }))
      ),
      ([seqs, shuffled]) => {
        const a = new RadixTree({ maxChunks: 0 });
        const b = new RadixTree({ maxChunks: 0 });
        for (const q of seqs) a.insert(toHashes(q));
        for (const q of shuffled) b.insert(toHashes(q));
        const all = (t: RadixTree) => [...t.sequences()].map((h) => h.join()).sort();
        assert.deepEqual(all(a), all(b));
        assert.deepEqual(a.recount(), b.recount());
        for (const q of seqs) {
          for (let i = 0; i <= q.length; i++) {
            const probe = toHashes([...q.slice(0, i), 3, 3]);
            assert.equal(a.match(probe), b.match(probe));
          }
        }
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("RadixTree property: multi-byte UTF-8 texts match by their common byte prefix", () => {
  const fragment = fc.constantFrom("a", "b", " ", "é", "日本", "🙂", "ß", "\n", "語");
  const text = fc.array(fragment, { maxLength: 20 }).map((parts) => parts.join(""));
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(text, { minLength: 1, maxLength: 6 }),
      text,
      (size, texts, query) => {
        const tree = new RadixTree({ maxChunks: 0 });
        for (const t of texts) tree.insert(chunkHashes(t, size));
        const qBytes = utf8(query).slice();
        let want = 0;
        for (const t of texts) {
          const tBytes = utf8(t);
          let n = 0;
          while (n < qBytes.length && n < tBytes.length && qBytes[n] === tBytes[n]) n++;
          want = Math.max(want, Math.floor(n / size));
        }
        assert.equal(tree.match(chunkHashes(query, size)), want);
        const re = tree.recount();
        assert.equal(re.chunks, tree.stats().chunks);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("RadixTree property: chained match skips edges and agrees with the plain walk", () => {
  // Texts built from a few shared stems so that sequences share long prefixes, diverge inside
  // edges and end inside them; small budgets make eviction and merges reshape the edges.
  const stem = fc.constantFrom(
    "",
    "system prompt: be brief. ",
    "日本語のテキスト🙂 ",
    "abcdefgh".repeat(5),
  );
  const tail = fc.array(fc.constantFrom("a", "b", "é", "語", " ", "xyz"), { maxLength: 40 })
    .map((p) => p.join(""));
  const text = fc.tuple(stem, stem, tail).map(([a, b, c]) => a + b + c);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 40 }),
      fc.array(text, { minLength: 1, maxLength: 12 }),
      fc.array(text, { minLength: 1, maxLength: 6 }),
      (size, budget, inserts, queries) => {
        const plain = new RadixTree({ maxChunks: budget });
        const chained = new RadixTree({ maxChunks: budget, chained: true });
        for (const t of inserts) {
          plain.insert(chunkHashes(t, size));
          chained.insert(chunkHashes(t, size));
          for (const q of [...queries, ...inserts]) {
            const h = chunkHashes(q, size);
            assert.equal(chained.match(h), plain.match(h));
          }
        }
      },
    ),
    { numRuns: 300 },
  );
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

Deno.test("RadixTree property: a node budget bounds nodes and bytes whatever the shape; the last insert stays", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 8 }),
      fc.array(fc.oneof(insertOrMatch, truncateOp), { maxLength: 40 }),
      (maxNodes, ops) => {
        const tree = new RadixTree({ maxChunks: 0, maxNodes });
        let lastPath = 0;
        for (const o of ops) {
          const h = toHashes(o.seq);
          if (o.op === "insert") {
            tree.insert(h);
            assert.equal(tree.match(h), o.seq.length, "just inserted is held");
            lastPath = o.seq.length;
          } else if (o.op === "truncate") tree.truncate(h, o.keep);
          else tree.match(h);
          const re = tree.recount();
          // The path just inserted is never evicted: at most one node per chunk of it beyond.
          assert.ok(re.nodes <= maxNodes + lastPath, `${re.nodes} nodes over ${maxNodes}`);
          assert.equal(tree.nodes, re.nodes);
          assert.equal(tree.bytes, re.chunks * 8 + re.nodes * 340);
        }
      },
    ),
    { numRuns: 500 },
  );
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
