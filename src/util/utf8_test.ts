import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeUtf8Strict } from "./utf8.ts";

const strict = new TextDecoder("utf-8", { fatal: true });

/** The reference: the fatal decoder's result, or "throws". */
function reference(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch (err) {
    assert.ok(err instanceof TypeError);
    return "throws";
  }
}

function actual(bytes: Uint8Array): string {
  try {
    return decodeUtf8Strict(bytes);
  } catch (err) {
    assert.ok(err instanceof TypeError);
    return "throws";
  }
}

Deno.test("decodeUtf8Strict: valid text, a real U+FFFD, invalid bytes, truncated sequences, BOM", () => {
  const enc = new TextEncoder();
  assert.equal(decodeUtf8Strict(enc.encode('{"a":"héllo 🌍"}')), '{"a":"héllo 🌍"}');
  assert.equal(decodeUtf8Strict(enc.encode("a\uFFFDb")), "a\uFFFDb");
  assert.throws(() => decodeUtf8Strict(new Uint8Array([0x7b, 0xff, 0x7d])), TypeError);
  assert.throws(() => decodeUtf8Strict(new Uint8Array([0x61, 0xe2, 0x82])), TypeError);
  assert.throws(() => decodeUtf8Strict(new Uint8Array([0xed, 0xa0, 0x80])), TypeError); // surrogate
  assert.equal(decodeUtf8Strict(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])), "a");
});

Deno.test("decodeUtf8Strict (property): agrees with the fatal decoder on any bytes", () => {
  const enc = new TextEncoder();
  // Valid text with mutations: random bytes alone are almost never valid UTF-8.
  const mutated = fc.tuple(
    fc.string({ unit: "binary", maxLength: 64 }),
    fc.array(
      fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })),
      { maxLength: 3 },
    ),
  ).map(([s, edits]) => {
    const b = enc.encode(s);
    for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
    return b;
  });
  fc.assert(
    fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 64 })), (bytes) => {
      assert.equal(actual(bytes), reference(bytes));
    }),
    { numRuns: 2000 },
  );
});
