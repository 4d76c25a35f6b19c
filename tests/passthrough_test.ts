/**
 * `router.passthrough_paths` in a two-model fleet: a body that names no model (vLLM's
 * `/v1/load_lora_adapter` takes `{lora_name, lora_path}`) goes to any worker instead of a 400
 * `model_required`; one that names a model goes to a worker serving it; an adapter loaded through
 * the router becomes routable once the models are refreshed.
 */

import assert from "node:assert/strict";
import { configFromWorkers } from "../src/config/mod.ts";
import { silentLogger, startRouter } from "../src/router/mod.ts";
import { startSimWorker } from "../src/sim/server.ts";

async function fleet() {
  const opts = { profile: "a100-7b", timeScale: 0.01, allowRuntimeLora: true } as const;
  const sims = [
    await startSimWorker({ ...opts, id: "w1", models: ["llama-8b"] }),
    await startSimWorker({ ...opts, id: "w2", profile: "m1-1.5b", models: ["qwen-1.5b"] }),
  ];
  const running = await startRouter(
    configFromWorkers(sims.map((w) => w.url), {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 60_000 },
      router: {
        strategy: "roundrobin",
        seed: 1,
        passthroughPaths: ["/v1/load_lora_adapter", "/v1/unload_lora_adapter"],
      },
    }),
    { logger: silentLogger },
  );
  await running.router.refreshModels();
  return {
    running,
    async close() {
      await running.shutdown();
      for (const s of sims) await s.shutdown();
    },
  };
}

async function post(url: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("passthrough: a body without a model goes to any worker; the loaded adapter is routable", async () => {
  const f = await fleet();
  try {
    const load = await post(`${f.running.url}/v1/load_lora_adapter`, {
      lora_name: "sql-lora",
      lora_path: "/adapters/sql",
    });
    const text = await load.text();
    assert.equal(load.status, 200, text);
    const holder = load.headers.get("x-router-backend");
    assert.ok(holder === "w1" || holder === "w2", `answered by a worker (${holder})`);

    await f.running.router.refreshModels();
    for (let i = 0; i < 3; i++) {
      const chat = await post(`${f.running.url}/v1/chat/completions`, {
        model: "sql-lora",
        messages: [{ role: "user", content: `query ${i}` }],
        max_tokens: 2,
      });
      await chat.body?.cancel();
      assert.equal(chat.status, 200);
      assert.equal(chat.headers.get("x-router-backend"), holder, "only the adapter's worker");
    }

    // A body that names a model goes to a worker serving it.
    for (let i = 0; i < 2; i++) {
      const unload = await post(`${f.running.url}/v1/unload_lora_adapter`, {
        model: "qwen-1.5b",
        lora_name: "none",
      });
      await unload.body?.cancel();
      assert.equal(unload.headers.get("x-router-backend"), "w2");
    }
  } finally {
    await f.close();
  }
});

/** A worker serving `model` that echoes each request's method, target and body. */
function echoWorker(model: string) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    if (u.pathname === "/v1/models") {
      return Response.json({ object: "list", data: [{ id: model, object: "model" }] });
    }
    if (u.pathname === "/health") return new Response("ok");
    return Response.json({
      method: req.method,
      target: u.pathname + u.search,
      body: await req.text(),
    });
  });
}

async function echoFleet(upstreamClient: "native" | "fetch" = "native") {
  const workers = [echoWorker("m-a"), echoWorker("m-b")];
  const running = await startRouter(
    configFromWorkers(workers.map((w) => `http://127.0.0.1:${w.addr.port}`), {
      server: { addr: "127.0.0.1:0" },
      health: { intervalMs: 60_000 },
      router: {
        strategy: "roundrobin",
        seed: 1,
        passthroughPaths: ["/v1/admin/thing"],
        modelAliases: { "public-b": "m-b" },
        upstreamClient,
      },
    }),
    { logger: silentLogger },
  );
  await running.router.refreshModels();
  return {
    running,
    async close() {
      await running.shutdown();
      for (const w of workers) await w.shutdown();
    },
  };
}

for (const client of ["native", "fetch"] as const) {
  Deno.test(`passthrough: a GET with a query string reaches the worker as a GET with its query (${client})`, async () => {
    const f = await echoFleet(client);
    try {
      const res = await fetch(`${f.running.url}/v1/admin/thing?x=1&y=two`);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const echo = JSON.parse(text);
      assert.equal(echo.target, "/v1/admin/thing?x=1&y=two");
      assert.equal(echo.method, "GET", "the client's method, not POST");
      const del = await fetch(`${f.running.url}/v1/admin/thing`, { method: "DELETE" });
      assert.equal(JSON.parse(await del.text()).method, "DELETE");
    } finally {
      await f.close();
    }
  });
}

Deno.test("passthrough: an aliased model in a small JSON body reaches its worker under the served name", async () => {
  const f = await echoFleet();
  try {
    for (let i = 0; i < 2; i++) {
      const res = await post(`${f.running.url}/v1/admin/thing`, { model: "public-b", x: i });
      const echo = JSON.parse(await res.text());
      assert.equal(res.headers.get("x-router-backend"), "w2");
      assert.equal(
        JSON.parse(echo.body).model,
        "m-b",
        "the alias rewritten, as for JSON endpoints",
      );
    }
    // A hostile model name no worker serves (all lists known) is a 404, not any worker.
    const bad = await post(`${f.running.url}/v1/admin/thing`, { model: "../../etc\u0000x" });
    await bad.body?.cancel();
    assert.equal(bad.status, 404);
  } finally {
    await f.close();
  }
});
