/**
 * `bench --workers-url`: engine prefix caches are emptied before every cell where the engines
 * offer it (vLLM, SGLang, llama-server), else strategies are interleaved; the note says which.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CacheResetter } from "../src/bench/engine_reset.ts";
import { runSweep, type SweepDeps } from "../src/bench/sweep.ts";
import type { RouterConfig } from "../src/config/types.ts";
import { sseChunk, sseResponse, sseUsage, startServer, type TestServer } from "./_support.ts";

/** A fake engine that answers the given reset endpoints and counts the calls it got. */
async function engine(kind: "vllm" | "sglang" | "llama" | "none"): Promise<
  TestServer & { calls: string[] }
> {
  const calls: string[] = [];
  const server = await startServer(async (req) => {
    await req.arrayBuffer();
    const u = new URL(req.url);
    const call = `${req.method} ${u.pathname}${u.search}`;
    calls.push(call);
    if (kind === "vllm" && call === "POST /reset_prefix_cache") return new Response(null);
    if (kind === "sglang" && call === "POST /flush_cache") return new Response("ok");
    if (kind === "llama" && call === "GET /slots") return Response.json([{ id: 0 }, { id: 1 }]);
    if (kind === "llama" && /^POST \/slots\/[01]\?action=erase$/.test(call)) {
      return Response.json({ id_slot: 0, n_erased: 3 });
    }
    return new Response("not found", { status: 404 });
  });
  return { ...server, calls };
}

Deno.test("cache reset: each engine's own endpoint is found once, then used directly", async () => {
  const engines = await Promise.all((["vllm", "sglang", "llama", "none"] as const).map(engine));
  try {
    const r = new CacheResetter({ timeoutMs: 2000 });
    const urls = engines.map((e) => e.url + "/");
    assert.deepEqual(await r.resetAll(urls), ["vllm", "sglang", "llama-server", null]);
    assert.deepEqual(engines[2].calls.slice(-3), [
      "GET /slots",
      "POST /slots/0?action=erase",
      "POST /slots/1?action=erase",
    ]);
    const before = engines.map((e) => e.calls.length);
    assert.deepEqual(await r.resetAll(urls), ["vllm", "sglang", "llama-server", null]);
    // Known methods go straight to their endpoint; an engine without one is not asked again.
    assert.deepEqual(engines.map((e, i) => e.calls.length - before[i]), [1, 1, 3, 0]);
    // Nothing listening: no method, no throw.
    assert.equal(await new CacheResetter({ timeoutMs: 500 }).reset("http://127.0.0.1:9"), null);
  } finally {
    await Promise.all(engines.map((e) => e.close()));
  }
});

Deno.test("cache reset: a /slots answer over maxSlotsBytes is not read whole and counts as none", async () => {
  // A peer that lists slots without end must not make the bench hold all of it.
  const pad = "x".repeat(4096);
  const calls: string[] = [];
  const server = await startServer(async (req) => {
    await req.arrayBuffer();
    const u = new URL(req.url);
    calls.push(`${req.method} ${u.pathname}${u.search}`);
    if (u.pathname === "/slots") return Response.json([{ id: 0, prompt: pad }]);
    if (u.pathname === "/slots/0") return Response.json({ id_slot: 0, n_erased: 1 });
    return new Response("not found", { status: 404 });
  });
  try {
    const small = new CacheResetter({ timeoutMs: 2000, maxSlotsBytes: 1024 });
    assert.equal(await small.reset(server.url), null);
    assert.ok(!calls.includes("POST /slots/0?action=erase"), "no slot erased from a cut list");
    // The same list within the cap is a llama-server.
    const big = new CacheResetter({ timeoutMs: 2000, maxSlotsBytes: 8192 });
    assert.equal(await big.reset(server.url), "llama-server");
  } finally {
    await server.close();
  }
});

/** Sweep deps whose router is a fake SSE upstream (the engines are only asked to reset). */
function deps(order: string[]): SweepDeps {
  return {
    configFromWorkers: (workers, overrides) => {
      order.push(String(overrides.router?.strategy));
      return { workers, overrides } as unknown as RouterConfig;
    },
    startRouter: async () => {
      const up = await startServer(async (req) => {
        await req.arrayBuffer();
        return sseResponse([sseChunk("ok"), sseUsage(10, 0), "data: [DONE]\n\n"]);
      });
      return { url: up.url, port: up.port, shutdown: () => up.close() };
    },
  };
}

const SWEEP = {
  warmup: false,
  strategies: ["leastloaded", "prefixaware", "costaware"],
  sessions: [1],
  seeds: [1, 2],
  turns: 1,
  systemBytes: 64,
  maxTokens: 4,
  workers: 1,
  profile: "a100-7b",
  timeScale: 1,
};

Deno.test("sweep over real engines: caches emptied before every cell when every engine can", async () => {
  const engines = await Promise.all([engine("vllm"), engine("llama")]);
  const order: string[] = [];
  const notes: string[] = [];
  try {
    const records = await runSweep({
      ...SWEEP,
      workerUrls: engines.map((e) => e.url),
      deps: deps(order),
      onNote: (n) => notes.push(n),
    });
    assert.equal(records.length, 6);
    // Strategy by strategy, as without engines; one probe plus one reset per cell.
    assert.deepEqual(order, [
      "leastloaded",
      "leastloaded",
      "prefixaware",
      "prefixaware",
      "costaware",
      "costaware",
    ]);
    assert.equal(engines[0].calls.filter((c) => c === "POST /reset_prefix_cache").length, 7);
    assert.equal(engines[1].calls.filter((c) => c === "POST /slots/1?action=erase").length, 7);
    assert.equal(notes.length, 1);
    assert.match(notes[0], /emptied before every cell \(vllm, llama-server\)/);
  } finally {
    await Promise.all(engines.map((e) => e.close()));
  }
});

Deno.test("sweep over real engines: strategies interleaved when an engine cannot empty its cache", async () => {
  const engines = await Promise.all([engine("sglang"), engine("none")]);
  const order: string[] = [];
  const notes: string[] = [];
  try {
    await runSweep({
      ...SWEEP,
      workerUrls: engines.map((e) => e.url),
      deps: deps(order),
      onNote: (n) => notes.push(n),
    });
    // Point by point, every strategy in turn, the order rotated from one point to the next.
    assert.deepEqual(order, [
      "leastloaded",
      "prefixaware",
      "costaware",
      "prefixaware",
      "costaware",
      "leastloaded",
    ]);
    assert.equal(engines[0].calls.filter((c) => c === "POST /flush_cache").length, 1, "probe only");
    assert.match(notes[0], /1 of 2 engines offer no cache reset/);
    assert.match(notes[0], /interleaved/);
  } finally {
    await Promise.all(engines.map((e) => e.close()));
  }
});
