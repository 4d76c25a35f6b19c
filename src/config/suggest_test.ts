import assert from "node:assert/strict";
import { closest, didYouMean, editDistance } from "./suggest.ts";

Deno.test("editDistance: insert, delete, substitute and swap cost 1; stops past max", () => {
  const cases: [string, string, number][] = [
    ["", "", 0],
    ["abc", "abc", 0],
    ["abc", "", 3],
    ["strategy", "stratgy", 1],
    ["interval", "intervall", 1],
    ["budget", "bugdet", 1],
    ["ab", "ba", 1],
    ["kitten", "sitting", 3],
    ["ca", "abc", 3],
  ];
  for (const [a, b, want] of cases) {
    assert.equal(editDistance(a, b), want, `${a} ${b}`);
    assert.equal(editDistance(b, a), want, `${b} ${a}`);
  }
  assert.equal(editDistance("kitten", "sitting", 2), Infinity);
  assert.equal(editDistance("a", "abcdef", 2), Infinity);
});

Deno.test("closest: without case, _ or -; within a third of the length; first of a tie", () => {
  const keys = ["strategy", "chunk_size", "min_match_chunks", "seed", "session_header"];
  assert.equal(closest("stratgy", keys), "strategy");
  assert.equal(closest("chunkSize", keys), "chunk_size");
  assert.equal(closest("CHUNK-SIZE", keys), "chunk_size");
  assert.equal(closest("sed", keys), "seed");
  assert.equal(closest("xyz", keys), undefined);
  assert.equal(closest("strategy", keys), undefined, "a known name is not suggested");
  assert.equal(closest("ab", ["ax", "ay"]), "ax");
  assert.equal(closest("s".repeat(65), ["s".repeat(64)]), undefined, "huge names: no work");
  assert.equal(closest("stratgy", keys, 0), undefined);
  assert.equal(didYouMean("stratgy", keys), ", did you mean strategy?");
  assert.equal(didYouMean("nothing", keys), "");
});
