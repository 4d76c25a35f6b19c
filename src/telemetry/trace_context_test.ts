import assert from "node:assert/strict";
import {
  formatTraceparent,
  MAX_TRACESTATE_CHARS,
  parseTraceparent,
  parseTracestate,
} from "./trace_context.ts";

const T = "4bf92f3577b34da6a3ce929d0e0e4736";
const P = "00f067aa0ba902b7";

Deno.test("traceparent: valid version-00 values and future versions are read", () => {
  const table: [string, { traceId: string; spanId: string; flags: number }][] = [
    [`00-${T}-${P}-01`, { traceId: T, spanId: P, flags: 1 }],
    [`00-${T}-${P}-00`, { traceId: T, spanId: P, flags: 0 }],
    [`00-${T}-${P}-03`, { traceId: T, spanId: P, flags: 3 }],
    // Unknown flag bits are ignored (and so not passed on).
    [`00-${T}-${P}-ff`, { traceId: T, spanId: P, flags: 3 }],
    [`00-${T}-${P}-08`, { traceId: T, spanId: P, flags: 0 }],
    // A future version: read by its first 55 characters, more may follow after a dash.
    [`01-${T}-${P}-01`, { traceId: T, spanId: P, flags: 1 }],
    [`cc-${T}-${P}-01-what-the-future-holds`, { traceId: T, spanId: P, flags: 1 }],
    [`fe-${T}-${P}-00-`, { traceId: T, spanId: P, flags: 0 }],
    // Ids with only one non-zero digit are still ids.
    [
      `00-00000000000000000000000000000001-0000000000000001-01`,
      { traceId: "00000000000000000000000000000001", spanId: "0000000000000001", flags: 1 },
    ],
  ];
  for (const [value, want] of table) {
    assert.deepEqual(parseTraceparent(value), want, value);
  }
});

Deno.test("traceparent: each invalid form is refused", () => {
  const table: [string, string][] = [
    ["", "empty"],
    [`00-${T}-${P}`, "no flags"],
    [`00-${T}-${P}-0`, "one flag digit"],
    [`00-${T}-${P}-01-`, "version 00 with a trailing dash"],
    [`00-${T}-${P}-01-extra`, "version 00 with more fields"],
    [`00-${T}-${P}-01 `, "version 00 with a trailing space"],
    [`ff-${T}-${P}-01`, "version ff is forbidden"],
    [`0g-${T}-${P}-01`, "version not hex"],
    [`0A-${T}-${P}-01`, "version upper case"],
    [`cc-${T}-${P}-01extra`, "future version: no dash after the flags"],
    [`cc-${T}-${P}-0`, "future version shorter than 55"],
    [`00-${T.toUpperCase()}-${P}-01`, "trace id upper case"],
    [`00-${T.slice(0, 31)}g-${P}-01`, "trace id not hex"],
    [`00-${"0".repeat(32)}-${P}-01`, "trace id all zero"],
    [`00-${T}1-${P.slice(1)}-01`, "trace id 33 digits"],
    [`00-${T}-${P.toUpperCase()}-01`, "parent id upper case"],
    [`00-${T}-${"0".repeat(16)}-01`, "parent id all zero"],
    [`00-${T}-${P.slice(0, 15)}x-01`, "parent id not hex"],
    [`00-${T}-${P}-0x`, "flags not hex"],
    [`00-${T}-${P}-0F`, "flags upper case"],
    [`00_${T}-${P}-01`, "wrong separator after version"],
    [`00-${T}_${P}-01`, "wrong separator after trace id"],
    [`00-${T}-${P}_01`, "wrong separator after parent id"],
    [`00-${T}-${P}-01, 00-${T}-${P}-01`, "two traceparent fields joined"],
    [`01-${T}-${P}-01, 00-${T}-${P}-01`, "two fields, the first a future version"],
    [` 00-${T}-${P}-01`, "leading space"],
  ];
  for (const [value, why] of table) {
    assert.equal(parseTraceparent(value), null, why);
  }
});

Deno.test("traceparent: written in version 00 and read back", () => {
  assert.equal(formatTraceparent(T, P, 1), `00-${T}-${P}-01`);
  assert.equal(formatTraceparent(T, P, 0), `00-${T}-${P}-00`);
  assert.equal(formatTraceparent(T, P, 3), `00-${T}-${P}-03`);
  assert.deepEqual(parseTraceparent(formatTraceparent(T, P, 2)), {
    traceId: T,
    spanId: P,
    flags: 2,
  });
});

Deno.test("tracestate: valid lists are kept, with spaces around members dropped", () => {
  const table: [string, string][] = [
    ["rojo=00f067aa0ba902b7", "rojo=00f067aa0ba902b7"],
    ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
    ["rojo=1 ,\tcongo=2", "rojo=1,congo=2"],
    ["a=1,,b=2", "a=1,b=2"],
    [
      "fw529a3039@dt=d4cda95b652f4a1592b449d5929fda1b",
      "fw529a3039@dt=d4cda95b652f4a1592b449d5929fda1b",
    ],
    ["k_-*/9=v a!", "k_-*/9=v a!"],
  ];
  for (const [value, want] of table) assert.equal(parseTracestate(value), want, value);
});

Deno.test("tracestate: an invalid list is discarded whole", () => {
  const table: [string | null, string][] = [
    [null, "absent"],
    ["", "empty"],
    [" , ", "only empty members"],
    ["Rojo=1", "upper-case key"],
    ["1rojo=1", "key starting with a digit"],
    ["rojo", "no equals sign"],
    ["=1", "empty key"],
    ["rojo=", "empty value"],
    ["rojo=a=b", "equals sign in the value"],
    ["rojo=a\x01", "control character in the value"],
    ["rojo=1,rojo=2", "duplicate key"],
    ["a@=1", "empty system id"],
    [`${"a".repeat(257)}=1`, "key over 256 characters"],
    [`rojo=${"v".repeat(257)}`, "value over 256 characters"],
    [Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(","), "33 members"],
  ];
  for (const [value, why] of table) assert.equal(parseTracestate(value), null, why);
});

Deno.test("tracestate: 32 members are fine, over 512 characters it is shortened as advised", () => {
  const members32 = Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(",");
  assert.equal(parseTracestate(members32), members32);
  // A long member goes first, then members from the end.
  const long = `big=${"x".repeat(200)}`;
  const small = Array.from({ length: 20 }, (_, i) => `key${i}=${"y".repeat(20)}`);
  const out = parseTracestate([small[0], long, ...small.slice(1)].join(","));
  assert.ok(out !== null && out.length <= MAX_TRACESTATE_CHARS);
  assert.ok(!out.includes("big="));
  assert.ok(out.startsWith(small.slice(0, 3).join(",")));
  assert.equal(out, small.slice(0, out.split(",").length).join(","));
});
