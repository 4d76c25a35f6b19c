/**
 * The reply writer against a recording sink: literal expected bytes for each framing, the header
 * checks (injection, bad names, server-owned fields, obs-text and wide chars) and streamed bodies
 * that end, fail or lose their client.
 */

import assert from "node:assert/strict";
import {
  chunkBytes,
  COALESCE_MAX,
  httpDate,
  type ReplyContext,
  type ReplySink,
  writeReply,
} from "./reply_writer.ts";
import type { BodySource, HeaderList, Reply } from "./types.ts";

const enc = new TextEncoder();
const DATE: [string, string] = ["date", "Tue, 01 Dec 2026 00:00:00 GMT"];

/** A sink that records each write as a latin1 string; `failAfter` writes succeed. */
function sink(failAfter = Infinity): ReplySink & { writes: string[]; logs: string[] } {
  const writes: string[] = [];
  const logs: string[] = [];
  const s = {
    writes,
    logs,
    gone: false,
    streaming: null as BodySource | null,
    log: (_level: string, msg: string) => logs.push(msg),
    write(b: Uint8Array): Promise<boolean> {
      if (writes.length >= failAfter) {
        s.gone = true;
        return Promise.resolve(false);
      }
      writes.push(String.fromCharCode(...b));
      return Promise.resolve(true);
    },
  };
  return s;
}

/** A source that hands out `pieces` (a string, or an Error to throw). */
function source(pieces: (string | Error)[]): BodySource & { cancelled: unknown[] } {
  const cancelled: unknown[] = [];
  return {
    cancelled,
    read() {
      const p = pieces.shift();
      if (p === undefined) return Promise.resolve({ done: true, value: undefined });
      if (p instanceof Error) return Promise.reject(p);
      return Promise.resolve({ done: false, value: enc.encode(p) });
    },
    cancel(reason) {
      cancelled.push(reason ?? "cancelled");
      return Promise.resolve();
    },
  };
}

const GET11: ReplyContext = { method: "GET", version: "1.1", close: false };

function reply(status: number, headers: HeaderList, body: Reply["body"], statusText?: string) {
  return { status, statusText, headers: [...headers, DATE], body };
}

