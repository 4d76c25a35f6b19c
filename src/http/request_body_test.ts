/**
 * The body decoder over a scripted input: literal chunked and length bodies, fed whole, byte by
 * byte and split at every position, with literal decoded bytes or the literal failure.
 */

import assert from "node:assert/strict";
import { RouterError } from "../util/errors.ts";
import { BodyDecoder, type BodyInput } from "./request_body.ts";
import { ClientGone } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** An input that hands out `pieces` one per fill, into a small buffer that it compacts. */
function scripted(pieces: Uint8Array[], size = 64): BodyInput & { left(): string } {
  const input = {
    buf: new Uint8Array(size),
    start: 0,
    end: 0,
    fill(): Promise<boolean> {
      const next = pieces.shift();
      if (next === undefined) return Promise.resolve(false);
      if (input.start === input.end) input.start = input.end = 0;
      const used = input.end - input.start;
      if (input.buf.length - input.end < next.length) {
        const grown = new Uint8Array(Math.max(input.buf.length, used + next.length) * 2);
        grown.set(input.buf.subarray(input.start, input.end));
        input.buf = grown;
        input.start = 0;
        input.end = used;
      }
      input.buf.set(next, input.end);
      input.end += next.length;
      return Promise.resolve(true);
    },
    left: () =>
      dec.decode(input.buf.subarray(input.start, input.end)) +
      pieces.map((p) => dec.decode(p)).join(""),
  };
  return input;
}

/** Decodes the body; returns its text and what is left after it, or the error's kind. */
async function decode(
  pieces: Uint8Array[],
  length: number,
): Promise<{ body: string; rest: string } | string> {
  const input = scripted(pieces);
  const d = new BodyDecoder(input, length, 64, 64);
  let body = "";
  try {
    for (;;) {
      const n = await d.available();
      if (n === 0) break;
      body += dec.decode(input.buf.subarray(input.start, input.start + n));
      d.consume(n);
    }
  } catch (err) {
    if (err instanceof ClientGone) return "gone";
    if (err instanceof RouterError) return `${err.status}`;
    throw err;
  }
  assert.ok(d.done);
  return { body, rest: input.left() };
}

/** The splits of `s`: whole, byte by byte, and in two at every position. */
function splits(s: string): Uint8Array[][] {
  const b = enc.encode(s);
  const out: Uint8Array[][] = [[b], [...b].map((x) => new Uint8Array([x]))];
  for (let i = 1; i < b.length; i++) out.push([b.slice(0, i), b.slice(i)]);
  return out;
}

const CHUNKED: [string, { body: string; rest: string } | string][] = [
  ["5\r\nhello\r\n0\r\n\r\n", { body: "hello", rest: "" }],
  ["5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /", { body: "hello world", rest: "GET /" }],
  ["A\r\n0123456789\r\n0\r\n\r\n", { body: "0123456789", rest: "" }],
  ["a;name=v;x\r\n0123456789\r\n0;end\r\n\r\n", { body: "0123456789", rest: "" }],
  ["5 ;ext\r\nhello\r\n0\r\n\r\n", { body: "hello", rest: "" }],
  ["5\r\nhello\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT", { body: "hello", rest: "NEXT" }],
  ["0\r\n\r\n", { body: "", rest: "" }],
  ["000\r\n\r\n", { body: "", rest: "" }],
  // Broken framing: 400.
  ["5\r\nhelloX\r\n0\r\n\r\n", "400"], // data not followed by CRLF
  ["5\r\nhello\n0\r\n\r\n", "400"],
  ["g\r\n", "400"],
  ["\r\n", "400"],
  ["-5\r\nhello\r\n0\r\n\r\n", "400"],
  ["0x5\r\nhello\r\n0\r\n\r\n", "400"],
  [" 5\r\nhello\r\n0\r\n\r\n", "400"],
  ["5 x\r\nhello\r\n0\r\n\r\n", "400"],
  ["5\nhello\r\n0\r\n\r\n", "400"], // bare LF
  ["5\rx\nhello\r\n0\r\n\r\n", "400"], // bare CR
  ["5;a\x01b\r\nhello\r\n0\r\n\r\n", "400"], // control character in an extension
  ["12345678901234\r\n", "400"], // 14 hex digits
  ["5;" + "x".repeat(80) + "\r\nhello\r\n0\r\n\r\n", "400"], // size line over maxLine (64)
  ["0\r\n" + "X: 1\r\n".repeat(12) + "\r\n", "400"], // trailers over maxTrailer (64)
  // Cut short: the client is gone.
  ["5\r\nhel", "gone"],
  ["5\r\nhello", "gone"],
  ["5\r\nhello\r", "gone"],
  ["5\r\nhello\r\n", "gone"],
  ["5\r\nhello\r\n0\r\n", "gone"],
  ["5\r\nhello\r\n0\r\nX: 1\r\n", "gone"],
  ["", "gone"],
];

Deno.test("chunked bodies, split anywhere", async () => {
  for (const [wire, want] of CHUNKED) {
    for (const pieces of splits(wire)) {
      const count = pieces.length;
      const got = await decode(pieces, -1);
      assert.deepEqual(got, want, `${JSON.stringify(wire)} in ${count} pieces`);
    }
  }
});

Deno.test("length bodies: exact, followed by the next request, cut short", async () => {
  const cases: [string, number, { body: string; rest: string } | string][] = [
    ["hello", 5, { body: "hello", rest: "" }],
    ["helloGET /", 5, { body: "hello", rest: "GET /" }],
    ["", 0, { body: "", rest: "" }],
    ["hel", 5, "gone"],
  ];
  for (const [wire, length, want] of cases) {
    for (const pieces of splits(wire)) {
      assert.deepEqual(await decode(pieces, length), want, `${wire} ${pieces.length}`);
    }
  }
});

Deno.test("a body larger than the input buffer passes through in pieces", async () => {
  const data = "x".repeat(1000);
  const wire = `3e8\r\n${data}\r\n0\r\n\r\n`;
  const input = scripted([enc.encode(wire.slice(0, 10)), enc.encode(wire.slice(10))], 16);
  const d = new BodyDecoder(input, -1);
  let body = "";
  for (let n = await d.available(); n > 0; n = await d.available()) {
    body += dec.decode(input.buf.subarray(input.start, input.start + n));
    d.consume(n);
  }
  assert.equal(body, data);
  assert.equal(d.left, -1);
  assert.equal(new BodyDecoder(input, 7).left, 7);
});
