/**
 * The pre-token scanner against the regex it replaces: the pieces of `String#match` with the
 * library's compiled pattern, on random text made of the characters each alternative turns on
 * (apostrophes and contractions in both cases, letters and numbers inside and outside the BMP,
 * every kind of white space, CR and LF runs, punctuation, combining marks, lone surrogates), on
 * arbitrary UTF-16, and on the two real tokenizers' patterns.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { SequencePreTokenizer, SplitPreTokenizer, Tokenizer } from "@huggingface/tokenizers";
import { PreTokenScanner } from "./pretoken_scan.ts";
import { modelFiles, type TestModel } from "./test_models.ts";

function libraryPattern(model: TestModel): RegExp {
  const json = JSON.parse(Deno.readTextFileSync(modelFiles(model).tokenizerJson));
  const pre = new Tokenizer(json, {}).pre_tokenizer as SequencePreTokenizer;
  const split = pre.tokenizers[0] as SplitPreTokenizer;
  return (split as unknown as { pattern: RegExp }).pattern;
}

function pieces(scanner: PreTokenScanner, text: string): string[] {
  const n = scanner.scan(text);
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    out.push(text.slice(start, scanner.ends[i]));
    start = scanner.ends[i];
  }
  return out;
}

const UNITS = [
  "'",
  "'",
  "s",
  "S",
  "t",
  "T",
  "r",
  "R",
  "e",
  "E",
  "v",
  "V",
  "m",
  "M",
  "l",
  "L",
  "d",
  "D",
  "x",
  "word",
  " ",
  " ",
  "  ",
  "\t",
  "\n",
  "\r",
  "\r\n",
  "\n\n",
  "\u000b",
  "\f",
  "\u0085",
  "\u00a0",
  "\u1680",
  "\u2028",
  "\u3000",
  "\u200b",
  "\ufeff",
  "1",
  "42",
  "1234",
  "٣",
  "½",
  "Ⅻ",
  "𝟎",
  "é",
  "e\u0301",
  "\u0301",
  "東京",
  "𝒜",
  "𐐀",
  "🙂",
  "(",
  ")",
  ".",
  ",",
  "!?",
  "_",
  "-",
  "$",
  "\ud800",
  "\udc00",
  "\ud83d",
  "\u0000",
];

const textArb = fc.oneof(
  fc.array(fc.constantFrom(...UNITS), { maxLength: 30 }).map((p) => p.join("")),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 30 }),
);

for (const model of ["qwen3", "llama3"] as const) {
  Deno.test(`PreTokenScanner: same pieces as the ${model} regex (property)`, () => {
    const pattern = libraryPattern(model);
    const scanner = PreTokenScanner.forPattern(pattern);
    assert.ok(scanner !== undefined, "the pattern is known");
    fc.assert(
      fc.property(textArb, (text) => {
        const expected = (text.match(pattern) ?? []).filter((p) => p.length > 0);
        assert.equal(expected.join(""), text, "the regex tiles the text");
        assert.deepEqual(pieces(scanner, text), expected);
      }),
      { numRuns: 4000 },
    );
  });
}

Deno.test("PreTokenScanner: hand-picked cases, and other patterns are not taken", () => {
  const scanner = PreTokenScanner.forPattern(libraryPattern("llama3"))!;
  assert.deepEqual(pieces(scanner, "I'M here's 12345 x\t\ty  \n\n z!!\n"), [
    "I",
    "'M",
    " here",
    "'s",
    " ",
    "123",
    "45",
    " x",
    "\t",
    "\ty",
    "  \n\n",
    " z",
    "!!\n",
  ]);
  assert.equal(scanner.scan(""), 0);
  // "ab", then " ab" 399 times, then the final space: more pieces than the first ends array holds.
  assert.equal(scanner.scan("ab ".repeat(400)), 401);
  assert.equal(PreTokenScanner.forPattern(/\p{L}+/gu), undefined);
  const qwen = libraryPattern("qwen3");
  assert.equal(PreTokenScanner.forPattern(new RegExp(qwen.source, "u")), undefined);
});
