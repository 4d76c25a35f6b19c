/**
 * The faster ByteLevel step gives the library's strings and ids: a tokenizer with it against a
 * pristine one built from the same tokenizer.json, on arbitrary strings (lone surrogates,
 * multi-byte and control characters included).
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Tokenizer } from "@huggingface/tokenizers";
import { speedUpByteLevel } from "./byte_level.ts";
import { modelFiles } from "./test_models.ts";

async function pair(): Promise<{ fast: Tokenizer; pristine: Tokenizer }> {
  const files = modelFiles("llama3");
  const json = JSON.parse(await Deno.readTextFile(files.tokenizerJson));
  const config = JSON.parse(await Deno.readTextFile(files.tokenizerConfig));
  const fast = new Tokenizer(structuredClone(json), structuredClone(config));
  assert.equal(speedUpByteLevel(fast), 1);
  return { fast, pristine: new Tokenizer(json, config) };
}

Deno.test("speedUpByteLevel: same pre-tokens and ids as the library (property)", async () => {
  const { fast, pristine } = await pair();
  const text = fc.oneof(
    fc.string({ unit: "binary", maxLength: 60 }),
    fc.string({ unit: "grapheme", maxLength: 60 }),
    fc.array(
      fc.constantFrom("a", " ", "\n", "é", "東京", "🙂", "\ud800", "\udc00", "\u0000", "'s"),
      {
        maxLength: 30,
      },
    ).map((p) => p.join("")),
  );
  fc.assert(
    fc.property(text, (t) => {
      assert.deepEqual(fast.pre_tokenizer!(t), pristine.pre_tokenizer!(t));
      assert.deepEqual(
        fast.encode(t, { add_special_tokens: false }).ids,
        pristine.encode(t, { add_special_tokens: false }).ids,
      );
    }),
    { numRuns: 500 },
  );
});
