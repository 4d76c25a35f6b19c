/**
 * Faults the router must survive, against real worker processes and in-process servers: a worker
 * killed mid-stream, refused and hanging connections, all workers down, first-byte, idle and
 * whole-request timeouts, a 5xx before the first byte, and half-open recovery after an outage.
 * Each test checks what the client sees and what the router records (in-flight count, breaker,
 * `router_upstream_failures_total`, `router_retries_total`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { startSimWorker } from "../src/sim/server.ts";
import {
  bytes,
  chatBody,
  chatCompletion,
  hangingPort,
  LineReader,
  readAll,
  refusedUrl,
  routerHarness,
  sample,
  sseChunk,
  sseData,
  sseWorker,
  startServer,
  waitFor,
} from "./_support.ts";

const STREAM = chatBody("tell me a long story", { stream: true });

/** The `error` object of the last SSE event, or fails. */
function lastErrorEvent(text: string): { message: string; type: string; code: string } {
  const data = sseData(text);
  assert.ok(data.length > 0, `no complete event in ${JSON.stringify(text)}`);
  const last = JSON.parse(data.at(-1)!);
  assert.ok(last.error, `last event is not an error: ${data.at(-1)}`);
  assert.ok("param" in last.error, "error event lacks param");
  return last.error;
}

Deno.test("a worker process killed mid-stream: the client gets an SSE error event, in-flight returns to 0, counted as a failure but not against the breaker", async () => {
  const root = new URL("..", import.meta.url).pathname;
  // A real sim worker in its own process, slow enough that the stream is still running when killed.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cmd/sim-worker.ts", "--port", "0", "--time-scale", "1"],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const out = new LineReader(child.stdout);
  const first = await out.next((l) => l.startsWith("listening on "));
  const workerUrl = first.slice("listening on ".length);
  const h = await routerHarness([workerUrl], { router: { maxRetries: 2 } });
  try {
    const body = JSON.stringify({
      ...JSON.parse(STREAM),
      max_tokens: 2000,
    });
    const res = await h.post(body);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (sseData(text).length < 3) {
      const { value, done } = await reader.read();
      assert.ok(!done, "stream ended before the worker was killed");
      text += decoder.decode(value, { stream: true });
    }
    assert.equal(h.router.inflight, 1);
    child.kill("SIGKILL");
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const err = lastErrorEvent(text);
    assert.equal(err.type, "upstream_error");
    assert.equal(err.code, "stream_error");
    assert.match(err.message, /Worker w1 failed mid-stream/);
    assert.ok(!text.includes("[DONE]"), "a broken stream must not end with [DONE]");
    assert.ok(await waitFor(() => h.router.inflight === 0), "in-flight count leaked");
    // Only connect and first-byte failures count against the breaker (the worker had answered).
    assert.equal(h.router.backends[0].breaker.consecutiveFailures, 0);
    const m = await h.metrics();
    assert.equal(sample(m, "router_upstream_failures_total", { kind: "stream-error" }), 1);
    // Bytes had been sent: nothing was retried.
    assert.equal(sample(m, "router_retries_total"), 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already dead */ }
    await child.status;
    await out.done;
    await h.close();
  }
});

Deno.test("a stream that breaks inside an event: the partial event is closed off before the error event", async () => {
  const worker = await sseWorker({ events: 2, partial: 'data: {"id":"x","cho', tail: "error" });
  const h = await routerHarness([worker.url], {}, { closeAlso: [worker] });
  try {
    const res = await h.post(STREAM);
    const { text, error } = await readAll(res);
    assert.equal(error, null, "an SSE stream ends cleanly with the error event");
    assert.ok(text.includes('data: {"id":"x","cho\n\ndata: {"error"'), JSON.stringify(text));
    assert.equal(lastErrorEvent(text).code, "stream_error");
    assert.ok(await waitFor(() => h.router.inflight === 0));
  } finally {
    await h.close();
  }
});

