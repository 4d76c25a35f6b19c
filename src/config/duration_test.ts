import assert from "node:assert/strict";
import { parseByteSize, parseDuration } from "./duration.ts";

Deno.test("parseDuration reads Go-style strings and seconds as numbers", () => {
  const cases: [string | number, number][] = [
    ["0", 0],
    ["0s", 0],
    ["150ms", 150],
    ["1.5s", 1500],
    ["1.1s", 1100],
    [".5s", 500],
    ["2m", 120_000],
    ["1h30m", 5_400_000],
    ["2h45m30.5s", 9_930_500],
    ["1s500ms", 1500],
    ["100us", 0.1],
    ["100µs", 0.1],
    ["100μs", 0.1],
    ["2500000ns", 2.5],
    [0, 0],
    [2, 2000],
    [1.5, 1500],
    [0.25, 250],
  ];
  for (const [input, ms] of cases) {
    assert.equal(parseDuration(input), ms, `parseDuration(${JSON.stringify(input)})`);
  }
});

Deno.test("parseDuration rejects what it does not fully understand", () => {
  const bad: (string | number)[] = [
    "",
    "5",
    "1.5",
    "s",
    "5 s",
    " 5s",
    "5s ",
    "5sec",
    "5d",
    "-5s",
    "+5s",
    "5S",
    "1h 30m",
    "1e3s",
    "5s5",
    -1,
    NaN,
    Infinity,
    "9".repeat(400) + "h",
  ];
  for (const input of bad) {
    assert.throws(
      () => parseDuration(input),
      RangeError,
      `parseDuration(${JSON.stringify(input)})`,
    );
  }
});

Deno.test("parseByteSize reads integers and SI/IEC units", () => {
  const cases: [string | number, number][] = [
    [0, 0],
    [1024, 1024],
    ["0B", 0],
    ["100B", 100],
    ["1kB", 1000],
    ["1KB", 1000],
    ["1MB", 1_000_000],
    ["2GB", 2_000_000_000],
    ["512KiB", 524_288],
    ["8MiB", 8_388_608],
    ["8 MiB", 8_388_608],
    ["1GiB", 1_073_741_824],
    ["1.5MiB", 1_572_864],
    ["0.3KB", 300],
  ];
  for (const [input, bytes] of cases) {
    assert.equal(parseByteSize(input), bytes, `parseByteSize(${JSON.stringify(input)})`);
  }
});

Deno.test("parseByteSize rejects bad sizes", () => {
  const bad: (string | number)[] = [
    "",
    "8",
    "MiB",
    "8mib",
    "8 Mi",
    "8TB",
    "-1KiB",
    "1.5B",
    "8  MiB",
    " 8MiB",
    -1,
    1.5,
    NaN,
    Infinity,
    2 ** 53,
  ];
  for (const input of bad) {
    assert.throws(
      () => parseByteSize(input),
      RangeError,
      `parseByteSize(${JSON.stringify(input)})`,
    );
  }
});
