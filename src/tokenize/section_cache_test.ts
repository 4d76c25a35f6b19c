/**
 * Section cache tests: second-chance order, the byte budget, oversize entries, long keys, the byte
 * counter against a full recount, and the cache against a slow obvious second-chance reference
 * (an array in insertion order) on random operation sequences.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { heapAfterGc } from "./heap.ts";
import { ENTRY_OVERHEAD, LONG_KEY, SectionCache } from "./section_cache.ts";

const ids = (...xs: number[]) => Uint32Array.from(xs);

Deno.test("SectionCache: a hit refreshes recency and the oldest entry goes first", () => {
  const one = SectionCache.cost("a", ids(1));
  const small = new SectionCache(8 * one); // eight one-id entries
  small.set("a", ids(1));
  small.set("b", ids(2));
  small.set("c", ids(3));
  small.set("d", ids(4));
  assert.equal(small.size, 4);
  assert.deepEqual(small.get("a"), ids(1)); // a is now the newest
  for (const k of ["e", "f", "g", "h", "i"]) small.set(k, ids(9));
  // Nine entries for a budget of eight: b, the oldest, went; a, refreshed, stayed.
  assert.equal(small.get("b"), undefined);
  assert.deepEqual(small.get("a"), ids(1));
  const s = small.stats();
  assert.equal(s.hits, 2);
  assert.equal(s.misses, 1);
  assert.ok(s.bytes <= s.maxBytes);
  assert.equal(s.bytes, small.recount());
  assert.equal(s.evictions, 1);
});

Deno.test("SectionCache: an entry over an eighth of the budget is not stored", () => {
  const cache = new SectionCache(1000);
  const big = new Uint32Array(40); // 160 + 2 + overhead > 125
  cache.set("k", big);
  assert.equal(cache.size, 0);
  assert.equal(cache.get("k"), undefined);
  cache.set("k", ids(1)); // 4 + 2 + overhead ≤ 125
  assert.equal(cache.size, 1);
});

Deno.test("SectionCache: a 0 budget stores nothing", () => {
  const cache = new SectionCache(0);
  cache.set("a", ids(1));
  assert.equal(cache.size, 0);
  assert.equal(cache.stats().bytes, 0);
  assert.throws(() => new SectionCache(-1), RangeError);
});

Deno.test("SectionCache: long keys carry a hash prefix, short keys are the text", () => {
  assert.equal(SectionCache.key("hello"), "hello");
  const long = "x".repeat(LONG_KEY + 1);
  const key = SectionCache.key(long);
  assert.equal(key.length, long.length + 16);
  assert.ok(key.endsWith(long));
  assert.notEqual(SectionCache.key("y" + long.slice(1)).slice(0, 16), key.slice(0, 16));
  assert.equal(SectionCache.cost("ab", ids(1, 2, 3)), 4 + 12 + ENTRY_OVERHEAD);
});

Deno.test("SectionCache: a key cut from a long text does not keep the text alive", () => {
  // A section is a substring of the rendered prompt, and V8 substrings point into their parent:
  // stored as is, every cached section would keep its whole prompt alive, far over the budget.
  const cache = new SectionCache(1 << 20);
  const before = heapAfterGc();
  for (let i = 0; i < 200; i++) {
    const prompt = `turn ${i} `.repeat(25_000) + `<|im_end|>section ${i} ` + "y".repeat(200);
    const section = prompt.split(/(<\|im_end\|>)/)[2]; // as SectionEncoder splits
    cache.set(SectionCache.key(section), ids(i));
  }
  const grown = heapAfterGc() - before;
  assert.equal(cache.size, 200);
  // 200 prompts of about 250 KB each would be 50 MB; the entries themselves are about 100 KB.
  assert.ok(grown < 4 * 1024 * 1024, `the heap grew by ${grown} bytes`);
});

Deno.test("SectionCache: a value too big to keep replaces the key's older one by nothing", () => {
  const cache = new SectionCache(768);
  cache.set("", new Uint32Array(0));
  assert.equal(cache.get("")?.length, 0);
  cache.set("", new Uint32Array(1)); // over an eighth of the budget: not stored
  assert.equal(cache.get(""), undefined, "no stale value");
  assert.equal(cache.stats().bytes, cache.recount());
});

Deno.test("SectionCache: bytes equal a recount and stay within the budget (property)", () => {
  const op = fc.record({
    key: fc.string({ maxLength: 6 }),
    n: fc.integer({ min: 0, max: 20 }),
    get: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 4000 }),
      fc.array(op, { maxLength: 80 }),
      (budget, ops) => {
        const cache = new SectionCache(budget);
        const model = new Map<string, number>();
        for (const o of ops) {
          if (o.get) {
            const got = cache.get(o.key);
            if (got !== undefined) assert.equal(got.length, model.get(o.key));
          } else {
            cache.set(o.key, new Uint32Array(o.n));
            model.set(o.key, o.n);
          }
          const s = cache.stats();
          assert.equal(s.bytes, cache.recount());
          assert.ok(s.bytes <= budget);
        }
      },
    ),
    { numRuns: 200 },
  );
});

/** Second chance spelled out: an array in insertion order, a used flag per key. */
class ReferenceCache {
  readonly order: string[] = [];
  readonly entries = new Map<string, { n: number; used: boolean }>();
  bytes = 0;
  constructor(readonly maxBytes: number) {}
  cost(key: string, n: number): number {
    return SectionCache.cost(key, new Uint32Array(n));
  }
  get(key: string): number | undefined {
    const e = this.entries.get(key);
    if (e !== undefined) e.used = true;
    return e?.n;
  }
  set(key: string, n: number): void {
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.order.splice(this.order.indexOf(key), 1);
      this.entries.delete(key);
      this.bytes -= this.cost(key, old.n);
    }
    if (this.cost(key, n) * 8 > this.maxBytes) return;
    this.order.push(key);
    this.entries.set(key, { n, used: false });
    this.bytes += this.cost(key, n);
    while (this.bytes > this.maxBytes) {
      const k = this.order.shift()!;
      const e = this.entries.get(k)!;
      if (e.used) {
        e.used = false;
        this.order.push(k);
      } else {
        this.entries.delete(k);
        this.bytes -= this.cost(k, e.n);
      }
    }
  }
}

Deno.test("SectionCache: holds exactly what a second-chance reference holds (property)", () => {
  const op = fc.record({
    key: fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"),
    n: fc.integer({ min: 0, max: 8 }),
    get: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.integer({ min: 800, max: 3000 }),
      fc.array(op, { maxLength: 200 }),
      (budget, ops) => {
        const cache = new SectionCache(budget);
        const ref = new ReferenceCache(budget);
        for (const o of ops) {
          if (o.get) {
            assert.equal(cache.get(o.key)?.length, ref.get(o.key));
          } else {
            cache.set(o.key, new Uint32Array(o.n));
            ref.set(o.key, o.n);
          }
          assert.equal(cache.stats().bytes, ref.bytes);
          assert.equal(cache.size, ref.entries.size);
        }
      },
    ),
    { numRuns: 300 },
  );
});
