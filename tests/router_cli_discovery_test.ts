/**
 * `cmd/router.ts` with `discovery.mode: kubernetes` against a fake API server (in-process HTTP of
 * the real API's shape, reached through `$KUBECONFIG`): the ready pods become the workers, a watch
 * event adds one through the reload path, and SIGHUP keeps the discovered workers (the file has
 * none) while applying the new `discovery.worker` settings.
 */

import assert from "node:assert/strict";
import { chatCompletion, jsonLines, LineReader, sample, startServer } from "./_support.ts";
import { chunkHashes, RadixTree } from "../src/prefix/mod.ts";
import { startRedisServer } from "../src/sync/redis_server.ts";
import { PrefixSync } from "../src/sync/redis_sync.ts";
import { redisSkipReason, until } from "../src/sync/testing.ts";

function pod(name: string, ip: string) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "llm", labels: { app: "vllm" }, resourceVersion: "7" },
    status: { phase: "Running", podIP: ip, conditions: [{ type: "Ready", status: "True" }] },
  };
}

/**
 * A Kubernetes API server with pod `vllm-0` at 127.0.0.1 (lists answered after `listDelayMs`;
 * watches stay open for events through `watch.feed`), and a kubeconfig for it in `dir`.
 */
async function fakeKubernetes(dir: string, listDelayMs = 0) {
  const watch: { feed: ReadableStreamDefaultController<Uint8Array> | null } = { feed: null };
  const api = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname !== "/api/v1/namespaces/llm/pods") return new Response(null, { status: 404 });
    if (url.searchParams.get("watch") === "true") {
      const body = new ReadableStream<Uint8Array>({
        start: (c) => void (watch.feed = c),
        cancel: () => void (watch.feed = null),
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }
    await new Promise((r) => setTimeout(r, listDelayMs));
    return Response.json({
      apiVersion: "v1",
      kind: "PodList",
      metadata: { resourceVersion: "7" },
      items: [pod("vllm-0", "127.0.0.1")],
    });
  });
  await Deno.writeTextFile(
    `${dir}/kubeconfig`,
    [
      "apiVersion: v1",
      "kind: Config",
      `clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${api.addr.port}", insecure-skip-tls-verify: true}}]`,
      "users: [{name: r, user: {token: t}}]",
      "contexts: [{name: fake, context: {cluster: fake, user: r, namespace: llm}}]",
      "current-context: fake",
      "",
    ].join("\n"),
  );
  return {
    watch,
    async close() {
      watch.feed?.close();
      await api.shutdown();
    },
  };
}

/** `cmd/router.ts --config <dir>/router.yaml --port 0` with the fake cluster's kubeconfig. */
function spawnRouterIn(dir: string) {
  const root = new URL("..", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cmd/router.ts", "--config", `${dir}/router.yaml`, "--port", "0"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", KUBECONFIG: `${dir}/kubeconfig` },
  }).spawn();
  return { child, stdout: new LineReader(child.stdout), stderr: new LineReader(child.stderr) };
}