Deno.test("a non-SSE body that breaks mid-way is truncated with an error, never completed", async () => {
  const partial = '{"id":"chatcmpl-1","choices":[{"message":{"content":"hal';
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes(partial));
        setTimeout(() => c.error(new Error("worker died")), 5);
      },
    });
    return new Response(stream, { headers: { "content-type": "application/json" } });
  });
  const h = await routerHarness([worker.url], {}, { closeAlso: [worker] });
  try {
    const res = await h.post(chatBody("x"));
    assert.equal(res.status, 200);
    const { text, error } = await readAll(res);
    assert.ok(error !== null, "the client must see the body fail");
    // Exactly what the worker sent: nothing added (no SSE error event in a JSON body), nothing lost.
    assert.equal(text, partial);
    assert.ok(await waitFor(() => h.router.inflight === 0));
    assert.equal(h.router.backends[0].breaker.consecutiveFailures, 0);
    assert.equal(
      sample(await h.metrics(), "router_upstream_failures_total", { kind: "stream-error" }),
      1,
    );
  } finally {
    await h.close();
  }
});

Deno.test("sim worker die_after_chunks: the stream ends with an error event and is not retried", async () => {
  const dying = await startSimWorker({
    profile: "a100-7b",
    timeScale: 0.01,
    faults: { dieAfterChunks: 3 },
  });
  let otherHits = 0;
  const other = await startServer(async (req) => {
    otherHits++;
    await req.arrayBuffer();
    return Response.json(chatCompletion("other"));
  });
  const h = await routerHarness([dying.url, other.url], { router: { strategy: "roundrobin" } }, {
    closeAlso: [{ close: () => dying.shutdown() }, other],
  });
  try {
    const res = await h.post(STREAM);
    assert.equal(res.headers.get("x-router-backend"), "w1");
    const { text } = await readAll(res);
    const data = sseData(text);
    assert.equal(data.length, 4, "the three chunks sent, then the error event");
    assert.equal(JSON.parse(data[2]).object, "chat.completion.chunk");
    assert.equal(lastErrorEvent(text).code, "stream_error");
    assert.equal(otherHits, 0, "a stream that already sent bytes must never be retried");
    assert.ok(await waitFor(() => h.router.inflight === 0));
  } finally {
    await h.close();
  }
});

Deno.test("a worker refusing connections: the request succeeds on another worker via retry", async () => {
  const down = await startSimWorker({ profile: "a100-7b", timeScale: 0.01 });
  await down.setFaults({ refuseConnections: true });
  const up = await startSimWorker({ profile: "a100-7b", timeScale: 0.01 });
  const h = await routerHarness([down.url, up.url], { router: { strategy: "roundrobin" } }, {
    closeAlso: [{ close: () => down.shutdown() }, { close: () => up.shutdown() }],
  });
  try {
    let retried = 0;
    for (let i = 0; i < 6; i++) {
      const res = await h.post(chatBody(`q${i}`, { stream: true }));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-router-backend"), "w2");
      if (res.headers.get("x-router-reason") === "retry-after-round-robin") retried++;
      const { text } = await readAll(res);
      assert.equal(sseData(text).at(-1), "[DONE]");
    }
    // Round robin advances on the retry's pick too, so it offers w1 first every time, until w1's
    // breaker opens after 5 failures (the default threshold); the sixth goes to w2 directly.
    assert.equal(retried, 5);
    assert.equal(h.router.backends[0].breaker.state, "open");
    const m = await h.metrics();
    assert.equal(sample(m, "router_retries_total", { backend: "w1", reason: "connect-error" }), 5);
    assert.equal(sample(m, "router_upstream_failures_total", { kind: "connect-error" }), 5);
    assert.equal(h.router.inflight, 0);
  } finally {
    await h.close();
  }
});

/** A worker that answers every request with `head` (and nothing more) and keeps the connection. */
function malformedWorker(head: string): { url: string; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const served = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        try {
          while (true) {
            const n = await conn.read(buf);
            if (n === null) break;
            await conn.write(new TextEncoder().encode(head));
          }
        } catch { /* closed */ }
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* already closed */ }
      })();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await served.catch(() => {});
    },
  };
}

