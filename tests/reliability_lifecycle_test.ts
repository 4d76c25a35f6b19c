/**
 * The router's lifecycle as an operator drives it: SIGTERM drains in-flight streams and exits 0
 * (cutting streams that outlast `server.shutdown_timeout` with an error event), SIGHUP reloads the
 * config file (a good one applies, a bad one is refused and logged), all against a real
 * `cmd/router.ts` process; and `Router.reload` in-process, for what it keeps and what it resets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configFromWorkers, type ConfigOverrides, type WorkerInput } from "../src/config/mod.ts";
import {
  chatBody,
  chatCompletion,
  heldWorker,
  jsonLines,
  readAll,
  routerHarness,
  sample,
  spawnRouter,
  sseData,
  sseWorker,
  startServer,
  type TestServer,
  waitFor,
} from "./_support.ts";

/** A JSON worker that answers with its name and counts its requests. */
async function namedWorker(name: string): Promise<TestServer & { hits: () => number }> {
  let hits = 0;
  const s = await startServer(async (req) => {
    hits++;
    await req.arrayBuffer();
    return Response.json(chatCompletion(name));
  });
  return { ...s, hits: () => hits };
}

function yamlConfig(
  workers: { id: string; url: string }[],
  extra = "",
  shutdown = "5s",
  drain = "0s",
): string {
  return [
    "server:",
    `  shutdown_timeout: ${shutdown}`,
    `  drain_delay: ${drain}`,
    "health:",
    "  interval: 0s",
    "logging:",
    "  level: info",
    "  format: json",
    extra,
    "workers:",
    ...workers.flatMap((w) => [`  - id: ${w.id}`, `    url: ${w.url}`]),
    "",
  ].join("\n");
}

