/**
 * The HTTP/1.1 client against real servers on 127.0.0.1: `Deno.serve` for ordinary answers, and a
 * raw TCP server for framing the client must survive (chunk extensions, trailers, bytes split
 * anywhere, 1xx heads, bodies up to the close, idle connections the server closed).
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { H1Pool, H1ProtocolError } from "./h1_client.ts";
import { dec, enc, never, post, rawServer, sleep, write } from "./h1_test_server.ts";

Deno.test("h1 client: a Content-Length answer, headers intact, and the connection reused", async () => {
  const ports = new Set<number>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req, info) => {
      ports.add(info.remoteAddr.port);
      const got = await req.text();
      return Response.json({
        echo: got,
        path: new URL(req.url).pathname,
        host: req.headers.get("host"),
      }, {
        headers: { "x-upstream": "yes" },
      });
    },
  );
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await post(pool, `{"turn":${i}}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-upstream"), "yes");
      const json = await res.json();
      assert.deepEqual(json, {
        echo: `{"turn":${i}}`,
        path: "/v1/chat/completions",
        host: `127.0.0.1:${server.addr.port}`,
      });
      assert.equal(pool.idle, 1);
      assert.equal(pool.busy, 0);
    }
    assert.equal(ports.size, 1, "three requests over one connection");
  } finally {
    pool.close();
    await server.shutdown();
  }
});

Deno.test("h1 client: header values are byte strings (one byte a char), with or without a body", async () => {
  const server = rawServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  try {
    // "é" last, first, and in a head with no body (where UTF-8's extra byte would not even fit).
    const cases: [string, Uint8Array | null][] = [
      ["caf\u00e9", enc.encode('{"x":1}')],
      ["\u00e9t\u00e9", enc.encode("{}")],
      ["\u00e9a", null],
      ["plain", null],
    ];
    for (const [value, body] of cases) {
      // A garbled head would leave the server waiting: bounded, so that fails instead of hanging.
      const signal = AbortSignal.timeout(2000);
      const res = await pool.request("POST", "/p", [["x-name", value]], body, signal);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    assert.equal(server.requests.length, cases.length);
    cases.forEach(([value, body], i) => {
      const want = latin1(
        `POST /p HTTP/1.1\r\nhost: 127.0.0.1:${server.port}\r\nx-name: ${value}` +
          (body === null ? "" : `\r\ncontent-length: ${body.length}`),
      );
      assert.deepEqual(server.requests[i].rawHead, want, `case ${i}`);
      assert.equal(server.requests[i].body, body === null ? "" : dec.decode(body));
    });
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: a streamed answer arrives piece by piece, before the worker finished", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      async start(ctl) {
        ctl.enqueue(enc.encode("data: one\n\n"));
        await gate;
        ctl.enqueue(enc.encode("data: two\n\n"));
        ctl.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    const res = await post(pool);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.equal(dec.decode(first.value), "data: one\n\n", "first event before the gate opened");
    release();
    let rest = "";
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      rest += dec.decode(r.value);
    }
    assert.equal(rest, "data: two\n\n");
    assert.equal(pool.idle, 1, "chunked body read to its end: connection back in the pool");
  } finally {
    pool.close();
    await server.shutdown();
  }
});

Deno.test("h1 client: chunked bodies split anywhere, with extensions and trailers (property)", async () => {
  let plan: { body: Uint8Array; chunks: number[]; splits: number[] } | null = null;
  const server = rawServer(async (conn) => {
    const { body, chunks, splits } = plan!;
    let wire = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n";
    const parts: Uint8Array[] = [enc.encode(wire)];
    let at = 0;
    for (const size of chunks) {
      const n = Math.min(size, body.length - at);
      if (n <= 0) break;
      parts.push(
        enc.encode(`${n.toString(16)};ext=1\r\n`),
        body.subarray(at, at + n),
        enc.encode("\r\n"),
      );
      at += n;
    }
    if (at < body.length) {
      parts.push(
        enc.encode(`${(body.length - at).toString(16)}\r\n`),
        body.subarray(at),
        enc.encode("\r\n"),
      );
    }
    parts.push(enc.encode("0\r\nx-trailer: t\r\n\r\n"));
    const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    wire = "";
    let from = 0;
    for (const s of [...splits.map((x) => x % (all.length + 1))].sort((a, b) => a - b)) {
      if (s > from) {
        await write(conn, all.subarray(from, s));
        from = s;
      }
    }
    await write(conn, all.subarray(from));
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 3000 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 8 }),
        fc.array(fc.nat(4000), { maxLength: 6 }),
        async (body, chunks, splits) => {
          plan = { body, chunks, splits };
          const res = await post(pool);
          const got = new Uint8Array(await res.arrayBuffer());
          assert.deepEqual(got, body);
        },
      ),
      { numRuns: 60 },
    );
    assert.equal(server.connections, 1, "every answer ended cleanly, so one connection served all");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: a body up to the close, and 1xx heads skipped", async () => {
  const server = rawServer(async (conn, head) => {
    if (head.includes("/close")) {
      await write(conn, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil ");
      await write(conn, "the end");
      return "close";
    }
    if (head.includes("/coded")) {
      // Transfer-Encoding overrides Content-Length: 6 bytes in one chunk, not 3.
      await write(
        conn,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n" +
          "6\r\nabcdef\r\n0\r\n\r\n",
      );
      return "keep";
    }
    await write(
      conn,
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    );
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    const a = await pool.request("POST", "/close", [], enc.encode("{}"), never);
    assert.equal(await a.text(), "until the end");
    assert.equal(pool.idle, 0, "a close-delimited connection is not reused");
    const coded = await pool.request("POST", "/coded", [], null, never);
    assert.equal(await coded.text(), "abcdef");
    assert.equal(pool.idle, 0, "a connection that carried both framings is not reused");
    const b = await post(pool);
    assert.equal(b.status, 200);
    assert.equal(await b.text(), "ok");
    assert.equal(pool.idle, 1);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: an idle connection the worker closed, or spoke on, is dropped, not reused", async () => {
  const server = rawServer(async (conn, _head, _body, no) => {
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    if (no === 1) return "close"; // closes without saying so: the idle connection is dead
    if (no === 2) {
      // An answer nobody asked for (uvicorn's 408 on a connection idle too long), then the close.
      await sleep(10);
      await write(
        conn,
        "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
      );
      await sleep(10);
      return "close";
    }
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    assert.equal(await (await post(pool, "first")).text(), "ok");
    await sleep(30); // the close reaches the idle connection's pending read
    assert.equal(pool.idle, 0, "the closed connection left the pool");
    assert.equal(await (await post(pool, "second")).text(), "ok");
    await sleep(40);
    assert.equal(pool.idle, 0, "the connection that sent a stray 408 left the pool");
    const third = await post(pool, "third");
    assert.equal(third.status, 200, "the stray 408 is not the next request's answer");
    assert.equal(await third.text(), "ok");
    assert.deepEqual(
      server.requests.map((r) => [r.body, r.connNo]),
      [["first", 1], ["second", 2], ["third", 3]],
    );
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: a reused connection the worker closed before any answer byte is retried once, on a fresh one", async () => {
  const perConn = new Map<number, number>();
  const server = rawServer(async (conn, _head, body, no) => {
    const nth = (perConn.get(no) ?? 0) + 1;
    perConn.set(no, nth);
    const text = dec.decode(body);
    if (text === "race") {
      // The keep-alive race: answer as if keeping the connection, then close it without reading
      // the request that meanwhile arrived on it (the kernel answers those bytes with a reset).
      await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
      await sleep(50);
      return "close";
    }
    if (nth > 1 && text === "dies") return "close"; // read, then closed without a byte
    if (text === "always-dies") return "close";
    if (text === "continue-then-dies") {
      await write(conn, "HTTP/1.1 100 Continue\r\n\r\n");
      await sleep(30);
      return "close";
    }
    if (text === "hang") {
      while (await conn.read(new Uint8Array(16)) !== null) { /* until the client closes */ }
      return "close";
    }
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  const sent = (body: string) =>
    server.requests.filter((r) => r.body === body).map((r) => r.connNo);
  try {
    assert.equal(await (await post(pool, "race")).text(), "ok");
    assert.equal(pool.idle, 1, "the next request takes the connection the worker is closing");
    assert.equal(await (await post(pool, "next")).text(), "ok", "retried on a fresh connection");
    assert.deepEqual(sent("next"), [2], "the closed connection never read it");

    // The residual risk: a worker that read the request and closed without answering (while still
    // accepting connections) gets it once more, on a fresh connection; the answer comes from there.
    assert.equal(await (await post(pool, "warm")).text(), "ok");
    assert.equal(await (await post(pool, "dies")).text(), "ok");
    assert.deepEqual(sent("dies"), [2, 3], "sent twice: the reused connection, then a fresh one");

    // Never twice: the fresh connection's failure goes to the caller.
    assert.equal(pool.idle, 1);
    await assert.rejects(post(pool, "always-dies"), /closed before the response head/);
    assert.equal(sent("always-dies").length, 2);

    // Not after any byte of an answer (a 100 Continue), not after the caller's abort.
    assert.equal(await (await post(pool, "warm")).text(), "ok");
    assert.equal(pool.idle, 1);
    await assert.rejects(post(pool, "continue-then-dies"), /closed before the response head/);
    assert.equal(sent("continue-then-dies").length, 1, "sent once");
    assert.equal(await (await post(pool, "warm")).text(), "ok");
    assert.equal(pool.idle, 1);
    const ctl = new AbortController();
    const hung = post(pool, "hang", ctl.signal);
    for (let i = 0; i < 200 && sent("hang").length === 0; i++) await sleep(5);
    ctl.abort(new Error("deadline"));
    await assert.rejects(hung);
    await sleep(20);
    assert.equal(sent("hang").length, 1, "an aborted request is not sent again");
    assert.equal(pool.busy, 0);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: an early answer to a request the worker stopped reading is still read", async () => {
  // The worker reads the head only, answers 413 and closes: the client's write of the rest fails.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const c of listener) {
      await c.read(new Uint8Array(4096));
      await write(c, "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big!");
      await sleep(10);
      c.close();
    }
  })();
  const pool = new H1Pool({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port });
  try {
    const big = new Uint8Array(16 * 1024 * 1024);
    const res = await pool.request("POST", "/", [], big, AbortSignal.timeout(5000));
    assert.equal(res.status, 413);
    assert.equal(await res.text(), "too big!");
    assert.equal(pool.idle, 0, "a connection whose request was cut short is not reused");
  } finally {
    pool.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("h1 client: every idle connection past its TTL is closed, not only the top one", async () => {
  const server = rawServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port, idleTtlMs: 50 });
  try {
    await Promise.all([1, 2, 3, 4, 5].map(async () => (await post(pool)).text()));
    assert.equal(pool.idle, 5);
    // One request at a time keeps the top connection fresh; the four below it expire.
    for (let i = 0; i < 8; i++) {
      await (await post(pool)).text();
      await sleep(15);
    }
    assert.equal(pool.idle, 1);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: a 205 comes back with a null body, framed or not", async () => {
  const server = rawServer(async (conn, _head, body) => {
    // hyper (Deno.serve) sends a 205 with no length at all, and keeps the connection.
    const framing = dec.decode(body) === "framed" ? "content-length: 0\r\n" : "";
    await write(conn, `HTTP/1.1 205 Reset Content\r\n${framing}\r\n`);
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    for (const framing of ["framed", "unframed"]) {
      const res = await post(pool, framing, AbortSignal.timeout(2000));
      assert.equal(res.status, 205);
      assert.equal(res.body, null);
      assert.equal(pool.idle, 1, `${framing}: the connection is kept`);
    }
    assert.equal(server.connections, 1);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: a fresh connection that fails is not retried; refused connections throw", async () => {
  const server = rawServer(() => Promise.resolve("close"));
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    await assert.rejects(post(pool), /closed before the response head/);
    assert.equal(server.requests.length, 1, "sent once");
  } finally {
    pool.close();
    await server.close();
  }
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const dead = new H1Pool({ hostname: "127.0.0.1", port });
  await assert.rejects(post(dead), Deno.errors.ConnectionRefused);
  dead.close();
});

Deno.test("h1 client: broken framing is an H1ProtocolError", async () => {
  const replies: Record<string, string> = {
    "/status": "HTTP/2 200 OK\r\n\r\n",
    "/length": "HTTP/1.1 200 OK\r\ncontent-length: 12x\r\n\r\n",
    "/chunk": "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    "/short": "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
    "/head": "HTTP/1.1 200 OK\r\n" + "x-big: " + "a".repeat(70_000) + "\r\n\r\n",
    // What a Response would refuse: refused in the client, while the attempt is still open.
    "/name": "HTTP/1.1 200 OK\r\nx bad: 1\r\ntransfer-encoding: chunked\r\n\r\n",
    "/value": "HTTP/1.1 200 OK\r\nx-a: b\0c\r\ncontent-length: 0\r\n\r\n",
    // What `Headers` accepts but an HTTP writer does not (Deno's panics on it).
    "/ctl": "HTTP/1.1 200 OK\r\nx-a: b\x01c\r\ncontent-length: 0\r\n\r\n",
    // A transfer coding the client never offered (it sends no TE): the body could not be read.
    "/te": "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nabc",
    "/lengths": "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
    "/600": "HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n",
    "/reason": "HTTP/1.1 200 O\x01K\r\ncontent-length: 0\r\n\r\n",
    // obs-fold: not a header of its own, and a gateway must not guess.
    "/fold": "HTTP/1.1 200 OK\r\nx-a: a\r\n content-length: 3\r\n\r\nabcdef",
    "/crlf": "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
  };
  const server = rawServer(async (conn, head) => {
    const path = head.split(" ")[1];
    await write(conn, replies[path]);
    return "close";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    await assert.rejects(pool.request("POST", "/status", [], null, never), H1ProtocolError);
    await assert.rejects(pool.request("POST", "/length", [], null, never), /bad content-length/);
    await assert.rejects(pool.request("POST", "/head", [], null, never), /head is too large/);
    await assert.rejects(pool.send("POST", "/name", [], null, never), /name is not a token/);
    await assert.rejects(
      pool.send("POST", "/value", [], null, never),
      /control character in the value/,
    );
    await assert.rejects(
      pool.send("POST", "/ctl", [], null, never),
      /control character in the value/,
    );
    await assert.rejects(pool.send("POST", "/te", [], null, never), /unsupported transfer-enc/);
    await assert.rejects(pool.send("POST", "/lengths", [], null, never), /bad content-length/);
    await assert.rejects(pool.send("POST", "/600", [], null, never), /bad status 600/);
    await assert.rejects(pool.send("POST", "/reason", [], null, never), /bad reason phrase/);
    await assert.rejects(pool.send("POST", "/fold", [], null, never), /obsolete line folding/);
    const crlf = await pool.request("POST", "/crlf", [], null, never);
    await assert.rejects(crlf.text(), /not followed by CRLF/);
    const chunk = await pool.request("POST", "/chunk", [], null, never);
    await assert.rejects(chunk.text(), /bad chunk size/);
    const short = await pool.request("POST", "/short", [], null, never);
    await assert.rejects(short.text(), /7 body bytes missing/);
    assert.equal(pool.busy, 0);
    assert.equal(pool.idle, 0);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: abort mid-body and a cancelled body close the connection", async () => {
  let sawClose = 0;
  const server = rawServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
    // Never finishes: wait for the client to close.
    const b = new Uint8Array(16);
    while (await conn.read(b) !== null) { /* drain */ }
    sawClose++;
    return "close";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port });
  try {
    const ctl = new AbortController();
    const res = await post(pool, "{}", ctl.signal);
    const reader = res.body!.getReader();
    assert.equal(dec.decode((await reader.read()).value), "hello");
    const pending = reader.read();
    ctl.abort(new Error("deadline"));
    await assert.rejects(pending);
    assert.equal(pool.busy, 0);

    const res2 = await post(pool);
    const r2 = res2.body!.getReader();
    await r2.read();
    await r2.cancel();
    assert.equal(pool.busy, 0);
    assert.equal(pool.idle, 0);
    for (let i = 0; i < 50 && sawClose < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(sawClose, 2, "the worker saw both connections close");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("h1 client: idle TTL, an aborted signal, and close()", async () => {
  const server = rawServer(async (conn) => {
    await write(conn, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    return "keep";
  });
  const pool = new H1Pool({ hostname: "127.0.0.1", port: server.port, idleTtlMs: 0 });
  try {
    await (await post(pool)).text();
    await new Promise((r) => setTimeout(r, 5));
    await (await post(pool)).text();
    assert.equal(server.connections, 2, "an idle connection past its TTL is not reused");
    const aborted = new AbortController();
    aborted.abort(new Error("gone"));
    await assert.rejects(post(pool, "{}", aborted.signal), /gone/);
    pool.close();
    assert.equal(pool.idle, 0);
    await assert.rejects(post(pool), /client is closed/);
  } finally {
    pool.close();
    await server.close();
  }
});