Deno.test("a worker head that a Response would refuse is the worker's failure: retried, 502 alone, nothing leaks", async () => {
  for (
    const head of [
      "HTTP/1.1 200 OK\r\nx bad: 1\r\ntransfer-encoding: chunked\r\n\r\n",
      "HTTP/1.1 700 Odd\r\ntransfer-encoding: chunked\r\n\r\n",
    ]
  ) {
    const bad = malformedWorker(head);
    const up = await startSimWorker({ profile: "a100-7b", timeScale: 0.01 });
    const h = await routerHarness([bad.url, up.url], { router: { strategy: "roundrobin" } }, {
      closeAlso: [bad, { close: () => up.shutdown() }],
    });
    try {
      const res = await h.post(STREAM);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-router-backend"), "w2");
      assert.equal(res.headers.get("x-router-reason"), "retry-after-round-robin");
      assert.equal(sseData((await readAll(res)).text).at(-1), "[DONE]");
      const m = await h.metrics();
      assert.equal(
        sample(m, "router_retries_total", { backend: "w1", reason: "bad-response" }),
        1,
      );
      assert.equal(h.router.inflight, 0);
      assert.equal(h.router.backends[0].h1Pool?.busy ?? 0, 0);
    } finally {
      await h.close();
    }

    const alone = malformedWorker(head);
    const h1 = await routerHarness([alone.url], {}, { closeAlso: [alone] });
    try {
      const res = await h1.post(STREAM);
      assert.equal(res.status, 502);
      const body = await res.json();
      assert.equal(body.error.type, "upstream_error");
      assert.equal(body.error.code, "bad_response");
      assert.match(body.error.message, /bad (header line|status)/);
      assert.equal(h1.router.inflight, 0);
      assert.equal(h1.router.backends[0].h1Pool?.busy ?? 0, 0);
    } finally {
      await h1.close();
    }
  }
});

Deno.test("all workers down: 502 at once when connections fail, 503 at once when breakers are open", async () => {
  const h = await routerHarness([refusedUrl(), refusedUrl(), refusedUrl()], {
    worker: { breakerThreshold: 1, breakerCooldownMs: 60_000 },
  });
  try {
    let t = performance.now();
    const res = await h.post(chatBody("x"));
    assert.equal(res.status, 502);
    const body = await res.json();
    assert.equal(body.error.type, "upstream_error");
    assert.equal(body.error.code, "connect_error");
    assert.ok(performance.now() - t < 1000, "three refused connects must fail fast");
    for (const b of h.router.backends) assert.equal(b.breaker.state, "open");
    // The error names the worker that failed last, as its message does, and the reason it was tried.
    const lastTried = res.headers.get("x-router-backend")!;
    assert.match(body.error.message, new RegExp(`\\b${lastTried}\\b`));
    assert.match(res.headers.get("x-router-reason") ?? "", /^retry-after-/);

    t = performance.now();
    const none = await h.post(chatBody("x"));
    assert.equal(none.status, 503);
    assert.equal((await none.json()).error.type, "service_unavailable_error");
    assert.equal(none.headers.get("x-router-backend"), null, "no worker was tried");
    assert.ok(performance.now() - t < 200, "no admitted worker must answer at once");
    assert.equal(h.router.inflight, 0);
  } finally {
    await h.close();
  }
});

