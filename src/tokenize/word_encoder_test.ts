/**
 * WordEncoder's shortcuts are taken for the tokenizers they were written for: the pre-token
 * scanner and BPE on ids for Qwen3 and Llama 3 (the ids are checked against the library by
 * pretoken_scan_test.ts, bpe_ids_test.ts and section_encoder_test.ts; this checks the speed-up is
 * not silently lost, e.g. when a library version compiles the pattern differently); and the
 * Split shortcut of other pre-tokenizers (`String#match` when the matches tile the text) gives the
 * library's ids, with a step whose matches leave gaps and one whose matches tile.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Tokenizer } from "@huggingface/tokenizers";
import { IdBuffer } from "./id_buffer.ts";
import { modelFiles } from "./test_models.ts";
import { WordEncoder } from "./word_encoder.ts";

for (const model of ["qwen3", "llama3"] as const) {
  Deno.test(`WordEncoder: ${model} takes the scanner and BPE on ids, same ids as the library`, () => {
    const json = JSON.parse(Deno.readTextFileSync(modelFiles(model).tokenizerJson));
    const tok = new Tokenizer(json, {});
    const encoder = new WordEncoder(tok, new Map(), 1 << 20);
    assert.deepEqual(encoder.shortcuts, { scanner: true, bpeIds: true });
    const text = "Zebras' stripes: 12345 quixotic\n\n  words, twice; zebras' stripes!";
    const out = new IdBuffer(16);
    encoder.encodeInto(text, out);
    const expected = tok.encode(text, { add_special_tokens: false }).ids;
    assert.deepEqual(Array.from(out.result()), expected);
  });
}

Deno.test("WordEncoder: two Split steps before ByteLevel (no scanner) give the library's ids (property)", () => {
  const json = JSON.parse(Deno.readTextFileSync(modelFiles("qwen3").tokenizerJson));
  const [split, byteLevel] = json.pre_tokenizer.pretokenizers;
  // Digits isolated first (its matches leave gaps: the library's step), then Qwen's regex on each
  // piece (its matches tile: the shortcut), as DeepSeek-style configs chain them.
  const digits = {
    type: "Split",
    pattern: { Regex: "\\p{N}{1,3}" },
    behavior: "Isolated",
    invert: false,
  };
  json.pre_tokenizer.pretokenizers = [digits, split, byteLevel];
  const tok = new Tokenizer(json, {});
  const encoder = new WordEncoder(tok, new Map(), 1 << 20);
  assert.deepEqual(encoder.shortcuts, { scanner: false, bpeIds: true });
  const unit = fc.constantFrom(..."ab c1234 \n\t'sé東🙂!?.,_-");
  fc.assert(
    fc.property(fc.string({ unit, maxLength: 40 }), (text) => {
      const out = new IdBuffer(16);
      encoder.encodeInto(text, out);
      const expected = tok.encode(text, { add_special_tokens: false }).ids;
      assert.deepEqual(Array.from(out.result()), expected, JSON.stringify(text));
    }),
    { numRuns: 500 },
  );
});
