import assert from "node:assert/strict";
import { drawAnswerLength, formatAnswerLength, parseAnswerLength } from "./answer_length.ts";
import { SeededRng } from "../util/rng.ts";

Deno.test("answer-length specs parse, print back, and reject bad forms", () => {
  for (const spec of ["max", "fixed:64", "geometric:200", "lognormal:150:1"]) {
    assert.equal(formatAnswerLength(parseAnswerLength(spec)), spec);
  }
  for (
    const bad of ["", "geometric", "geometric:0", "fixed:1.5", "lognormal:10", "max:3", "zipf:2"]
  ) {
    assert.throws(() => parseAnswerLength(bad), /answer length must be one of/, bad);
  }
});

Deno.test("answer-length draws have the stated means and are at least 1", () => {
  const cases = [
    { spec: "geometric:200", mean: 200 },
    { spec: "lognormal:150:1", mean: 150 },
    { spec: "fixed:7", mean: 7 },
  ];
  for (const c of cases) {
    const rng = new SeededRng(3);
    const m = parseAnswerLength(c.spec);
    const xs = Array.from({ length: 20_000 }, () => drawAnswerLength(m, rng));
    assert.ok(xs.every((x) => Number.isInteger(x) && x >= 1), c.spec);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(mean - c.mean) < 0.05 * c.mean, `${c.spec}: mean ${mean}`);
  }
  assert.equal(drawAnswerLength({ kind: "max" }, new SeededRng(1)), Infinity);
});