Deno.test("cmd/router.ts with kubernetes discovery: pods become workers; SIGHUP keeps them", async () => {
  const enc = new TextEncoder();
  const dir = await Deno.makeTempDir({ prefix: "router-cli-discovery-" });
  const cluster = await fakeKubernetes(dir);
  const watch = cluster.watch;
  const upstream = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok"));
  });
  const upstreamPort = Number(new URL(upstream.url).port);
  const config = (kvBudget: number) =>
    [
      "health: {interval: 0s}",
      "discovery:",
      "  mode: kubernetes",
      `  kubernetes: {namespace: llm, label_selector: app=vllm, port: ${upstreamPort}}`,
      `  worker: {kv_budget: ${kvBudget}}`,
      "",
    ].join("\n");
  await Deno.writeTextFile(`${dir}/router.yaml`, config(100));

  const { child, stdout, stderr } = spawnRouterIn(dir);
  try {
    const first = await stdout.next((l) => l.startsWith("listening on "), 20_000);
    const url = first.slice("listening on ".length);
    const applied = (worker: string) => (l: string) =>
      l.includes("discovered workers applied") && l.includes(worker);
    await stdout.next(applied("vllm-0"));
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    const post = () =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      });
    const res = await post();
    assert.equal(res.headers.get("x-router-backend"), "vllm-0");
    await res.body?.cancel();

    // A pod added by a watch event joins through the reload path; the first one is kept.
    const from = stdout.lines.length;
    for (let i = 0; watch.feed === null; i++) {
      assert.ok(i < 500, "the router never opened a watch");
      await new Promise((r) => setTimeout(r, 10));
    }
    watch.feed!.enqueue(
      enc.encode(JSON.stringify({ type: "ADDED", object: pod("vllm-1", "127.0.0.1") }) + "\n"),
    );
    const added = JSON.parse(await stdout.next(applied("vllm-1"), 10_000, from));
    assert.deepEqual(added.added, ["vllm-1"]);
    assert.deepEqual(added.kept, ["vllm-0"]);

    // SIGHUP: the file has no workers, the discovered ones stay, with the new template.
    await Deno.writeTextFile(`${dir}/router.yaml`, config(200));
    const before = stdout.lines.length;
    child.kill("SIGHUP");
    const reloaded = JSON.parse(
      await stdout.next((l) => l.includes('"config reloaded"'), 10_000, before),
    );
    assert.deepEqual(reloaded.removed, []);
    assert.deepEqual(reloaded.kept, ["vllm-0", "vllm-1"]);
    assert.ok(
      !jsonLines(stdout.lines.slice(before)).some((l) => l.msg === "config reload refused"),
    );

    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0, stderr.lines.join("\n"));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await Promise.all([child.status, stdout.done, stderr.done]);
    await cluster.close();
    await upstream.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "cmd/router.ts with kubernetes discovery and sync: catch_up warms a discovered worker even when the API is slower than Redis",
  ignore: redisSkipReason !== null,
  async fn() {
    const redis = await startRedisServer();
    const stream = "test:catch-up";
    // Another replica routed a long prompt to vllm-0 a moment ago.
    const otherTree = new RadixTree({ maxChunks: 0 });
    const other = PrefixSync.attach({ backends: [{ id: "vllm-0", prefix: otherTree }] }, {
      url: redis.url,
      replicaId: "other",
      stream,
      chunkSize: 32,
      blockMs: 100,
    });
    const dir = await Deno.makeTempDir({ prefix: "router-cli-catch-up-" });
    const cluster = await fakeKubernetes(dir, 300); // the first list takes longer than Redis
    let router: ReturnType<typeof spawnRouterIn> | null = null;
    try {
      other.start();
      await until("other connected", () => other.connected);
      otherTree.insert(chunkHashes("history ".repeat(100), 32)); // 25 chunks
      await until("published", () => other.stats().published === 1);
      await Deno.writeTextFile(
        `${dir}/router.yaml`,
        [
          "health: {interval: 0s}",
          "discovery:",
          "  mode: kubernetes",
          "  kubernetes: {namespace: llm, label_selector: app=vllm, port: 9}",
          "sync:",
          "  replica_id: starting",
          `  redis: {url: "${redis.url}", stream: "${stream}", catch_up: 5m}`,
          "",
        ].join("\n"),
      );
      router = spawnRouterIn(dir);
      const url = (await router.stdout.next((l) => l.startsWith("listening on "), 20_000))
        .slice("listening on ".length);
      await router.stdout.next((l) => l.includes("discovered workers applied"), 10_000);
      let chunks = 0;
      for (let i = 0; i < 100 && chunks !== 25; i++) {
        await new Promise((r) => setTimeout(r, 50));
        chunks = sample(await (await fetch(`${url}/metrics`)).text(), "router_prefix_tree_chunks", {
          backend: "vllm-0",
        });
      }
      assert.equal(chunks, 25, "the discovered worker's tree holds the caught-up prefix");
    } finally {
      if (router !== null) {
        router.child.kill("SIGTERM");
        await Promise.all([router.child.status, router.stdout.done, router.stderr.done]);
      }
      await other.stop();
      await cluster.close();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
