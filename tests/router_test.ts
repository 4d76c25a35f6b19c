/**
 * The router against real in-process upstream servers: headers, streaming without buffering,
 * client aborts, refused connections and retries, limits, admission, readiness, metrics and the
 * access log.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configFromWorkers, type ConfigOverrides, type WorkerInput } from "../src/config/mod.ts";
import { ListenError, Logger, type RunningRouter, startRouter } from "../src/router/mod.ts";
import { ManualClock } from "../src/util/clock.ts";
import {
  bytes,
  chatBody,
  chatCompletion,
  heldWorker,
  refusedUrl,
  routingHashes,
  sseChunk,
  sseUsage,
  startServer,
  type TestServer,
  waitFor,
} from "./_support.ts";

interface Harness {
  readonly router: RunningRouter;
  readonly upstreams: TestServer[];
  readonly logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Starts a router over `workers` (URLs or in-process servers) with health checks off. */
async function harness(
  workers: (TestServer | WorkerInput)[],
  overrides: ConfigOverrides = {},
  clock?: ManualClock,
): Promise<Harness> {
  const logs: Record<string, unknown>[] = [];
  const upstreams = workers.filter((w): w is TestServer => typeof w === "object" && "close" in w);
  const inputs = workers.map((w) => (typeof w === "object" && "close" in w ? w.url : w));
  const config = configFromWorkers(inputs, {
    ...overrides,
    server: { addr: "127.0.0.1:0", ...overrides.server },
    health: { intervalMs: 0, ...overrides.health },
    router: { seed: 7, ...overrides.router },
  });
  const router = await startRouter(config, {
    logger: new Logger("info", "json", (line) => logs.push(JSON.parse(line))),
    clock,
  });
  return {
    router,
    upstreams,
    logs,
    async close() {
      await router.shutdown();
      await Promise.all(upstreams.map((u) => u.close()));
    },
  };
}

function post(
  h: Harness,
  body: string | Uint8Array<ArrayBuffer>,
  init: RequestInit = {},
  path = "/v1/chat/completions",
) {
  return fetch(h.router.url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...init.headers },
    body,
    signal: init.signal,
  });
}

/** A JSON upstream answering every completion with its own name. */
function jsonWorker(name: string, seen?: Headers[]): Promise<TestServer> {
  return startServer(async (req) => {
    seen?.push(new Headers(req.headers));
    if (new URL(req.url).pathname === "/v1/models") {
      return Response.json({ object: "list", data: [{ id: `model-${name}`, object: "model" }] });
    }
    await req.arrayBuffer();
    return Response.json(chatCompletion(name, 100, 32));
  });
}

