/**
 * BPE on ids against the library's BPE model: the same ids for random pre-tokens of the real Qwen3
 * and Llama 3 tokenizers (letters in random order, so merges are new; multi-byte text; Llama 3's
 * `ignore_merges`), and on a small hand-made model: ties go to the leftmost pair, a pair listed
 * twice has its last rank, and the cases it leaves to the library.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Tokenizer } from "@huggingface/tokenizers";
import { BpeIds, MAX_FAST_SYMBOLS } from "./bpe_ids.ts";
import { modelFiles, type TestModel } from "./test_models.ts";

interface ModelFields {
  tokens_to_ids: Map<string, number>;
  (tokens: string[]): string[];
}

function libraryIds(tok: Tokenizer, piece: string): number[] {
  const model = tok.model as unknown as ModelFields;
  return model([piece]).map((t) => model.tokens_to_ids.get(t)!);
}

const wordArb = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzAEIOU"), minLength: 1 }),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }),
  fc.string({ unit: fc.constantFrom(..."aeiouéü東京🙂 "), minLength: 1, maxLength: 40 }),
);

for (const model of ["qwen3", "llama3"] as const satisfies TestModel[]) {
  Deno.test(`BpeIds: the library's ids for random ${model} pre-tokens (property)`, () => {
    const json = JSON.parse(Deno.readTextFileSync(modelFiles(model).tokenizerJson));
    const tok = new Tokenizer(json, {});
    const bpe = BpeIds.create(tok, new Map());
    assert.ok(bpe !== undefined);
    fc.assert(
      fc.property(fc.oneof(wordArb, wordArb.map((w) => " " + w)), (word) => {
        for (const piece of tok.pre_tokenizer!(word, { section_index: 0 })) {
          const ids = bpe.encode(piece);
          if (ids === undefined) {
            assert.ok(piece.length > MAX_FAST_SYMBOLS, `gave up on ${JSON.stringify(piece)}`);
          } else {
            assert.deepEqual(Array.from(ids), libraryIds(tok, piece), piece);
          }
        }
      }),
      { numRuns: 1500 },
    );
  });
}

/** A byte-less BPE model over a, b, c with the given merges. */
function tiny(merges: string[], vocabExtra: Record<string, number> = {}, model = {}) {
  return new Tokenizer({
    normalizer: null,
    pre_tokenizer: null,
    added_tokens: [],
    post_processor: null,
    decoder: null,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: { a: 0, b: 1, c: 2, aa: 3, ab: 4, bc: 5, aab: 6, ...vocabExtra },
      merges,
      ...model,
    },
  }, {});
}

Deno.test("BpeIds: ties go to the leftmost pair, a repeated merge has its last rank", () => {
  // "aaa": both (a, a) pairs have rank 0; the leftmost merges first: aa + a, then (aa, a) has no
  // merge. "aab": (a, a) rank 0 before (a, b) rank 1 gives aa + b, then aab.
  const tok = tiny(["a a", "a b", "aa b", "b c"]);
  const bpe = BpeIds.create(tok, new Map())!;
  for (const word of ["aaa", "aab", "abc", "aaaa", "bcab", "cba", "a", "abab"]) {
    assert.deepEqual(Array.from(bpe.encode(word)!), libraryIds(tok, word), word);
  }
  assert.deepEqual(Array.from(bpe.encode("aaa")!), [3, 0]);
  // "b c" listed first and again last: the last rank (after "a b") decides "abc" → ab + c.
  const again = tiny(["b c", "a a", "a b", "b c"]);
  assert.deepEqual(Array.from(BpeIds.create(again, new Map())!.encode("abc")!), [4, 2]);
  assert.deepEqual(libraryIds(again, "abc"), [4, 2]);
  assert.equal(bpe.encode("")!.length, 0);
});

Deno.test("BpeIds: what it leaves to the library", () => {
  const tok = tiny(["a a", "b c", "c c"]);
  const bpe = BpeIds.create(tok, new Map())!;
  assert.equal(bpe.encode("axa"), undefined, "a character outside the vocabulary");
  assert.equal(bpe.encode("acc"), undefined, "a merge whose token is not in the vocabulary");
  assert.equal(bpe.encode("a".repeat(MAX_FAST_SYMBOLS + 1)), undefined, "a long pre-token");
  assert.deepEqual(Array.from(bpe.encode("a".repeat(MAX_FAST_SYMBOLS))!), Array(48).fill(3));
  // With ignore_merges a pre-token in the vocabulary is that token, whatever the merges say.
  const ignoring = tiny(["a b"], { abc: 7 }, { ignore_merges: true });
  assert.deepEqual(Array.from(BpeIds.create(ignoring, new Map())!.encode("abc")!), [7]);
  assert.deepEqual(libraryIds(ignoring, "abc"), [7]);
  assert.equal(BpeIds.create(tiny([], {}, { byte_fallback: true }), new Map()), undefined);
  assert.equal(BpeIds.create(tiny([], {}, { end_of_word_suffix: "</w>" }), new Map()), undefined);
  assert.equal(BpeIds.create(tok, new Map([["ab", 9]])), undefined, "an added token's other id");
  assert.ok(BpeIds.create(tok, new Map([["ab", 4]])) !== undefined);
});
