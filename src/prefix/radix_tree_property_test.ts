/**
 * RadixTree property tests: random operation sequences against a slow, obvious reference model (a
 * set of held sequences with per-insert timestamps), insert-order independence, multi-byte texts,
 * and the chained walk against the plain one. (Literal cases: radix_tree_test.ts.)
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { chunkHashes, utf8 } from "./chunker.ts";
import { RadixTree } from "./radix_tree.ts";
import type { ChunkHashes } from "./types.ts";

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
