/**
 * The response head parser on literal bytes: what it accepts (obs-text kept byte for byte, only
 * SP/HTAB trimmed, lists of one `Content-Length`), what it refuses (control characters, names with
 * whitespace, conflicting framing), and that whatever it accepts `Headers` and `Response` accept.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { H1ProtocolError, headEnd, latin1, parseHead } from "./h1_head.ts";

/** `s` as bytes, one byte a char. */
function raw(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** Parses `text` (a head without its final CRLFCRLF). */
function parse(text: string) {
  const b = raw(text + "\r\n\r\n");
  return parseHead(b, 0, headEnd(b, 0, b.length));
}

Deno.test("h1 head: obs-text 0x80-0xFF is one char a byte, in values and the reason", () => {
  const high = String.fromCharCode(...Array.from({ length: 128 }, (_, i) => 0x80 + i));
  const h = parse(`HTTP/1.1 200 D\u00e9j\u00e0 \x80\x9f\r\nx-obs: a${high}b\r\ncontent-length: 0`);
  assert.equal(h.statusText, "D\u00e9j\u00e0 \x80\x9f");
  assert.deepEqual(h.headers[0], ["x-obs", `a${high}b`]);
  assert.doesNotThrow(() => new Headers(h.headers));
  assert.equal(new Headers(h.headers).get("x-obs"), `a${high}b`);
  assert.doesNotThrow(() => new Response(null, { status: 200, statusText: h.statusText }));
});

Deno.test("h1 head: only SP and HTAB are trimmed from a value (0xA0 and 0x85 stay)", () => {
  const h = parse("HTTP/1.1 200 OK\r\nx-a: \t \xa0v\x85 \t\r\nx-empty:\r\nx-sp:   ");
  assert.deepEqual(h.headers, [["x-a", "\xa0v\x85"], ["x-empty", ""], ["x-sp", ""]]);
});

Deno.test("h1 head: status lines", () => {
  assert.equal(parse("HTTP/1.1 204 No Content").status, 204);
  assert.equal(parse("HTTP/1.1 200 ").statusText, "");
  assert.equal(parse("HTTP/1.1 200").statusText, "", "no SP after the code: an empty reason");
  assert.equal(parse("HTTP/1.0 200 OK\r\ncontent-length: 1").close, true);
  assert.equal(
    parse("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1").close,
    false,
  );
  assert.equal(
    parse("HTTP/1.1 200 OK\r\nconnection: Keep-Alive, Close\r\ncontent-length: 1").close,
    true,
  );
  for (
    const bad of [
      "HTTP/1.1 2000 OK",
      "HTTP/1.1 20 OK",
      "HTTP/1.1  200 OK",
      "HTTP/1.1 200\tOK",
      "http/1.1 200 OK",
      "HTTP/2.0 200 OK",
      "HTTP/1.x 200 OK",
      "HTTP/1.1 2x0 OK",
      "ICY 200 OK",
    ]
  ) {
    assert.throws(() => parse(bad), /bad status line/, bad);
  }
  assert.throws(() => parse("HTTP/1.1 600 Odd"), /bad status 600/);
  assert.throws(() => parse("HTTP/1.1 099 Odd"), /bad status 99/);
  for (const c of [0, 1, 0x0b, 0x1f, 0x7f, 0x0a]) {
    assert.throws(() => parse(`HTTP/1.1 200 O${String.fromCharCode(c)}K`), /bad reason phrase/);
  }
});

Deno.test("h1 head: every control character but HTAB in a value is refused", () => {
  for (let c = 0; c < 0x20; c++) {
    const line = `HTTP/1.1 200 OK\r\nx-a: a${String.fromCharCode(c)}b\r\ncontent-length: 0`;
    if (c === 0x09) {
      assert.equal(parse(line).headers[0][1], "a\tb");
      continue;
    }
    assert.throws(() => parse(line), H1ProtocolError, `0x${c.toString(16)}`);
  }
  assert.throws(() => parse("HTTP/1.1 200 OK\r\nx-a: a\x7fb"), /control character in the value/);
  // A bare LF or CR is not a line end: it is a control character inside the value.
  assert.throws(
    () => parse("HTTP/1.1 200 OK\r\nx-a: a\nset-cookie: b"),
    /control character in the value/,
  );
  assert.throws(() => parse("HTTP/1.1 200 OK\r\nx-a: a\rb"), /control character in the value/);
});

Deno.test("h1 head: field names are tokens, with nothing between them and the colon", () => {
  for (
    const bad of [
      "x bad: 1",
      "x-bad : 1",
      "x-bad\t: 1",
      "content-length : 3",
      ": empty",
      "no-colon",
      "x-b\xe9d: 1",
      "x(y): 1",
      "x@y: 1",
      "x\x7fy: 1",
    ]
  ) {
    assert.throws(() => parse(`HTTP/1.1 200 OK\r\n${bad}`), /name is not a token/, bad);
  }
  assert.throws(() => parse("HTTP/1.1 200 OK\r\n x-fold: 1"), /obsolete line folding/);
  assert.throws(() => parse("HTTP/1.1 200 OK\r\nx-a: 1\r\n\tfolded"), /obsolete line folding/);
  const h = parse("HTTP/1.1 200 OK\r\nX-Mixed_Case.~!#$%&'*+^`|: v");
  assert.deepEqual(h.headers, [["x-mixed_case.~!#$%&'*+^`|", "v"]]);
});

Deno.test("h1 head: one framing: equal Content-Lengths only, Transfer-Encoding exactly chunked", () => {
  assert.equal(parse("HTTP/1.1 200 OK\r\ncontent-length: 12").length, 12);
  assert.equal(
    parse("HTTP/1.1 200 OK\r\ncontent-length: 12, 12\r\nContent-Length: 012").length,
    12,
  );
  assert.equal(parse("HTTP/1.1 200 OK\r\ncontent-length: 999999999999999").length, 999999999999999);
  for (
    const bad of [
      "content-length: 2\r\ncontent-length: 3",
      "content-length: 2, 3",
      "content-length: 2,",
      "content-length: ",
      "content-length: +2",
      "content-length: -1",
      "content-length: 0x10",
      "content-length: 1 2",
      "content-length: 1000000000000000",
      "content-length: 99999999999999999999",
    ]
  ) {
    assert.throws(() => parse(`HTTP/1.1 200 OK\r\n${bad}`), /bad content-length/, bad);
  }
  const both = parse("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked");
  assert.equal(both.chunked, true);
  assert.equal(both.length, -1, "Transfer-Encoding overrides Content-Length");
  assert.equal(both.close, true, "a connection that carried both framings is not reused");
  const listed = parse("HTTP/1.1 200 OK\r\ntransfer-encoding: , Chunked");
  assert.equal(listed.chunked && !listed.close, true);
  for (const te of ["gzip", "gzip, chunked", "chunked, chunked", "identity", "chunked, gzip"]) {
    assert.throws(
      () => parse(`HTTP/1.1 200 OK\r\ntransfer-encoding: ${te}`),
      /unsupported transfer-encoding/,
      te,
    );
  }
  assert.throws(
    () => parse("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked"),
    /unsupported transfer-encoding/,
  );
  assert.throws(
    () => parse("HTTP/1.0 200 OK\r\ntransfer-encoding: chunked"),
    /transfer-encoding in an HTTP\/1.0 answer/,
  );
  const toClose = parse("HTTP/1.1 200 OK\r\ncontent-type: text/plain");
  assert.equal(toClose.length < 0 && !toClose.chunked && toClose.close, true);
  assert.equal(
    parse("HTTP/1.1 204 No Content").close,
    false,
    "no body, nothing to read to the close",
  );
});

Deno.test("h1 head: whatever is accepted, Headers and Response accept too (property)", () => {
  // Mostly bytes that may appear, some that may not: both outcomes are exercised.
  const byte = fc.oneof(
    { arbitrary: fc.integer({ min: 0x20, max: 0xff }), weight: 30 },
    { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
  );
  const tchar = fc.oneof(
    { arbitrary: fc.constantFrom(...Array.from("aZ09-_.!~", (c) => c.charCodeAt(0))), weight: 20 },
    { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
  );
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.array(tchar, { minLength: 1, maxLength: 12 }),
      fc.array(byte, { maxLength: 40 }),
      fc.array(byte, { maxLength: 20 }),
      (name, value, reason) => {
        const text = `HTTP/1.1 200 ${latin1(Uint8Array.from(reason), 0, reason.length)}\r\n` +
          `${latin1(Uint8Array.from(name), 0, name.length)}: ` +
          latin1(Uint8Array.from(value), 0, value.length);
        let h;
        try {
          h = parse(text);
        } catch (err) {
          if (err instanceof H1ProtocolError) return;
          throw err;
        }
        accepted++;
        new Headers(h.headers);
        new Response(null, { status: h.status, statusText: h.statusText, headers: h.headers });
        for (const [, v] of h.headers) {
          for (let i = 0; i < v.length; i++) {
            const c = v.charCodeAt(i);
            assert.ok(c === 9 || (c >= 0x20 && c !== 0x7f && c <= 0xff), `char ${c} in ${v}`);
          }
        }
      },
    ),
    { numRuns: 3000, seed: 20261125 },
  );
  assert.ok(accepted > 300 && accepted < 2700, `accepted ${accepted} of 3000`);
});

Deno.test("h1 head: latin1 decodes long runs exactly", () => {
  const b = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7) & 0xff);
  const s = latin1(b, 3, 9_999);
  assert.equal(s.length, 9_996);
  for (let i = 0; i < s.length; i++) assert.equal(s.charCodeAt(i), b[i + 3]);
});