Deno.test("bytes, empty and bodiless replies: literal bytes", async () => {
  const d = `date: ${DATE[1]}\r\n`;
  const cases: [ReplyContext, Reply, string, boolean][] = [
    [
      GET11,
      reply(200, [["content-type", "application/json"]], enc.encode("{}")),
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${d}content-length: 2\r\n\r\n{}`,
      true,
    ],
    [
      { ...GET11, close: true },
      reply(200, [], enc.encode("x")),
      `HTTP/1.1 200 OK\r\n${d}content-length: 1\r\nconnection: close\r\n\r\nx`,
      false,
    ],
    [
      { ...GET11, version: "1.0" },
      reply(200, [], enc.encode("x")),
      `HTTP/1.1 200 OK\r\n${d}content-length: 1\r\nconnection: keep-alive\r\n\r\nx`,
      true,
    ],
    [
      { ...GET11, method: "HEAD" },
      reply(200, [], enc.encode("hello")),
      `HTTP/1.1 200 OK\r\n${d}content-length: 5\r\n\r\n`,
      true,
    ],
    [GET11, reply(204, [], enc.encode("ignored")), `HTTP/1.1 204 No Content\r\n${d}\r\n`, true],
    [GET11, reply(304, [], null), `HTTP/1.1 304 Not Modified\r\n${d}\r\n`, true],
    [GET11, reply(404, [], null), `HTTP/1.1 404 Not Found\r\n${d}content-length: 0\r\n\r\n`, true],
    [
      GET11,
      reply(200, [], null, "Fine"),
      `HTTP/1.1 200 Fine\r\n${d}content-length: 0\r\n\r\n`,
      true,
    ],
    [
      GET11,
      reply(200, [], null, "a\r\nb"),
      `HTTP/1.1 200 OK\r\n${d}content-length: 0\r\n\r\n`,
      true,
    ],
    [GET11, reply(299, [], null), `HTTP/1.1 299 \r\n${d}content-length: 0\r\n\r\n`, true],
  ];
  for (const [ctx, r, want, keep] of cases) {
    const s = sink();
    assert.equal(await writeReply(s, ctx, r), keep, want);
    assert.deepEqual(s.writes, [want]);
  }
});

Deno.test("reply headers: injection and bad names dropped and logged, server fields ignored", async () => {
  const s = sink();
  const keep = await writeReply(
    s,
    GET11,
    reply(200, [
      ["x-ok", "1"],
      ["x-evil", "a\r\nset-cookie: pwned=1"],
      ["x-nul", "a\0b"],
      ["x-esc", "a\x1bb"],
      ["bad name", "v"],
      ["", "v"],
      ["x-tab", "a\tb"],
      ["Content-Length", "999"],
      ["transfer-encoding", "chunked"],
      ["Keep-Alive", "timeout=5"],
      ["upgrade", "h2c"],
      ["X-Case", "kept"],
    ], enc.encode("ok")),
  );
  assert.equal(keep, true);
  assert.deepEqual(s.writes, [
    `HTTP/1.1 200 OK\r\nx-ok: 1\r\nx-tab: a\tb\r\nX-Case: kept\r\ndate: ${
      DATE[1]
    }\r\ncontent-length: 2\r\n\r\nok`,
  ]);
  assert.equal(s.logs.length, 5);
});

Deno.test("reply header values: obs-text as single bytes, wider chars as UTF-8", async () => {
  const s = sink();
  await writeReply(
    s,
    GET11,
    reply(200, [["a", "caf\xe9"], ["b", "\u20ac"], ["c", "\xe9\u20ac"]], null),
  );
  assert.equal(
    s.writes[0],
    `HTTP/1.1 200 OK\r\na: caf\xe9\r\nb: \xe2\x82\xac\r\nc: \xc3\xa9\xe2\x82\xac\r\ndate: ${
      DATE[1]
    }\r\ncontent-length: 0\r\n\r\n`,
  );
});

Deno.test("the handler's Connection: close closes; invalid statuses become a 500", async () => {
  const s = sink();
  assert.equal(await writeReply(s, GET11, reply(200, [["connection", "Close"]], null)), false);
  assert.equal(
    s.writes[0],
    `HTTP/1.1 200 OK\r\ndate: ${DATE[1]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
  );
  for (const status of [99, 101, 600, 200.5, NaN]) {
    const t = sink();
    await writeReply(t, GET11, { status, headers: [DATE], body: null });
    assert.match(t.writes[0], /^HTTP\/1\.1 500 Internal Server Error\r\n/);
    assert.match(t.writes[0], /"type":"server_error"/);
    assert.equal(t.logs.length, 1);
  }
});

Deno.test("bytes above the coalescing bound go in two writes", async () => {
  const s = sink();
  const big = new Uint8Array(COALESCE_MAX + 1).fill(0x61);
  await writeReply(s, GET11, reply(200, [], big));
  assert.equal(s.writes.length, 2);
  assert.equal(
    s.writes[0],
    `HTTP/1.1 200 OK\r\ndate: ${DATE[1]}\r\ncontent-length: ${big.length}\r\n\r\n`,
  );
  assert.equal(s.writes[1].length, big.length);
});

Deno.test("a streamed body: chunked on 1.1, head with the first chunk, empty pieces skipped", async () => {
  const s = sink();
  const src = source(["", "hello", "", " world!"]);
  assert.equal(
    await writeReply(s, GET11, reply(200, [["content-type", "text/event-stream"]], src)),
    true,
  );
  assert.deepEqual(s.writes, [
    `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: ${
      DATE[1]
    }\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n`,
    "7\r\n world!\r\n",
    "0\r\n\r\n",
  ]);
  assert.equal(s.streaming, null);
  const empty = sink();
  await writeReply(empty, GET11, reply(200, [], source([])));
  assert.deepEqual(empty.writes, [
    `HTTP/1.1 200 OK\r\ndate: ${DATE[1]}\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`,
  ]);
});

Deno.test("a streamed body on 1.0 is delimited by the close", async () => {
  const s = sink();
  const ctx: ReplyContext = { method: "GET", version: "1.0", close: false };
  assert.equal(await writeReply(s, ctx, reply(200, [], source(["ab", "cd"]))), false);
  assert.deepEqual(s.writes, [
    `HTTP/1.1 200 OK\r\ndate: ${DATE[1]}\r\nconnection: close\r\n\r\nab`,
    "cd",
  ]);
});

Deno.test("a stream that fails mid-body ends without the last chunk", async () => {
  const s = sink();
  assert.equal(
    await writeReply(s, GET11, reply(200, [], source(["ab", new Error("upstream")]))),
    false,
  );
  assert.deepEqual(s.writes, [
    `HTTP/1.1 200 OK\r\ndate: ${DATE[1]}\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n`,
  ]);
  assert.deepEqual(s.logs, ["Reply body failed"]);
});

Deno.test("a stream that fails before its first byte is answered with a 502", async () => {
  const s = sink();
  assert.equal(await writeReply(s, GET11, reply(200, [], source([new Error("upstream")]))), false);
  assert.equal(s.writes.length, 1);
  assert.match(s.writes[0], /^HTTP\/1\.1 502 Bad Gateway\r\ncontent-type: application\/json\r\n/);
  assert.match(s.writes[0], /connection: close\r\n\r\n\{"error":/);
});

Deno.test("a client gone mid-stream stops the writer; HEAD and 204 cancel a source", async () => {
  const s = sink(1);
  assert.equal(await writeReply(s, GET11, reply(200, [], source(["a", "b", "c"]))), false);
  assert.equal(s.writes.length, 1);
  for (const [ctx, status] of [[{ ...GET11, method: "HEAD" }, 200], [GET11, 204]] as const) {
    const t = sink();
    const src = source(["never"]);
    assert.equal(await writeReply(t, ctx, reply(status, [], src)), true);
    assert.equal(src.cancelled.length, 1);
    assert.equal(t.writes.length, 1);
    assert.ok(t.writes[0].endsWith("\r\n\r\n"));
  }
});

Deno.test("date: IMF-fixdate, the same string within a second", () => {
  const t = Date.UTC(2026, 11, 1, 12, 30, 15, 100);
  assert.equal(httpDate(t), "Tue, 01 Dec 2026 12:30:15 GMT");
  assert.equal(httpDate(t + 800), "Tue, 01 Dec 2026 12:30:15 GMT");
  assert.equal(httpDate(t + 900), "Tue, 01 Dec 2026 12:30:16 GMT");
  const s = sink();
  return writeReply(s, GET11, { status: 200, headers: [], body: null }).then(() => {
    assert.match(s.writes[0], /\r\ndate: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/);
  });
});

Deno.test("chunkBytes frames a piece after a prefix", () => {
  const b = chunkBytes("H", enc.encode("0123456789abcdefX"));
  assert.equal(String.fromCharCode(...b), "H11\r\n0123456789abcdefX\r\n");
});
