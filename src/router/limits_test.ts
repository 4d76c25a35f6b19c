import assert from "node:assert/strict";
import fc from "fast-check";
import { jsonTooDeep, valueTooDeep } from "./limits.ts";

const enc = new TextEncoder();

/** Depth of a JSON value, counting containers, by plain recursion (the slow obvious reference). */
function depthOf(v: unknown): number {
  if (typeof v !== "object" || v === null) return 0;
  const children = Array.isArray(v) ? v : Object.values(v);
  return 1 + Math.max(0, ...children.map(depthOf));
}

Deno.test("depth checks: literal cases, brackets in strings and escapes ignored", () => {
  const cases: [string, number][] = [
    ["1", 0],
    ['"[[[["', 0],
    ["[]", 1],
    ["{}", 1],
    ['{"a":[1,{"b":[]}]}', 4],
    ['["\\"[[[", ["x\\\\"], "]]]"]', 2],
    ['{"k\\"{":{"v":"\\\\\\"[["}}', 2],
    ["[[[[[[[[[[]]]]]]]]]]", 10],
  ];
  for (const [text, depth] of cases) {
    for (const max of [depth - 1, depth, depth + 1]) {
      if (max < 0) continue;
      assert.equal(jsonTooDeep(enc.encode(text), max), depth > max, `scan ${text} max ${max}`);
      assert.equal(valueTooDeep(JSON.parse(text), max), depth > max, `walk ${text} max ${max}`);
    }
  }
});

Deno.test("depth checks: the byte scan and the value walk agree with a recursive reference", () => {
  const value = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.string({ unit: fc.constantFrom("[", "]", "{", "}", '"', "\\", "a", "é", "😀") }),
      fc.integer(),
      fc.constant(null),
      fc.array(tie("node"), { maxLength: 4 }),
      fc.dictionary(fc.string({ maxLength: 4 }), tie("node"), { maxKeys: 3 }),
    ),
  })).node;
  fc.assert(
    fc.property(value, fc.integer({ min: 0, max: 8 }), (v, max) => {
      const want = depthOf(v) > max;
      assert.equal(valueTooDeep(v, max), want);
      assert.equal(jsonTooDeep(enc.encode(JSON.stringify(v)), max), want);
      assert.equal(jsonTooDeep(enc.encode(JSON.stringify(v, null, 1)), max), want);
    }),
    { numRuns: 500 },
  );
});

Deno.test("depth checks handle 100 000 levels without recursion", () => {
  const text = "[".repeat(100_000) + "]".repeat(100_000);
  assert.equal(jsonTooDeep(enc.encode(text), 64), true);
  assert.equal(valueTooDeep(JSON.parse(text), 64), true);
  assert.equal(valueTooDeep(JSON.parse(text), 100_000), false);
});