Deno.test("SIGTERM: the router stops accepting, lets the stream in flight finish, and exits 0", async () => {
  const worker = await sseWorker({ events: 20, gapMs: 25 });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/router.yaml`;
  await Deno.writeTextFile(path, yamlConfig([{ id: "w1", url: worker.url }]));
  const proc = await spawnRouter(path);
  const fresh = Deno.createHttpClient({});
  try {
    const res = await fetch(`${proc.url}/v1/chat/completions`, {
      method: "POST",
      body: chatBody("stream", { stream: true }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    const t = performance.now();
    proc.child.kill("SIGTERM");
    await proc.stdout.next((l) => l.includes('"msg":"shutting down"'));
    const line = jsonLines(proc.stdout.lines).find((l) => l.msg === "shutting down")!;
    assert.equal(line.signal, "SIGTERM");
    assert.equal(line.inflight, 1);
    // New connections are refused while the stream goes on (the log line may beat the close).
    let refused = false;
    for (let i = 0; i < 50 && !refused; i++) {
      try {
        const res = await fetch(`${proc.url}/healthz`, { client: fresh });
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 10));
      } catch {
        refused = true;
      }
    }
    assert.ok(refused, "the listener still accepts connections after SIGTERM");
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const data = sseData(text);
    assert.equal(data.length, 22, "20 chunks, usage, [DONE]");
    assert.equal(data.at(-1), "[DONE]");
    const status = await proc.stop();
    assert.equal(status.code, 0);
    assert.ok(performance.now() - t < 4000);
    assert.ok(jsonLines(proc.stdout.lines).some((l) => l.msg === "stopped"));
  } finally {
    fresh.close();
    await proc.stop("SIGKILL");
    await worker.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM with a drain delay: /readyz says 503 at once while requests are still served, then the listener closes", async () => {
  const worker = await sseWorker({ events: 40, gapMs: 25 });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/router.yaml`;
  await Deno.writeTextFile(path, yamlConfig([{ id: "w1", url: worker.url }], "", "5s", "700ms"));
  const proc = await spawnRouter(path);
  try {
    const ready = await fetch(`${proc.url}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    const res = await fetch(`${proc.url}/v1/chat/completions`, {
      method: "POST",
      body: chatBody("stream", { stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    const t = performance.now();
    proc.child.kill("SIGTERM");
    await proc.stdout.next((l) => l.includes('"msg":"draining"'));
    const draining = await fetch(`${proc.url}/readyz`);
    assert.equal(draining.status, 503, "out of rotation at once");
    assert.equal((await draining.json()).error.code, "draining");
    assert.ok(performance.now() - t < 600, "checked within the drain delay");
    const served = await fetch(`${proc.url}/v1/chat/completions`, {
      method: "POST",
      body: chatBody("during the drain"),
    });
    assert.equal(served.status, 200, "still served while draining");
    assert.equal(served.headers.get("connection"), "close", "clients are told to reconnect");
    await served.body?.cancel();
    // After the drain delay the listener closes; the stream in flight still finishes.
    let refused = false;
    for (let i = 0; i < 200 && !refused; i++) {
      try {
        const c = await Deno.connect({
          hostname: "127.0.0.1",
          port: Number(new URL(proc.url).port),
        });
        c.close();
        await new Promise((r) => setTimeout(r, 10));
      } catch {
        refused = true;
      }
    }
    assert.ok(refused, "the listener closes after the drain delay");
    assert.ok(performance.now() - t >= 650, "not before the drain delay");
    while (!(await reader.read()).done) { /* the stream finishes */ }
    assert.equal((await proc.stop()).code, 0);
  } finally {
    await proc.stop("SIGKILL");
    await worker.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM: a stream outlasting shutdown_timeout ends with a shutting_down event, exit 0", async () => {
  const worker = await sseWorker({ events: 10_000, gapMs: 10 });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/router.yaml`;
  await Deno.writeTextFile(path, yamlConfig([{ id: "w1", url: worker.url }], "", "300ms"));
  const proc = await spawnRouter(path);
  try {
    const res = await fetch(`${proc.url}/v1/chat/completions`, {
      method: "POST",
      body: chatBody("stream", { stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    const t = performance.now();
    proc.child.kill("SIGTERM");
    const decoder = new TextDecoder();
    let text = "";
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const took = performance.now() - t;
    const last = JSON.parse(sseData(text).at(-1)!);
    assert.equal(last.error.code, "shutting_down");
    assert.equal(last.error.type, "service_unavailable_error");
    assert.ok(took >= 250 && took < 3000, `stream ended ${took} ms after SIGTERM`);
    const status = await proc.stop();
    assert.equal(status.code, 0);
    assert.ok(
      jsonLines(proc.stdout.lines).some((l) =>
        l.msg === "shutdown timeout reached; closing in-flight requests"
      ),
    );
  } finally {
    await proc.stop("SIGKILL");
    await worker.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGHUP: a valid file adds and removes workers and switches strategy, keeping kept workers' prefix trees; an invalid one is refused and logged", async () => {
  const a = await namedWorker("a");
  const b = await namedWorker("b");
  const dir = await Deno.makeTempDir();
  const path = `${dir}/router.yaml`;
  // prefixaware, whose first request falls back to least-loaded, then a switch to roundrobin.
  await Deno.writeTextFile(
    path,
    yamlConfig([{ id: "w1", url: a.url }], "router:\n  strategy: prefixaware"),
  );
  const proc = await spawnRouter(path);
  const ask = async () => {
    const res = await fetch(`${proc.url}/v1/chat/completions`, {
      method: "POST",
      body: chatBody("hello"),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    return [res.headers.get("x-router-backend"), res.headers.get("x-router-reason")];
  };
  const metric = async (name: string, backend: string) =>
    sample(await (await fetch(`${proc.url}/metrics`)).text(), name, { backend });
  const hup = async (msg: string) => {
    const from = proc.stdout.lines.length;
    proc.child.kill("SIGHUP");
    const line = await proc.stdout.next((l) => l.includes(`"msg":"${msg}`), 10_000, from);
    return JSON.parse(line);
  };
  try {
    assert.deepEqual(await ask(), ["w1", "fallback-least-loaded"]);
    const chunks = await metric("router_prefix_tree_chunks", "w1");
    assert.ok(chunks > 0);

    await Deno.writeTextFile(
      path,
      yamlConfig(
        [{ id: "w1", url: a.url }, { id: "w2", url: b.url }],
        "router:\n  strategy: roundrobin",
      ),
    );
    const reloaded = await hup("config reloaded");
    assert.deepEqual(reloaded.added, ["w2"]);
    assert.deepEqual(reloaded.kept, ["w1"]);
    assert.deepEqual(reloaded.removed, []);
    assert.equal(reloaded.strategy, "roundrobin");
    assert.equal(await metric("router_prefix_tree_chunks", "w1"), chunks, "w1's tree was kept");
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const [backend, reason] = await ask();
      assert.equal(reason, "round-robin");
      seen.add(backend!);
    }
    assert.deepEqual([...seen].sort(), ["w1", "w2"]);

    // Invalid: refused with every error logged; the config in force stays.
    await Deno.writeTextFile(
      path,
      "router:\n  chunk_size: 0\n  strategy: nope\nworkers:\n  - id: w9\n    url: ftp://x\n",
    );
    const refused = await hup("config reload refused");
    assert.equal(refused.level, "error");
    assert.equal(refused.errors.length, 3);
    assert.match(refused.errors[0], /^router\.strategy must be one of .*roundrobin.*, got "nope"$/);
    assert.deepEqual(refused.errors.slice(1), [
      "router.chunk_size must be an integer >= 1, got 0",
      `workers[0].url must be an http(s) URL, got "ftp://x"`,
    ]);
    const after = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const [backend, reason] = await ask();
      assert.equal(reason, "round-robin");
      after.add(backend!);
    }
    assert.deepEqual([...after].sort(), ["w1", "w2"]);

    // Removing w1: everything goes to w2.
    await Deno.writeTextFile(
      path,
      yamlConfig([{ id: "w2", url: b.url }], "router:\n  strategy: roundrobin"),
    );
    const removed = await hup("config reloaded");
    assert.deepEqual(removed.removed, ["w1"]);
    const hitsA = a.hits();
    for (let i = 0; i < 3; i++) assert.deepEqual(await ask(), ["w2", "round-robin"]);
    assert.equal(a.hits(), hitsA);

    const status = await proc.stop();
    assert.equal(status.code, 0);
  } finally {
    await proc.stop("SIGKILL");
    await a.close();
    await b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

function config(workers: WorkerInput[], overrides: ConfigOverrides = {}) {
  return configFromWorkers(workers, {
    ...overrides,
    server: { addr: "127.0.0.1:0", ...overrides.server },
    health: { intervalMs: 0, ...overrides.health },
    router: { seed: 7, ...overrides.router },
  });
}

Deno.test("Router.reload keeps a kept worker's prefix index, breaker and in-flight count, and applies the rest", async () => {
  const held = await heldWorker("held");
  const other = await heldWorker("other");
  const third = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("third"));
  });
  const h = await routerHarness([held.url, other.url], { router: { strategy: "prefixaware" } }, {
    closeAlso: [held, other, third],
  });
  try {
    const r = h.router;
    const w1 = r.backends[0];
    const w2 = r.backends[1];
    const pending = h.post(chatBody("held request"));
    assert.ok(await waitFor(() => w1.inflight + w2.inflight === 1));
    const busy = w1.inflight === 1 ? w1 : w2;
    const idle = busy === w1 ? w2 : w1;
    const treeBefore = busy.prefix.stats().chunks;
    assert.ok(treeBefore > 0);
    busy.breaker.failure();
    const breaker = busy.breaker;

    // Keep the busy worker, drop the idle one, add a third; switch strategy.
    const s = await r.reload(config([
      { id: busy.id, url: busy.url },
      { id: "w3", url: third.url },
    ], { router: { strategy: "roundrobin" } }));
    assert.deepEqual(s.kept, [busy.id]);
    assert.deepEqual(s.removed, [idle.id]);
    assert.deepEqual(s.added, ["w3"]);
    assert.deepEqual(s.reset, []);
    assert.equal(r.strategy.name, "roundrobin");
    assert.equal(r.backends[0], busy, "the kept worker is the same object");
    assert.equal(r.backends[0].index, 0);
    assert.equal(busy.prefix.stats().chunks, treeBefore);
    assert.equal(busy.breaker, breaker);
    assert.equal(breaker.consecutiveFailures, 1);
    assert.equal(busy.inflight, 1);
    assert.equal(r.inflight, 1);

    held.release();
    other.release();
    const res = await pending;
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.ok(await waitFor(() => r.inflight === 0), "the held request counted itself out");
    assert.equal(busy.inflight, 0);

    // The new worker list routes: both kept and added workers answer, the removed one never.
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const x = await h.post(chatBody(`q${i}`));
      seen.add(x.headers.get("x-router-backend")!);
      await x.body?.cancel();
    }
    assert.deepEqual([...seen].sort(), [busy.id, "w3"].sort());
  } finally {
    held.release();
    other.release();
    await h.close();
  }
});

Deno.test("Router.reload removing a busy worker: let go when its request ends, its gauges leave /metrics", async () => {
  const held = await heldWorker();
  const other = await namedWorker("other");
  const h = await routerHarness([held.url], {}, { closeAlso: [held, other] });
  try {
    const r = h.router;
    const pending = h.post(chatBody("held request"));
    assert.ok(await waitFor(() => r.backends[0].inflight === 1));
    assert.equal(sample(await h.metrics(), "router_inflight", { backend: "w1" }), 1);
    const s = await r.reload(config([{ id: "w2", url: other.url }]));
    assert.deepEqual(s.removed, ["w1"]);
    assert.equal(r.retiredWorkers, 1, "held while its request runs");

    held.release();
    await (await pending).body?.cancel();
    assert.ok(
      await waitFor(() => r.retiredWorkers === 0),
      "let go when the request ends, without anyone reading router.inflight",
    );
    const m = await h.metrics();
    for (const gauge of ["router_inflight", "router_backend_up", "router_breaker_state"]) {
      assert.doesNotMatch(m, new RegExp(`^${gauge}\\{backend="w1"\\}`, "m"), gauge);
    }
    assert.match(m, /^router_backend_up\{backend="w2"\} 1$/m);
    assert.ok(
      sample(m, "router_requests_total", { backend: "w1" }) >= 1,
      "counters of the removed worker stay",
    );
  } finally {
    held.release();
    await h.close();
  }
});

Deno.test("Router.reload keeps a kept worker's load for cost-model strategies under its new index", async () => {
  const held = await heldWorker();
  const other = await namedWorker("other");
  const h = await routerHarness([held.url], { router: { strategy: "costaware" } }, {
    closeAlso: [held, other],
  });
  try {
    const r = h.router;
    const busy = r.backends[0];
    const pending = h.post(chatBody("held request"));
    assert.ok(await waitFor(() => r.inflight === 1));
    const before = busy.load!;
    assert.equal(before.prefilling, 1);
    assert.ok(before.pendingPrefillTokens > 0);
    // Reload: a new worker comes first, so the busy one moves from index 0 to 1.
    await r.reload(config([{ id: "w0", url: other.url }, { id: busy.id, url: busy.url }], {
      router: { strategy: "costaware" },
    }));
    assert.equal(r.backends[1], busy);
    assert.equal(busy.index, 1);
    const after = busy.load!;
    assert.equal(after.prefilling, 1, "the request in flight still counts on its worker");
    assert.equal(after.pendingPrefillTokens, before.pendingPrefillTokens);
    assert.equal(r.backends[0].load?.prefilling, 0, "the new worker starts empty");
    held.release();
    await (await pending).body?.cancel();
    assert.ok(await waitFor(() => r.inflight === 0));
    const settled = busy.load;
    assert.equal(settled?.prefilling, 0, "it settles on its worker's new index");
    assert.equal(settled?.decoding, 0);
  } finally {
    held.release();
    await h.close();
  }
});

Deno.test("Router.reload: a changed url or kv_budget starts fresh, a bad strategy changes nothing, auth applies at once", async () => {
  const a = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("a"));
  });
  const b = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("b"));
  });
  const h = await routerHarness([a.url], {}, { closeAlso: [a, b] });
  try {
    const r = h.router;
    const res = await h.post(chatBody("warm the tree"));
    await res.body?.cancel();
    const w1 = r.backends[0];
    assert.ok(w1.prefix.stats().chunks > 0);

    const budget = await r.reload(config([{ id: "w1", url: a.url, kvBudget: 10_000 }]));
    assert.deepEqual(budget.reset, ["w1: prefix index (kv_budget changed)"]);
    assert.equal(r.backends[0], w1);
    assert.equal(w1.prefix.stats().chunks, 0);
    assert.equal(w1.prefix.stats().maxChunks, 10_000);

    const moved = await r.reload(config([{ id: "w1", url: b.url }]));
    assert.deepEqual(moved.added, ["w1"]);
    assert.deepEqual(moved.removed, ["w1"]);
    assert.notEqual(r.backends[0], w1, "same id at another url is another worker");

    const before = { config: r.config, backends: r.backends, strategy: r.strategy };
    await assert.rejects(
      r.reload(config([a.url], { router: { strategy: "no-such-strategy" } })),
      /unknown strategy "no-such-strategy"/,
    );
    assert.equal(r.config, before.config);
    assert.equal(r.backends, before.backends);
    assert.equal(r.strategy, before.strategy);

    await r.reload(config([{ id: "w1", url: b.url }], { auth: { apiKeys: ["sekret-1"] } }));
    const denied = await h.post(chatBody("x"));
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const allowed = await h.post(chatBody("x"), { headers: { authorization: "Bearer sekret-1" } });
    assert.equal(allowed.status, 200);
    assert.equal((await allowed.json()).choices[0].message.content, "b");
  } finally {
    await h.close();
  }
});

