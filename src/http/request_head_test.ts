/**
 * The request head parser: table-driven, literal heads in, literal parts or statuses out.
 */

import assert from "node:assert/strict";
import {
  findHeadEnd,
  HEAD_BARE_LF,
  HEAD_INCOMPLETE,
  HeadError,
  latin1,
  MAX_FIELDS,
  parseRequestHead,
  type RequestHead,
  trimOws,
} from "./request_head.ts";

const enc = new TextEncoder();

function parse(text: string): RequestHead | number {
  try {
    return parseRequestHead(text);
  } catch (err) {
    if (err instanceof HeadError) return err.status;
    throw err;
  }
}

Deno.test("request line: targets, versions and methods", () => {
  const cases: [string, Partial<RequestHead> | number][] = [
    ["GET / HTTP/1.1\r\nHost: a\r\n", { method: "GET", path: "/", search: "", version: "1.1" }],
    ["POST /v1/chat/completions?x=1&y HTTP/1.1\r\nHost: a\r\n", {
      path: "/v1/chat/completions",
      search: "?x=1&y",
    }],
    ["GET /p? HTTP/1.1\r\nHost: a\r\n", { path: "/p", search: "" }],
    ["GET /p#frag HTTP/1.1\r\nHost: a\r\n", { path: "/p", search: "" }],
    ["get / HTTP/1.1\r\nHost: a\r\n", { method: "get" }],
    ["GET / HTTP/1.0\r\n", { version: "1.0", close: true }],
    // Absolute form: path and query used, scheme and authority ignored.
    ["POST https://x/v1/chat/completions HTTP/1.1\r\nHost: a\r\n", {
      path: "/v1/chat/completions",
      search: "",
    }],
    ["GET http://h:80?q=1 HTTP/1.1\r\nHost: a\r\n", { path: "/", search: "?q=1" }],
    ["GET HTTP://h HTTP/1.1\r\nHost: a\r\n", { path: "/", search: "" }],
    ["OPTIONS * HTTP/1.1\r\nHost: a\r\n", { method: "OPTIONS", path: "*" }],
    ["GET * HTTP/1.1\r\nHost: a\r\n", 400],
    ["CONNECT h:443 HTTP/1.1\r\nHost: h\r\n", 400], // authority form
    ["GET p HTTP/1.1\r\nHost: a\r\n", 400],
    ["GET  / HTTP/1.1\r\nHost: a\r\n", 400],
    ["GET / HTTP/1.1 \r\nHost: a\r\n", 400],
    ["GET /\x01 HTTP/1.1\r\nHost: a\r\n", 400],
    ["GET /\xe9 HTTP/1.1\r\nHost: a\r\n", 400],
    ["G(T / HTTP/1.1\r\nHost: a\r\n", 400],
    ["GET / http/1.1\r\nHost: a\r\n", 400],
    ["GET / HTTP/1.1\rX\r\nHost: a\r\n", 400],
    ["GET /\r\n", 400],
    ["", 400],
    ["GET / HTTP/2.0\r\nHost: a\r\n", 505],
    ["GET / HTTP/1.2\r\nHost: a\r\n", 505],
    ["GET / HTTP/0.9\r\n", 505],
    ["PRI * HTTP/2.0\r\n", 505],
  ];
  for (const [text, want] of cases) {
    const got = parse(text);
    if (typeof want === "number") {
      assert.equal(got, want, JSON.stringify(text));
    } else {
      assert.equal(typeof got, "object", JSON.stringify(text));
      for (const [k, v] of Object.entries(want)) {
        assert.deepEqual((got as unknown as Record<string, unknown>)[k], v, `${text} ${k}`);
      }
    }
  }
});

Deno.test("header fields: names, values, folding, Host", () => {
  const cases: [string, [string, string][] | number][] = [
    ["Host: a\r\nX-A:  v 1 \t\r\nx-b:\r\n", [["host", "a"], ["x-a", "v 1"], ["x-b", ""]]],
    // obs-text kept as one char per byte (latin1), 0xA0 not trimmed as whitespace.
    ["Host: a\r\nX: \xa0caf\xe9\x80\r\n", [["host", "a"], ["x", "\xa0caf\xe9\x80"]]],
    ["Host: a\r\nX: a\tb\r\n", [["host", "a"], ["x", "a\tb"]]],
    ["Host: a\r\nX : v\r\n", 400], // space before the colon
    ["Host: a\r\n X: v\r\n", 400], // obs-fold
    ["Host: a\r\nX: v\r\n\tmore\r\n", 400], // obs-fold
    ["Host: a\r\nX v\r\n", 400],
    [": v\r\nHost: a\r\n", 400],
    ["Host: a\r\nX(: v\r\n", 400],
    ["Host: a\r\nX: a\x00b\r\n", 400],
    ["Host: a\r\nX: a\x1bb\r\n", 400],
    ["Host: a\r\nX: a\x7fb\r\n", 400],
    ["Host: a\r\nX: a\rb\r\n", 400],
    ["X: 1\r\n", 400], // HTTP/1.1 without Host
    ["Host: a\r\nHost: a\r\n", 400],
    ["Host: a b\r\n", 400],
    ["Host: a/b\r\n", 400],
    ["Host: [::1]:8080\r\n", [["host", "[::1]:8080"]]],
    ["Host:\r\n", [["host", ""]]],
  ];
  for (const [fields, want] of cases) {
    const got = parse("GET / HTTP/1.1\r\n" + fields);
    if (typeof want === "number") assert.equal(got, want, JSON.stringify(fields));
    else assert.deepEqual((got as RequestHead).headers, want, JSON.stringify(fields));
  }
  const many = "Host: a\r\n" + "X: 1\r\n".repeat(MAX_FIELDS);
  assert.equal(parse("GET / HTTP/1.1\r\n" + many), 431);
  assert.equal(typeof parse("GET / HTTP/1.0\r\n" + "X: 1\r\n".repeat(MAX_FIELDS)), "object");
});

