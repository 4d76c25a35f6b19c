import assert from "node:assert/strict";
import fc from "fast-check";
import { jsonTooDeep, readBody, valueTooDeep } from "./limits.ts";
import { RouterError } from "../util/errors.ts";

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

Deno.test("readBody: limit by Content-Length and by count, empty body, read timeout", async () => {
  const post = (body: BodyInit | null, headers: Record<string, string> = {}) =>
    new Request("http://x/", { method: "POST", body, headers });
  const kind = async (p: Promise<unknown>) => {
    try {
      await p;
      return "ok";
    } catch (err) {
      assert.ok(err instanceof RouterError);
      return err.kind;
    }
  };
  assert.equal(await kind(readBody(post("abc"), 3, 0)), "ok");
  // A body in several pieces comes back whole and in order.
  const pieces = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(enc.encode("ab"));
      c.enqueue(enc.encode("cd"));
      c.enqueue(enc.encode("e"));
      c.close();
    },
  });
  assert.equal(new TextDecoder().decode(await readBody(post(pieces), 10, 0)), "abcde");
  assert.equal(await kind(readBody(post("abcd"), 3, 0)), "too_large");
  assert.equal(await kind(readBody(post("a", { "content-length": "10" }), 3, 0)), "too_large");
  assert.equal(await kind(readBody(post(""), 3, 0)), "bad_request");
  assert.equal(await kind(readBody(post(null), 3, 0)), "bad_request");
  const slow = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(enc.encode("{"));
    },
  });
  // The read deadline's timer is unref'd (src/util/timer_queue.ts): in the router the listener
  // keeps the process alive; here a plain JS stream does not, so the test holds a timer of its own.
  const keepAlive = setTimeout(() => {}, 10_000);
  try {
    assert.equal(await kind(readBody(post(slow), 100, 30)), "request_timeout");
  } finally {
    clearTimeout(keepAlive);
  }
});