Deno.test({
  name: "connect timeout: a worker whose connections hang is given up and the request retried",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const hang = await hangingPort();
    const good = await startServer(async (req) => {
      await req.arrayBuffer();
      return Response.json(chatCompletion("good"));
    });
    const h = await routerHarness([hang.url, good.url], {
      router: { strategy: "roundrobin" },
      worker: { connectTimeoutMs: 150 },
    }, { closeAlso: [good, { close: () => hang.close() }] });
    try {
      const t = performance.now();
      const res = await h.post(chatBody("x"));
      const took = performance.now() - t;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-router-backend"), "w2");
      assert.equal(res.headers.get("x-router-reason"), "retry-after-round-robin");
      await res.body?.cancel();
      // Between one and two connect timeouts (the check dials once the first has passed).
      assert.ok(took >= 150 && took < 1500, `took ${took} ms`);
      const m = await h.metrics();
      assert.equal(sample(m, "router_upstream_failures_total", { kind: "connect-timeout" }), 1);
      assert.equal(
        sample(m, "router_retries_total", { backend: "w1", reason: "connect-timeout" }),
        1,
      );
    } finally {
      await h.close();
    }
  },
});

Deno.test("connect timeout does not cut a slow worker that is reachable", async () => {
  const slow = await startServer(async (req) => {
    await req.arrayBuffer();
    await new Promise((r) => setTimeout(r, 400));
    return Response.json(chatCompletion("slow but fine"));
  });
  const h = await routerHarness([slow.url], { worker: { connectTimeoutMs: 100 } }, {
    closeAlso: [slow],
  });
  try {
    const res = await h.post(chatBody("x"));
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, "slow but fine");
  } finally {
    await h.close();
  }
});

Deno.test("first-byte timeout: 504 when no byte came; retried elsewhere only with retry_timeouts; headers alone do not count", async () => {
  // Headers at once, then nothing: the router holds the response, so no byte reached the client.
  const stalled = await startSimWorker({
    profile: "a100-7b",
    timeScale: 0.01,
    faults: { stallMs: 5_000 },
  });
  const h = await routerHarness([stalled.url], { worker: { ttfbTimeoutMs: 200 } }, {
    closeAlso: [{ close: () => stalled.shutdown() }],
  });
  try {
    const t = performance.now();
    const res = await h.post(STREAM);
    assert.equal(res.status, 504);
    const body = await res.json();
    assert.equal(body.error.type, "timeout_error");
    assert.equal(body.error.code, "ttfb_timeout");
    assert.match(body.error.message, /Worker w1 sent no response byte within 200 ms/);
    assert.ok(performance.now() - t < 2000);
    assert.equal(h.router.inflight, 0);
    assert.equal(h.router.backends[0].breaker.consecutiveFailures, 1);
  } finally {
    await h.close();
  }

  const stalled2 = await startSimWorker({
    profile: "a100-7b",
    timeScale: 0.01,
    faults: { stallMs: 5_000 },
  });
  const fine = await startSimWorker({ profile: "a100-7b", timeScale: 0.01 });
  // By default a request that timed out after it was sent is not run again elsewhere.
  const h1 = await routerHarness([stalled2.url, fine.url], {
    router: { strategy: "roundrobin" },
    worker: { ttfbTimeoutMs: 200 },
  });
  try {
    const res = await h1.post(STREAM);
    assert.equal(res.status, 504);
    assert.equal(res.headers.get("x-router-backend"), "w1");
    await res.body?.cancel();
    assert.equal(sample(await h1.metrics(), "router_retries_total"), 0);
  } finally {
    await h1.close();
  }
  const h2 = await routerHarness([stalled2.url, fine.url], {
    router: { strategy: "roundrobin", retryTimeouts: true },
    worker: { ttfbTimeoutMs: 200 },
  }, { closeAlso: [{ close: () => stalled2.shutdown() }, { close: () => fine.shutdown() }] });
  try {
    const res = await h2.post(STREAM);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-router-backend"), "w2");
    assert.equal(res.headers.get("x-router-reason"), "retry-after-round-robin");
    assert.equal(sseData((await readAll(res)).text).at(-1), "[DONE]");
    const m = await h2.metrics();
    assert.equal(sample(m, "router_retries_total", { backend: "w1", reason: "ttfb-timeout" }), 1);
  } finally {
    await h2.close();
  }
});

