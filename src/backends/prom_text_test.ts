import assert from "node:assert/strict";
import { lineName, parseSample, parseValue } from "./prom_text.ts";

const SAMPLES: { line: string; name: string; labels: [string, string][]; value: number }[] = [
  { line: "up 1", name: "up", labels: [], value: 1 },
  { line: "vllm:x{} 2.5", name: "vllm:x", labels: [], value: 2.5 },
  {
    line: 'vllm:x{engine="0",model_name="m"} 1.2e+06',
    name: "vllm:x",
    labels: [["engine", "0"], ["model_name", "m"]],
    value: 1.2e6,
  },
  {
    line: 'x{a="say \\"hi\\"",b="back\\\\slash",c="two\\nlines"} 3',
    name: "x",
    labels: [["a", 'say "hi"'], ["b", "back\\slash"], ["c", "two\nlines"]],
    value: 3,
  },
  { line: 'x{a="}, {"} 4', name: "x", labels: [["a", "}, {"]], value: 4 },
  { line: 'x{a="b",} 5', name: "x", labels: [["a", "b"]], value: 5 },
  { line: 'x { a = "b" , c="d" } 6', name: "x", labels: [["a", "b"], ["c", "d"]], value: 6 },
  { line: "x\t7\t1712000000000", name: "x", labels: [], value: 7 },
  { line: "x 8 1712000000.123", name: "x", labels: [], value: 8 },
  { line: "x 9\r", name: "x", labels: [], value: 9 },
  { line: 'x_total 10 # {trace_id="abc"} 1 1712000000', name: "x_total", labels: [], value: 10 },
  { line: "x -1.5e-3", name: "x", labels: [], value: -0.0015 },
  { line: "x .5", name: "x", labels: [], value: 0.5 },
  { line: "x +Inf", name: "x", labels: [], value: Infinity },
  { line: "x -Inf", name: "x", labels: [], value: -Infinity },
  { line: 'x{a="é ☃"} 11', name: "x", labels: [["a", "é ☃"]], value: 11 },
  { line: 'x{a="\\q"} 12', name: "x", labels: [["a", "\\q"]], value: 12 },
  {
    line: '{"my.metric",model_name="m"} 13',
    name: "my.metric",
    labels: [["model_name", "m"]],
    value: 13,
  },
  { line: '{"my.metric"} 14', name: "my.metric", labels: [], value: 14 },
  { line: '  x{"quoted.label"="v"} 15', name: "x", labels: [["quoted.label", "v"]], value: 15 },
];

for (const c of SAMPLES) {
  Deno.test(`parseSample: ${JSON.stringify(c.line)}`, () => {
    const s = parseSample(c.line);
    assert.ok(s !== undefined, "should parse");
    assert.equal(s.name, c.name);
    assert.deepEqual([...s.labels], c.labels);
    assert.equal(s.value, c.value);
    assert.equal(lineName(c.line).name, c.name);
  });
}

Deno.test("parseSample: NaN is read as NaN", () => {
  assert.ok(Number.isNaN(parseSample("x NaN")!.value));
  assert.ok(Number.isNaN(parseSample("x nan")!.value));
});

const MALFORMED = [
  "x",
  "x ",
  "x{} ",
  'x{a="b"',
  'x{a="b} 1',
  "x{a=b} 1",
  'x{a="b" c="d"} 1',
  'x{,a="b"} 1',
  'x{1a="b"} 1',
  'x{a="b"}1x 1',
  "x one",
  "x 0x1F",
  "x Infinity",
  "x 1 2 3",
  "x 1 ts",
  "9x 1",
  '{"unterminated} 1',
  '{a="b"} 1', // braces with no name at all
  'x{a="trailing backslash\\',
];

for (const line of MALFORMED) {
  Deno.test(`parseSample: malformed ${JSON.stringify(line)}`, () => {
    assert.equal(parseSample(line), undefined);
  });
}

Deno.test("lineName: kinds and names without parsing the rest", () => {
  assert.deepEqual(lineName("# HELP vllm:x Some help"), { kind: "help", name: "vllm:x" });
  assert.deepEqual(lineName("# TYPE vllm:x gauge"), { kind: "type", name: "vllm:x" });
  assert.deepEqual(lineName("#TYPE vllm:x gauge"), { kind: "type", name: "vllm:x" });
  assert.deepEqual(lineName("# HELPER x"), { kind: "comment", name: "" });
  assert.deepEqual(lineName("# just a comment"), { kind: "comment", name: "" });
  assert.deepEqual(lineName("# EOF"), { kind: "comment", name: "" });
  assert.deepEqual(lineName(""), { kind: "blank", name: "" });
  assert.deepEqual(lineName("   \r"), { kind: "blank", name: "" });
  assert.deepEqual(lineName('vllm:x_bucket{le="0.1"} 3'), {
    kind: "sample",
    name: "vllm:x_bucket",
  });
  assert.deepEqual(lineName('{"a.b",c="d"} 1'), { kind: "sample", name: "a.b" });
  assert.deepEqual(lineName('{c="d"} 1'), { kind: "sample", name: "" });
});

Deno.test("parseValue: Go float forms only", () => {
  assert.equal(parseValue("1"), 1);
  assert.equal(parseValue("-0"), -0);
  assert.equal(parseValue("1."), 1);
  assert.equal(parseValue("1E3"), 1000);
  assert.equal(parseValue("+2"), 2);
  assert.equal(parseValue("Inf"), Infinity);
  for (const bad of ["", " ", "1e", "e3", "--1", "1,5", "0b1", "Infinity", "1_000"]) {
    assert.equal(parseValue(bad), undefined, bad);
  }
});
