/**
 * docs/metrics.md lists every metric family the router's registry holds, with its type and labels,
 * and nothing else: read after a few requests of each kind through a real router.
 */

import assert from "node:assert/strict";
import { registerSyncMetrics } from "../src/sync/mod.ts";
import { documentedFamilies } from "./_metrics_doc.ts";
import {
  chatCompletion,
  refusedUrl,
  routerHarness,
  sseWorker,
  startServer,
  waitFor,
} from "./_support.ts";

Deno.test("docs/metrics.md lists exactly the registry's families, with their types and labels", async () => {
  const ok = await startServer(async (req) => {
    await req.arrayBuffer();
    return Response.json(chatCompletion("ok", 100, 32));
  });
  const sse = await sseWorker({ events: 2 });
  const h = await routerHarness(
    [{ url: ok.url, models: ["m"] }, { url: sse.url, models: ["s"] }, {
      url: refusedUrl(),
      models: ["m"],
    }],
    { auth: { apiKeys: ["k"] } },
    { closeAlso: [ok, sse] },
  );
  const key = { authorization: "Bearer k" };
  const chat = (model: string, stream = false) =>
    JSON.stringify({
      model,
      stream,
      stream_options: stream ? { include_usage: true } : undefined,
      messages: [{ role: "user", content: "Tell me about prefix caches. ".repeat(8) }],
    });
  try {
    // As cmd/router.ts does when sync is configured.
    registerSyncMetrics(h.router.metrics.registry, () => null);
    for (const body of [chat("m"), chat("m"), chat("s", true), "{bad", chat("nope")]) {
      const res = await h.post(body, { headers: key });
      await res.body?.cancel();
    }
    for (const [path, init] of [["/v1/models", { headers: key }], ["/x", {}], ["/healthz", {}]]) {
      await (await fetch(h.url + path, init as RequestInit)).body?.cancel();
    }
    await waitFor(() => h.router.inflight === 0);
    await (await fetch(`${h.url}/metrics`)).body?.cancel(); // per-worker gauges are set here

    const registry = h.router.metrics.registry;
    const json = await registry.getMetricsAsJSON();
    const labelsOf = (
      name: string,
    ) => [...((registry.getSingleMetric(name) as unknown as { labelNames: string[] }).labelNames)];
    const doc = await documentedFamilies();
    const missing: string[] = [];
    for (const m of json) {
      const d = doc.get(m.name);
      if (d === undefined) {
        missing.push(m.name);
        continue;
      }
      assert.equal(d.type, String(m.type), `${m.name}: type`);
      assert.deepEqual(d.labels.sort(), labelsOf(m.name).sort(), `${m.name}: labels`);
    }
    assert.deepEqual(missing, [], "families the doc does not list");
    const present = new Set(json.map((m) => m.name));
    const stale = [...doc].filter(([n, d]) => !present.has(n) && !d.optional).map(([n]) => n);
    assert.deepEqual(stale, [], "families the doc lists but the registry lacks");
  } finally {
    await h.close();
  }
});

Deno.test("docs/metrics.md lists precise mode's families (§) exactly as a precise router registers them", async () => {
  const { configFromWorkers } = await import("../src/config/mod.ts");
  const { Router } = await import("../src/router/mod.ts");
  const router = new Router(
    configFromWorkers(["http://127.0.0.1:1"], {
      router: { index: "precise" },
      health: { intervalMs: 0 },
      worker: { kvEvents: "tcp://127.0.0.1:5557" },
    }),
  );
  const registry = router.metrics.registry;
  await registry.metrics();
  const doc = await documentedFamilies();
  const labelsOf = (
    name: string,
  ) => [...((registry.getSingleMetric(name) as unknown as { labelNames: string[] }).labelNames)];
  for (const [name, d] of doc) {
    if (!d.precise) continue;
    assert.ok(registry.getSingleMetric(name) !== undefined, `${name} is registered`);
    assert.deepEqual(d.labels.sort(), labelsOf(name).sort(), `${name}: labels`);
  }
  const precise = (await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) =>
    /^router_(kv_|precise_|tokenizer_)/.test(n)
  );
  for (const n of precise) assert.ok(doc.get(n)?.precise, `${n} is documented as precise-only`);
  await router.stop();
});

Deno.test("docs/metrics.md lists flow control's families (¶) exactly as a router with flow: registers them", async () => {
  const { parseConfig } = await import("../src/config/mod.ts");
  const { Router } = await import("../src/router/mod.ts");
  const config = parseConfig(
    "health: {interval: 0s}\nflow: {}\nworkers:\n  - {id: a, url: 'http://127.0.0.1:1'}\n",
  );
  const router = new Router(config);
  const registry = router.metrics.registry;
  const doc = await documentedFamilies();
  const flow = (await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) =>
    n.startsWith("router_flow_")
  );
  assert.ok(flow.length > 0, "flow control registers its families");
  for (const n of flow) assert.ok(doc.get(n)?.flow, `${n} is documented as flow-only`);
  for (const [name, d] of doc) {
    if (!d.flow) continue;
    const m = registry.getSingleMetric(name) as unknown as { labelNames: string[] } | undefined;
    assert.ok(m !== undefined, `${name} is registered`);
    assert.deepEqual(d.labels.sort(), [...m.labelNames].sort(), `${name}: labels`);
  }
  await router.stop();
  router.dispose();
});