Deno.test("idle timeout mid-stream: the stream ends with an idle_timeout error event; counted as a failure but not against the breaker", async () => {
  const worker = await sseWorker({ events: 3, tail: "hang" });
  const h = await routerHarness([worker.url], { worker: { idleTimeoutMs: 150 } }, {
    closeAlso: [worker],
  });
  try {
    const t = performance.now();
    const res = await h.post(STREAM);
    assert.equal(res.status, 200);
    const { text, error } = await readAll(res);
    assert.equal(error, null);
    assert.equal(sseData(text).length, 4);
    const err = lastErrorEvent(text);
    assert.equal(err.type, "timeout_error");
    assert.equal(err.code, "idle_timeout");
    assert.match(err.message, /sent nothing for 150 ms mid-body/);
    const took = performance.now() - t;
    assert.ok(took >= 150 && took < 2000, `took ${took} ms`);
    assert.ok(await waitFor(() => h.router.inflight === 0));
    assert.equal(h.router.backends[0].breaker.consecutiveFailures, 0);
    assert.equal(
      sample(await h.metrics(), "router_upstream_failures_total", { kind: "idle-timeout" }),
      1,
    );
  } finally {
    await h.close();
  }
});

Deno.test("idle timeout is reset by every chunk: a slow but steady stream completes", async () => {
  const worker = await sseWorker({ events: 8, gapMs: 60 });
  const h = await routerHarness([worker.url], { worker: { idleTimeoutMs: 150 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(STREAM);
    const { text } = await readAll(res);
    assert.equal(sseData(text).at(-1), "[DONE]", "8 × 60 ms exceeds the idle limit only in sum");
  } finally {
    await h.close();
  }
});

Deno.test("whole-request timeout mid-stream ends the stream with a timeout error event", async () => {
  const worker = await sseWorker({ events: 1000, gapMs: 10 });
  const h = await routerHarness([worker.url], { worker: { timeoutMs: 250 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(STREAM);
    const { text } = await readAll(res);
    const err = lastErrorEvent(text);
    assert.equal(err.code, "timeout");
    assert.match(err.message, /timed out after 250 ms/);
    assert.ok(await waitFor(() => h.router.inflight === 0));
  } finally {
    await h.close();
  }
});

Deno.test("a worker that fails before its first body byte is retried even though it sent headers", async () => {
  let brokenHits = 0;
  const broken = await startServer(async (req) => {
    brokenHits++;
    await req.arrayBuffer();
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        setTimeout(() => c.error(new Error("died during prefill")), 20);
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  const good = await sseWorker({ events: 2 });
  const h = await routerHarness([broken.url, good.url], { router: { strategy: "roundrobin" } }, {
    closeAlso: [broken, good],
  });
  try {
    const res = await h.post(STREAM);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-router-backend"), "w2");
    assert.equal(sseData((await readAll(res)).text).at(-1), "[DONE]");
    assert.equal(brokenHits, 1);
    const m = await h.metrics();
    assert.equal(sample(m, "router_retries_total", { backend: "w1", reason: "stream-error" }), 1);
  } finally {
    await h.close();
  }
});

Deno.test("half-open recovery in real time: an outage opens the breaker, one probe after the cooldown closes it", async () => {
  const worker = await startSimWorker({ profile: "a100-7b", timeScale: 0.01 });
  const h = await routerHarness([worker.url], {
    router: { maxRetries: 0 },
    worker: { breakerThreshold: 3, breakerCooldownMs: 300 },
  }, { closeAlso: [{ close: () => worker.shutdown() }] });
  try {
    const ok = async () => {
      const res = await h.post(chatBody("hello"));
      await res.body?.cancel();
      return res.status;
    };
    assert.equal(await ok(), 200);
    await worker.setFaults({ refuseConnections: true });
    for (let i = 0; i < 3; i++) assert.equal(await ok(), 502);
    const b = h.router.backends[0];
    assert.equal(b.breaker.state, "open");
    assert.equal(await ok(), 503, "an open breaker admits nothing");
    await worker.setFaults({});
    assert.equal(await ok(), 503, "still cooling down");
    await new Promise((r) => setTimeout(r, 320));
    assert.equal(b.breaker.canAdmit(), true);
    assert.equal(await ok(), 200, "the probe passes");
    assert.equal(b.breaker.state, "closed");
    for (let i = 0; i < 3; i++) assert.equal(await ok(), 200);
  } finally {
    await h.close();
  }
});

Deno.test("the response direction strips hop-by-hop and Connection-listed headers", async () => {
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return new Response(JSON.stringify(chatCompletion("x")), {
      headers: {
        "content-type": "application/json",
        connection: "x-upstream-secret",
        "x-upstream-secret": "internal",
        "keep-alive": "timeout=5",
        "proxy-authenticate": "Basic",
        "x-engine": "kept",
      },
    });
  });
  const h = await routerHarness([worker.url], {}, { closeAlso: [worker] });
  try {
    const res = await h.post(chatBody("x"));
    await res.body?.cancel();
    assert.equal(res.headers.get("x-upstream-secret"), null);
    assert.equal(res.headers.get("keep-alive"), null);
    assert.equal(res.headers.get("proxy-authenticate"), null);
    assert.equal(res.headers.get("x-engine"), "kept");
  } finally {
    await h.close();
  }
});

Deno.test("a stream's first event is held only until the worker's first byte, then flows unbuffered", async () => {
  const gate = Promise.withResolvers<void>();
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    const stream = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(bytes(sseChunk("first")));
        await gate.promise;
        c.enqueue(bytes("data: [DONE]\n\n"));
        c.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  const h = await routerHarness([worker.url], {}, { closeAlso: [worker] });
  try {
    const res = await h.post(STREAM);
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /"first"/);
    gate.resolve();
    while (!(await reader.read()).done) { /* drain */ }
  } finally {
    gate.resolve();
    await h.close();
  }
});

Deno.test("a worker's own non-JSON error page reaches the client in OpenAI's error shape", async () => {
  const page = "<html><head><title>502 Bad Gateway</title></head><body>" +
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.22.1</center></body></html>";
  let status = 502;
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return status === 502
      ? new Response(page, { status, headers: { "content-type": "text/html" } })
      : new Response("model not here\n", { status, headers: { "content-type": "text/plain" } });
  });
  const h = await routerHarness([worker.url], { router: { maxRetries: 0 } }, {
    closeAlso: [worker],
  });
  try {
    const res = await h.post(chatBody("x"));
    assert.equal(res.status, 502);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("x-router-backend"), "w1");
    const body = await res.json();
    assert.equal(body.error.type, "upstream_error");
    assert.equal(body.error.code, "upstream_error_page");
    assert.match(body.error.message, /^Worker w1 answered 502 Bad Gateway: 502 Bad Gateway 502/);
    assert.ok(!body.error.message.includes("<"), body.error.message);
    status = 404;
    const missing = await h.post(chatBody("x"));
    assert.equal(missing.status, 404);
    const err = (await missing.json()).error;
    assert.equal(err.type, "not_found_error");
    assert.equal(err.message, "Worker w1 answered 404 Not Found: model not here");
    assert.ok(await waitFor(() => h.router.inflight === 0));
  } finally {
    await h.close();
  }
});

Deno.test("case 11: by default a long stream is not cut (no whole-request cap); the first-byte deadline applies to the first byte only", async () => {
  const worker = await sseWorker({ events: 25, gapMs: 40 }); // about a second of streaming
  const h = await routerHarness([worker.url], { worker: { ttfbTimeoutMs: 200 } }, {
    closeAlso: [worker],
  });
  try {
    assert.equal(h.router.backends[0].config.timeoutMs, 0, "no whole-request timeout by default");
    const res = await h.post(STREAM);
    const { text, error } = await readAll(res);
    assert.equal(error, null);
    assert.equal(
      sseData(text).at(-1),
      "[DONE]",
      "streamed past the first-byte deadline to its end",
    );
  } finally {
    await h.close();
  }
});