Deno.test("framing: Content-Length, Transfer-Encoding and their conflicts", () => {
  const cases: [string, { length: number; chunked: boolean } | number][] = [
    ["", { length: -1, chunked: false }],
    ["Content-Length: 12\r\n", { length: 12, chunked: false }],
    ["Content-Length: 0\r\n", { length: 0, chunked: false }],
    ["Content-Length: 5, 5\r\nContent-Length: 5\r\n", { length: 5, chunked: false }],
    ["Content-Length: 5\r\nContent-Length: 6\r\n", 400],
    ["Content-Length: 5, 6\r\n", 400],
    ["Content-Length: +5\r\n", 400],
    ["Content-Length: -1\r\n", 400],
    ["Content-Length: 0x10\r\n", 400],
    ["Content-Length: 1 2\r\n", 400],
    ["Content-Length:\r\n", 400],
    ["Content-Length: 1234567890123456\r\n", 400],
    ["Transfer-Encoding: chunked\r\n", { length: -1, chunked: true }],
    ["Transfer-Encoding: CHUNKED\r\n", { length: -1, chunked: true }],
    ["Transfer-Encoding: gzip, chunked\r\n", 501],
    ["Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501],
    ["Transfer-Encoding: chunked, gzip\r\n", 400],
    ["Transfer-Encoding: gzip\r\n", 400],
    ["Transfer-Encoding: chunked, chunked\r\n", 400],
    ["Transfer-Encoding: \r\n", 400],
    ["Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400],
    ["Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400],
  ];
  for (const [fields, want] of cases) {
    const got = parse("POST / HTTP/1.1\r\nHost: a\r\n" + fields);
    if (typeof want === "number") {
      assert.equal(got, want, JSON.stringify(fields));
    } else {
      const h = got as RequestHead;
      assert.deepEqual({ length: h.length, chunked: h.chunked }, want, JSON.stringify(fields));
    }
  }
  assert.equal(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"), 400);
});

Deno.test("connection and expectation", () => {
  const cases: [string, { close: boolean; expectContinue: boolean }][] = [
    ["GET / HTTP/1.1\r\nHost: a\r\n", { close: false, expectContinue: false }],
    ["GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n", { close: true, expectContinue: false }],
    ["GET / HTTP/1.1\r\nHost: a\r\nConnection: te, close\r\n", {
      close: true,
      expectContinue: false,
    }],
    ["GET / HTTP/1.0\r\n", { close: true, expectContinue: false }],
    ["GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n", { close: false, expectContinue: false }],
    ["GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n", {
      close: false,
      expectContinue: false,
    }],
    ["POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n", {
      close: false,
      expectContinue: true,
    }],
    ["POST / HTTP/1.0\r\nExpect: 100-continue\r\n", { close: true, expectContinue: false }],
  ];
  for (const [text, want] of cases) {
    const h = parse(text) as RequestHead;
    assert.deepEqual({ close: h.close, expectContinue: h.expectContinue }, want, text);
  }
});

Deno.test("findHeadEnd: the empty line, resumed scans, bare LF", () => {
  const find = (s: string, from = 0) => {
    const b = enc.encode(s);
    return findHeadEnd(b, 0, from, b.length);
  };
  assert.equal(find("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"), 27);
  assert.equal(find("GET / HTTP/1.1\r\nHost: a\r\n\r"), HEAD_INCOMPLETE);
  assert.equal(find("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 26), 27);
  assert.equal(find("GET / HTTP/1.1\nHost: a\r\n\r\n"), HEAD_BARE_LF);
  assert.equal(find("GET / HTTP/1.1\r\nHost: a\n\n"), HEAD_BARE_LF);
  assert.equal(find("\n"), HEAD_BARE_LF);
  // A buffer with stale bytes past `end` is not read beyond it.
  const b = enc.encode("GET / HTTP/1.1\r\n\r\n");
  assert.equal(findHeadEnd(b, 0, 0, 17), HEAD_INCOMPLETE);
});

Deno.test("latin1 keeps one char per byte, 0x80-0x9F included; trimOws only trims SP/HTAB", () => {
  const b = new Uint8Array([0x41, 0x80, 0x9f, 0xe9, 0xff]);
  assert.equal(latin1(b, 0, 5), "A\x80\x9f\xe9\xff");
  assert.equal(latin1(b, 0, 1), "A");
  const long = new Uint8Array(10_000).fill(0xe9);
  assert.equal(latin1(long, 0, long.length), "\xe9".repeat(10_000));
  assert.equal(trimOws(" \t a b\t "), "a b");
  assert.equal(trimOws("\xa0a\v"), "\xa0a\v");
});