Deno.test("Router.reload restarts health checks on the new workers", async () => {
  let probesA = 0;
  let probesB = 0;
  const a = await startServer((req) => {
    if (new URL(req.url).pathname === "/health") probesA++;
    return new Response("ok");
  });
  const b = await startServer((req) => {
    if (new URL(req.url).pathname === "/health") probesB++;
    return new Response("ok");
  });
  const h = await routerHarness([a.url], { health: { intervalMs: 20 } }, { closeAlso: [a, b] });
  try {
    assert.ok(await waitFor(() => probesA > 0));
    await h.router.reload(config([b.url], { health: { intervalMs: 20 } }));
    const afterA = probesA;
    assert.ok(await waitFor(() => probesB >= 2));
    await new Promise((r) => setTimeout(r, 60));
    assert.ok(probesA <= afterA + 1, "the removed worker is no longer probed");
  } finally {
    await h.close();
  }
});

Deno.test("a stream cut by the shutdown timeout in-process: error event, in-flight 0, no breaker verdict", async () => {
  const worker = await sseWorker({ events: 10_000, gapMs: 10 });
  const h = await routerHarness([worker.url], { server: { shutdownTimeoutMs: 100 } }, {
    closeAlso: [worker],
  });
  const res = await h.post(chatBody("long", { stream: true }));
  const reading = readAll(res);
  await new Promise((r) => setTimeout(r, 30));
  await h.close();
  const { text } = await reading;
  assert.equal(JSON.parse(sseData(text).at(-1)!).error.code, "shutting_down");
  assert.equal(h.router.inflight, 0);
  assert.equal(h.router.backends[0].breaker.consecutiveFailures, 0);
});

