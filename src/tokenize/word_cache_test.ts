/**
 * Word cache tests: lookups agree with a `Map` on random operations (words that share a hash
 * included), words found in place inside a longer text, generations (a word used in every round
 * stays, one left alone for a generation goes), the fixed memory, and budgets too small to store.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { IdBuffer } from "./id_buffer.ts";
import { BYTES_PER_ENTRY, MAX_PROBES, WordCache, wordHash } from "./word_cache.ts";

function idsOf(cache: WordCache, word: string): number[] | undefined {
  const out = new IdBuffer(4);
  return cache.lookup(word, out) ? Array.from(out.ids.subarray(0, out.length)) : undefined;
}

/** Two different words with the same hash (found by brute force, about 2^16 tries). */
function collision(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0;; i++) {
    const word = `w${i}`;
    const h = wordHash(word);
    const other = seen.get(h);
    if (other !== undefined) return [other, word];
    seen.set(h, word);
  }
}

Deno.test("WordCache: lookups agree with a Map, words with one hash included (property)", () => {
  const [x, y] = collision();
  assert.equal(wordHash(x), wordHash(y));
  const op = fc.record({
    word: fc.oneof(fc.constantFrom(x, y, "", "a", "é", "🙂"), fc.string({ maxLength: 5 })),
    ids: fc.array(fc.nat({ max: 2 ** 32 - 1 }), { maxLength: 12 }),
    get: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      // Large enough that nothing is evicted: the cache must then answer exactly like the Map.
      const cache = new WordCache(1 << 20);
      const model = new Map<string, number[]>();
      for (const o of ops) {
        if (o.get || model.has(o.word)) {
          assert.deepEqual(idsOf(cache, o.word), model.get(o.word), o.word);
        } else {
          cache.set(o.word, Uint32Array.from(o.ids));
          model.set(o.word, o.ids);
        }
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("WordCache: a word is found in place inside a longer text", () => {
  const cache = new WordCache(1 << 16);
  cache.set(" world", Uint32Array.of(1879));
  const out = new IdBuffer(4);
  assert.ok(cache.lookupIn("Hello world!", 5, 11, out));
  assert.ok(!cache.lookupIn("Hello world!", 5, 10, out));
  assert.ok(!cache.lookupIn("Hello worle!", 5, 11, out));
  assert.deepEqual(Array.from(out.ids.subarray(0, out.length)), [1879]);
  assert.deepEqual(cache.counts, { hits: 1, misses: 2 });
});

Deno.test("WordCache: a word used every round stays, one left alone for a generation goes", () => {
  const cache = new WordCache(2 * 16 * BYTES_PER_ENTRY); // two generations of 16 entries
  assert.equal(cache.maxEntries, 16);
  const bytes = cache.bytes;
  cache.set("hot", Uint32Array.of(1));
  cache.set("cold", Uint32Array.of(2));
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 10; i++) cache.set(`r${round}w${i}`, Uint32Array.of(round, i));
    assert.deepEqual(idsOf(cache, "hot"), [1], `round ${round}`);
  }
  assert.equal(idsOf(cache, "cold"), undefined);
  assert.deepEqual(idsOf(cache, "r9w9"), [9, 9]);
  assert.ok(cache.size <= 2 * 16);
  assert.equal(cache.bytes, bytes, "the arrays never grow");
});

Deno.test("WordCache: small budgets store little or nothing; long words are not stored", () => {
  const none = new WordCache(100);
  none.set("a", Uint32Array.of(1));
  assert.equal(none.size, 0);
  assert.equal(idsOf(none, "a"), undefined);
  assert.throws(() => new WordCache(-1), RangeError);
  const cache = new WordCache(2 * 256 * BYTES_PER_ENTRY); // 256 entries, 2048 characters each
  cache.set("x".repeat(256), Uint32Array.of(1));
  cache.set("y".repeat(257), Uint32Array.of(2));
  assert.deepEqual(idsOf(cache, "x".repeat(256)), [1]);
  assert.equal(idsOf(cache, "y".repeat(257)), undefined);
});

Deno.test("WordCache: words crafted to share a home slot cost a bounded probe run each", () => {
  const cache = new WordCache(2 * 1024 * BYTES_PER_ENTRY); // 1024 entries, 2048 slots
  // A client picks its words: 300 whose hashes share the low 11 bits, one slot of the table.
  const home = wordHash("w0") & 2047;
  const crafted: string[] = [];
  for (let i = 1; crafted.length < 300; i++) {
    if ((wordHash(`w${i}`) & 2047) === home) crafted.push(`w${i}`);
  }
  for (const [i, word] of crafted.entries()) cache.set(word, Uint32Array.of(i));
  const kept = crafted.filter((word, i) => {
    const ids = idsOf(cache, word);
    if (ids !== undefined) assert.deepEqual(ids, [i], word); // what is kept is right
    return ids !== undefined;
  });
  // Unbounded linear probing keeps all 300 in one run, so every lookup there walks up to 300
  // slots; bounded, the run stops at MAX_PROBES and the rest are encoded again, not cached.
  assert.ok(kept.length > 0 && kept.length <= MAX_PROBES, `${kept.length} kept`);
  cache.set("elsewhere", Uint32Array.of(7)); // other slots still store
  assert.deepEqual(idsOf(cache, "elsewhere"), [7]);
});