Deno.test("proxied responses carry X-Router-Backend, X-Router-Reason and an echoed X-Request-ID", async () => {
  // The worker echoes the request id (vLLM's --enable-request-id-headers) and, like a router in
  // front of an engine, names its own backend: the client still sees each header once, the router's.
  const worker = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("a", 100, 32), {
      headers: {
        "x-request-id": req.headers.get("x-request-id") ?? "none",
        "x-router-backend": "inner-engine",
        "x-router-reason": "inner-reason",
      },
    });
  });
  const h = await harness([worker], { router: { strategy: "roundrobin" } });
  try {
    const res = await post(h, chatBody("hi"), { headers: { "x-request-id": "req-42" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-router-backend"), "w1");
    assert.equal(res.headers.get("x-router-reason"), "round-robin");
    assert.equal(res.headers.get("x-request-id"), "req-42");
    const body = await res.json();
    assert.equal(body.choices[0].message.content, "a");

    const res2 = await post(h, chatBody("hi"));
    await res2.body?.cancel();
    assert.match(res2.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    await h.close();
  }
});

Deno.test("prefixaware sends a request sharing a prefix to the worker that served it, with reason longest-prefix", async () => {
  const workers = await Promise.all(["a", "b", "c", "d"].map((n) => jsonWorker(n)));
  const h = await harness(workers, { router: { strategy: "prefixaware" } });
  try {
    const first = await post(h, chatBody("question one"));
    await first.body?.cancel();
    const owner = first.headers.get("x-router-backend");
    assert.match(first.headers.get("x-router-reason") ?? "", /^fallback-least-loaded$/);
    for (let i = 0; i < 5; i++) {
      const res = await post(h, chatBody(`question ${i + 2}`));
      await res.body?.cancel();
      assert.equal(res.headers.get("x-router-backend"), owner);
      assert.equal(res.headers.get("x-router-reason"), "longest-prefix");
    }
  } finally {
    await h.close();
  }
});

Deno.test("SSE passes through unbuffered: the first event reaches the client while the worker still holds the rest", async () => {
  const gate = Promise.withResolvers<void>();
  const upstream = await startServer(async (req) => {
    await req.arrayBuffer();
    const stream = new ReadableStream<Uint8Array>({
      async start(c) {
        // Headers go out first; the body waits, then streams.
        await new Promise((r) => setTimeout(r, 30));
        c.enqueue(bytes(sseChunk("Hel")));
        await gate.promise; // held until the client has seen the first event
        c.enqueue(bytes(sseChunk("lo")));
        c.enqueue(bytes(sseUsage(120, 96, 2)));
        c.enqueue(bytes("data: [DONE]\n\n"));
        c.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  const h = await harness([upstream]);
  try {
    const res = await post(h, chatBody("stream please", { stream: true }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = "";
    while (!seen.includes('"Hel"')) {
      const { value, done } = await reader.read();
      assert.ok(!done, "stream ended before the first event");
      seen += decoder.decode(value, { stream: true });
    }
    // The worker has not sent more yet: the router forwarded the first event on its own.
    assert.ok(!seen.includes('"lo"'));
    gate.resolve();
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
    }
    assert.ok(seen.includes('"lo"') && seen.includes("[DONE]"));
    assert.ok(await waitFor(() => h.router.router.inflight === 0));
    const metrics = await (await fetch(`${h.router.url}/metrics`)).text();
    assert.match(metrics, /router_upstream_prompt_tokens_total\{backend="w1"\} 120/);
    assert.match(metrics, /router_upstream_cached_tokens_total\{backend="w1"\} 96/);
    assert.ok(await waitFor(() => h.logs.some((l) => l.msg === "request")));
    const line = h.logs.find((l) => l.msg === "request")!;
    assert.equal(line.backend, "w1");
    assert.equal(line.status, 200);
    assert.equal(line.cached_tokens, 96);
    assert.equal(typeof line.ttft_ms, "number");
    for (
      const key of [
        "request_id",
        "strategy",
        "reason",
        "match_chunks",
        "total_ms",
        "bytes",
        "error",
      ]
    ) {
      assert.ok(key in line, `access log lacks ${key}`);
    }
  } finally {
    gate.resolve();
    await h.close();
  }
});

Deno.test("a client that aborts mid-stream cancels the upstream request and in-flight returns to 0", async () => {
  const upstreamCancelled = Promise.withResolvers<void>();
  const upstream = await startServer(async (req) => {
    await req.arrayBuffer();
    let timer: ReturnType<typeof setInterval> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes(sseChunk("tok")));
        timer = setInterval(() => c.enqueue(bytes(sseChunk("tok"))), 10);
      },
      cancel() {
        clearInterval(timer);
        upstreamCancelled.resolve();
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });
  const h = await harness([upstream]);
  try {
    const ctl = new AbortController();
    const res = await post(h, chatBody("long answer", { stream: true }), { signal: ctl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    assert.equal(h.router.router.inflight, 1);
    ctl.abort();
    await reader.closed.catch(() => {});
    await upstreamCancelled.promise;
    assert.ok(await waitFor(() => h.router.router.inflight === 0), "in-flight count leaked");
    assert.equal(h.router.router.backends[0].breaker.state, "closed");
  } finally {
    await h.close();
  }
});

Deno.test("a worker that refuses connections is retried on another worker before any byte is sent", async () => {
  const good = await jsonWorker("good");
  const h = await harness([refusedUrl(), good], { router: { strategy: "roundrobin" } });
  try {
    const res = await post(h, chatBody("hello"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-router-backend"), "w2");
    assert.equal(res.headers.get("x-router-reason"), "retry-after-round-robin");
    assert.equal((await res.json()).choices[0].message.content, "good");
    assert.equal(h.router.router.backends[0].breaker.consecutiveFailures, 1);
    assert.equal(h.router.router.inflight, 0);
    const metrics = await (await fetch(`${h.router.url}/metrics`)).text();
    assert.match(metrics, /router_retries_total\{backend="w1",reason="connect-error"\} 1/);
  } finally {
    await h.close();
  }
});

Deno.test("a 5xx before the first byte is retried; the last attempt's 5xx passes through", async () => {
  const failing = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json({ error: { message: "boom" } }, { status: 503 });
  });
  const good = await jsonWorker("good");
  const h = await harness([failing, good], { router: { strategy: "roundrobin" } });
  try {
    const res = await post(h, chatBody("x"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-router-backend"), "w2");
    await res.body?.cancel();
  } finally {
    await h.close();
  }
  const only = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json({ error: { message: "boom" } }, { status: 503 });
  });
  const h2 = await harness([only]);
  try {
    const res = await post(h2, chatBody("x"));
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.message, "boom");
  } finally {
    await h2.close();
  }
});

Deno.test("all workers down answers 502 in OpenAI's error shape", async () => {
  const h = await harness([refusedUrl(), refusedUrl()]);
  try {
    const res = await post(h, chatBody("x"));
    assert.equal(res.status, 502);
    const body = await res.json();
    assert.equal(typeof body.error.message, "string");
    assert.equal(body.error.type, "upstream_error");
    assert.ok("param" in body.error && "code" in body.error);
    assert.equal(h.router.router.inflight, 0);
  } finally {
    await h.close();
  }
});

Deno.test("bad requests get OpenAI errors: 404, 405 with Allow, 400 bad JSON, 400 bad field, 413", async () => {
  const h = await harness([await jsonWorker("a")], { server: { maxBodyBytes: 4096 } });
  try {
    const r404 = await fetch(`${h.router.url}/v2/nothing`);
    assert.equal(r404.status, 404);
    assert.equal((await r404.json()).error.type, "invalid_request_error");

    const r405 = await fetch(`${h.router.url}/v1/chat/completions`);
    assert.equal(r405.status, 405);
    assert.equal(r405.headers.get("allow"), "POST");
    await r405.body?.cancel();

    const bad = await post(h, "{not json");
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /not valid JSON/);

    const wrong = await post(h, JSON.stringify({ model: "m", messages: "hi" }));
    assert.equal(wrong.status, 400);
    const wrongBody = await wrong.json();
    assert.match(wrongBody.error.message, /messages/);

    const big = await post(h, chatBody("x".repeat(8192)));
    assert.equal(big.status, 413);
    await big.body?.cancel();

    const invalidUtf8 = await post(h, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
    assert.equal(invalidUtf8.status, 400);
    await invalidUtf8.body?.cancel();

    // The router keeps serving after all of the above.
    const ok = await post(h, chatBody("still here"));
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await h.close();
  }
});

Deno.test("max_inflight is enforced: a worker at its cap is not admitted, even when it holds the prefix", async () => {
  const stalling = await heldWorker("slow");
  const other = await jsonWorker("other");
  const h = await harness([{ url: stalling.url, maxInflight: 1 }, other], {
    router: { strategy: "prefixaware", saturationInflight: 0 },
  });
  try {
    // w1 is believed to hold the shared prefix, so prefixaware prefers it.
    h.router.router.backends[0].prefix.insert(routingHashes(chatBody("zero")));
    const held = post(h, chatBody("one"));
    assert.ok(await waitFor(() => h.router.router.backends[0].inflight === 1));
    const res = await post(h, chatBody("two"));
    assert.equal(res.headers.get("x-router-backend"), "w2");
    await res.body?.cancel();
    stalling.release();
    const first = await held;
    assert.equal(first.headers.get("x-router-backend"), "w1");
    assert.equal(first.headers.get("x-router-reason"), "longest-prefix");
    await first.body?.cancel();
  } finally {
    stalling.release();
    await stalling.close();
    await h.close();
  }
});

Deno.test("readyz is 503 while no worker is admitted and 200 when one is", async () => {
  const clock = new ManualClock(0);
  const h = await harness([refusedUrl()], {
    worker: { breakerThreshold: 1, breakerCooldownMs: 1000 },
  }, clock);
  try {
    const before = await fetch(`${h.router.url}/readyz`);
    assert.equal(before.status, 200);
    await before.body?.cancel();
    const res = await post(h, chatBody("x"));
    await res.body?.cancel();
    assert.equal(h.router.router.backends[0].breaker.state, "open");
    const after = await fetch(`${h.router.url}/readyz`);
    assert.equal(after.status, 503);
    assert.equal((await after.json()).error.type, "service_unavailable_error");
    const none = await post(h, chatBody("x"));
    assert.equal(none.status, 503);
    await none.body?.cancel();
  } finally {
    await h.close();
  }
});

/**
 * A worker that answers 500 while `failing`, then holds each answer until `gate` opens; `hits`
 * counts the requests that reached it.
 */
async function gatedFlakyWorker() {
  const w = {
    failing: true,
    hits: 0,
    gate: Promise.withResolvers<void>(),
    server: null as unknown as Awaited<ReturnType<typeof startServer>>,
  };
  w.server = await startServer(async (req) => {
    w.hits++;
    await req.arrayBuffer();
    if (w.failing) return new Response("down", { status: 500 });
    await w.gate.promise;
    return Response.json(chatCompletion("ok"));
  });
  return w;
}

Deno.test("half-open breaker lets exactly one probe through after the cooldown and closes on its success", async () => {
  const clock = new ManualClock(0);
  const w = await gatedFlakyWorker();
  const h = await harness([w.server], {
    router: { maxRetries: 0 },
    worker: { breakerThreshold: 2, breakerCooldownMs: 1000 },
  }, clock);
  try {
    for (let i = 0; i < 2; i++) await (await post(h, chatBody("x"))).body?.cancel();
    const b = h.router.router.backends[0];
    assert.equal(b.breaker.state, "open");
    const refused = await post(h, chatBody("x"));
    assert.equal(refused.status, 503);
    await refused.body?.cancel();
    assert.equal(w.hits, 2);

    clock.advance(1000);
    w.failing = false;
    const probe = post(h, chatBody("probe")); // held open by the gate
    assert.ok(await waitFor(() => w.hits === 3));
    const second = await post(h, chatBody("second"));
    assert.equal(second.status, 503, "a second request must not pass while the probe is out");
    await second.body?.cancel();
    w.gate.resolve();
    const probeRes = await probe;
    assert.equal(probeRes.status, 200);
    await probeRes.body?.cancel();
    assert.equal(b.breaker.state, "closed");
  } finally {
    w.gate.resolve();
    await h.close();
  }
});

Deno.test("half-open breaker: of requests arriving together after the cooldown, exactly one probes", async () => {
  const clock = new ManualClock(0);
  const w = await gatedFlakyWorker();
  const h = await harness([w.server], {
    router: { maxRetries: 0 },
    worker: { breakerThreshold: 1, breakerCooldownMs: 1000 },
  }, clock);
  try {
    await (await post(h, chatBody("x"))).body?.cancel();
    const b = h.router.router.backends[0];
    assert.equal(b.breaker.state, "open");
    clock.advance(1000);
    w.failing = false;
    // Nine requests at once: all are decided before the first reaches the worker.
    const early: number[] = [];
    const burst = Array.from(
      { length: 9 },
      (_, i) =>
        post(h, chatBody(`burst ${i}`)).then((res) => {
          early.push(res.status);
          return res;
        }),
    );
    // While the probe is held at the worker, the other eight are already answered.
    assert.ok(await waitFor(() => w.hits === 2 && early.length === 8));
    assert.deepEqual(early, Array(8).fill(503));
    assert.equal(b.breaker.state, "half-open");
    w.gate.resolve();
    const all = await Promise.all(burst);
    await Promise.all(all.map((r) => r.body?.cancel()));
    assert.deepEqual(all.map((r) => r.status).sort(), [
      200,
      503,
      503,
      503,
      503,
      503,
      503,
      503,
      503,
    ]);
    assert.equal(w.hits, 2, "only the probe reached the worker");
    assert.equal(b.breaker.state, "closed");
    assert.ok(await waitFor(() => b.inflight === 0));
  } finally {
    w.gate.resolve();
    await h.close();
  }
});

Deno.test("half-open breaker: a straggler's client leaving keeps the probe slot taken; the probe's own client leaving frees it", async () => {
  const clock = new ManualClock(0);
  const gate = Promise.withResolvers<void>();
  let probes = 0;
  const worker = await startServer(async (req) => {
    const text = await req.text();
    if (text.includes("straggler")) {
      // A stream that runs until its client goes away.
      let timer: ReturnType<typeof setTimeout> | undefined;
      return new Response(
        new ReadableStream({
          start(c) {
            const step = () => {
              try {
                c.enqueue(bytes(sseChunk("x")));
                timer = setTimeout(step, 10);
              } catch { /* the server dropped the stream: stop */ }
            };
            step();
          },
          cancel: () => clearTimeout(timer),
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    if (text.includes("fail")) return new Response("down", { status: 500 });
    probes++;
    await gate.promise;
    return Response.json(chatCompletion("ok"));
  });
  const h = await harness([worker], {
    router: { maxRetries: 0 },
    worker: { breakerThreshold: 1, breakerCooldownMs: 1000 },
  }, clock);
  const b = h.router.router.backends[0];
  try {
    const straggler = await post(h, chatBody("straggler", { stream: true }));
    const reader = straggler.body!.getReader();
    await reader.read(); // admitted while the breaker was closed, and still streaming
    await (await post(h, chatBody("fail"))).body?.cancel();
    assert.equal(b.breaker.state, "open");

    clock.advance(1000);
    const leaving = new AbortController();
    const probe = post(h, chatBody("probe"), { signal: leaving.signal });
    assert.ok(await waitFor(() => probes === 1 && b.breaker.state === "half-open"));
    await reader.cancel(); // the straggler ends with no verdict
    assert.ok(await waitFor(() => b.inflight === 1));
    assert.equal(b.breaker.state, "half-open", "the straggler does not free the probe slot");
    const refused = await post(h, chatBody("second"));
    assert.equal(refused.status, 503, "no second probe while the first is out");
    await refused.body?.cancel();

    leaving.abort(); // the probe's own client goes away before the worker answers
    await probe.catch(() => {});
    assert.ok(await waitFor(() => b.inflight === 0));
    assert.equal(b.breaker.state, "open");
    assert.equal(b.breaker.canAdmit(), true, "the next request may probe at once");
    gate.resolve();
    const next = await post(h, chatBody("next probe"));
    assert.equal(next.status, 200);
    await next.body?.cancel();
    assert.equal(b.breaker.state, "closed");
    assert.equal(probes, 2);
  } finally {
    gate.resolve();
    await h.close();
  }
});

Deno.test("a port in use is a ListenError naming the address and the key; nothing is left listening", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  try {
    const quiet = { logger: new Logger("error", "json", () => {}) };
    const main = configFromWorkers([refusedUrl()], {
      server: { addr: `127.0.0.1:${port}` },
      health: { intervalMs: 0 },
    });
    await assert.rejects(
      startRouter(main, quiet),
      (err: unknown) =>
        err instanceof ListenError &&
        err.message.startsWith(`cannot listen on 127.0.0.1:${port} (server.addr): `) &&
        /in use/i.test(err.message),
    );
    // The metrics listener fails after the main one is up: the main one is closed again (the
    // test's resource sanitizer would report it otherwise).
    const admin = configFromWorkers([refusedUrl()], {
      server: { addr: "127.0.0.1:0" },
      metrics: { addr: `127.0.0.1:${port}` },
      health: { intervalMs: 0 },
    });
    await assert.rejects(startRouter(admin, quiet), /\(metrics\.addr\): .*in use/i);
  } finally {
    busy.close();
  }
});

Deno.test("/v1/models and /v1/models/{id} answer from the router's view of the workers' models, with aliases; /healthz answers", async () => {
  let asked = 0;
  const counting = await startServer((req) => {
    if (new URL(req.url).pathname === "/v1/models") asked++;
    return Response.json({
      object: "list",
      data: [{ id: "org/base", object: "model" }, {
        id: "lora-x",
        object: "model",
        parent: "org/base",
      }],
    });
  });
  const h = await harness([await jsonWorker("a"), counting, refusedUrl()], {
    health: { intervalMs: 60_000 },
    router: { modelAliases: { "gpt-4o": "model-a", ghost: "nobody-serves-this" } },
  });
  try {
    await h.router.router.refreshModels();
    const before = asked;
    const models = await (await fetch(`${h.router.url}/v1/models`)).json();
    assert.equal(models.object, "list");
    assert.deepEqual(
      models.data.map((m: { id: string }) => m.id).sort(),
      ["gpt-4o", "lora-x", "model-a", "org/base"],
      "served models, adapters and aliases of served models",
    );
    assert.equal(models.data.find((m: { id: string }) => m.id === "lora-x").parent, "org/base");
    assert.equal(models.data.find((m: { id: string }) => m.id === "gpt-4o").root, "model-a");
    const one = await fetch(`${h.router.url}/v1/models/${encodeURIComponent("org/base")}`);
    assert.equal(one.status, 200);
    assert.equal((await one.json()).id, "org/base");
    const raw = await fetch(`${h.router.url}/v1/models/org/base`);
    assert.equal((await raw.json()).id, "org/base", "an unencoded slash works too");
    const missing = await fetch(`${h.router.url}/v1/models/nope`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, "model_not_found");
    assert.equal(asked, before, "answered from the view: no fan-out per request");
    const health = await fetch(`${h.router.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await h.close();
  }
});

Deno.test("hop-by-hop and Connection-listed headers are stripped and X-Forwarded-For is replaced", async () => {
  const seen: Headers[] = [];
  const h = await harness([await jsonWorker("a", seen)]);
  try {
    const res = await post(h, chatBody("x"), {
      headers: {
        connection: "x-secret",
        "x-secret": "1",
        "x-forwarded-for": "6.6.6.6",
        "x-custom": "kept",
      },
    });
    await res.body?.cancel();
    const headers = seen.at(-1)!;
    assert.equal(headers.get("x-secret"), null);
    assert.equal(headers.get("x-custom"), "kept");
    assert.equal(headers.get("x-forwarded-for"), "127.0.0.1");
  } finally {
    await h.close();
  }
});

Deno.test("/v1/completions routes on the prompt and /metrics exposes the router's metric names", async () => {
  const h = await harness([await jsonWorker("a")]);
  try {
    const res = await post(
      h,
      JSON.stringify({ model: "m", prompt: "Once upon a time ".repeat(10) }),
      {},
      "/v1/completions",
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await waitFor(() => h.router.router.inflight === 0);
    const text = await (await fetch(`${h.router.url}/metrics`)).text();
    for (
      const name of [
        "router_requests_total",
        "router_request_duration_seconds",
        "router_time_to_first_byte_seconds",
        "router_prefix_match_chunks",
        "router_cache_hit_requests_total",
        "router_prefix_tree_chunks",
        "router_prefix_tree_terminals",
        "router_prefix_tree_max_chunks",
        "router_prefix_tree_inserts_total",
        "router_response_bytes_total",
        "router_inflight",
        "router_backend_up",
        "router_breaker_state",
      ]
    ) assert.ok(text.includes(name), `missing ${name}`);
    assert.match(
      text,
      /router_requests_total\{strategy="costaware",backend="w1",reason="[a-z-]+",status="200",cause="proxied",endpoint="\/v1\/completions",model="other"\} 1/,
    );
  } finally {
    await h.close();
  }
});
