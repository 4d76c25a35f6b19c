/**
 * The router's own HTTP/1.1 server (src/http) against hostile clients over raw sockets (issue 15):
 * a head sent a byte at a time, idle keep-alive connections, more connections than allowed, a
 * client that hangs up while its request is served or while it sends its body, a request line
 * that claims https, a smuggling attempt, a handler that echoes an injected header value, and a
 * process that runs out of file descriptors (EMFILE) under a flood of idle connections.
 */

import assert from "node:assert/strict";
import { json, RawClient, testServer, within } from "../src/http/testing.ts";
import { ClientGone, type ServerRequest } from "../src/http/types.ts";

const dec = new TextDecoder();

/** Waits until `check()` holds, polling; fails after `ms`. */
async function until(check: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("a head sent a byte every 100 ms is cut off at the header timeout; others are served meanwhile", async () => {
  const server = testServer((req) => json({ path: req.path }), { headerTimeoutMs: 1000 });
  const slow = await RawClient.connect(server.port);
  try {
    const started = performance.now();
    const closed = slow.closedWithin(4000);
    let sending = true;
    const drip = (async () => {
      const bytes = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + "a".repeat(1000);
      for (let i = 0; sending && i < bytes.length; i++) {
        try {
          await slow.send(bytes[i]);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const other = await RawClient.connect(server.port);
    await other.send("GET /meanwhile HTTP/1.1\r\nHost: x\r\n\r\n");
    const r = (await other.response())!;
    assert.equal(JSON.parse(r.body).path, "/meanwhile");
    other.close();
    assert.ok(await closed, "the slow connection was not closed");
    sending = false;
    await drip;
    const took = performance.now() - started;
    assert.ok(took > 500 && took < 4000, `closed after ${took} ms`);
    assert.equal(server.stats.headerTimeouts, 1);
  } finally {
    slow.close();
    await server.shutdown();
  }
});

Deno.test("an idle keep-alive connection is closed after the idle timeout", async () => {
  const server = testServer(() => json({}), { idleTimeoutMs: 300 });
  const c = await RawClient.connect(server.port);
  try {
    await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await c.response())!.status, 200);
    assert.equal(server.connections, 1);
    assert.ok(await c.closedWithin(3000));
    await until(() => server.connections === 0);
    assert.equal(server.stats.idleTimeouts, 1);
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test("connections over maxConnections are closed at once; the server goes on serving", async () => {
  const server = testServer(() => json({ ok: true }), { maxConnections: 3 });
  const held = await Promise.all([0, 1, 2].map(() => RawClient.connect(server.port)));
  try {
    await until(() => server.connections === 3, 3000, "3 connections");
    const extra = await RawClient.connect(server.port);
    assert.ok(await extra.closedWithin(2000), "the 4th connection stayed open");
    extra.close();
    assert.equal(server.stats.refused, 1);
    held[0].close();
    await until(() => server.connections === 2, 3000, "a freed slot");
    const again = await RawClient.connect(server.port);
    await again.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await again.response())!.status, 200);
    again.close();
  } finally {
    for (const c of held) c.close();
    await server.shutdown();
  }
});

Deno.test("a client that hangs up while its request is served aborts the signal with ClientGone", async () => {
  for (const body of ["", '{"x":1}']) {
    const started = Promise.withResolvers<void>();
    const reason = Promise.withResolvers<unknown>();
    const server = testServer(async (req: ServerRequest) => {
      if (req.hasBody) await req.readBody(1024, 2000);
      started.resolve();
      await new Promise((r) => req.signal.addEventListener("abort", r, { once: true }));
      reason.resolve(req.signal.reason);
      return json({});
    });
    try {
      const c = await RawClient.connect(server.port);
      const length = body === "" ? "" : `Content-Length: ${body.length}\r\n`;
      await c.send(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${length}\r\n${body}`);
      await within(started.promise, 3000, "handler start");
      c.close();
      assert.ok(await within(reason.promise, 1000, "abort") instanceof ClientGone);
      await until(() => server.connections === 0);
      assert.equal(server.stats.clientGone, 1);
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("a body cut short makes readBody reject with ClientGone", async () => {
  const failure = Promise.withResolvers<unknown>();
  const server = testServer(async (req) => {
    try {
      await req.readBody(1 << 20, 5000);
      failure.resolve("read whole");
    } catch (err) {
      failure.resolve(err);
    }
    return json({});
  });
  try {
    for (
      const rest of [
        "Content-Length: 100\r\n\r\n0123456789",
        "Transfer-Encoding: chunked\r\n\r\n64\r\n0123",
      ]
    ) {
      const c = await RawClient.connect(server.port);
      await c.send("POST / HTTP/1.1\r\nHost: x\r\n" + rest);
      await new Promise((r) => setTimeout(r, 50));
      c.close();
      assert.ok(await within(failure.promise, 2000, "readBody") instanceof ClientGone, rest);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("an absolute-form https request line over plain HTTP leaves the scheme http", async () => {
  const server = testServer((req) =>
    json({ scheme: req.scheme, path: req.path, search: req.search })
  );
  const c = await RawClient.connect(server.port);
  try {
    await c.send(
      "POST https://x/v1/chat/completions?a=b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert.deepEqual(JSON.parse((await c.response())!.body), {
      scheme: "http",
      path: "/v1/chat/completions",
      search: "?a=b",
    });
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test("Content-Length with Transfer-Encoding is a 400 and the smuggled request never runs", async () => {
  const paths: string[] = [];
  const server = testServer((req) => {
    paths.push(req.path);
    return json({});
  });
  const c = await RawClient.connect(server.port);
  try {
    await c.send(
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const r = (await c.response())!;
    assert.equal(r.status, 400);
    assert.equal(r.header("connection"), "close");
    assert.ok(await c.closedWithin(3000));
    assert.deepEqual(paths, []);
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test("a reply header with an injected line is dropped and logged; the response is fine", async () => {
  const server = testServer((req) => ({
    status: 200,
    headers: [["x-echo", req.header("x-in") + "\r\nset-cookie: pwned=1"], ["x-ok", "yes"], [
      "x-nul",
      "a\0",
    ]],
    body: new TextEncoder().encode("fine"),
  }));
  const c = await RawClient.connect(server.port);
  try {
    await c.send(
      "GET / HTTP/1.1\r\nHost: x\r\nX-In: v\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX-In: w\r\n\r\n",
    );
    for (let i = 0; i < 2; i++) {
      const r = (await c.response())!;
      assert.equal(r.status, 200);
      assert.equal(r.body, "fine");
      assert.equal(r.header("x-ok"), "yes");
      assert.equal(r.header("x-echo"), null);
      assert.equal(r.header("set-cookie"), null);
      assert.equal(r.header("x-nul"), null);
    }
    assert.equal(server.logs.filter((l) => l.startsWith("Reply header dropped")).length, 4);
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test({
  name:
    "out of file descriptors (ulimit -n 256, 1000 idle connections): still running, serves again",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const script = new URL("./_hostile_server.ts", import.meta.url).pathname;
    const child = new Deno.Command("bash", {
      args: ["-c", `ulimit -n 256; exec "${Deno.execPath()}" run -A "${script}" 0 30000`],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const stderr = new Response(child.stderr).text();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const conns: Deno.TcpConn[] = [];
    try {
      let out = "";
      while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(out)) {
        const { value, done } = await within(lines.read(), 15_000, "child start");
        if (done) throw new Error(`child ended: ${await stderr}`);
        out += value;
      }
      const port = Number(/:(\d+)/.exec(out.slice(out.indexOf("listening")))![1]);
      // Connections beyond the descriptors and the backlog hang in the kernel: cut off after 1.5 s.
      const stop = AbortSignal.timeout(1500);
      const results = await Promise.allSettled(
        Array.from(
          { length: 1000 },
          () => Deno.connect({ hostname: "127.0.0.1", port, signal: stop }),
        ),
      );
      for (const r of results) if (r.status === "fulfilled") conns.push(r.value);
      assert.ok(conns.length > 300, `only ${conns.length} connections opened`);
      await new Promise((r) => setTimeout(r, 300));
      if (exited) {
        throw new Error(`the server exited: ${JSON.stringify(await status)} ${await stderr}`);
      }
      for (const c of conns.splice(0)) c.close();
      // The server frees its descriptors as it sees the connections close, then accepts again.
      let stats: Record<string, number> | null = null;
      const end = performance.now() + 8000;
      while (stats === null && performance.now() < end) {
        const c = await RawClient.connect(port);
        try {
          await c.send("GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
          const r = await c.response(1500);
          if (r !== null) stats = JSON.parse(dec.decode(new TextEncoder().encode(r.body)));
        } catch {
          /* not yet */
        } finally {
          c.close();
        }
      }
      assert.ok(stats !== null, "the server did not serve again");
      assert.ok(stats.acceptErrors > 0, "no accept error: the descriptor limit was not reached");
      assert.equal(exited, false);
    } finally {
      for (const c of conns) c.close();
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await status;
      await stderr;
      await lines.cancel().catch(() => {});
    }
  },
});

Deno.test("a client that leaves mid-stream gets its reply body cancelled with ClientGone", async () => {
  const cancelled = Promise.withResolvers<unknown>();
  const enc = new TextEncoder();
  const server = testServer(() => ({
    status: 200,
    headers: [["content-type", "text/event-stream"]],
    body: {
      read: async () => {
        await new Promise((r) => setTimeout(r, 20));
        return { done: false, value: enc.encode("data: tick\n\n") };
      },
      cancel: (reason) => {
        cancelled.resolve(reason);
        return Promise.resolve();
      },
    },
  }));
  try {
    const c = await RawClient.connect(server.port);
    await c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise((r) => setTimeout(r, 100));
    c.close();
    assert.ok(await within(cancelled.promise, 1000, "cancel") instanceof ClientGone);
    await until(() => server.connections === 0);
  } finally {
    await server.shutdown();
  }
});