Deno.test("Router.reload racing stop and start: no loop runs after the last stop, none runs twice", async () => {
  let probes = 0;
  let scrapes = 0;
  const handler = (req: Request) => {
    const path = new URL(req.url).pathname;
    if (path === "/health") probes++;
    if (path === "/metrics") {
      scrapes++;
      return new Response('vllm:num_requests_waiting{model_name="m"} 0\n');
    }
    if (path === "/v1/models") return Response.json({ data: [{ id: "m" }] });
    return new Response("ok");
  };
  const a = await startServer(handler);
  const b = await startServer(handler);
  const watched = { health: { intervalMs: 20, scrapeMetrics: true, scrapeIntervalMs: 20 } };
  const h = await routerHarness([a.url], watched, { closeAlso: [a, b] });
  try {
    assert.ok(await waitFor(() => probes > 0 && scrapes > 0));
    // A reload whose restart is pending while the router stops: nothing restarts.
    const r1 = h.router.reload(config([b.url], watched));
    const stopped = h.router.stop();
    await Promise.all([r1, stopped]);
    await new Promise((r) => setTimeout(r, 80));
    const [p1, s1] = [probes, scrapes];
    await new Promise((r) => setTimeout(r, 120));
    assert.ok(
      probes <= p1 + 1 && scrapes <= s1 + 1,
      `stopped: ${probes - p1} probes, ${scrapes - s1} scrapes`,
    );
    // Stop and start again while a reload waits on the loops' stop: one set of loops runs.
    h.router.start();
    const r2 = h.router.reload(config([a.url, b.url], watched));
    const s2 = h.router.stop();
    h.router.start();
    await Promise.all([r2, s2]);
    assert.ok(await waitFor(() => probes > p1 + 4));
    await h.router.stop();
    await new Promise((r) => setTimeout(r, 80));
    const [p3, s3] = [probes, scrapes];
    await new Promise((r) => setTimeout(r, 120));
    assert.ok(probes <= p3 + 2 && scrapes <= s3 + 2, `stopped again: ${probes - p3} probes`);
  } finally {
    await h.close();
  }
});
