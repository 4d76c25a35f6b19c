/**
 * Content codings through the HTTP/1.1 client against a raw TCP worker: known codings decoded as
 * they stream (framing headers fixed, the connection still reused), unknown ones passed on
 * untouched, corrupt data a body error, and a decompression bomb inflated one bounded step at a
 * time.
 */

import assert from "node:assert/strict";
import { brotliCompressSync, constants, createGzip, deflateSync, gzipSync } from "node:zlib";
import { H1Pool } from "./h1_client.ts";
import { SLICE_BYTES } from "./content_coding.ts";
import { dec, enc, never, rawServer, write } from "./h1_test_server.ts";
import { concatBytes } from "../util/bytes.ts";

/** `concatBytes` over its arguments. */
const concat = (...parts: Uint8Array[]) => concatBytes(parts);

/** A `Content-Length` answer with `coding` over `body`. */
function coded(coding: string, body: Uint8Array): Uint8Array {
  return concat(
    enc.encode(
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: ${coding}\r\n` +
        `content-length: ${body.length}\r\n\r\n`,
    ),
    body,
  );
}

/** A chunked answer with `coding` over `body`, in chunks of `size` bytes. */
function codedChunked(coding: string, body: Uint8Array, size = 7): Uint8Array {
  const parts: Uint8Array[] = [
    enc.encode(
      `HTTP/1.1 200 OK\r\ncontent-encoding: ${coding}\r\ntransfer-encoding: chunked\r\n\r\n`,
    ),
  ];
  for (let at = 0; at < body.length; at += size) {
    const piece = body.subarray(at, at + size);
    parts.push(enc.encode(`${piece.length.toString(16)}\r\n`), piece, enc.encode("\r\n"));
  }
  parts.push(enc.encode("0\r\n\r\n"));
  return concat(...parts);
}

const JSON_TEXT = JSON.stringify({ usage: { prompt_tokens: 40 }, text: "x".repeat(3000) });
const PLAIN = enc.encode(JSON_TEXT);

Deno.test("content coding: gzip, x-gzip, deflate, br and a list are decoded, framing headers dropped", async () => {
  const answers: Record<string, Uint8Array> = {
    "/gzip": coded("gzip", gzipSync(PLAIN)),
    "/x-gzip": coded("x-gzip", gzipSync(PLAIN)),
    "/deflate": coded("deflate", deflateSync(PLAIN)),
    "/br": coded("br", brotliCompressSync(PLAIN)),
    // Applied in the order listed: gzip first, then br; undone br first.
    "/list": coded("identity, GZIP, br", brotliCompressSync(gzipSync(PLAIN))),
    "/chunked": codedChunked("gzip", gzipSync(PLAIN)),
  };
  const server = rawServer(async (conn, head) => {
    await write(conn, answers[head.split(" ")[1]]);
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    for (const path of Object.keys(answers)) {
      const a = await pool.send("POST", path, [], null, never);
      assert.equal(a.whole, null, `${path}: decoded as a stream`);
      assert.deepEqual(
        a.headers.map(([n]) => n),
        path === "/chunked" ? ["transfer-encoding"] : ["content-type"],
        `${path}: content-encoding and content-length dropped`,
      );
      const got = await new Response(
        new ReadableStream({
          pull: async (c) => {
            const r = await a.body!.read();
            if (r.done) c.close();
            else c.enqueue(r.value);
          },
        }),
      ).text();
      assert.equal(got, JSON_TEXT, path);
      assert.equal(pool.idle, 1, `${path}: the connection is reused`);
    }
    assert.equal(server.connections, 1);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("content coding: a gzip stream is decoded as it arrives, not collected", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const server = rawServer(async (conn) => {
    await write(
      conn,
      "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n" +
        "content-type: text/event-stream\r\n\r\n",
    );
    const gz = createGzip();
    const sendChunk = (b: Uint8Array) =>
      b.length === 0 ? Promise.resolve() : write(
        conn,
        concat(
          enc.encode(`${b.length.toString(16)}\r\n`),
          b,
          enc.encode("\r\n"),
        ),
      );
    const flushed = (text: string) =>
      new Promise<Uint8Array>((resolve) => {
        const out: Uint8Array[] = [];
        const onData = (d: Uint8Array) => out.push(d);
        gz.on("data", onData);
        gz.write(enc.encode(text));
        gz.flush(constants.Z_SYNC_FLUSH, () => {
          gz.off("data", onData);
          resolve(concat(...out));
        });
      });
    await sendChunk(await flushed("data: one\n\n"));
    await gate;
    const rest: Uint8Array[] = [];
    gz.on("data", (d: Uint8Array) => rest.push(d));
    await new Promise((r) => gz.end(enc.encode("data: two\n\n"), () => r(null)));
    await new Promise((r) => setTimeout(r, 10));
    await sendChunk(concat(...rest));
    await write(conn, "0\r\n\r\n");
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    const a = await pool.send("POST", "/", [], null, AbortSignal.timeout(5000));
    const first = await a.body!.read();
    assert.equal(dec.decode(first.value), "data: one\n\n", "decoded before the worker went on");
    release();
    let rest = "";
    for (;;) {
      const r = await a.body!.read();
      if (r.done) break;
      rest += dec.decode(r.value, { stream: true });
    }
    assert.equal(rest, "data: two\n\n");
    assert.equal(pool.idle, 1);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("content coding: an unknown coding passes untouched; corrupt data errors the body; empty is empty", async () => {
  const odd = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 1, 2, 0xff]);
  const answers: Record<string, Uint8Array> = {
    "/zstd": coded("gzip, zstd", odd),
    "/corrupt": coded("gzip", concat(gzipSync(PLAIN).subarray(0, 30), odd)),
    "/empty": coded("gzip", new Uint8Array(0)),
    "/empty-chunked": codedChunked("deflate", new Uint8Array(0)),
  };
  const server = rawServer(async (conn, head) => {
    await write(conn, answers[head.split(" ")[1]]);
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    const z = await pool.send("POST", "/zstd", [], null, never);
    assert.deepEqual(z.whole, odd, "the bytes as they came");
    assert.deepEqual(z.headers.find(([n]) => n === "content-encoding"), [
      "content-encoding",
      "gzip, zstd",
    ]);
    assert.ok(z.headers.some(([n]) => n === "content-length"));

    const bad = await pool.send("POST", "/corrupt", [], null, never);
    await assert.rejects(async () => {
      for (;;) if ((await bad.body!.read()).done) break;
    });
    assert.equal(pool.busy, 0);
    assert.equal(
      pool.idle,
      1,
      "its framing was sound: all coded bytes were read, the connection kept",
    );

    for (const path of ["/empty", "/empty-chunked"]) {
      const e = await pool.send("POST", path, [], null, never);
      const r = e.body === null ? null : await e.body.read();
      assert.ok(e.whole?.length === 0 || r?.done, `${path}: empty`);
      assert.ok(!e.headers.some(([n]) => n === "content-encoding"), path);
    }
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("content coding: a gzip bomb inflates one bounded step at a time; cancel closes the connection", async () => {
  const bomb = gzipSync(new Uint8Array(16 * 1024 * 1024));
  const server = rawServer(async (conn) => {
    await write(conn, coded("gzip", bomb));
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    const a = await pool.send("POST", "/", [], null, never);
    let total = 0;
    let largest = 0;
    for (;;) {
      const r = await a.body!.read();
      if (r.done) break;
      total += r.value.length;
      largest = Math.max(largest, r.value.length);
    }
    assert.equal(total, 16 * 1024 * 1024);
    // Deflate's largest ratio is about 1032:1.
    assert.ok(largest <= SLICE_BYTES * 1100, `one step inflated to ${largest} bytes`);
    assert.equal(pool.idle, 1);

    const b = await pool.send("POST", "/", [], null, never);
    await b.body!.read();
    await b.body!.cancel();
    assert.equal(pool.busy, 0);
    assert.equal(pool.idle, 0, "a cancelled body closes its connection");
  } finally {
    pool.close();
    await server.close();
  }
});
