/**
 * WordEncoder's shortcuts are taken for the tokenizers they were written for: the pre-token
 * scanner and BPE on ids for Qwen3 and Llama 3 (the ids are checked against the library by
 * pretoken_scan_test.ts, bpe_ids_test.ts and section_encoder_test.ts; this checks the speed-up is
 * not silently lost, e.g. when a library version compiles the pattern differently).
 *
 * @module
 */

import assert from "node:assert/strict";
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
