/**
 * The HTTP/1.1 server over real sockets on 127.0.0.1: keep-alive and pipelining, HTTP/1.0,
 * `100-continue`, chunked and length bodies (whole and streamed), limits and deadlines of
 * `readBody`, draining, every refused head on the wire, handler failures, streamed replies,
 * `replyFromResponse`, and shutdown.
 */

import assert from "node:assert/strict";
import { RouterError } from "../util/errors.ts";
import { replyFromResponse } from "./response_reply.ts";
import { json, latin1Bytes, RawClient, testServer, within } from "./testing.ts";
import { type BodySource, ClientGone, ServerClosing, type ServerRequest } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Echoes what the handler saw. */
async function echo(req: ServerRequest) {
  const body = dec.decode(await req.readBody(1 << 20, 5000));
  return json({
    method: req.method,
    path: req.path,
    search: req.search,
    version: req.version,
    scheme: req.scheme,
    body,
    x: req.header("x"),
  });
}

Deno.test("keep-alive: several requests on one connection, pipelined ones answered in order", async () => {
  let active = 0;
  let most = 0;
  const server = testServer(async (req) => {
    active++;
    most = Math.max(most, active);
    await new Promise((r) => setTimeout(r, req.path === "/slow" ? 30 : 0));
    active--;
    return echo(req);
  });
  const c = await RawClient.connect(server.port);
  try {
    await c.send("GET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    const r1 = (await c.response())!;
    assert.equal(r1.status, 200);
    assert.equal(r1.header("connection"), null);
    assert.deepEqual(JSON.parse(r1.body).search, "?q=1");
    await c.send(
      "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
        "\r\nGET /b HTTP/1.1\r\nHost: x\r\nX: 2\r\n\r\n" + // a stray CRLF between requests is ignored
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    const bodies = [];
    for (let i = 0; i < 3; i++) bodies.push(JSON.parse((await c.response())!.body));
    assert.deepEqual(bodies.map((b) => [b.path, b.body, b.x]), [
      ["/slow", "hello", null],
      ["/b", "", "2"],
      ["/c", "abc", null],
    ]);
    assert.equal(most, 1);
    assert.equal(server.connections, 1);
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test("HTTP/1.0 closes after the answer unless it asked for keep-alive", async () => {
  const server = testServer(echo);
  try {
    const a = await RawClient.connect(server.port);
    await a.send("GET / HTTP/1.0\r\n\r\n");
    const r = (await a.response())!;
    assert.equal(JSON.parse(r.body).version, "1.0");
    assert.equal(r.header("connection"), "close");
    assert.ok(await a.closedWithin(2000));
    a.close();
    const b = await RawClient.connect(server.port);
    await b.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert.equal((await b.response())!.header("connection"), "keep-alive");
    await b.send("GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert.equal(JSON.parse((await b.response())!.body).path, "/again");
    b.close();
    const c = await RawClient.connect(server.port);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.equal((await c.response())!.header("connection"), "close");
    assert.ok(await c.closedWithin(2000));
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("100-continue is sent when the handler reads the body, not when it answers without", async () => {
  const server = testServer(async (req) => {
    if (req.path === "/read") return echo(req);
    return await Promise.resolve(json({ refused: true }, 401));
  });
  try {
    const a = await RawClient.connect(server.port);
    await a.send(
      "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    const interim = (await a.response())!;
    assert.equal(interim.status, 100);
    await a.send("data");
    const r = (await a.response())!;
    assert.equal(JSON.parse(r.body).body, "data");
    assert.equal(r.header("connection"), null);
    a.close();
    const b = await RawClient.connect(server.port);
    await b.send(
      "POST /no HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    const final = (await b.response())!;
    assert.equal(final.status, 401);
    assert.equal(final.header("connection"), "close"); // the body was never invited
    assert.ok(await b.closedWithin(3000));
    b.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("readBody: declared and chunked bodies over the limit are 413, a slow body is 408", async () => {
  const server = testServer(async (req) => {
    try {
      return json({ n: (await req.readBody(8, 300)).length });
    } catch (err) {
      assert.ok(err instanceof RouterError);
      throw err; // the server answers a RouterError in OpenAI's shape
    }
  });
  try {
    const cases: [string, number, string][] = [
      ["Content-Length: 9\r\n\r\n123456789", 413, "too_large"],
      ["Transfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n", 413, "too_large"],
      ["Content-Length: 5\r\n\r\n12", 408, "request_timeout"],
      ["Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_request"],
    ];
    for (const [rest, status, code] of cases) {
      const c = await RawClient.connect(server.port);
      await c.send("POST / HTTP/1.1\r\nHost: x\r\n" + rest);
      const r = (await c.response())!;
      assert.equal(r.status, status, rest);
      assert.equal(JSON.parse(r.body).error.code, code);
      c.close();
    }
    const ok = await RawClient.connect(server.port);
    await ok.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n12345678");
    assert.equal(JSON.parse((await ok.response())!.body).n, 8);
    ok.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("an unread body is drained for the next request; a large one closes the connection", async () => {
  const server = testServer((req) => json({ path: req.path }));
  try {
    const c = await RawClient.connect(server.port);
    await c.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    await c.send(
      "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
    );
    await c.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    for (const p of ["/a", "/b", "/c"]) {
      assert.equal(JSON.parse((await c.response())!.body).path, p);
    }
    c.close();
    const big = await RawClient.connect(server.port);
    await big.send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nxx");
    const r = (await big.response())!;
    assert.equal(r.status, 200);
    assert.equal(r.header("connection"), "close");
    assert.ok(await big.closedWithin(4000));
    big.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("bodySource streams the request body with its framing", async () => {
  const server = testServer(async (req) => {
    const src = req.bodySource();
    const pieces: string[] = [];
    for (let r = await src.read(); !r.done; r = await src.read()) pieces.push(dec.decode(r.value));
    return json({ body: pieces.join(""), pieces: pieces.length });
  });
  try {
    const c = await RawClient.connect(server.port);
    await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab");
    await new Promise((r) => setTimeout(r, 50));
    await c.send("cdef");
    assert.equal(JSON.parse((await c.response())!.body).body, "abcdef");
    await c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n");
    await new Promise((r) => setTimeout(r, 50));
    await c.send("1;x=y\r\nc\r\n0\r\nT: 1\r\n\r\n");
    const r = JSON.parse((await c.response())!.body);
    assert.equal(r.body, "abc");
    assert.ok(r.pieces >= 2);
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("refused heads: each status in OpenAI's shape, Connection: close, socket closed", async () => {
  const server = testServer(echo, { maxHeadBytes: 1024 });
  try {
    const cases: [string, number, string][] = [
      ["GARBAGE\r\n\r\n", 400, "bad_request"],
      ["GET / HTTP/1.1\r\n\r\n", 400, "bad_request"], // no Host
      ["GET / HTTP/1.1\nHost: x\n\n", 400, "bad_request"], // bare LF
      [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "bad_request",
      ],
      [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        400,
        "bad_request",
      ],
      ["GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n", 400, "bad_request"],
      [
        "GET / HTTP/1.1\r\nHost: x\r\nX: " + "a".repeat(2000) + "\r\n\r\n",
        431,
        "request_header_fields_too_large",
      ],
      [
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
        "not_implemented",
      ],
      ["GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"],
    ];
    for (const [wire, status, code] of cases) {
      const c = await RawClient.connect(server.port);
      await c.send(wire);
      const r = (await c.response())!;
      assert.equal(r.status, status, wire.slice(0, 60));
      assert.equal(r.header("connection"), "close");
      const err = JSON.parse(r.body).error;
      assert.equal(err.code, code);
      assert.equal(err.type, "invalid_request_error");
      assert.equal(typeof err.message, "string");
      assert.ok(await c.closedWithin(3000), wire.slice(0, 60));
      c.close();
    }
    assert.equal(server.stats.badRequests, cases.length);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a handler that throws gets a 500 in OpenAI's shape and the connection goes on", async () => {
  const server = testServer((req) => {
    if (req.path === "/boom") throw new Error("kaput");
    if (req.path === "/typed") throw new RouterError("not_found", "No such thing");
    return json({ ok: true });
  });
  try {
    const c = await RawClient.connect(server.port);
    await c.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
    const r = (await c.response())!;
    assert.equal(r.status, 500);
    assert.equal(JSON.parse(r.body).error.type, "server_error");
    await c.send("GET /typed HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await c.response())!.status, 404);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await c.response())!.status, 200);
    assert.equal(server.logs.filter((l) => l.startsWith("Handler failed")).length, 1);
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("a streamed reply is chunked; HEAD keeps the length and sends no body", async () => {
  const pieces = ["data: 1\n\n", "data: 2\n\n"];
  const server = testServer((req) => {
    if (req.method === "HEAD") return { status: 200, headers: [], body: enc.encode("12345") };
    const queue = [...pieces];
    const body: BodySource = {
      read: async () => {
        await new Promise((r) => setTimeout(r, 5));
        const p = queue.shift();
        return p === undefined
          ? { done: true, value: undefined }
          : { done: false, value: enc.encode(p) };
      },
      cancel: () => Promise.resolve(),
    };
    return { status: 200, headers: [["content-type", "text/event-stream"]], body };
  });
  try {
    const c = await RawClient.connect(server.port);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const r = (await c.response())!;
    assert.equal(r.header("transfer-encoding"), "chunked");
    assert.equal(r.body, pieces.join(""));
    await c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const h = (await c.response(5000, { head: true }))!;
    assert.equal(h.header("content-length"), "5");
    assert.equal((await c.response())!.body, pieces.join(""));
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("a reply stream that fails mid-body reaches the client cut short, not complete", async () => {
  let n = 0;
  const server = testServer(() => ({
    status: 200,
    headers: [],
    body: {
      read: () =>
        n++ === 0
          ? Promise.resolve({ done: false, value: enc.encode("partial") })
          : Promise.reject(new Error("upstream died")),
      cancel: () => Promise.resolve(),
    },
  }));
  try {
    const c = await RawClient.connect(server.port);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await assert.rejects(c.response(), /closed inside a chunked body/);
    c.close();
    assert.equal(server.logs.filter((l) => l.startsWith("Reply body failed")).length, 1);
  } finally {
    await server.shutdown();
  }
});

Deno.test("replyFromResponse: status, headers and a streamed body", async () => {
  const server = testServer(() =>
    replyFromResponse(
      new Response("# metrics\n", {
        status: 203,
        headers: { "content-type": "text/plain", "x-a": "1" },
      }),
    )
  );
  try {
    const c = await RawClient.connect(server.port);
    await c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    const r = (await c.response())!;
    assert.equal(r.status, 203);
    assert.equal(r.header("content-type"), "text/plain");
    assert.equal(r.header("x-a"), "1");
    assert.equal(r.body, "# metrics\n");
    c.close();
  } finally {
    await server.shutdown();
  }
  const empty = replyFromResponse(new Response(null, { status: 204 }));
  assert.equal(empty.body, null);
});

Deno.test("obs-text in a request header reaches the handler one char per byte", async () => {
  const server = testServer(echo);
  try {
    const c = await RawClient.connect(server.port);
    await c.send("GET / HTTP/1.1\r\nHost: x\r\nX: caf\xe9\x80\r\n\r\n");
    const utf8 = dec.decode(latin1Bytes((await c.response())!.body));
    assert.equal(JSON.parse(utf8).x, "caf\xe9\x80");
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("shutdown closes idle connections at once and lets a busy one finish with close", async () => {
  const gate = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  const server = testServer(async (req) => {
    if (req.path === "/slow") {
      started.resolve();
      await gate.promise;
    }
    return json({ path: req.path });
  });
  const idle = await RawClient.connect(server.port);
  await idle.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
  await idle.response();
  const fresh = await RawClient.connect(server.port);
  const busy = await RawClient.connect(server.port);
  await busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await started.promise;
  const done = server.shutdown();
  assert.ok(await idle.closedWithin(2000));
  assert.ok(await fresh.closedWithin(2000));
  gate.resolve();
  const r = (await busy.response())!;
  assert.equal(r.status, 200);
  assert.equal(r.header("connection"), "close");
  await within(done, 3000, "shutdown");
  assert.equal(server.connections, 0);
  await within(server.finished, 100, "finished");
  for (const c of [idle, fresh, busy]) c.close();
  await assert.rejects(RawClient.connect(server.port));
});

Deno.test("closeAll aborts a running request with ServerClosing", async () => {
  const reason = Promise.withResolvers<unknown>();
  const started = Promise.withResolvers<void>();
  const server = testServer(async (req) => {
    req.signal.addEventListener("abort", () => reason.resolve(req.signal.reason));
    started.resolve();
    await new Promise((r) => req.signal.addEventListener("abort", r));
    throw req.signal.reason;
  });
  const c = await RawClient.connect(server.port);
  await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await started.promise;
  await within(server.closeAll(), 3000, "closeAll");
  assert.ok(await within(reason.promise, 1000, "abort") instanceof ServerClosing);
  assert.equal(await c.response(), null);
  c.close();
});

Deno.test("the signal made after a client left is already aborted with ClientGone", async () => {
  const seen = Promise.withResolvers<unknown>();
  const server = testServer(async (req) => {
    await req.readBody(100, 2000).catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
    seen.resolve(req.signal.aborted ? req.signal.reason : "not aborted");
    return json({});
  });
  try {
    const c = await RawClient.connect(server.port);
    await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    c.close();
    assert.ok(await within(seen.promise, 3000, "handler") instanceof ClientGone);
  } finally {
    await server.shutdown();
  }
});

Deno.test("drain keeps accepting but closes each connection after its request, idle ones at once", async () => {
  const server = testServer(() => json({ ok: true }));
  const idle = await RawClient.connect(server.port);
  await idle.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal((await idle.response())!.header("connection"), null, "kept alive before drain");
  server.drain();
  assert.ok(await idle.closedWithin(2000), "an idle connection is closed at once");
  const late = await RawClient.connect(server.port);
  await late.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  const r = (await late.response())!;
  assert.equal(r.status, 200, "still served while draining");
  assert.equal(r.header("connection"), "close");
  assert.ok(await late.closedWithin(2000));
  for (const c of [idle, late]) c.close();
  await within(server.shutdown(), 3000, "shutdown");
});

Deno.test("a streamed reply whose client left before or while it is written is cancelled, every time", async () => {
  const cancelled: unknown[] = [];
  let made = 0;
  const server = testServer(async (req) => {
    await new Promise((r) => setTimeout(r, req.path === "/late" ? 50 : 0));
    made++;
    let n = 0;
    const body: BodySource = {
      read: async () => {
        await new Promise((r) => setTimeout(r, 5));
        return { done: false, value: enc.encode(`chunk ${n++}\n`.repeat(200)) };
      },
      cancel: (reason) => {
        cancelled.push(reason);
        return Promise.resolve();
      },
    };
    return { status: 200, headers: [["content-type", "text/plain"]], body };
  });
  // Gone before the handler answered (a closed socket), and gone mid-stream (closed after bytes).
  for (const path of ["/late", "/late", "/stream", "/stream"]) {
    const c = await RawClient.connect(server.port);
    await c.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    if (path === "/stream") await new Promise((r) => setTimeout(r, 30));
    c.close();
  }
  await within(
    (async () => {
      while (cancelled.length < 4) await new Promise((r) => setTimeout(r, 10));
    })(),
    3000,
    "every source cancelled",
  );
  assert.equal(made, 4);
  assert.ok(cancelled.every((r) => r instanceof ClientGone), String(cancelled));
  await within(server.shutdown(), 3000, "shutdown");
});
